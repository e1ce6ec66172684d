//! The programs on a test bench: a fixed container configuration, the embedded object loaded
//! with it, and IPv4 frames and DNS messages addressed to it, for BPF_PROG_TEST_RUN. Shared by
//! `tests/prog_test_run.rs` (through `support`) and `bench/prog.rs` (with `#[path]`).
#![allow(dead_code)]

use super::dns;
use dnsredir::abi::{Config, CONFIG_SYMBOL};
use dnsredir::bpf::elf::ObjectFile;
use dnsredir::bpf::embedded;
use dnsredir::bpf::load::{self, Loaded};
use dnsredir::layout::{addr_raw, port_raw};
use std::net::Ipv4Addr;

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
        tcp_close_grace_ns: 10_000_000_000,
        ..Config::UNSET
    }
}

/// The embedded object, configured for the addresses above, loaded into the kernel.
pub fn load_programs(upstream_port: u16, flags: u16) -> Result<(ObjectFile, Loaded), String> {
    load_with(&test_config(upstream_port, flags))
}

/// The embedded object with this configuration, loaded into the kernel.
pub fn load_with(config: &Config) -> Result<(ObjectFile, Loaded), String> {
    let mut object =
        ObjectFile::parse(embedded::object_bytes()).map_err(|e| format!("parse: {e}"))?;
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

pub fn l4_checksum(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, segment: &[u8]) -> u16 {
    let pseudo =
        sum_words(&src.octets()) + sum_words(&dst.octets()) + proto as u32 + segment.len() as u32;
    csum_fold(pseudo + sum_words(segment))
}

pub struct Packet {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    pub payload: Vec<u8>,
    pub ip_options: Vec<u8>,
    pub frag: u16,
    pub zero_udp_checksum: bool,
    pub tcp_flags: u8,
    /// Whole 4-byte words; the data offset counts them.
    pub tcp_options: Vec<u8>,
}

impl Packet {
    pub fn udp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, payload: Vec<u8>) -> Packet {
        Packet {
            src,
            dst,
            proto: UDP,
            sport,
            dport,
            payload,
            ip_options: vec![],
            frag: 0,
            zero_udp_checksum: false,
            tcp_flags: 0x18,
            tcp_options: vec![],
        }
    }

    pub fn tcp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, payload: Vec<u8>) -> Packet {
        Packet {
            proto: TCP,
            ..Packet::udp(src, sport, dst, dport, payload)
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
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
        let ihl = 20 + self.ip_options.len();
        let mut ip = vec![0x40 | (ihl / 4) as u8, 0];
        ip.extend_from_slice(&((ihl + l4.len()) as u16).to_be_bytes());
        ip.extend_from_slice(&[0x12, 0x34]);
        ip.extend_from_slice(&self.frag.to_be_bytes());
        ip.extend_from_slice(&[64, self.proto, 0, 0]);
        ip.extend_from_slice(&self.src.octets());
        ip.extend_from_slice(&self.dst.octets());
        ip.extend_from_slice(&self.ip_options);
        let c = csum_fold(sum_words(&ip));
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let mut frame = vec![0x02, 0, 0, 0, 0, 0xaa, 0x02, 0, 0, 0, 0, 0xbb, 0x08, 0x00];
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&l4);
        frame
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
        CLIENT,
        CLIENT_PORT,
        RESOLVER,
        DOCKERD_UDP,
        dns_query(id, name),
    )
}

/// The upstream's answer to [`query_packet`] as the interface's ingress sees it.
pub fn reply_packet(id: u16, name: &str) -> Packet {
    Packet::udp(
        UPSTREAM,
        UPSTREAM_PORT,
        CONTAINER,
        CLIENT_PORT,
        dns_answer(id, name),
    )
}
