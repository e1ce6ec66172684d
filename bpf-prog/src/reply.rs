//! Interface ingress: the upstream's answer to a query that the query (or egress) program
//! redirected is turned back into the resolver's (or nameserver's) and handed to lo (or let
//! go on up the interface's stack, on the nameservers path).

use crate::config::config;
use crate::counters::{count, Outcome};
use crate::egress;
use crate::events;
use crate::flows;
use crate::kernel::{self, SkBuff, TC_ACT_SHOT, TC_ACT_UNSPEC};
use crate::net::dns;
use crate::net::packet::{self, Ipv4, RewriteError, IPPROTO_UDP};
use dnsredir_abi::PATH_NAMESERVERS;

/// # Safety
/// Called by the kernel with its `__sk_buff`.
#[no_mangle]
#[link_section = "dnsredir/reply"]
pub unsafe extern "C" fn dnsredir_reply(skb: *mut SkBuff) -> i32 {
    let (outcome, action) = reply(skb);
    count(&outcome);
    action
}

const PASS: (Outcome, i32) = (Outcome::Passed, TC_ACT_UNSPEC);

#[inline(always)]
unsafe fn reply(skb: *mut SkBuff) -> (Outcome, i32) {
    let Some(ip) = Ipv4::parse(skb) else {
        return crate::reply6::reply(skb);
    };
    // The nameservers path: an answer from a nameserver taken over is its own, to a query a
    // name rule left with it (or one sent before dnsredir came): only watched.
    if config!(path) == PATH_NAMESERVERS && egress::is_nameserver(ip.saddr, ip.sport) {
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
    let udp = ip.proto == IPPROTO_UDP;
    let dns_id = if udp {
        match dns::id(skb, &ip) {
            Some(id) => id,
            None => return PASS,
        }
    } else {
        0
    };
    let key = flows::key(ip.dport, dns_id, ip.proto);
    let found = flows::find(&key);
    if found.is_null() {
        return (Outcome::UnknownFlow, TC_ACT_UNSPEC);
    }
    // Only the first fragment has ports to match; the others could not be restored with it,
    // and after reassembly tc has no hook. The flow stays: an unfragmented copy may follow.
    if ip.first_fragment {
        return (Outcome::Fragmented, TC_ACT_UNSPEC);
    }
    let flow = *found;
    if udp {
        // One answer per UDP query: forget the flow so its port and id cannot capture anything else.
        flows::forget(&key);
    } else {
        if flows::closed(&flow) {
            flows::forget(&key);
            return (Outcome::UnknownFlow, TC_ACT_UNSPEC);
        }
        flows::track_close(found, &key, ip.tcp_flags);
    }

    let rewrite = packet::Rewrite {
        saddr: flow.resolver_addr,
        daddr: flow.client_addr,
        sport: flow.resolver_port,
        dport: ip.dport,
    };
    match packet::rewrite(skb, &ip, &rewrite, None) {
        Ok(()) => {}
        Err(RewriteError::Untouched) => return (Outcome::Failed, TC_ACT_UNSPEC),
        Err(RewriteError::Broken) => return (Outcome::Failed, TC_ACT_SHOT),
    }
    // The nameservers path: the answer now comes from the nameserver the client asked and goes
    // on up this interface's stack, where conntrack finds the query's flow.
    if config!(path) == PATH_NAMESERVERS {
        // No lo to see it on its way: the answer's event is written here.
        events::answer(skb, &ip, flow.client_addr, ip.dport);
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
