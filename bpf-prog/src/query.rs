//! lo ingress: a query that Docker's DNAT sent to dockerd's port on the resolver address goes
//! to the upstream instead, through the container's interface.

use crate::config::config;
use crate::counters::{count, Outcome};
use crate::events;
use crate::flows;
use crate::kernel::{self, SkBuff, TC_ACT_SHOT, TC_ACT_UNSPEC};
use crate::net::dns;
use crate::net::packet::{self, Ipv4, Patch, RewriteError, IPPROTO_TCP, IPPROTO_UDP};
use crate::net::packet::{TCP_ACK, TCP_SYN};
use crate::rules::{self, Rule};
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
    let mut dns_id = 0;
    let mut clamp = None;
    let mut rule = Rule::Default;
    if udp {
        let Some(query) = dns::query(skb, &ip) else {
            return PASS;
        };
        if query.single_label && config!(flags) & FLAG_REDIRECT_ALL == 0 {
            events::query(skb, &ip, PATH_DOCKERD);
            return (Outcome::KeptForDockerd, TC_ACT_UNSPEC);
        }
        rule = rules::check(skb, &ip);
        if rule.keeps() {
            events::query(skb, &ip, PATH_DOCKERD);
            return (Outcome::KeptByRule(rule), TC_ACT_UNSPEC);
        }
        dns_id = query.id;
        clamp = query.edns_size.and_then(edns_clamp);
    }
    let syn = !udp && ip.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN;
    let key = flows::key(ip.sport, dns_id, ip.proto);

    let value = FlowValue {
        closing_since_ns: 0,
        client_addr: ip.saddr,
        resolver_addr: ip.daddr,
        resolver_port: ip.dport,
        pad0: 0,
        pad1: 0,
    };
    if let Err(outcome) = flows::on_query(&key, &value, udp || syn, ip.tcp_flags) {
        return (outcome, TC_ACT_UNSPEC);
    }

    let rewrite = packet::Rewrite {
        saddr: config!(container_addr),
        daddr: config!(upstream_addr),
        sport: ip.sport,
        dport: config!(upstream_port),
    };
    match packet::rewrite(skb, &ip, &rewrite, clamp.as_ref()) {
        Ok(()) => {}
        Err(RewriteError::Untouched) => return (Outcome::Failed, TC_ACT_UNSPEC),
        Err(RewriteError::Broken) => return (Outcome::Failed, TC_ACT_SHOT),
    }
    let action = kernel::redirect_neigh(config!(iface_ifindex));
    if action == TC_ACT_SHOT {
        return (Outcome::Failed, action);
    }
    events::query(skb, &ip, PATH_UPSTREAM);
    let outcome = if udp {
        Outcome::RedirectedUdp {
            clamped: clamp.is_some(),
            rule,
        }
    } else {
        Outcome::RedirectedTcp { syn }
    };
    (outcome, action)
}

/// The change that lowers an EDNS payload size above `edns_max` to it: larger answers would
/// come fragmented, and fragments cannot be restored (see the reply program).
#[inline(always)]
pub(crate) fn edns_clamp(size: dns::EdnsSize) -> Option<Patch> {
    let max = config!(edns_max);
    if max == 0 || u16::from_be(size.raw) <= u16::from_be(max) {
        return None;
    }
    Some(Patch {
        off: size.off,
        old: size.raw,
        new: max,
    })
}
