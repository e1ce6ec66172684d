//! The reply program's IPv6 half (nameservers path): the IPv6 upstream's answer to a redirected
//! query comes back from the nameserver the client asked, in place.

use crate::config::config;
use crate::counters::{Outcome, PASS};
use crate::decide::rewritten;
use crate::egress6;
use crate::flows;
use crate::kernel::{SkBuff, TC_ACT_UNSPEC};
use crate::net::ipv6::{self, Ipv6};
use dnsredir_abi::{FlowValue6, PATH_NAMESERVERS};

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
    // No fragments: a fragment has a fragment header, which `parse` refuses.
    let flow: FlowValue6 = match flows::on_reply(
        &flows::FLOWS6,
        skb,
        Ipv6::L4_OFF,
        ip.proto,
        ip.dport,
        ip.tcp_flags,
        false,
    ) {
        Ok(flow) => flow,
        Err(Outcome::Passed) => return PASS,
        Err(outcome) => return (outcome, TC_ACT_UNSPEC),
    };
    let rewrite = ipv6::Rewrite6 {
        saddr: flow.resolver_addr,
        daddr: ip.daddr,
        sport: flow.resolver_port,
        dport: ip.dport,
    };
    if let Err(failed) = rewritten(ipv6::rewrite(skb, &ip, &rewrite, None)) {
        return failed;
    }
    (Outcome::Restored, TC_ACT_UNSPEC)
}
