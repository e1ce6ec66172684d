//! The steps the query programs share (lo's [`query`](crate::query), and the nameservers path's
//! [`egress`](crate::egress) for IPv4 and IPv6): the decision on a DNS query once its
//! destination is one taken over, the start of its flow, and the outcome of its rewrite.

use crate::config::config;
use crate::counters::Outcome;
use crate::events;
use crate::family::Family;
use crate::flows;
use crate::kernel::{self, SkBuff, TC_ACT_SHOT, TC_ACT_UNSPEC};
use crate::net::dns;
use crate::net::packet::{self, Ip, Ipv4, Patch, Ports, Proto, RewriteError, TCP_ACK, TCP_SYN};
use crate::rules::{self, Rule};

/// A query to redirect: what its flow, its rewrite and its count need.
pub struct DnsQuery {
    pub udp: bool,
    /// The TCP segment opens a connection (a SYN without ACK); false for UDP.
    pub syn: bool,
    /// The DNS id; 0 for TCP (the name is not known at the SYN).
    pub dns_id: u16,
    pub clamp: Option<Patch>,
    pub rule: Rule,
}

/// Decides on a UDP (`udp`) or TCP query whose L4 header is at `l4_off`: `Err` with the outcome
/// of a packet left alone. A UDP query needs a readable DNS header; one with a single-label
/// name stays where it was going when `keep_single_label`, and so does one a name rule keeps,
/// with a `PATH_` event `kept_path` for the query in `kept_event` (none without).
#[inline(always)]
pub unsafe fn decide(
    skb: *const SkBuff,
    l4_off: u32,
    udp: bool,
    tcp_flags: u8,
    keep_single_label: bool,
    kept_event: Option<&Ipv4>,
    kept_path: u8,
) -> Result<DnsQuery, Outcome> {
    let mut dns_id = 0;
    let mut clamp = None;
    let mut rule = Rule::Default;
    if udp {
        let Some(query) = dns::query_at(skb, l4_off) else {
            return Err(Outcome::Passed);
        };
        if keep_single_label && query.single_label {
            if let Some(ip) = kept_event {
                events::query(skb, ip, kept_path);
            }
            return Err(Outcome::Kept(Rule::Default));
        }
        // After the name walk: before it, LLVM spilled an undefined register.
        rule = rules::check_at(skb, l4_off);
        if rule.keeps() {
            if let Some(ip) = kept_event {
                events::query(skb, ip, kept_path);
            }
            return Err(Outcome::Kept(rule));
        }
        dns_id = query.id;
        clamp = edns_clamp(query.edns_size);
    }
    Ok(DnsQuery {
        udp,
        syn: !udp && tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN,
        dns_id,
        clamp,
        rule,
    })
}

impl DnsQuery {
    /// Records the flow of the query in `ip` (its key: the client's port, the DNS id and the
    /// protocol; its value: `origin`), or for a later TCP segment finds it (see
    /// [`flows::on_query`]).
    #[inline(always)]
    unsafe fn start_flow<A: Family>(&self, ip: &Ip<A>, origin: u32) -> Result<(), Outcome> {
        let key = flows::key(ip.sport, self.dns_id, ip.proto);
        let starts = self.udp || self.syn;
        flows::on_query(&key, &A::flow(ip, origin), starts, ip.tcp_flags)
    }

    /// The count of the query once redirected.
    #[inline(always)]
    pub fn redirected(&self) -> Outcome {
        if self.udp {
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
/// With --only, TCP stays with the nameserver: the name is not known at the SYN.
#[inline(always)]
pub fn udp_or_tcp(proto: Proto) -> Option<bool> {
    match proto {
        Proto::Udp => Some(true),
        Proto::Tcp if !rules::only() => Some(false),
        Proto::Tcp => None,
    }
}
