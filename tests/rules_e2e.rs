//! The name rules end to end in an emulated Docker container (`support::DockerLikeNet`: its
//! stand-in resolver answers every name with `stand_in_answer`, the upstream with
//! `upstream_answer`). Root only.

mod support;

use std::time::{Duration, Instant};
use support::redirect::a;
use support::*;

/// The rules `--status --json` lists: (suffix, kind) pairs, and the rules map's id.
fn rules_in_force(net: &DockerLikeNet) -> (Vec<(String, String)>, u64) {
    let (code, j) = net.status_json();
    assert_eq!(code, 0, "attached");
    let Some(Json::Arr(items)) = j.get("rules") else {
        panic!("no rules array in --status --json");
    };
    let rules = items
        .iter()
        .map(|r| {
            (
                r.get("suffix")
                    .and_then(Json::as_str)
                    .unwrap_or("?")
                    .to_string(),
                r.get("kind")
                    .and_then(Json::as_str)
                    .unwrap_or("?")
                    .to_string(),
            )
        })
        .collect();
    (rules, j.u64_at(&["rules_map_id"]))
}

fn pair(s: &str, k: &str) -> (String, String) {
    (s.to_string(), k.to_string())
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2), tc"]
fn keep_leaves_a_dotted_alias_to_dockerd() {
    let net = DockerLikeNet::attached(&["--keep", ".internal.test"]);
    assert_eq!(
        a(&net, "api.internal.test", false),
        Ok(vec![net.stand_in_answer])
    );
    assert_eq!(
        a(&net, "API.Internal.TEST", false),
        Ok(vec![net.stand_in_answer])
    );
    assert_eq!(a(&net, "example.com", false), Ok(vec![net.upstream_answer]));
    assert_eq!(
        a(&net, "xinternal.test", false),
        Ok(vec![net.upstream_answer])
    );
    assert_eq!(
        a(&net, "c2", false),
        Ok(vec![net.c2_addr]),
        "single-label: kept"
    );
    // TCP is redirected as without rules (the name is not known at the SYN).
    assert_eq!(a(&net, "example.org", true), Ok(vec![net.upstream_answer]));
    assert_eq!(rules_in_force(&net).0, vec![pair("internal.test", "keep")]);
    let (_, j) = net.status_json();
    assert_eq!(j.u64_at(&["counters", "rule_kept"]), 2);
    assert_eq!(j.u64_at(&["counters", "queries_kept_for_dockerd"]), 3);
    assert_eq!(j.u64_at(&["counters", "rule_unparsed"]), 0);
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2), tc"]
fn only_redirects_split_dns_and_leaves_the_rest() {
    let net = DockerLikeNet::attached(&["--only", "corp.test"]);
    assert_eq!(a(&net, "x.corp.test", false), Ok(vec![net.upstream_answer]));
    assert_eq!(a(&net, "example.com", false), Ok(vec![net.stand_in_answer]));
    // TCP stays where it went before: with dockerd.
    let up = net.upstream().tcp_queries();
    assert_eq!(a(&net, "x.corp.test", true), Ok(vec![net.stand_in_answer]));
    assert_eq!(net.upstream().tcp_queries(), up);
    let (_, j) = net.status_json();
    assert_eq!(j.u64_at(&["counters", "rule_only_redirected"]), 1);
    assert_eq!(j.u64_at(&["counters", "rule_outside_only"]), 1);
    assert_eq!(j.u64_at(&["counters", "queries_redirected_tcp"]), 0);
    let (code, text, _) = net.dnsredir(&["--status"]);
    assert_eq!(code, 0);
    assert!(text.contains("\n  only corp.test\n"), "{text}");
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2), tc"]
fn reattaching_replaces_the_rules_and_their_map() {
    let net = DockerLikeNet::attached(&["--keep", "a.test", "--keep", "b.test"]);
    let (rules, old_map) = rules_in_force(&net);
    assert_eq!(rules, vec![pair("a.test", "keep"), pair("b.test", "keep")]);
    net.attach(&["--only", "corp.test", "--keep", "x.corp.test"]);
    let (rules, new_map) = rules_in_force(&net);
    // Listed by suffix.
    assert_eq!(
        rules,
        vec![pair("corp.test", "only"), pair("x.corp.test", "keep")]
    );
    assert_ne!(old_map, new_map);
    // The old map goes with the old programs (freed after an RCU grace period).
    let deadline = Instant::now() + Duration::from_secs(5);
    while dnsredir::bpf::sys::map_fd_by_id(old_map as u32).is_ok() {
        assert!(Instant::now() < deadline, "map {old_map} is still there");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        a(&net, "a.test", false),
        Ok(vec![net.stand_in_answer]),
        "outside --only"
    );
    assert_eq!(
        a(&net, "q.x.corp.test", false),
        Ok(vec![net.stand_in_answer]),
        "keep wins"
    );
    assert_eq!(a(&net, "q.corp.test", false), Ok(vec![net.upstream_answer]));
    // And without rules, none are left.
    net.attach(&[]);
    assert_eq!(rules_in_force(&net).0, vec![]);
    assert_eq!(a(&net, "a.test", false), Ok(vec![net.upstream_answer]));
    net.detach();
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2), tc"]
fn a_bad_suffix_is_a_usage_error_and_nothing_changes() {
    let net = DockerLikeNet::new();
    for bad in ["a..b", "", &"x".repeat(64), "*.corp.test", "a b"] {
        let mut args = net.attach_args();
        args.extend(["--keep".to_string(), bad.to_string()]);
        let (code, out, err) = run_dnsredir(&args);
        assert_eq!(code, 2, "{bad:?}: {out}{err}");
        assert_eq!(lines(&err).len(), 1, "one line: {err}");
        assert!(err.starts_with("dnsredir: error: bad --keep:"), "{err}");
    }
    assert_eq!(net.dnsredir_filters("lo"), 0, "nothing attached");
}
