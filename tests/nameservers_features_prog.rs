//! Name rules and `--watch` events on the nameservers path, run by the kernel on crafted
//! packets (BPF_PROG_TEST_RUN): a query a rule keeps goes on to its nameserver byte for byte
//! and is not remembered, the others are redirected as without rules; with `--only` TCP stays
//! with the nameserver; every combination of rule flags loads on both paths; and with a
//! watcher's flag the egress program writes the query's event and the reply program the
//! restored (or the nameserver's own) answer's.

use dnsredir::abi::raw::{addr_raw, port_raw};
use dnsredir::abi::{
    EventHeader, EGRESS_SECTION, EVENT_QUERY, EVENT_REPLY, EVENT_SIZE, FLAG_RULES_KEEP,
    FLAG_RULES_ONLY, QUERY_SECTION, REPLY_SECTION, ROUTE_NAMESERVER, ROUTE_NAMESERVER_KEPT,
    ROUTE_NONE,
};
use dnsredir::bpf::elf::ObjectFile;
use dnsredir::bpf::load::Loaded;
use dnsredir::bpf::ringbuf::RingBuf;
use dnsredir::redirect::rules::Rules;
use std::net::Ipv4Addr;

mod support;
use support::packet::*;
use support::prog::{
    counters, events_ring, load_with_rules, run, suffixes, take_events, watch, NameserversPath,
};
use support::require_root;

/// The path with one nameserver taken over, as these tests want it.
fn ipv4_path() -> NameserversPath {
    NameserversPath::ipv4().one_nameserver()
}

struct Prog {
    path: NameserversPath,
    object: ObjectFile,
    loaded: Loaded,
}

/// The object loaded as the loader would for `--keep keep... --only only...` on `path`.
fn load(path: NameserversPath, keep: &[&str], only: &[&str]) -> Prog {
    let (object, loaded) = load_with_rules(&path.config, keep, only);
    Prog {
        path,
        object,
        loaded,
    }
}

fn load_ns(keep: &[&str], only: &[&str]) -> Prog {
    load(ipv4_path(), keep, only)
}

impl Prog {
    /// The client's query for `name` to the (first) nameserver.
    fn query(&self, id: u16, name: &str) -> Packet {
        let ns = self.path.nameservers[0];
        Packet::udp(
            (self.path.container, CLIENT_PORT),
            (ns, 53),
            dns_query(id, name),
        )
    }

    /// The upstream's answer to [`Prog::query`].
    fn answer(&self, id: u16, name: &str) -> Packet {
        let (upstream, port) = (self.path.upstream, self.path.upstream_port);
        Packet::udp(
            (upstream, port),
            (self.path.container, CLIENT_PORT),
            dns_answer(id, name),
        )
    }

    /// What `section` rewrote `packet` to, or None when it left it byte for byte. Either way
    /// the verdict is TC_ACT_UNSPEC: the nameservers path rewrites in place.
    fn rewritten(&self, section: &str, packet: &Packet, what: &str) -> Option<Seen> {
        let bytes = packet.bytes();
        let (ret, out) = run(&self.loaded, section, &bytes);
        assert_eq!(ret, TC_ACT_UNSPEC, "{what}");
        (out != bytes).then(|| parse_checked(&out))
    }

    /// Whether the egress program leaves the query for `name` with the nameserver (byte for
    /// byte) rather than sending it to the upstream.
    fn kept(&self, id: u16, name: &str) -> bool {
        let what = format!("{name}: on out of the interface");
        let Some(seen) = self.rewritten(EGRESS_SECTION, &self.query(id, name), &what) else {
            return true;
        };
        let upstream = (self.path.upstream, self.path.upstream_port);
        assert_eq!((seen.dst, seen.dport), upstream, "{name}: to the upstream");
        false
    }

    /// Whether the upstream's answer for `id` is restored (its query was remembered).
    fn restored(&self, id: u16, name: &str) -> bool {
        let what = format!("{name}: on up the stack");
        let Some(seen) = self.rewritten(REPLY_SECTION, &self.answer(id, name), &what) else {
            return false;
        };
        let ns = self.path.nameservers[0];
        assert_eq!(seen.src, ns, "{name}: from the nameserver");
        true
    }
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn keep_leaves_a_query_with_its_nameserver_untouched_and_unremembered() {
    let p = load_ns(&["kept.test"], &[]);
    assert!(p.kept(1, "x.kept.test"), "under --keep: the nameserver's");
    assert!(
        p.kept(2, "KEPT.test"),
        "case-insensitive, the suffix itself"
    );
    assert!(
        !p.restored(1, "x.kept.test"),
        "a kept query is not remembered"
    );
    assert!(!p.kept(3, "example.com"), "other names go to the upstream");
    assert!(!p.kept(4, "notkept.test"), "whole labels only");
    assert!(
        p.restored(3, "example.com"),
        "a redirected query's answer comes back"
    );
    let c = counters(&p.object, &p.loaded);
    assert_eq!(c.rule_kept, 2);
    assert_eq!(
        c.queries_kept_for_dockerd, 2,
        "kept queries are counted as kept"
    );
    assert_eq!(c.queries_redirected_udp, 2);
    assert_eq!(c.replies_restored, 1);
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn only_redirects_its_names_and_leaves_tcp_with_the_nameserver() {
    let p = load_ns(&[], &["corp.test"]);
    assert!(!p.kept(1, "x.corp.test"), "under --only: the upstream's");
    assert!(p.kept(2, "example.com"), "outside --only: the nameserver's");
    assert!(p.restored(1, "x.corp.test"));
    assert!(!p.restored(2, "example.com"));
    let mut syn = Packet::tcp(
        (p.path.container, CLIENT_PORT + 1),
        (p.path.nameservers[0], 53),
        vec![],
    );
    syn.tcp_flags = 0x02;
    let syn = syn.bytes();
    assert_eq!(
        run(&p.loaded, EGRESS_SECTION, &syn),
        (TC_ACT_UNSPEC, syn.clone()),
        "with --only TCP stays with the nameserver"
    );
    let c = counters(&p.object, &p.loaded);
    assert_eq!(c.rule_only_redirected, 1);
    assert_eq!(c.rule_outside_only, 1);
    assert_eq!(c.tcp_segments_redirected, 0);

    // Keep wins over --only.
    let both = load_ns(&["x.corp.test"], &["corp.test"]);
    assert!(both.kept(1, "a.x.corp.test"));
    assert!(!both.kept(2, "y.corp.test"));
    assert!(both.kept(3, "example.com"));
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn every_rule_flag_combination_loads_on_both_paths() {
    require_root();
    let combos: [(&[&str], &[&str], u16); 4] = [
        (&[], &[], 0),
        (&["kept.test"], &[], FLAG_RULES_KEEP),
        (&[], &["corp.test"], FLAG_RULES_ONLY),
        (
            &["kept.test"],
            &["corp.test"],
            FLAG_RULES_KEEP | FLAG_RULES_ONLY,
        ),
    ];
    for (keep, only, flags) in combos {
        for (path, config) in [
            ("nameservers", ipv4_path().config),
            ("embedded resolver", test_config(UPSTREAM_PORT, 0)),
        ] {
            let rules = Rules::new(&suffixes(keep), &suffixes(only)).expect("rules");
            assert_eq!(rules.kinds().flags(), flags);
            let mut config = config;
            config.flags |= flags;
            let (_, loaded) =
                load_with(&config).unwrap_or_else(|e| panic!("{path} path, flags {flags:#x}: {e}"));
            for section in [EGRESS_SECTION, REPLY_SECTION, QUERY_SECTION] {
                assert!(loaded.program(section).is_some(), "{path}: {section}");
            }
        }
    }
}

// ---------------------------------------------------------------- events

fn watched(p: &Prog) -> RingBuf {
    watch(&p.object, &p.loaded);
    events_ring(&p.object, &p.loaded)
}

#[track_caller]
fn expect(event: &(EventHeader, Vec<u8>), kind: u8, path: u8, payload: &[u8]) {
    let (h, data) = event;
    assert_eq!((h.kind, h.path, h.proto), (kind, path, UDP), "{h:?}");
    assert_eq!(
        h.client_addr,
        addr_raw(CONTAINER),
        "the client: the container"
    );
    assert_eq!(h.client_port, port_raw(CLIENT_PORT));
    assert_eq!(h.msg_len as usize, payload.len());
    assert_eq!(&data[..], payload, "the DNS message as sent");
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn egress_query_and_restored_answer_each_write_one_event() {
    let p = load_ns(&["kept.test"], &[]);
    let mut ring = watched(&p);

    let q = p.query(0x1234, "example.com");
    assert!(!p.kept(0x1234, "example.com"));
    assert_eq!(
        ring.pending(),
        (EVENT_SIZE + 8) as u64,
        "the query: one record"
    );
    let a = p.answer(0x1234, "example.com");
    assert!(p.restored(0x1234, "example.com"));
    let kept = p.query(0x0707, "x.kept.test");
    assert!(p.kept(0x0707, "x.kept.test"));
    // The nameserver's own answer to the kept query, seen by the reply program.
    let own = Packet::udp(
        (p.path.nameservers[0], 53),
        (p.path.container, CLIENT_PORT),
        dns_answer(0x0707, "x.kept.test"),
    );
    let own_bytes = own.bytes();
    assert_eq!(
        run(&p.loaded, REPLY_SECTION, &own_bytes),
        (TC_ACT_UNSPEC, own_bytes.clone()),
        "the nameserver's answer goes on untouched"
    );
    // An answer from elsewhere writes nothing.
    let stray = Packet::udp(
        (Ipv4Addr::new(198, 51, 100, 1), 53),
        (CONTAINER, CLIENT_PORT),
        dns_answer(9, "example.com"),
    );
    run(&p.loaded, REPLY_SECTION, &stray.bytes());

    let events = take_events(&mut ring);
    assert_eq!(events.len(), 4, "{events:?}");
    expect(&events[0], EVENT_QUERY, ROUTE_NAMESERVER, &q.payload);
    expect(&events[1], EVENT_REPLY, ROUTE_NONE, &a.payload);
    expect(
        &events[2],
        EVENT_QUERY,
        ROUTE_NAMESERVER_KEPT,
        &kept.payload,
    );
    expect(&events[3], EVENT_REPLY, ROUTE_NONE, &own.payload);
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn the_egress_query_event_has_the_nameserver_path_and_the_query_bytes() {
    let p = load_ns(&[], &[]);
    let mut ring = watched(&p);
    let q = p.query(0x4321, "www.example.org");
    let (ret, _) = run(&p.loaded, EGRESS_SECTION, &q.bytes());
    assert_eq!(ret, TC_ACT_UNSPEC);
    let events = take_events(&mut ring);
    assert_eq!(events.len(), 1, "{events:?}");
    expect(&events[0], EVENT_QUERY, ROUTE_NAMESERVER, &q.payload);
}

// ---------------------------------------------------------------- IPv6

#[test]
#[ignore = "needs root: bpf(2)"]
fn ipv6_queries_follow_the_rules_too() {
    for (keep, only) in [(&["kept.test"][..], &[][..]), (&[], &["example.com"])] {
        let rules = format!("--keep {keep:?} --only {only:?}");
        let p = load(NameserversPath::ipv6().one_nameserver(), keep, only);
        assert!(p.kept(1, "x.kept.test"), "kept: untouched ({rules})");
        assert!(!p.kept(2, "example.com"), "redirected ({rules})");
        assert!(
            !p.restored(1, "x.kept.test"),
            "the kept query was not remembered ({rules})"
        );
    }
}
