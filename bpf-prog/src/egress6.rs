//! The egress program's IPv6 half (nameservers path): a query to one of the IPv6 nameservers
//! taken over (with `--resolver any`, to any IPv6 server on port 53) goes to the IPv6 upstream
//! instead, source unchanged. Without an IPv6 upstream (`upstream6_port` 0) every IPv6 packet
//! passes untouched.

use crate::config::{self, config};
use crate::counters::{Outcome, PASS};
use crate::decide;
use crate::kernel::{SkBuff, TC_ACT_UNSPEC};
use crate::net::ipv6::{Addr6, Ipv6};
use crate::taken::{any_resolver, DNS_PORT, NOT_TAKEN};
use dnsredir_abi::{MAX_NAMESERVERS, ROUTE_NAMESERVER};

/// One word of the configuration's IPv6 nameserver table.
#[inline(always)]
fn nameserver_word(i: usize) -> u32 {
    unsafe { core::ptr::read_volatile(&crate::config::CONFIG.nameservers6[i]) }
}

/// The index of the IPv6 nameserver taken over at this address and port (raw, as in the
/// packet), or [`NOT_TAKEN`].
#[inline(always)]
fn nameserver(addr: &Addr6, port: u16) -> u32 {
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
            return i as u32;
        }
        i += 1;
    }
    NOT_TAKEN
}

/// For a query in `ip` to a server taken over, the index its flow keeps: one of the IPv6
/// nameservers', or with `--resolver any` 0 (the flow keeps the server's address itself) for
/// any server on port 53 but the IPv6 upstream and the interface's address, from the
/// interface's address only (as for IPv4: answers are restored to it alone; a link-local or
/// temporary source would lose its answer); else [`NOT_TAKEN`].
#[inline(always)]
fn taken(ip: &Ipv6) -> u32 {
    if any_resolver() {
        let own = config::container6();
        let any = ip.dport == DNS_PORT
            && ip.saddr == own
            && ip.daddr != own
            && !(ip.dport == config!(upstream6_port) && ip.daddr == config::upstream6());
        return if any { 0 } else { NOT_TAKEN };
    }
    nameserver(&ip.daddr, ip.dport)
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
    let nameserver = taken(&ip);
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
