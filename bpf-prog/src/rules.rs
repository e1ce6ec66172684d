//! Name rules (`--keep SUFFIX`, `--only SUFFIX`): which UDP queries stay with dockerd (or, on
//! the nameservers path, with the nameserver asked) by the suffix of their question's name.
//!
//! The question's name is turned into a [`RuleKey`] (see there: wire form, length bytes as
//! `.`, lowercased, reversed) in a per-CPU buffer and looked up once in the `RULES` LPM trie,
//! which the loader fills: the longest suffix in force that the name equals or is under wins.
//! "Keep wins" over `--only` is the loader's doing: an `--only` suffix under a `--keep` suffix
//! is stored as [`RULE_ONLY_UNDER_KEEP`], which keeps.
//!
//! The name is read in the packet one bounded step per label and one per byte of a label, as
//! dns.rs walks it; every byte goes through [`NAME_BYTES`], and a byte it maps to 0 (anything
//! but letters, digits, `-` and `_`) makes the name unreadable, so that no byte of a label can
//! pass for a label boundary. With no rules in force the frozen flags make all of this dead
//! code, which the verifier drops.

use crate::config::config;
use crate::kernel::{self, MapDef, SkBuff};
use crate::net::packet::UDP_HLEN;
use core::ffi::c_void;
use dnsredir_abi::{
    RuleValue, FLAG_RULES_KEEP, FLAG_RULES_ONLY, MAX_RULES, NAME_BYTES, RULE_KEY_SIZE,
    RULE_LABEL_MARK, RULE_ONLY,
};

#[no_mangle]
#[link_section = "maps"]
pub static RULES: MapDef = MapDef {
    map_type: kernel::BPF_MAP_TYPE_LPM_TRIE,
    key_size: RULE_KEY_SIZE as u32,
    value_size: RuleValue::SIZE as u32,
    max_entries: MAX_RULES,
    map_flags: kernel::BPF_F_NO_PREALLOC,
};

/// Where the key is built. Wire byte `i` of the name (root excluded) goes to `i ^ REVERSE`
/// (= 511 - i), whatever the name's length `n`; the key then starts 4 bytes (its prefixlen)
/// before `512 - n`, so its data ends at byte 511. The buffer holds a whole key for every `n`.
/// An XOR rather than a subtraction: LLVM would turn `buf + (511 - i)` into `buf - i + 511`,
/// a negative variable offset, which the verifier refuses.
const REVERSE: usize = 0x1ff;
/// Where the bytes left in the current label are kept during the walk.
const LEFT_AT: usize = 512 + 256;
const SCRATCH_SIZE: usize = LEFT_AT + 8;

#[no_mangle]
#[link_section = "maps"]
pub static RULES_SCRATCH: MapDef = MapDef {
    map_type: kernel::BPF_MAP_TYPE_PERCPU_ARRAY,
    key_size: 4,
    value_size: SCRATCH_SIZE as u32,
    max_entries: 1,
    map_flags: 0,
};

/// In `.rodata`: read with a variable index, the verifier bounds it by the array.
#[no_mangle]
static NAME_TABLE: [u8; 256] = NAME_BYTES;

const DNS_HLEN: usize = 12;
/// Wire length of a name without its root byte.
const MAX_NAME_BYTES: usize = 254;
const MAX_LABEL: usize = 63;

/// What the rules say about a UDP query.
#[derive(Clone, Copy)]
pub enum Rule {
    /// No rules in force, or (with `--keep` only) a name under none of them: as without rules.
    Default,
    /// Under a `--keep` suffix (or an `--only` suffix that is under one): dockerd's.
    Keep,
    /// `--only` in force and the name under none of its suffixes: dockerd's.
    OutsideOnly,
    /// Under an `--only` suffix: redirected.
    Only,
    /// Not readable: dockerd's with `--only`, redirected with `--keep` alone.
    Unparsed,
}

impl Rule {
    /// Whether the query stays with dockerd.
    #[inline(always)]
    pub fn keeps(&self) -> bool {
        match self {
            Rule::Keep | Rule::OutsideOnly => true,
            Rule::Unparsed => only(),
            Rule::Default | Rule::Only => false,
        }
    }
}

/// `--only` is in force: TCP (whose name is not known at the SYN) stays with dockerd.
#[inline(always)]
pub fn only() -> bool {
    config!(flags) & FLAG_RULES_ONLY != 0
}

/// The rules' word on the UDP query whose UDP header is at `l4_off` from the start of the frame
/// (any IP version).
#[inline(always)]
pub unsafe fn check_at(skb: *const SkBuff, l4_off: u32) -> Rule {
    if config!(flags) & (FLAG_RULES_KEEP | FLAG_RULES_ONLY) == 0 {
        return Rule::Default;
    }
    match lookup(skb, l4_off) {
        None => Rule::Unparsed,
        Some(NO_RULE) if only() => Rule::OutsideOnly,
        Some(NO_RULE) => Rule::Default,
        Some(RULE_ONLY) => Rule::Only,
        Some(_) => Rule::Keep,
    }
}

/// [`find`]'s answer when no rule matches. A plain value rather than an `Option` inside the
/// `Option`: the payload of a `None` is undefined, and LLVM may spill that undefined register,
/// which the verifier refuses ("!read_ok").
const NO_RULE: u32 = 0;

/// The kind of the longest rule the question's name matches: `None` when the name cannot be
/// read, `Some(NO_RULE)` when no rule matches.
#[inline(always)]
unsafe fn lookup(skb: *const SkBuff, l4_off: u32) -> Option<u32> {
    let zero: u32 = 0;
    let buf =
        kernel::map_lookup_elem(&RULES_SCRATCH, &zero as *const u32 as *const c_void) as *mut u8;
    if buf.is_null() {
        return None;
    }
    let (data, end) = kernel::packet_bounds(skb);
    let name = data.add(l4_off as usize + UDP_HLEN + DNS_HLEN) as *const u8;
    let table = NAME_TABLE.as_ptr();
    // Bytes left in the label being read; 0 when the next byte is a length byte. Kept in the
    // map value, not a register: the verifier does not follow map contents, so the states of
    // every path through one step are alike and it sees each step once or twice (a counter in
    // a register would give it one state per possible label length at every step).
    let left = buf.add(LEFT_AT);
    core::ptr::write_volatile(left, 0);
    // One step per byte of the name, root byte included.
    for i in 0..=MAX_NAME_BYTES {
        // Two bytes checked for a one-byte read, as in dns.rs: the question's type follows.
        let p = name.add(i);
        if p.add(2) > end {
            return None;
        }
        let c = *p;
        let n = core::ptr::read_volatile(left);
        if n == 0 {
            if c == 0 {
                // Hidden: the verifier would check the lookup once per possible length.
                return Some(find(buf, kernel::opaque(i as u32) as usize & 0xff));
            }
            // Compression pointers and reserved label types are not in a query's question.
            if c as usize > MAX_LABEL {
                return None;
            }
            *buf.add(i ^ REVERSE) = RULE_LABEL_MARK;
            core::ptr::write_volatile(left, c);
        } else {
            let b = *table.add(c as usize);
            if b == 0 {
                return None;
            }
            *buf.add(i ^ REVERSE) = b;
            core::ptr::write_volatile(left, n - 1);
        }
    }
    // No root byte within 255 bytes.
    None
}

/// Looks the key of a name of `n` wire bytes up; the root (`n` = 0) matches no rule.
#[inline(always)]
unsafe fn find(buf: *mut u8, n: usize) -> u32 {
    if n == 0 {
        return NO_RULE;
    }
    // 512 - n - 4; n is at most 254, so the key ends inside the buffer.
    let key = buf.add(n ^ REVERSE).sub(3);
    // Byte by byte: the key's start is not aligned.
    let prefixlen = ((n as u32) * 8).to_ne_bytes();
    *key = prefixlen[0];
    *key.add(1) = prefixlen[1];
    *key.add(2) = prefixlen[2];
    *key.add(3) = prefixlen[3];
    let value = kernel::map_lookup_elem(&RULES, key as *const c_void) as *const u32;
    if value.is_null() {
        return NO_RULE;
    }
    core::ptr::read_unaligned(value)
}
