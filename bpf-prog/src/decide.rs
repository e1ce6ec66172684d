//! The steps the query programs share (lo's [`query`](crate::query), and the nameservers path's
//! [`egress`](crate::egress) for IPv4 and IPv6): the decision on a DNS query once its
//! destination is one taken over, the start of its flow, and the outcome of its rewrite.

use crate::config::config;
use crate::counters::Outcome;
use crate::events;
use crate::flows::{self, Entry};
use crate::kernel::{MapDef, SkBuff, TC_ACT_SHOT, TC_ACT_UNSPEC};
use crate::net::dns;
use crate::net::packet::{Ipv4, Patch, RewriteError, TCP_ACK, TCP_SYN};
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
            return Err(Outcome::KeptForDockerd);
        }
        // After the name walk: before it, LLVM spilled an undefined register.
        rule = rules::check_at(skb, l4_off);
        if rule.keeps() {
            if let Some(ip) = kept_event {
                events::query(skb, ip, kept_path);
            }
            return Err(Outcome::KeptByRule(rule));
        }
        dns_id = query.id;
        clamp = query.edns_size.and_then(edns_clamp);
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
    /// Records the query's flow in `table` (its key: the client's port `sport`, the DNS id and
    /// `proto`), or for a later TCP segment finds it (see [`flows::on_query_in`]).
    #[inline(always)]
    pub unsafe fn start_flow<V: Entry>(
        &self,
        table: &MapDef,
        sport: u16,
        proto: u8,
        tcp_flags: u8,
        value: &V,
    ) -> Result<(), Outcome> {
        let key = flows::key(sport, self.dns_id, proto);
        flows::on_query_in(table, &key, value, self.udp || self.syn, tcp_flags)
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
    if max == 0 || u16::from_be(size.raw) <= u16::from_be(max) {
        return None;
    }
    Some(Patch {
        off: size.off,
        old: size.raw,
        new: max,
    })
}
