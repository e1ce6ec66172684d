//! What the steps the programs share ([`decide::redirect`](crate::decide::redirect),
//! [`restore`](crate::restore)) do differently for IPv4 and IPv6, beyond the headers
//! ([`Addr`]): where queries go, what their flows remember, how answers come back, and what a
//! watcher sees.

use crate::config::{self, config};
use crate::events;
use crate::flows::Entry;
use crate::kernel::SkBuff;
use crate::net::ipv6::{Addr6, Ipv6};
use crate::net::packet::{Addr, Ip, Ipv4, Ports};
use dnsredir_abi::{FlowValue, FlowValue6};

/// An address family: IPv4 (`u32`) or IPv6 ([`Addr6`]).
pub trait Family: Addr {
    /// An entry of the family's flow table.
    type Flow: Entry + Copy;
    /// The upstream's address and port.
    fn upstream() -> (Self, u16);
    /// The entry of a redirected `query`'s flow: what its answers need to get back.
    fn flow(query: &Ip<Self>) -> Self::Flow;
    /// The addresses and ports that make `reply`, an answer to `flow`, come from where its
    /// query was going.
    fn restored(reply: &Ip<Self>, flow: &Self::Flow) -> Ports<Self>;
    /// Writes the event of `query`, sent on its `path` (see [`events::query`]).
    unsafe fn sent(skb: *const SkBuff, query: &Ip<Self>, path: u8);
}

impl Family for u32 {
    type Flow = FlowValue;

    #[inline(always)]
    fn upstream() -> (u32, u16) {
        (config!(upstream_addr), config!(upstream_port))
    }

    #[inline(always)]
    fn flow(query: &Ipv4) -> FlowValue {
        FlowValue {
            closing_since_ns: 0,
            client_addr: query.saddr,
            resolver_addr: query.daddr,
            resolver_port: query.dport,
            pad0: 0,
            pad1: 0,
        }
    }

    #[inline(always)]
    fn restored(reply: &Ipv4, flow: &FlowValue) -> Ports<u32> {
        Ports {
            saddr: flow.resolver_addr,
            daddr: flow.client_addr,
            sport: flow.resolver_port,
            dport: reply.dport,
        }
    }

    #[inline(always)]
    unsafe fn sent(skb: *const SkBuff, query: &Ipv4, path: u8) {
        events::query(skb, query, path);
    }
}

/// Only on the nameservers path.
impl Family for Addr6 {
    type Flow = FlowValue6;

    #[inline(always)]
    fn upstream() -> (Addr6, u16) {
        (config::upstream6(), config!(upstream6_port))
    }

    /// No client address: the redirect never changes it, it stays the answers' destination.
    #[inline(always)]
    fn flow(query: &Ipv6) -> FlowValue6 {
        FlowValue6 {
            closing_since_ns: 0,
            resolver_addr: query.daddr,
            resolver_port: query.dport,
            pad0: 0,
            pad1: 0,
        }
    }

    #[inline(always)]
    fn restored(reply: &Ipv6, flow: &FlowValue6) -> Ports<Addr6> {
        Ports {
            saddr: flow.resolver_addr,
            daddr: reply.daddr,
            sport: flow.resolver_port,
            dport: reply.dport,
        }
    }

    /// None: the event header has no room for an IPv6 client.
    #[inline(always)]
    unsafe fn sent(_: *const SkBuff, _: &Ipv6, _: u8) {}
}
