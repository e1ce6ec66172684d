//! The egress program's IPv6 half (nameservers path): a query to one of the IPv6 nameservers
//! taken over (with `--resolver any`, to any IPv6 server on port 53) goes to the IPv6 upstream
//! instead, source unchanged. Without an IPv6 upstream (`upstream6_port` 0) every IPv6 packet
//! passes untouched.

use crate::config::config;
use crate::counters::{Outcome, PASS};
use crate::decide;
use crate::kernel::{SkBuff, TC_ACT_UNSPEC};
use crate::net::ipv6::Ipv6;
use crate::taken::{self, NOT_TAKEN};
use dnsredir_abi::ROUTE_NAMESERVER;

/// The egress program for an IPv6 packet (the caller saw that the frame is not IPv4).
#[inline(always)]
pub unsafe fn egress(skb: *mut SkBuff) -> (Outcome, i32) {
    if config!(upstream6_port) == 0 {
        return PASS;
    }
    let Some(ip) = Ipv6::parse(skb) else {
        return PASS;
    };
    let nameserver = taken::origin6(&ip);
    if nameserver == NOT_TAKEN {
        return PASS;
    }
    let Some(udp) = decide::udp_or_tcp(ip.proto) else {
        return PASS;
    };
    // No event for a kept query: the event header has no room for an IPv6 client.
    let query = match decide::decide(skb, ip.l4_off, udp, ip.tcp_flags, false, None, 0) {
        Ok(query) => query,
        Err(outcome) => return (outcome, TC_ACT_UNSPEC),
    };
    decide::redirect(
        skb,
        &ip,
        &query,
        nameserver,
        ip.saddr,
        false,
        ROUTE_NAMESERVER,
    )
}
