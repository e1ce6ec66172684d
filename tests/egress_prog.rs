//! The nameservers path's programs run by the kernel on crafted packets (BPF_PROG_TEST_RUN),
//! over IPv4 and IPv6 alike: the egress program rewrites a query to a taken-over nameserver to
//! the upstream (source unchanged), the reply program restores the nameserver as the answer's
//! source, and both pass everything else byte for byte with TC_ACT_UNSPEC. Checksums are
//! recomputed from scratch. What only one family has is here for IPv4 and in egress_v6_prog.rs
//! for IPv6. With `--resolver any`, the same for a query to any server on port 53, and what
//! stays untouched then: the upstream, the container's own address, other ports.

use dnsredir::abi::{EGRESS_SECTION, PATH_EMBEDDED_RESOLVER, REPLY_SECTION};
use dnsredir::bpf::load::Loaded;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

mod support;
use support::packet::*;
use support::prog::{
    assert_passed, counters, load_config, load_with_rules, run, NameserversPath, NAMESERVER,
};

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

/// Servers an application may name besides its resolv.conf's: public resolvers, a host on its
/// own subnet, and one of the nameservers of [`NameserversPath`] (taken too, not by its list).
fn any_servers(path: &NameserversPath) -> Vec<IpAddr> {
    let v6 = |s: [u16; 8]| IpAddr::from(Ipv6Addr::from(s));
    let mut servers: Vec<IpAddr> = match path.container {
        IpAddr::V4(_) => vec![
            Ipv4Addr::new(1, 1, 1, 1).into(),
            Ipv4Addr::new(8, 8, 4, 4).into(),
            Ipv4Addr::new(172, 18, 0, 1).into(),
        ],
        IpAddr::V6(_) => vec![
            v6([0x2606, 0x4700, 0, 0, 0, 0, 0, 0x1111]),
            v6([0x2001, 0x4860, 0x4860, 0, 0, 0, 0, 0x8844]),
            v6([0xfd00, 0xdead, 1, 0, 0, 0, 0, 0xfe]),
        ],
    };
    servers.push(path.nameservers[0]);
    servers
}

/// `frame` through `section`: TC_ACT_UNSPEC, and the frame left is `expected` byte for byte
/// (built from scratch, checksums included) with valid checksums.
#[track_caller]
fn assert_rewritten(loaded: &Loaded, section: &str, frame: &Packet, expected: &Packet, what: &str) {
    let (ret, out) = run(loaded, section, &frame.bytes());
    assert_eq!(ret, TC_ACT_UNSPEC, "{what}: goes on, no redirect");
    parse_checked(&out);
    assert_eq!(out, expected.bytes(), "{what}: byte for byte");
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn with_any_resolver_a_udp_query_to_any_server_is_answered_from_that_server() {
    for path in NameserversPath::both() {
        let path = path.any_resolver();
        let (object, loaded) = load_config(&path.config);
        let (up, up_port, container) = (path.upstream, path.upstream_port, path.container);
        let servers = any_servers(&path);
        for (i, &server) in servers.iter().enumerate() {
            for (id, name) in [(0x1234u16, "example.com"), (0xfffe, "a.b.c.example.org")] {
                let what = format!("{} query {id:#x} for {name} to {server}", path.family());
                let port = CLIENT_PORT + i as u16;
                let query = Packet::udp((container, port), (server, 53), dns_query(id, name));
                let sent = Packet::udp((container, port), (up, up_port), query.payload.clone());
                assert_rewritten(&loaded, EGRESS_SECTION, &query, &sent, &what);

                let answer = Packet::udp((up, up_port), (container, port), dns_answer(id, name));
                let restored = Packet::udp((server, 53), (container, port), answer.payload.clone());
                let what = format!("{what}: its answer from the server asked");
                assert_rewritten(&loaded, REPLY_SECTION, &answer, &restored, &what);
                // One answer per query: the flow went with it.
                assert_passed(
                    &loaded,
                    REPLY_SECTION,
                    &answer.bytes(),
                    &format!("{what}, again"),
                );
            }
        }
        let c = counters(&object, &loaded);
        let n = 2 * servers.len() as u64;
        let family = path.family();
        assert_eq!(c.queries_redirected_udp, n, "{family}: {c:?}");
        assert_eq!(c.replies_restored, n, "{family}: {c:?}");
        assert_eq!(c.failures, 0, "{family}: {c:?}");
    }
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn with_any_resolver_a_tcp_connection_to_any_server_goes_to_the_upstream_from_its_syn() {
    for path in NameserversPath::both() {
        let path = path.any_resolver();
        let loaded = path.load();
        let (up, up_port, container) = (path.upstream, path.upstream_port, path.container);
        let family = path.family();
        for (i, &server) in any_servers(&path).iter().enumerate() {
            let port = CLIENT_PORT + 40 + i as u16;
            let what = format!("{family} TCP to {server}");
            let segment = |flags: u8, payload: Vec<u8>| {
                let mut to_server = Packet::tcp((container, port), (server, 53), payload.clone());
                let mut to_upstream = Packet::tcp((container, port), (up, up_port), payload);
                to_server.tcp_flags = flags;
                to_upstream.tcp_flags = flags;
                (to_server, to_upstream)
            };
            let (syn, sent) = segment(0x02, vec![]);
            assert_rewritten(
                &loaded,
                EGRESS_SECTION,
                &syn,
                &sent,
                &format!("{what}: SYN"),
            );
            let mut msg = vec![0, 29];
            msg.extend_from_slice(&dns_query(9, "example.com"));
            let (data, sent) = segment(0x18, msg);
            assert_rewritten(
                &loaded,
                EGRESS_SECTION,
                &data,
                &sent,
                &format!("{what}: query"),
            );

            let answer = Packet::tcp(
                (up, up_port),
                (container, port),
                dns_answer(9, "example.com"),
            );
            let restored = Packet::tcp((server, 53), (container, port), answer.payload.clone());
            assert_rewritten(
                &loaded,
                REPLY_SECTION,
                &answer,
                &restored,
                &format!("{what}: answer"),
            );
            // The connection goes on: later segments of both directions too.
            let (ack, sent) = segment(0x10, vec![]);
            assert_rewritten(
                &loaded,
                EGRESS_SECTION,
                &ack,
                &sent,
                &format!("{what}: ACK"),
            );
            assert_rewritten(
                &loaded,
                REPLY_SECTION,
                &answer,
                &restored,
                &format!("{what}: more"),
            );
        }
        // A connection that was open before we attached (no SYN seen) stays where it goes.
        let open = Packet::tcp(
            (container, CLIENT_PORT + 60),
            (any_servers(&path)[0], 53),
            dns_query(9, "example.com"),
        );
        let what = format!("{family}: a connection without its SYN");
        assert_passed(&loaded, EGRESS_SECTION, &open.bytes(), &what);
    }
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn with_any_resolver_the_upstream_the_own_address_and_other_ports_are_untouched() {
    for path in NameserversPath::both() {
        // The upstream on port 53, where it would be taken if it were any other server.
        let path = path.any_resolver().upstream_on(53);
        let (object, loaded) = load_config(&path.config);
        let family = path.family();
        let (up, container) = (path.upstream, path.container);
        let server = any_servers(&path)[0];
        let q = || dns_query(5, "example.com");
        let secondary: IpAddr = match container {
            IpAddr::V4(_) => Ipv4Addr::new(172, 18, 0, 3).into(),
            IpAddr::V6(_) => Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2).into(),
        };
        let mut syn_853 = Packet::tcp((container, CLIENT_PORT), (server, 853), vec![]);
        syn_853.tcp_flags = 0x02;
        for (what, query) in [
            (
                "the upstream itself",
                Packet::udp((container, CLIENT_PORT), (up, 53), q()),
            ),
            (
                "the container's own address",
                Packet::udp((container, CLIENT_PORT), (container, 53), q()),
            ),
            (
                "port 5353 (mDNS)",
                Packet::udp((container, CLIENT_PORT), (server, 5353), q()),
            ),
            ("DNS over TLS", syn_853),
            (
                "a source other than the interface's address",
                Packet::udp((secondary, CLIENT_PORT), (server, 53), q()),
            ),
        ] {
            let what = format!("{family}: {what}");
            assert_passed(&loaded, EGRESS_SECTION, &query.bytes(), &what);
        }
        // The upstream's answer to the direct query is the application's own.
        let direct = Packet::udp(
            (up, 53),
            (container, CLIENT_PORT),
            dns_answer(5, "example.com"),
        );
        let what = format!("{family}: the upstream's answer to a direct query");
        assert_passed(&loaded, REPLY_SECTION, &direct.bytes(), &what);
        // So is a server's answer to a query that went to it (before dnsredir came).
        let own = Packet::udp(
            (server, 53),
            (container, CLIENT_PORT),
            dns_answer(5, "example.com"),
        );
        let what = format!("{family}: a server's own answer");
        assert_passed(&loaded, REPLY_SECTION, &own.bytes(), &what);
        let c = counters(&object, &loaded);
        assert_eq!(
            (
                c.queries_redirected_udp,
                c.queries_redirected_tcp,
                c.replies_restored
            ),
            (0, 0, 0),
            "{family}: {c:?}"
        );
    }
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn with_any_resolver_the_upstreams_host_on_another_port_is_a_server_like_any() {
    for path in NameserversPath::both() {
        // The upstream listens on 5353: its host's port 53 is another server, and taken.
        let path = path.any_resolver().upstream_on(5353);
        let loaded = path.load();
        let (up, container, port) = (path.upstream, path.container, CLIENT_PORT + 70);
        let what = format!("{}: a query to {up}:53", path.family());
        let query = Packet::udp((container, port), (up, 53), dns_query(6, "example.com"));
        let sent = Packet::udp((container, port), (up, 5353), query.payload.clone());
        assert_rewritten(&loaded, EGRESS_SECTION, &query, &sent, &what);
        let answer = Packet::udp((up, 5353), (container, port), dns_answer(6, "example.com"));
        let restored = Packet::udp((up, 53), (container, port), answer.payload.clone());
        assert_rewritten(&loaded, REPLY_SECTION, &answer, &restored, &what);
        // The upstream's own port is never 53 here, so never taken.
        let direct = Packet::udp((container, port), (up, 5353), dns_query(7, "example.com"));
        assert_passed(&loaded, EGRESS_SECTION, &direct.bytes(), &what);
    }
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn with_any_resolver_rules_and_the_missing_ipv6_upstream_leave_queries_alone() {
    for path in NameserversPath::both() {
        let path = path.any_resolver();
        let family = path.family();
        let server = any_servers(&path)[0];
        let kept = Packet::udp(
            (path.container, CLIENT_PORT),
            (server, 53),
            dns_query(8, "www.internal.test"),
        );
        let (_, loaded) = load_with_rules(&path.config, &["internal.test"], &[]);
        let what = format!("{family}: a name --keep keeps");
        assert_passed(&loaded, EGRESS_SECTION, &kept.bytes(), &what);
        let other = Packet::udp(
            (path.container, CLIENT_PORT),
            (server, 53),
            dns_query(8, "example.com"),
        );
        let (ret, out) = run(&loaded, EGRESS_SECTION, &other.bytes());
        assert_eq!(ret, TC_ACT_UNSPEC);
        assert_eq!(
            parse_checked(&out).dst,
            path.upstream,
            "{family}: other names go"
        );
    }
    let mut c = NameserversPath::ipv6().any_resolver().config;
    c.upstream6_port = 0;
    let (_, loaded) = load_config(&c);
    let query = Packet::udp(
        (support::prog::CONTAINER6, CLIENT_PORT),
        (Ipv6Addr::new(0x2606, 0x4700, 0, 0, 0, 0, 0, 0x1111), 53),
        dns_query(9, "example.com"),
    );
    assert_passed(
        &loaded,
        EGRESS_SECTION,
        &query.bytes(),
        "IPv6 without an IPv6 upstream",
    );
}
