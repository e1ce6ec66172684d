//! What the steps the programs share ([`decide::redirect`](crate::decide::redirect),
//! [`restore`](crate::restore)) do differently for IPv4 and IPv6, beyond the headers
//! ([`Addr`]): where queries go, what their flows remember, how answers come back, and what a
//! watcher sees.

use crate::config::{self, config};
use crate::events;
use crate::flows::Entry;
use crate::kernel::SkBuff;
use crate::net::ipv6::{Addr6, Ipv6};
use crate::net::packet::{Addr, Ip, Ipv4, Ports, Proto};
use crate::taken;
use dnsredir_abi::{FlowValue, FlowValue6, PATH_NAMESERVERS};

/// An address family: IPv4 (`u32`) or IPv6 ([`Addr6`]).
pub trait Family: Addr {
    /// An entry of the family's flow table.
    type Flow: Entry;
    /// The upstream's address and port.
    fn upstream() -> (Self, u16);
    /// The entry of the flow of `query`, redirected, whose answers need `origin` to get back
    /// (see [`FlowValue::origin`]).
    fn flow(query: &Ip<Self>, origin: u32) -> Self::Flow;
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
    fn flow(_: &Ipv4, origin: u32) -> FlowValue {
        FlowValue { origin, stamp: 0 }
    }

    /// The nameserver asked (with `--resolver any`, the server asked, on port 53), or Docker's
    /// resolver on dockerd's port of the protocol, which the query program redirects only
    /// queries to.
    #[inline(always)]
    fn restored(reply: &Ipv4, flow: &FlowValue) -> Ports<u32> {
        if config!(path) == PATH_NAMESERVERS {
            let (saddr, sport) = if taken::any_resolver() {
                (flow.origin, taken::DNS_PORT)
            } else {
                config::nameserver(flow.origin)
            };
            return Ports {
                saddr,
                daddr: reply.daddr,
                sport,
                dport: reply.dport,
            };
        }
        Ports {
            saddr: config!(resolver_addr),
            daddr: flow.origin,
            sport: match reply.proto {
                Proto::Udp => config!(dockerd_udp_port),
                Proto::Tcp => config!(dockerd_tcp_port),
            },
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
    /// With `--resolver any` the server asked, which no table holds; else its index.
    #[inline(always)]
    fn flow(query: &Ipv6, nameserver: u32) -> FlowValue6 {
        let any = taken::any_resolver();
        FlowValue6 {
            server: if any { query.daddr } else { [0; 4] },
            nameserver,
            stamp: 0,
        }
    }

    #[inline(always)]
    fn restored(reply: &Ipv6, flow: &FlowValue6) -> Ports<Addr6> {
        let (saddr, sport) = if taken::any_resolver() {
            (flow.server, taken::DNS_PORT)
        } else {
            config::nameserver6(flow.nameserver)
        };
        Ports {
            saddr,
            daddr: reply.daddr,
            sport,
            dport: reply.dport,
        }
    }

    /// None: the event header has no room for an IPv6 client.
    #[inline(always)]
    unsafe fn sent(_: *const SkBuff, _: &Ipv6, _: u8) {}
}
