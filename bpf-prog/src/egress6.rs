//! The egress program's IPv6 half (nameservers path): a query to one of the IPv6 nameservers
//! taken over (with `--resolver any`, to any IPv6 server on port 53) goes to the IPv6 upstream
//! instead, source unchanged. Without an IPv6 upstream (`upstream6_port` 0) only decisions
//! (`--block`, `--allow`, `--answer`) touch IPv6 queries; without those either, every IPv6
//! packet passes untouched.

use crate::config::config;
use crate::counters::{Outcome, PASS};
use crate::decide;
use crate::kernel::SkBuff;
use crate::net::ipv6::Ipv6;
use crate::rules;
use crate::taken::{self, NOT_TAKEN};
use dnsredir_abi::{ROUTE_NAMESERVER, ROUTE_NAMESERVER_KEPT};

/// The egress program for an IPv6 packet (the caller saw that the frame is not IPv4).
#[inline(always)]
pub unsafe fn egress(skb: *mut SkBuff) -> (Outcome, i32) {
    if config!(upstream6_port) == 0 && !rules::decides() {
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
    // No events: the event header has no room for an IPv6 client.
    let query = match decide::decide(skb, &ip, udp, false, ROUTE_NAMESERVER_KEPT, false) {
        Ok(query) => query,
        Err(done) => return done,
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
