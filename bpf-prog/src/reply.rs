//! Interface ingress: the upstream's answer to a query that the query (or egress) program
//! redirected is turned back into the resolver's (or nameserver's) and handed to lo (or let
//! go on up the interface's stack, on the nameservers path).

use crate::config::config;
use crate::counters::{Outcome, PASS};
use crate::events;
use crate::kernel::{self, SkBuff, TC_ACT_SHOT, TC_ACT_UNSPEC};
use crate::net::packet::Ipv4;
use crate::restore;
use crate::taken;
use dnsredir_abi::PATH_NAMESERVERS;

program!("dnsredir/reply", dnsredir_reply, reply);

#[inline(always)]
unsafe fn reply(skb: *mut SkBuff) -> (Outcome, i32) {
    let Some(ip) = Ipv4::parse(skb) else {
        return crate::reply6::reply(skb);
    };
    // The nameservers path: an answer from a server taken over is its own, to a query a name
    // rule left with it (or one sent before dnsredir came): only watched.
    if config!(path) == PATH_NAMESERVERS && taken::is_taken(ip.saddr, ip.sport) {
        if !ip.first_fragment {
            events::answer(skb, &ip, ip.daddr, ip.dport);
        }
        return PASS;
    }
    if ip.saddr != config!(upstream_addr)
        || ip.daddr != config!(container_addr)
        || ip.sport != config!(upstream_port)
    {
        return PASS;
    }
    if let Err(answer) = restore::restore(skb, &ip) {
        return answer;
    }
    // The nameservers path: the answer now comes from the nameserver the client asked and goes
    // on up this interface's stack, where conntrack finds the query's flow.
    if config!(path) == PATH_NAMESERVERS {
        // No lo to see it on its way: the answer's event is written here. Its destination,
        // the client, is as it came.
        events::answer(skb, &ip, ip.daddr, ip.dport);
        return (Outcome::Restored, TC_ACT_UNSPEC);
    }
    // Through the neighbour layer, not a bare redirect: its route lookup attaches the local
    // route to the packet, which lo keeps, so IP does not look the 127.0.0.1 destination up
    // again as if it had arrived from outside (a martian without route_localnet). It also
    // writes lo's all-zero MACs, without which lo would take the packet for PACKET_OTHERHOST.
    let action = kernel::redirect_neigh(config!(lo_ifindex));
    if action == TC_ACT_SHOT {
        return (Outcome::Failed, action);
    }
    (Outcome::Restored, action)
}
