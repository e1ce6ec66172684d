//! Reading and rewriting IPv6 UDP/TCP headers in place, as [`packet`](super::packet) does for
//! IPv4 (same pointer and alignment rules).
//!
//! Only a fixed header directly followed by UDP or TCP is understood: any extension header
//! (hop-by-hop, routing, fragment, destination options, ...) makes [`Ipv6::parse`] refuse the
//! packet, which then passes untouched. So there are no fragments to think about here: a
//! fragment always has a fragment header. IPv6 has no header checksum; the L4 checksum covers
//! a pseudo-header with both 16-byte addresses, and is mandatory for UDP (0 is invalid).

use super::checksum;
use super::packet::{
    l4_csum, l4_header, load16, load32, patch_field, store32, store_l4, Patch, Ports, RewriteError,
    ETH_HLEN, IPPROTO_UDP, TCP_MIN_HLEN, UDP_HLEN,
};
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
pub struct Ipv6 {
    pub proto: u8,
    pub saddr: Addr6,
    pub daddr: Addr6,
    pub sport: u16,
    pub dport: u16,
    /// The TCP flags byte; 0 for UDP.
    pub tcp_flags: u8,
}

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
    /// Offset of the L4 header from the start of the frame.
    pub const L4_OFF: u32 = L4_OFF as u32;

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
        let proto = *ip.add(IP6_NEXT_HEADER);
        let l4 = data.add(L4_OFF);
        // Extension headers and everything else are refused.
        let tcp_flags = l4_header(l4, end, proto, true)?;
        Some(Ipv6 {
            proto,
            saddr: load_addr(ip.add(IP6_SADDR)),
            daddr: load_addr(ip.add(IP6_DADDR)),
            sport: load16(l4),
            dport: load16(l4.add(2)),
            tcp_flags,
        })
    }
}

/// New IPv6 addresses and ports for a packet.
pub type Rewrite6 = Ports<Addr6>;

/// Writes the new addresses, ports and payload field and fixes the L4 checksum: the address
/// delta with BPF_F_PSEUDO_HDR, the rest without (see [`super::packet::rewrite`]).
#[inline(always)]
pub unsafe fn rewrite(
    skb: *mut SkBuff,
    ip: &Ipv6,
    new: &Rewrite6,
    patch: Option<&Patch>,
) -> Result<(), RewriteError> {
    let (data, end) = kernel::packet_bounds(skb);
    let iph = data.add(ETH_HLEN);
    let l4 = data.add(L4_OFF);
    let l4_hlen = if ip.proto == IPPROTO_UDP {
        UDP_HLEN
    } else {
        TCP_MIN_HLEN
    };
    if l4.add(l4_hlen) as *const u8 > end {
        return Err(RewriteError::Untouched);
    }
    let field = patch_field(data, end, patch)?;

    store_addr(iph.add(IP6_SADDR), &new.saddr);
    store_addr(iph.add(IP6_DADDR), &new.daddr);
    let payload_diff = store_l4(l4, Ipv6::L4_OFF, field, ip.sport, ip.dport, new, patch);

    let addrs = checksum::addr6_diff(&ip.saddr, &new.saddr, &ip.daddr, &new.daddr);
    l4_csum(skb, Ipv6::L4_OFF, ip.proto, addrs, payload_diff)
}
