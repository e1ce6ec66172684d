//! Name rules and `--watch` on the nameservers path, end to end, in the CNI-style namespace of
//! egress_e2e.rs: with `--keep` the names under it stay with the nameserver asked, with
//! `--only` only the names under it go to the upstream (and TCP stays), and a `--watch`
//! process prints a line per query with its path and first answer.

mod support;

use std::time::Duration;
use support::cni::Cni;
use support::watcher::Watcher;

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn keep_leaves_its_names_with_the_nameserver() {
    let net = Cni::attached(&["--keep", "kept.test"]);
    net.assert_answers(
        net.ns,
        net.upstream.answer(),
        "other names go to the upstream",
    );
    assert_eq!(
        net.ask_name(net.ns, "x.kept.test", false),
        vec![net.nameserver.answer()],
        "under --keep: the nameserver answers"
    );
    let (code, status, _) = net.dnsredir(&["--status"]);
    assert_eq!(code, 0);
    assert!(status.contains("kept.test"), "{status}");
    net.detach();
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn only_sends_only_its_names_to_the_upstream() {
    let net = Cni::attached(&["--only", "corp.test"]);
    assert_eq!(
        net.ask_name(net.ns, "x.corp.test", false),
        vec![net.upstream.answer()],
        "under --only: the upstream answers"
    );
    net.assert_answers(
        net.ns,
        net.nameserver.answer(),
        "outside --only (and all TCP): the nameserver answers",
    );
    net.detach();
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn watch_prints_the_nameserver_paths_queries_with_their_answers() {
    let net = Cni::attached(&["--keep", "kept.test"]);
    let watcher = Watcher::start(&["--netns", net.ctr.path().as_str()], &[]);
    assert_eq!(
        net.ask_name(net.ns, "watched.example.com", false),
        vec![net.upstream.answer()]
    );
    let upstream = net.upstream.answer().to_string();
    let line = watcher.wait_for(
        &["watched.example.com", " nameserver ", &upstream],
        Duration::from_secs(5),
    );
    assert!(line.contains("NOERROR"), "{line}");
    assert_eq!(
        net.ask_name(net.ns, "x.kept.test", false),
        vec![net.nameserver.answer()]
    );
    let nameserver = net.nameserver.answer().to_string();
    watcher.wait_for(
        &["x.kept.test", " kept ", &nameserver],
        Duration::from_secs(5),
    );
    drop(watcher);
    net.detach();
}
