//! Interface egress, the nameservers path: a query to one of the namespace's own nameservers
//! (resolv.conf without Docker's embedded resolver) goes to the upstream instead; with
//! `--resolver any`, a query to any server on port 53. Only the destination changes; the
//! packet goes on out of the same interface, and the reply program restores the server asked
//! (which the flow remembers) as the answer's source. A query a name rule keeps (`--keep`,
//! `--only`) goes on to its server untouched and is not remembered. With a watcher, each
//! query sent on writes an event (`ROUTE_NAMESERVER`, or `ROUTE_NAMESERVER_KEPT`).

use crate::config::config;
use crate::counters::{Outcome, PASS};
use crate::decide;
use crate::kernel::{SkBuff, TC_ACT_UNSPEC};
use crate::net::packet::Ipv4;
use dnsredir_abi::{
    FLAG_ANY_RESOLVER, MAX_NAMESERVERS, PATH_NAMESERVERS, ROUTE_NAMESERVER, ROUTE_NAMESERVER_KEPT,
};

program!("dnsredir/egress", dnsredir_egress, egress);

/// The DNS port as it sits in a packet.
pub(crate) const DNS_PORT: u16 = 53u16.to_be();

/// `--resolver any` is in force. A frozen flag: the verifier drops the matcher not in force,
/// so the nameserver table costs an any-resolver attachment nothing, and the other way round;
/// what stays is the flag's load, once per packet where it is asked.
#[inline(always)]
pub(crate) fn any_resolver() -> bool {
    config!(flags) & FLAG_ANY_RESOLVER != 0
}

/// A server whose queries are taken over, by address and port (both raw): one of the
/// nameservers, or with `--resolver any` any server (see [`any_server`]).
#[inline(always)]
pub(crate) fn is_taken(addr: u32, port: u16) -> bool {
    if any_resolver() {
        return any_server(addr, port);
    }
    nameserver(addr, port) != NOT_TAKEN
}

/// With `--resolver any`, any server on port 53 but the upstream (what we send, and an
/// application asking it directly keeps its own answer) and the interface's own address.
#[inline(always)]
fn any_server(addr: u32, port: u16) -> bool {
    port == DNS_PORT
        && addr != config!(container_addr)
        && !(addr == config!(upstream_addr) && port == config!(upstream_port))
}

/// For a query in `ip` to a server taken over, what its flow keeps to restore the answer's
/// source ([`FlowValue::origin`](dnsredir_abi::FlowValue::origin)): the nameserver's index, or
/// with `--resolver any` the server's address; else [`NOT_TAKEN`]. With `--resolver any`, only
/// from the interface's address: answers are restored on their way to it alone, so a query
/// from another source (a secondary address) would lose its answer. (A server at
/// 255.255.255.255, [`NOT_TAKEN`]'s value, is no unicast server.)
#[inline(always)]
fn origin(ip: &Ipv4) -> u32 {
    if any_resolver() {
        if ip.saddr == config!(container_addr) && any_server(ip.daddr, ip.dport) {
            return ip.daddr;
        }
        return NOT_TAKEN;
    }
    nameserver(ip.daddr, ip.dport)
}

/// [`nameserver`]'s answer for an address and port that are none of the nameservers.
pub(crate) const NOT_TAKEN: u32 = u32::MAX;

/// The index in the configuration's table of the nameserver taken over at this address and
/// port (both raw, as in the packet), or [`NOT_TAKEN`]. A plain value, not an `Option`: LLVM
/// may keep a `None`'s undefined payload in a register the verifier refuses (see rules.rs's
/// `NO_RULE`).
#[inline(always)]
pub(crate) fn nameserver(addr: u32, port: u16) -> u32 {
    let count = config!(nameserver_count) as usize;
    let mut i = 0;
    while i < MAX_NAMESERVERS {
        // Constant indexes after unrolling: the verifier reads each frozen value.
        let (a, p) = unsafe {
            (
                core::ptr::read_volatile(&crate::config::CONFIG.nameservers[i]),
                core::ptr::read_volatile(&crate::config::CONFIG.nameserver_ports[i]),
            )
        };
        if i < count && a != 0 && a == addr && p == port {
            return i as u32;
        }
        i += 1;
    }
    NOT_TAKEN
}

#[inline(always)]
unsafe fn egress(skb: *mut SkBuff) -> (Outcome, i32) {
    if config!(path) != PATH_NAMESERVERS {
        return PASS;
    }
    let Some(ip) = Ipv4::parse(skb) else {
        return crate::egress6::egress(skb);
    };
    // The rest of a fragmented query would still reach the nameserver: all of it goes there.
    if ip.first_fragment {
        return PASS;
    }
    let origin = origin(&ip);
    if origin == NOT_TAKEN {
        return PASS;
    }
    let Some(udp) = decide::udp_or_tcp(ip.proto) else {
        return PASS;
    };
    let query = match decide::decide(
        skb,
        ip.l4_off,
        udp,
        ip.tcp_flags,
        false,
        Some(&ip),
        ROUTE_NAMESERVER_KEPT,
    ) {
        Ok(query) => query,
        Err(outcome) => return (outcome, TC_ACT_UNSPEC),
    };
    // On out of the same interface; later filters see the rewritten packet.
    decide::redirect(skb, &ip, &query, origin, ip.saddr, false, ROUTE_NAMESERVER)
}
