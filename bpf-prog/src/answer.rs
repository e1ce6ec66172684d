//! Answers the programs make themselves (`--block`, `--allow`, `--answer`, `--hosts`): the
//! query is turned into its answer in place and sent back to the client, so no resolver is on
//! the path. A UDP query gets a whole DNS answer; a TCP query the rules cover gets its
//! connection reset (answering on TCP would mean playing the server's side of the connection).
//!
//! Each answer is built in a per-CPU buffer, its checksum computed there from scratch (with the
//! pinned records' sums the loader stored beside them), and written over the query; the
//! packet's length follows with bpf_skb_change_tail. Then it goes back:
//! - from the interface's egress (nameservers path), to the same interface's ingress, where
//!   conntrack takes it for the nameserver's answer;
//! - from lo's ingress (Docker's embedded resolver), in three passes through lo's ingress,
//!   told apart by [`MARK_TURNED`] and [`MARK_ROUTED`] in skb->mark: (1) a redirect to lo's
//!   ingress, which scrubs the query's conntrack reference and route (passed up as it was, the
//!   answer met Docker's DNAT again and was lost); (2) bpf_redirect_neigh to lo, whose route
//!   lookup attaches the local route (a 127.0.0.0/8 packet without one is a martian); (3) the
//!   mark cleared, it passes, and conntrack restores 127.0.0.11:53 as its source. The mark is
//!   ours only between our own passes, which no netfilter hook sees; it leaves as 0.

use crate::config::config;
use crate::counters::Outcome;
use crate::family::Family;
use crate::kernel::{self, MapDef, SkBuff, BPF_F_INGRESS, TC_ACT_SHOT};
use crate::net::checksum;
use crate::net::dns::{Query, DNS_HLEN};
use crate::net::packet::{self, store16, Ip, TCP_ACK, TCP_MIN_HLEN, TCP_RST, UDP_HLEN};
use crate::rules::{self, Verdict, DISALLOW};
use core::ffi::c_void;
use dnsredir_abi::{
    AnswerValue, AAAA_RECORD_SIZE, ANSWER_EDNS_SIZE, A_RECORD_SIZE, DECISION_ANSWER,
    DECISION_BLOCK, FLAG_BLOCK_REFUSED, MAX_ANSWER_ADDRS, ROUTE_BLOCKED, ROUTE_DISALLOWED,
    ROUTE_PINNED, ROUTE_RESET,
};

#[no_mangle]
#[link_section = "maps"]
pub static ANSWERS: MapDef = MapDef {
    map_type: kernel::BPF_MAP_TYPE_ARRAY,
    key_size: 4,
    value_size: AnswerValue::SIZE as u32,
    max_entries: 1,
    map_flags: 0,
};

/// Room for the UDP and DNS headers and the longest question (20 + 259 bytes, rounded up to
/// the 4-byte steps of the checksum), or a TCP header; the OPT record at [`OPT_AT`].
const SCRATCH_SIZE: usize = 1024;
const OPT_AT: usize = 1000;

#[no_mangle]
#[link_section = "maps"]
pub static ANSWER_SCRATCH: MapDef = MapDef {
    map_type: kernel::BPF_MAP_TYPE_PERCPU_ARRAY,
    key_size: 4,
    value_size: SCRATCH_SIZE as u32,
    max_entries: 1,
    map_flags: 0,
};

/// skb->mark of an answer on its way to lo's ingress for the second pass, and for the third:
/// "dnr" and the pass. Any other mark is left as it is.
pub const MARK_TURNED: u32 = 0x646e_7202;
pub const MARK_ROUTED: u32 = 0x646e_7203;

const UDP: u16 = 17;
const TCP: u16 = 6;
const RCODE_NXDOMAIN: u8 = 3;
const RCODE_REFUSED: u8 = 5;
const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
/// The OPT record of an answer: root owner, TYPE 41, the payload size, TTL 0 (no extended
/// RCODE, version 0, DO clear), no options.
const OPT_LEN: u32 = 11;
const OPT: [u8; 11] = {
    let size = ANSWER_EDNS_SIZE.to_be_bytes();
    [0, 0, 41, size[0], size[1], 0, 0, 0, 0, 0, 0]
};
/// The sum of [`OPT`]'s big-endian words as if it started on the word grid, like the records'
/// sums: `00 00`, `29 hi`, `lo 00` (odd length: the last byte padded with 0), then zeros.
const OPT_SUM: u32 = ((OPT[2] as u32) << 8 | OPT[3] as u32) + ((OPT[4] as u32) << 8);

#[inline(always)]
unsafe fn scratch() -> *mut u8 {
    let zero: u32 = 0;
    kernel::map_lookup_elem(&ANSWER_SCRATCH, &zero as *const u32 as *const c_void) as *mut u8
}

/// The records a pinned name answers `query` with: where they are, their length and the sum
/// of their words; none for another type, or no record of the type.
#[inline(always)]
unsafe fn records(query: &Query, verdict: &Verdict) -> (*const u8, u32, u32, u16) {
    let none = (core::ptr::null(), 0, 0, 0);
    if verdict.decision != DECISION_ANSWER || !query.plain {
        return none;
    }
    let value = kernel::map_lookup_elem(&ANSWERS, &verdict.answer as *const u32 as *const c_void)
        as *const AnswerValue;
    if value.is_null() {
        return none;
    }
    let v = &*value;
    let (count, ptr, size, sum) = if query.qtype == TYPE_A.to_be() {
        (v.a_count, v.a.as_ptr(), A_RECORD_SIZE, v.a_sum)
    } else if query.qtype == TYPE_AAAA.to_be() {
        (v.aaaa_count, v.aaaa.as_ptr(), AAAA_RECORD_SIZE, v.aaaa_sum)
    } else {
        return none;
    };
    if count == 0 || count as usize > MAX_ANSWER_ADDRS {
        return none;
    }
    let n = kernel::bounded(count as u32, MAX_ANSWER_ADDRS as u32 - 1);
    (ptr, n * size as u32, sum, n as u16)
}

/// Answers the UDP query in `ip` (its DNS header at `dns_off`, read as `query`) as `verdict`
/// says, back from where it was going; `lo`: on lo's ingress, else on the interface's egress.
#[inline(always)]
pub unsafe fn udp<A: Family>(
    skb: *mut SkBuff,
    ip: &Ip<A>,
    dns_off: u32,
    query: &Query,
    verdict: &Verdict,
    lo: bool,
) -> (Outcome, i32) {
    let (route, rcode) = match verdict.decision {
        DECISION_BLOCK if config!(flags) & FLAG_BLOCK_REFUSED != 0 => {
            (ROUTE_BLOCKED, RCODE_REFUSED)
        }
        DECISION_BLOCK => (ROUTE_BLOCKED, RCODE_NXDOMAIN),
        DECISION_ANSWER => (ROUTE_PINNED, 0),
        _ => (ROUTE_DISALLOWED, RCODE_REFUSED),
    };
    // The query as it came, for a watcher.
    A::sent(skb, ip, route);
    let s = scratch();
    if s.is_null() {
        return (Outcome::Failed, TC_ACT_SHOT);
    }
    let question = query.question_len & 0x1ff;
    let head = (UDP_HLEN + DNS_HLEN) as u32 + question;
    let (recs, recs_len, recs_sum, ancount) = records(query, verdict);
    let opt = query.edns_size.off != 0;
    let l4_len = head + recs_len + if opt { OPT_LEN } else { 0 };

    store16(s, ip.dport);
    store16(s.add(2), ip.sport);
    store16(s.add(4), (l4_len as u16).to_be());
    store16(s.add(6), 0);
    let dns = s.add(UDP_HLEN);
    store16(dns, query.id);
    // QR, the query's RD; RA and the RCODE.
    *dns.add(2) = 0x80 | (query.flags & 0x01);
    *dns.add(3) = 0x80 | rcode;
    store16(dns.add(4), (if question != 0 { 1u16 } else { 0 }).to_be());
    store16(dns.add(6), ancount.to_be());
    store16(dns.add(8), 0);
    store16(dns.add(10), (opt as u16).to_be());
    if question != 0
        && kernel::skb_load_bytes(
            skb,
            dns_off + DNS_HLEN as u32,
            dns.add(DNS_HLEN),
            kernel::bounded(question, 0x1ff),
        ) != 0
    {
        return (Outcome::Failed, TC_ACT_SHOT);
    }
    // Zeros up to the next 4-byte step, which the sum below reads.
    let pad = s.add(head as usize);
    *pad = 0;
    *pad.add(1) = 0;
    *pad.add(2) = 0;
    let head_sum = kernel::csum_sum(s, (head + 3) & 0x3fc, 0);
    // Records and OPT follow the head: a byte off the word grid when the head's length is odd,
    // and their sums are of big-endian words, where the head's is of raw ones.
    let tail = checksum::fold16(recs_sum as u64 + if opt { OPT_SUM as u64 } else { 0 });
    let tail = if head & 1 == 0 {
        tail.swap_bytes()
    } else {
        tail
    };
    let sum = head_sum as u64
        + tail as u64
        + A::pseudo_sum(&ip.saddr, &ip.daddr) as u64
        + UDP.to_be() as u64
        + (l4_len as u16).to_be() as u64;
    store16(s.add(6), checksum::udp_field(sum));

    if kernel::skb_change_tail(skb, ip.l4_off + l4_len) != 0 {
        return (Outcome::Failed, TC_ACT_SHOT);
    }
    if kernel::skb_store_bytes(skb, ip.l4_off, s, kernel::bounded(head, 0x1ff)) != 0 {
        return (Outcome::Failed, TC_ACT_SHOT);
    }
    if recs_len != 0
        && kernel::skb_store_bytes(skb, ip.l4_off + head, recs, kernel::bounded(recs_len, 0xff))
            != 0
    {
        return (Outcome::Failed, TC_ACT_SHOT);
    }
    if opt {
        let o = s.add(OPT_AT);
        let mut i = 0;
        while i < OPT.len() {
            *o.add(i) = OPT[i];
            i += 1;
        }
        if kernel::skb_store_bytes(skb, ip.l4_off + head + recs_len, o, OPT_LEN) != 0 {
            return (Outcome::Failed, TC_ACT_SHOT);
        }
    }
    send_back(skb, ip, l4_len, lo, Outcome::Answered(route))
}

/// Resets the TCP connection of the segment in `ip` (a query the rules cover, or one they
/// could not read whole with decisions in force), on both sides: a copy of the segment, made
/// the server's RST, goes back to the client (as answers do); the segment itself becomes the
/// client's RST and the caller sends it on where it was going (redirected or not), so that the
/// server does not wait for a query that never comes (a resolver that serves TCP in one
/// process, as `dnsmasq -d` does, would stop answering anything meanwhile). `Err` with the
/// program's answer when that failed.
#[inline(always)]
pub unsafe fn reset<A: Family>(
    skb: *mut SkBuff,
    ip: &Ip<A>,
    payload: u32,
    lo: bool,
) -> Result<(), (Outcome, i32)> {
    let failed = (Outcome::Failed, TC_ACT_SHOT);
    A::sent(skb, ip, ROUTE_RESET);
    let s = scratch();
    if s.is_null() {
        return Err(failed);
    }
    let (data, end) = kernel::packet_bounds(skb);
    let l4 = data.add((ip.l4_off & 0xff) as usize);
    if l4.add(TCP_MIN_HLEN) as *const u8 > end {
        return Err(failed);
    }
    // Options kept (parse saw them all): 20 to 60 bytes.
    let words = (*l4.add(12) >> 4) as u32;
    if words < 5 {
        return Err(failed);
    }
    let hlen = kernel::bounded(words * 4, 0x3f);
    if kernel::skb_load_bytes(skb, ip.l4_off, s, hlen) != 0 {
        return Err(failed);
    }
    let seq = [*s.add(4), *s.add(5), *s.add(6), *s.add(7)];
    let ack = [*s.add(8), *s.add(9), *s.add(10), *s.add(11)];
    // To the client: SEQ what it expects next (the segment's ACK), ACK all it sent.
    let sent = u32::from_be_bytes(seq).wrapping_add(payload).to_be_bytes();
    rst(s, hlen, ip, ip.dport, ip.sport, &ack, &sent);
    if kernel::skb_change_tail(skb, ip.l4_off + hlen) != 0
        || kernel::skb_store_bytes(skb, ip.l4_off, s, hlen) != 0
        || packet::turn(skb, ip, hlen).is_err()
    {
        return Err(failed);
    }
    let mark = kernel::mark(skb);
    let copied = if lo {
        kernel::set_mark(skb, MARK_TURNED);
        kernel::clone_redirect(skb, config!(lo_ifindex), BPF_F_INGRESS)
    } else {
        kernel::clone_redirect(skb, config!(iface_ifindex), BPF_F_INGRESS)
    };
    kernel::set_mark(skb, mark);
    if copied != 0 {
        return Err(failed);
    }
    // To the server: the segment's own SEQ (where the query would have started) and ACK.
    rst(s, hlen, ip, ip.sport, ip.dport, &seq, &ack);
    if kernel::skb_store_bytes(skb, ip.l4_off, s, hlen) != 0
        || packet::turn_back(skb, ip, hlen).is_err()
    {
        return Err(failed);
    }
    Ok(())
}

/// Writes an RST|ACK from `sport` to `dport` with `seq` and `ack` over the TCP header of
/// `hlen` bytes in `s` (options kept), its checksum for `ip`'s addresses (either way round:
/// the sum does not care) and no payload.
#[inline(always)]
unsafe fn rst<A: Family>(
    s: *mut u8,
    hlen: u32,
    ip: &Ip<A>,
    sport: u16,
    dport: u16,
    seq: &[u8; 4],
    ack: &[u8; 4],
) {
    store16(s, sport);
    store16(s.add(2), dport);
    let mut i = 0;
    while i < 4 {
        *s.add(4 + i) = seq[i];
        *s.add(8 + i) = ack[i];
        i += 1;
    }
    *s.add(13) = TCP_RST | TCP_ACK;
    store16(s.add(14), 0);
    store16(s.add(16), 0);
    store16(s.add(18), 0);
    let sum = kernel::csum_sum(s, hlen & 0x3c, 0) as u64
        + A::pseudo_sum(&ip.saddr, &ip.daddr) as u64
        + TCP.to_be() as u64
        + (hlen as u16).to_be() as u64;
    // TCP has no "no checksum": 0 stays 0 (its twin would be as right).
    store16(s.add(16), !checksum::fold16(sum));
}

/// Turns the L2 and L3 headers around (the L4 header and payload, `l4_len` bytes, are the
/// answer's already) and sends the packet back to the client.
#[inline(always)]
unsafe fn send_back<A: Family>(
    skb: *mut SkBuff,
    ip: &Ip<A>,
    l4_len: u32,
    lo: bool,
    outcome: Outcome,
) -> (Outcome, i32) {
    if packet::turn(skb, ip, l4_len).is_err() {
        return (Outcome::Failed, TC_ACT_SHOT);
    }
    let action = if lo {
        kernel::set_mark(skb, MARK_TURNED);
        kernel::redirect(config!(lo_ifindex), BPF_F_INGRESS)
    } else {
        kernel::redirect(config!(iface_ifindex), BPF_F_INGRESS)
    };
    if action == TC_ACT_SHOT {
        return (Outcome::Failed, action);
    }
    (outcome, action)
}

/// On lo's ingress, with decisions in force: the second and third passes of an answer (see the
/// module's doc). `None` for any other packet, which the program then reads as usual; the
/// third pass is one (an answer from the resolver, for a watcher), its mark cleared.
#[inline(always)]
pub unsafe fn lo_pass(skb: *mut SkBuff) -> Option<(Outcome, i32)> {
    if !rules::decides() {
        return None;
    }
    let mark = kernel::mark(skb);
    if mark == MARK_TURNED {
        kernel::set_mark(skb, MARK_ROUTED);
        let action = kernel::redirect_neigh(config!(lo_ifindex));
        if action == TC_ACT_SHOT {
            return Some((Outcome::Failed, action));
        }
        return Some((Outcome::Delivered, action));
    }
    if mark == MARK_ROUTED {
        kernel::set_mark(skb, 0);
    }
    None
}

/// A decision that answers: not routed.
#[inline(always)]
pub fn answers(verdict: &Verdict) -> bool {
    matches!(
        verdict.decision,
        DECISION_BLOCK | DECISION_ANSWER | DISALLOW
    )
}
