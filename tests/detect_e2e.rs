//! End-to-end tests of how dnsredir finds dockerd's ports (given, from Docker's NAT, from the
//! sockets on 127.0.0.11) when other sockets listen on 127.0.0.11 too, and of the upstream
//! probe made before attaching. Root only: run with `--include-ignored` as root.

mod support;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use support::redirect::*;
use support::*;

/// Another program's sockets on 127.0.0.11 in the container (random ports), kept open while
/// the value lives: what made the old detection fail.
struct Squatters {
    _udp: Vec<UdpSocket>,
    _tcp: Vec<TcpListener>,
}

/// A Docker-like container in which another program holds `udp` UDP sockets and `tcp` TCP
/// listeners on 127.0.0.11 besides dockerd's.
fn crowded(udp: usize, tcp: usize) -> (DockerLikeNet, Squatters) {
    let net = DockerLikeNet::new();
    let other = in_netns(&net.ctr_ns, move || Squatters {
        _udp: (0..udp)
            .map(|_| UdpSocket::bind((DOCKER_RESOLVER, 0)).expect("extra UDP socket"))
            .collect(),
        _tcp: (0..tcp)
            .map(|_| TcpListener::bind((DOCKER_RESOLVER, 0)).expect("extra TCP listener"))
            .collect(),
    })
    .expect("entering the container namespace");
    (net, other)
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn both_ports_given_work_whatever_else_listens() {
    let (net, _other) = crowded(1, 1);
    let (code, out, err) = run_dnsredir(&net.attach_args());
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert_redirected(&net);

    // One port given, the other found.
    let u = net.dockerd_udp_port.to_string();
    let (_, err) = net.attach_finding_ports(&["--dockerd-port", &u, "-v"]);
    assert!(err.contains("UDP port: given"), "{err}");
    assert!(err.contains("TCP port: from Docker's NAT"), "{err}");
    assert_redirected(&net);
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn no_ports_given_are_found_through_the_nat() {
    let (net, _other) = crowded(1, 1);
    let (_, err) = net.attach_finding_ports(&["--verbose"]);
    let expected = [
        format!("UDP port {} (found)", net.dockerd_udp_port),
        format!("TCP port {} (found)", net.dockerd_tcp_port),
        "UDP port: from Docker's NAT".to_string(),
        "TCP port: from Docker's NAT".to_string(),
    ];
    assert_mentions(&err, &expected, "--verbose");
    assert!(!err.contains("stays with dockerd"), "{err}");
    assert_ports_found(&net);
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn status_reports_whatever_else_listens() {
    let (net, _other) = crowded(2, 2);
    net.attach(&[]);
    let j = net.attached_status();
    assert!(j.bool_at(&["attached"]), "{j}");
    assert!(!j.bool_at(&["stale"]), "{j}");
    let text = net.dnsredir(&["--status"]);
    assert_eq!(text.0, 0, "{text:?}");
    assert!(text.1.contains("dnsredir: attached"), "{text:?}");
    assert!(!text.1.contains("STALE"), "{text:?}");

    // Without Docker's NAT, attached again: UDP stays with dockerd (three UDP sockets), and
    // the check cannot tell which one is dockerd's: said, not failed.
    ns_run(&net.ctr_ns, &["iptables", "-t", "nat", "-F"]).expect("flushing the nat rules");
    let t = net.dockerd_tcp_port.to_string();
    let (_, err) = net.attach_finding_ports(&["--dockerd-tcp-port", &t]);
    assert!(err.contains("UDP stays with dockerd"), "{err}");
    let j = net.attached_status();
    let unknown = j
        .path(&["ports_unknown"])
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_string();
    assert!(unknown.contains("cannot tell"), "{j}");
    let text = net.dnsredir(&["--status"]);
    assert_eq!(text.0, 0, "{text:?}");
    assert!(text.1.contains("cannot tell"), "{text:?}");
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn without_nat_an_ambiguous_protocol_stays_with_dockerd() {
    // With the stand-in's: two UDP sockets on 127.0.0.11, one TCP listener.
    let (net, _other) = crowded(1, 0);
    ns_run(&net.ctr_ns, &["iptables", "-t", "nat", "-F"]).expect("flushing the nat rules");
    let (_, err) = net.attach_finding_ports(&[]);
    let l = lines(&err);
    assert_eq!(l.len(), 1, "one line about UDP:\n{err}");
    assert!(
        l[0].contains("UDP") && l[0].contains("dockerd") && l[0].contains("--dockerd-port"),
        "{}",
        l[0]
    );
    let j = net.attached_status();
    assert_eq!(
        j.u64_at(&["config", "dockerd_tcp_port"]),
        net.dockerd_tcp_port as u64,
        "{j}"
    );
    assert!(
        j.path(&["config", "dockerd_udp_port"])
            .is_some_and(Json::is_null),
        "UDP not redirected: {j}"
    );
    // No DNAT now, so TCP to dockerd's port itself shows the redirect.
    let tcp_port = SocketAddr::new(DOCKER_RESOLVER.into(), net.dockerd_tcp_port);
    assert_eq!(
        query_a(&net.ctr_ns, tcp_port, "example.org", true, T),
        Ok(vec![net.upstream_answer]),
        "TCP redirected"
    );
    let udp_port = SocketAddr::new(DOCKER_RESOLVER.into(), net.dockerd_udp_port);
    assert_eq!(
        query_a(&net.ctr_ns, udp_port, "example.com", false, T),
        Ok(vec![net.stand_in_answer]),
        "UDP left with dockerd"
    );
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn a_silent_upstream_is_refused_before_anything_is_attached() {
    let net = DockerLikeNet::new();
    let bad = format!("{}:5353", net.up_addr);
    let (code, out, err) = net.dnsredir(&["--upstream", &bad]);
    assert_eq!(code, 1, "stdout: {out}\nstderr: {err}");
    let l = lines(&err);
    assert_eq!(l.len(), 1, "one line:\n{err}");
    assert!(
        l[0].contains("--no-probe") && l[0].contains(&bad),
        "{}",
        l[0]
    );
    assert_nothing_attached(&net, "no qdisc either");

    let (code, out, err) = net.dnsredir(&["--upstream", &bad, "--no-probe"]);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert_eq!(net.dnsredir_filters("lo"), 1);
    assert_eq!(net.dnsredir_filters("eth0"), 1);
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn a_good_upstream_shows_its_round_trip_time() {
    let net = DockerLikeNet::new();
    let (_, err) = net.attach_finding_ports(&["--verbose"]);
    let want = format!("upstream {}:53 answered the probe in ", net.up_addr);
    let line = err
        .lines()
        .find(|l| l.contains(&want))
        .unwrap_or_else(|| panic!("no {want:?}:\n{err}"));
    assert!(line.ends_with(" ms"), "{line}");
    assert_redirected(&net);
}
