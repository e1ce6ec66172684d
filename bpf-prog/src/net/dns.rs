//! What the programs read from DNS messages: the id, the shape of a query's question name and
//! the EDNS payload size of its OPT record (RFC 1035 §4.1, RFC 6891 §6).
//!
//! Names are walked in the packet itself, one bounded step per label: no copy, and a name that
//! does not fit the rules of a query's question (RFC 1035 §2.3.4, no compression) just yields
//! no answer, never a refusal of the packet.

use super::packet::{load16, UDP_HLEN};
use crate::kernel::{self, SkBuff};

const DNS_HLEN: usize = 12;
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
const TYPE_OPT: u8 = 41;
/// QTYPE and QCLASS after the question's name.
const QUESTION_TAIL: usize = 4;
/// From an OPT record's start (its root owner name) to its CLASS, the UDP payload size.
const OPT_SIZE_AT: usize = 3;

pub struct Query {
    pub id: u16,
    /// The question's name has exactly one label (`c2`, not `c2.net`): one of Docker's own names.
    pub single_label: bool,
    /// The requestor's UDP payload size, when the query is plain enough to change it safely.
    pub edns_size: Option<EdnsSize>,
}

/// The CLASS field of an OPT record.
pub struct EdnsSize {
    /// Offset from the start of the frame.
    pub off: u32,
    /// Its bytes as loaded (network order).
    pub raw: u16,
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

/// The parts of a UDP query the programs decide on, for a UDP header at `l4_off` from the start
/// of the frame (any IP version); `None` without a whole header and the first length byte of a
/// question.
#[inline(always)]
pub unsafe fn query_at(skb: *const SkBuff, l4_off: u32) -> Option<Query> {
    let (data, end) = kernel::packet_bounds(skb);
    let dns = data.add(l4_off as usize + UDP_HLEN);
    if dns.add(DNS_HLEN + 2) as *const u8 > end {
        return None;
    }
    let id = load16(dns);
    let Some(name) = walk_name(dns.add(DNS_HLEN), end) else {
        return Some(Query {
            id,
            single_label: false,
            edns_size: None,
        });
    };
    let edns_size = edns_size(dns, name.len, end).map(|(at, raw)| EdnsSize {
        off: l4_off + (UDP_HLEN + at) as u32,
        raw,
    });
    Some(Query {
        id,
        single_label: name.labels == 1,
        edns_size,
    })
}

struct Name {
    /// Wire length, root byte included.
    len: usize,
    labels: usize,
}

/// The length and label count of an uncompressed name that starts at `name`.
#[inline(always)]
unsafe fn walk_name(name: *const u8, end: *const u8) -> Option<Name> {
    let mut off = 0usize;
    // One step per length byte: the labels before this one.
    for labels in 0..MAX_STEPS {
        // The mask changes nothing (off stays below MAX_NAME) but bounds the pointer for the
        // verifier. Two bytes are checked for a one-byte read: a question always has its type
        // after the name, and a one-byte check can compile to a form the verifier gets no
        // range from.
        let p = name.add(off & 0xff);
        if p.add(2) > end {
            return None;
        }
        let len = *p as usize;
        if len == 0 {
            return Some(Name {
                len: off + 1,
                labels,
            });
        }
        // Compression pointers (0xc0) and the reserved label types are not in a query's question.
        if len > MAX_LABEL {
            return None;
        }
        off += len + 1;
        if off >= MAX_NAME {
            return None;
        }
    }
    None
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
