//! The steps the query programs share (lo's [`query`](crate::query), and the nameservers path's
//! [`egress`](crate::egress) for IPv4 and IPv6): the decision on a DNS query once its
//! destination is one taken over, the start of its flow, and the outcome of its rewrite.

use crate::answer;
use crate::config::config;
use crate::counters::Outcome;
use crate::counters::PASS;
use crate::family::Family;
use crate::flows;
use crate::kernel::{self, SkBuff, TC_ACT_SHOT, TC_ACT_UNSPEC};
use crate::net::dns;
use crate::net::packet::{
    self, Ip, Patch, Ports, Proto, RewriteError, TCP_ACK, TCP_MIN_HLEN, TCP_RST, TCP_SYN, UDP_HLEN,
};
use crate::rules::{self, Rule};
use dnsredir_abi::{FLAG_NO_UPSTREAM, ROUTE_DISALLOWED};

/// A query to redirect: what its flow, its rewrite and its count need.
pub struct DnsQuery {
    pub udp: bool,
    /// The TCP segment opens a connection (a SYN without ACK); false for UDP.
    pub syn: bool,
    /// The DNS id; 0 for TCP (the name is not known at the SYN).
    pub dns_id: u16,
    pub clamp: Option<Patch>,
    pub rule: Rule,
    /// The TCP flags the segment leaves with: its own, or RST|ACK once the program reset the
    /// connection (the segment is then the client's RST to the server, see [`answer::reset`]).
    pub tcp_flags: u8,
    pub reset: bool,
}

/// Decides on a UDP (`udp`) or TCP query in `ip` to a server taken over: `Ok` with the query to
/// redirect, `Err` with the program's answer for one it leaves alone or answers itself (`lo`:
/// on lo's ingress, else on the interface's egress; see [`answer`]).
///
/// A UDP query needs a readable DNS header; one with a single-label name stays where it was
/// going when `keep_single_label`, and so does one a name rule keeps, with a `PATH_` event
/// `kept_path` (IPv4 only). With decisions in force (`--block`, `--allow`, `--answer`), the
/// rules' decision comes first; TCP segments carrying data are read too (see [`tcp_check`]).
#[inline(always)]
pub unsafe fn decide<A: Family>(
    skb: *mut SkBuff,
    ip: &Ip<A>,
    udp: bool,
    keep_single_label: bool,
    kept_path: u8,
    lo: bool,
) -> Result<DnsQuery, (Outcome, i32)> {
    let decides = rules::decides();
    // A message partly outside the linear data would not be read, and a decision not taken.
    // TCP's payload is in page fragments as a rule; a UDP query is linear as a rule, and then
    // the helper call is not made.
    if decides {
        let (data, end) = kernel::packet_bounds(skb);
        let len = kernel::len(skb);
        if (end as usize).wrapping_sub(data as usize) < len as usize
            && kernel::skb_pull_data(skb, len) != 0
        {
            return Err((Outcome::Failed, TC_ACT_SHOT));
        }
    }
    let redirects = config!(flags) & FLAG_NO_UPSTREAM == 0 && A::upstream().1 != 0;
    let mut dns_id = 0;
    let mut clamp = None;
    let mut rule = Rule::Default;
    let mut tcp_flags = ip.tcp_flags;
    let mut reset = false;
    if udp {
        let dns_off = ip.l4_off + UDP_HLEN as u32;
        let Some(query) = dns::query_at(skb, dns_off) else {
            if rules::refuses_unreadable() {
                return Err((Outcome::Answered(ROUTE_DISALLOWED), TC_ACT_SHOT));
            }
            return Err(PASS);
        };
        let single = keep_single_label && query.single_label;
        if single && !decides {
            A::sent(skb, ip, kept_path);
            return Err((Outcome::Kept(Rule::Default), TC_ACT_UNSPEC));
        }
        // After the name walk: before it, LLVM spilled an undefined register.
        let verdict = rules::check_at(skb, dns_off, single, query.plain);
        if answer::answers(&verdict) {
            return Err(answer::udp(skb, ip, dns_off, &query, &verdict, lo));
        }
        if single {
            A::sent(skb, ip, kept_path);
            return Err((Outcome::Kept(Rule::Default), TC_ACT_UNSPEC));
        }
        rule = verdict.rule;
        if rule.keeps() || !redirects {
            A::sent(skb, ip, kept_path);
            return Err((Outcome::Kept(rule), TC_ACT_UNSPEC));
        }
        dns_id = query.id;
        clamp = edns_clamp(query.edns_size);
    } else if decides {
        if let Some(payload) = tcp_check(skb, ip, keep_single_label) {
            answer::reset(skb, ip, payload, lo)?;
            tcp_flags = TCP_RST | TCP_ACK;
            reset = true;
        }
    }
    // With --only, TCP stays where it was going: the name is not known at the SYN.
    if !udp && (rules::only() || !redirects) {
        if reset {
            return Err((Outcome::Reset, TC_ACT_UNSPEC));
        }
        return Err(PASS);
    }
    Ok(DnsQuery {
        udp,
        syn: !udp && tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN,
        dns_id,
        clamp,
        rule,
        tcp_flags,
        reset,
    })
}

/// With decisions in force, a TCP segment from the client that carries data: `None` if it is
/// exactly one whole DNS message whose name no decision answers (it goes on as before), else
/// its payload's length: the connection is to be reset (a query a decision covers, or one the
/// program cannot decide: split across segments, or pipelined behind another in one segment).
#[inline(always)]
unsafe fn tcp_check<A: Family>(
    skb: *const SkBuff,
    ip: &Ip<A>,
    keep_single_label: bool,
) -> Option<u32> {
    let l4_len = packet::l4_len(skb, ip)?;
    let (data, end) = kernel::packet_bounds(skb);
    let l4 = data.add((ip.l4_off & 0xff) as usize);
    if l4.add(TCP_MIN_HLEN) as *const u8 > end {
        return None;
    }
    let hlen = ((*l4.add(12) >> 4) as u32) * 4;
    if l4_len <= hlen {
        // No data: the handshake, ACKs, FINs.
        return None;
    }
    let payload = l4_len - hlen;
    let prefix = l4.add((hlen & 0x3c) as usize);
    let whole = prefix.add(2) as *const u8 <= end && {
        let len = u16::from_be(packet::load16(prefix)) as u32;
        len >= dns::DNS_HLEN as u32 && payload == len + 2
    };
    if whole {
        let dns_off = ip.l4_off + hlen + 2;
        if let Some(query) = dns::query_at(skb, dns_off) {
            let single = keep_single_label && query.single_label;
            let verdict = rules::check_at(skb, dns_off, single, query.plain);
            if !answer::answers(&verdict) {
                return None;
            }
        }
    }
    Some(payload)
}

impl DnsQuery {
    /// Records the flow of the query in `ip` (its key: the client's port, the DNS id and the
    /// protocol; its value: `origin`), or for a later TCP segment finds it (see
    /// [`flows::on_query`]).
    #[inline(always)]
    unsafe fn start_flow<A: Family>(&self, ip: &Ip<A>, origin: u32) -> Result<(), Outcome> {
        let key = flows::key(ip.sport, self.dns_id, ip.proto);
        let starts = self.udp || self.syn;
        flows::on_query(&key, A::flow(ip, origin), starts, self.tcp_flags)
    }

    /// The count of the query once redirected.
    #[inline(always)]
    pub fn redirected(&self) -> Outcome {
        if self.reset {
            Outcome::Reset
        } else if self.udp {
            Outcome::RedirectedUdp {
                clamped: self.clamp.is_some(),
                rule: self.rule,
            }
        } else {
            Outcome::RedirectedTcp { syn: self.syn }
        }
    }
}

/// Starts the flow of `query` in `ip` with `origin` (see `FlowValue::origin`), sends it to the
/// upstream from `saddr` (through the container's interface when `neigh`, else on out of the
/// interface it is leaving) and writes its `PATH_` event `path`: the program's answer. A plain
/// answer, not a `Result` around one: LLVM spilled the undefined payload of its `Ok`, which
/// the verifier refused.
#[inline(always)]
pub unsafe fn redirect<A: Family>(
    skb: *mut SkBuff,
    ip: &Ip<A>,
    query: &DnsQuery,
    origin: u32,
    saddr: A,
    neigh: bool,
    path: u8,
) -> (Outcome, i32) {
    if let Err(outcome) = query.start_flow(ip, origin) {
        // A reset of a connection dnsredir does not track (older than the attach): its RST
        // goes where the connection goes, untouched.
        if query.reset {
            return (Outcome::Reset, TC_ACT_UNSPEC);
        }
        return (outcome, TC_ACT_UNSPEC);
    }
    let (daddr, dport) = A::upstream();
    let rewrite = Ports {
        saddr,
        daddr,
        sport: ip.sport,
        dport,
    };
    if let Err(failed) = rewritten(packet::rewrite(skb, ip, &rewrite, query.clamp.as_ref())) {
        return failed;
    }
    let mut action = TC_ACT_UNSPEC;
    if neigh {
        action = kernel::redirect_neigh(config!(iface_ifindex));
        if action == TC_ACT_SHOT {
            return (Outcome::Failed, action);
        }
    }
    A::sent(skb, ip, path);
    (query.redirected(), action)
}

/// A rewrite's failure as the program's answer: a packet left untouched goes on, a broken one
/// is dropped.
#[inline(always)]
pub fn rewritten(result: Result<(), RewriteError>) -> Result<(), (Outcome, i32)> {
    match result {
        Ok(()) => Ok(()),
        Err(RewriteError::Untouched) => Err((Outcome::Failed, TC_ACT_UNSPEC)),
        Err(RewriteError::Broken) => Err((Outcome::Failed, TC_ACT_SHOT)),
    }
}

/// The change that lowers an EDNS payload size above `edns_max` to it: larger answers would
/// come fragmented, and fragments cannot be restored (see the reply program).
#[inline(always)]
fn edns_clamp(size: dns::EdnsSize) -> Option<Patch> {
    let max = config!(edns_max);
    if size.off == 0 || max == 0 || u16::from_be(size.raw) <= u16::from_be(max) {
        return None;
    }
    Some(Patch {
        off: size.off,
        old: size.raw,
        new: max,
    })
}

/// Whether a query to a nameserver taken over is UDP (or TCP); `None` for a packet to pass.
/// With --only, TCP stays with the nameserver (the name is not known at the SYN), and is only
/// read with decisions in force.
#[inline(always)]
pub fn udp_or_tcp(proto: Proto) -> Option<bool> {
    match proto {
        Proto::Udp => Some(true),
        Proto::Tcp if !rules::only() || rules::decides() => Some(false),
        Proto::Tcp => None,
    }
}
