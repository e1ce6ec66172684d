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
use crate::kernel::SkBuff;
use crate::net::packet::Ipv4;
use crate::taken::{self, NOT_TAKEN};
use dnsredir_abi::{PATH_NAMESERVERS, ROUTE_NAMESERVER, ROUTE_NAMESERVER_KEPT};

program!("dnsredir/egress", dnsredir_egress, egress);

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
    let origin = taken::origin(&ip);
    if origin == NOT_TAKEN {
        return PASS;
    }
    let Some(udp) = decide::udp_or_tcp(ip.proto) else {
        return PASS;
    };
    let query = match decide::decide(skb, &ip, udp, false, ROUTE_NAMESERVER_KEPT, false) {
        Ok(query) => query,
        Err(done) => return done,
    };
    // On out of the same interface; later filters see the rewritten packet.
    decide::redirect(skb, &ip, &query, origin, ip.saddr, false, ROUTE_NAMESERVER)
}
