//! Name rules and `--watch` on the nameservers path, end to end, in the CNI-style namespace of
//! egress_e2e.rs: with `--keep` the names under it stay with the nameserver asked, with
//! `--only` only the names under it go to the upstream (and TCP stays), and a `--watch`
//! process prints a line per query with its path and first answer.

mod support;

use std::net::SocketAddrV4;
use std::time::Duration;
use support::cni::Cni;
use support::watcher::Watcher;
use support::{require_root, serial};

fn attach(net: &Cni, extra: &[&str]) -> (SocketAddrV4, SocketAddrV4) {
    let ns = SocketAddrV4::new(net.ns_addr, 53);
    let up = SocketAddrV4::new(net.up_addr, 53);
    let (ns_s, up_s) = (ns.to_string(), up.to_string());
    let mut args = vec!["--resolver", &ns_s, "--upstream", &up_s];
    args.extend_from_slice(extra);
    let (code, out, err) = net.dnsredir(&args);
    assert_eq!(code, 0, "attach {extra:?}: {out}{err}");
    (ns, up)
}

fn detach(net: &Cni) {
    let (code, out, err) = net.dnsredir(&["--detach"]);
    assert_eq!(code, 0, "detach: {out}{err}");
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn keep_leaves_its_names_with_the_nameserver() {
    require_root();
    let _serial = serial();
    let net = Cni::new();
    let (ns, _) = attach(&net, &["--keep", "kept.test"]);
    for tcp in [false, true] {
        assert_eq!(
            net.ask_name(ns, "example.com", tcp),
            vec![net.upstream.answer()],
            "tcp {tcp}: other names go to the upstream"
        );
    }
    assert_eq!(
        net.ask_name(ns, "x.kept.test", false),
        vec![net.nameserver.answer()],
        "under --keep: the nameserver answers"
    );
    let (code, status, _) = net.dnsredir(&["--status"]);
    assert_eq!(code, 0);
    assert!(status.contains("kept.test"), "{status}");
    detach(&net);
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn only_sends_only_its_names_to_the_upstream() {
    require_root();
    let _serial = serial();
    let net = Cni::new();
    let (ns, _) = attach(&net, &["--only", "corp.test"]);
    assert_eq!(
        net.ask_name(ns, "x.corp.test", false),
        vec![net.upstream.answer()],
        "under --only: the upstream answers"
    );
    for tcp in [false, true] {
        assert_eq!(
            net.ask_name(ns, "example.com", tcp),
            vec![net.nameserver.answer()],
            "tcp {tcp}: outside --only (and all TCP): the nameserver answers"
        );
    }
    detach(&net);
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn watch_prints_the_nameserver_paths_queries_with_their_answers() {
    require_root();
    let _serial = serial();
    let net = Cni::new();
    let (ns, _) = attach(&net, &["--keep", "kept.test"]);
    let watcher = Watcher::start(&["--netns", net.ctr.path().as_str()], &[]);
    assert_eq!(
        net.ask_name(ns, "watched.example.com", false),
        vec![net.upstream.answer()]
    );
    let upstream = net.upstream.answer().to_string();
    let line = watcher.wait_for(
        &["watched.example.com", " nameserver ", &upstream],
        Duration::from_secs(5),
    );
    assert!(line.contains("NOERROR"), "{line}");
    assert_eq!(
        net.ask_name(ns, "x.kept.test", false),
        vec![net.nameserver.answer()]
    );
    let nameserver = net.nameserver.answer().to_string();
    watcher.wait_for(
        &["x.kept.test", " kept ", &nameserver],
        Duration::from_secs(5),
    );
    drop(watcher);
    detach(&net);
}
