//! Name rules: which queries stay with dockerd (or, on the nameservers path, with the
//! nameserver asked) by the suffix of their question's name (`--keep SUFFIX`, `--only SUFFIX`),
//! and which the programs answer themselves (`--block`, `--allow`, `--answer`, `--hosts`).
//!
//! The question's name is turned into a [`RuleKey`] (see there: wire form, length bytes as
//! `.`, lowercased, reversed) in a per-CPU buffer and looked up once in the `RULES` LPM trie,
//! which the loader fills: the longest suffix in force that the name equals or is under wins.
//! "Keep wins" over `--only` is the loader's doing: an `--only` suffix under a `--keep` suffix
//! is stored as [`RULE_ONLY_UNDER_KEEP`], which keeps. So is the precedence of decisions: every
//! entry holds the merged word of all rules covering its names, so the longest match is the
//! whole answer. The key always ends with [`RULE_EXACT_MARK`] after the name, which only the
//! exact names of a hosts file have in their keys: they match that very name and no other.
//!
//! The name is read in the packet one bounded step per label and one per byte of a label, as
//! dns.rs walks it; every byte goes through [`NAME_BYTES`], and a byte it maps to 0 (anything
//! but letters, digits, `-` and `_`) makes the name unreadable, so that no byte of a label can
//! pass for a label boundary. With no rules in force the frozen flags make all of this dead
//! code, which the verifier drops.

use crate::config::config;
use crate::kernel::{self, MapDef, SkBuff};
use crate::net::dns::DNS_HLEN;
use core::ffi::c_void;
use dnsredir_abi::{
    RuleValue, DECISION_ALLOW, DECISION_ANSWER, DECISION_BLOCK, DECISION_NONE, FLAG_ALLOWLIST,
    FLAG_DECIDE, FLAG_RULES_KEEP, FLAG_RULES_ONLY, MAX_RULES, NAME_BYTES, RULE_EXACT_MARK,
    RULE_KEY_SIZE, RULE_LABEL_MARK, RULE_ONLY,
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

/// Wire length of a name without its root byte.
const MAX_NAME_BYTES: usize = 254;
const MAX_LABEL: usize = 63;

/// Where the rules send a query.
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
    /// Not readable: dockerd's with `--only`, redirected with `--keep` alone (refused with
    /// `--allow`).
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

/// Decisions are in force: the programs answer the queries they cover.
#[inline(always)]
pub fn decides() -> bool {
    config!(flags) & FLAG_DECIDE != 0
}

#[inline(always)]
fn allowlist() -> bool {
    config!(flags) & FLAG_ALLOWLIST != 0
}

/// A query without a readable DNS header is dropped: under `--allow` nothing unread passes.
#[inline(always)]
pub fn refuses_unreadable() -> bool {
    decides() && allowlist()
}

/// [`Verdict::decision`] of a query refused under `--allow` (not a value of the map's).
pub const DISALLOW: u32 = 4;

/// What the rules say about a query.
pub struct Verdict {
    /// Where it goes if nothing answers it.
    pub rule: Rule,
    /// [`DECISION_NONE`] (routed by `rule`), [`DECISION_BLOCK`], [`DECISION_ANSWER`] or
    /// [`DISALLOW`].
    pub decision: u32,
    /// For [`DECISION_ANSWER`], its index in the answers.
    pub answer: u32,
}

/// The rules' word on the query whose DNS header is at `dns_off` from the start of the frame.
/// `exempt`: a name an allowlist leaves alone (Docker's single-label names on lo); `plain`: a
/// query a program may answer (see [`Query::plain`](crate::net::dns::Query::plain)).
#[inline(always)]
pub unsafe fn check_at(skb: *const SkBuff, dns_off: u32, exempt: bool, plain: bool) -> Verdict {
    let mut verdict = Verdict {
        rule: Rule::Default,
        decision: DECISION_NONE,
        answer: 0,
    };
    if config!(flags) & (FLAG_RULES_KEEP | FLAG_RULES_ONLY | FLAG_DECIDE) == 0 {
        return verdict;
    }
    let found = lookup(skb, dns_off);
    verdict.rule = match found.kind {
        UNREADABLE => Rule::Unparsed,
        NO_RULE if only() => Rule::OutsideOnly,
        NO_RULE => Rule::Default,
        RULE_ONLY => Rule::Only,
        _ => Rule::Keep,
    };
    if !decides() {
        return verdict;
    }
    verdict.decision = match found.decision {
        DECISION_BLOCK | DECISION_ANSWER => found.decision,
        DECISION_ALLOW => DECISION_NONE,
        _ if allowlist() && (found.kind == UNREADABLE || !exempt) => DISALLOW,
        _ => DECISION_NONE,
    };
    if verdict.decision == DECISION_NONE && allowlist() && !plain {
        verdict.decision = DISALLOW;
    }
    verdict.answer = found.answer;
    verdict
}

/// [`Found::kind`] when no rule matches. Plain values rather than `Option`s: the payload of a
/// `None` is undefined, and LLVM may spill that undefined register, which the verifier
/// refuses ("!read_ok").
const NO_RULE: u32 = 0;
/// [`Found::kind`] when the name cannot be read.
const UNREADABLE: u32 = u32::MAX;

/// The merged value of the longest rule the question's name matches.
struct Found {
    kind: u32,
    decision: u32,
    answer: u32,
}

const NOTHING: Found = Found {
    kind: NO_RULE,
    decision: DECISION_NONE,
    answer: 0,
};

const UNREAD: Found = Found {
    kind: UNREADABLE,
    decision: DECISION_NONE,
    answer: 0,
};

/// The longest rule the question's name matches ([`NOTHING`] for none, [`UNREAD`] for a name
/// that cannot be read).
#[inline(always)]
unsafe fn lookup(skb: *const SkBuff, dns_off: u32) -> Found {
    let zero: u32 = 0;
    let buf =
        kernel::map_lookup_elem(&RULES_SCRATCH, &zero as *const u32 as *const c_void) as *mut u8;
    if buf.is_null() {
        return UNREAD;
    }
    let (data, end) = kernel::packet_bounds(skb);
    let name = data.add(dns_off as usize + DNS_HLEN) as *const u8;
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
            return UNREAD;
        }
        let c = *p;
        let n = core::ptr::read_volatile(left);
        if n == 0 {
            if c == 0 {
                // Hidden: the verifier would check the lookup once per possible length.
                return find(buf, kernel::opaque(i as u32) as usize & 0xff);
            }
            // Compression pointers and reserved label types are not in a query's question.
            if c as usize > MAX_LABEL {
                return UNREAD;
            }
            *buf.add(i ^ REVERSE) = RULE_LABEL_MARK;
            core::ptr::write_volatile(left, c);
        } else {
            let b = *table.add(c as usize);
            if b == 0 {
                return UNREAD;
            }
            *buf.add(i ^ REVERSE) = b;
            core::ptr::write_volatile(left, n - 1);
        }
    }
    // No root byte within 255 bytes.
    UNREAD
}

/// Looks the key of a name of `n` wire bytes up, with [`RULE_EXACT_MARK`] after it; the root
/// (`n` = 0) matches no rule.
#[inline(always)]
unsafe fn find(buf: *mut u8, n: usize) -> Found {
    if n == 0 {
        return NOTHING;
    }
    *buf.add(REVERSE + 1) = RULE_EXACT_MARK;
    // 512 - n - 4; n is at most 254, so the key (and its mark at 512) ends inside the buffer.
    let key = buf.add(n ^ REVERSE).sub(3);
    // A map with shorter keys holds no rule as long as the name: its last labels that fit
    // are the key (the reversed name's start, where every rule's key ends).
    let bytes = config!(rule_key_bytes) as u32;
    let mut len = n as u32 + 1;
    if bytes != 0 && len > bytes {
        len = bytes;
    }
    // Byte by byte: the key's start is not aligned.
    let prefixlen = (len * 8).to_ne_bytes();
    *key = prefixlen[0];
    *key.add(1) = prefixlen[1];
    *key.add(2) = prefixlen[2];
    *key.add(3) = prefixlen[3];
    let value = kernel::map_lookup_elem(&RULES, key as *const c_void) as *const RuleValue;
    if value.is_null() {
        return NOTHING;
    }
    let value = core::ptr::read_unaligned(value);
    Found {
        kind: value.kind,
        decision: value.decision,
        answer: value.answer,
    }
}
