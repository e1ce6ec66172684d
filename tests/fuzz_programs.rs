//! Packet fuzz: frames mutated from valid seeds, each run through the query and the reply
//! program with BPF_PROG_TEST_RUN, against the programs' promises:
//! - never TC_ACT_SHOT;
//! - TC_ACT_UNSPEC ⇒ the frame comes back byte for byte;
//! - TC_ACT_REDIRECT ⇒ only addresses, ports, checksum fields (and, for a UDP query, the EDNS
//!   payload size, lowered to the limit) changed, and every checksum valid before is valid after
//!   (a UDP checksum of 0 stays 0).
//!
//! Two benches: the embedded-resolver path (lo's query program, the reply program), and the
//! nameservers path with `--resolver any` over IPv4 and IPv6 (the egress program, the reply
//! program), whose rewritten frames go on with TC_ACT_UNSPEC and keep the same promises.
//!
//! Two more benches run the same with decisions in force (FLAG_DECIDE | FLAG_ALLOWLIST, block,
//! allow and pinned entries written into the maps as the byte contract says), where the query
//! program may also answer a query itself or reset its TCP connection (TC_ACT_REDIRECT, the frame
//! turned around). Every such frame must be exactly the answer (or RST) built from scratch for
//! its query by tests/support/answers.rs with the decision of its model: checksums valid (the
//! IPv4 header's when it was), lengths consistent, the DNS message the header, at most the
//! question echoed, the records owed and at most the 11-byte OPT, nothing else. A UDP query too
//! short for a DNS header is dropped under an allowlist (TC_ACT_SHOT), and only it.
//!
//! Deterministic: the seed is printed first; DNSREDIR_FUZZ_SEED and DNSREDIR_FUZZ_ITERATIONS
//! override the seed and the number of frames. Run with `--nocapture` to see the figures.

use dnsredir::abi::raw::{addr6_raw, port_raw};
use dnsredir::abi::{
    Config, EGRESS_SECTION, FLAG_ALLOWLIST, FLAG_ANY_RESOLVER, FLAG_DECIDE, FLOWS6_MAP, FLOWS_MAP,
    FLOW_TABLE_ENTRIES, QUERY_SECTION, REPLY_SECTION,
};
use dnsredir::bpf::elf::ObjectFile;
use dnsredir::bpf::load::Loaded;
use dnsredir::bpf::sys;
use dnsredir::inspect::flows;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;
use std::time::Instant;

mod support;
use support::answers::{self, expected_answer, expected_server_reset, layout, Pinned, Policy};
use support::packet::*;
use support::prog::{
    counters, load_config, nameservers_path_config, CONTAINER6, UPSTREAM6, UPSTREAM6_PORT,
};
use support::rng::{env_u64, Rng};

const TC_ACT_SHOT: u32 = 2;
const DEFAULT_SEED: u64 = 0x0d05_e7d1_2025_0013;
const DEFAULT_ITERATIONS: u64 = 500_000;
/// The benches with decisions check more per frame: fewer frames, about as long.
const DEFAULT_DECIDE_ITERATIONS: u64 = 400_000;
/// The id of the query that keeps a UDP flow alive for the reply seeds.
const LIVE_ID: u16 = 0x0a0b;

// ---- seeds ----

struct Seed {
    name: &'static str,
    frame: Vec<u8>,
    /// Reply seeds to a live flow need their query run first.
    needs_flow: bool,
}

fn query(payload: Vec<u8>) -> Packet {
    Packet::udp((CLIENT, CLIENT_PORT), (RESOLVER, DOCKERD_UDP), payload)
}

fn tcp_payload(id: u16) -> Vec<u8> {
    let message = dns_query(id, "example.com");
    let mut p = (message.len() as u16).to_be_bytes().to_vec();
    p.extend(message);
    p
}

/// The frames that keep flows alive for the reply seeds: a UDP query with [`LIVE_ID`], a SYN.
fn priming() -> Vec<Vec<u8>> {
    let mut syn = Packet::tcp((CLIENT, CLIENT_PORT), (RESOLVER, DOCKERD_TCP), vec![]);
    syn.tcp_flags = 0x02;
    vec![
        query(dns_query(LIVE_ID, "example.com")).bytes(),
        syn.bytes(),
    ]
}

fn seeds() -> Vec<Seed> {
    let seed = |name, frame: Vec<u8>| Seed {
        name,
        frame,
        needs_flow: false,
    };
    let mut v = vec![
        seed("udp query", query(dns_query(1, "example.com")).bytes()),
        seed(
            "udp query EDNS 4096",
            query(dns_query_edns(2, "www.example.com", 4096)).bytes(),
        ),
        seed(
            "udp query EDNS 512",
            query(dns_query_edns(3, "example.com", 512)).bytes(),
        ),
        seed("udp query EDNS, no checksum", {
            let mut p = query(dns_query_edns(4, "a.b.example.org", 65535));
            p.zero_udp_checksum = true;
            p.bytes()
        }),
        seed("udp query with IP options", {
            let mut p = query(dns_query_edns(5, "example.com", 4096));
            p.ip_options = vec![1, 1, 1, 0];
            p.bytes()
        }),
        seed("udp query single label", query(dns_query(6, "c2")).bytes()),
        seed("tcp SYN with options", {
            let mut p = Packet::tcp((CLIENT, CLIENT_PORT + 1), (RESOLVER, DOCKERD_TCP), vec![]);
            p.tcp_flags = 0x02;
            p.tcp_options = vec![2, 4, 0x05, 0xb4, 1, 3, 3, 7];
            p.bytes()
        }),
        seed(
            "tcp query segment",
            Packet::tcp(
                (CLIENT, CLIENT_PORT),
                (RESOLVER, DOCKERD_TCP),
                tcp_payload(7),
            )
            .bytes(),
        ),
        seed("tcp FIN", {
            let mut p = Packet::tcp((CLIENT, CLIENT_PORT + 2), (RESOLVER, DOCKERD_TCP), vec![]);
            p.tcp_flags = 0x11;
            p.bytes()
        }),
        Seed {
            name: "udp reply to a live flow",
            frame: Packet::udp(
                (UPSTREAM, UPSTREAM_PORT),
                (CONTAINER, CLIENT_PORT),
                dns_answer(LIVE_ID, "example.com"),
            )
            .bytes(),
            needs_flow: true,
        },
        Seed {
            name: "tcp reply to a live flow",
            frame: Packet::tcp(
                (UPSTREAM, UPSTREAM_PORT),
                (CONTAINER, CLIENT_PORT),
                tcp_payload(LIVE_ID),
            )
            .bytes(),
            needs_flow: true,
        },
        seed(
            "udp reply to no flow",
            Packet::udp(
                (UPSTREAM, UPSTREAM_PORT),
                (CONTAINER, CLIENT_PORT + 7),
                dns_answer(0x7777, "example.com"),
            )
            .bytes(),
        ),
        seed(
            "udp to another port",
            Packet::udp(
                (CLIENT, CLIENT_PORT),
                (RESOLVER, 53),
                dns_query(8, "example.com"),
            )
            .bytes(),
        ),
        seed("first fragment", {
            let mut p = query(dns_query(9, "example.com"));
            p.frag = 0x2000;
            p.bytes()
        }),
        seed("later fragment", {
            let mut p = query(dns_query(10, "example.com"));
            p.frag = 0x0010;
            p.bytes()
        }),
        Seed {
            name: "fragmented reply to a live flow",
            frame: {
                let mut p = Packet::udp(
                    (UPSTREAM, UPSTREAM_PORT),
                    (CONTAINER, CLIENT_PORT),
                    dns_answer(LIVE_ID, "example.com"),
                );
                p.frag = 0x2000;
                p.bytes()
            },
            needs_flow: true,
        },
        seed("icmp", {
            let mut f = query(vec![8, 0, 0, 0, 0, 1, 0, 1]).bytes();
            f[23] = 1;
            f
        }),
    ];
    // IPv6 UDP to port 53 of ::1 and an ARP request: not IPv4, never touched.
    let mut v6 = Packet::udp(
        (Ipv6Addr::LOCALHOST, CLIENT_PORT),
        (Ipv6Addr::LOCALHOST, DOCKERD_UDP),
        dns_query(12, "example.com"),
    );
    v6.zero_udp_checksum = true;
    let v6 = v6.bytes();
    v.push(seed("ipv6 udp query", v6));
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&[0x02, 0, 0, 0, 0, 0xbb, 0x08, 0x06]);
    arp.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 0xbb]);
    arp.extend_from_slice(&CONTAINER.octets());
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&RESOLVER.octets());
    v.push(seed("arp request", arp));
    v
}

/// `--resolver any`'s servers: none of them named anywhere in the configuration.
const ANY_SERVER: Ipv4Addr = Ipv4Addr::new(1, 1, 1, 1);
const ANY_SERVER6: Ipv6Addr = Ipv6Addr::new(0x2606, 0x4700, 0, 0, 0, 0, 0, 0x1111);
/// The upstream on port 53 there, so that the queries it must not take are on port 53 too.
const ANY_UPSTREAM_PORT: u16 = 53;

/// The nameservers path with `--resolver any` and both upstreams, as the loader writes it.
fn any_resolver_config() -> Config {
    let mut c = nameservers_path_config(ANY_UPSTREAM_PORT, FLAG_ANY_RESOLVER);
    c.container6_addr = addr6_raw(CONTAINER6);
    c.upstream6_addr = addr6_raw(UPSTREAM6);
    c.upstream6_port = port_raw(UPSTREAM6_PORT);
    c
}

/// A query from the container to any server on port 53, on eth0's egress.
fn any_query(payload: Vec<u8>) -> Packet {
    Packet::udp((CONTAINER, CLIENT_PORT), (ANY_SERVER, 53), payload)
}

/// The frames that keep flows alive for the reply seeds of `--resolver any`.
fn any_priming() -> Vec<Vec<u8>> {
    let mut syn = Packet::tcp((CONTAINER, CLIENT_PORT), (ANY_SERVER, 53), vec![]);
    syn.tcp_flags = 0x02;
    let v6 = Packet::udp(
        (CONTAINER6, CLIENT_PORT),
        (ANY_SERVER6, 53),
        dns_query(LIVE_ID, "example.com"),
    );
    vec![
        any_query(dns_query(LIVE_ID, "example.com")).bytes(),
        syn.bytes(),
        v6.bytes(),
    ]
}

fn any_seeds() -> Vec<Seed> {
    let seed = |name, frame: Vec<u8>| Seed {
        name,
        frame,
        needs_flow: false,
    };
    let live = |name, frame: Vec<u8>| Seed {
        name,
        frame,
        needs_flow: true,
    };
    let up = (UPSTREAM, ANY_UPSTREAM_PORT);
    let tcp = |flags: u8, payload: Vec<u8>| {
        let mut p = Packet::tcp((CONTAINER, CLIENT_PORT), (ANY_SERVER, 53), payload);
        p.tcp_flags = flags;
        p
    };
    vec![
        seed("udp query", any_query(dns_query(1, "example.com")).bytes()),
        seed(
            "udp query EDNS 4096",
            any_query(dns_query_edns(2, "www.example.com", 4096)).bytes(),
        ),
        seed("udp query EDNS, no checksum", {
            let mut p = any_query(dns_query_edns(4, "a.b.example.org", 65535));
            p.zero_udp_checksum = true;
            p.bytes()
        }),
        seed("udp query with IP options", {
            let mut p = any_query(dns_query_edns(5, "example.com", 4096));
            p.ip_options = vec![1, 1, 1, 0];
            p.bytes()
        }),
        seed("tcp SYN with options", {
            let mut p = tcp(0x02, vec![]);
            p.tcp_options = vec![2, 4, 0x05, 0xb4, 1, 3, 3, 7];
            p.bytes()
        }),
        seed("tcp query segment", tcp(0x18, tcp_payload(7)).bytes()),
        seed("tcp FIN", tcp(0x11, vec![]).bytes()),
        seed(
            "udp query to the upstream",
            Packet::udp((CONTAINER, CLIENT_PORT), up, dns_query(8, "example.com")).bytes(),
        ),
        seed(
            "udp query to the own address",
            Packet::udp(
                (CONTAINER, CLIENT_PORT),
                (CONTAINER, 53),
                dns_query(8, "example.com"),
            )
            .bytes(),
        ),
        live(
            "udp reply to a live flow",
            Packet::udp(
                up,
                (CONTAINER, CLIENT_PORT),
                dns_answer(LIVE_ID, "example.com"),
            )
            .bytes(),
        ),
        live(
            "tcp reply to a live flow",
            Packet::tcp(up, (CONTAINER, CLIENT_PORT), tcp_payload(LIVE_ID)).bytes(),
        ),
        seed(
            "udp reply to no flow",
            Packet::udp(
                up,
                (CONTAINER, CLIENT_PORT + 7),
                dns_answer(0x7777, "example.com"),
            )
            .bytes(),
        ),
        seed(
            "a server's own answer",
            Packet::udp(
                (ANY_SERVER, 53),
                (CONTAINER, CLIENT_PORT),
                dns_answer(LIVE_ID, "example.com"),
            )
            .bytes(),
        ),
        seed("first fragment", {
            let mut p = any_query(dns_query(9, "example.com"));
            p.frag = 0x2000;
            p.bytes()
        }),
        live("fragmented reply to a live flow", {
            let mut p = Packet::udp(
                up,
                (CONTAINER, CLIENT_PORT),
                dns_answer(LIVE_ID, "example.com"),
            );
            p.frag = 0x2000;
            p.bytes()
        }),
        seed(
            "ipv6 udp query",
            Packet::udp(
                (CONTAINER6, CLIENT_PORT),
                (ANY_SERVER6, 53),
                dns_query_edns(11, "example.com", 4096),
            )
            .bytes(),
        ),
        seed("ipv6 tcp SYN", {
            let mut p = Packet::tcp((CONTAINER6, CLIENT_PORT + 3), (ANY_SERVER6, 53), vec![]);
            p.tcp_flags = 0x02;
            p.bytes()
        }),
        seed(
            "ipv6 udp query to the upstream",
            Packet::udp(
                (CONTAINER6, CLIENT_PORT),
                (UPSTREAM6, UPSTREAM6_PORT),
                dns_query(12, "example.com"),
            )
            .bytes(),
        ),
        live(
            "ipv6 udp reply to a live flow",
            Packet::udp(
                (UPSTREAM6, UPSTREAM6_PORT),
                (CONTAINER6, CLIENT_PORT),
                dns_answer(LIVE_ID, "example.com"),
            )
            .bytes(),
        ),
    ]
}

// ---- mutations ----

const MUTATIONS: [&str; 10] = [
    "byte flips",
    "truncation",
    "growth",
    "IHL",
    "fragment bits",
    "protocol byte",
    "IP total length",
    "L4 length/offset",
    "DNS header",
    "label length",
];

/// Where the DNS message starts, as the seed was built (IPv4, UDP or TCP with its 2-byte length).
fn dns_offset(frame: &[u8]) -> Option<usize> {
    if frame.len() < 34 || frame[12..14] != [0x08, 0x00] {
        return None;
    }
    let ihl = ((frame[14] & 0x0f) as usize) * 4;
    let l4 = 14 + ihl;
    match frame[23] {
        UDP => Some(l4 + 8),
        TCP => frame
            .get(l4 + 12)
            .map(|&b| l4 + ((b >> 4) as usize) * 4 + 2),
        _ => None,
    }
    .filter(|&at| at + 12 <= frame.len())
}

fn mutate(rng: &mut Rng, frame: &mut Vec<u8>, kind: usize) {
    let interesting =
        |rng: &mut Rng| -> u8 { [0, 1, 0x7f, 0x80, 0xc0, 0xff, 63, 64][rng.below(8)] };
    // Half the time a value that tends to break parsers, else any byte.
    let edited = |rng: &mut Rng| -> u8 {
        if rng.chance(50) {
            interesting(rng)
        } else {
            rng.byte()
        }
    };
    match kind {
        0 => {
            for _ in 0..1 + rng.below(4) {
                if frame.is_empty() {
                    break;
                }
                let at = rng.below(frame.len());
                frame[at] ^= 1 << rng.below(8);
                if rng.chance(30) {
                    frame[at] = rng.byte();
                }
            }
        }
        1 => {
            let len = rng.below(frame.len() + 1);
            frame.truncate(len);
        }
        2 => {
            for _ in 0..1 + rng.below(64) {
                frame.push(rng.byte());
            }
        }
        3 => {
            if frame.len() > 14 {
                frame[14] = (frame[14] & 0xf0) | rng.below(16) as u8;
            }
        }
        4 => {
            if frame.len() > 21 {
                let bits: u16 = match rng.below(4) {
                    0 => 0x2000,                     // MF
                    1 => 0x4000,                     // DF
                    2 => rng.next() as u16 & 0x1fff, // an offset
                    _ => rng.next() as u16,          // anything, reserved bit too
                };
                frame[20..22].copy_from_slice(&bits.to_be_bytes());
            }
        }
        5 => {
            if frame.len() > 23 {
                frame[23] = [UDP, TCP, 1, 0, 255, rng.byte()][rng.below(6)];
            }
        }
        6 => {
            if frame.len() > 17 {
                let len = frame.len() as i64 - 14;
                let total = match rng.below(3) {
                    0 => len + rng.below(9) as i64 - 4,
                    1 => rng.below(64) as i64,
                    _ => rng.next() as u16 as i64,
                };
                frame[16..18].copy_from_slice(&(total.clamp(0, 0xffff) as u16).to_be_bytes());
            }
        }
        7 => {
            if frame.len() > 34 {
                let ihl = ((frame[14] & 0x0f) as usize) * 4;
                let l4 = 14 + ihl.max(20);
                if frame.get(23) == Some(&TCP) {
                    if let Some(b) = frame.get_mut(l4 + 12) {
                        *b = (rng.below(16) as u8) << 4 | (*b & 0x0f);
                    }
                } else if l4 + 6 <= frame.len() {
                    let len = frame.len() as i64 - l4 as i64 + rng.below(9) as i64 - 4;
                    let len = if rng.chance(30) {
                        rng.next() as u16
                    } else {
                        len.clamp(0, 0xffff) as u16
                    };
                    frame[l4 + 4..l4 + 6].copy_from_slice(&len.to_be_bytes());
                }
            }
        }
        8 => {
            if let Some(at) = dns_offset(frame) {
                let field = at + rng.below(12);
                frame[field] = edited(rng);
            } else {
                mutate(rng, frame, 0);
            }
        }
        _ => {
            if let Some(at) = dns_offset(frame) {
                // Walk the question name's labels and edit one length byte.
                let mut labels = Vec::new();
                let mut i = at + 12;
                while i < frame.len() && frame[i] != 0 && frame[i] < 64 {
                    labels.push(i);
                    i += 1 + frame[i] as usize;
                }
                if i < frame.len() {
                    labels.push(i);
                }
                if let Some(&pos) = labels.get(rng.below(labels.len())) {
                    frame[pos] = edited(rng);
                }
            } else {
                mutate(rng, frame, 0);
            }
        }
    }
}

// ---- checking ----

fn ipv4_header_ok(frame: &[u8]) -> Option<bool> {
    if frame.len() < 34 || frame[12..14] != [0x08, 0x00] {
        return None;
    }
    let ihl = ((frame[14] & 0x0f) as usize) * 4;
    let header = frame.get(14..14 + ihl).filter(|_| ihl >= 20)?;
    Some(csum_fold(sum_words(header)) == 0)
}

/// The L4 segment, as its IPv4 header (or IPv6's, without extension headers) delimits it, its
/// protocol, and where the pseudo-header's addresses are.
fn segment(frame: &[u8]) -> Option<(usize, usize, u8, Range<usize>)> {
    if frame.get(12..14) == Some(&[0x86, 0xdd][..]) {
        if frame.len() < 54 || frame[14] >> 4 != 6 || !matches!(frame[20], UDP | TCP) {
            return None;
        }
        let end = 54 + u16::from_be_bytes([frame[18], frame[19]]) as usize;
        return (end <= frame.len()).then_some((54, end, frame[20], 22..54));
    }
    ipv4_header_ok(frame)?;
    let ihl = ((frame[14] & 0x0f) as usize) * 4;
    let total = u16::from_be_bytes([frame[16], frame[17]]) as usize;
    let (start, end) = (14 + ihl, 14 + total);
    (total >= ihl && end <= frame.len()).then_some((start, end, frame[23], 26..34))
}

/// UDP or TCP checksum over the segment with the pseudo header: `Some(valid)`, or None when the
/// frame has no such segment or (UDP) no checksum.
fn l4_ok(frame: &[u8]) -> Option<bool> {
    let (start, end, proto, addrs) = segment(frame)?;
    let seg = &frame[start..end];
    let at = match proto {
        UDP if seg.len() >= 8 => 6,
        TCP if seg.len() >= 20 => 16,
        _ => return None,
    };
    if proto == UDP && seg[at..at + 2] == [0, 0] {
        return None;
    }
    // IPv6's 32-bit length sums to the same below 64 KiB.
    let pseudo = sum_words(&frame[addrs]) + proto as u32 + seg.len() as u32;
    Some(csum_fold(pseudo + sum_words(seg)) == 0)
}

fn udp_checksum_zero(frame: &[u8]) -> Option<bool> {
    let (start, end, proto, _) = segment(frame)?;
    (proto == UDP && end - start >= 8).then(|| frame[start + 6..start + 8] == [0, 0])
}

/// Checks a rewritten (redirected, or on the nameservers path passed on) frame against its
/// input; Err says what broke.
fn check_redirect(section: &str, input: &[u8], out: &[u8]) -> Result<(), String> {
    if input.len() != out.len() {
        return Err(format!("length {} became {}", input.len(), out.len()));
    }
    // The L4 header, its protocol, and the L3 bytes a rewrite may change: the addresses (and
    // IPv4's header checksum).
    let (l4, proto, l3) = if input.len() >= 54 && input[12..14] == [0x86, 0xdd] {
        if input[14] >> 4 != 6 {
            return Err("a frame with IPv6's EtherType but not version 6 was rewritten".into());
        }
        (54, input[20], 14 + 8..14 + 40)
    } else if input.len() >= 34 && input[12..14] == [0x08, 0x00] && input[14] >> 4 == 4 {
        let ihl = ((input[14] & 0x0f) as usize) * 4;
        (14 + ihl, input[23], 14 + 10..14 + 20)
    } else {
        return Err("a frame that is neither IPv4 nor IPv6 was rewritten".into());
    };
    let mut allowed = vec![false; input.len()];
    for i in l3.chain(l4..l4 + 4) {
        if let Some(a) = allowed.get_mut(i) {
            *a = true;
        }
    }
    let (csum_at, header) = match proto {
        UDP => (l4 + 6, 8),
        TCP => (l4 + 16, 20),
        p => return Err(format!("protocol {p} was redirected")),
    };
    if csum_at + 2 > input.len() {
        return Err("redirected without a whole L4 header".into());
    }
    allowed[csum_at] = true;
    allowed[csum_at + 1] = true;
    let diffs: Vec<usize> = (0..input.len())
        .filter(|&i| input[i] != out[i] && !allowed[i])
        .collect();
    if !diffs.is_empty() {
        // The EDNS clamp: one 16-bit field of a UDP query's DNS message, lowered to the limit.
        let first = diffs[0];
        let clamp = section != REPLY_SECTION
            && proto == UDP
            && first >= l4 + header + 12
            && first + 1 < input.len()
            && diffs.iter().all(|&i| i == first || i == first + 1)
            && {
                let old = u16::from_be_bytes([input[first], input[first + 1]]);
                let new = u16::from_be_bytes([out[first], out[first + 1]]);
                new == EDNS_MAX && old > EDNS_MAX
            };
        // The field may start one byte earlier when only its low byte changed.
        let clamp_low_byte = section != REPLY_SECTION
            && proto == UDP
            && diffs.len() == 1
            && first > l4 + header + 12
            && {
                let old = u16::from_be_bytes([input[first - 1], input[first]]);
                let new = u16::from_be_bytes([out[first - 1], out[first]]);
                new == EDNS_MAX && old > EDNS_MAX
            };
        if !clamp && !clamp_low_byte {
            return Err(format!(
                "bytes changed outside the rewritten fields: {diffs:?}"
            ));
        }
    }
    if ipv4_header_ok(input) == Some(true) && ipv4_header_ok(out) != Some(true) {
        return Err("a valid IPv4 header checksum became invalid".into());
    }
    if udp_checksum_zero(input) == Some(true) && udp_checksum_zero(out) != Some(true) {
        return Err("a UDP checksum of 0 did not stay 0".into());
    }
    if l4_ok(input) == Some(true) && l4_ok(out) != Some(true) {
        return Err("a valid L4 checksum became invalid".into());
    }
    Ok(())
}

/// The flows in the flow table `name`.
fn flow_count(object: &ObjectFile, loaded: &Loaded, name: &str) -> u32 {
    let map = loaded.map(object, name).expect("flows map");
    let info = sys::map_info(map).expect("flows map info");
    let n = flows::count(map, &info).expect("flows") as u32;
    assert!(n <= FLOW_TABLE_ENTRIES, "the flow table {name} overflows");
    n
}

fn verdict_name(v: u32) -> String {
    match v {
        TC_ACT_UNSPEC => "TC_ACT_UNSPEC".into(),
        TC_ACT_REDIRECT => "TC_ACT_REDIRECT".into(),
        TC_ACT_SHOT => "TC_ACT_SHOT".into(),
        v => format!("retval {v}"),
    }
}

// ---- decisions ----

/// The rules of the benches with decisions: the seeds' own names allowed, and a block, a
/// pinned suffix and a pinned exact name (hosts) beside them.
fn decide_policy() -> Policy {
    let v4 = |i: u8| Ipv4Addr::new(10, 7, 0, i);
    let v6 = |i: u16| Ipv6Addr::new(0xfd00, 7, 0, 0, 0, 0, 0, i);
    Policy::new(FLAG_ALLOWLIST)
        .allow("example.com")
        .allow("example.org")
        .block("ads.example.com")
        .answer("pin.test", Pinned::new(&[v4(1), v4(2)], &[v6(1)]))
        .exact_answer(
            "host.test",
            Pinned::new(
                &(1..=8).map(v4).collect::<Vec<_>>(),
                &(1..=8).map(v6).collect::<Vec<_>>(),
            ),
        )
}

/// Queries each decision answers, as `udp` and `tcp` frame them.
fn decide_seeds(udp: impl Fn(Vec<u8>) -> Packet, tcp: impl Fn(Vec<u8>) -> Packet) -> Vec<Seed> {
    use answers::{query, tcp_message, with_opt, COOKIE, TYPE_A, TYPE_AAAA, TYPE_TXT};
    let seed = |name, frame: Vec<u8>| Seed {
        name,
        frame,
        needs_flow: false,
    };
    let ok = query(0x51, "www.example.com", TYPE_A);
    vec![
        seed(
            "udp blocked",
            udp(query(0x41, "x.ads.example.com", TYPE_A)).bytes(),
        ),
        seed(
            "udp blocked, OPT cookie",
            udp(with_opt(query(0x42, "ads.example.com", TYPE_A), &COOKIE)).bytes(),
        ),
        seed(
            "udp pinned A",
            udp(query(0x43, "www.pin.test", TYPE_A)).bytes(),
        ),
        seed(
            "udp pinned AAAA, OPT",
            udp(with_opt(query(0x44, "pin.test", TYPE_AAAA), &[])).bytes(),
        ),
        seed(
            "udp pinned TXT",
            udp(query(0x45, "pin.test", TYPE_TXT)).bytes(),
        ),
        seed(
            "udp hosts 8 A, OPT",
            udp(with_opt(query(0x46, "host.test", TYPE_A), &[])).bytes(),
        ),
        seed(
            "udp hosts 8 AAAA",
            udp(query(0x47, "HOST.test", TYPE_AAAA)).bytes(),
        ),
        seed(
            "udp disallowed, OPT",
            udp(with_opt(query(0x48, "other.net", TYPE_A), &[])).bytes(),
        ),
        seed(
            "tcp blocked",
            tcp(tcp_message(&query(0x49, "ads.example.com", TYPE_A))).bytes(),
        ),
        seed(
            "tcp two pipelined",
            tcp([tcp_message(&ok), tcp_message(&ok)].concat()).bytes(),
        ),
        seed("tcp allowed", tcp(tcp_message(&ok)).bytes()),
    ]
}

/// The embedded-resolver bench with decisions: its seeds, and the decisions' own.
fn decide_seeds_lo() -> Vec<Seed> {
    let mut v = seeds();
    v.extend(decide_seeds(query, |payload| {
        Packet::tcp((CLIENT, CLIENT_PORT + 5), (RESOLVER, DOCKERD_TCP), payload)
    }));
    v
}

/// The `--resolver any` bench with decisions, both families.
fn decide_seeds_any() -> Vec<Seed> {
    let mut v = any_seeds();
    v.extend(decide_seeds(any_query, |payload| {
        Packet::tcp((CONTAINER, CLIENT_PORT + 5), (ANY_SERVER, 53), payload)
    }));
    let mut v6 = decide_seeds(
        |payload| Packet::udp((CONTAINER6, CLIENT_PORT), (ANY_SERVER6, 53), payload),
        |payload| Packet::tcp((CONTAINER6, CLIENT_PORT + 5), (ANY_SERVER6, 53), payload),
    );
    for s in &mut v6 {
        s.name = match s.name {
            "udp blocked" => "ipv6 udp blocked",
            "udp blocked, OPT cookie" => "ipv6 udp blocked, OPT cookie",
            "udp pinned A" => "ipv6 udp pinned A",
            "udp pinned AAAA, OPT" => "ipv6 udp pinned AAAA, OPT",
            "udp pinned TXT" => "ipv6 udp pinned TXT",
            "udp hosts 8 A, OPT" => "ipv6 udp hosts 8 A, OPT",
            "udp hosts 8 AAAA" => "ipv6 udp hosts 8 AAAA",
            "udp disallowed, OPT" => "ipv6 udp disallowed, OPT",
            "tcp blocked" => "ipv6 tcp blocked",
            "tcp two pipelined" => "ipv6 tcp two pipelined",
            _ => "ipv6 tcp allowed",
        };
    }
    v.extend(v6);
    v
}

/// The frame `out` is `input` turned around: its IP addresses swapped.
fn turned_around(input: &[u8], out: &[u8]) -> bool {
    match (layout(input), layout(out)) {
        (Some(i), Some(o)) if i.v6 == o.v6 && out.len() >= o.l4 => {
            input[i.src.clone()] == out[o.dst.clone()] && input[i.dst.clone()] == out[o.src.clone()]
        }
        _ => false,
    }
}

/// Whether the program made `out` the RST|ACK of a reset connection out of a segment `input`
/// whose IP header says it carries data (whatever flags it had: a mutation may have set RST
/// already, or lengthened the IP header's length past the frame).
fn made_rst(input: &[u8], out: &[u8]) -> bool {
    let tcp = |f: &[u8]| {
        let l = layout(f).filter(|l| l.proto == TCP)?;
        let t = f.get(l.l4..).filter(|t| t.len() >= 20)?;
        let ip_len = if l.v6 {
            u16::from_be_bytes([f[18], f[19]]) as usize
        } else {
            (u16::from_be_bytes([f[16], f[17]]) as usize).checked_sub(l.l4 - 14)?
        };
        Some((t[13], ip_len.saturating_sub((t[12] >> 4) as usize * 4)))
    };
    input != out && matches!((tcp(input), tcp(out)), (Some((_, i)), Some((0x14, 0))) if i > 0)
}

/// Checks a segment whose connection the query program reset: the segment must be one the
/// policy owes a reset (a decided name, or not exactly one whole message), and it must have
/// become the server's RST built from scratch for it, sent on untouched (`verdict`
/// TC_ACT_UNSPEC) or, for a tracked connection, redirected to the upstream like any segment
/// (then its addresses, ports and checksum are the redirect's). The client's RST goes back as
/// a copy, which BPF_PROG_TEST_RUN does not show.
fn check_reset(
    policy: &Policy,
    lo: bool,
    in_place: bool,
    input: &[u8],
    out: &[u8],
    verdict: u32,
) -> Result<&'static str, String> {
    let l = layout(input).ok_or("a reset of a frame that is not IP")?;
    let t = input
        .get(l.l4..)
        .filter(|t| t.len() >= 20)
        .ok_or("a reset without a TCP header")?;
    let hlen = (t[12] >> 4) as usize * 4;
    let ip_len = if l.v6 {
        u16::from_be_bytes([input[18], input[19]]) as usize
    } else {
        (u16::from_be_bytes([input[16], input[17]]) as usize)
            .checked_sub(l.l4 - 14)
            .ok_or("a reset of a segment shorter than its IP header")?
    };
    if hlen < 20 || t.len() < hlen || ip_len <= hlen {
        return Err("a reset of a segment without data or whole header".into());
    }
    // One whole message the model owes nothing is not reset.
    let payload = ip_len - hlen;
    let whole = t.len() >= hlen + 2 && {
        let len = u16::from_be_bytes([t[hlen], t[hlen + 1]]) as usize;
        len >= 12 && payload == len + 2
    };
    if whole {
        let dns = &t[hlen + 2..];
        if answers::Question::read(dns).is_some() && policy.owed(dns, lo).is_none() {
            return Err("one whole message, allowed, reset".into());
        }
    }
    let mut expected = expected_server_reset(input);
    if !l.v6 && ipv4_header_ok(input) != Some(true) && expected.len() == out.len() {
        expected[24..26].copy_from_slice(&out[24..26]);
    }
    let o = layout(out).ok_or("a reset that is not IP")?;
    let untouched = input[l.dst.clone()] == out[o.dst.clone()];
    if untouched {
        if verdict != TC_ACT_UNSPEC {
            return Err(format!(
                "an untracked reset with verdict {}",
                verdict_name(verdict)
            ));
        }
        if expected != out {
            return Err(format!(
                "not the server's RST built from scratch:\n  expected: {expected:02x?}"
            ));
        }
    } else {
        let want = if in_place {
            TC_ACT_UNSPEC
        } else {
            TC_ACT_REDIRECT
        };
        if verdict != want {
            return Err(format!(
                "a redirected reset with verdict {}",
                verdict_name(verdict)
            ));
        }
        let (ot, et) = (&out[o.l4..], &expected[l.l4..]);
        if ot.len() != et.len() || ot[4..16] != et[4..16] || ot[18..] != et[18..] {
            return Err(format!(
                "not the server's RST (seq, ack, flags, window, options):\n  expected: {expected:02x?}"
            ));
        }
    }
    if l4_ok(out) != Some(true) {
        return Err("reset with an invalid L4 checksum".into());
    }
    if ipv4_header_ok(input) == Some(true) && ipv4_header_ok(out) != Some(true) {
        return Err("reset with an invalid IPv4 header checksum".into());
    }
    Ok("reset")
}

/// Checks a frame the query program answered (turned around, TC_ACT_REDIRECT) against
/// the answer or reset built from scratch for `input` with `policy`'s decision; Err says what
/// is wrong.
fn check_answer(
    policy: &Policy,
    lo: bool,
    input: &[u8],
    out: &[u8],
) -> Result<&'static str, String> {
    let l = layout(input).ok_or("an answer to a frame that is not IP")?;
    let mut expected = match l.proto {
        UDP => {
            let dns = input
                .get(l.l4 + 8..)
                .ok_or("an answer without a UDP header")?;
            let (rcode, records, count) = policy
                .owed(dns, lo)
                .ok_or("an answer the model does not owe")?;
            expected_answer(input, rcode, &records, count)
        }
        TCP => return Err("a TCP segment turned around (resets go on as the server's RST)".into()),
        p => return Err(format!("protocol {p} answered")),
    };
    // The IPv4 header checksum is updated, not recomputed: valid if it was.
    let kind = "answer";
    if !l.v6 && ipv4_header_ok(input) != Some(true) && expected.len() == out.len() {
        expected[24..26].copy_from_slice(&out[24..26]);
    }
    if expected != out {
        return Err(format!(
            "not the {kind} built from scratch:\n  expected: {expected:02x?}"
        ));
    }
    // Said once more in the terms of the promise, with the other checkers of this file.
    if l4_ok(out) != Some(true) {
        return Err(format!("{kind} with an invalid L4 checksum"));
    }
    if ipv4_header_ok(input) == Some(true) && ipv4_header_ok(out) != Some(true) {
        return Err(format!("{kind} with an invalid IPv4 header checksum"));
    }
    Ok(kind)
}

/// A UDP datagram too short for a DNS header and the first byte of a question: the one frame
/// an allowlist drops.
fn unreadable_udp(frame: &[u8]) -> bool {
    matches!(layout(frame), Some(l) if l.proto == UDP && frame.len() < l.l4 + 8 + 14)
}

/// What one fuzz run loads and sends.
struct Bench {
    name: &'static str,
    config: Config,
    /// The query program, then the reply program.
    sections: [&'static str; 2],
    seeds: Vec<Seed>,
    priming: Vec<Vec<u8>>,
    /// The nameservers path: a rewritten frame goes on (TC_ACT_UNSPEC) instead of being
    /// redirected.
    in_place: bool,
    /// Decisions in force (FLAG_DECIDE and the policy's flags added to the configuration).
    policy: Option<Policy>,
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn mutated_frames_keep_the_programs_promises() {
    fuzz(&Bench {
        name: "embedded resolver",
        config: test_config(UPSTREAM_PORT, 0),
        sections: [QUERY_SECTION, REPLY_SECTION],
        seeds: seeds(),
        priming: priming(),
        in_place: false,
        policy: None,
    });
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn mutated_frames_keep_the_any_resolver_programs_promises() {
    fuzz(&Bench {
        name: "--resolver any",
        config: any_resolver_config(),
        sections: [EGRESS_SECTION, REPLY_SECTION],
        seeds: any_seeds(),
        priming: any_priming(),
        in_place: true,
        policy: None,
    });
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn mutated_frames_keep_the_programs_promises_with_decisions() {
    fuzz(&Bench {
        name: "embedded resolver, decisions",
        config: test_config(UPSTREAM_PORT, 0),
        sections: [QUERY_SECTION, REPLY_SECTION],
        seeds: decide_seeds_lo(),
        priming: priming(),
        in_place: false,
        policy: Some(decide_policy()),
    });
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn mutated_frames_keep_the_any_resolver_programs_promises_with_decisions() {
    fuzz(&Bench {
        name: "--resolver any, decisions",
        config: any_resolver_config(),
        sections: [EGRESS_SECTION, REPLY_SECTION],
        seeds: decide_seeds_any(),
        priming: any_priming(),
        in_place: true,
        policy: Some(decide_policy()),
    });
}

fn fuzz(bench: &Bench) {
    let seed = env_u64("DNSREDIR_FUZZ_SEED", DEFAULT_SEED);
    let default = if bench.policy.is_some() {
        DEFAULT_DECIDE_ITERATIONS
    } else {
        DEFAULT_ITERATIONS
    };
    let iterations = env_u64("DNSREDIR_FUZZ_ITERATIONS", default);
    let bench_name = bench.name;
    println!(
        "fuzz_programs ({bench_name}): seed {seed:#018x} (DNSREDIR_FUZZ_SEED), {iterations} frames"
    );
    let started = Instant::now();
    let (object, loaded) = match &bench.policy {
        Some(policy) => policy.load(&Config {
            flags: bench.config.flags | FLAG_DECIDE | policy.flags,
            ..bench.config
        }),
        None => load_config(&bench.config),
    };
    let lo = !bench.in_place;
    let mut answered: BTreeMap<&str, u64> = BTreeMap::new();
    let programs = bench.sections.map(|s| (s, &loaded.program(s).expect(s).fd));
    let seeds = &bench.seeds;
    let priming = &bench.priming;
    let mut rng = Rng(seed);

    let mut verdicts: BTreeMap<(&str, String), u64> = BTreeMap::new();
    let mut by_mutation = [0u64; MUTATIONS.len()];
    let mut by_seed: BTreeMap<&str, u64> = BTreeMap::new();
    let (mut not_run, mut runs, mut primed) = (0u64, 0u64, 0u64);
    let mut failures = Vec::new();
    let mut broken = 0u64;

    for i in 0..iterations {
        let s = &seeds[rng.below(seeds.len())];
        let mut frame = s.frame.clone();
        let rounds = if rng.chance(25) { 2 + rng.below(2) } else { 1 };
        let mut applied = Vec::new();
        for _ in 0..rounds {
            let kind = rng.below(MUTATIONS.len());
            mutate(&mut rng, &mut frame, kind);
            by_mutation[kind] += 1;
            applied.push(MUTATIONS[kind]);
        }
        *by_seed.entry(s.name).or_default() += 1;
        if s.needs_flow {
            for p in priming {
                let out = sys::prog_test_run(programs[0].1, p, 1).expect("priming query runs");
                let taken = if bench.in_place {
                    out.retval == TC_ACT_UNSPEC && out.data != *p
                } else {
                    out.retval == TC_ACT_REDIRECT
                };
                assert!(taken, "the priming query is taken: {}", out.retval);
                primed += 1;
            }
        }
        for (section, fd) in programs {
            let out = match sys::prog_test_run(fd, &frame, 1) {
                Ok(out) => out,
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    not_run += 1;
                    continue;
                }
                Err(e) => panic!("BPF_PROG_TEST_RUN on {} bytes: {e}", frame.len()),
            };
            runs += 1;
            let rewritten = out.retval == TC_ACT_UNSPEC && out.data != frame;
            let verdict = match verdict_name(out.retval) {
                v if rewritten => format!("{v}, rewritten"),
                v => v,
            };
            *verdicts.entry((section, verdict)).or_default() += 1;
            let query_program = section == bench.sections[0];
            let decided = bench.policy.as_ref().filter(|_| query_program);
            let problem = match (out.retval, decided) {
                (v, Some(policy)) if made_rst(&frame, &out.data) => {
                    match check_reset(policy, lo, bench.in_place, &frame, &out.data, v) {
                        Ok(kind) => {
                            *answered.entry(kind).or_default() += 1;
                            None
                        }
                        Err(e) => Some(e),
                    }
                }
                (TC_ACT_REDIRECT, Some(policy)) if turned_around(&frame, &out.data) => {
                    match check_answer(policy, lo, &frame, &out.data) {
                        Ok(kind) => {
                            *answered.entry(kind).or_default() += 1;
                            None
                        }
                        Err(e) => Some(e),
                    }
                }
                (TC_ACT_SHOT, Some(policy))
                    if policy.flags & FLAG_ALLOWLIST != 0 && unreadable_udp(&frame) =>
                {
                    *answered.entry("dropped, unreadable").or_default() += 1;
                    None
                }
                (v, _) => match v {
                    TC_ACT_UNSPEC if !rewritten => None,
                    TC_ACT_UNSPEC if bench.in_place => {
                        check_redirect(section, &frame, &out.data).err()
                    }
                    TC_ACT_UNSPEC => Some("TC_ACT_UNSPEC but the frame changed".into()),
                    TC_ACT_REDIRECT if !bench.in_place => {
                        check_redirect(section, &frame, &out.data).err()
                    }
                    v => Some(format!("verdict {}", verdict_name(v))),
                },
            };
            if let Some(problem) = problem {
                broken += 1;
                if failures.len() < 10 {
                    failures.push(format!(
                        "frame {i} (seed {seed:#x}), {section}, from \"{}\" by {applied:?}: {problem}\n  in:  {frame:02x?}\n  out: {:02x?}",
                        s.name, out.data
                    ));
                }
            }
        }
    }

    let elapsed = started.elapsed();
    let c = counters(&object, &loaded);
    let flows = flow_count(&object, &loaded, FLOWS_MAP);
    let flows6 = flow_count(&object, &loaded, FLOWS6_MAP);
    println!("fuzz_programs ({bench_name}): {iterations} frames, {runs} program runs, {not_run} runs refused by BPF_PROG_TEST_RUN (EINVAL: shorter than its IP header), {primed} priming queries, in {:.1} s", elapsed.as_secs_f64());
    for ((section, verdict), n) in &verdicts {
        println!("  {section:>15} {verdict:<26} {n}");
    }
    for (name, n) in MUTATIONS.iter().zip(by_mutation) {
        println!("  mutation {name:<18} {n}");
    }
    for (name, n) in &by_seed {
        println!("  seed {name:<32} {n}");
    }
    println!(
        "  counters: udp redirected {}, tcp redirected {}, replies restored {}, edns clamped {}, failures {}; flows in the tables at the end {flows} + {flows6} (max {FLOW_TABLE_ENTRIES} each)",
        c.queries_redirected_udp, c.queries_redirected_tcp, c.replies_restored, c.edns_clamped, c.failures
    );
    if bench.policy.is_some() {
        println!(
            "  decisions: {answered:?}; counters: answered blocked {}, pinned {}, disallowed {}, tcp resets {}",
            c.answered_blocked, c.answered_pinned, c.answered_disallowed, c.tcp_reset
        );
        for kind in ["answer", "reset"] {
            assert!(
                answered.get(kind).copied().unwrap_or(0) > iterations / 100,
                "{bench_name}: the fuzz reaches the {kind}s: {answered:?}"
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{bench_name}: {broken} broken promises, first ones:\n{}",
        failures.join("\n")
    );
    assert_eq!(c.failures, 0, "{bench_name}: no rewrite failed half-way");
    assert!(flows <= FLOW_TABLE_ENTRIES && flows6 <= FLOW_TABLE_ENTRIES);
}
