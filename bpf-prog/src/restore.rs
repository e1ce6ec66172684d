//! The step the reply programs share (IPv4's [`reply`](crate::reply), IPv6's
//! [`reply6`](crate::reply6)): the upstream's answer to a redirected query, turned back into one
//! from where the query was going.

use crate::counters::{Outcome, PASS};
use crate::decide::rewritten;
use crate::family::Family;
use crate::flows;
use crate::kernel::{SkBuff, TC_ACT_UNSPEC};
use crate::net::packet::{self, Ip};

/// Restores the answer in `ip` from the upstream, its flow taken for it (see
/// [`flows::on_reply`]); `Err` with the program's answer for a packet not restored.
#[inline(always)]
pub unsafe fn restore<A: Family>(skb: *mut SkBuff, ip: &Ip<A>) -> Result<(), (Outcome, i32)> {
    let flow: A::Flow = match flows::on_reply(
        skb,
        ip.l4_off,
        ip.proto,
        ip.dport,
        ip.tcp_flags,
        ip.first_fragment,
    ) {
        Ok(flow) => flow,
        Err(Outcome::Passed) => return Err(PASS),
        Err(outcome) => return Err((outcome, TC_ACT_UNSPEC)),
    };
    rewritten(packet::rewrite(skb, ip, &A::restored(ip, &flow), None))
}
