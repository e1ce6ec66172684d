//! The nameservers path's programs on IPv6 frames (BPF_PROG_TEST_RUN): a query to an IPv6
//! nameserver taken over goes to the IPv6 upstream (source unchanged), its answer comes back
//! from the nameserver, and everything else — other ports and servers, extension headers, no
//! IPv6 upstream configured — passes byte for byte with TC_ACT_UNSPEC. Checksums are
//! recomputed from scratch over the IPv6 pseudo-header.

use dnsredir::abi::{Config, EGRESS_SECTION, REPLY_SECTION};
use dnsredir::layout::{addr6_raw, port_raw};
use std::net::Ipv6Addr;

mod support;
use support::packet::*;
use support::prog::{load_programs_with, nameservers_path_config, run, untouched};
use support::require_root;

const CONTAINER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xdead, 1, 0, 0, 0, 0, 2);
const NAMESERVER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xdead, 1, 0, 0, 0, 0, 1);
const SECOND_NAMESERVER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0x4860, 0x4860, 0, 0, 0, 0, 0x8888);
const UPSTREAM6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xdead, 2, 0, 0, 0, 0, 0x53);
const UPSTREAM6_PORT: u16 = 5353;

fn config() -> Config {
    let mut c = nameservers_path_config(53, 0);
    c.upstream6_addr = addr6_raw(UPSTREAM6);
    c.upstream6_port = port_raw(UPSTREAM6_PORT);
    c.container6_addr = addr6_raw(CONTAINER6);
    c.nameservers6[..4].copy_from_slice(&addr6_raw(NAMESERVER6));
    c.nameservers6[4..8].copy_from_slice(&addr6_raw(SECOND_NAMESERVER6));
    c.nameserver6_ports = [port_raw(53), port_raw(53), 0, 0];
    c.nameserver6_count = 2;
    c
}

/// An IPv6 frame: `ext` (whole extension headers, the first one's type in `first_ext`) goes
/// between the fixed header and the L4 header.
struct Packet6 {
    src: Ipv6Addr,
    dst: Ipv6Addr,
    proto: u8,
    sport: u16,
    dport: u16,
    payload: Vec<u8>,
    tcp_flags: u8,
    ext: Option<(u8, Vec<u8>)>,
    zero_udp_checksum: bool,
}

fn l4_checksum6(src: Ipv6Addr, dst: Ipv6Addr, proto: u8, segment: &[u8]) -> u16 {
    let len = segment.len() as u32;
    let pseudo = sum_words(&src.octets())
        + sum_words(&dst.octets())
        + (len >> 16)
        + (len & 0xffff)
        + proto as u32;
    csum_fold(pseudo + sum_words(segment))
}

impl Packet6 {
    fn udp(src: Ipv6Addr, sport: u16, dst: Ipv6Addr, dport: u16, payload: Vec<u8>) -> Packet6 {
        Packet6 {
            src,
            dst,
            proto: UDP,
            sport,
            dport,
            payload,
            tcp_flags: 0x18,
            ext: None,
            zero_udp_checksum: false,
        }
    }

    fn tcp(src: Ipv6Addr, sport: u16, dst: Ipv6Addr, dport: u16, payload: Vec<u8>) -> Packet6 {
        Packet6 {
            proto: TCP,
            ..Packet6::udp(src, sport, dst, dport, payload)
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut l4 = Vec::new();
        l4.extend_from_slice(&self.sport.to_be_bytes());
        l4.extend_from_slice(&self.dport.to_be_bytes());
        if self.proto == UDP {
            l4.extend_from_slice(&((8 + self.payload.len()) as u16).to_be_bytes());
            l4.extend_from_slice(&[0, 0]);
        } else {
            l4.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 5 << 4, self.tcp_flags, 0xff, 0xff]);
            l4.extend_from_slice(&[0, 0, 0, 0]);
        }
        l4.extend_from_slice(&self.payload);
        let at = if self.proto == UDP { 6 } else { 16 };
        if !self.zero_udp_checksum {
            let c = l4_checksum6(self.src, self.dst, self.proto, &l4);
            l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
        }
        let (next, ext) = match &self.ext {
            Some((first, ext)) => (*first, ext.clone()),
            None => (self.proto, vec![]),
        };
        let mut frame = vec![0x02, 0, 0, 0, 0, 0xaa, 0x02, 0, 0, 0, 0, 0xbb, 0x86, 0xdd];
        frame.extend_from_slice(&[0x60, 0, 0, 0]);
        frame.extend_from_slice(&((ext.len() + l4.len()) as u16).to_be_bytes());
        frame.extend_from_slice(&[next, 64]);
        frame.extend_from_slice(&self.src.octets());
        frame.extend_from_slice(&self.dst.octets());
        frame.extend_from_slice(&ext);
        frame.extend_from_slice(&l4);
        frame
    }
}

/// (src, sport, dst, dport, L4 payload) of a frame without extension headers, its L4
/// checksum verified from scratch (and never 0 for UDP).
fn parse_checked(frame: &[u8]) -> (Ipv6Addr, u16, Ipv6Addr, u16, Vec<u8>) {
    assert_eq!(&frame[12..14], &[0x86, 0xdd]);
    let ip = &frame[14..];
    let len = u16::from_be_bytes([ip[4], ip[5]]) as usize;
    let proto = ip[6];
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&ip[8..24]).unwrap());
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&ip[24..40]).unwrap());
    let l4 = &ip[40..40 + len];
    let len32 = len as u32;
    let pseudo = sum_words(&src.octets())
        + sum_words(&dst.octets())
        + (len32 >> 16)
        + (len32 & 0xffff)
        + proto as u32;
    assert_eq!(
        csum_fold(pseudo + sum_words(l4)),
        0,
        "L4 checksum (proto {proto})"
    );
    let header = if proto == UDP {
        assert_ne!(&l4[6..8], &[0, 0], "a UDP checksum is mandatory in IPv6");
        8
    } else {
        ((l4[12] >> 4) as usize) * 4
    };
    (
        src,
        u16::from_be_bytes([l4[0], l4[1]]),
        dst,
        u16::from_be_bytes([l4[2], l4[3]]),
        l4[header..].to_vec(),
    )
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn udp_query_to_an_ipv6_nameserver_goes_to_the_ipv6_upstream_and_comes_back_from_it() {
    require_root();
    let loaded = load_programs_with(&config());
    for (i, ns) in [NAMESERVER6, SECOND_NAMESERVER6].into_iter().enumerate() {
        // Several names and ids: the checksum delta must hold for any payload.
        for (id, name) in [(0x1234u16, "example.com"), (0xfffe, "a.b.c.example.org")] {
            let port = CLIENT_PORT + i as u16;
            let query = Packet6::udp(CONTAINER6, port, ns, 53, dns_query(id, name));
            let (ret, out) = run(&loaded, EGRESS_SECTION, &query.bytes());
            assert_eq!(ret, TC_ACT_UNSPEC, "goes on out of the interface");
            let (src, sport, dst, dport, payload) = parse_checked(&out);
            assert_eq!((src, sport), (CONTAINER6, port), "source unchanged");
            assert_eq!((dst, dport), (UPSTREAM6, UPSTREAM6_PORT));
            assert_eq!(payload, query.payload);

            let answer = Packet6::udp(
                UPSTREAM6,
                UPSTREAM6_PORT,
                CONTAINER6,
                port,
                dns_answer(id, name),
            );
            let (ret, out) = run(&loaded, REPLY_SECTION, &answer.bytes());
            assert_eq!(ret, TC_ACT_UNSPEC, "restored in place");
            let (src, sport, dst, dport, payload) = parse_checked(&out);
            assert_eq!((src, sport), (ns, 53), "the nameserver the client asked");
            assert_eq!((dst, dport), (CONTAINER6, port));
            assert_eq!(payload, answer.payload);
            // One answer per query.
            untouched(&loaded, REPLY_SECTION, &answer.bytes());
        }
    }
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn tcp_connection_to_an_ipv6_nameserver_goes_to_the_upstream_from_its_syn() {
    require_root();
    let loaded = load_programs_with(&config());
    let port = CLIENT_PORT + 10;
    let mut syn = Packet6::tcp(CONTAINER6, port, NAMESERVER6, 53, vec![]);
    syn.tcp_flags = 0x02;
    let (ret, out) = run(&loaded, EGRESS_SECTION, &syn.bytes());
    assert_eq!(ret, TC_ACT_UNSPEC);
    let (src, sport, dst, dport, _) = parse_checked(&out);
    assert_eq!(
        (src, sport, dst, dport),
        (CONTAINER6, port, UPSTREAM6, UPSTREAM6_PORT)
    );
    let mut msg = vec![0, 29];
    msg.extend_from_slice(&dns_query(9, "example.com"));
    let data = Packet6::tcp(CONTAINER6, port, NAMESERVER6, 53, msg);
    let (ret, out) = run(&loaded, EGRESS_SECTION, &data.bytes());
    assert_eq!(ret, TC_ACT_UNSPEC);
    let (_, _, dst, dport, payload) = parse_checked(&out);
    assert_eq!(
        (dst, dport, payload),
        (UPSTREAM6, UPSTREAM6_PORT, data.payload.clone())
    );

    let answer = Packet6::tcp(
        UPSTREAM6,
        UPSTREAM6_PORT,
        CONTAINER6,
        port,
        dns_answer(9, "example.com"),
    );
    let (ret, out) = run(&loaded, REPLY_SECTION, &answer.bytes());
    assert_eq!(ret, TC_ACT_UNSPEC);
    let (src, sport, dst, dport, payload) = parse_checked(&out);
    assert_eq!(
        (src, sport, dst, dport),
        (NAMESERVER6, 53, CONTAINER6, port)
    );
    assert_eq!(payload, answer.payload);

    // A connection that was open before we attached (no SYN seen) stays with the nameserver.
    let other = Packet6::tcp(
        CONTAINER6,
        port + 1,
        NAMESERVER6,
        53,
        dns_query(9, "example.com"),
    );
    untouched(&loaded, EGRESS_SECTION, &other.bytes());
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn edns_size_of_ipv6_queries_is_clamped() {
    require_root();
    let loaded = load_programs_with(&config());
    // Names of odd and even length: the size field then sits at either parity.
    for name in ["example.com", "examples.com"] {
        let query = Packet6::udp(
            CONTAINER6,
            CLIENT_PORT,
            NAMESERVER6,
            53,
            dns_query_edns(3, name, 4096),
        );
        let (ret, out) = run(&loaded, EGRESS_SECTION, &query.bytes());
        assert_eq!(ret, TC_ACT_UNSPEC);
        let (_, _, dst, _, payload) = parse_checked(&out);
        assert_eq!(dst, UPSTREAM6);
        let at = edns_size_offset(name);
        assert_eq!(
            u16::from_be_bytes([payload[at], payload[at + 1]]),
            EDNS_MAX,
            "{name}"
        );
    }
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn other_ports_servers_and_ipv6_without_an_upstream_are_untouched() {
    require_root();
    let loaded = load_programs_with(&config());
    let q = || dns_query(5, "example.com");
    let other_server = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 9);
    for p in [
        Packet6::udp(CONTAINER6, CLIENT_PORT, NAMESERVER6, 5353, q()),
        Packet6::tcp(CONTAINER6, CLIENT_PORT, NAMESERVER6, 853, q()),
        Packet6::udp(CONTAINER6, CLIENT_PORT, other_server, 53, q()),
        Packet6::udp(CONTAINER6, CLIENT_PORT, UPSTREAM6, UPSTREAM6_PORT, q()),
    ] {
        untouched(&loaded, EGRESS_SECTION, &p.bytes());
    }
    // A direct answer from the upstream to a query we did not redirect.
    let direct = Packet6::udp(
        UPSTREAM6,
        UPSTREAM6_PORT,
        CONTAINER6,
        CLIENT_PORT + 20,
        dns_answer(77, "example.com"),
    );
    untouched(&loaded, REPLY_SECTION, &direct.bytes());
    // Only the used slots count.
    let mut c = config();
    c.nameserver6_count = 1;
    let (_, one) = load_with(&c).unwrap_or_else(|e| panic!("{e}"));
    untouched(
        &one,
        EGRESS_SECTION,
        &Packet6::udp(CONTAINER6, CLIENT_PORT, SECOND_NAMESERVER6, 53, q()).bytes(),
    );
    // No IPv6 upstream: IPv6 DNS passes untouched, whatever the rest says.
    let mut c = config();
    c.upstream6_port = 0;
    let (_, none) = load_with(&c).unwrap_or_else(|e| panic!("{e}"));
    let query = Packet6::udp(CONTAINER6, CLIENT_PORT, NAMESERVER6, 53, q());
    untouched(&none, EGRESS_SECTION, &query.bytes());
    // A UDP datagram without a checksum is invalid in IPv6: never made valid by us.
    let mut zero = Packet6::udp(CONTAINER6, CLIENT_PORT, NAMESERVER6, 53, q());
    zero.zero_udp_checksum = true;
    untouched(&loaded, EGRESS_SECTION, &zero.bytes());
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn extension_headers_pass_untouched() {
    require_root();
    let loaded = load_programs_with(&config());
    let q = dns_query(8, "example.com");
    // Hop-by-hop options (0), then UDP: 8 bytes, a PadN option.
    let hop_by_hop = (0u8, vec![UDP, 0, 1, 4, 0, 0, 0, 0]);
    // A fragment header (44): first fragment, more to come.
    let fragment = (44u8, vec![UDP, 0, 0, 1, 0, 0, 0x12, 0x34]);
    // Destination options (60).
    let dest_opts = (60u8, vec![UDP, 0, 1, 4, 0, 0, 0, 0]);
    for ext in [hop_by_hop, fragment, dest_opts] {
        let mut query = Packet6::udp(CONTAINER6, CLIENT_PORT, NAMESERVER6, 53, q.clone());
        query.ext = Some(ext.clone());
        untouched(&loaded, EGRESS_SECTION, &query.bytes());
        let mut answer = Packet6::udp(
            UPSTREAM6,
            UPSTREAM6_PORT,
            CONTAINER6,
            CLIENT_PORT,
            dns_answer(8, "example.com"),
        );
        answer.ext = Some(ext);
        untouched(&loaded, REPLY_SECTION, &answer.bytes());
    }
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn ipv4_and_ipv6_flows_on_the_same_port_and_id_are_kept_apart() {
    require_root();
    let mut c = config();
    c.nameservers[0] = dnsredir::layout::addr_raw(std::net::Ipv4Addr::new(192, 0, 2, 53));
    c.nameserver_ports[0] = port_raw(53);
    c.nameserver_count = 1;
    let (_, loaded) = load_with(&c).unwrap_or_else(|e| panic!("{e}"));
    let port = CLIENT_PORT + 30;
    // An IPv4 query redirected: its flow must not restore an IPv6 answer.
    let v4 = Packet::udp(
        CONTAINER,
        port,
        std::net::Ipv4Addr::new(192, 0, 2, 53),
        53,
        dns_query(42, "example.com"),
    );
    let (ret, out) = run(&loaded, EGRESS_SECTION, &v4.bytes());
    assert_eq!(ret, TC_ACT_UNSPEC);
    assert_ne!(out, v4.bytes(), "the IPv4 query is redirected");
    let answer6 = Packet6::udp(
        UPSTREAM6,
        UPSTREAM6_PORT,
        CONTAINER6,
        port,
        dns_answer(42, "example.com"),
    );
    untouched(&loaded, REPLY_SECTION, &answer6.bytes());
    // And the IPv4 answer still finds its flow.
    let answer4 = Packet::udp(UPSTREAM, 53, CONTAINER, port, dns_answer(42, "example.com"));
    let (ret, out) = run(&loaded, REPLY_SECTION, &answer4.bytes());
    assert_eq!(ret, TC_ACT_UNSPEC);
    assert_ne!(out, answer4.bytes(), "restored");
}
