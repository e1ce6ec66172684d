//! The nameservers path with IPv6, end to end, in a CNI-style dual-stack namespace: a container
//! namespace with eth0 (IPv4 and a ULA IPv6 address) on a bridge host that runs the
//! nameservers, and an upstream host behind it with an IPv4 and an IPv6 resolver. dnsredir,
//! given both nameservers and both upstreams, sends each family's queries to that family's
//! upstream, over UDP and TCP, on checksum-strict links (tx offload off on both ends).

use std::net::{Ipv4Addr, SocketAddrV6};

mod support;
use support::cni::{dns_server, Cni};
use support::netns::run;
use support::DnsServer;

/// Queries seen by a server, both transports.
fn seen(s: &DnsServer) -> (u64, u64) {
    (s.udp_queries(), s.tcp_queries())
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn each_familys_nameserver_is_answered_by_that_familys_upstream_until_detach() {
    let net = Cni::dual_stack();
    let v6 = net.v6();
    net.assert_answers(net.ns, net.nameserver.answer(), "before attach");
    net.assert_answers(v6.ns, v6.nameserver.answer(), "before attach");

    let (ns6, up, up6) = (v6.ns.to_string(), net.up.to_string(), v6.up.to_string());
    let (out, err) = net.attach(&["--resolver", &ns6, "--upstream", &up6]);
    assert!(
        out.contains(&format!("the IPv6 nameservers {ns6} now goes to {up6}")),
        "{out}"
    );
    assert!(err.is_empty(), "{err}");

    net.assert_answers(net.ns, net.upstream.answer(), "IPv4 to the IPv4 upstream");
    net.assert_answers(v6.ns, v6.upstream.answer(), "IPv6 to the IPv6 upstream");
    for tcp in [false, true] {
        let before = (seen(&v6.upstream), seen(&v6.nameserver));
        let (status, a) = net.dig(v6.ns, "AAAA", tcp);
        assert_eq!(
            (status.as_str(), a.len()),
            ("NOERROR", 0),
            "tcp {tcp}: dig AAAA"
        );
        let after = (seen(&v6.upstream), seen(&v6.nameserver));
        let (up_before, ns_before) = before;
        let (up_after, ns_after) = after;
        assert_eq!(ns_after, ns_before, "the IPv6 nameserver saw nothing");
        let grew = if tcp {
            up_after.1 > up_before.1
        } else {
            up_after.0 > up_before.0
        };
        assert!(
            grew,
            "tcp {tcp}: the IPv6 upstream answered AAAA: {before:?} {after:?}"
        );
    }
    net.assert_answers(
        v6.up,
        v6.upstream.answer(),
        "direct queries to the IPv6 upstream are untouched",
    );

    let (code, status, err) = net.dnsredir(&["--status", "--json"]);
    assert_eq!(code, 0, "status: {status}{err}");
    assert!(
        status.contains(&format!("\"upstream6\":\"{up6}\"")),
        "{status}"
    );
    assert!(
        status.contains(&format!("\"nameservers6\":[\"{ns6}\"]")),
        "{status}"
    );
    assert!(
        status.contains(&format!("\"upstream\":\"{up}\"")),
        "{status}"
    );
    let (code, text, _) = net.dnsredir(&["--status"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains(&format!("IPv6 upstream: {up6}")), "{text}");
    assert!(
        text.contains(&format!("IPv6 nameservers taken over: {ns6}")),
        "{text}"
    );
    assert!(!text.contains("STALE"), "{text}");
    assert!(!text.contains("failures: 1"), "{text}");

    net.detach();
    net.assert_answers(net.ns, net.nameserver.answer(), "after detach");
    net.assert_answers(v6.ns, v6.nameserver.answer(), "after detach");
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn with_resolver_any_each_familys_servers_are_answered_by_that_familys_upstream() {
    let net = Cni::dual_stack();
    let v6 = net.v6();
    let other4 = dns_server(&net.host.name, net.other, Ipv4Addr::new(198, 18, 0, 1));
    let other6 = dns_server(&net.host.name, v6.other, Ipv4Addr::new(198, 18, 0, 3));
    let own6 = SocketAddrV6::new(v6.ctr_addr, 53, 0, 0);
    let own = dns_server(&net.ctr.name, own6, Ipv4Addr::new(198, 18, 0, 4));
    net.assert_answers(v6.other, other6.answer(), "before attach");

    let (up, up6) = (net.up.to_string(), v6.up.to_string());
    let (code, out, err) =
        net.dnsredir(&["--resolver", "any", "--upstream", &up, "--upstream", &up6]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!(
            "DNS to any server on port 53 now goes to {up}, IPv6 DNS to any server now goes to {up6}"
        )),
        "{out}"
    );
    let before = (seen(&other4), seen(&other6), seen(&v6.nameserver));
    // dig takes a UDP answer only from the address it asked.
    net.assert_answers(v6.other, v6.upstream.answer(), "another IPv6 server");
    net.assert_answers(v6.ns, v6.upstream.answer(), "the IPv6 nameserver");
    net.assert_answers(net.other, net.upstream.answer(), "another IPv4 server");
    net.assert_answers(net.ns, net.upstream.answer(), "the IPv4 nameserver");
    assert_eq!(
        (seen(&other4), seen(&other6), seen(&v6.nameserver)),
        before,
        "the servers asked saw nothing"
    );
    net.assert_answers(own6, own.answer(), "the container's own IPv6 address");
    net.assert_answers(
        v6.up,
        v6.upstream.answer(),
        "the IPv6 upstream asked directly",
    );

    let (code, text, _) = net.dnsredir(&["--status"]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("nameservers taken over: any (port 53)\n"),
        "{text}"
    );
    assert!(
        text.contains("IPv6 nameservers taken over: any (port 53)\n"),
        "{text}"
    );
    assert!(text.contains("failures: 0\n"), "{text}");
    net.detach();
    net.assert_answers(v6.other, other6.answer(), "after detach");
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn without_a_global_ipv6_address_ipv6_is_left_alone_with_one_line() {
    let net = Cni::dual_stack();
    run(&[
        "ip",
        "-n",
        &net.ctr.name,
        "-6",
        "addr",
        "flush",
        "dev",
        "eth0",
        "scope",
        "global",
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    let up6 = net.v6().up.to_string();
    let (_, err) = net.attach(&["--upstream", &up6]);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("IPv6 DNS is not redirected: eth0 has no global IPv6 address"),
        "{err}"
    );
    assert_eq!(net.ask(net.ns, false), vec![net.upstream.answer()]);
    let (_, text, _) = net.dnsredir(&["--status"]);
    assert!(text.contains("IPv6 DNS: not redirected"), "{text}");
    // IPv6 --resolver without an IPv6 upstream: refused on the command line.
    let (ns6, up) = (net.v6().ns.to_string(), net.up.to_string());
    let (code, _, err) = net.dnsredir(&["--resolver", &ns6, "--upstream", &up]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("give an IPv6 --upstream"), "{err}");
    net.detach();
}
