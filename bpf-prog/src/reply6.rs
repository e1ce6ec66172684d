//! The reply program's IPv6 half (nameservers path): the IPv6 upstream's answer to a redirected
//! query comes back from the nameserver the client asked, in place.

use crate::config::{self, config};
use crate::counters::{Outcome, PASS};
use crate::kernel::{SkBuff, TC_ACT_UNSPEC};
use crate::net::ipv6::Ipv6;
use crate::restore;
use dnsredir_abi::PATH_NAMESERVERS;

/// The reply program for an IPv6 packet (the caller saw that the frame is not IPv4).
#[inline(always)]
pub unsafe fn reply(skb: *mut SkBuff) -> (Outcome, i32) {
    if config!(path) != PATH_NAMESERVERS || config!(upstream6_port) == 0 {
        return PASS;
    }
    let Some(ip) = Ipv6::parse(skb) else {
        return PASS;
    };
    if ip.sport != config!(upstream6_port)
        || ip.saddr != config::upstream6()
        || ip.daddr != config::container6()
    {
        return PASS;
    }
    // No fragments: a fragment has a fragment header, which `parse` refuses.
    if let Err(answer) = restore::restore(skb, &ip) {
        return answer;
    }
    (Outcome::Restored, TC_ACT_UNSPEC)
}
