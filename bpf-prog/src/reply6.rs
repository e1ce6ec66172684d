//! The reply program's IPv6 half (nameservers path): the IPv6 upstream's answer to a redirected
//! query comes back from the nameserver the client asked, in place.

use crate::config::config;
use crate::counters::Outcome;
use crate::egress6;
use crate::flows;
use crate::kernel::{SkBuff, TC_ACT_SHOT, TC_ACT_UNSPEC};
use crate::net::dns;
use crate::net::ipv6::{self, Ipv6};
use crate::net::packet::{RewriteError, IPPROTO_UDP};
use dnsredir_abi::{FlowValue6, PATH_NAMESERVERS};

const PASS: (Outcome, i32) = (Outcome::Passed, TC_ACT_UNSPEC);

/// The reply program for an IPv6 packet (the caller saw that the frame is not IPv4).
#[inline(always)]
pub unsafe fn reply(skb: *mut SkBuff) -> (Outcome, i32) {
    if config!(path) != PATH_NAMESERVERS || config!(upstream6_port) == 0 {
        return PASS;
    }
    let Some(ip) = Ipv6::parse(skb) else {
        return PASS;
    };
    if ip.sport != config!(upstream6_port)
        || ip.saddr != egress6::upstream()
        || ip.daddr != egress6::container()
    {
        return PASS;
    }
    let udp = ip.proto == IPPROTO_UDP;
    let dns_id = if udp {
        match dns::id_at(skb, Ipv6::L4_OFF) {
            Some(id) => id,
            None => return PASS,
        }
    } else {
        0
    };
    let key = flows::key(ip.dport, dns_id, ip.proto);
    let found: *mut FlowValue6 = flows::find_in(&flows::FLOWS6, &key);
    if found.is_null() {
        return (Outcome::UnknownFlow, TC_ACT_UNSPEC);
    }
    let flow = *found;
    if udp {
        flows::forget_in(&flows::FLOWS6, &key);
    } else {
        if flows::closed_since(flow.closing_since_ns) {
            flows::forget_in(&flows::FLOWS6, &key);
            return (Outcome::UnknownFlow, TC_ACT_UNSPEC);
        }
        flows::track_close_in(&flows::FLOWS6, found, &key, ip.tcp_flags);
    }
    let rewrite = ipv6::Rewrite6 {
        saddr: flow.resolver_addr,
        daddr: ip.daddr,
        sport: flow.resolver_port,
        dport: ip.dport,
    };
    match ipv6::rewrite(skb, &ip, &rewrite, None) {
        Ok(()) => {}
        Err(RewriteError::Untouched) => return (Outcome::Failed, TC_ACT_UNSPEC),
        Err(RewriteError::Broken) => return (Outcome::Failed, TC_ACT_SHOT),
    }
    (Outcome::Restored, TC_ACT_UNSPEC)
}
