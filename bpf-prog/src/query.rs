//! lo ingress: a query that Docker's DNAT sent to dockerd's port on the resolver address goes
//! to the upstream instead, through the container's interface.

use crate::answer;
use crate::config::config;
use crate::counters::{Outcome, PASS};
use crate::decide;
use crate::events;
use crate::kernel::SkBuff;
use crate::net::packet::{Ipv4, Proto};
use crate::rules;
use dnsredir_abi::{FLAG_REDIRECT_ALL, ROUTE_DOCKERD, ROUTE_UPSTREAM};

program!("dnsredir/query", dnsredir_query, query);

#[inline(always)]
unsafe fn query(skb: *mut SkBuff) -> (Outcome, i32) {
    if let Some(pass) = answer::lo_pass(skb) {
        return pass;
    }
    let Some(ip) = Ipv4::parse(skb) else {
        return PASS;
    };
    // The rest of a fragmented query would still reach dockerd: all of it stays there.
    // Answers are looked for among the packets that are not queries to dockerd (a query to
    // dockerd's port is never an answer from it): then a query reaches the name walk in one
    // verifier state, not in one per way through the watcher's check, which the verifier
    // would walk the name for again.
    if ip.first_fragment || ip.daddr != config!(resolver_addr) {
        events::lo_answer(skb, &ip);
        return PASS;
    }
    let udp = match ip.proto {
        Proto::Udp if config!(dockerd_udp_port) != 0 && ip.dport == config!(dockerd_udp_port) => {
            true
        }
        // With --only, TCP stays with dockerd (the name is not known at the SYN), read only
        // with decisions in force.
        Proto::Tcp
            if config!(dockerd_tcp_port) != 0
                && ip.dport == config!(dockerd_tcp_port)
                && (!rules::only() || rules::decides()) =>
        {
            false
        }
        _ => {
            events::lo_answer(skb, &ip);
            return PASS;
        }
    };
    let keep_single_label = config!(flags) & FLAG_REDIRECT_ALL == 0;
    let query = match decide::decide(skb, &ip, udp, keep_single_label, ROUTE_DOCKERD, true) {
        Ok(query) => query,
        Err(done) => return done,
    };
    decide::redirect(
        skb,
        &ip,
        &query,
        ip.saddr,
        config!(container_addr),
        true,
        ROUTE_UPSTREAM,
    )
}
