//! End-to-end tests of dnsredir against an emulated Docker container (three network
//! namespaces built by `support::DockerLikeNet`). Root only; see `support::require_root`.

mod support;

use std::net::SocketAddr;
use std::time::Duration;
use support::redirect::*;
use support::*;

/// Exit code != 0, exactly one non-empty stderr line, containing one of `words` (case-insensitive).
fn assert_one_line_error(res: &(i32, String, String), words: &[&str], what: &str) {
    let (code, out, err) = res;
    assert_ne!(
        *code, 0,
        "{what}: expected failure\nstdout: {out}\nstderr: {err}"
    );
    let l = lines(err);
    assert_eq!(
        l.len(),
        1,
        "{what}: expected ONE stderr line, got {}:\n{err}",
        l.len()
    );
    let low = l[0].to_ascii_lowercase();
    assert!(
        words.iter().any(|w| low.contains(&w.to_ascii_lowercase())),
        "{what}: stderr line does not mention any of {words:?}: {}",
        l[0]
    );
}

/// `n` dnsredir filters on lo ingress and on eth0 ingress; the tc listing shows when not.
fn assert_filters_on_each_hook(net: &DockerLikeNet, n: usize) {
    for dev in ["lo", "eth0"] {
        assert_eq!(
            net.dnsredir_filters(dev),
            n,
            "{dev} ingress:\n{}",
            net.tc_filters(dev)
        );
    }
}

/// dnsredir attached to the container (`target`: `--pid …` or `--netns …`) with this UDP port
/// and dockerd's TCP port given.
/// `--status --json`'s `stale_reason`, or "".
fn stale_reason(status: &Json) -> String {
    status
        .path(&["stale_reason"])
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_string()
}

fn attach_with_ports(net: &DockerLikeNet, target: &[&str], udp_port: u16) -> (i32, String, String) {
    let (u, t, up) = (
        udp_port.to_string(),
        net.dockerd_tcp_port.to_string(),
        net.up_addr.to_string(),
    );
    let mut args = target.to_vec();
    args.extend([
        "--dockerd-port",
        &u,
        "--dockerd-tcp-port",
        &t,
        "--upstream",
        &up,
    ]);
    run_dnsredir(&args)
}

/// dnsredir attached in a bare namespace, dockerd's ports given.
fn attach_with_given_ports(ns: &Netns) -> (i32, String, String) {
    run_dnsredir(&[
        "--netns",
        &ns.path(),
        "--upstream",
        "10.214.1.2",
        "--dockerd-port",
        "40000",
        "--dockerd-tcp-port",
        "40001",
    ])
}

/// No dnsredir filter and no clsact qdisc on these devices of a bare namespace.
fn assert_nothing_on(ns: &Netns, devs: &[&str]) {
    for &dev in devs {
        assert_eq!(
            count_dnsredir_filters(&ns.name, dev),
            0,
            "{dev}: {}",
            tc_filters(&ns.name, dev)
        );
        assert!(
            !has_clsact(&ns.name, dev),
            "clsact left on {dev} after a failed attach"
        );
    }
}

#[test]
#[ignore = "needs root: network namespaces"]
fn before_attach_stand_in_answers_docker_address() {
    let net = DockerLikeNet::new();
    assert_ne!(net.eth0_ifindex, 2);
    assert_stand_in_answers(&net);
    assert_eq!(net.stand_in().udp_queries(), 1);
    assert_eq!(net.stand_in().tcp_queries(), 1);
    assert_eq!(a(&net, "c2", false), Ok(vec![net.c2_addr]));
    assert_eq!(
        net.dig(&net.ctr_ns, DOCKER_RESOLVER, "example.com", false),
        Ok(vec![net.stand_in_answer])
    );
    assert_eq!(
        net.dig(&net.ctr_ns, DOCKER_RESOLVER, "example.com", true),
        Ok(vec![net.stand_in_answer])
    );
    assert_no_filters(&net);
}

#[test]
#[ignore = "needs root: network namespaces"]
fn attach_redirects_udp_tcp_dig_and_burst() {
    let net = DockerLikeNet::attached(&[]);
    assert_filters_on_each_hook(&net, 1);
    assert_redirected(&net);

    let up = net.upstream().queries();
    assert_eq!(
        net.dig(&net.ctr_ns, DOCKER_RESOLVER, "example.com", false),
        Ok(vec![net.upstream_answer]),
        "dig UDP"
    );
    assert_eq!(
        net.dig(&net.ctr_ns, DOCKER_RESOLVER, "example.com", true),
        Ok(vec![net.upstream_answer]),
        "dig +tcp"
    );
    assert!(net.upstream().queries() >= up + 2);

    let si = net.stand_in().queries();
    let names = [
        "a.example.com",
        "b.example.net",
        "www.example.org",
        "x.y.example",
    ];
    let m = query_many(
        &net.ctr_ns,
        net.resolver(),
        &names,
        200,
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!((m.sent, m.answered), (200, 200), "burst: {m:?}");
    assert_eq!(
        m.count(net.upstream_answer),
        200,
        "burst answered by: {m:?}"
    );
    assert_eq!(
        net.stand_in().queries(),
        si,
        "the stand-in got part of the burst"
    );

    // A single-label name (a container on the network) stays with dockerd.
    let (si, up) = (net.stand_in().queries(), net.upstream().queries());
    assert_eq!(a(&net, "c2", false), Ok(vec![net.c2_addr]));
    assert_eq!(
        (net.stand_in().queries(), net.upstream().queries()),
        (si + 1, up)
    );
}

#[test]
#[ignore = "needs root: network namespaces"]
fn redirect_all_sends_single_label_names_upstream() {
    let net = DockerLikeNet::attached(&["--redirect-all"]);
    let (si, up) = (net.stand_in().queries(), net.upstream().queries());
    assert_eq!(a(&net, "c2", false), Ok(vec![net.upstream_answer]));
    assert_eq!(a(&net, "example.com", false), Ok(vec![net.upstream_answer]));
    assert_eq!(
        (net.stand_in().queries(), net.upstream().queries()),
        (si, up + 2)
    );
}

#[test]
#[ignore = "needs root: network namespaces"]
fn direct_queries_to_upstream_still_work_while_attached() {
    let net = DockerLikeNet::attached(&[]);
    let up = net.upstream().queries();
    for tcp in [false, true] {
        assert_eq!(
            query_a(&net.ctr_ns, net.upstream_udp(), "direct.example", tcp, T),
            Ok(vec![net.upstream_answer]),
            "direct query, tcp={tcp}"
        );
        assert_eq!(
            net.dig(&net.ctr_ns, net.up_addr, "direct.example", tcp),
            Ok(vec![net.upstream_answer]),
            "dig tcp={tcp}"
        );
    }
    assert!(net.upstream().queries() >= up + 4);
    // And the redirect still works after that traffic.
    assert_redirected(&net);
}

#[test]
#[ignore = "needs root: network namespaces"]
fn ping_and_tcp_to_upstream_host_unaffected() {
    let net = DockerLikeNet::attached(&[]);
    assert_eq!(ping(&net.ctr_ns, net.up_addr, 2), Ok(2));
    let echo = TcpEcho::start(&net.up_ns, SocketAddr::new(net.up_addr.into(), 7007)).unwrap();
    let payload: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
    assert_eq!(
        tcp_echo_roundtrip(&net.ctr_ns, echo.addr, &payload, T),
        Ok(payload)
    );
}

#[test]
#[ignore = "needs root: network namespaces"]
fn attach_twice_leaves_one_filter_each() {
    let net = DockerLikeNet::attached(&[]);
    net.attach(&[]);
    assert_filters_on_each_hook(&net, 1);
    assert_redirected(&net);
}

#[test]
#[ignore = "needs root: network namespaces"]
fn detach_restores_dockerd_and_removes_everything() {
    let net = DockerLikeNet::attached(&[]);
    assert_redirected(&net);
    net.detach();
    assert_nothing_attached(&net, "clsact left on lo or eth0");
    assert_stand_in_answers(&net);
}

#[test]
#[ignore = "needs root: network namespaces"]
fn foreign_filter_survives_attach_and_detach() {
    let net = DockerLikeNet::new();
    let c = net.ctr_ns.as_str();
    // Another tool's filter. This kernel has neither cls_matchall nor act_gact, so it is a u32
    // filter without action (matches ARP, classifies, passes), not `matchall action pass`.
    ns_run(c, &["tc", "qdisc", "add", "dev", "eth0", "clsact"]).unwrap();
    ns_run(
        c,
        &[
            "tc", "filter", "add", "dev", "eth0", "ingress", "prio", "200", "protocol", "arp",
            "u32", "match", "u32", "0", "0", "classid", "1:1",
        ],
    )
    .unwrap();
    let foreign = |f: &str| {
        f.lines()
            .filter(|l| l.contains("pref 200") && l.contains("flowid 1:1"))
            .count()
    };
    assert_eq!(foreign(&net.tc_filters("eth0")), 1);

    net.attach(&[]);
    let f = net.tc_filters("eth0");
    assert_eq!(foreign(&f), 1, "foreign filter gone after attach:\n{f}");
    assert_eq!(net.dnsredir_filters("eth0"), 1, "eth0:\n{f}");
    assert_redirected(&net);
    // ARP (through the foreign filter) and ICMP still work.
    run(&["ip", "-n", c, "neigh", "flush", "dev", "eth0"]).unwrap();
    assert_eq!(ping(c, net.bridge_addr, 1), Ok(1));

    net.detach();
    let f = net.tc_filters("eth0");
    assert_eq!(foreign(&f), 1, "foreign filter gone after detach:\n{f}");
    assert_eq!(net.dnsredir_filters("eth0"), 0, "eth0:\n{f}");
    assert!(
        has_clsact(c, "eth0"),
        "the clsact qdisc with a foreign filter was removed"
    );
    assert_stand_in_answers(&net);
}

#[test]
#[ignore = "needs root: network namespaces"]
fn auto_detects_dockerd_ports() {
    let net = DockerLikeNet::new();
    net.attach_finding_ports(&[]);
    assert_ports_found(&net);
}

#[test]
#[ignore = "needs root: network namespaces"]
fn netns_path_works_like_pid() {
    let net = DockerLikeNet::new();
    let path = net.ctr_netns_path();
    let up = net.up_addr.to_string();
    let r = attach_with_ports(&net, &["--netns", &path], net.dockerd_udp_port);
    assert_eq!(r.0, 0, "attach with --netns: {r:?}");
    assert_eq!(net.dnsredir_filters("lo"), 1);
    assert_eq!(net.dnsredir_filters("eth0"), 1);
    assert_redirected(&net);
    let r = run_dnsredir(&["--netns", &path, "--status"]);
    assert_eq!(r.0, 0, "--status with --netns: {r:?}");
    let r = run_dnsredir(&["--netns", &path, "--detach"]);
    assert_eq!(r.0, 0, "--detach with --netns: {r:?}");
    assert_refused_untouched(&net);

    // Port auto-detection from inside the namespace.
    let r = run_dnsredir(&["--netns", &path, "--upstream", &up]);
    assert_eq!(r.0, 0, "attach with --netns, no ports: {r:?}");
    assert_redirected(&net);
}

#[test]
#[ignore = "needs root: network namespaces"]
fn error_namespace_without_eth0() {
    let _serial = serial();
    let ns = Netns::new("n").unwrap();
    let r = attach_with_given_ports(&ns);
    assert_one_line_error(&r, &["eth0"], "namespace without eth0");
    assert_nothing_on(&ns, &["lo"]);
}

#[test]
#[ignore = "needs root: network namespaces"]
fn error_eth0_without_ipv4() {
    let _serial = serial();
    let ns = Netns::new("a").unwrap();
    run(&[
        "ip", "-n", &ns.name, "link", "add", "eth0", "index", "33", "type", "veth", "peer", "name",
        "peer0",
    ])
    .unwrap();
    run(&["ip", "-n", &ns.name, "link", "set", "eth0", "up"]).unwrap();
    let r = attach_with_given_ports(&ns);
    assert_one_line_error(&r, &["ipv4", "address"], "eth0 without IPv4");
    assert_nothing_on(&ns, &["lo", "eth0"]);
}

#[test]
#[ignore = "needs root: network namespaces"]
fn a_bad_pid_or_upstream_is_refused_in_one_line_with_nothing_attached() {
    let net = DockerLikeNet::new();
    let (pid, up) = (net.ctr_pid.to_string(), net.up_addr.to_string());
    let own = net.ctr_addr.to_string();
    let cases: [(&[&str], &[&str]); 3] = [
        (
            &["--pid", "999999999", "--upstream", &up],
            &["999999999", "process", "pid"],
        ),
        (
            &["--pid", &pid, "--upstream", "not-an-ip"],
            &["not-an-ip", "upstream"],
        ),
        (
            &["--pid", &pid, "--upstream", &own],
            &["container's own address"],
        ),
    ];
    for (args, words) in cases {
        let what = args.join(" ");
        assert_one_line_error(&run_dnsredir(args), words, &what);
        // The checks below name no case; this line, shown with a failure, does.
        eprintln!("{what}: refused in one line; now nothing may be attached");
        assert_refused_untouched(&net);
    }
}

#[test]
#[ignore = "needs root: network namespaces"]
fn status_json_counts_exactly() {
    let net = DockerLikeNet::new();
    let (code, j) = net.status_json();
    assert_eq!(code, 3, "not attached yet: {j}");
    assert!(!j.bool_at(&["attached"]), "{j}");

    net.attach(&[]);
    let before = net.attached_status();
    assert!(before.bool_at(&["attached"]), "{before}");
    assert!(
        before.bool_at(&["lo", "attached"]) && before.bool_at(&["interface", "attached"]),
        "{before}"
    );
    assert_eq!(
        before.path(&["config", "upstream"]).and_then(Json::as_str),
        Some(format!("{}:53", net.up_addr).as_str())
    );
    assert_eq!(
        before
            .path(&["config", "container_addr"])
            .and_then(Json::as_str),
        Some(net.ctr_addr.to_string().as_str())
    );
    let c = |j: &Json, k: &str| j.u64_at(&["counters", k]) as i64;

    const N: i64 = 20;
    let up = net.upstream().queries();
    for i in 0..N {
        let name = format!("host{i}.example.com");
        assert_eq!(
            a(&net, &name, false),
            Ok(vec![net.upstream_answer]),
            "query {i}"
        );
    }
    assert_eq!(net.upstream().queries(), up + N as u64);
    let after = net.attached_status();
    assert_eq!(
        c(&after, "queries_redirected_udp") - c(&before, "queries_redirected_udp"),
        N,
        "before {before}\nafter {after}"
    );
    assert_eq!(
        c(&after, "replies_restored") - c(&before, "replies_restored"),
        N,
        "before {before}\nafter {after}"
    );
    assert_eq!(
        c(&after, "queries_redirected_tcp"),
        c(&before, "queries_redirected_tcp"),
        "{after}"
    );

    net.detach();
    let (code, j) = net.status_json();
    assert_eq!(code, 3, "after detach: {j}");
    assert!(!j.bool_at(&["attached"]), "{j}");
}

#[test]
#[ignore = "needs root: network namespaces"]
fn status_says_when_the_configuration_is_stale() {
    let net = DockerLikeNet::new();
    // As after `docker restart`: the redirected port is no longer dockerd's.
    let old_port = net.dockerd_udp_port.wrapping_add(1).max(1);
    let (old, pid) = (old_port.to_string(), net.ctr_pid.to_string());
    let r = attach_with_ports(&net, &["--pid", &pid], old_port);
    assert_eq!(r.0, 0, "{r:?}");
    let (code, j) = net.status_json();
    assert_eq!(code, 0, "attached, if stale: {j}");
    assert!(j.bool_at(&["stale"]), "{j}");
    let reason = stale_reason(&j);
    assert!(
        reason.contains(&old) && reason.contains(&net.dockerd_udp_port.to_string()),
        "{reason}"
    );
    assert!(
        reason.contains(&format!("--pid {pid}")),
        "says what to run: {reason}"
    );
    let text = net.dnsredir(&["--status"]);
    assert!(text.1.contains("STALE"), "{text:?}");

    // Running it again without ports fixes it.
    net.attach(&[]);
    let (_, j) = net.status_json();
    assert!(!j.bool_at(&["stale"]), "{j}");
}

#[test]
#[ignore = "needs root: network namespaces"]
fn error_not_root() {
    let net = DockerLikeNet::new();
    let (pid, up) = (net.ctr_pid.to_string(), net.up_addr.to_string());
    let bin = dnsredir_bin();
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            &bin,
            "--pid",
            &pid,
            "--upstream",
            &up,
        ])
        .output()
        .expect("setpriv runs");
    let r = (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_one_line_error(&r, &["permission denied"], "as nobody");
    assert!(r.2.contains("root"), "says what to do: {}", r.2);
    assert_no_filters(&net);
}

#[test]
#[ignore = "needs root: network namespaces"]
fn verbose_attach_prints_each_step() {
    let net = DockerLikeNet::new();
    let (out, err) = net.attach_finding_ports(&["--verbose"]);
    assert!(
        out.contains(&format!("{}:53", net.up_addr)),
        "summary names the upstream: {out}"
    );
    let expected = [
        format!("ifindex {}", net.eth0_ifindex),
        net.ctr_addr.to_string(),
        format!("UDP port {} (found)", net.dockerd_udp_port),
        format!("TCP port {} (found)", net.dockerd_tcp_port),
        "program id".to_string(),
        "filter pref".to_string(),
    ];
    assert_mentions(&err, &expected, "--verbose");
}

#[test]
#[ignore = "needs root: network namespaces"]
fn error_upstream_unreachable_through_eth0() {
    let net = DockerLikeNet::new();
    // Like a container on an --internal network: no route out.
    run(&["ip", "-n", &net.ctr_ns, "route", "del", "default"]).unwrap();
    let r = net.dnsredir(&["--upstream", &net.up_addr.to_string()]);
    assert_one_line_error(
        &r,
        &["cannot be reached through eth0"],
        "no route to the upstream",
    );
    assert_nothing_attached(&net, "nothing attached");
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn a_namespace_that_lost_its_interface_is_told_only_detach_remains() {
    // As a `--network container:X` container after X restarted: lo stays, eth0 is gone.
    let net = DockerLikeNet::attached(&[]);
    let ip = std::process::Command::new("ip")
        .args(["-n", &net.ctr_ns, "link", "del", "eth0"])
        .status()
        .expect("ip");
    assert!(ip.success());
    let (code, j) = net.status_json();
    assert_eq!(code, 3, "half attached is not attached: {j}");
    let reason = stale_reason(&j);
    assert!(
        reason.contains("lo ingress"),
        "names what is left: {reason}"
    );
    assert!(
        reason.contains(&format!(
            "only dnsredir --pid {} --detach remains",
            net.ctr_pid
        )),
        "advice that works there: {reason}"
    );
    assert!(!reason.contains("--upstream"), "no attach advice: {reason}");
    let (code, out, err) = net.dnsredir(&["--detach"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("1 filters removed"), "{out}");
    assert_eq!(net.dnsredir_filters("lo"), 0);
    assert!(!has_clsact(&net.ctr_ns, "lo"), "the clsact qdisc went too");
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn the_label_is_kept_in_the_attachment_and_shown_by_status() {
    let net = DockerLikeNet::attached(&["--label", "shop/web-7"]);
    let (code, j) = net.status_json();
    assert_eq!(code, 0, "{j}");
    assert_eq!(
        j.path(&["label"]).and_then(Json::as_str),
        Some("shop/web-7"),
        "{j}"
    );
    assert_eq!(
        j.path(&["ifname"]).and_then(Json::as_str),
        Some("eth0"),
        "{j}"
    );
    let (_, text, _) = net.dnsredir(&["--status"]);
    assert!(text.contains("label: shop/web-7\n"), "{text}");
    // Without --label, the attach names what it was given.
    net.attach(&[]);
    let (_, j) = net.status_json();
    assert_eq!(
        j.path(&["label"]).and_then(Json::as_str),
        Some(format!("pid {}", net.ctr_pid).as_str()),
        "{j}"
    );
}
