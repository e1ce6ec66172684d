//! The name rules (`--keep`, `--only`) in the query program, run by the kernel on crafted
//! queries (BPF_PROG_TEST_RUN): whole-label, case-insensitive suffix matches up to the limits of
//! a name, and the documented default, counted, for names the program cannot read.

use dnsredir::abi::{Counters, FLAG_REDIRECT_ALL, QUERY_SECTION, RULES_MAP};
use dnsredir::bpf::elf::ObjectFile;
use dnsredir::bpf::load::Loaded;
use dnsredir::redirect::rules;

mod support;
use support::packet::*;
use support::prog::{counters, load_with_rules, run};

struct Prog {
    object: ObjectFile,
    loaded: Loaded,
}

/// The object loaded as the loader would for `--keep keep... --only only...`.
fn load(keep: &[&str], only: &[&str], flags: u16) -> Prog {
    let (object, loaded) = load_with_rules(&test_config(5353, flags), keep, only);
    Prog { object, loaded }
}

impl Prog {
    /// Whether the query for this DNS message stays with dockerd (untouched, on to the next
    /// filter) or is redirected.
    fn kept(&self, dns: Vec<u8>) -> bool {
        let packet = Packet::udp((CLIENT, CLIENT_PORT), (RESOLVER, DOCKERD_UDP), dns).bytes();
        match run(&self.loaded, QUERY_SECTION, &packet) {
            (TC_ACT_UNSPEC, out) => {
                assert_eq!(out, packet, "a kept query is not touched");
                true
            }
            (TC_ACT_REDIRECT, _) => false,
            (other, _) => panic!("verdict {other}"),
        }
    }

    fn kept_name(&self, name: &str) -> bool {
        self.kept(dns_query(7, name))
    }

    fn counters(&self) -> Counters {
        counters(&self.object, &self.loaded)
    }
}

/// A query whose question name is these raw wire bytes (root byte included, or not).
fn raw_query(name_wire: &[u8]) -> Vec<u8> {
    let mut m = vec![0, 7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(name_wire);
    m.extend_from_slice(&[0, 1, 0, 1]);
    m
}

fn rule_counts(c: &Counters) -> [u64; 5] {
    [
        c.rule_kept,
        c.rule_outside_only,
        c.rule_only_redirected,
        c.rule_unparsed,
        c.queries_kept_for_dockerd,
    ]
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn keep_matches_whole_labels_in_any_case() {
    let p = load(&[".corp.example", "internal.test."], &[], 0);
    assert!(p.kept_name("corp.example"), "the suffix itself");
    assert!(p.kept_name("a.B.corp.EXAMPLE"));
    assert!(p.kept_name("API.Internal.Test"));
    assert!(
        !p.kept_name("xcorp.example"),
        "a suffix of a label is no match"
    );
    assert!(!p.kept_name("corp.example.com"));
    assert!(p.kept_name("example"), "single-label: kept by the default");
    let c = p.counters();
    // "example" is single-label: kept by the default, not by a rule.
    assert_eq!(rule_counts(&c), [3, 0, 0, 0, 4]);
    assert_eq!(c.queries_redirected_udp, 2);
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn only_redirects_just_its_suffixes_and_tcp_stays() {
    let p = load(&[], &["corp.test"], 0);
    assert!(!p.kept_name("x.corp.test"));
    assert!(!p.kept_name("corp.test"));
    assert!(p.kept_name("example.com"));
    assert!(p.kept_name("xcorp.test"));
    assert!(p.kept_name("c2"), "single-label");
    let c = p.counters();
    assert_eq!(rule_counts(&c), [0, 2, 2, 0, 3]);
    // TCP: the name is unknown at the SYN, so with --only it stays with dockerd.
    let mut syn = Packet::tcp((CLIENT, CLIENT_PORT), (RESOLVER, DOCKERD_TCP), vec![]);
    syn.tcp_flags = 0x02;
    let syn = syn.bytes();
    assert_eq!(
        run(&p.loaded, QUERY_SECTION, &syn),
        (TC_ACT_UNSPEC, syn.clone())
    );
    // With --keep alone, TCP goes to the upstream as without rules.
    let k = load(&["corp.test"], &[], 0);
    assert_eq!(run(&k.loaded, QUERY_SECTION, &syn).0, TC_ACT_REDIRECT);
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn keep_wins_over_only() {
    let p = load(&["a.corp.test", "b.test"], &["corp.test", "x.b.test"], 0);
    assert!(!p.kept_name("z.corp.test"));
    assert!(p.kept_name("q.a.corp.test"), "keep under only");
    assert!(p.kept_name("y.x.b.test"), "only under keep");
    assert!(p.kept_name("example.com"), "outside --only");
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn names_at_the_limits() {
    let l63 = "a".repeat(63);
    // 63 + 1 + 63 + 1 + 63 + 1 + 61 = 253 characters: 255 bytes on the wire.
    let longest = format!("{l63}.{l63}.{l63}.{}", "b".repeat(61));
    assert_eq!(longest.len(), 253);
    let l61 = "b".repeat(61);
    let p = load(&[&l61, &format!("{l63}.x"), "a.a"], &[], FLAG_REDIRECT_ALL);
    assert!(p.kept_name(&longest), "255-byte name under its last label");
    assert!(
        p.kept_name(&format!("{l63}.x")),
        "63-byte label in the rule"
    );
    assert!(p.kept_name(&format!("Q.{}.x", l63.to_uppercase())));
    assert!(!p.kept_name(&format!("{l63}.y")));
    // 127 one-letter labels: 254 bytes and the root.
    let labels127 = vec!["a"; 127].join(".");
    assert!(p.kept_name(&labels127));
    let c = p.counters();
    assert_eq!(c.rule_kept, 4);
    assert_eq!(c.rule_unparsed, 0);
    // One byte over: 128 labels (256 wire bytes) cannot be read; --keep alone: redirected.
    let mut over = Vec::new();
    for _ in 0..128 {
        over.extend_from_slice(&[1, b'a']);
    }
    over.push(0);
    assert!(!p.kept(raw_query(&over)));
    assert_eq!(p.counters().rule_unparsed, 1);
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn unreadable_names_follow_the_default_and_are_counted() {
    let bad: Vec<Vec<u8>> = vec![
        // a '.' inside a label would pass for a boundary: x.corp.test as one label + test
        b"\x06x.corp\x04test\x00".to_vec(),
        // a compression pointer in a question
        b"\x01x\xc0\x0c".to_vec(),
        // a length that runs past the packet
        b"\x01x\x3fcorp".to_vec(),
        // a reserved label type
        b"\x41x\x04test\x00".to_vec(),
        // a byte outside the hostname alphabet
        b"\x03a*b\x04corp\x04test\x00".to_vec(),
        // a space
        b"\x03a b\x04corp\x04test\x00".to_vec(),
    ];
    let only = load(&[], &["corp.test"], 0);
    let keep = load(&["corp.test"], &[], 0);
    for name in &bad {
        assert!(
            only.kept(raw_query(name)),
            "--only: {name:?} stays with dockerd"
        );
        assert!(
            !keep.kept(raw_query(name)),
            "--keep: {name:?} is redirected"
        );
    }
    let n = bad.len() as u64;
    assert_eq!(rule_counts(&only.counters()), [0, 0, 0, n, n]);
    assert_eq!(rule_counts(&keep.counters()), [0, 0, 0, n, 0]);
    // The root (an empty name) is read, and is under no suffix.
    assert!(only.kept(raw_query(&[0])));
    assert!(!keep.kept(raw_query(&[0])));
    assert_eq!(only.counters().rule_outside_only, 1);
    assert_eq!(keep.counters().rule_unparsed, n);
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn many_rules_and_the_last_one_matches() {
    for count in [256, 1024] {
        let names: Vec<String> = (0..count)
            .map(|i| format!("svc{i}.zone{}.test", i % 7))
            .collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let p = load(&refs, &[], 0);
        let last = &names[count - 1];
        assert!(
            p.kept_name(&format!("www.{last}")),
            "{count} rules: the last one"
        );
        assert!(p.kept_name(&names[0]));
        assert!(!p.kept_name(&format!("svc{count}.zone0.test")));
        let maps = rules::RuleMaps {
            rules: p.loaded.map(&p.object, RULES_MAP).expect("map"),
            answers: None,
        };
        let read = rules::read(maps).expect("read").rules();
        assert_eq!(read.rules.len(), count, "read back from the kernel");
    }
}
