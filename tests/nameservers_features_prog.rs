//! Name rules and `--watch` events on the nameservers path, run by the kernel on crafted
//! packets (BPF_PROG_TEST_RUN): a query a rule keeps goes on to its nameserver byte for byte
//! and is not remembered, the others are redirected as without rules; with `--only` TCP stays
//! with the nameserver; every combination of rule flags loads on both paths; and with a
//! watcher's flag the egress program writes the query's event and the reply program the
//! restored (or the nameserver's own) answer's.

use dnsredir::abi::{
    Config, EventHeader, WatchControl, EGRESS_SECTION, EVENTS_MAP, EVENT_QUERY, EVENT_REPLY,
    EVENT_SIZE, FLAG_RULES_KEEP, FLAG_RULES_ONLY, PATH_NAMESERVER, PATH_NAMESERVER_KEPT, PATH_NONE,
    QUERY_SECTION, REPLY_SECTION, RULES_MAP, WATCH_MAP,
};
use dnsredir::bpf::elf::ObjectFile;
use dnsredir::bpf::load::Loaded;
use dnsredir::bpf::ringbuf::RingBuf;
use dnsredir::bpf::sys;
use dnsredir::layout::{addr6_raw, addr_raw, port_raw};
use dnsredir::redirect::rules::{self, Rules};
use std::net::{Ipv4Addr, Ipv6Addr};

mod support;
use support::packet::*;
use support::prog::{counters, monotonic_ns, nameservers_path_config, run};
use support::require_root;

const NAMESERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 53);

fn nameservers_config(flags: u16) -> Config {
    let mut c = nameservers_path_config(UPSTREAM_PORT, flags);
    c.nameservers[0] = addr_raw(NAMESERVER);
    c.nameserver_ports[0] = port_raw(53);
    c.nameserver_count = 1;
    c
}

fn suffixes(v: &[&str]) -> Vec<String> {
    v.iter()
        .map(|s| rules::parse_suffix(s).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

struct Prog {
    object: ObjectFile,
    loaded: Loaded,
}

/// The object loaded as the loader would for `--keep keep... --only only...` on `config`'s path.
fn load(config: Config, keep: &[&str], only: &[&str]) -> Prog {
    let rules = Rules::new(&suffixes(keep), &suffixes(only)).expect("rules");
    let mut config = config;
    config.flags |= rules.flags();
    let (object, loaded) = load_with(&config).unwrap_or_else(|e| panic!("{e}"));
    let map = loaded.map(&object, RULES_MAP).expect("rules map");
    rules::fill(map, &rules).expect("fill");
    Prog { object, loaded }
}

fn load_ns(keep: &[&str], only: &[&str]) -> Prog {
    load(nameservers_config(0), keep, only)
}

fn query(id: u16, name: &str) -> Packet {
    Packet::udp(CONTAINER, CLIENT_PORT, NAMESERVER, 53, dns_query(id, name))
}

/// (destination, destination port) of a frame.
fn destination(frame: &[u8]) -> (Ipv4Addr, u16) {
    let ip = &frame[14..];
    let ihl = ((ip[0] & 0x0f) as usize) * 4;
    (
        Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
        u16::from_be_bytes([ip[ihl + 2], ip[ihl + 3]]),
    )
}

impl Prog {
    /// Whether the egress program leaves the query for `name` with the nameserver (byte for
    /// byte) rather than sending it to the upstream. Either way the verdict is TC_ACT_UNSPEC.
    fn kept(&self, id: u16, name: &str) -> bool {
        let packet = query(id, name).bytes();
        let (ret, out) = run(&self.loaded, EGRESS_SECTION, &packet);
        assert_eq!(ret, TC_ACT_UNSPEC, "{name}: on out of the interface");
        if out == packet {
            return true;
        }
        assert_eq!(destination(&out), (UPSTREAM, UPSTREAM_PORT), "{name}");
        false
    }

    /// Whether the upstream's answer for `id` is restored (its query was remembered).
    fn restored(&self, id: u16, name: &str) -> bool {
        let packet = reply_packet(id, name).bytes();
        let (ret, out) = run(&self.loaded, REPLY_SECTION, &packet);
        assert_eq!(ret, TC_ACT_UNSPEC, "{name}: on up the stack");
        if out == packet {
            return false;
        }
        let ip = &out[14..];
        assert_eq!(Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]), NAMESERVER);
        true
    }
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn keep_leaves_a_query_with_its_nameserver_untouched_and_unremembered() {
    require_root();
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
    require_root();
    let p = load_ns(&[], &["corp.test"]);
    assert!(!p.kept(1, "x.corp.test"), "under --only: the upstream's");
    assert!(p.kept(2, "example.com"), "outside --only: the nameserver's");
    assert!(p.restored(1, "x.corp.test"));
    assert!(!p.restored(2, "example.com"));
    let mut syn = Packet::tcp(CONTAINER, CLIENT_PORT + 1, NAMESERVER, 53, vec![]);
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
            ("nameservers", nameservers_config(0)),
            ("embedded resolver", test_config(UPSTREAM_PORT, 0)),
        ] {
            let rules = Rules::new(&suffixes(keep), &suffixes(only)).expect("rules");
            assert_eq!(rules.flags(), flags);
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
    let control = WatchControl {
        watcher_pid: std::process::id(),
        refreshed_ns: monotonic_ns(),
        ..Default::default()
    };
    let map = p.loaded.map(&p.object, WATCH_MAP).expect("WATCH map");
    sys::map_update(map, &0u32.to_ne_bytes(), &control.to_bytes()).expect("update");
    let events = p.loaded.map(&p.object, EVENTS_MAP).expect("EVENTS map");
    let info = sys::map_info(events).expect("map info");
    RingBuf::new(events.try_clone().expect("dup"), info.max_entries as usize).expect("mmap")
}

fn events(ring: &mut RingBuf) -> Vec<(EventHeader, Vec<u8>)> {
    let mut out = Vec::new();
    ring.consume(|r| {
        assert_eq!(r.len(), EVENT_SIZE);
        let head = EventHeader::from_bytes(r).expect("header");
        out.push((
            head,
            r[EventHeader::SIZE..EventHeader::SIZE + head.captured as usize].to_vec(),
        ));
    });
    out
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
    require_root();
    let p = load_ns(&["kept.test"], &[]);
    let mut ring = watched(&p);

    let q = query(0x1234, "example.com");
    assert!(!p.kept(0x1234, "example.com"));
    assert_eq!(
        ring.pending(),
        (EVENT_SIZE + 8) as u64,
        "the query: one record"
    );
    let a = reply_packet(0x1234, "example.com");
    assert!(p.restored(0x1234, "example.com"));
    let kept = query(0x0707, "x.kept.test");
    assert!(p.kept(0x0707, "x.kept.test"));
    // The nameserver's own answer to the kept query, seen by the reply program.
    let own = Packet::udp(
        NAMESERVER,
        53,
        CONTAINER,
        CLIENT_PORT,
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
        Ipv4Addr::new(198, 51, 100, 1),
        53,
        CONTAINER,
        CLIENT_PORT,
        dns_answer(9, "example.com"),
    );
    run(&p.loaded, REPLY_SECTION, &stray.bytes());

    let events = events(&mut ring);
    assert_eq!(events.len(), 4, "{events:?}");
    expect(&events[0], EVENT_QUERY, PATH_NAMESERVER, &q.payload);
    expect(&events[1], EVENT_REPLY, PATH_NONE, &a.payload);
    expect(&events[2], EVENT_QUERY, PATH_NAMESERVER_KEPT, &kept.payload);
    expect(&events[3], EVENT_REPLY, PATH_NONE, &own.payload);
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn the_egress_query_event_has_the_nameserver_path_and_the_query_bytes() {
    require_root();
    let p = load_ns(&[], &[]);
    let mut ring = watched(&p);
    let q = query(0x4321, "www.example.org");
    let (ret, _) = run(&p.loaded, EGRESS_SECTION, &q.bytes());
    assert_eq!(ret, TC_ACT_UNSPEC);
    let events = events(&mut ring);
    assert_eq!(events.len(), 1, "{events:?}");
    expect(&events[0], EVENT_QUERY, PATH_NAMESERVER, &q.payload);
}

// ---------------------------------------------------------------- IPv6

const CONTAINER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xdead, 1, 0, 0, 0, 0, 2);
const NAMESERVER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xdead, 1, 0, 0, 0, 0, 1);
const UPSTREAM6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xdead, 2, 0, 0, 0, 0, 0x53);

/// An Ethernet + IPv6 + UDP frame with its checksum.
fn udp6(src: Ipv6Addr, sport: u16, dst: Ipv6Addr, dport: u16, payload: &[u8]) -> Vec<u8> {
    let len = 8 + payload.len();
    let mut l4 = Vec::new();
    l4.extend_from_slice(&sport.to_be_bytes());
    l4.extend_from_slice(&dport.to_be_bytes());
    l4.extend_from_slice(&(len as u16).to_be_bytes());
    l4.extend_from_slice(&[0, 0]);
    l4.extend_from_slice(payload);
    let pseudo = sum_words(&src.octets()) + sum_words(&dst.octets()) + len as u32 + UDP as u32;
    let c = csum_fold(pseudo + sum_words(&l4));
    l4[6..8].copy_from_slice(&c.to_be_bytes());
    let mut frame = vec![0x02, 0, 0, 0, 0, 0xaa, 0x02, 0, 0, 0, 0, 0xbb, 0x86, 0xdd];
    frame.extend_from_slice(&[0x60, 0, 0, 0]);
    frame.extend_from_slice(&(len as u16).to_be_bytes());
    frame.extend_from_slice(&[UDP, 64]);
    frame.extend_from_slice(&src.octets());
    frame.extend_from_slice(&dst.octets());
    frame.extend_from_slice(&l4);
    frame
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn ipv6_queries_follow_the_rules_too() {
    require_root();
    let mut config = nameservers_config(0);
    config.upstream6_addr = addr6_raw(UPSTREAM6);
    config.upstream6_port = port_raw(UPSTREAM_PORT);
    config.container6_addr = addr6_raw(CONTAINER6);
    config.nameservers6[..4].copy_from_slice(&addr6_raw(NAMESERVER6));
    config.nameserver6_ports[0] = port_raw(53);
    config.nameserver6_count = 1;
    for (keep, only) in [(&["kept.test"][..], &[][..]), (&[], &["example.com"])] {
        let p = load(config, keep, only);
        let kept = udp6(
            CONTAINER6,
            CLIENT_PORT,
            NAMESERVER6,
            53,
            &dns_query(1, "x.kept.test"),
        );
        assert_eq!(
            run(&p.loaded, EGRESS_SECTION, &kept),
            (TC_ACT_UNSPEC, kept.clone()),
            "kept: untouched ({keep:?} {only:?})"
        );
        let other = udp6(
            CONTAINER6,
            CLIENT_PORT,
            NAMESERVER6,
            53,
            &dns_query(2, "example.com"),
        );
        let (ret, out) = run(&p.loaded, EGRESS_SECTION, &other);
        assert_eq!(ret, TC_ACT_UNSPEC);
        assert_eq!(
            &out[38..54],
            &UPSTREAM6.octets(),
            "redirected ({keep:?} {only:?})"
        );
        let answer = udp6(
            UPSTREAM6,
            UPSTREAM_PORT,
            CONTAINER6,
            CLIENT_PORT,
            &dns_answer(1, "x.kept.test"),
        );
        assert_eq!(
            run(&p.loaded, REPLY_SECTION, &answer),
            (TC_ACT_UNSPEC, answer.clone()),
            "the kept query was not remembered"
        );
    }
}
