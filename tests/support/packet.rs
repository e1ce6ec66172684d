//! The programs on a test bench: a fixed container configuration, the embedded object loaded
//! with it, and IPv4 and IPv6 frames and DNS messages addressed to it, for BPF_PROG_TEST_RUN.
//! Shared by the tests (through `support`) and `bench/prog.rs` (with `#[path]`).
#![allow(dead_code)]

use super::dns;
use dnsredir::abi::raw::{addr_raw, port_raw};
use dnsredir::abi::{Config, ConfigHeader, CONFIG_MAGIC, CONFIG_SYMBOL, LAYOUT_VERSION};
use dnsredir::bpf::elf::ObjectFile;
use dnsredir::bpf::embedded;
use dnsredir::bpf::load::{self, Loaded};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// TC_ACT_UNSPEC (-1) as BPF_PROG_TEST_RUN reports it: pass on to the next filter.
pub const TC_ACT_UNSPEC: u32 = u32::MAX;
pub const TC_ACT_REDIRECT: u32 = 7;

pub const RESOLVER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
pub const CONTAINER: Ipv4Addr = Ipv4Addr::new(172, 18, 0, 2);
pub const UPSTREAM: Ipv4Addr = Ipv4Addr::new(10, 53, 0, 53);
pub const DOCKERD_UDP: u16 = 41552;
pub const DOCKERD_TCP: u16 = 37011;
pub const CLIENT_PORT: u16 = 50123;

/// The EDNS size limit of [`test_config`], as the loader sets it.
pub const EDNS_MAX: u16 = 1232;

/// The configuration for the addresses above, as the loader would write it.
pub fn test_config(upstream_port: u16, flags: u16) -> Config {
    Config {
        build_id: embedded::object_hash(),
        resolver_addr: addr_raw(RESOLVER),
        container_addr: addr_raw(CONTAINER),
        upstream_addr: addr_raw(UPSTREAM),
        upstream_port: port_raw(upstream_port),
        dockerd_udp_port: port_raw(DOCKERD_UDP),
        dockerd_tcp_port: port_raw(DOCKERD_TCP),
        flags,
        edns_max: port_raw(EDNS_MAX),
        iface_ifindex: 1,
        lo_ifindex: 1,
        tcp_close_grace_jiffies: dnsredir::settings::jiffies(std::time::Duration::from_secs(10)),
        ..Config::UNSET
    }
}

/// The embedded object, configured for the addresses above, loaded into the kernel.
pub fn load_programs(upstream_port: u16, flags: u16) -> Result<(ObjectFile, Loaded), String> {
    load_with(&test_config(upstream_port, flags))
}

/// The embedded object with this configuration, loaded into the kernel.
pub fn load_with(config: &Config) -> Result<(ObjectFile, Loaded), String> {
    load_object(embedded::object_bytes(), config)
}

/// A dnsredir object (the embedded one, or another build's whose configuration has this
/// build's layout) with this configuration, loaded into the kernel.
pub fn load_object(bytes: &[u8], config: &Config) -> Result<(ObjectFile, Loaded), String> {
    let mut object = ObjectFile::parse(bytes).map_err(|e| format!("parse: {e}"))?;
    match object
        .global(CONFIG_SYMBOL)
        .and_then(ConfigHeader::from_bytes)
    {
        Some(h) if h.is_current() => {}
        Some(h) if h.magic == CONFIG_MAGIC => {
            return Err(format!(
                "configuration layout {} (this build's is {LAYOUT_VERSION})",
                h.layout
            ))
        }
        _ => return Err("no dnsredir configuration header".into()),
    }
    object
        .set_global(CONFIG_SYMBOL, &config.to_bytes())
        .map_err(|e| format!("config: {e}"))?;
    let loaded =
        load::load(&object, &load::Options::sched_cls()).map_err(|e| format!("load: {e}"))?;
    Ok((object, loaded))
}

pub const UDP: u8 = 17;
pub const TCP: u8 = 6;

pub fn csum_fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

pub fn sum_words(bytes: &[u8]) -> u32 {
    bytes
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32)
        .sum()
}

fn octets(addr: IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// The UDP or TCP checksum of `segment` (0 over a segment whose checksum is right). The IPv4
/// and IPv6 pseudo-headers sum to the same words: the addresses, the protocol and the length
/// (16 bits in IPv4, 32 in IPv6, whose upper half is 0 below 64 KiB).
pub fn l4_checksum(
    src: impl Into<IpAddr>,
    dst: impl Into<IpAddr>,
    proto: u8,
    segment: &[u8],
) -> u16 {
    let len = segment.len() as u32;
    let pseudo = sum_words(&octets(src.into()))
        + sum_words(&octets(dst.into()))
        + proto as u32
        + (len >> 16)
        + (len & 0xffff);
    csum_fold(pseudo + sum_words(segment))
}

/// An Ethernet frame with one UDP or TCP segment over IPv4 or IPv6 (the addresses say which).
pub struct Packet {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    pub payload: Vec<u8>,
    pub zero_udp_checksum: bool,
    pub tcp_flags: u8,
    /// Whole 4-byte words; the data offset counts them.
    pub tcp_options: Vec<u8>,
    /// IPv4 only: options (whole 4-byte words; the IHL counts them).
    pub ip_options: Vec<u8>,
    /// IPv4 only: flags and fragment offset.
    pub frag: u16,
    /// IPv6 only: whole extension headers between the fixed header and the L4 header, the
    /// first one's type first.
    pub ext: Option<(u8, Vec<u8>)>,
}

impl Packet {
    /// A UDP datagram from `src` to `dst` (of one family).
    pub fn udp(src: impl Into<SocketAddr>, dst: impl Into<SocketAddr>, payload: Vec<u8>) -> Packet {
        let (src, dst) = (src.into(), dst.into());
        Packet {
            src: src.ip(),
            dst: dst.ip(),
            proto: UDP,
            sport: src.port(),
            dport: dst.port(),
            payload,
            zero_udp_checksum: false,
            tcp_flags: 0x18,
            tcp_options: vec![],
            ip_options: vec![],
            frag: 0,
            ext: None,
        }
    }

    /// A TCP segment (PSH|ACK unless [`Self::tcp_flags`] says otherwise) from `src` to `dst`.
    pub fn tcp(src: impl Into<SocketAddr>, dst: impl Into<SocketAddr>, payload: Vec<u8>) -> Packet {
        Packet {
            proto: TCP,
            ..Packet::udp(src, dst, payload)
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        let l4 = self.segment();
        let (ethertype, ip) = match (self.src, self.dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => ([0x08, 0x00], self.ipv4_header(src, dst, &l4)),
            (IpAddr::V6(src), IpAddr::V6(dst)) => ([0x86, 0xdd], self.ipv6_header(src, dst, &l4)),
            (src, dst) => panic!("a packet from {src} to {dst}: one family for both"),
        };
        let mut frame = vec![0x02, 0, 0, 0, 0, 0xaa, 0x02, 0, 0, 0, 0, 0xbb];
        frame.extend_from_slice(&ethertype);
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&l4);
        frame
    }

    /// The UDP or TCP header and the payload, with its checksum unless `zero_udp_checksum`.
    fn segment(&self) -> Vec<u8> {
        let mut l4 = Vec::new();
        l4.extend_from_slice(&self.sport.to_be_bytes());
        l4.extend_from_slice(&self.dport.to_be_bytes());
        if self.proto == UDP {
            l4.extend_from_slice(&((8 + self.payload.len()) as u16).to_be_bytes());
            l4.extend_from_slice(&[0, 0]);
        } else {
            l4.extend_from_slice(&[
                0,
                0,
                0,
                1,
                0,
                0,
                0,
                0,
                ((5 + self.tcp_options.len() / 4) as u8) << 4,
                self.tcp_flags,
                0xff,
                0xff,
                0,
                0,
                0,
                0,
            ]);
            l4.extend_from_slice(&self.tcp_options);
        }
        l4.extend_from_slice(&self.payload);
        let csum_at = if self.proto == UDP { 6 } else { 16 };
        if !self.zero_udp_checksum {
            let c = l4_checksum(self.src, self.dst, self.proto, &l4);
            l4[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
        }
        l4
    }

    fn ipv4_header(&self, src: Ipv4Addr, dst: Ipv4Addr, l4: &[u8]) -> Vec<u8> {
        assert!(self.ext.is_none(), "extension headers are IPv6's");
        let ihl = 20 + self.ip_options.len();
        let mut ip = vec![0x40 | (ihl / 4) as u8, 0];
        ip.extend_from_slice(&((ihl + l4.len()) as u16).to_be_bytes());
        ip.extend_from_slice(&[0x12, 0x34]);
        ip.extend_from_slice(&self.frag.to_be_bytes());
        ip.extend_from_slice(&[64, self.proto, 0, 0]);
        ip.extend_from_slice(&src.octets());
        ip.extend_from_slice(&dst.octets());
        ip.extend_from_slice(&self.ip_options);
        let c = csum_fold(sum_words(&ip));
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        ip
    }

    /// The fixed header and the extension headers.
    fn ipv6_header(&self, src: Ipv6Addr, dst: Ipv6Addr, l4: &[u8]) -> Vec<u8> {
        assert!(
            self.ip_options.is_empty() && self.frag == 0,
            "IP options and the fragment field are IPv4's"
        );
        let (next, ext) = match &self.ext {
            Some((first, ext)) => (*first, &ext[..]),
            None => (self.proto, &[][..]),
        };
        let mut ip = vec![0x60, 0, 0, 0];
        ip.extend_from_slice(&((ext.len() + l4.len()) as u16).to_be_bytes());
        ip.extend_from_slice(&[next, 64]);
        ip.extend_from_slice(&src.octets());
        ip.extend_from_slice(&dst.octets());
        ip.extend_from_slice(ext);
        ip
    }
}

/// What a frame without IPv6 extension headers says, its checksums verified from scratch (the
/// IPv4 header's, and the L4 one, never 0 for UDP over IPv6).
#[derive(Debug, PartialEq, Eq)]
pub struct Seen {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub payload: Vec<u8>,
}

pub fn parse_checked(frame: &[u8]) -> Seen {
    let ip = &frame[14..];
    let v4 = |at: usize| IpAddr::from([ip[at], ip[at + 1], ip[at + 2], ip[at + 3]]);
    let v6 = |at: usize| IpAddr::from(<[u8; 16]>::try_from(&ip[at..at + 16]).expect("16 bytes"));
    let (src, dst, proto, l4) = match [frame[12], frame[13]] {
        [0x08, 0x00] => {
            let ihl = ((ip[0] & 0x0f) as usize) * 4;
            assert_eq!(csum_fold(sum_words(&ip[..ihl])), 0, "IPv4 header checksum");
            let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
            (v4(12), v4(16), ip[9], &ip[ihl..total])
        }
        [0x86, 0xdd] => {
            let len = u16::from_be_bytes([ip[4], ip[5]]) as usize;
            (v6(8), v6(24), ip[6], &ip[40..40 + len])
        }
        other => panic!("EtherType {other:02x?}: neither IPv4 nor IPv6"),
    };
    let kind = if proto == UDP { "UDP" } else { "TCP" };
    assert_eq!(
        l4_checksum(src, dst, proto, l4),
        0,
        "{kind} checksum ({src} to {dst})"
    );
    let header = if proto == UDP {
        assert!(
            src.is_ipv4() || l4[6..8] != [0, 0],
            "a UDP checksum is mandatory in IPv6"
        );
        8
    } else {
        ((l4[12] >> 4) as usize) * 4
    };
    Seen {
        src,
        dst,
        sport: u16::from_be_bytes([l4[0], l4[1]]),
        dport: u16::from_be_bytes([l4[2], l4[3]]),
        payload: l4[header..].to_vec(),
    }
}

/// A DNS query for `name` (type A), as the client in the container sends it.
pub fn dns_query(id: u16, name: &str) -> Vec<u8> {
    dns::build_query(id, name, dns::TYPE_A)
}

/// A query with an EDNS OPT record announcing `udp_size` (RFC 6891), as dig sends one.
pub fn dns_query_edns(id: u16, name: &str, udp_size: u16) -> Vec<u8> {
    let mut m = dns_query(id, name);
    m[11] = 1; // ARCOUNT
    m.push(0); // root owner name
    m.extend_from_slice(&41u16.to_be_bytes());
    m.extend_from_slice(&udp_size.to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 0]); // extended RCODE, version, flags
    m.extend_from_slice(&[0, 0]); // no options
    m
}

/// Where the OPT record's payload size of [`dns_query_edns`] sits in the DNS message.
pub fn edns_size_offset(name: &str) -> usize {
    let name_len: usize = name
        .split('.')
        .filter(|l| !l.is_empty())
        .map(|l| l.len() + 1)
        .sum::<usize>()
        + 1;
    12 + name_len + 4 + 3
}

/// The upstream's answer to [`dns_query`]: one A record, 203.0.113.7.
pub fn dns_answer(id: u16, name: &str) -> Vec<u8> {
    let answer = Ipv4Addr::new(203, 0, 113, 7);
    dns::build_answer(&dns_query(id, name), answer, &Default::default()).expect("a query")
}

/// The test upstream's DNS port (not 53, so that a port rewrite shows in every test).
pub const UPSTREAM_PORT: u16 = 5353;

/// The client's query for `name` as lo ingress sees it: to dockerd's UDP port after Docker's DNAT.
pub fn query_packet(id: u16, name: &str) -> Packet {
    Packet::udp(
        (CLIENT, CLIENT_PORT),
        (RESOLVER, DOCKERD_UDP),
        dns_query(id, name),
    )
}

/// The upstream's answer to [`query_packet`] as the interface's ingress sees it.
pub fn reply_packet(id: u16, name: &str) -> Packet {
    Packet::udp(
        (UPSTREAM, UPSTREAM_PORT),
        (CONTAINER, CLIENT_PORT),
        dns_answer(id, name),
    )
}
