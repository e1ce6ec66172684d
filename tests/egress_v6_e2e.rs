//! The nameservers path with IPv6, end to end, in a CNI-style dual-stack namespace: a container
//! namespace with eth0 (IPv4 and a ULA IPv6 address) on a bridge host that runs the
//! nameservers, and an upstream host behind it with an IPv4 and an IPv6 resolver. dnsredir,
//! given both nameservers and both upstreams, sends each family's queries to that family's
//! upstream, over UDP and TCP, on checksum-strict links (tx offload off on both ends).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::time::Duration;

mod support;
use support::netns::{ns_run, run, Netns};
use support::{query_a, run_dnsredir, serial, DnsServer, DnsServerBuilder};

const TIMEOUT: Duration = Duration::from_secs(2);

fn root() {
    assert!(
        unsafe { libc::geteuid() } == 0,
        "this test needs root: network namespaces, bpf(2)"
    );
}

/// The topology. Fields drop in order: servers first, then the namespaces.
struct DualStack {
    nameserver: DnsServer,
    nameserver6: DnsServer,
    upstream: DnsServer,
    upstream6: DnsServer,
    ctr: Netns,
    _host: Netns,
    _up: Netns,
    ns: SocketAddrV4,
    ns6: SocketAddrV6,
    up: SocketAddrV4,
    up6: SocketAddrV6,
}

impl DualStack {
    fn new() -> DualStack {
        support::netns::cleanup_stale_namespaces();
        let host = Netns::new("h").expect("netns");
        let ctr = Netns::new("c").expect("netns");
        let up = Netns::new("u").expect("netns");
        let k = (std::process::id() % 200 + 20) as u8;
        let k16 = k as u16;
        let ns_addr = Ipv4Addr::new(10, 218, k, 1);
        let ctr_addr = Ipv4Addr::new(10, 218, k, 2);
        let uplink = Ipv4Addr::new(10, 219, k, 1);
        let up_addr = Ipv4Addr::new(10, 219, k, 2);
        let ns6_addr = Ipv6Addr::new(0xfd00, 0xdead, k16, 0, 0, 0, 0, 1);
        let ctr6_addr = Ipv6Addr::new(0xfd00, 0xdead, k16, 0, 0, 0, 0, 2);
        let uplink6 = Ipv6Addr::new(0xfd00, 0xbeef, k16, 0, 0, 0, 0, 1);
        let up6_addr = Ipv6Addr::new(0xfd00, 0xbeef, k16, 0, 0, 0, 0, 2);
        let (h, c, u) = (&host.name, &ctr.name, &up.name);
        let tag = support::netns::next_id();
        let vc = format!("e6c{tag}");
        let vu = format!("e6u{tag}");
        let sh = |cmd: &str| {
            let argv: Vec<&str> = cmd.split_whitespace().collect();
            run(&argv).unwrap_or_else(|e| panic!("{e}"));
        };
        sh(&format!(
            "ip -n {h} link add {vc} type veth peer name eth0 netns {c}"
        ));
        sh(&format!("ip -n {h} link add br0 type bridge"));
        sh(&format!("ip -n {h} addr add {ns_addr}/24 dev br0"));
        sh(&format!(
            "ip -n {h} -6 addr add {ns6_addr}/64 dev br0 nodad"
        ));
        sh(&format!("ip -n {h} link set br0 up"));
        sh(&format!("ip -n {h} link set {vc} master br0 up"));
        sh(&format!(
            "ip -n {h} link add {vu} type veth peer name uplink0 netns {u}"
        ));
        sh(&format!("ip -n {h} addr add {uplink}/24 dev {vu}"));
        sh(&format!(
            "ip -n {h} -6 addr add {uplink6}/64 dev {vu} nodad"
        ));
        sh(&format!("ip -n {h} link set {vu} up"));
        sh(&format!("ip -n {u} addr add {up_addr}/24 dev uplink0"));
        sh(&format!(
            "ip -n {u} -6 addr add {up6_addr}/64 dev uplink0 nodad"
        ));
        sh(&format!("ip -n {u} link set uplink0 up"));
        sh(&format!("ip -n {u} route add default via {uplink}"));
        sh(&format!("ip -n {u} -6 route add default via {uplink6}"));
        sh(&format!(
            "ip netns exec {h} sysctl -qw net.ipv4.ip_forward=1"
        ));
        sh(&format!(
            "ip netns exec {h} sysctl -qw net.ipv6.conf.all.forwarding=1"
        ));
        sh(&format!("ip -n {c} addr add {ctr_addr}/24 dev eth0"));
        sh(&format!(
            "ip -n {c} -6 addr add {ctr6_addr}/64 dev eth0 nodad"
        ));
        sh(&format!("ip -n {c} link set eth0 up"));
        sh(&format!("ip -n {c} route add default via {ns_addr}"));
        sh(&format!("ip -n {c} -6 route add default via {ns6_addr}"));
        // A wrong checksum must get the packet dropped, as a real NIC's would.
        for (ns, dev) in [
            (h, vc.as_str()),
            (c, "eth0"),
            (h, vu.as_str()),
            (u, "uplink0"),
        ] {
            sh(&format!("ip netns exec {ns} ethtool -K {dev} tx off"));
        }
        // The first forwarded IPv6 packets can go while the routers' neighbours are still
        // being resolved: the path must carry packets before the probe's 1 s wait counts.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while ns_run(c, &["ping", "-6", "-c1", "-W1", &up6_addr.to_string()]).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "no IPv6 path to {up6_addr}"
            );
        }
        let server = |ns: &str, addr: SocketAddr, answer: Ipv4Addr| {
            DnsServerBuilder::new(ns, answer)
                .udp(addr)
                .tcp(addr)
                .start()
                .unwrap_or_else(|e| panic!("dns server on {addr}: {e}"))
        };
        let ns = SocketAddrV4::new(ns_addr, 53);
        let ns6 = SocketAddrV6::new(ns6_addr, 53, 0, 0);
        let upa = SocketAddrV4::new(up_addr, 53);
        let up6 = SocketAddrV6::new(up6_addr, 53, 0, 0);
        DualStack {
            nameserver: server(h, ns.into(), Ipv4Addr::new(198, 51, 100, k)),
            nameserver6: server(h, ns6.into(), Ipv4Addr::new(198, 51, 101, k)),
            upstream: server(u, upa.into(), Ipv4Addr::new(203, 0, 113, k)),
            upstream6: server(u, up6.into(), Ipv4Addr::new(203, 0, 114, k)),
            ctr,
            _host: host,
            _up: up,
            ns,
            ns6,
            up: upa,
            up6,
        }
    }

    fn ask(&self, server: SocketAddrV4, tcp: bool) -> Vec<Ipv4Addr> {
        query_a(&self.ctr.name, server.into(), "example.com", tcp, TIMEOUT)
            .unwrap_or_else(|e| panic!("query to {server} (tcp {tcp}): {e}"))
    }

    /// `dig TYPE example.com` at an IPv6 server from the container: (status, answers).
    fn dig6(&self, server: SocketAddrV6, qtype: &str, tcp: bool) -> (String, Vec<String>) {
        let mut argv = vec![
            "dig".to_string(),
            format!("@{}", server.ip()),
            "-p".into(),
            server.port().to_string(),
            "example.com".into(),
            qtype.into(),
            "+time=2".into(),
            "+tries=1".into(),
            "+noall".into(),
            "+comments".into(),
            "+answer".into(),
        ];
        if tcp {
            argv.push("+tcp".into());
        }
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let out = ns_run(&self.ctr.name, &argv).unwrap_or_else(|e| panic!("dig: {e}"));
        let status = out
            .split("status: ")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .unwrap_or_else(|| panic!("dig {argv:?} said: {out}"))
            .to_string();
        let answers = out
            .lines()
            .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
            .filter_map(|l| l.split_whitespace().last().map(String::from))
            .collect();
        (status, answers)
    }

    fn dnsredir(&self, extra: &[&str]) -> (i32, String, String) {
        let path = self.ctr.path();
        let mut args = vec!["--netns", path.as_str()];
        args.extend_from_slice(extra);
        run_dnsredir(&args)
    }
}

/// Queries seen by a server, both transports.
fn seen(s: &DnsServer) -> (u64, u64) {
    (s.udp_queries(), s.tcp_queries())
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn each_familys_nameserver_is_answered_by_that_familys_upstream_until_detach() {
    root();
    let _serial = serial();
    let net = DualStack::new();
    for tcp in [false, true] {
        assert_eq!(
            net.ask(net.ns, tcp),
            vec![net.nameserver.answer()],
            "before attach"
        );
        let (status, a) = net.dig6(net.ns6, "A", tcp);
        assert_eq!(
            (status.as_str(), a),
            ("NOERROR", vec![net.nameserver6.answer().to_string()])
        );
    }

    let (ns, ns6, up, up6) = (
        net.ns.to_string(),
        net.ns6.to_string(),
        net.up.to_string(),
        net.up6.to_string(),
    );
    let (code, out, err) = net.dnsredir(&[
        "--resolver",
        &ns,
        "--resolver",
        &ns6,
        "--upstream",
        &up,
        "--upstream",
        &up6,
    ]);
    assert_eq!(code, 0, "attach: {out}{err}");
    assert!(
        out.contains(&format!("the IPv6 nameservers {ns6} now goes to {up6}")),
        "{out}"
    );
    assert!(err.is_empty(), "{err}");

    for tcp in [false, true] {
        assert_eq!(
            net.ask(net.ns, tcp),
            vec![net.upstream.answer()],
            "tcp {tcp}: IPv4 to the IPv4 upstream"
        );
        let (status, a) = net.dig6(net.ns6, "A", tcp);
        assert_eq!(
            (status.as_str(), a),
            ("NOERROR", vec![net.upstream6.answer().to_string()]),
            "tcp {tcp}: dig A over IPv6, answered by the IPv6 upstream"
        );
        let before = (seen(&net.upstream6), seen(&net.nameserver6));
        let (status, a) = net.dig6(net.ns6, "AAAA", tcp);
        assert_eq!(
            (status.as_str(), a.len()),
            ("NOERROR", 0),
            "tcp {tcp}: dig AAAA"
        );
        let after = (seen(&net.upstream6), seen(&net.nameserver6));
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
        // Direct queries to the IPv6 upstream are untouched.
        let (_, a) = net.dig6(net.up6, "A", tcp);
        assert_eq!(a, vec![net.upstream6.answer().to_string()]);
    }

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

    let (code, out, err) = net.dnsredir(&["--detach"]);
    assert_eq!(code, 0, "detach: {out}{err}");
    for tcp in [false, true] {
        assert_eq!(
            net.ask(net.ns, tcp),
            vec![net.nameserver.answer()],
            "after detach"
        );
        let (_, a) = net.dig6(net.ns6, "A", tcp);
        assert_eq!(
            a,
            vec![net.nameserver6.answer().to_string()],
            "after detach"
        );
    }
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn without_a_global_ipv6_address_ipv6_is_left_alone_with_one_line() {
    root();
    let _serial = serial();
    let net = DualStack::new();
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
    let (ns, up, up6) = (net.ns.to_string(), net.up.to_string(), net.up6.to_string());
    let (code, out, err) =
        net.dnsredir(&["--resolver", &ns, "--upstream", &up, "--upstream", &up6]);
    assert_eq!(code, 0, "IPv4 still attaches: {out}{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("IPv6 DNS is not redirected: eth0 has no global IPv6 address"),
        "{err}"
    );
    assert_eq!(net.ask(net.ns, false), vec![net.upstream.answer()]);
    let (_, text, _) = net.dnsredir(&["--status"]);
    assert!(text.contains("IPv6 DNS: not redirected"), "{text}");
    // IPv6 --resolver without an IPv6 upstream: refused on the command line.
    let (code, _, err) = net.dnsredir(&["--resolver", &net.ns6.to_string(), "--upstream", &up]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("give an IPv6 --upstream"), "{err}");
    let (code, out, err) = net.dnsredir(&["--detach"]);
    assert_eq!(code, 0, "{out}{err}");
}
