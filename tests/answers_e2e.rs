//! Answers from the kernel end to end (`--block`, `--allow`, `--answer`, `--hosts`): in an
//! emulated Docker container (the answer goes back through lo three times and conntrack makes
//! it 127.0.0.11:53's) and on the nameservers path (back through the interface's ingress),
//! over UDP and TCP, with and without an upstream. Every answer is checked by its rcode and
//! addresses, and the servers' query counts show who was asked. Root only.

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::cni::Cni;
use support::dns::{query, TYPE_A};
use support::*;

const T: Duration = Duration::from_secs(3);

/// The rcode and A addresses of `name` asked at `server` from `ns`, or the client's error
/// (a TCP reset, a timeout).
fn ask(ns: &str, server: SocketAddr, name: &str, tcp: bool) -> Result<(u8, Vec<Ipv4Addr>), String> {
    query(ns, server, name, TYPE_A, tcp, T).map(|r| (r.rcode, r.a))
}

/// `dig +short TYPE NAME @SERVER` in `ns`: the lines it printed (dig exits 0 also for
/// NXDOMAIN: its status line is in `+short`'s absence of output; see [`dig_status`]).
fn dig_short(ns: &str, server: &str, name: &str, qtype: &str, tcp: bool) -> Vec<String> {
    let at = format!("@{server}");
    let mut argv = vec![
        "dig",
        "+short",
        "+tries=1",
        "+time=2",
        at.as_str(),
        name,
        qtype,
    ];
    if tcp {
        argv.push("+tcp");
    }
    let out = ns_run(ns, &argv).unwrap_or_else(|e| panic!("dig {argv:?}: {e}"));
    out.lines().map(|l| l.trim().to_string()).collect()
}

/// dig's status (NOERROR, NXDOMAIN, REFUSED) for NAME at SERVER in `ns`.
fn dig_status(ns: &str, server: &str, name: &str, qtype: &str, tcp: bool) -> String {
    let at = format!("@{server}");
    let mut argv = vec![
        "dig",
        "+tries=1",
        "+time=2",
        "+noall",
        "+comments",
        at.as_str(),
        name,
        qtype,
    ];
    if tcp {
        argv.push("+tcp");
    }
    let out = ns_run(ns, &argv).unwrap_or_else(|e| panic!("dig {argv:?}: {e}"));
    out.split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .map(String::from)
        .unwrap_or_else(|| format!("no status: {out}"))
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2), tc"]
fn embedded_resolver_blocked_names_get_nxdomain_over_udp_and_a_reset_over_tcp() {
    let net = DockerLikeNet::attached(&["--block", "ads.example", "--block", "Tracker.TEST"]);
    let up = net.upstream().queries();
    let si = net.stand_in().queries();
    for name in ["ads.example", "x.ADS.example", "a.b.tracker.test"] {
        assert_eq!(
            ask(&net.ctr_ns, net.resolver(), name, false),
            Ok((3, vec![])),
            "{name}: NXDOMAIN from 127.0.0.11:53"
        );
    }
    let tcp = ask(&net.ctr_ns, net.resolver(), "ads.example", true);
    assert!(
        matches!(&tcp, Err(e) if e.contains("reset") || e.contains("Connection reset") || e.contains("os error 104")),
        "TCP: the connection is reset, got {tcp:?}"
    );
    assert_eq!(net.upstream().queries(), up, "the upstream was never asked");
    assert_eq!(net.stand_in().queries(), si, "dockerd was never asked");
    // Other names are redirected as before, names beside a rule too.
    assert_eq!(
        ask(&net.ctr_ns, net.resolver(), "xads.example", false),
        Ok((0, vec![net.upstream_answer]))
    );
    assert_eq!(
        ask(&net.ctr_ns, net.resolver(), "example.org", true),
        Ok((0, vec![net.upstream_answer]))
    );
    let j = net.attached_status();
    assert_eq!(j.u64_at(&["counters", "answered_blocked"]), 3);
    assert_eq!(j.u64_at(&["counters", "tcp_reset"]), 1);
    // dig agrees: the answer comes from where it asked.
    assert_eq!(
        dig_status(&net.ctr_ns, "127.0.0.11", "ads.example", "A", false),
        "NXDOMAIN"
    );
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2), tc"]
fn block_rcode_refused() {
    let net = DockerLikeNet::attached(&["--block", "ads.example", "--block-rcode", "refused"]);
    assert_eq!(
        ask(&net.ctr_ns, net.resolver(), "ads.example", false),
        Ok((5, vec![]))
    );
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2), tc"]
fn an_allowlist_resolves_its_names_refuses_the_rest_and_leaves_docker_names_to_dockerd() {
    let net = DockerLikeNet::attached(&["--allow", "example.com", "--allow", "pypi.org"]);
    let up = net.upstream().queries();
    assert_eq!(
        ask(&net.ctr_ns, net.resolver(), "www.example.com", false),
        Ok((0, vec![net.upstream_answer]))
    );
    assert_eq!(
        ask(&net.ctr_ns, net.resolver(), "pypi.org", true),
        Ok((0, vec![net.upstream_answer])),
        "an allowed name over TCP"
    );
    assert_eq!(net.upstream().queries(), up + 2);
    assert_eq!(
        ask(&net.ctr_ns, net.resolver(), "evil.test", false),
        Ok((5, vec![])),
        "outside the allowlist: REFUSED"
    );
    assert!(
        ask(&net.ctr_ns, net.resolver(), "evil.test", true).is_err(),
        "outside the allowlist over TCP: reset"
    );
    assert_eq!(net.upstream().queries(), up + 2, "evil.test never left");
    assert_eq!(
        ask(&net.ctr_ns, net.resolver(), "c2", false),
        Ok((0, vec![net.c2_addr])),
        "a container name still resolves through dockerd"
    );
    let j = net.attached_status();
    assert_eq!(j.u64_at(&["counters", "answered_disallowed"]), 1);
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2), tc"]
fn under_redirect_all_container_names_follow_the_allowlist() {
    let net = DockerLikeNet::attached(&["--allow", "example.com", "--redirect-all"]);
    assert_eq!(
        ask(&net.ctr_ns, net.resolver(), "c2", false),
        Ok((5, vec![]))
    );
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2), tc"]
fn a_pinned_name_answers_a_and_aaaa_and_the_upstream_is_never_asked() {
    let net = DockerLikeNet::attached(&[
        "--answer",
        "api.stripe.test=10.5.5.5",
        "--answer",
        "api.stripe.test=10.5.5.6",
        "--answer",
        "api.stripe.test=fd00::5",
    ]);
    let up = net.upstream().queries();
    assert_eq!(
        ask(&net.ctr_ns, net.resolver(), "API.stripe.test", false),
        Ok((
            0,
            vec![Ipv4Addr::new(10, 5, 5, 5), Ipv4Addr::new(10, 5, 5, 6)]
        ))
    );
    assert_eq!(
        dig_short(
            &net.ctr_ns,
            "127.0.0.11",
            "v1.api.stripe.test",
            "AAAA",
            false
        ),
        vec!["fd00::5".to_string()],
        "a name under the pinned suffix: its AAAA"
    );
    assert_eq!(
        dig_status(&net.ctr_ns, "127.0.0.11", "api.stripe.test", "TXT", false),
        "NOERROR",
        "another type: NODATA"
    );
    assert!(
        dig_short(&net.ctr_ns, "127.0.0.11", "api.stripe.test", "TXT", false).is_empty(),
        "NODATA has no records"
    );
    assert_eq!(net.upstream().queries(), up, "the upstream was never asked");
    let j = net.attached_status();
    assert_eq!(
        j.u64_at(&["counters", "answered_pinned"]),
        4,
        "A, AAAA and two TXT"
    );
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2), tc"]
fn a_policy_without_an_upstream_leaves_other_names_with_dockerd() {
    let net = DockerLikeNet::new();
    let (udp, tcp) = (
        net.dockerd_udp_port.to_string(),
        net.dockerd_tcp_port.to_string(),
    );
    let (code, out, err) = net.dnsredir(&[
        "--dockerd-port",
        &udp,
        "--dockerd-tcp-port",
        &tcp,
        "--block",
        "ads.example",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        ask(&net.ctr_ns, net.resolver(), "ads.example", false),
        Ok((3, vec![]))
    );
    assert_eq!(
        ask(&net.ctr_ns, net.resolver(), "example.com", false),
        Ok((0, vec![net.stand_in_answer])),
        "undecided: dockerd's answer"
    );
    assert_eq!(
        ask(&net.ctr_ns, net.resolver(), "example.com", true),
        Ok((0, vec![net.stand_in_answer])),
        "undecided over TCP: dockerd's answer"
    );
    assert_eq!(net.upstream().queries(), 0);
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2), tc"]
fn a_hosts_file_pins_and_blocks_exact_names() {
    let dir = std::env::temp_dir().join(format!("dnsredir-hosts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let hosts = dir.join("mocks.hosts");
    std::fs::write(
        &hosts,
        "# mocks\n10.7.7.7  mock.test alias.mock.test   # two names\n\n0.0.0.0 blocked.test\n:: blocked6.test\nfd00::7 mock.test\n",
    )
    .expect("write hosts");
    let net = DockerLikeNet::attached(&["--hosts", hosts.to_str().expect("path")]);
    let _ = std::fs::remove_dir_all(&dir);
    let up = net.upstream().queries();
    assert_eq!(
        ask(&net.ctr_ns, net.resolver(), "mock.test", false),
        Ok((0, vec![Ipv4Addr::new(10, 7, 7, 7)]))
    );
    assert_eq!(
        ask(&net.ctr_ns, net.resolver(), "alias.mock.test", false),
        Ok((0, vec![Ipv4Addr::new(10, 7, 7, 7)]))
    );
    assert_eq!(
        dig_short(&net.ctr_ns, "127.0.0.11", "mock.test", "AAAA", false),
        vec!["fd00::7".to_string()]
    );
    assert_eq!(
        ask(&net.ctr_ns, net.resolver(), "blocked.test", false),
        Ok((3, vec![]))
    );
    assert_eq!(
        ask(&net.ctr_ns, net.resolver(), "blocked6.test", false),
        Ok((3, vec![]))
    );
    assert_eq!(net.upstream().queries(), up);
    // Hosts meaning: the exact name only.
    assert_eq!(
        ask(&net.ctr_ns, net.resolver(), "x.mock.test", false),
        Ok((0, vec![net.upstream_answer]))
    );
    assert_eq!(
        ask(&net.ctr_ns, net.resolver(), "x.blocked.test", false),
        Ok((0, vec![net.upstream_answer]))
    );
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2), tc"]
fn a_rule_change_under_load_updates_in_place_and_loses_no_query() {
    let net = DockerLikeNet::attached(&["--block", "one.test"]);
    let before = net.attached_status();
    let stop = Arc::new(AtomicBool::new(false));
    let (answered, lost) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load = {
        let (ns, server) = (net.ctr_ns.clone(), net.resolver());
        let (stop, answered, lost) = (stop.clone(), answered.clone(), lost.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match ask(&ns, server, "example.com", false) {
                    Ok((0, a)) if !a.is_empty() => answered.fetch_add(1, Ordering::Relaxed),
                    _ => lost.fetch_add(1, Ordering::Relaxed),
                };
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let mut args = net.attach_args();
    args.extend(["--block", "two.test"].map(String::from));
    let (code, out, err) = run_dnsredir(&args);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        (out.clone() + &err).contains("in place"),
        "says the rules were updated in place: {out}{err}"
    );
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    load.join().expect("load thread");
    assert!(answered.load(Ordering::Relaxed) > 10, "the load ran");
    assert_eq!(lost.load(Ordering::Relaxed), 0, "no query lost");
    assert_eq!(
        ask(&net.ctr_ns, net.resolver(), "two.test", false),
        Ok((3, vec![]))
    );
    assert_eq!(
        ask(&net.ctr_ns, net.resolver(), "one.test", false),
        Ok((0, vec![net.upstream_answer]))
    );
    let after = net.attached_status();
    for hook in ["lo", "interface"] {
        assert_eq!(
            after.u64_at(&[hook, "prog_id"]),
            before.u64_at(&[hook, "prog_id"]),
            "the same program on {hook}"
        );
    }
    assert_eq!(
        after.u64_at(&["rules_map_id"]),
        before.u64_at(&["rules_map_id"])
    );
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2), tc"]
fn nameservers_path_answers_block_and_pin_from_the_nameserver_over_the_interface() {
    let net = Cni::attached(&["--block", "example.com", "--answer", "pinned.test=10.9.9.9"]);
    let (ns_q, up_q) = (net.nameserver.queries(), net.upstream.queries());
    let server: SocketAddr = net.ns.into();
    assert_eq!(
        ask(&net.ctr.name, server, "example.com", false),
        Ok((3, vec![]))
    );
    assert_eq!(
        ask(&net.ctr.name, server, "pinned.test", false),
        Ok((0, vec![Ipv4Addr::new(10, 9, 9, 9)]))
    );
    assert!(ask(&net.ctr.name, server, "example.com", true).is_err());
    assert_eq!(
        ask(&net.ctr.name, server, "other.test", false),
        Ok((0, vec![net.upstream.answer()])),
        "undecided: redirected as before"
    );
    assert_eq!(net.nameserver.queries(), ns_q);
    assert_eq!(net.upstream.queries(), up_q + 1);
    assert_eq!(
        dig_status(&net.ctr.name, &ns_ip(&net), "example.com", "A", false),
        "NXDOMAIN"
    );
}

fn ns_ip(net: &Cni) -> String {
    net.ns.ip().to_string()
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2), tc"]
fn nameservers_path_ipv6_nameserver_gets_answers_too() {
    let net = Cni::dual_stack();
    let (ns, up) = (net.ns.to_string(), net.up.to_string());
    let v6 = net.v6().ns.to_string();
    let (code, out, err) = net.dnsredir(&[
        "--resolver",
        &ns,
        "--resolver",
        &v6,
        "--upstream",
        &up,
        "--answer",
        "pinned.test=fd00::9",
        "--block",
        "blocked.test",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let server = net.v6().ns.ip().to_string();
    assert_eq!(
        dig_short(&net.ctr.name, &server, "pinned.test", "AAAA", false),
        vec!["fd00::9".to_string()]
    );
    assert_eq!(
        dig_status(&net.ctr.name, &server, "blocked.test", "A", false),
        "NXDOMAIN"
    );
    assert_eq!(
        net.v6().nameserver.queries(),
        0,
        "the IPv6 nameserver was never asked"
    );
}
