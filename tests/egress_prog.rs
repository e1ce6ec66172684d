//! The nameservers path's programs run by the kernel on crafted packets (BPF_PROG_TEST_RUN),
//! over IPv4 and IPv6 alike: the egress program rewrites a query to a taken-over nameserver to
//! the upstream (source unchanged), the reply program restores the nameserver as the answer's
//! source, and both pass everything else byte for byte with TC_ACT_UNSPEC. Checksums are
//! recomputed from scratch. What only one family has is here for IPv4 and in egress_v6_prog.rs
//! for IPv6.

use dnsredir::abi::{EGRESS_SECTION, PATH_EMBEDDED_RESOLVER, REPLY_SECTION};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

mod support;
use support::packet::*;
use support::prog::{assert_passed, load_config, run, NameserversPath, NAMESERVER};

#[test]
#[ignore = "needs root: bpf(2)"]
fn udp_query_to_a_nameserver_goes_to_the_upstream_and_its_answer_comes_back_from_it() {
    for path in NameserversPath::both() {
        let loaded = path.load();
        for (i, ns) in path.nameservers.into_iter().enumerate() {
            // Several names and ids: the checksum delta must hold for any payload.
            for (id, name) in [(0x1234u16, "example.com"), (0xfffe, "a.b.c.example.org")] {
                let what = format!("{} query {id:#x} for {name} to {ns}", path.family());
                let port = CLIENT_PORT + i as u16;
                let query = Packet::udp((path.container, port), (ns, 53), dns_query(id, name));
                let (ret, out) = run(&loaded, EGRESS_SECTION, &query.bytes());
                assert_eq!(ret, TC_ACT_UNSPEC, "{what}: goes on out of the interface");
                let seen = parse_checked(&out);
                assert_eq!(
                    (seen.src, seen.sport),
                    (path.container, port),
                    "{what}: source unchanged"
                );
                assert_eq!(
                    (seen.dst, seen.dport),
                    (path.upstream, path.upstream_port),
                    "{what}"
                );
                assert_eq!(seen.payload, query.payload, "{what}");

                let answer = Packet::udp(
                    (path.upstream, path.upstream_port),
                    (path.container, port),
                    dns_answer(id, name),
                );
                let (ret, out) = run(&loaded, REPLY_SECTION, &answer.bytes());
                assert_eq!(
                    ret, TC_ACT_UNSPEC,
                    "{what}: answer restored in place, no redirect to lo"
                );
                let seen = parse_checked(&out);
                assert_eq!(
                    (seen.src, seen.sport),
                    (ns, 53),
                    "{what}: answer from the nameserver the client asked"
                );
                assert_eq!((seen.dst, seen.dport), (path.container, port), "{what}");
                assert_eq!(seen.payload, answer.payload, "{what}");
                let again = answer.bytes();
                assert_passed(
                    &loaded,
                    REPLY_SECTION,
                    &again,
                    &format!("{what}: answer again"),
                );
            }
        }
    }
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn tcp_connection_to_a_nameserver_goes_to_the_upstream_from_its_syn() {
    for path in NameserversPath::both() {
        let loaded = path.load();
        let family = path.family();
        let (ns, port) = (path.nameservers[0], CLIENT_PORT + 10);
        let mut syn = Packet::tcp((path.container, port), (ns, 53), vec![]);
        syn.tcp_flags = 0x02;
        let (ret, out) = run(&loaded, EGRESS_SECTION, &syn.bytes());
        assert_eq!(ret, TC_ACT_UNSPEC, "{family} SYN");
        let seen = parse_checked(&out);
        assert_eq!(
            (seen.src, seen.sport, seen.dst, seen.dport),
            (path.container, port, path.upstream, path.upstream_port),
            "{family} SYN"
        );

        let mut msg = vec![0, 29];
        msg.extend_from_slice(&dns_query(9, "example.com"));
        let data = Packet::tcp((path.container, port), (ns, 53), msg);
        let (ret, out) = run(&loaded, EGRESS_SECTION, &data.bytes());
        assert_eq!(ret, TC_ACT_UNSPEC, "{family} query");
        let seen = parse_checked(&out);
        assert_eq!(
            (seen.dst, seen.dport, seen.payload),
            (path.upstream, path.upstream_port, data.payload.clone()),
            "{family} query"
        );

        let answer = Packet::tcp(
            (path.upstream, path.upstream_port),
            (path.container, port),
            dns_answer(9, "example.com"),
        );
        let (ret, out) = run(&loaded, REPLY_SECTION, &answer.bytes());
        assert_eq!(ret, TC_ACT_UNSPEC, "{family} answer");
        let seen = parse_checked(&out);
        assert_eq!(
            (seen.src, seen.sport, seen.dst, seen.dport),
            (ns, 53, path.container, port),
            "{family} answer"
        );
        assert_eq!(seen.payload, answer.payload, "{family} answer");

        // A connection that was open before we attached (no SYN seen) stays with the nameserver.
        let other = Packet::tcp(
            (path.container, port + 1),
            (ns, 53),
            dns_query(9, "example.com"),
        );
        let what = format!("{family}: a connection without its SYN");
        assert_passed(&loaded, EGRESS_SECTION, &other.bytes(), &what);
    }
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn edns_size_is_clamped_as_on_the_resolver_path() {
    for path in NameserversPath::both() {
        let loaded = path.load();
        // Names of odd and even length: the size field then sits at either parity.
        for name in ["example.com", "examples.com"] {
            let what = format!("{} query for {name}", path.family());
            let query = Packet::udp(
                (path.container, CLIENT_PORT),
                (path.nameservers[0], 53),
                dns_query_edns(3, name, 4096),
            );
            let (ret, out) = run(&loaded, EGRESS_SECTION, &query.bytes());
            assert_eq!(ret, TC_ACT_UNSPEC, "{what}");
            let seen = parse_checked(&out);
            assert_eq!(seen.dst, path.upstream, "{what}");
            let at = edns_size_offset(name);
            assert_eq!(
                u16::from_be_bytes([seen.payload[at], seen.payload[at + 1]]),
                EDNS_MAX,
                "{what}"
            );
        }
    }
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn other_ports_other_servers_and_unused_slots_are_untouched() {
    for path in NameserversPath::both() {
        let loaded = path.load();
        let q = || dns_query(5, "example.com");
        let (ns, container) = (path.nameservers[0], path.container);
        let other_server: IpAddr = match container {
            IpAddr::V4(_) => Ipv4Addr::new(9, 9, 9, 9).into(),
            IpAddr::V6(_) => Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 9).into(),
        };
        for (what, query) in [
            (
                "the nameserver on another port",
                Packet::udp((container, CLIENT_PORT), (ns, 5353), q()),
            ),
            (
                "DNS over TLS",
                Packet::tcp((container, CLIENT_PORT), (ns, 853), q()),
            ),
            (
                "another server",
                Packet::udp((container, CLIENT_PORT), (other_server, 53), q()),
            ),
            (
                "the upstream itself",
                Packet::udp(
                    (container, CLIENT_PORT),
                    (path.upstream, path.upstream_port),
                    q(),
                ),
            ),
        ] {
            let what = format!("{}: {what}", path.family());
            assert_passed(&loaded, EGRESS_SECTION, &query.bytes(), &what);
        }
        let direct = Packet::udp(
            (path.upstream, path.upstream_port),
            (container, CLIENT_PORT + 20),
            dns_answer(77, "example.com"),
        );
        let what = format!("{}: an answer to a query not redirected", path.family());
        assert_passed(&loaded, REPLY_SECTION, &direct.bytes(), &what);

        let second = Packet::udp((container, CLIENT_PORT), (path.nameservers[1], 53), q());
        let what = format!(
            "{}: the second nameserver, its slot not counted",
            path.family()
        );
        let one = path.one_nameserver().load();
        assert_passed(&one, EGRESS_SECTION, &second.bytes(), &what);
    }
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn a_query_to_a_nameserver_is_untouched_on_the_embedded_resolver_path() {
    let mut c = NameserversPath::ipv4().config;
    c.path = PATH_EMBEDDED_RESOLVER;
    let (_, resolver_path) = load_config(&c);
    let query = Packet::udp(
        (CONTAINER, CLIENT_PORT),
        (NAMESERVER, 53),
        dns_query(5, "example.com"),
    );
    assert_passed(
        &resolver_path,
        EGRESS_SECTION,
        &query.bytes(),
        "a query to the nameserver",
    );
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn ipv6_dns_passes_untouched() {
    let loaded = NameserversPath::ipv4().load();
    let query = Packet::udp(
        (Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2), CLIENT_PORT),
        (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x53), 53),
        dns_query(6, "example.com"),
    );
    for section in [EGRESS_SECTION, REPLY_SECTION] {
        assert_passed(
            &loaded,
            section,
            &query.bytes(),
            "IPv6 without an IPv6 upstream",
        );
    }
}
