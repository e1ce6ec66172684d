//! The nameservers path's programs on what only IPv6 frames have (BPF_PROG_TEST_RUN): no IPv6
//! upstream configured, a UDP datagram without a checksum, extension headers — all pass byte
//! for byte with TC_ACT_UNSPEC — and IPv4 and IPv6 flows kept apart. What both families share
//! is tested for both in egress_prog.rs.

use dnsredir::abi::raw::{addr_raw, port_raw};
use dnsredir::abi::{EGRESS_SECTION, REPLY_SECTION};

mod support;
use support::packet::*;
use support::prog::{
    assert_passed, load_config, run, NameserversPath, CONTAINER6, NAMESERVER, NAMESERVER6,
    UPSTREAM6, UPSTREAM6_PORT,
};

#[test]
#[ignore = "needs root: bpf(2)"]
fn without_an_ipv6_upstream_or_a_udp_checksum_ipv6_dns_is_untouched() {
    let path = NameserversPath::ipv6();
    let query = || {
        Packet::udp(
            (CONTAINER6, CLIENT_PORT),
            (NAMESERVER6, 53),
            dns_query(5, "example.com"),
        )
    };
    // No IPv6 upstream: IPv6 DNS passes untouched, whatever the rest says.
    let mut c = path.config;
    c.upstream6_port = 0;
    let (_, none) = load_config(&c);
    assert_passed(&none, EGRESS_SECTION, &query().bytes(), "no IPv6 upstream");
    // A UDP datagram without a checksum is invalid in IPv6: never made valid by us.
    let mut zero = query();
    zero.zero_udp_checksum = true;
    assert_passed(
        &path.load(),
        EGRESS_SECTION,
        &zero.bytes(),
        "UDP checksum 0",
    );
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn extension_headers_pass_untouched() {
    let loaded = NameserversPath::ipv6().load();
    let q = dns_query(8, "example.com");
    let hop_by_hop = ("hop-by-hop options", 0u8, vec![UDP, 0, 1, 4, 0, 0, 0, 0]); // a PadN option
    let fragment = (
        "a first fragment",
        44u8,
        vec![UDP, 0, 0, 1, 0, 0, 0x12, 0x34],
    ); // more to come
    let dest_opts = ("destination options", 60u8, vec![UDP, 0, 1, 4, 0, 0, 0, 0]);
    for (what, kind, ext) in [hop_by_hop, fragment, dest_opts] {
        let mut query = Packet::udp((CONTAINER6, CLIENT_PORT), (NAMESERVER6, 53), q.clone());
        query.ext = Some((kind, ext.clone()));
        assert_passed(
            &loaded,
            EGRESS_SECTION,
            &query.bytes(),
            &format!("query, {what}"),
        );
        let mut answer = Packet::udp(
            (UPSTREAM6, UPSTREAM6_PORT),
            (CONTAINER6, CLIENT_PORT),
            dns_answer(8, "example.com"),
        );
        answer.ext = Some((kind, ext));
        assert_passed(
            &loaded,
            REPLY_SECTION,
            &answer.bytes(),
            &format!("answer, {what}"),
        );
    }
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn ipv4_and_ipv6_flows_on_the_same_port_and_id_are_kept_apart() {
    let mut c = NameserversPath::ipv6().config;
    c.nameservers[0] = addr_raw(NAMESERVER);
    c.nameserver_ports[0] = port_raw(53);
    c.nameserver_count = 1;
    let (_, loaded) = load_config(&c);
    let port = CLIENT_PORT + 30;
    // An IPv4 query redirected: its flow must not restore an IPv6 answer.
    let v4 = Packet::udp(
        (CONTAINER, port),
        (NAMESERVER, 53),
        dns_query(42, "example.com"),
    );
    let (ret, out) = run(&loaded, EGRESS_SECTION, &v4.bytes());
    assert_eq!(ret, TC_ACT_UNSPEC);
    assert_ne!(out, v4.bytes(), "the IPv4 query is redirected");
    let answer6 = Packet::udp(
        (UPSTREAM6, UPSTREAM6_PORT),
        (CONTAINER6, port),
        dns_answer(42, "example.com"),
    );
    assert_passed(&loaded, REPLY_SECTION, &answer6.bytes(), "the IPv6 answer");
    // And the IPv4 answer still finds its flow.
    let answer4 = Packet::udp(
        (UPSTREAM, UPSTREAM_PORT),
        (CONTAINER, port),
        dns_answer(42, "example.com"),
    );
    let (ret, out) = run(&loaded, REPLY_SECTION, &answer4.bytes());
    assert_eq!(ret, TC_ACT_UNSPEC);
    assert_ne!(out, answer4.bytes(), "restored");
}
