//! Name rules (`--keep SUFFIX`, `--only SUFFIX`): which UDP queries stay with dockerd by the
//! suffix of their question's name.
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
use crate::net::packet::{Ipv4, UDP_HLEN};
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

/// Where the key is built. Wire byte `i` of the name (root excluded) goes to `KEY_END - i`,
/// whatever the name's length `n`; the key then starts at `KEY_END + 1 - n - 4` (its
/// prefixlen), so its data ends at `KEY_END`. The buffer holds a whole key for every `n`.
const KEY_END: usize = 259;
const SCRATCH_SIZE: usize = 520;
/// Keeps every computed index inside the buffer, for the verifier.
const INDEX_MASK: usize = 0x1ff;

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
const MAX_LABELS: usize = 127;

/// What the rules say about a UDP query.
#[derive(Clone, Copy)]
pub enum Rule {
    /// No rules in force, or (with `--keep` only) a name under none of them: as without rules.
    NoRule,
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
            Rule::NoRule | Rule::Only => false,
        }
    }
}

/// `--only` is in force: TCP (whose name is not known at the SYN) stays with dockerd.
#[inline(always)]
pub fn only() -> bool {
    config!(flags) & FLAG_RULES_ONLY != 0
}

/// The rules' word on the UDP query in `ip`.
#[inline(always)]
pub unsafe fn check(skb: *const SkBuff, ip: &Ipv4) -> Rule {
    if config!(flags) & (FLAG_RULES_KEEP | FLAG_RULES_ONLY) == 0 {
        return Rule::NoRule;
    }
    match lookup(skb, ip) {
        None => Rule::Unparsed,
        Some(None) if only() => Rule::OutsideOnly,
        Some(None) => Rule::NoRule,
        Some(Some(RULE_ONLY)) => Rule::Only,
        Some(Some(_)) => Rule::Keep,
    }
}

/// The kind of the longest rule the question's name matches: `None` when the name cannot be
/// read, `Some(None)` when no rule matches.
#[inline(always)]
unsafe fn lookup(skb: *const SkBuff, ip: &Ipv4) -> Option<Option<u32>> {
    let zero: u32 = 0;
    let buf = kernel::map_lookup_elem(&RULES_SCRATCH, &zero as *const u32 as *const c_void)
        as *mut u8;
    if buf.is_null() {
        return None;
    }
    let (data, end) = kernel::packet_bounds(skb);
    let name = data.add(ip.l4_off as usize + UDP_HLEN + DNS_HLEN) as *const u8;
    let table = NAME_TABLE.as_ptr();
    let mut off = 0usize;
    // One step per length byte; the last one is the root's.
    for _ in 0..=MAX_LABELS {
        // Two bytes checked for a one-byte read, as in dns.rs: the question's type follows.
        let p = name.add(off & 0xff);
        if p.add(2) > end {
            return None;
        }
        let len = *p as usize;
        if len == 0 {
            return Some(find(buf, off));
        }
        if len > MAX_LABEL {
            return None;
        }
        let next = off + len + 1;
        if next > MAX_NAME_BYTES {
            return None;
        }
        *buf.add((KEY_END - off) & INDEX_MASK) = RULE_LABEL_MARK;
        let label = p.add(1);
        for j in 0..MAX_LABEL {
            if j >= len {
                break;
            }
            let q = label.add(j);
            if q.add(2) > end {
                return None;
            }
            let b = *table.add(*q as usize);
            if b == 0 {
                return None;
            }
            *buf.add((KEY_END - 1 - off - j) & INDEX_MASK) = b;
        }
        off = next;
    }
    None
}

/// Looks the key of a name of `n` wire bytes up; the root (`n` = 0) matches no rule.
#[inline(always)]
unsafe fn find(buf: *mut u8, n: usize) -> Option<u32> {
    if n == 0 {
        return None;
    }
    let key = buf.add((KEY_END + 1 - 4 - n) & 0xff);
    // Byte by byte: the key's start is not aligned.
    let prefixlen = ((n as u32) * 8).to_ne_bytes();
    *key = prefixlen[0];
    *key.add(1) = prefixlen[1];
    *key.add(2) = prefixlen[2];
    *key.add(3) = prefixlen[3];
    let value = kernel::map_lookup_elem(&RULES, key as *const c_void) as *const u32;
    if value.is_null() {
        return None;
    }
    Some(core::ptr::read_unaligned(value))
}
