//! lo ingress: a query that Docker's DNAT sent to dockerd's port on the resolver address goes
//! to the upstream instead, through the container's interface.

use crate::config::config;
use crate::counters::{count, Outcome};
use crate::decide::{self, rewritten};
use crate::events;
use crate::flows;
use crate::kernel::{self, SkBuff, TC_ACT_SHOT, TC_ACT_UNSPEC};
use crate::net::packet::{self, Ipv4, IPPROTO_TCP, IPPROTO_UDP};
use crate::rules;
use dnsredir_abi::{FlowValue, FLAG_REDIRECT_ALL, PATH_DOCKERD, PATH_UPSTREAM};

/// # Safety
/// Called by the kernel with its `__sk_buff`.
#[no_mangle]
#[link_section = "dnsredir/query"]
pub unsafe extern "C" fn dnsredir_query(skb: *mut SkBuff) -> i32 {
    let (outcome, action) = query(skb);
    count(&outcome);
    action
}

const PASS: (Outcome, i32) = (Outcome::Passed, TC_ACT_UNSPEC);

#[inline(always)]
unsafe fn query(skb: *mut SkBuff) -> (Outcome, i32) {
    let Some(ip) = Ipv4::parse(skb) else {
        return PASS;
    };
    events::lo_answer(skb, &ip);
    // The rest of a fragmented query would still reach dockerd: all of it stays there.
    if ip.first_fragment || ip.daddr != config!(resolver_addr) {
        return PASS;
    }
    let udp = match ip.proto {
        IPPROTO_UDP if config!(dockerd_udp_port) != 0 && ip.dport == config!(dockerd_udp_port) => {
            true
        }
        // With --only, TCP stays with dockerd: the name is not known at the SYN.
        IPPROTO_TCP
            if config!(dockerd_tcp_port) != 0
                && ip.dport == config!(dockerd_tcp_port)
                && !rules::only() =>
        {
            false
        }
        _ => return PASS,
    };
    let keep_single_label = config!(flags) & FLAG_REDIRECT_ALL == 0;
    let query = match decide::decide(
        skb,
        ip.l4_off,
        udp,
        ip.tcp_flags,
        keep_single_label,
        Some(&ip),
        PATH_DOCKERD,
    ) {
        Ok(query) => query,
        Err(outcome) => return (outcome, TC_ACT_UNSPEC),
    };
    let value = FlowValue {
        closing_since_ns: 0,
        client_addr: ip.saddr,
        resolver_addr: ip.daddr,
        resolver_port: ip.dport,
        pad0: 0,
        pad1: 0,
    };
    if let Err(outcome) = query.start_flow(&flows::FLOWS, ip.sport, ip.proto, ip.tcp_flags, &value)
    {
        return (outcome, TC_ACT_UNSPEC);
    }
    let rewrite = packet::Rewrite {
        saddr: config!(container_addr),
        daddr: config!(upstream_addr),
        sport: ip.sport,
        dport: config!(upstream_port),
    };
    if let Err(failed) = rewritten(packet::rewrite(skb, &ip, &rewrite, query.clamp.as_ref())) {
        return failed;
    }
    let action = kernel::redirect_neigh(config!(iface_ifindex));
    if action == TC_ACT_SHOT {
        return (Outcome::Failed, action);
    }
    events::query(skb, &ip, PATH_UPSTREAM);
    (query.redirected(), action)
}
