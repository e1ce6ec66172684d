//! The egress program's IPv6 half (nameservers path): a query to one of the IPv6 nameservers
//! taken over goes to the IPv6 upstream instead, source unchanged. Without an IPv6 upstream
//! (`upstream6_port` 0) every IPv6 packet passes untouched.

use crate::config::config;
use crate::counters::Outcome;
use crate::flows;
use crate::kernel::{SkBuff, TC_ACT_SHOT, TC_ACT_UNSPEC};
use crate::net::dns;
use crate::net::ipv6::{self, Addr6, Ipv6};
use crate::net::packet::{RewriteError, IPPROTO_TCP, IPPROTO_UDP, TCP_ACK, TCP_SYN};
use crate::query::edns_clamp;
use crate::rules::{self, Rule};
use dnsredir_abi::{FlowValue6, MAX_NAMESERVERS};

const PASS: (Outcome, i32) = (Outcome::Passed, TC_ACT_UNSPEC);

/// One word of the configuration's IPv6 nameserver table.
#[inline(always)]
fn nameserver_word(i: usize) -> u32 {
    unsafe { core::ptr::read_volatile(&crate::config::CONFIG.nameservers6[i]) }
}

/// The configured IPv6 upstream.
#[inline(always)]
pub fn upstream() -> Addr6 {
    let mut a = [0u32; 4];
    let mut i = 0;
    while i < 4 {
        a[i] = unsafe { core::ptr::read_volatile(&crate::config::CONFIG.upstream6_addr[i]) };
        i += 1;
    }
    a
}

/// The interface's IPv6 address in the configuration.
#[inline(always)]
pub fn container() -> Addr6 {
    let mut a = [0u32; 4];
    let mut i = 0;
    while i < 4 {
        a[i] = unsafe { core::ptr::read_volatile(&crate::config::CONFIG.container6_addr[i]) };
        i += 1;
    }
    a
}

/// One of the IPv6 nameservers taken over, by address and port (raw, as in the packet).
#[inline(always)]
fn is_nameserver(addr: &Addr6, port: u16) -> bool {
    let count = config!(nameserver6_count) as usize;
    let mut i = 0;
    while i < MAX_NAMESERVERS {
        let p = unsafe { core::ptr::read_volatile(&crate::config::CONFIG.nameserver6_ports[i]) };
        let w = i * 4;
        if i < count
            && p == port
            && p != 0
            && nameserver_word(w) == addr[0]
            && nameserver_word(w + 1) == addr[1]
            && nameserver_word(w + 2) == addr[2]
            && nameserver_word(w + 3) == addr[3]
        {
            return true;
        }
        i += 1;
    }
    false
}

/// The egress program for an IPv6 packet (the caller saw that the frame is not IPv4).
#[inline(always)]
pub unsafe fn egress(skb: *mut SkBuff) -> (Outcome, i32) {
    if config!(upstream6_port) == 0 {
        return PASS;
    }
    let Some(ip) = Ipv6::parse(skb) else {
        return PASS;
    };
    if !is_nameserver(&ip.daddr, ip.dport) {
        return PASS;
    }
    let udp = match ip.proto {
        IPPROTO_UDP => true,
        // With --only, TCP stays with the nameserver: the name is not known at the SYN.
        IPPROTO_TCP if !rules::only() => false,
        _ => return PASS,
    };
    let mut dns_id = 0;
    let mut clamp = None;
    let mut rule = Rule::Default;
    if udp {
        let Some(query) = dns::query_at(skb, Ipv6::L4_OFF) else {
            return PASS;
        };
        // After the name walk, as in query.rs. No event: the event header has no room for an
        // IPv6 client.
        rule = rules::check_at(skb, Ipv6::L4_OFF);
        if rule.keeps() {
            return (Outcome::KeptByRule(rule), TC_ACT_UNSPEC);
        }
        dns_id = query.id;
        clamp = query.edns_size.and_then(edns_clamp);
    }
    let syn = !udp && ip.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN;
    let key = flows::key(ip.sport, dns_id, ip.proto);
    let value = FlowValue6 {
        closing_since_ns: 0,
        resolver_addr: ip.daddr,
        resolver_port: ip.dport,
        pad0: 0,
        pad1: 0,
    };
    if let Err(outcome) = flows::on_query_in(&flows::FLOWS6, &key, &value, udp || syn, ip.tcp_flags)
    {
        return (outcome, TC_ACT_UNSPEC);
    }
    let rewrite = ipv6::Rewrite6 {
        saddr: ip.saddr,
        daddr: upstream(),
        sport: ip.sport,
        dport: config!(upstream6_port),
    };
    match ipv6::rewrite(skb, &ip, &rewrite, clamp.as_ref()) {
        Ok(()) => {}
        Err(RewriteError::Untouched) => return (Outcome::Failed, TC_ACT_UNSPEC),
        Err(RewriteError::Broken) => return (Outcome::Failed, TC_ACT_SHOT),
    }
    let outcome = if udp {
        Outcome::RedirectedUdp {
            clamped: clamp.is_some(),
            rule,
        }
    } else {
        Outcome::RedirectedTcp { syn }
    };
    (outcome, TC_ACT_UNSPEC)
}
