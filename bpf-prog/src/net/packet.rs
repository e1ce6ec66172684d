//! Reading IPv4 UDP/TCP headers, and rewriting IPv4 or IPv6 ones in place (the IPv6 half of
//! both in [`ipv6`](super::ipv6)).
//!
//! Packet memory is only touched through raw pointers compared against `data_end`: a slice
//! would make LLVM compare lengths, which the verifier cannot follow.
//!
//! Every header field we touch sits at an even offset from the frame start (the Ethernet header
//! is 14 bytes, IHL counts 4-byte words), so those loads and stores are declared 2-byte aligned:
//! LLVM then emits half-word accesses instead of byte-by-byte ones, and never a wide access on
//! the stack that the verifier would refuse as misaligned.

use super::checksum;
use crate::kernel::{self, SkBuff, BPF_F_MARK_MANGLED_0, BPF_F_PSEUDO_HDR};

/// A u32 at a 2-byte aligned address.
#[repr(C, packed(2))]
struct U32Align2(u32);

#[inline(always)]
pub unsafe fn load16(p: *const u8) -> u16 {
    *(p as *const u16)
}

#[inline(always)]
pub(super) unsafe fn load32(p: *const u8) -> u32 {
    (*(p as *const U32Align2)).0
}

#[inline(always)]
pub unsafe fn store16(p: *mut u8, v: u16) {
    *(p as *mut u16) = v;
}

#[inline(always)]
pub(super) unsafe fn store32(p: *mut u8, v: u32) {
    (*(p as *mut U32Align2)).0 = v;
}

/// The L4 protocols the programs understand, numbered as in the IP header.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Proto {
    Tcp = 6,
    Udp = 17,
}

impl Proto {
    /// `None` for any other protocol number (IPv6's extension headers included).
    #[inline(always)]
    fn of(number: u8) -> Option<Proto> {
        if number == Proto::Udp as u8 {
            Some(Proto::Udp)
        } else if number == Proto::Tcp as u8 {
            Some(Proto::Tcp)
        } else {
            None
        }
    }
}

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;

pub(super) const ETH_HLEN: usize = 14;
const IPV4_MIN_HLEN: usize = 20;
pub const UDP_HLEN: usize = 8;
pub const TCP_MIN_HLEN: usize = 20;
/// Offsets inside the IPv4 header.
const IP_FRAG: usize = 6;
const IP_PROTO: usize = 9;
const IP_CSUM: usize = 10;
const IP_SADDR: usize = 12;
const IP_DADDR: usize = 16;
/// Offsets inside the L4 headers.
pub(super) const UDP_CSUM: u32 = 6;
pub(super) const TCP_DOFF: usize = 12;
pub(super) const TCP_FLAGS: usize = 13;
pub(super) const TCP_CSUM: u32 = 16;

/// An IPv4 or IPv6 packet (its addresses `A`s, raw) whose whole UDP or TCP header (TCP
/// options included) is in the linear data: everything a rewrite of addresses and ports needs.
pub struct Ip<A> {
    /// Offset of the L4 header from the start of the frame; IHL honoured.
    pub l4_off: u32,
    pub proto: Proto,
    pub saddr: A,
    pub daddr: A,
    pub sport: u16,
    pub dport: u16,
    /// The TCP flags byte; 0 for UDP.
    pub tcp_flags: u8,
    /// More fragments follow (and this is the first, or `parse` would have refused it): only
    /// the start of the datagram is here. Never for IPv6, whose fragments `parse` refuses.
    pub first_fragment: bool,
}

pub type Ipv4 = Ip<u32>;

impl<A: Addr> Ip<A> {
    /// The packet with the L3 header's protocol `number`, addresses and `first_fragment`, and
    /// its UDP or TCP header at `l4`, `l4_off` from the frame start: `None` for another
    /// protocol, or unless that header is all there before `end` (see [`l4_header`]).
    #[inline(always)]
    pub(super) unsafe fn at(
        l4: *const u8,
        end: *const u8,
        l4_off: usize,
        number: u8,
        saddr: A,
        daddr: A,
        first_fragment: bool,
    ) -> Option<Ip<A>> {
        let proto = Proto::of(number)?;
        let tcp_flags = l4_header(l4, end, proto, A::UDP_CSUM_REQUIRED)?;
        Some(Ip {
            l4_off: l4_off as u32,
            proto,
            saddr,
            daddr,
            sport: load16(l4),
            dport: load16(l4.add(2)),
            tcp_flags,
            first_fragment,
        })
    }
}

impl Ipv4 {
    /// `None` for anything else, a non-first fragment or a truncated header included: the
    /// caller then passes the packet on unchanged.
    #[inline(always)]
    pub unsafe fn parse(skb: *const SkBuff) -> Option<Ipv4> {
        let (data, end) = kernel::packet_bounds(skb);
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
        let frag = load16(ip.add(IP_FRAG));
        // A fragment offset: the ports are in an earlier fragment.
        if frag & 0x1fffu16.to_be() != 0 {
            return None;
        }
        let first_fragment = frag & 0x2000u16.to_be() != 0;
        Ipv4::at(
            ip.add(ihl),
            end,
            ETH_HLEN + ihl,
            *ip.add(IP_PROTO),
            load32(ip.add(IP_SADDR)),
            load32(ip.add(IP_DADDR)),
            first_fragment,
        )
    }
}

/// New addresses (`A`s) and ports for a packet; all raw, as in the packet.
pub struct Ports<A> {
    pub saddr: A,
    pub daddr: A,
    pub sport: u16,
    pub dport: u16,
}

/// A 2-byte field of the L4 payload to replace along with the headers.
pub struct Patch {
    /// Offset from the start of the frame.
    pub off: u32,
    /// Raw loads of the bytes there now and of the bytes to write.
    pub old: u16,
    pub new: u16,
}

pub enum RewriteError {
    /// Refused before any byte was written: the packet can go on as it was.
    Untouched,
    /// A checksum helper failed after the rewrite had begun.
    Broken,
}

/// What a rewrite does differently with IPv4 (`u32`) and IPv6 ([`Addr6`](super::ipv6::Addr6))
/// addresses.
pub trait Addr: Copy {
    /// The L3 header's length (without IPv4's options).
    const L3_HLEN: usize;
    /// A UDP datagram without a checksum is refused (invalid in IPv6).
    const UDP_CSUM_REQUIRED: bool;
    /// Writes the source and destination addresses into the L3 header at `iph`.
    unsafe fn store(iph: *mut u8, saddr: &Self, daddr: &Self);
    /// The checksum delta of replacing the addresses `old_s` and `old_d`.
    fn diff(old_s: &Self, new_s: &Self, old_d: &Self, new_d: &Self) -> u32;
    /// Fixes the L3 header's checksum for the delta `diff`: IPv6 has none.
    unsafe fn l3_csum(skb: *mut SkBuff, diff: u32) -> Result<(), RewriteError>;
    /// Offset of the L3 header's length field.
    const LEN_AT: usize;
    /// What the length field holds for `l4_len` bytes after an L3 header ending `l4_off` bytes
    /// into the frame.
    fn l3_len(l4_off: u32, l4_len: u32) -> u32;
    /// The raw one's-complement sum of the two addresses, as a pseudo-header holds them.
    fn pseudo_sum(saddr: &Self, daddr: &Self) -> u32;
}

impl Addr for u32 {
    const L3_HLEN: usize = IPV4_MIN_HLEN;
    const UDP_CSUM_REQUIRED: bool = false;

    #[inline(always)]
    unsafe fn store(iph: *mut u8, saddr: &u32, daddr: &u32) {
        store32(iph.add(IP_SADDR), *saddr);
        store32(iph.add(IP_DADDR), *daddr);
    }

    #[inline(always)]
    fn diff(old_s: &u32, new_s: &u32, old_d: &u32, new_d: &u32) -> u32 {
        checksum::addr_diff(*old_s, *new_s, *old_d, *new_d)
    }

    #[inline(always)]
    unsafe fn l3_csum(skb: *mut SkBuff, diff: u32) -> Result<(), RewriteError> {
        if kernel::l3_csum_replace(skb, (ETH_HLEN + IP_CSUM) as u32, diff) != 0 {
            return Err(RewriteError::Broken);
        }
        Ok(())
    }

    const LEN_AT: usize = 2;

    #[inline(always)]
    fn l3_len(l4_off: u32, l4_len: u32) -> u32 {
        l4_off - ETH_HLEN as u32 + l4_len
    }

    #[inline(always)]
    fn pseudo_sum(saddr: &u32, daddr: &u32) -> u32 {
        (saddr & 0xffff) + (saddr >> 16) + (daddr & 0xffff) + (daddr >> 16)
    }
}

/// The bytes of the L4 header and payload of `ip`, as its L3 header tells them; `None`
/// without a whole L3 header or for a length shorter than the headers.
#[inline(always)]
pub unsafe fn l4_len<A: Addr>(skb: *const SkBuff, ip: &Ip<A>) -> Option<u32> {
    let (data, end) = kernel::packet_bounds(skb);
    let iph = data.add(ETH_HLEN);
    if iph.add(A::L3_HLEN) as *const u8 > end {
        return None;
    }
    let field = u16::from_be(load16(iph.add(A::LEN_AT))) as u32;
    let before = A::l3_len(ip.l4_off, 0);
    field.checked_sub(before)
}

/// Turns the frame of `ip` around for an answer of `l4_len` bytes of L4 header and payload,
/// which are in place already: MACs and addresses swapped, the L3 length (and IPv4's header
/// checksum) set. Ports are the L4 header's business.
#[inline(always)]
pub unsafe fn turn<A: Addr>(skb: *mut SkBuff, ip: &Ip<A>, l4_len: u32) -> Result<(), RewriteError> {
    headers(skb, ip, l4_len, &ip.daddr, &ip.saddr)
}

/// Undoes [`turn`]: MACs swapped again, `ip`'s own addresses, the L3 length for `l4_len`.
#[inline(always)]
pub unsafe fn turn_back<A: Addr>(
    skb: *mut SkBuff,
    ip: &Ip<A>,
    l4_len: u32,
) -> Result<(), RewriteError> {
    headers(skb, ip, l4_len, &ip.saddr, &ip.daddr)
}

/// MACs swapped, the addresses `saddr` and `daddr` written, the L3 length set for `l4_len`.
#[inline(always)]
unsafe fn headers<A: Addr>(
    skb: *mut SkBuff,
    ip: &Ip<A>,
    l4_len: u32,
    saddr: &A,
    daddr: &A,
) -> Result<(), RewriteError> {
    let (data, end) = kernel::packet_bounds(skb);
    let iph = data.add(ETH_HLEN);
    if iph.add(A::L3_HLEN) as *const u8 > end {
        return Err(RewriteError::Untouched);
    }
    let (dst_hi, dst_lo) = (load32(data), load16(data.add(4)));
    store32(data, load32(data.add(6)));
    store16(data.add(4), load16(data.add(10)));
    store32(data.add(6), dst_hi);
    store16(data.add(10), dst_lo);
    let old = load16(iph.add(A::LEN_AT));
    let new = (A::l3_len(ip.l4_off, l4_len) as u16).to_be();
    store16(iph.add(A::LEN_AT), new);
    A::store(iph, saddr, daddr);
    A::l3_csum(skb, checksum::field_diff(old, new, false))
}

/// Writes the new addresses, ports and payload field and fixes the L3 (IPv4) and L4 checksums.
///
/// Address deltas go to the L4 checksum with BPF_F_PSEUDO_HDR, port and payload deltas without:
/// for a CHECKSUM_PARTIAL packet (all of lo's) the field holds only the pseudo-header sum, which
/// addresses are part of and the rest is not.
///
/// Every bound is checked before the first store, so a rewrite cannot stop half-way; the checksum
/// helpers then work on offsets inside the checked headers, where they do not fail.
#[inline(always)]
pub unsafe fn rewrite<A: Addr>(
    skb: *mut SkBuff,
    ip: &Ip<A>,
    new: &Ports<A>,
    patch: Option<&Patch>,
) -> Result<(), RewriteError> {
    let (data, end) = kernel::packet_bounds(skb);
    // Each pointer checked on its own: the verifier tracks the fixed, the IHL-dependent and
    // the payload pointer separately.
    let iph = data.add(ETH_HLEN);
    let l4 = data.add(ip.l4_off as usize);
    let l4_hlen = if ip.proto == Proto::Udp {
        UDP_HLEN
    } else {
        TCP_MIN_HLEN
    };
    if iph.add(A::L3_HLEN) as *const u8 > end || l4.add(l4_hlen) as *const u8 > end {
        return Err(RewriteError::Untouched);
    }
    let field = patch_field(data, end, patch)?;

    A::store(iph, &new.saddr, &new.daddr);
    let payload_diff = store_l4(l4, ip.l4_off, field, ip.sport, ip.dport, new, patch);

    let addrs = A::diff(&ip.saddr, &new.saddr, &ip.daddr, &new.daddr);
    A::l3_csum(skb, addrs)?;
    l4_csum(skb, ip.l4_off, ip.proto, addrs, payload_diff)
}

/// The TCP flags byte (0 for UDP) of the UDP or TCP (`proto`) header at `l4`, once all of it
/// (TCP options included) is seen to be before `end`; `None` for a truncated header, or with
/// `udp_csum_required` a UDP header without a checksum.
#[inline(always)]
unsafe fn l4_header(
    l4: *const u8,
    end: *const u8,
    proto: Proto,
    udp_csum_required: bool,
) -> Option<u8> {
    match proto {
        Proto::Udp => {
            if l4.add(UDP_HLEN) > end {
                return None;
            }
            if udp_csum_required && load16(l4.add(UDP_CSUM as usize)) == 0 {
                return None;
            }
            Some(0)
        }
        Proto::Tcp => {
            if l4.add(TCP_MIN_HLEN) > end {
                return None;
            }
            let doff = ((*l4.add(TCP_DOFF) >> 4) as usize) * 4;
            if doff < TCP_MIN_HLEN || l4.add(doff) > end {
                return None;
            }
            Some(*l4.add(TCP_FLAGS))
        }
    }
}

/// The payload field a rewrite changes, checked to be in the packet; null without a `patch`.
#[inline(always)]
unsafe fn patch_field(
    data: *mut u8,
    end: *const u8,
    patch: Option<&Patch>,
) -> Result<*mut u8, RewriteError> {
    match patch {
        Some(p) => {
            // The mask only bounds the offset for the verifier: a DNS question ends well before.
            let field = data.add((p.off & 0x3ff) as usize);
            if field.add(2) as *const u8 > end {
                return Err(RewriteError::Untouched);
            }
            Ok(field)
        }
        None => Ok(core::ptr::null_mut()),
    }
}

/// Writes the new ports to the L4 header at `l4` (`l4_off` from the frame start) and the
/// patch to its `field`; the checksum delta of what changed there.
#[inline(always)]
unsafe fn store_l4<A>(
    l4: *mut u8,
    l4_off: u32,
    field: *mut u8,
    sport: u16,
    dport: u16,
    new: &Ports<A>,
    patch: Option<&Patch>,
) -> u32 {
    store16(l4, new.sport);
    store16(l4.add(2), new.dport);
    let mut payload_diff = checksum::port_diff(sport, new.sport, dport, new.dport);
    if let Some(p) = patch {
        // Any alignment: DNS names have any length.
        let bytes = p.new.to_ne_bytes();
        *field = bytes[0];
        *field.add(1) = bytes[1];
        let odd = p.off.wrapping_sub(l4_off) & 1 != 0;
        payload_diff = checksum::add(payload_diff, checksum::field_diff(p.old, p.new, odd));
    }
    payload_diff
}

/// Fixes the checksum of the UDP or TCP (`proto`) header at `l4_off`: the address delta `addrs`
/// with BPF_F_PSEUDO_HDR, the ports' and payload's `payload_diff` without.
#[inline(always)]
unsafe fn l4_csum(
    skb: *mut SkBuff,
    l4_off: u32,
    proto: Proto,
    addrs: u32,
    payload_diff: u32,
) -> Result<(), RewriteError> {
    let (csum_off, l4_flags) = if proto == Proto::Udp {
        (l4_off + UDP_CSUM, BPF_F_MARK_MANGLED_0)
    } else {
        (l4_off + TCP_CSUM, 0)
    };
    if kernel::l4_csum_replace(skb, csum_off, addrs, l4_flags | BPF_F_PSEUDO_HDR) != 0 {
        return Err(RewriteError::Broken);
    }
    if kernel::l4_csum_replace(skb, csum_off, payload_diff, l4_flags) != 0 {
        return Err(RewriteError::Broken);
    }
    Ok(())
}
