//! The nameservers path's programs run by the kernel on crafted packets (BPF_PROG_TEST_RUN):
//! the egress program rewrites a query to a taken-over nameserver to the upstream (source
//! unchanged), the reply program restores the nameserver as the answer's source, and both pass
//! everything else byte for byte with TC_ACT_UNSPEC. Checksums are recomputed from scratch.

use dnsredir::abi::{Config, EGRESS_SECTION, REPLY_SECTION};
use dnsredir::layout::{addr_raw, port_raw};
use std::net::Ipv4Addr;

mod support;
use support::packet::*;
use support::prog::{load_programs_with, nameservers_path_config, run, untouched};
use support::require_root;

/// The nameserver resolv.conf names (the default bridge's 8.8.8.8, say).
const NAMESERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 53);
const SECOND_NAMESERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 54);

fn config() -> Config {
    let mut c = nameservers_path_config(UPSTREAM_PORT, 0);
    c.nameservers[0] = addr_raw(NAMESERVER);
    c.nameserver_ports[0] = port_raw(53);
    c.nameservers[1] = addr_raw(SECOND_NAMESERVER);
    c.nameserver_ports[1] = port_raw(53);
    c.nameserver_count = 2;
    c
}

/// (src, sport, dst, dport, L4 payload), with the IPv4 and L4 checksums verified from scratch.
fn parse_checked(frame: &[u8]) -> (Ipv4Addr, u16, Ipv4Addr, u16, Vec<u8>) {
    let ip = &frame[14..];
    let ihl = ((ip[0] & 0x0f) as usize) * 4;
    assert_eq!(csum_fold(sum_words(&ip[..ihl])), 0, "IPv4 header checksum");
    let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let l4 = &ip[ihl..total];
    let pseudo =
        sum_words(&src.octets()) + sum_words(&dst.octets()) + ip[9] as u32 + l4.len() as u32;
    assert_eq!(
        csum_fold(pseudo + sum_words(l4)),
        0,
        "L4 checksum (proto {})",
        ip[9]
    );
    let header = if ip[9] == UDP {
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
#[ignore = "needs root: network namespaces, bpf(2)"]
fn udp_query_to_a_nameserver_goes_to_the_upstream_and_its_answer_comes_back_from_it() {
    require_root();
    let loaded = load_programs_with(&config());
    for ns in [NAMESERVER, SECOND_NAMESERVER] {
        let query = Packet::udp(
            CONTAINER,
            CLIENT_PORT,
            ns,
            53,
            dns_query(0x1234, "example.com"),
        );
        let (ret, out) = run(&loaded, EGRESS_SECTION, &query.bytes());
        assert_eq!(
            ret, TC_ACT_UNSPEC,
            "a rewritten query goes on out of the interface"
        );
        let (src, sport, dst, dport, payload) = parse_checked(&out);
        assert_eq!((src, sport), (CONTAINER, CLIENT_PORT), "source unchanged");
        assert_eq!((dst, dport), (UPSTREAM, UPSTREAM_PORT));
        assert_eq!(payload, query.payload);

        let answer = Packet::udp(
            UPSTREAM,
            UPSTREAM_PORT,
            CONTAINER,
            CLIENT_PORT,
            dns_answer(0x1234, "example.com"),
        );
        let (ret, out) = run(&loaded, REPLY_SECTION, &answer.bytes());
        assert_eq!(ret, TC_ACT_UNSPEC, "restored in place, no redirect to lo");
        let (src, sport, dst, dport, payload) = parse_checked(&out);
        assert_eq!((src, sport), (ns, 53), "the nameserver the client asked");
        assert_eq!((dst, dport), (CONTAINER, CLIENT_PORT));
        assert_eq!(payload, answer.payload);
        // One answer per query.
        untouched(&loaded, REPLY_SECTION, &answer.bytes());
    }
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn tcp_connection_to_a_nameserver_goes_to_the_upstream_from_its_syn() {
    require_root();
    let loaded = load_programs_with(&config());
    let mut syn = Packet::tcp(CONTAINER, CLIENT_PORT + 1, NAMESERVER, 53, vec![]);
    syn.tcp_flags = 0x02;
    let (ret, out) = run(&loaded, EGRESS_SECTION, &syn.bytes());
    assert_eq!(ret, TC_ACT_UNSPEC);
    let (src, sport, dst, dport, _) = parse_checked(&out);
    assert_eq!(
        (src, sport, dst, dport),
        (CONTAINER, CLIENT_PORT + 1, UPSTREAM, UPSTREAM_PORT)
    );

    let data = Packet::tcp(
        CONTAINER,
        CLIENT_PORT + 1,
        NAMESERVER,
        53,
        dns_query(9, "example.com"),
    );
    let (ret, out) = run(&loaded, EGRESS_SECTION, &data.bytes());
    assert_eq!(ret, TC_ACT_UNSPEC);
    let (_, _, dst, dport, payload) = parse_checked(&out);
    assert_eq!(
        (dst, dport, payload),
        (UPSTREAM, UPSTREAM_PORT, data.payload.clone())
    );

    let answer = Packet::tcp(
        UPSTREAM,
        UPSTREAM_PORT,
        CONTAINER,
        CLIENT_PORT + 1,
        dns_answer(9, "example.com"),
    );
    let (ret, out) = run(&loaded, REPLY_SECTION, &answer.bytes());
    assert_eq!(ret, TC_ACT_UNSPEC);
    let (src, sport, dst, dport, _) = parse_checked(&out);
    assert_eq!(
        (src, sport, dst, dport),
        (NAMESERVER, 53, CONTAINER, CLIENT_PORT + 1)
    );

    // A connection that was open before we attached (no SYN seen) stays with the nameserver.
    let other = Packet::tcp(
        CONTAINER,
        CLIENT_PORT + 2,
        NAMESERVER,
        53,
        dns_query(9, "example.com"),
    );
    untouched(&loaded, EGRESS_SECTION, &other.bytes());
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn edns_size_is_clamped_as_on_the_resolver_path() {
    require_root();
    let loaded = load_programs_with(&config());
    let name = "example.com";
    let query = Packet::udp(
        CONTAINER,
        CLIENT_PORT,
        NAMESERVER,
        53,
        dns_query_edns(3, name, 4096),
    );
    let (ret, out) = run(&loaded, EGRESS_SECTION, &query.bytes());
    assert_eq!(ret, TC_ACT_UNSPEC);
    let (_, _, dst, _, payload) = parse_checked(&out);
    assert_eq!(dst, UPSTREAM);
    let at = edns_size_offset(name);
    assert_eq!(u16::from_be_bytes([payload[at], payload[at + 1]]), EDNS_MAX);
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn other_ports_other_servers_and_other_paths_are_untouched() {
    require_root();
    let loaded = load_programs_with(&config());
    let q = || dns_query(5, "example.com");
    // The nameserver on another port.
    untouched(
        &loaded,
        EGRESS_SECTION,
        &Packet::udp(CONTAINER, CLIENT_PORT, NAMESERVER, 5353, q()).bytes(),
    );
    untouched(
        &loaded,
        EGRESS_SECTION,
        &Packet::tcp(CONTAINER, CLIENT_PORT, NAMESERVER, 853, q()).bytes(),
    );
    // A direct query to another server, the upstream included.
    untouched(
        &loaded,
        EGRESS_SECTION,
        &Packet::udp(CONTAINER, CLIENT_PORT, Ipv4Addr::new(9, 9, 9, 9), 53, q()).bytes(),
    );
    untouched(
        &loaded,
        EGRESS_SECTION,
        &Packet::udp(CONTAINER, CLIENT_PORT, UPSTREAM, UPSTREAM_PORT, q()).bytes(),
    );
    // A direct answer from the upstream to a query we did not redirect.
    let direct = Packet::udp(
        UPSTREAM,
        UPSTREAM_PORT,
        CONTAINER,
        CLIENT_PORT,
        dns_answer(77, "example.com"),
    );
    untouched(&loaded, REPLY_SECTION, &direct.bytes());
    // Not a query for the nameservers when the embedded-resolver path is in force.
    let mut c = config();
    c.path = dnsredir::abi::PATH_EMBEDDED_RESOLVER;
    let (_, resolver_path) = load_with(&c).unwrap_or_else(|e| panic!("{e}"));
    untouched(
        &resolver_path,
        EGRESS_SECTION,
        &Packet::udp(CONTAINER, CLIENT_PORT, NAMESERVER, 53, q()).bytes(),
    );
    // Only the used slots count.
    let mut c = config();
    c.nameserver_count = 1;
    let (_, one) = load_with(&c).unwrap_or_else(|e| panic!("{e}"));
    untouched(
        &one,
        EGRESS_SECTION,
        &Packet::udp(CONTAINER, CLIENT_PORT, SECOND_NAMESERVER, 53, q()).bytes(),
    );
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn ipv6_dns_passes_untouched() {
    require_root();
    let loaded = load_programs_with(&config());
    let query = dns_query(6, "example.com");
    let mut frame = vec![0x02, 0, 0, 0, 0, 0xaa, 0x02, 0, 0, 0, 0, 0xbb, 0x86, 0xdd];
    frame.extend_from_slice(&[0x60, 0, 0, 0]);
    frame.extend_from_slice(&((8 + query.len()) as u16).to_be_bytes());
    frame.extend_from_slice(&[UDP, 64]);
    frame.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    frame.extend_from_slice(&[
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53,
    ]);
    frame.extend_from_slice(&CLIENT_PORT.to_be_bytes());
    frame.extend_from_slice(&53u16.to_be_bytes());
    frame.extend_from_slice(&((8 + query.len()) as u16).to_be_bytes());
    frame.extend_from_slice(&[0x12, 0x34]);
    frame.extend_from_slice(&query);
    untouched(&loaded, EGRESS_SECTION, &frame);
    untouched(&loaded, REPLY_SECTION, &frame);
}
