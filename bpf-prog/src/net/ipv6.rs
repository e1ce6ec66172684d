//! Reading and rewriting IPv6 UDP/TCP headers in place, as [`packet`](super::packet) does for
//! IPv4 (same pointer and alignment rules).
//!
//! Only a fixed header directly followed by UDP or TCP is understood: any extension header
//! (hop-by-hop, routing, fragment, destination options, ...) makes [`Ipv6::parse`] refuse the
//! packet, which then passes untouched. So there are no fragments to think about here: a
//! fragment always has a fragment header. IPv6 has no header checksum; the L4 checksum covers
//! a pseudo-header with both 16-byte addresses, and is mandatory for UDP (0 is invalid).

use super::checksum;
use super::packet::{load16, load32, store32, Addr, Ip, RewriteError, ETH_HLEN};
use crate::kernel::{self, SkBuff};

const ETH_P_IPV6: u16 = 0x86dd;
const IPV6_HLEN: usize = 40;
/// Offsets inside the IPv6 header.
const IP6_NEXT_HEADER: usize = 6;
const IP6_SADDR: usize = 8;
const IP6_DADDR: usize = 24;
/// The L4 header's offset from the start of the frame: right after the fixed header.
const L4_OFF: usize = ETH_HLEN + IPV6_HLEN;

/// An address as four raw loads of its bytes (network order read as native).
pub type Addr6 = [u32; 4];

/// An IPv6 packet with UDP or TCP right after its fixed header, the whole L4 header (TCP
/// options included) in the linear data.
pub type Ipv6 = Ip<Addr6>;

#[inline(always)]
unsafe fn load_addr(p: *const u8) -> Addr6 {
    [
        load32(p),
        load32(p.add(4)),
        load32(p.add(8)),
        load32(p.add(12)),
    ]
}

#[inline(always)]
unsafe fn store_addr(p: *mut u8, a: &Addr6) {
    store32(p, a[0]);
    store32(p.add(4), a[1]);
    store32(p.add(8), a[2]);
    store32(p.add(12), a[3]);
}

impl Ipv6 {
    /// `None` for anything else: not IPv6, an extension header, another protocol, a truncated
    /// header, or a UDP datagram without a checksum (invalid in IPv6).
    #[inline(always)]
    pub unsafe fn parse(skb: *const SkBuff) -> Option<Ipv6> {
        let (data, end) = kernel::packet_bounds(skb);
        if data.add(L4_OFF) as *const u8 > end {
            return None;
        }
        if load16(data.add(12)) != ETH_P_IPV6.to_be() {
            return None;
        }
        let ip = data.add(ETH_HLEN);
        if *ip >> 4 != 6 {
            return None;
        }
        // An extension header in place of UDP or TCP is refused, as everything else.
        Ipv6::at(
            data.add(L4_OFF),
            end,
            L4_OFF,
            *ip.add(IP6_NEXT_HEADER),
            load_addr(ip.add(IP6_SADDR)),
            load_addr(ip.add(IP6_DADDR)),
            false,
        )
    }
}

/// The IPv6 half of [`super::packet::rewrite`].
impl Addr for Addr6 {
    const L3_HLEN: usize = IPV6_HLEN;
    const UDP_CSUM_REQUIRED: bool = true;

    #[inline(always)]
    unsafe fn store(iph: *mut u8, saddr: &Addr6, daddr: &Addr6) {
        store_addr(iph.add(IP6_SADDR), saddr);
        store_addr(iph.add(IP6_DADDR), daddr);
    }

    #[inline(always)]
    fn diff(old_s: &Addr6, new_s: &Addr6, old_d: &Addr6, new_d: &Addr6) -> u32 {
        checksum::addr6_diff(old_s, new_s, old_d, new_d)
    }

    #[inline(always)]
    unsafe fn l3_csum(_: *mut SkBuff, _: u32) -> Result<(), RewriteError> {
        Ok(())
    }

    /// The payload length: everything after the fixed header.
    const LEN_AT: usize = 4;

    #[inline(always)]
    fn l3_len(_: u32, l4_len: u32) -> u32 {
        l4_len
    }

    #[inline(always)]
    fn pseudo_sum(saddr: &Addr6, daddr: &Addr6) -> u32 {
        let mut sum = 0u32;
        let mut i = 0;
        while i < 4 {
            sum += (saddr[i] & 0xffff) + (saddr[i] >> 16) + (daddr[i] & 0xffff) + (daddr[i] >> 16);
            i += 1;
        }
        sum
    }
}
