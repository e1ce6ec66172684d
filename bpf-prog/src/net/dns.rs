//! What the programs read from DNS messages: the id, the shape of a query's question name and
//! the EDNS payload size of its OPT record (RFC 1035 §4.1, RFC 6891 §6).
//!
//! Names are walked in the packet itself, one bounded step per label: no copy, and a name that
//! does not fit the rules of a query's question (RFC 1035 §2.3.4, no compression) just yields
//! no answer, never a refusal of the packet.

use super::packet::{load16, UDP_HLEN};
use crate::kernel::{self, SkBuff};

pub const DNS_HLEN: usize = 12;
/// Offsets of the section counts in the header.
const QDCOUNT: usize = 4;
const ANCOUNT: usize = 6;
const NSCOUNT: usize = 8;
const ARCOUNT: usize = 10;
/// A name's whole wire length, root byte included.
const MAX_NAME: usize = 255;
const MAX_LABEL: usize = 63;
/// The most length bytes a name of MAX_NAME bytes can have: one-letter labels and the root.
const MAX_STEPS: usize = MAX_NAME / 2 + 1;
/// Steps of the name walk per round of its loop: the verifier goes through all 128 steps of a
/// walk, and the count of rounds costs it 4 instructions a round instead of a step (a step is
/// 12). The embedded-resolver query program's processed instructions, 5,958 with one step a
/// round: 5,220 with 2 (memlock unchanged), 4,995 with 8 (one page, 4 KiB, more memlock),
/// 4,955 with 16.
const STEPS_PER_ROUND: usize = 8;
const _: () = assert!(MAX_STEPS.is_multiple_of(STEPS_PER_ROUND));
const TYPE_OPT: u8 = 41;
const CLASS_IN: u16 = 1;
/// In byte 2 of the header.
const FLAG_QR: u8 = 0x80;
const OPCODE: u8 = 0x78;
/// QTYPE and QCLASS after the question's name.
const QUESTION_TAIL: usize = 4;
/// From an OPT record's start (its root owner name) to its CLASS, the UDP payload size.
const OPT_SIZE_AT: usize = 3;

pub struct Query {
    pub id: u16,
    /// Byte 2 of the header: QR, OPCODE, AA, TC, RD.
    pub flags: u8,
    /// Wire length of the question (its name, TYPE and CLASS) when all of it could be read,
    /// else 0.
    pub question_len: u32,
    /// The question's QTYPE as loaded (network order); 0 without a readable question.
    pub qtype: u16,
    /// A standard query (QR 0, OPCODE QUERY) with one question, of class IN, all of it here:
    /// one a program may answer.
    pub plain: bool,
    /// The question's name has exactly one label (`c2`, not `c2.net`): one of Docker's own names.
    pub single_label: bool,
    /// The requestor's UDP payload size, when the query is plain enough to change it safely
    /// ([`EdnsSize::NONE`] otherwise).
    pub edns_size: EdnsSize,
}

/// The CLASS field of an OPT record. Not wrapped in an `Option`: LLVM carried the undefined
/// fields of a `None` through the name walk's every step as stores of whatever a register
/// held (a packet pointer, too), which the verifier then checked at every step.
pub struct EdnsSize {
    /// Offset from the start of the frame; 0 for none.
    pub off: u32,
    /// Its bytes as loaded (network order).
    pub raw: u16,
}

impl EdnsSize {
    pub const NONE: EdnsSize = EdnsSize { off: 0, raw: 0 };
}

/// The id of a UDP message whose UDP header is at `l4_off` from the start of the frame (any IP
/// version), for matching a reply to its query.
#[inline(always)]
pub unsafe fn id_at(skb: *const SkBuff, l4_off: u32) -> Option<u16> {
    let (data, end) = kernel::packet_bounds(skb);
    let dns = data.add(l4_off as usize + UDP_HLEN);
    if dns.add(2) as *const u8 > end {
        return None;
    }
    Some(load16(dns))
}

/// The parts of a query the programs decide on, for a DNS header at `dns_off` from the start of
/// the frame (after a UDP header, or a TCP header and the message's length); `None` without a
/// whole header and the first length byte of a question.
#[inline(always)]
pub unsafe fn query_at(skb: *const SkBuff, dns_off: u32) -> Option<Query> {
    let (data, end) = kernel::packet_bounds(skb);
    let dns = data.add(dns_off as usize);
    if dns.add(DNS_HLEN + 2) as *const u8 > end {
        return None;
    }
    let id = load16(dns);
    let flags = *dns.add(2);
    let name = walk_name(dns.add(DNS_HLEN), end);
    let mut question_len = 0;
    let mut qtype = 0;
    let mut plain = false;
    let mut edns = EdnsSize::NONE;
    if name.len != 0 {
        let tail = dns.add(DNS_HLEN + (name.len & 0xff));
        if tail.add(QUESTION_TAIL) as *const u8 <= end {
            question_len = (name.len + QUESTION_TAIL) as u32;
            qtype = load16(tail);
            plain = flags & (FLAG_QR | OPCODE) == 0
                && load16(dns.add(QDCOUNT)) == 1u16.to_be()
                && load16(tail.add(2)) == CLASS_IN.to_be();
        }
        if let Some((at, raw)) = edns_size(dns, name.len, end) {
            edns = EdnsSize {
                off: dns_off + at as u32,
                raw,
            };
        }
    }
    Some(read(
        id,
        flags,
        question_len,
        qtype,
        plain,
        name.single_label,
        edns,
    ))
}

/// The query as read, hidden from the verifier ([`kernel::opaque`]) on its way out, as the
/// name walk's answer is: each field is known exactly on some ways here (0 without a
/// question, a flag's one value on each side of its test), and the code after, the rules'
/// byte-by-byte walk first, would be checked once per combination.
#[inline(always)]
fn read(
    id: u16,
    flags: u8,
    question_len: u32,
    qtype: u16,
    plain: bool,
    single_label: bool,
    edns: EdnsSize,
) -> Query {
    const PLAIN: u32 = 1 << 9;
    const SINGLE: u32 = 1 << 10;
    let word = kernel::opaque(
        question_len | if plain { PLAIN } else { 0 } | if single_label { SINGLE } else { 0 },
    );
    let types = kernel::opaque(qtype as u32 | (flags as u32) << 16);
    Query {
        id,
        flags: (types >> 16) as u8,
        // At most 255 + 4: the mask tells the verifier so.
        question_len: word & 0x1ff,
        qtype: types as u16,
        plain: word & PLAIN != 0,
        single_label: word & SINGLE != 0,
        edns_size: EdnsSize {
            off: kernel::opaque(edns.off) & 0x3ff,
            raw: kernel::opaque(edns.raw as u32) as u16,
        },
    }
}

struct Name {
    /// Wire length, root byte included; 0 for a name the walk could not read.
    len: usize,
    single_label: bool,
}

/// The walk's answer, hidden from the verifier ([`kernel::opaque`]) on its way out. Why: the
/// walk ends at up to 128 places, each with its own range of the name's length (and, before,
/// its own exact label count); carried on as they were, they made the verifier check the rest
/// of the query program once per place: three quarters of its 31,000 processed instructions,
/// most of an attach's time. Hidden, they all look alike and the first check covers the others.
#[inline(always)]
fn walked(len: usize, single_label: bool) -> Name {
    const SINGLE: u32 = 1 << 15;
    let word = kernel::opaque(len as u32 | if single_label { SINGLE } else { 0 });
    Name {
        // At most MAX_NAME: the mask tells the verifier so.
        len: (word & 0xff) as usize,
        single_label: word & SINGLE != 0,
    }
}

/// The wire length of the uncompressed name that starts at `name` (0: none could be read) and
/// whether it has exactly one label. A plain value, not an `Option`: LLVM carried the undefined
/// length of a `None` through every step of the walk, in stores the verifier then checked at
/// every step.
#[inline(always)]
unsafe fn walk_name(name: *const u8, end: *const u8) -> Name {
    let unreadable = Name {
        len: 0,
        single_label: false,
    };
    if name.add(2) > end {
        return unreadable;
    }
    let first = *name as usize;
    // Two bytes past the name's start: the walk's pointers are checked against the packet's
    // end as they are, and its length bytes read two bytes back.
    let name2 = name.add(2);
    let mut off = 0u32;
    let mut root = false;
    // One step per length byte, STEPS_PER_ROUND steps a round. The count of rounds bounds
    // the loop for the verifier, which sees no lower bound on `off` as LLVM computes it, so
    // no growth (and, for the same reason, one range of `off` at every way out, which keeps
    // them alike). `off` is a u32: as a usize it was masked to a byte once more every step.
    'walk: for _ in 0..MAX_STEPS / STEPS_PER_ROUND {
        for _ in 0..STEPS_PER_ROUND {
            // The mask changes nothing (off stays below MAX_NAME) but bounds the pointer for
            // the verifier. Two bytes are checked for a one-byte read: a question always has
            // its type after the name, and a one-byte check can compile to a form the
            // verifier gets no range from.
            let p2 = name2.add((off & 0xff) as usize);
            if p2 > end {
                break 'walk;
            }
            let len = *p2.sub(2) as u32;
            if len == 0 {
                root = true;
                break 'walk;
            }
            // Compression pointers (0xc0) and the reserved label types are not in a query's
            // question.
            if len > MAX_LABEL as u32 {
                break 'walk;
            }
            off += len + 1;
            if off >= MAX_NAME as u32 {
                break 'walk;
            }
        }
    }
    let off = off as usize;
    // Every way out goes through one `walked`: a way out that skipped it would bring the
    // walk's own state along again.
    let len = if root { off + 1 } else { 0 };
    // One label: the first length byte leads straight to the root byte.
    walked(len, root && first != 0 && off == first + 1)
}

/// Offset from the DNS header and raw value of the OPT record's payload size, for a query with
/// one question, no answer or authority records and the OPT record as its only additional
/// record: then the OPT record directly follows the question. With more additional records
/// there could be a TSIG or SIG(0) signature over the message, which a change would break.
#[inline(always)]
unsafe fn edns_size(dns: *const u8, name_len: usize, end: *const u8) -> Option<(usize, u16)> {
    if load16(dns.add(QDCOUNT)) != 1u16.to_be()
        || load16(dns.add(ANCOUNT)) != 0
        || load16(dns.add(NSCOUNT)) != 0
        || load16(dns.add(ARCOUNT)) != 1u16.to_be()
    {
        return None;
    }
    let at = DNS_HLEN + (name_len & 0xff) + QUESTION_TAIL;
    let opt = dns.add(at);
    if opt.add(OPT_SIZE_AT + 2) > end {
        return None;
    }
    // Root owner name, then TYPE 41.
    if *opt != 0 || *opt.add(1) != 0 || *opt.add(2) != TYPE_OPT {
        return None;
    }
    let raw = u16::from_ne_bytes([*opt.add(OPT_SIZE_AT), *opt.add(OPT_SIZE_AT + 1)]);
    Some((at + OPT_SIZE_AT, raw))
}
