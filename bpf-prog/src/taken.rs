//! Which servers the nameservers path takes over: the nameservers of the configuration's table,
//! or with `--resolver any` any server on port 53. Shared by the egress programs (which queries
//! to redirect), the reply program (whose answers are a server's own) and the flows (where an
//! answer is restored from).

use crate::config::{self, config};
use crate::net::ipv6::{Addr6, Ipv6};
use crate::net::packet::Ipv4;
use dnsredir_abi::{FLAG_ANY_RESOLVER, MAX_NAMESERVERS};

/// The DNS port as it sits in a packet.
pub const DNS_PORT: u16 = 53u16.to_be();

/// `--resolver any` is in force. A frozen flag: the verifier drops the matcher not in force,
/// so the nameserver table costs an any-resolver attachment nothing, and the other way round;
/// what stays is the flag's load, once per packet where it is asked.
#[inline(always)]
pub fn any_resolver() -> bool {
    config!(flags) & FLAG_ANY_RESOLVER != 0
}

/// A server whose queries are taken over, by address and port (both raw): one of the
/// nameservers, or with `--resolver any` any server (see [`any_server`]).
#[inline(always)]
pub fn is_taken(addr: u32, port: u16) -> bool {
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
pub fn origin(ip: &Ipv4) -> u32 {
    if any_resolver() {
        if ip.saddr == config!(container_addr) && any_server(ip.daddr, ip.dport) {
            return ip.daddr;
        }
        return NOT_TAKEN;
    }
    nameserver(ip.daddr, ip.dport)
}

/// [`origin`]'s and [`origin6`]'s answer for a server not taken over.
pub const NOT_TAKEN: u32 = u32::MAX;

/// The index in the configuration's table of the nameserver taken over at this address and
/// port (both raw, as in the packet), or [`NOT_TAKEN`]. A plain value, not an `Option`: LLVM
/// may keep a `None`'s undefined payload in a register the verifier refuses (see rules.rs's
/// `NO_RULE`).
#[inline(always)]
fn nameserver(addr: u32, port: u16) -> u32 {
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

/// One word of the configuration's IPv6 nameserver table.
#[inline(always)]
fn nameserver_word(i: usize) -> u32 {
    unsafe { core::ptr::read_volatile(&crate::config::CONFIG.nameservers6[i]) }
}

/// The index of the IPv6 nameserver taken over at this address and port (raw, as in the
/// packet), or [`NOT_TAKEN`].
#[inline(always)]
fn nameserver6(addr: &Addr6, port: u16) -> u32 {
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

/// [`origin`] for IPv6: for a query in `ip` to a server taken over, the index its flow keeps: one of the IPv6
/// nameservers', or with `--resolver any` 0 (the flow keeps the server's address itself) for
/// any server on port 53 but the IPv6 upstream and the interface's address, from the
/// interface's address only (as for IPv4: answers are restored to it alone; a link-local or
/// temporary source would lose its answer); else [`NOT_TAKEN`].
#[inline(always)]
pub fn origin6(ip: &Ipv6) -> u32 {
    if any_resolver() {
        let own = config::container6();
        let any = ip.dport == DNS_PORT
            && ip.saddr == own
            && ip.daddr != own
            && !(ip.dport == config!(upstream6_port) && ip.daddr == config::upstream6());
        return if any { 0 } else { NOT_TAKEN };
    }
    nameserver6(&ip.daddr, ip.dport)
}
