//! Reading and rewriting IPv4 UDP/TCP headers in place.
//!
//! Packet memory is only touched through raw pointers compared against `data_end`: a slice
//! would make LLVM compare lengths, which the verifier cannot follow.
//!
//! Every field we touch sits at an even offset from the frame start (the Ethernet header is 14
//! bytes, IHL counts 4-byte words), so loads and stores are declared 2-byte aligned: LLVM then
//! emits half-word accesses instead of byte-by-byte ones, and never a wide access on the
//! stack that the verifier would refuse as misaligned.

use crate::checksum;
use crate::kernel::{self, SkBuff, BPF_F_MARK_MANGLED_0, BPF_F_PSEUDO_HDR};
use core::ffi::c_void;

/// A u32 at a 2-byte aligned address.
#[repr(C, packed(2))]
struct U32Align2(u32);

#[inline(always)]
unsafe fn load16(p: *const u8) -> u16 {
    *(p as *const u16)
}

#[inline(always)]
unsafe fn load32(p: *const u8) -> u32 {
    (*(p as *const U32Align2)).0
}

#[inline(always)]
unsafe fn store16(p: *mut u8, v: u16) {
    *(p as *mut u16) = v;
}

#[inline(always)]
unsafe fn store32(p: *mut u8, v: u32) {
    (*(p as *mut U32Align2)).0 = v;
}

pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;

const ETH_HLEN: usize = 14;
const IPV4_MIN_HLEN: usize = 20;
const UDP_HLEN: usize = 8;
const DNS_HLEN: usize = 12;
/// Offsets inside the IPv4 header.
const IP_CSUM: usize = 10;
const IP_SADDR: usize = 12;
const IP_DADDR: usize = 16;

/// The fields of an unfragmented IPv4 packet with at least 8 bytes of UDP or TCP header.
pub struct Ipv4 {
    /// Offset of the L4 header from the start of the frame; IHL honoured.
    pub l4_off: u32,
    pub proto: u8,
    pub saddr: u32,
    pub daddr: u32,
    pub sport: u16,
    pub dport: u16,
}

#[inline(always)]
unsafe fn bounds(skb: *const SkBuff) -> (*mut u8, *const u8) {
    let data = (*skb).data as usize as *mut u8;
    let end = (*skb).data_end as usize as *const u8;
    (data, end)
}

impl Ipv4 {
    /// `None` for anything that is not a whole, unfragmented IPv4 UDP or TCP header: the caller
    /// then passes the packet on unchanged.
    #[inline(always)]
    pub unsafe fn parse(skb: *const SkBuff) -> Option<Ipv4> {
        let (data, end) = bounds(skb);
        if data.add(ETH_HLEN + IPV4_MIN_HLEN) as *const u8 > end {
            return None;
        }
        if load16(data.add(12)) != 0x0800u16.to_be() {
            return None;
        }
        let ip = data.add(ETH_HLEN);
        let version_ihl = *ip;
        if version_ihl >> 4 != 4 {
            return None;
        }
        let ihl = ((version_ihl & 0x0f) as usize) * 4;
        if ihl < IPV4_MIN_HLEN {
            return None;
        }
        // More-fragments flag or a fragment offset: ports are not where we would read them.
        if load16(ip.add(6)) & 0x3fffu16.to_be() != 0 {
            return None;
        }
        let proto = *ip.add(9);
        if proto != IPPROTO_UDP && proto != IPPROTO_TCP {
            return None;
        }
        let l4 = ip.add(ihl);
        if l4.add(UDP_HLEN) as *const u8 > end {
            return None;
        }
        Some(Ipv4 {
            l4_off: (ETH_HLEN + ihl) as u32,
            proto,
            saddr: load32(ip.add(IP_SADDR)),
            daddr: load32(ip.add(IP_DADDR)),
            sport: load16(l4),
            dport: load16(l4.add(2)),
        })
    }
}

pub struct Question {
    pub id: u16,
    /// The name has one label (`c2`, not `c2.net` or `example.com`): one of Docker's own names.
    pub single_label: bool,
}

/// The DNS id and the shape of the first question's name of a UDP query.
#[inline(always)]
pub unsafe fn dns_question(skb: *mut SkBuff, ip: &Ipv4) -> Option<Question> {
    let (data, end) = bounds(skb);
    let dns = data.add(ip.l4_off as usize + UDP_HLEN);
    // The header and the first label's length byte.
    if dns.add(DNS_HLEN + 2) as *const u8 > end {
        return None;
    }
    let id = load16(dns);
    let first_label = *dns.add(DNS_HLEN) as u32;
    let mut single_label = false;
    if first_label != 0 && first_label <= 63 {
        let mut after: u8 = 0xff;
        let off = ip.l4_off + (UDP_HLEN + DNS_HLEN + 1) as u32 + first_label;
        if kernel::skb_load_bytes(skb, off, &mut after as *mut u8 as *mut c_void, 1) == 0 {
            single_label = after == 0;
        }
    }
    Some(Question { id, single_label })
}

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;

/// The flags byte of a TCP header.
#[inline(always)]
pub unsafe fn tcp_flags(skb: *const SkBuff, ip: &Ipv4) -> Option<u8> {
    let (data, end) = bounds(skb);
    let tcp = data.add(ip.l4_off as usize);
    if tcp.add(14) as *const u8 > end {
        return None;
    }
    Some(*tcp.add(13))
}

/// The DNS id of a UDP message, for matching a reply to its query.
#[inline(always)]
pub unsafe fn dns_id(skb: *const SkBuff, ip: &Ipv4) -> Option<u16> {
    let (data, end) = bounds(skb);
    let dns = data.add(ip.l4_off as usize + UDP_HLEN);
    if dns.add(2) as *const u8 > end {
        return None;
    }
    Some(load16(dns))
}

/// New addresses and ports for a packet; all in network byte order.
pub struct Rewrite {
    pub saddr: u32,
    pub daddr: u32,
    pub sport: u16,
    pub dport: u16,
}

pub struct RewriteFailed;

/// Writes the new addresses and ports and fixes the IPv4 and L4 checksums.
///
/// Address deltas go to the L4 checksum with BPF_F_PSEUDO_HDR and port deltas without: for a
/// CHECKSUM_PARTIAL packet (all of lo's) the field holds only the pseudo-header sum, which
/// addresses are part of and ports are not.
#[inline(always)]
pub unsafe fn rewrite(skb: *mut SkBuff, ip: &Ipv4, new: &Rewrite) -> Result<(), RewriteFailed> {
    let (data, end) = bounds(skb);
    // Both checks: the verifier tracks the fixed and the IHL-dependent pointer separately.
    let iph = data.add(ETH_HLEN);
    let l4 = data.add(ip.l4_off as usize);
    if iph.add(IPV4_MIN_HLEN) as *const u8 > end || l4.add(UDP_HLEN) as *const u8 > end {
        return Err(RewriteFailed);
    }
    store32(iph.add(IP_SADDR), new.saddr);
    store32(iph.add(IP_DADDR), new.daddr);
    store16(l4, new.sport);
    store16(l4.add(2), new.dport);

    let addrs = checksum::addr_diff(ip.saddr, new.saddr, ip.daddr, new.daddr);
    if kernel::l3_csum_replace(skb, (ETH_HLEN + IP_CSUM) as u32, addrs) != 0 {
        return Err(RewriteFailed);
    }
    let (csum_off, l4_flags) = if ip.proto == IPPROTO_UDP {
        (ip.l4_off + 6, BPF_F_MARK_MANGLED_0)
    } else {
        (ip.l4_off + 16, 0)
    };
    if kernel::l4_csum_replace(skb, csum_off, addrs, l4_flags | BPF_F_PSEUDO_HDR) != 0 {
        return Err(RewriteFailed);
    }
    let ports = checksum::port_diff(ip.sport, new.sport, ip.dport, new.dport);
    if kernel::l4_csum_replace(skb, csum_off, ports, l4_flags) != 0 {
        return Err(RewriteFailed);
    }
    Ok(())
}
