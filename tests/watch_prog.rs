//! The events `--watch` reads, written by the programs themselves (BPF_PROG_TEST_RUN): none
//! without a watcher's flag, one per query and per answer with it, byte for byte; names up to
//! 255 bytes; and whatever a name looks like, the redirect goes on exactly as without a watcher.

use dnsredir::abi::raw::{addr_raw, port_raw};
use dnsredir::abi::{
    EventHeader, WatchControl, EVENTS_LOST_MAP, EVENTS_RING_SIZE, EVENT_DATA_MAX, EVENT_QUERY,
    EVENT_REPLY, EVENT_SIZE, QUERY_SECTION, REPLY_SECTION, ROUTE_DOCKERD, ROUTE_NONE,
    ROUTE_UPSTREAM, WATCH_LEASE_NS,
};
use dnsredir::bpf::elf::ObjectFile;
use dnsredir::bpf::load::Loaded;
use dnsredir::bpf::ringbuf::RingBuf;
use dnsredir::bpf::sys;

mod support;
use support::packet::*;
use support::prog::{events_ring, load, monotonic_ns, run, set_watch, take_events, watch};

struct Bench {
    object: ObjectFile,
    loaded: Loaded,
    ring: RingBuf,
}

impl Bench {
    fn new(flags: u16) -> Bench {
        let (object, loaded) = load(UPSTREAM_PORT, flags);
        let ring = events_ring(&object, &loaded);
        Bench {
            object,
            loaded,
            ring,
        }
    }

    fn set_watch(&self, control: WatchControl) {
        set_watch(&self.object, &self.loaded, control);
    }

    fn watch(&self) {
        watch(&self.object, &self.loaded);
    }

    fn run(&self, section: &str, packet: &[u8]) -> (u32, Vec<u8>) {
        run(&self.loaded, section, packet)
    }

    fn events(&mut self) -> Vec<(EventHeader, Vec<u8>)> {
        take_events(&mut self.ring)
    }

    fn lost(&self) -> u64 {
        let map = self
            .loaded
            .map(&self.object, EVENTS_LOST_MAP)
            .expect("lost map");
        let cpus = sys::possible_cpus().expect("cpus");
        let mut value = vec![0u8; 8 * cpus];
        sys::map_lookup(map, &0u32.to_ne_bytes(), &mut value).expect("lookup");
        value
            .chunks(8)
            .map(|c| u64::from_ne_bytes(c.try_into().unwrap()))
            .sum()
    }
}

/// An answer on lo as it reaches the query program: from the resolver's address and dockerd's
/// port (restored by the reply program) or port 53 (dockerd's own, after conntrack's un-DNAT).
fn lo_answer(id: u16, name: &str, sport: u16) -> Packet {
    Packet::udp(
        (RESOLVER, sport),
        (CLIENT, CLIENT_PORT),
        dns_answer(id, name),
    )
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn without_a_watcher_nothing_is_written() {
    let mut b = Bench::new(0);
    let (ret, _) = b.run(QUERY_SECTION, &query_packet(1, "example.com").bytes());
    assert_eq!(ret, TC_ACT_REDIRECT);
    b.run(REPLY_SECTION, &reply_packet(1, "example.com").bytes());
    b.run(
        QUERY_SECTION,
        &lo_answer(1, "example.com", DOCKERD_UDP).bytes(),
    );
    b.run(QUERY_SECTION, &query_packet(2, "c2").bytes());
    b.run(QUERY_SECTION, &lo_answer(2, "c2", 53).bytes());
    assert_eq!(b.ring.pending(), 0, "the ring buffer stays empty");

    // A flag whose watcher stopped refreshing it (killed) is ignored after the lease.
    b.set_watch(WatchControl {
        watcher_pid: 1,
        refreshed_ns: monotonic_ns() - WATCH_LEASE_NS - 1_000_000,
        ..Default::default()
    });
    b.run(QUERY_SECTION, &query_packet(3, "example.com").bytes());
    assert_eq!(b.ring.pending(), 0, "a stale flag writes nothing");
    // A cleared flag too.
    b.set_watch(WatchControl::default());
    b.run(QUERY_SECTION, &query_packet(4, "example.com").bytes());
    assert_eq!(b.ring.pending(), 0);
    assert!(b.events().is_empty());
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn with_a_watcher_each_query_and_answer_is_one_event_byte_for_byte() {
    let mut b = Bench::new(0);
    b.watch();
    let before = monotonic_ns();
    let q = query_packet(0x1234, "example.com");
    assert_eq!(b.run(QUERY_SECTION, &q.bytes()).0, TC_ACT_REDIRECT);
    // The reply program writes nothing: its restored answer is seen again on lo.
    let (ret, restored) = b.run(REPLY_SECTION, &reply_packet(0x1234, "example.com").bytes());
    assert_eq!(ret, TC_ACT_REDIRECT);
    assert_eq!(
        b.ring.pending(),
        (EVENT_SIZE + 8) as u64,
        "one record so far"
    );
    assert_eq!(b.run(QUERY_SECTION, &restored).0, TC_ACT_UNSPEC);
    let single = query_packet(0x0505, "c2");
    assert_eq!(b.run(QUERY_SECTION, &single.bytes()).0, TC_ACT_UNSPEC);
    let own = lo_answer(0x0505, "c2", 53);
    assert_eq!(b.run(QUERY_SECTION, &own.bytes()).0, TC_ACT_UNSPEC);
    let after = monotonic_ns();

    let events = b.events();
    assert_eq!(events.len(), 4, "{events:?}");
    let expect = |i: usize, kind: u8, path: u8, payload: &[u8]| {
        let (h, data) = &events[i];
        assert_eq!(h.kind, kind, "event {i}");
        assert_eq!(h.path, path, "event {i}");
        assert_eq!(h.proto, UDP);
        assert_eq!(h.client_addr, addr_raw(CLIENT));
        assert_eq!(h.client_port, port_raw(CLIENT_PORT));
        assert_eq!(h.msg_len as usize, payload.len());
        assert_eq!(h.captured as usize, payload.len());
        assert_eq!(&data[..], payload, "event {i}: the DNS message as sent");
        assert!((before..=after).contains(&h.time_ns), "event {i}: ktime");
        assert_eq!((h.pad0, h.pad1), (0, 0));
    };
    expect(0, EVENT_QUERY, ROUTE_UPSTREAM, &q.payload);
    expect(
        1,
        EVENT_REPLY,
        ROUTE_NONE,
        &dns_answer(0x1234, "example.com"),
    );
    expect(2, EVENT_QUERY, ROUTE_DOCKERD, &single.payload);
    expect(3, EVENT_REPLY, ROUTE_NONE, &own.payload);
    assert!(events[0].0.time_ns <= events[1].0.time_ns);
    assert_eq!(b.lost(), 0);
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn tcp_events_carry_the_message_without_its_length_prefix() {
    let mut b = Bench::new(0);
    b.watch();
    let mut syn = Packet::tcp((CLIENT, CLIENT_PORT), (RESOLVER, DOCKERD_TCP), vec![]);
    syn.tcp_flags = 0x02;
    assert_eq!(b.run(QUERY_SECTION, &syn.bytes()).0, TC_ACT_REDIRECT);
    let msg = dns_query(0x7777, "tcp.example");
    let mut payload = (msg.len() as u16).to_be_bytes().to_vec();
    payload.extend_from_slice(&msg);
    let q = Packet::tcp((CLIENT, CLIENT_PORT), (RESOLVER, DOCKERD_TCP), payload);
    assert_eq!(b.run(QUERY_SECTION, &q.bytes()).0, TC_ACT_REDIRECT);
    let answer = dns_answer(0x7777, "tcp.example");
    let mut payload = (answer.len() as u16).to_be_bytes().to_vec();
    payload.extend_from_slice(&answer);
    let reply = Packet::tcp((RESOLVER, DOCKERD_TCP), (CLIENT, CLIENT_PORT), payload);
    assert_eq!(b.run(QUERY_SECTION, &reply.bytes()).0, TC_ACT_UNSPEC);
    let events = b.events();
    assert_eq!(events.len(), 2, "the SYN carries no message: {events:?}");
    assert_eq!((events[0].0.kind, events[0].0.proto), (EVENT_QUERY, TCP));
    assert_eq!(events[0].1, msg);
    assert_eq!((events[1].0.kind, events[1].0.proto), (EVENT_REPLY, TCP));
    assert_eq!(events[1].1, answer);
}

/// A query name of exactly `wire_len` bytes on the wire (root byte included).
fn name_of_wire_len(wire_len: usize) -> String {
    let mut labels = Vec::new();
    let mut left = wire_len - 1;
    while left > 0 {
        let n = (left - 1).min(63);
        labels.push("a".repeat(n));
        left -= n + 1;
    }
    labels.join(".")
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn names_up_to_255_bytes_are_carried_whole_and_long_answers_are_cut_at_512() {
    let mut b = Bench::new(0);
    b.watch();
    let name = name_of_wire_len(255);
    let q = query_packet(9, &name);
    assert_eq!(q.payload.len(), 12 + 255 + 4);
    assert_eq!(b.run(QUERY_SECTION, &q.bytes()).0, TC_ACT_REDIRECT);
    // An answer longer than a record holds: the first EVENT_DATA_MAX bytes, and its length.
    let mut long = dns_answer(9, "example.com");
    long.resize(900, 0);
    let reply = Packet::udp((RESOLVER, DOCKERD_UDP), (CLIENT, CLIENT_PORT), long.clone());
    b.run(QUERY_SECTION, &reply.bytes());
    let events = b.events();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].1, q.payload, "the whole 255-byte name");
    assert_eq!(events[1].0.msg_len, 900);
    assert_eq!(events[1].0.captured as usize, EVENT_DATA_MAX);
    assert_eq!(events[1].1, long[..EVENT_DATA_MAX]);
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn malformed_names_do_not_change_what_happens_to_the_packet() {
    let mut watched = Bench::new(0);
    watched.watch();
    let plain = Bench::new(0);
    let mut cases: Vec<Vec<u8>> = Vec::new();
    // A compression pointer, a label running past the end, a name without its root byte,
    // a 256-byte name, a header and nothing else, an empty message.
    let header = dns_query(1, "x")[..12].to_vec();
    for tail in [
        vec![0xc0, 0x0c, 0, 1, 0, 1],
        vec![40, b'a', b'b'],
        vec![3, b'a', b'b', b'c'],
        {
            let mut n = dns_query(1, &name_of_wire_len(255))[12..].to_vec();
            n.insert(0, 0);
            n.insert(0, 1);
            n
        },
        vec![],
    ] {
        let mut m = header.clone();
        m.extend_from_slice(&tail);
        cases.push(m);
    }
    cases.push(vec![]);
    for (i, msg) in cases.iter().enumerate() {
        let p = Packet::udp((CLIENT, CLIENT_PORT), (RESOLVER, DOCKERD_UDP), msg.clone()).bytes();
        let a = watched.run(QUERY_SECTION, &p);
        let b = plain.run(QUERY_SECTION, &p);
        assert_eq!(
            a, b,
            "case {i}: the same verdict and bytes with and without a watcher"
        );
    }
    // Whatever was sent on is reported with its bytes as they were.
    for (h, data) in watched.events() {
        assert_eq!(h.kind, EVENT_QUERY);
        assert!(cases.iter().any(|c| c[..] == data[..]));
    }
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn a_full_ring_counts_what_it_lost_and_redirects_anyway() {
    let b = Bench::new(0);
    b.watch();
    let per_record = (EVENT_SIZE + 8) as u32;
    let fit = EVENTS_RING_SIZE / per_record;
    for i in 0..fit + 5 {
        let (ret, _) = b.run(
            QUERY_SECTION,
            &query_packet(i as u16, "example.com").bytes(),
        );
        assert_eq!(ret, TC_ACT_REDIRECT);
    }
    assert_eq!(b.lost(), 5);
}
