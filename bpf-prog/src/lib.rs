//! dnsredir's TC programs. The embedded-resolver path: [`query`] on the container's lo ingress
//! sends DNS meant for Docker's embedded resolver to the upstream through the container's
//! interface; [`reply`] on that interface's ingress turns the upstream's answers back into the
//! resolver's and hands them to lo, where conntrack undoes Docker's NAT (both leave with
//! bpf_redirect_neigh, kernel ≥ 5.10). The nameservers path: [`egress`] on the interface's
//! egress sends queries to the namespace's nameservers to the upstream instead, and [`reply`]
//! restores the nameserver as the answers' source in place, for IPv4 and, with an IPv6
//! upstream, IPv6 ([`egress6`], [`reply6`]). Anything they do not fully
//! understand goes on untouched to the next tc filter.
#![no_std]

/// Declares a program: the kernel's entry point `$name` in `$section` (the abi's `*_SECTION`),
/// which counts the outcome of `$body` and answers its tc verdict.
macro_rules! program {
    ($section:literal, $name:ident, $body:path) => {
        /// # Safety
        /// Called by the kernel with its `__sk_buff`.
        #[no_mangle]
        #[link_section = $section]
        pub unsafe extern "C" fn $name(skb: *mut $crate::kernel::SkBuff) -> i32 {
            let (outcome, action) = $body(skb);
            $crate::counters::count(&outcome);
            action
        }
    };
}

mod answer;
mod config;
mod counters;
mod decide;
mod egress;
mod egress6;
mod events;
mod family;
mod flows;
mod kernel;
mod net;
mod query;
mod reply;
mod reply6;
mod restore;
mod rules;
mod taken;

#[no_mangle]
#[link_section = "license"]
pub static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
