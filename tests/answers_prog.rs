//! Answers the programs make themselves (`--block`, `--allow`, `--answer`, `--hosts`; issue 19),
//! run by the kernel on crafted queries (BPF_PROG_TEST_RUN). The RULES and ANSWERS entries are
//! written here as the byte contract says (tests/support/answers.rs), not by the loader, and
//! every answer frame is compared byte for byte with one built here from scratch (its UDP and
//! IPv4 header checksums computed here): an independent check of the contract.
//!
//! Both paths: lo's query program (Docker's embedded resolver) and the egress program (the
//! nameservers path, IPv4 and IPv6).

use dnsredir::abi::raw::port_raw;
use dnsredir::abi::{
    Config, FlowKey, DECISION_ALLOW, DECISION_BLOCK, EGRESS_SECTION, EVENT_QUERY, EVENT_REPLY,
    FLAG_ALLOWLIST, FLAG_BLOCK_REFUSED, FLAG_DECIDE, FLAG_NO_UPSTREAM, FLAG_REDIRECT_ALL,
    FLAG_RULES_KEEP, FLOWS6_MAP, FLOWS_MAP, QUERY_SECTION, ROUTE_BLOCKED, ROUTE_DISALLOWED,
    ROUTE_NONE, ROUTE_PINNED, ROUTE_RESET, RULES_MAP, RULE_KEEP,
};
use dnsredir::bpf::elf::ObjectFile;
use dnsredir::bpf::load::Loaded;
use dnsredir::bpf::sys;
use dnsredir::inspect;
use dnsredir::redirect::rules::key_of;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

mod support;
use support::answers::*;
use support::packet::*;
use support::prog::{counters, events_ring, take_events, watch, NameserversPath};

// ---- benches ----

/// One program on one path, with the addresses its queries carry.
struct Bench {
    name: &'static str,
    section: &'static str,
    config: Config,
    /// lo's query program: answers leave with MARK_TURNED; single-label names are Docker's.
    lo: bool,
    client: SocketAddr,
    udp_server: SocketAddr,
    tcp_server: SocketAddr,
    /// Where an undecided query goes: the upstream.
    upstream: SocketAddr,
}

fn lo_bench(flags: u16) -> Bench {
    Bench {
        name: "embedded resolver (lo)",
        section: QUERY_SECTION,
        config: test_config(UPSTREAM_PORT, flags),
        lo: true,
        client: (CLIENT, CLIENT_PORT).into(),
        udp_server: (RESOLVER, DOCKERD_UDP).into(),
        tcp_server: (RESOLVER, DOCKERD_TCP).into(),
        upstream: (UPSTREAM, UPSTREAM_PORT).into(),
    }
}

fn egress_bench(path: NameserversPath, flags: u16) -> Bench {
    let mut config = path.config;
    config.flags |= flags;
    let server = SocketAddr::new(path.nameservers[0], 53);
    Bench {
        name: if path.container.is_ipv4() {
            "nameservers path, IPv4"
        } else {
            "nameservers path, IPv6"
        },
        section: EGRESS_SECTION,
        config,
        lo: false,
        client: SocketAddr::new(path.container, CLIENT_PORT),
        udp_server: server,
        tcp_server: server,
        upstream: SocketAddr::new(path.upstream, path.upstream_port),
    }
}

impl Bench {
    fn udp(&self, msg: Vec<u8>) -> Packet {
        Packet::udp(self.client, self.udp_server, msg)
    }

    fn tcp(&self, port: u16, flags: u8, payload: Vec<u8>) -> Packet {
        let mut p = Packet::tcp(
            SocketAddr::new(self.client.ip(), port),
            self.tcp_server,
            payload,
        );
        p.tcp_flags = flags;
        p
    }

    /// The mark an answer leaves with.
    fn answer_mark(&self) -> u32 {
        if self.lo {
            MARK_TURNED
        } else {
            0
        }
    }
}

/// The bench loaded with `policy` (whose flags are added to the configuration's).
struct Running {
    bench: Bench,
    policy: Policy,
    object: ObjectFile,
    loaded: Loaded,
}

impl Running {
    fn new(mut bench: Bench, policy: Policy) -> Running {
        bench.config.flags |= FLAG_DECIDE | policy.flags;
        let (object, loaded) = policy.load(&bench.config);
        Running {
            bench,
            policy,
            object,
            loaded,
        }
    }

    fn run(&self, frame: &[u8], mark: u32) -> CtxRun {
        let prog = &self.loaded.program(self.bench.section).expect("program").fd;
        run_with_mark(prog, frame, mark).unwrap_or_else(|e| {
            panic!("BPF_PROG_TEST_RUN on {} bytes: {e}", frame.len());
        })
    }

    fn counters(&self) -> dnsredir::abi::Counters {
        counters(&self.object, &self.loaded)
    }

    /// `frame` is answered with `rcode` and `records` (`ancount` of them): the whole frame, the
    /// verdict, the mark and the one counter `counter` checked. The model agrees.
    #[track_caller]
    fn answered(
        &self,
        what: &str,
        frame: &[u8],
        rcode: u8,
        (records, ancount): (Vec<u8>, u16),
        counter: &str,
    ) -> Vec<u8> {
        let ctx = format!("{}: {what}", self.bench.name);
        let dns = &frame[layout(frame).expect("ip").l4 + 8..];
        assert_eq!(
            self.policy.owed(dns, self.bench.lo),
            Some((rcode, records.clone(), ancount)),
            "{ctx}: the model agrees with the test's expectation"
        );
        let expected = expected_answer(frame, rcode, &records, ancount);
        let before = self.counters();
        let out = self.run(frame, 0);
        assert_eq!(out.retval, TC_ACT_REDIRECT, "{ctx}: TC_ACT_REDIRECT");
        assert_same(&ctx, &expected, &out.data);
        assert_eq!(out.mark, self.bench.answer_mark(), "{ctx}: skb->mark");
        assert_eq!(
            changed(&before, &self.counters()),
            [(counter, 1)],
            "{ctx}: counters"
        );
        // The frame checked once more by the other from-scratch parser of the tests.
        let seen = parse_checked(&out.data);
        assert_eq!(
            (seen.src, seen.sport, seen.dst, seen.dport),
            (
                self.bench.udp_server.ip(),
                self.bench.udp_server.port(),
                self.bench.client.ip(),
                self.bench.client.port()
            ),
            "{ctx}: from the server to the client"
        );
        out.data
    }

    /// `frame` comes back untouched with TC_ACT_UNSPEC; the model owes it nothing.
    #[track_caller]
    fn untouched(&self, what: &str, frame: &[u8]) -> Vec<(&'static str, u64)> {
        let ctx = format!("{}: {what}", self.bench.name);
        let before = self.counters();
        let out = self.run(frame, 0);
        assert_eq!(out.retval, TC_ACT_UNSPEC, "{ctx}: TC_ACT_UNSPEC");
        assert_same(&ctx, frame, &out.data);
        assert_eq!(out.mark, 0, "{ctx}: mark untouched");
        changed(&before, &self.counters())
    }

    /// The UDP query `frame` is redirected to the upstream as without decisions.
    #[track_caller]
    fn redirected(&self, what: &str, frame: &[u8]) {
        let ctx = format!("{}: {what}", self.bench.name);
        let dns = &frame[layout(frame).expect("ip").l4 + 8..];
        assert_eq!(
            self.policy.owed(dns, self.bench.lo),
            None,
            "{ctx}: the model owes no answer"
        );
        let before = self.counters();
        let out = self.run(frame, 0);
        // lo: bpf_redirect_neigh to the container's interface; egress: on, rewritten.
        let verdict = if self.bench.lo {
            TC_ACT_REDIRECT
        } else {
            TC_ACT_UNSPEC
        };
        assert_eq!(out.retval, verdict, "{ctx}: verdict");
        let seen = parse_checked(&out.data);
        let sent = parse_checked(frame);
        assert_eq!(
            (seen.dst, seen.dport, seen.sport),
            (
                self.bench.upstream.ip(),
                self.bench.upstream.port(),
                sent.sport
            ),
            "{ctx}: to the upstream"
        );
        assert_eq!(
            seen.payload,
            clamped(sent.payload),
            "{ctx}: the query unchanged (but its EDNS size lowered to the limit)"
        );
        assert_eq!(out.mark, 0, "{ctx}: no mark");
        let c = changed(&before, &self.counters());
        assert!(
            c.contains(&("queries_redirected_udp", 1))
                && !c.iter().any(|(n, _)| n.starts_with("answered")),
            "{ctx}: counted as redirected: {c:?}"
        );
    }
}

/// A query's DNS message as redirected: an OPT record's payload size above EDNS_MAX lowered
/// to it, as without decisions.
fn clamped(mut msg: Vec<u8>) -> Vec<u8> {
    if let Some(n) = Question::read(&msg).and_then(|q| q.len) {
        let at = 12 + n;
        if msg[11] == 1 && msg.get(at..at + 3) == Some(&[0, 0, 41][..]) {
            let size = u16::from_be_bytes([msg[at + 3], msg[at + 4]]);
            msg[at + 3..at + 5].copy_from_slice(&size.min(EDNS_MAX).to_be_bytes());
        }
    }
    msg
}

/// Byte for byte, with the first difference shown.
#[track_caller]
fn assert_same(ctx: &str, expected: &[u8], got: &[u8]) {
    if expected != got {
        let at = expected
            .iter()
            .zip(got)
            .position(|(a, b)| a != b)
            .unwrap_or(expected.len().min(got.len()));
        panic!(
            "{ctx}: frames differ at byte {at} (lengths {} expected, {} got)\n  expected {expected:02x?}\n  got      {got:02x?}",
            expected.len(),
            got.len()
        );
    }
}

// ---- 1. byte-exact answers ----

fn a(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 5, i, 100 + i)
}

fn aaaa(i: u16) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, i, 0x5555)
}

/// The pins of the byte-exact tests.
fn pin() -> Pinned {
    Pinned::new(&[a(1)], &[aaaa(1)])
}

fn many() -> Pinned {
    Pinned::new(&(1..=8).map(a).collect::<Vec<_>>(), &[])
}

fn v6() -> Pinned {
    Pinned::new(&[], &(1..=8).map(aaaa).collect::<Vec<_>>())
}

fn exact_policy(flags: u16) -> Policy {
    Policy::new(flags)
        .block("ads.example")
        .answer("pin.example", pin())
        .answer("many.example", many())
        .answer("v6.example", v6())
        .allow("ok.example")
}

/// The message variants every decision is tried with: no OPT, an OPT, an OPT with a cookie.
fn opts(m: Vec<u8>) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("", m.clone()),
        (", OPT", with_opt(m.clone(), &[])),
        (", OPT with a cookie", with_opt(m, &COOKIE)),
    ]
}

/// Every kind of answer on `bench`, with FLAG_ALLOWLIST, then with FLAG_BLOCK_REFUSED.
fn byte_exact(bench: impl Fn(u16) -> Bench) {
    let r = Running::new(bench(0), exact_policy(FLAG_ALLOWLIST));
    let b = &r.bench;
    let none = || (vec![], 0);
    // Blocked: names whose questions have an odd (17, 19) and an even (20) length.
    for name in [
        "ads.example",
        "x.ads.example",
        "xy.ads.example",
        "Deep.X.Ads.EXAMPLE",
    ] {
        for (opt, m) in opts(query(0x1001, name, TYPE_A)) {
            let what = format!("blocked {name}{opt}");
            let f = b.udp(m).bytes();
            r.answered(&what, &f, RCODE_NXDOMAIN, none(), "answered_blocked");
        }
    }
    // The query's flags: RD clear, AD/CD/Z set in byte 3 (the answer's byte 3 is RA|RCODE).
    let mut m = query_wire(
        0xbeef,
        false,
        &wire_name("ads.example"),
        TYPE_AAAA,
        CLASS_IN,
    );
    m[3] = 0x70;
    let f = b.udp(m).bytes();
    r.answered(
        "blocked, RD clear, AD CD Z set",
        &f,
        3,
        none(),
        "answered_blocked",
    );
    // Pinned A: one record, eight records; names of odd and even question lengths.
    for (name, pinned) in [
        ("pin.example", pin()),
        ("Ab.Pin.Example", pin()),
        ("many.example", many()),
        ("ww.many.example", many()),
    ] {
        for (opt, m) in opts(query(0x2002, name, TYPE_A)) {
            let what = format!("pinned {name} A{opt}");
            let f = b.udp(m).bytes();
            let owed = (pinned.a_records(), pinned.a.len() as u16);
            r.answered(&what, &f, RCODE_NOERROR, owed, "answered_pinned");
        }
    }
    // Pinned AAAA: one record, eight (the largest answer: 224 bytes of records).
    for (name, pinned) in [
        ("pin.example", pin()),
        ("v6.example", v6()),
        ("x.v6.example", v6()),
        ("xx.v6.example", v6()),
    ] {
        for (opt, m) in opts(query(0x3003, name, TYPE_AAAA)) {
            let what = format!("pinned {name} AAAA{opt}");
            let f = b.udp(m).bytes();
            let owed = (pinned.aaaa_records(), pinned.aaaa.len() as u16);
            r.answered(&what, &f, RCODE_NOERROR, owed, "answered_pinned");
        }
    }
    // NODATA: another type; the family the pin lacks.
    for (name, qtype) in [
        ("pin.example", TYPE_TXT),
        ("pin.example", 255),
        ("many.example", TYPE_AAAA),
        ("v6.example", TYPE_A),
    ] {
        for (opt, m) in opts(query(0x4004, name, qtype)) {
            let what = format!("pinned {name} type {qtype}: NODATA{opt}");
            let f = b.udp(m).bytes();
            r.answered(&what, &f, RCODE_NOERROR, none(), "answered_pinned");
        }
    }
    // Disallowed: a name outside the allowlist.
    for name in ["other.test", "xy.other.test", "a.b.c.d.e.f.g"] {
        for (opt, m) in opts(query(0x5005, name, TYPE_A)) {
            let what = format!("disallowed {name}{opt}");
            let f = b.udp(m).bytes();
            r.answered(&what, &f, RCODE_REFUSED, none(), "answered_disallowed");
        }
    }
    // A name the rules cannot read (a space in a label): refused, its question echoed.
    for (opt, m) in opts(query(0x5006, "a b.ok.example", TYPE_A)) {
        let f = b.udp(m).bytes();
        let what = format!("unreadable name{opt}");
        r.answered(&what, &f, RCODE_REFUSED, none(), "answered_disallowed");
    }
    // A compressed name (no name a query's question can have): refused, QDCOUNT 0, no echo, no
    // OPT even after it.
    for (opt, m) in opts(query_wire(0x5007, true, &[0xc0, 0x0c], TYPE_A, CLASS_IN)) {
        let f = b.udp(m).bytes();
        let what = format!("compressed name{opt}");
        let out = r.answered(&what, &f, RCODE_REFUSED, none(), "answered_disallowed");
        let l = layout(&out).expect("ip");
        assert_eq!(out.len(), l.l4 + 8 + 12, "{what}: the header alone");
    }
    // QDCOUNT 2 for allowed names: refused with the first question echoed; no OPT (not the
    // only record right after the one question).
    let mut m = query(0x5008, "ok.example", TYPE_A);
    m[5] = 2;
    m.extend_from_slice(&wire_name("www.ok.example"));
    m.extend_from_slice(&[0, 1, 0, 1]);
    for (opt, m) in opts(m) {
        let f = b.udp(m).bytes();
        let what = format!("QDCOUNT 2{opt}");
        r.answered(&what, &f, RCODE_REFUSED, none(), "answered_disallowed");
    }
    // Class CH, an allowed name.
    let m = query_wire(0x5009, true, &wire_name("ok.example"), TYPE_TXT, CLASS_CH);
    for (opt, m) in opts(m) {
        let f = b.udp(m).bytes();
        let what = format!("class CH{opt}");
        r.answered(&what, &f, RCODE_REFUSED, none(), "answered_disallowed");
    }
    // OPCODE STATUS, an allowed name: refused; the answer's opcode is 0, RD copied.
    let mut m = query(0x500a, "ok.example", TYPE_A);
    m[2] = 0x10 | 0x01;
    let f = b.udp(m).bytes();
    let out = r.answered("opcode 2", &f, RCODE_REFUSED, none(), "answered_disallowed");
    assert_eq!(out[layout(&out).expect("ip").l4 + 8 + 2], 0x81);
    // A query without a UDP checksum (IPv4), one with IP options: answered with a checksum,
    // the options kept.
    if b.client.is_ipv4() {
        let mut p = b.udp(query(0x6001, "pin.example", TYPE_A));
        p.zero_udp_checksum = true;
        let f = p.bytes();
        let owed = (pin().a_records(), 1);
        r.answered("no UDP checksum", &f, 0, owed, "answered_pinned");
        let mut p = b.udp(with_opt(query(0x6002, "ads.example", TYPE_A), &[]));
        p.ip_options = vec![1, 1, 1, 0];
        let f = p.bytes();
        r.answered("IP options", &f, 3, none(), "answered_blocked");
    }
    // Allowed names go on as before.
    r.redirected(
        "allowed",
        &b.udp(query(0x7001, "ok.example", TYPE_A)).bytes(),
    );
    let f = b
        .udp(with_opt(query(0x7002, "www.ok.example", TYPE_A), &[]))
        .bytes();
    r.redirected("allowed, OPT", &f);
    // A single-label name: Docker's on lo (the precedence test), an ordinary name elsewhere.
    if !b.lo {
        let f = b.udp(query(0x7003, "c2", TYPE_A)).bytes();
        r.answered("single label", &f, 5, none(), "answered_disallowed");
    }
    drop(r);

    // --block-rcode refused.
    let r = Running::new(bench(0), exact_policy(FLAG_BLOCK_REFUSED));
    let b = &r.bench;
    for name in ["ads.example", "xy.ads.example"] {
        for (opt, m) in opts(query(0x8001, name, TYPE_A)) {
            let what = format!("blocked {name}, REFUSED{opt}");
            let f = b.udp(m).bytes();
            r.answered(&what, &f, RCODE_REFUSED, none(), "answered_blocked");
        }
    }
    let f = b.udp(query(0x8002, "pin.example", TYPE_AAAA)).bytes();
    let owed = (pin().aaaa_records(), 1);
    r.answered("pinned, REFUSED for blocks", &f, 0, owed, "answered_pinned");
    // No allowlist: names no rule decides are redirected; queries the program does not
    // answer (class CH) too.
    r.redirected(
        "undecided",
        &b.udp(query(0x8003, "other.test", TYPE_A)).bytes(),
    );
    let m = query_wire(0x8004, true, &wire_name("ok.example"), TYPE_TXT, CLASS_CH);
    r.redirected("class CH, no allowlist", &b.udp(m).bytes());
}

#[test]
#[ignore = "needs root: loads BPF programs"]
fn answers_are_byte_exact_on_the_embedded_resolver_path() {
    byte_exact(lo_bench);
}

#[test]
#[ignore = "needs root: loads BPF programs"]
fn answers_are_byte_exact_on_the_nameservers_path_ipv4() {
    byte_exact(|f| egress_bench(NameserversPath::ipv4(), f));
}

#[test]
#[ignore = "needs root: loads BPF programs"]
fn answers_are_byte_exact_on_the_nameservers_path_ipv6() {
    byte_exact(|f| egress_bench(NameserversPath::ipv6(), f));
}

// ---- 2. precedence of merged entries ----

fn precedence_policy(flags: u16) -> Policy {
    let hosts = Pinned::new(&[Ipv4Addr::new(10, 9, 9, 9)], &[]);
    Policy::new(flags | FLAG_RULES_KEEP)
        .block("example.com")
        .exact_answer("www.example.com", hosts)
        .allow("allowed.test")
        .block("bad.allowed.test")
        // --keep kept.allowed.test, merged: its routing kind, the allow above it.
        .entry(
            key_of("kept.allowed.test"),
            rule(RULE_KEEP, DECISION_ALLOW, 0),
        )
        // --block blk.kept.allowed.test under it: the block, the keep's kind.
        .entry(
            key_of("blk.kept.allowed.test"),
            rule(RULE_KEEP, DECISION_BLOCK, 0),
        )
        .block("c3")
}

#[test]
#[ignore = "needs root: loads BPF programs"]
fn the_longest_merged_entry_decides() {
    let hosts = (a_record(Ipv4Addr::new(10, 9, 9, 9)), 1);
    let none = || (vec![], 0);
    let blocked = "answered_blocked";
    let r = Running::new(lo_bench(0), precedence_policy(FLAG_ALLOWLIST));
    let b = &r.bench;
    let q = |name: &str| b.udp(query(0x0101, name, TYPE_A)).bytes();
    // An exact entry beats the suffix of the same name, and only for that name.
    r.answered(
        "exact",
        &q("www.example.com"),
        0,
        hosts.clone(),
        "answered_pinned",
    );
    r.answered(
        "exact, any case",
        &q("WWW.Example.COM"),
        0,
        hosts,
        "answered_pinned",
    );
    r.answered(
        "under the exact name",
        &q("a.www.example.com"),
        3,
        none(),
        blocked,
    );
    r.answered("the suffix itself", &q("example.com"), 3, none(), blocked);
    r.answered(
        "under the suffix",
        &q("wwww.example.com"),
        3,
        none(),
        blocked,
    );
    // A block under an allow; an allowed name goes on as before.
    r.answered(
        "block under allow",
        &q("x.bad.allowed.test"),
        3,
        none(),
        blocked,
    );
    r.redirected("allowed", &q("x.allowed.test"));
    r.redirected("the allowed suffix", &q("allowed.test"));
    r.redirected("allowed, beside the block", &q("bad2.allowed.test"));
    // Routing: kept (untouched) when allowed; a decision beats the keep.
    let c = r.untouched("kept", &q("x.kept.allowed.test"));
    assert_eq!(c, [("queries_kept_for_dockerd", 1), ("rule_kept", 1)]);
    r.answered(
        "block under keep",
        &q("blk.kept.allowed.test"),
        3,
        none(),
        blocked,
    );
    // Outside the allowlist.
    r.answered(
        "not allowed",
        &q("outside.test"),
        5,
        none(),
        "answered_disallowed",
    );
    r.answered(
        "a label short",
        &q("llowed.test"),
        5,
        none(),
        "answered_disallowed",
    );
    // Docker's own names stay with dockerd under an allowlist; a blocked one is blocked.
    let c = r.untouched("single label", &q("c2"));
    assert_eq!(c, [("queries_kept_for_dockerd", 1)]);
    r.answered("blocked single label", &q("c3"), 3, none(), blocked);
    drop(r);

    // --redirect-all: single labels follow the allowlist.
    let r = Running::new(
        lo_bench(FLAG_REDIRECT_ALL),
        precedence_policy(FLAG_ALLOWLIST | FLAG_REDIRECT_ALL),
    );
    let q = |name: &str| r.bench.udp(query(0x0102, name, TYPE_A)).bytes();
    r.answered(
        "single label, --redirect-all",
        &q("c2"),
        5,
        none(),
        "answered_disallowed",
    );
    r.redirected("allowed, --redirect-all", &q("x.allowed.test"));
    drop(r);

    // No upstream: undecided names untouched (and no flow); decisions still answered.
    let r = Running::new(
        lo_bench(0),
        precedence_policy(FLAG_ALLOWLIST | FLAG_NO_UPSTREAM),
    );
    let q = |name: &str| r.bench.udp(query(0x0103, name, TYPE_A)).bytes();
    let c = r.untouched("allowed, no upstream", &q("x.allowed.test"));
    assert_eq!(c, [("queries_kept_for_dockerd", 1)]);
    r.answered(
        "blocked, no upstream",
        &q("example.com"),
        3,
        none(),
        blocked,
    );
    r.answered(
        "outside, no upstream",
        &q("outside.test"),
        5,
        none(),
        "answered_disallowed",
    );
    let flows = r.loaded.map(&r.object, FLOWS_MAP).expect("flows");
    let info = sys::map_info(flows).expect("flows info");
    assert_eq!(
        inspect::flows::flows(flows, &info).expect("flows"),
        vec![],
        "no flow recorded"
    );
    drop(r);

    // Without an allowlist, undecided names are redirected (and a compressed name too).
    let r = Running::new(lo_bench(0), precedence_policy(0));
    let q = |name: &str| r.bench.udp(query(0x0104, name, TYPE_A)).bytes();
    r.redirected("undecided", &q("outside.test"));
    let m = query_wire(0x0105, true, &[0xc0, 0x0c], TYPE_A, CLASS_IN);
    r.redirected("compressed, no allowlist", &r.bench.udp(m).bytes());
    r.answered(
        "blocked, no allowlist",
        &q("x.example.com"),
        3,
        none(),
        blocked,
    );
}

// ---- 3. TCP ----

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH_ACK: u8 = 0x18;

impl Running {
    /// The TCP segment `frame` becomes the server's RST: the whole frame, the verdict, the
    /// mark, `tcp_reset`, and the connection's flow gone.
    #[track_caller]
    fn reset(&self, what: &str, frame: &[u8]) {
        let ctx = format!("{}: {what}", self.bench.name);
        let before = self.counters();
        let flow = self.flow(frame).is_some();
        let out = self.run(frame, 0);
        // The client's RST went back as a copy (bpf_clone_redirect, not seen here; the
        // end-to-end tests see the client's connection reset). The segment itself is the
        // RST to the server, sent on where the connection goes: to the upstream with a flow,
        // untouched without one.
        let expected = expected_server_reset(frame);
        if flow {
            let verdict = if self.bench.lo {
                TC_ACT_REDIRECT
            } else {
                TC_ACT_UNSPEC
            };
            assert_eq!(out.retval, verdict, "{ctx}: verdict");
            let seen = parse_checked(&out.data);
            assert_eq!(
                (seen.dst, seen.dport),
                (self.bench.upstream.ip(), self.bench.upstream.port()),
                "{ctx}: to the upstream"
            );
            let l = layout(&out.data).expect("ip");
            let le = layout(&expected).expect("ip");
            let (o, e) = (&out.data[l.l4..], &expected[le.l4..]);
            assert_eq!(
                (&o[4..16], &o[18..]),
                (&e[4..16], &e[18..]),
                "{ctx}: the server's RST (seq, ack, flags, window, options; the ports and checksum are the redirect's)"
            );
        } else {
            assert_eq!(out.retval, TC_ACT_UNSPEC, "{ctx}: verdict");
            assert_same(&ctx, &expected, &out.data);
        }
        assert_eq!(out.mark, 0, "{ctx}: skb->mark as it was");
        assert_eq!(
            changed(&before, &self.counters()),
            [("tcp_reset", 1)],
            "{ctx}"
        );
        assert!(self.flow(frame).is_none(), "{ctx}: the flow is forgotten");
    }

    /// The segment goes on as without decisions: redirected to the upstream.
    #[track_caller]
    fn tcp_redirected(&self, what: &str, frame: &[u8]) {
        let ctx = format!("{}: {what}", self.bench.name);
        let before = self.counters();
        let out = self.run(frame, 0);
        let verdict = if self.bench.lo {
            TC_ACT_REDIRECT
        } else {
            TC_ACT_UNSPEC
        };
        assert_eq!(out.retval, verdict, "{ctx}: verdict");
        let (seen, sent) = (parse_checked(&out.data), parse_checked(frame));
        assert_eq!(
            (seen.dst, seen.dport, seen.payload),
            (
                self.bench.upstream.ip(),
                self.bench.upstream.port(),
                sent.payload
            ),
            "{ctx}: to the upstream, payload unchanged"
        );
        let c = changed(&before, &self.counters());
        assert!(
            c.contains(&("tcp_segments_redirected", 1))
                && !c.iter().any(|(n, _)| *n == "tcp_reset"),
            "{ctx}: counted as redirected: {c:?}"
        );
        assert!(self.flow(frame).is_some(), "{ctx}: the flow is there");
    }

    /// The TCP flow of the segment's client port.
    fn flow(&self, frame: &[u8]) -> Option<Vec<u8>> {
        let l = layout(frame).expect("ip");
        let port = u16::from_be_bytes([frame[l.l4], frame[l.l4 + 1]]);
        let key = FlowKey {
            port: port_raw(port),
            dns_id: 0,
            proto: TCP,
            pad0: 0,
            pad1: 0,
        };
        let name = if l.v6 { FLOWS6_MAP } else { FLOWS_MAP };
        let map = self.loaded.map(&self.object, name).expect("flows");
        let info = sys::map_info(map).expect("flows info");
        let flows = inspect::flows::flows(map, &info).expect("flows");
        flows.into_iter().find(|f| f.key == key).map(|f| f.value)
    }

    /// A connection opened from `port` (its SYN redirected, its flow recorded).
    fn open(&self, port: u16) {
        let syn = self.bench.tcp(port, SYN, vec![]).bytes();
        self.tcp_redirected(&format!("SYN from {port}"), &syn);
    }
}

fn tcp_resets(bench: Bench) {
    let r = Running::new(bench, exact_policy(FLAG_ALLOWLIST));
    let b = &r.bench;
    let segment = |port: u16, payload: Vec<u8>, seq: u32, ack: u32| {
        with_seq_ack(b.tcp(port, PSH_ACK, payload).bytes(), seq, ack)
    };
    let msg = |name: &str| tcp_message(&query(0x0201, name, TYPE_A));
    // Decided names: blocked, pinned, disallowed; the seq and ack fields far apart, one that
    // wraps.
    let mut port = 40000;
    for (what, payload, seq, ack) in [
        ("blocked", msg("x.ads.example"), 1000, 5000),
        ("pinned", msg("pin.example"), 0xffff_fff0, 7),
        ("disallowed", msg("other.test"), 0x1234_5678, 0x9abc_def0),
        (
            "blocked, OPT",
            tcp_message(&with_opt(query(3, "ads.example", TYPE_A), &COOKIE)),
            9,
            9,
        ),
        // Not exactly one whole message: half of one, two pipelined, a byte, a short length.
        ("half a message", msg("ok.example")[..20].to_vec(), 100, 200),
        (
            "two pipelined",
            [msg("ok.example"), msg("ok.example")].concat(),
            300,
            400,
        ),
        ("one byte", vec![0], 500, 600),
        (
            "a message under 12 bytes",
            vec![0, 5, 1, 2, 3, 4, 5],
            700,
            800,
        ),
        (
            "a length one byte too long",
            {
                let mut m = msg("ok.example");
                m[1] += 1;
                m
            },
            1,
            2,
        ),
    ] {
        port += 1;
        r.open(port);
        r.reset(what, &segment(port, payload, seq, ack));
        // The connection's pure ACKs after the reset: no flow, they pass.
        let ack_only = b.tcp(port, ACK, vec![]).bytes();
        let c = r.untouched(&format!("{what}: an ACK after"), &ack_only);
        assert_eq!(c, [("passed", 1)], "{what}");
    }
    // With TCP options (timestamps): kept in the RST.
    port += 1;
    r.open(port);
    let mut p = b.tcp(port, PSH_ACK, msg("ads.example"));
    p.tcp_options = vec![1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2];
    r.reset("options", &with_seq_ack(p.bytes(), 11, 22));
    // A reset even without a flow (a connection older than the attach).
    r.reset("no flow", &segment(39999, msg("ads.example"), 1, 1));
    // Allowed: the whole segment goes on; the handshake's ACK and the FIN too.
    port += 1;
    r.open(port);
    r.tcp_redirected("ACK", &b.tcp(port, ACK, vec![]).bytes());
    r.tcp_redirected("allowed", &segment(port, msg("ok.example"), 1, 1));
    r.tcp_redirected(
        "allowed, OPT",
        &segment(
            port,
            tcp_message(&with_opt(query(4, "ok.example", TYPE_A), &[])),
            2,
            2,
        ),
    );
    r.tcp_redirected("FIN", &b.tcp(port, 0x11, vec![]).bytes());
}

#[test]
#[ignore = "needs root: loads BPF programs"]
fn tcp_queries_decided_or_unreadable_are_reset_on_the_embedded_resolver_path() {
    tcp_resets(lo_bench(0));
}

#[test]
#[ignore = "needs root: loads BPF programs"]
fn tcp_queries_decided_or_unreadable_are_reset_on_the_nameservers_path() {
    tcp_resets(egress_bench(NameserversPath::ipv4(), 0));
    tcp_resets(egress_bench(NameserversPath::ipv6(), 0));
}

// ---- 4. lo's three passes ----

#[test]
#[ignore = "needs root: loads BPF programs"]
fn an_answer_takes_three_passes_through_lo_told_apart_by_the_mark() {
    let r = Running::new(lo_bench(0), exact_policy(FLAG_ALLOWLIST));
    let query_frame = r.bench.udp(query(0x0301, "ads.example", TYPE_A)).bytes();
    // Pass 1: the query becomes the answer, to lo's ingress with MARK_TURNED.
    let first = r.run(&query_frame, 0);
    assert_eq!((first.retval, first.mark), (TC_ACT_REDIRECT, MARK_TURNED));
    assert_same(
        "pass 1",
        &expected_answer(&query_frame, 3, &[], 0),
        &first.data,
    );
    // Pass 2: bpf_redirect_neigh, MARK_ROUTED, the frame unchanged, nothing counted.
    let before = r.counters();
    let second = r.run(&first.data, MARK_TURNED);
    assert_eq!((second.retval, second.mark), (TC_ACT_REDIRECT, MARK_ROUTED));
    assert_same("pass 2", &first.data, &second.data);
    assert_eq!(changed(&before, &r.counters()), [], "pass 2 is not counted");
    // Pass 3: the mark cleared, the answer passes untouched (an answer from the resolver).
    let third = r.run(&second.data, MARK_ROUTED);
    assert_eq!((third.retval, third.mark), (TC_ACT_UNSPEC, 0));
    assert_same("pass 3", &first.data, &third.data);
    assert_eq!(changed(&before, &r.counters()), [("passed", 1)]);
    // MARK_ROUTED only says "clear me": a query carrying it is read and answered as usual.
    let again = r.run(&query_frame, MARK_ROUTED);
    assert_eq!((again.retval, again.mark), (TC_ACT_REDIRECT, MARK_TURNED));
    assert_same("a query with MARK_ROUTED", &first.data, &again.data);
    // Another mark is left alone on a packet we do not answer...
    let other = r.run(&first.data, 0x1234);
    assert_eq!((other.retval, other.mark), (TC_ACT_UNSPEC, 0x1234));
    // ...and replaced by ours on one we answer.
    let other = r.run(&query_frame, 0x1234);
    assert_eq!((other.retval, other.mark), (TC_ACT_REDIRECT, MARK_TURNED));
    drop(r);

    // Without decisions the marks mean nothing: a query with MARK_TURNED is redirected.
    let (_, loaded) = support::prog::load(UPSTREAM_PORT, 0);
    let prog = &loaded.program(QUERY_SECTION).expect("query").fd;
    let frame = query_packet(0x0302, "ads.example").bytes();
    let out = run_with_mark(prog, &frame, MARK_TURNED).expect("run");
    assert_eq!((out.retval, out.mark), (TC_ACT_REDIRECT, MARK_TURNED));
    let seen = parse_checked(&out.data);
    assert_eq!(
        (seen.dst, seen.dport),
        (IpAddr::from(UPSTREAM), UPSTREAM_PORT)
    );
}

// ---- 6. events ----

#[test]
#[ignore = "needs root: loads BPF programs"]
fn answered_queries_and_resets_write_their_events() {
    let r = Running::new(lo_bench(0), exact_policy(FLAG_ALLOWLIST));
    let mut ring = events_ring(&r.object, &r.loaded);
    watch(&r.object, &r.loaded);
    let b = &r.bench;
    for (name, path) in [
        ("ads.example", ROUTE_BLOCKED),
        ("pin.example", ROUTE_PINNED),
        ("other.test", ROUTE_DISALLOWED),
    ] {
        let m = with_opt(query(0x0601, name, TYPE_A), &[]);
        let f = b.udp(m.clone()).bytes();
        let out = r.run(&f, 0);
        assert_eq!(out.retval, TC_ACT_REDIRECT, "{name}");
        let events = take_events(&mut ring);
        assert_eq!(events.len(), 1, "{name}: one event, the query's");
        let (h, data) = &events[0];
        assert_eq!(
            (h.kind, h.path, h.proto),
            (EVENT_QUERY, path, UDP),
            "{name}"
        );
        assert_eq!(h.client(), std::net::SocketAddrV4::new(CLIENT, CLIENT_PORT));
        assert_eq!(
            (h.msg_len as usize, data),
            (m.len(), &m),
            "{name}: the query"
        );
        // The answer's passes: the third writes the answer's event.
        let second = r.run(&out.data, MARK_TURNED);
        assert!(
            take_events(&mut ring).is_empty(),
            "{name}: pass 2 writes none"
        );
        r.run(&second.data, MARK_ROUTED);
        let events = take_events(&mut ring);
        assert_eq!(events.len(), 1, "{name}: pass 3 writes the answer's");
        let (h, data) = &events[0];
        assert_eq!(
            (h.kind, h.path, h.proto),
            (EVENT_REPLY, ROUTE_NONE, UDP),
            "{name}"
        );
        assert_eq!(h.client(), std::net::SocketAddrV4::new(CLIENT, CLIENT_PORT));
        let l = layout(&out.data).expect("ip");
        assert_eq!(data[..], out.data[l.l4 + 8..], "{name}: the answer");
    }
    // A reset: its query's event, path ROUTE_RESET, the message without its length.
    let m = query(0x0602, "ads.example", TYPE_A);
    let f = b.tcp(41000, PSH_ACK, tcp_message(&m)).bytes();
    // No flow: the server's RST goes on untouched (the client's went back as a copy).
    assert_eq!(r.run(&f, 0).retval, TC_ACT_UNSPEC);
    let events = take_events(&mut ring);
    assert_eq!(events.len(), 1);
    let (h, data) = &events[0];
    assert_eq!((h.kind, h.path, h.proto), (EVENT_QUERY, ROUTE_RESET, TCP));
    assert_eq!(data, &m);
    drop(r);

    // The nameservers path, IPv4: the query's event with its path.
    let r = Running::new(
        egress_bench(NameserversPath::ipv4(), 0),
        exact_policy(FLAG_ALLOWLIST),
    );
    let mut ring = events_ring(&r.object, &r.loaded);
    watch(&r.object, &r.loaded);
    let m = query(0x0603, "many.example", TYPE_A);
    assert_eq!(
        r.run(&r.bench.udp(m.clone()).bytes(), 0).retval,
        TC_ACT_REDIRECT
    );
    let events = take_events(&mut ring);
    assert_eq!(events.len(), 1);
    let (h, data) = &events[0];
    assert_eq!((h.kind, h.path, h.proto), (EVENT_QUERY, ROUTE_PINNED, UDP));
    assert_eq!(
        h.client(),
        std::net::SocketAddrV4::new(CONTAINER, CLIENT_PORT)
    );
    assert_eq!(data, &m);
}

/// The rules map's keys sized for the rules (Config::rule_key_bytes, here 32 bytes): a name
/// longer than the keys is looked up by its last labels that fit, so a long name under a
/// blocked suffix is still blocked, one beside it is not, and an exact (hosts) name that fits
/// matches only itself.
#[test]
#[ignore = "needs root: loads BPF programs"]
fn short_rule_keys_still_match_long_names() {
    const KEY_BYTES: usize = 32;
    let config = Config {
        rule_key_bytes: KEY_BYTES as u16,
        ..test_config(5353, FLAG_DECIDE)
    };
    let (object, loaded) = load_decisions(&config, 1);
    let map = loaded.map(&object, RULES_MAP).expect("rules map");
    assert_eq!(
        sys::map_info(map).expect("info").key_size as usize,
        4 + KEY_BYTES
    );
    let put = |key: dnsredir::abi::RuleKey| {
        let bytes = key.to_bytes();
        sys::map_update(
            map,
            &bytes[..4 + KEY_BYTES],
            &rule(0, DECISION_BLOCK, 0).to_bytes(),
        )
        .expect("update");
    };
    put(key_of("ads.example"));
    let exact = "exact-name-here.test"; // 21 bytes in a key, 22 with the mark
    put(exact_key(exact));
    let long = |tail: &str| format!("{}.{}.{tail}", "a".repeat(60), "b".repeat(60));
    let answered = |name: &str| {
        let frame = Packet::udp(
            (CLIENT, CLIENT_PORT),
            (RESOLVER, DOCKERD_UDP),
            dns_query(9, name),
        )
        .bytes();
        let out = sys::prog_test_run(
            &loaded.program(QUERY_SECTION).expect("query program").fd,
            &frame,
            1,
        )
        .expect("run");
        assert_eq!(
            out.retval, TC_ACT_REDIRECT,
            "{name}: answered or redirected"
        );
        let seen = parse_checked(&out.data);
        if seen.dst == IpAddr::V4(CLIENT) {
            Some(seen.payload[3] & 0x0f)
        } else {
            assert_eq!(seen.dst, IpAddr::V4(UPSTREAM), "{name}: redirected");
            None
        }
    };
    assert_eq!(answered("ads.example"), Some(3));
    assert_eq!(
        answered(&long("ads.example")),
        Some(3),
        "a long name under it"
    );
    assert_eq!(
        answered(&long("xads.example")),
        None,
        "a long name beside it"
    );
    assert_eq!(answered(exact), Some(3), "the exact name");
    assert_eq!(
        answered(&format!("x.{exact}")),
        None,
        "exact: not the names under it"
    );
    assert_eq!(
        answered(&long(exact)),
        None,
        "exact: not a long name under it"
    );
}
