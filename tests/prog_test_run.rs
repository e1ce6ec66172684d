//! The BPF programs run by the kernel on crafted packets (BPF_PROG_TEST_RUN): rewrites are
//! checked byte for byte, checksums are recomputed from scratch, and everything the programs
//! must not touch comes back identical with TC_ACT_UNSPEC (on to the next tc filter).

use dnsredir::abi::{
    Config, FLAG_REDIRECT_ALL, FLOWS_MAP, FLOW_TABLE_ENTRIES, QUERY_SECTION, REPLY_SECTION,
};
use dnsredir::bpf::elf::ObjectFile;
use dnsredir::bpf::load::Loaded;
use dnsredir::bpf::sys;

mod support;
use support::packet::*;
use support::prog::{assert_passed, assert_redirected, counters, load_config};

/// The programs loaded for the test upstream.
fn load(flags: u16) -> (ObjectFile, Loaded) {
    support::prog::load(UPSTREAM_PORT, flags)
}

/// The query with this id is redirected: its flow is live for the answer.
fn redirect_query(loaded: &Loaded, id: u16) {
    let query = query_packet(id, "example.com").bytes();
    assert_redirected(loaded, QUERY_SECTION, &query, "the query");
}

// ---- the tests ----

#[test]
#[ignore = "needs root: bpf(2)"]
fn udp_query_is_redirected_with_valid_checksums() {
    let (_, loaded) = load(0);
    let query = query_packet(0x1234, "example.com");
    let out = assert_redirected(&loaded, QUERY_SECTION, &query.bytes(), "the query");
    let seen = parse_checked(&out);
    assert_eq!((seen.src, seen.sport), (CONTAINER.into(), CLIENT_PORT));
    assert_eq!((seen.dst, seen.dport), (UPSTREAM.into(), UPSTREAM_PORT));
    assert_eq!(
        seen.payload, query.payload,
        "the DNS message is not touched"
    );
    assert_eq!(out.len(), query.bytes().len());
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn reply_to_a_redirected_query_is_restored_once() {
    let (object, loaded) = load(0);
    redirect_query(&loaded, 0x0a0b);

    let reply = reply_packet(0x0a0b, "example.com");
    let out = assert_redirected(&loaded, REPLY_SECTION, &reply.bytes(), "the reply");
    let seen = parse_checked(&out);
    assert_eq!((seen.src, seen.sport), (RESOLVER.into(), DOCKERD_UDP));
    assert_eq!((seen.dst, seen.dport), (CLIENT.into(), CLIENT_PORT));
    assert_eq!(seen.payload, reply.payload);

    // The flow is forgotten after its answer: a second copy is not ours any more.
    let again = reply.bytes();
    assert_passed(&loaded, REPLY_SECTION, &again, "the answer again");

    let c = counters(&object, &loaded);
    assert_eq!(
        (
            c.queries_redirected_udp,
            c.replies_restored,
            c.replies_unknown_flow
        ),
        (1, 1, 1)
    );
    assert_eq!(c.failures, 0);
}

/// `n` distinct (client port, DNS id) pairs, drawn at random from a fixed seed: the flow
/// table's two hashes see keys as scattered as real clients make them.
fn random_flows(n: usize) -> Vec<(u16, u16)> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        seen.insert(((x >> 16) as u16 | 1024, x as u16));
    }
    seen.into_iter().collect()
}

fn query_from(port: u16, id: u16) -> Vec<u8> {
    Packet::udp(
        (CLIENT, port),
        (RESOLVER, DOCKERD_UDP),
        dns_query(id, "example.com"),
    )
    .bytes()
}

fn reply_to(port: u16, id: u16) -> Vec<u8> {
    Packet::udp(
        (UPSTREAM, UPSTREAM_PORT),
        (CONTAINER, port),
        dns_answer(id, "example.com"),
    )
    .bytes()
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn ten_thousand_queries_in_flight_are_all_restored() {
    // The flow table's promise (FLOW_SETS): this many unanswered queries from random ports
    // with random ids evict none of each other, whichever CPUs the test thread runs on.
    const IN_FLIGHT: usize = 10_000;
    let (object, loaded) = load(0);
    let flows = random_flows(IN_FLIGHT);
    for &(port, id) in &flows {
        assert_redirected(&loaded, QUERY_SECTION, &query_from(port, id), "a query");
    }
    for &(port, id) in &flows {
        assert_redirected(
            &loaded,
            REPLY_SECTION,
            &reply_to(port, id),
            "an answer in flight",
        );
    }
    let c = counters(&object, &loaded);
    assert_eq!(
        (c.replies_restored, c.replies_unknown_flow, c.flows_evicted),
        (IN_FLIGHT as u64, 0, 0)
    );
    assert_eq!(
        tracked(&object, &loaded),
        0,
        "every answered flow is forgotten"
    );
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn a_full_flow_table_drops_its_oldest_flows_and_counts_them() {
    // Three tables' worth of queries never answered, then (a few of the kernel's ticks later,
    // the flows' clock) 1000 more: each query takes a free slot or the slot of an older flow,
    // so the flows in the table and the evictions add up to the queries, and the latest
    // queries are all there for their answers.
    let flood = 3 * FLOW_TABLE_ENTRIES as usize;
    let (object, loaded) = load(0);
    let flows = random_flows(flood + 1000);
    let (old, recent) = flows.split_at(flood);
    for &(port, id) in old {
        assert_redirected(&loaded, QUERY_SECTION, &query_from(port, id), "a query");
    }
    std::thread::sleep(std::time::Duration::from_millis(50));
    for &(port, id) in recent {
        assert_redirected(&loaded, QUERY_SECTION, &query_from(port, id), "a query");
    }
    let c = counters(&object, &loaded);
    let held = tracked(&object, &loaded);
    assert_eq!(c.queries_redirected_udp, flows.len() as u64);
    assert!(held <= FLOW_TABLE_ENTRIES as u64, "{held} flows");
    assert_eq!(held + c.flows_evicted, flows.len() as u64, "{c:?}");
    for &(port, id) in recent {
        assert_redirected(
            &loaded,
            REPLY_SECTION,
            &reply_to(port, id),
            "a recent query's answer",
        );
    }
    assert_eq!(counters(&object, &loaded).replies_restored, 1000);
}

/// The flows in the IPv4 flow table.
fn tracked(object: &ObjectFile, loaded: &Loaded) -> u64 {
    let map = loaded.map(object, FLOWS_MAP).expect("flows");
    let info = sys::map_info(map).expect("flows info");
    dnsredir::inspect::flows::count(map, &info).expect("flows") as u64
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn a_query_sent_again_is_one_flow() {
    // As a client that retries before the answer comes: one flow, taken by the first answer.
    let (object, loaded) = load(0);
    redirect_query(&loaded, 0x0c0d);
    redirect_query(&loaded, 0x0c0d);
    assert_eq!(tracked(&object, &loaded), 1);
    let reply = reply_packet(0x0c0d, "example.com").bytes();
    assert_redirected(&loaded, REPLY_SECTION, &reply, "the answer");
    assert_passed(&loaded, REPLY_SECTION, &reply, "the answer again");
    assert_eq!(tracked(&object, &loaded), 0);
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn reply_with_another_dns_id_or_port_is_untouched() {
    let (_, loaded) = load(0);
    redirect_query(&loaded, 7);
    // As a direct query from the same port would be answered: another id.
    let other_id = reply_packet(8, "example.com").bytes();
    assert_passed(&loaded, REPLY_SECTION, &other_id, "other id");
    let mut other_port = reply_packet(7, "example.com");
    other_port.dport = CLIENT_PORT + 1;
    let other_port = other_port.bytes();
    assert_passed(&loaded, REPLY_SECTION, &other_port, "other port");
    let mut other_source = reply_packet(7, "example.com");
    other_source.sport = 53;
    let other_source = other_source.bytes();
    assert_passed(&loaded, REPLY_SECTION, &other_source, "other source");
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn tcp_query_and_reply_round_trip() {
    let (object, loaded) = load(0);
    let mut syn = Packet::tcp((CLIENT, CLIENT_PORT), (RESOLVER, DOCKERD_TCP), vec![]);
    syn.tcp_flags = 0x02;
    assert_redirected(&loaded, QUERY_SECTION, &syn.bytes(), "the SYN");
    let mut payload = vec![0, 29];
    payload.extend(dns_query(0x55aa, "example.com"));
    let query = Packet::tcp(
        (CLIENT, CLIENT_PORT),
        (RESOLVER, DOCKERD_TCP),
        payload.clone(),
    );
    let out = assert_redirected(&loaded, QUERY_SECTION, &query.bytes(), "the query");
    let seen = parse_checked(&out);
    assert_eq!(
        (seen.src, seen.sport, seen.dst, seen.dport),
        (
            CONTAINER.into(),
            CLIENT_PORT,
            UPSTREAM.into(),
            UPSTREAM_PORT
        )
    );

    let reply = Packet::tcp((UPSTREAM, UPSTREAM_PORT), (CONTAINER, CLIENT_PORT), payload);
    let out = assert_redirected(&loaded, REPLY_SECTION, &reply.bytes(), "the reply");
    let seen = parse_checked(&out);
    assert_eq!(
        (seen.src, seen.sport, seen.dst, seen.dport),
        (RESOLVER.into(), DOCKERD_TCP, CLIENT.into(), CLIENT_PORT)
    );
    // A TCP flow stays tracked for the rest of the connection.
    assert_redirected(&loaded, REPLY_SECTION, &reply.bytes(), "a second segment");
    let c = counters(&object, &loaded);
    assert_eq!(
        (
            c.queries_redirected_tcp,
            c.tcp_segments_redirected,
            c.replies_restored
        ),
        (1, 2, 2),
        "one connection, two segments each way"
    );
}

fn tcp(from_upstream: bool, flags: u8) -> Vec<u8> {
    let mut p = if from_upstream {
        Packet::tcp((UPSTREAM, UPSTREAM_PORT), (CONTAINER, CLIENT_PORT), vec![])
    } else {
        Packet::tcp((CLIENT, CLIENT_PORT), (RESOLVER, DOCKERD_TCP), vec![])
    };
    p.tcp_flags = flags;
    p.bytes()
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const FIN_ACK: u8 = 0x11;
const RST: u8 = 0x04;

#[test]
#[ignore = "needs root: bpf(2)"]
fn a_tcp_connection_older_than_the_attach_stays_with_dockerd() {
    let (_, loaded) = load(0);
    let segment = tcp(false, ACK);
    assert_passed(
        &loaded,
        QUERY_SECTION,
        &segment,
        "a segment of an older connection",
    );
    let answer = tcp(true, ACK);
    assert_passed(&loaded, REPLY_SECTION, &answer, "its answer");
}

/// Who sends a segment of the test connection: the client's go through the query program, the
/// upstream's through the reply program.
#[derive(Clone, Copy)]
enum Side {
    Client,
    Upstream,
}

/// What the program does with a segment.
#[derive(Clone, Copy)]
enum Verdict {
    Redirected,
    Passed,
}

/// Segments of the test connection, in order, each with the verdict it must get.
fn tcp_segments(loaded: &Loaded, steps: &[(Side, u8, Verdict, &str)]) {
    for &(side, flags, verdict, what) in steps {
        let (section, segment) = match side {
            Side::Client => (QUERY_SECTION, tcp(false, flags)),
            Side::Upstream => (REPLY_SECTION, tcp(true, flags)),
        };
        match verdict {
            Verdict::Redirected => {
                assert_redirected(loaded, section, &segment, what);
            }
            Verdict::Passed => assert_passed(loaded, section, &segment, what),
        }
    }
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn a_tcp_flow_ends_with_its_connection() {
    use Side::*;
    use Verdict::*;
    let syn = (Client, SYN, Redirected, "the client's SYN");
    let cases: [&[(Side, u8, Verdict, &str)]; 3] = [
        // The upstream resets: the flow goes at once, a SYN sent twice being one flow.
        &[
            syn,
            (Client, SYN, Redirected, "the SYN sent again"),
            (
                Upstream,
                RST,
                Redirected,
                "the RST itself reaches the client",
            ),
            (Upstream, ACK, Passed, "a segment after the RST"),
            (Client, ACK, Passed, "no flow: not redirected"),
        ],
        // The client resets.
        &[
            syn,
            (Client, RST, Redirected, "the RST itself goes upstream"),
            (Upstream, ACK, Passed, "a segment after the RST"),
        ],
        // FINs: the closing handshake still gets through (within the grace period).
        &[
            syn,
            (Client, FIN_ACK, Redirected, "the client's FIN"),
            (Upstream, FIN_ACK, Redirected, "the upstream's FIN"),
            (Client, ACK, Redirected, "the client's last ACK"),
            (Upstream, ACK, Redirected, "the upstream's last ACK"),
        ],
    ];
    for steps in cases {
        let (_, loaded) = load(0);
        tcp_segments(&loaded, steps);
    }
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn ip_options_are_honoured() {
    let (_, loaded) = load(0);
    let mut query = query_packet(3, "example.com");
    query.ip_options = vec![1, 1, 1, 1, 1, 1, 1, 0]; // NOPs and END: IHL 7
    let out = assert_redirected(&loaded, QUERY_SECTION, &query.bytes(), "the query");
    let seen = parse_checked(&out);
    assert_eq!((seen.dst, seen.dport), (UPSTREAM.into(), UPSTREAM_PORT));
    assert_eq!(seen.payload, query.payload);
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn udp_without_checksum_keeps_zero() {
    let (_, loaded) = load(0);
    let mut query = query_packet(4, "example.com");
    query.zero_udp_checksum = true;
    let out = assert_redirected(&loaded, QUERY_SECTION, &query.bytes(), "the query");
    assert_eq!(
        &out[14 + 20 + 6..14 + 20 + 8],
        &[0, 0],
        "UDP checksum 0 means none; it must stay 0"
    );
    let ip = &out[14..34];
    assert_eq!(csum_fold(sum_words(ip)), 0);
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn single_label_names_stay_with_dockerd_unless_redirect_all() {
    let (object, loaded) = load(0);
    let c2 = query_packet(9, "c2").bytes();
    assert_passed(&loaded, QUERY_SECTION, &c2, "c2 (one label)");
    let two_labels = query_packet(10, "c2.mynet").bytes();
    assert_redirected(
        &loaded,
        QUERY_SECTION,
        &two_labels,
        "c2.<network> goes to the upstream",
    );
    assert_eq!(counters(&object, &loaded).queries_kept_for_dockerd, 1);

    let (_, all) = load(FLAG_REDIRECT_ALL);
    assert_redirected(&all, QUERY_SECTION, &c2, "c2 with FLAG_REDIRECT_ALL");
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn everything_else_passes_byte_for_byte() {
    let (object, loaded) = load(0);
    let query = query_packet(11, "example.com");
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    cases.push((
        "UDP to another port",
        Packet::udp(
            (CLIENT, CLIENT_PORT),
            (RESOLVER, 53),
            dns_query(1, "example.com"),
        )
        .bytes(),
    ));
    cases.push((
        "UDP to another address",
        Packet::udp(
            (CLIENT, CLIENT_PORT),
            (CLIENT, DOCKERD_UDP),
            dns_query(1, "example.com"),
        )
        .bytes(),
    ));
    cases.push((
        "TCP to the UDP port",
        Packet::tcp((CLIENT, CLIENT_PORT), (RESOLVER, DOCKERD_UDP), vec![]).bytes(),
    ));
    let mut fragment = query_packet(12, "example.com");
    fragment.frag = 0x2000; // more fragments
    cases.push(("first fragment", fragment.bytes()));
    let mut later = query_packet(12, "example.com");
    later.frag = 0x0010;
    cases.push(("later fragment", later.bytes()));
    let mut ipv6 = vec![
        0x02, 0, 0, 0, 0, 0xaa, 0x02, 0, 0, 0, 0, 0xbb, 0x86, 0xdd, 0x60,
    ];
    ipv6.resize(14 + 40 + 8, 0);
    cases.push(("IPv6", ipv6));
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&[0x02, 0, 0, 0, 0, 0xbb, 0x08, 0x06]);
    arp.resize(14 + 28, 1);
    cases.push(("ARP", arp));
    let whole = query.bytes();
    // BPF_PROG_TEST_RUN refuses an IPv4 frame shorter than its IP header (EINVAL), so the cuts
    // start there: no UDP header, half of one, no whole DNS header.
    for cut in [34, 38, 41, 42, 45, 53, 55] {
        cases.push(("truncated query", whole[..cut].to_vec()));
    }
    let mut bad_ihl = whole.clone();
    bad_ihl[14] = 0x44; // IHL 4: shorter than a header
    cases.push(("IHL below 5", bad_ihl));
    let mut big_ihl = whole.clone();
    big_ihl[14] = 0x4f; // IHL 15: past the end of this packet
    cases.push(("IHL past the end", big_ihl));

    for (what, packet) in &cases {
        for section in [QUERY_SECTION, REPLY_SECTION] {
            assert_passed(&loaded, section, packet, what);
        }
    }
    let c = counters(&object, &loaded);
    assert_eq!(
        c.queries_redirected_udp + c.queries_redirected_tcp + c.replies_restored,
        0
    );
    assert_eq!(c.failures, 0);
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn a_closed_tcp_flow_is_forgotten_after_the_grace_period() {
    let grace = std::time::Duration::from_millis(200);
    let (object, loaded) = load_config(&Config {
        tcp_close_grace_jiffies: dnsredir::settings::jiffies(grace),
        ..test_config(UPSTREAM_PORT, 0)
    });
    tcp_segments(
        &loaded,
        &[
            (Side::Client, SYN, Verdict::Redirected, "the client's SYN"),
            (
                Side::Upstream,
                FIN_ACK,
                Verdict::Redirected,
                "the upstream's FIN",
            ),
            (
                Side::Upstream,
                ACK,
                Verdict::Redirected,
                "within the grace period",
            ),
        ],
    );
    std::thread::sleep(grace + std::time::Duration::from_millis(100));
    // As a later direct connection from the same port would be answered.
    let direct = (
        Side::Upstream,
        SYN | ACK,
        Verdict::Passed,
        "a later direct connection",
    );
    tcp_segments(&loaded, &[direct]);
    assert_eq!(counters(&object, &loaded).replies_unknown_flow, 1);
}

// ---- EDNS ----

fn edns_query(id: u16, name: &str, size: u16) -> Packet {
    Packet::udp(
        (CLIENT, CLIENT_PORT),
        (RESOLVER, DOCKERD_UDP),
        dns_query_edns(id, name, size),
    )
}

/// The payload size field of the OPT record in a frame built by [`edns_query`].
fn edns_size_in(frame: &[u8], name: &str) -> u16 {
    let at = 14 + 20 + 8 + edns_size_offset(name);
    u16::from_be_bytes([frame[at], frame[at + 1]])
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn a_large_edns_size_is_clamped_with_a_valid_checksum() {
    let (object, loaded) = load(0);
    // The field's offset from the UDP header: 27 + the name's length, so both word alignments;
    // and the longest name there is, 127 labels in 255 bytes: every step of the walk.
    let longest = vec!["a"; 127].join(".");
    for (id, name) in [
        (21, "example.com"),
        (22, "c2.mynet"),
        (24, longest.as_str()),
    ] {
        let query = edns_query(id, name, 4096);
        let bytes = query.bytes();
        assert_eq!(edns_size_in(&bytes, name), 4096);
        let out = assert_redirected(&loaded, QUERY_SECTION, &bytes, name);
        assert_eq!(edns_size_in(&out, name), EDNS_MAX, "{name}");
        // parse_checked recomputes the UDP checksum from scratch.
        let seen = parse_checked(&out);
        assert_eq!((seen.dst, seen.dport), (UPSTREAM.into(), UPSTREAM_PORT));
        let mut expected = query.payload.clone();
        let at = edns_size_offset(name);
        expected[at..at + 2].copy_from_slice(&EDNS_MAX.to_be_bytes());
        assert_eq!(seen.payload, expected, "{name}: nothing else changed");
    }
    let c = counters(&object, &loaded);
    assert_eq!((c.queries_redirected_udp, c.edns_clamped), (3, 3));
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn a_clamped_query_without_udp_checksum_keeps_zero() {
    let (_, loaded) = load(0);
    let mut query = edns_query(23, "example.com", 4096);
    query.zero_udp_checksum = true;
    let out = assert_redirected(&loaded, QUERY_SECTION, &query.bytes(), "the query");
    assert_eq!(edns_size_in(&out, "example.com"), EDNS_MAX);
    assert_eq!(&out[14 + 20 + 6..14 + 20 + 8], &[0, 0]);
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn edns_sizes_within_the_limit_and_queries_without_opt_are_not_changed() {
    let (object, loaded) = load(0);
    let cases = [
        ("OPT 512", edns_query(31, "example.com", 512)),
        ("OPT at the limit", edns_query(32, "example.com", EDNS_MAX)),
        ("no OPT", query_packet(33, "example.com")),
    ];
    for (what, query) in &cases {
        let out = assert_redirected(&loaded, QUERY_SECTION, &query.bytes(), what);
        let seen = parse_checked(&out);
        assert_eq!(seen.payload, query.payload, "{what}: DNS message untouched");
    }
    assert_eq!(counters(&object, &loaded).edns_clamped, 0);

    let (object, loaded) = load_config(&Config {
        edns_max: 0,
        ..test_config(UPSTREAM_PORT, 0)
    });
    let query = edns_query(34, "example.com", 4096);
    let out = assert_redirected(&loaded, QUERY_SECTION, &query.bytes(), "the query");
    assert_eq!(
        parse_checked(&out).payload,
        query.payload,
        "edns_max 0: no clamp"
    );
    assert_eq!(counters(&object, &loaded).edns_clamped, 0);
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn queries_the_clamp_does_not_understand_are_redirected_unchanged() {
    let (object, loaded) = load(0);
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut pointer = dns_query_edns(41, "example.com", 4096);
    pointer[12 + 8] = 0xc0; // "com" becomes a compression pointer
    cases.push(("compression pointer in the question", pointer));
    let mut long_label = dns_query_edns(42, "example.com", 4096);
    long_label[12] = 64;
    cases.push(("label longer than 63", long_label));
    let long_name =
        ["abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0"; 4].join(".");
    assert!(long_name.len() + 2 > 255);
    cases.push((
        "128 labels, 257 bytes",
        dns_query_edns(49, &vec!["a"; 128].join("."), 4096),
    ));
    cases.push((
        "name longer than 255 bytes",
        dns_query_edns(43, &long_name, 4096),
    ));
    let mut two_additional = dns_query_edns(44, "example.com", 4096);
    two_additional[11] = 2; // a signature could follow
    cases.push(("two additional records", two_additional));
    let mut answer_count = dns_query_edns(45, "example.com", 4096);
    answer_count[7] = 1;
    cases.push(("an answer record", answer_count));
    let mut not_opt = dns_query_edns(46, "example.com", 4096);
    not_opt[12 + 13 + 4 + 2] = 1; // TYPE A, not OPT
    cases.push(("additional record is not OPT", not_opt));
    let mut truncated = dns_query_edns(47, "example.com", 4096);
    truncated.truncate(12 + 13 + 4 + 4); // ends inside the OPT record
    cases.push(("OPT record cut short", truncated));
    let mut unterminated = dns_query(48, "example.com");
    unterminated.truncate(12 + 12); // the name runs to the end
    cases.push(("name runs off the end", unterminated));

    for (what, payload) in &cases {
        let query = Packet::udp(
            (CLIENT, CLIENT_PORT),
            (RESOLVER, DOCKERD_UDP),
            payload.clone(),
        );
        let out = assert_redirected(
            &loaded,
            QUERY_SECTION,
            &query.bytes(),
            &format!("{what}: still redirected"),
        );
        let seen = parse_checked(&out);
        assert_eq!(
            (seen.dst, seen.dport),
            (UPSTREAM.into(), UPSTREAM_PORT),
            "{what}"
        );
        assert_eq!(&seen.payload, payload, "{what}: DNS message untouched");
    }
    let c = counters(&object, &loaded);
    assert_eq!(
        (
            c.queries_redirected_udp,
            c.edns_clamped,
            c.queries_kept_for_dockerd
        ),
        (cases.len() as u64, 0, 0)
    );
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn a_single_label_name_with_opt_stays_with_dockerd() {
    let (object, loaded) = load(0);
    let c2 = edns_query(51, "c2", 4096).bytes();
    assert_passed(&loaded, QUERY_SECTION, &c2, "c2 (one label)");
    assert_eq!(counters(&object, &loaded).queries_kept_for_dockerd, 1);

    let (object, all) = load(FLAG_REDIRECT_ALL);
    let out = assert_redirected(&all, QUERY_SECTION, &c2, "c2 with FLAG_REDIRECT_ALL");
    assert_eq!(edns_size_in(&out, "c2"), EDNS_MAX);
    parse_checked(&out);
    assert_eq!(counters(&object, &all).edns_clamped, 1);
}

// ---- fragments and truncated TCP ----

#[test]
#[ignore = "needs root: bpf(2)"]
fn a_fragmented_reply_to_a_known_flow_is_counted_and_passed() {
    let (object, loaded) = load(0);
    redirect_query(&loaded, 0x0f0f);
    let mut first = reply_packet(0x0f0f, "example.com");
    first.frag = 0x2000; // more fragments, offset 0
    let first = first.bytes();
    assert_passed(&loaded, REPLY_SECTION, &first, "the first fragment");
    let mut later = reply_packet(0x0f0f, "example.com");
    later.frag = 0x0005; // offset 40 bytes, last
    let later = later.bytes();
    assert_passed(&loaded, REPLY_SECTION, &later, "a later fragment");
    let mut unknown = reply_packet(0x0f10, "example.com");
    unknown.frag = 0x2000;
    let unknown = unknown.bytes();
    assert_passed(
        &loaded,
        REPLY_SECTION,
        &unknown,
        "a fragment of an unknown flow",
    );
    let c = counters(&object, &loaded);
    assert_eq!(
        (
            c.replies_fragmented,
            c.replies_unknown_flow,
            c.passed,
            c.replies_restored
        ),
        (1, 1, 1, 0)
    );
    // The flow is still there for an unfragmented answer.
    assert_redirected(
        &loaded,
        REPLY_SECTION,
        &reply_packet(0x0f0f, "example.com").bytes(),
        "the unfragmented answer",
    );
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn tcp_segments_cut_inside_their_header_pass_untouched() {
    let (object, loaded) = load(0);
    // A flow exists both ways, so only the header decides.
    assert_redirected(&loaded, QUERY_SECTION, &tcp(false, SYN), "the client's SYN");
    let timestamps = vec![1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]; // NOP NOP timestamp: doff 8
    for options in [vec![], timestamps] {
        let mut to_upstream = Packet::tcp((CLIENT, CLIENT_PORT), (RESOLVER, DOCKERD_TCP), vec![]);
        to_upstream.tcp_flags = ACK;
        to_upstream.tcp_options = options.clone();
        let mut from_upstream =
            Packet::tcp((UPSTREAM, UPSTREAM_PORT), (CONTAINER, CLIENT_PORT), vec![]);
        from_upstream.tcp_flags = ACK;
        from_upstream.tcp_options = options.clone();
        let header_end = 14 + 20 + 20 + options.len();
        for whole in [to_upstream.bytes(), from_upstream.bytes()] {
            assert_eq!(whole.len(), header_end);
            for cut in 14 + 20..header_end {
                let packet = &whole[..cut];
                for section in [QUERY_SECTION, REPLY_SECTION] {
                    assert_passed(
                        &loaded,
                        section,
                        packet,
                        &format!("{cut} of {header_end} bytes"),
                    );
                }
            }
        }
        // Whole headers are still redirected, both ways.
        assert_redirected(
            &loaded,
            QUERY_SECTION,
            &to_upstream.bytes(),
            "a whole segment to the upstream",
        );
        let out = assert_redirected(
            &loaded,
            REPLY_SECTION,
            &from_upstream.bytes(),
            "a whole segment from the upstream",
        );
        assert_eq!(parse_checked(&out).dport, CLIENT_PORT);
    }
    let mut bad_doff = tcp(false, ACK);
    bad_doff[14 + 20 + 12] = 0x40; // data offset 4: shorter than a header
    for section in [QUERY_SECTION, REPLY_SECTION] {
        assert_passed(&loaded, section, &bad_doff, "data offset 4");
    }
    assert_eq!(counters(&object, &loaded).failures, 0);
}
