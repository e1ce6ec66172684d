//! The packets the cases run on: the tests' configuration (tests/support/packet.rs) with the
//! upstream on port 53, one packet per DNS id.

use crate::packet::{
    dns_answer, dns_query, dns_query_edns, Packet, CLIENT, CLIENT_PORT, CONTAINER, DOCKERD_UDP,
    RESOLVER, UPSTREAM,
};

/// The upstream's port in the benchmark's configurations (tests/support/packet.rs has its
/// own, 5353).
pub const UPSTREAM_PORT: u16 = 53;

/// Distinct DNS ids cycled through, so the flow table sees different keys.
pub const IDS: u16 = 1024;

/// The name of every case's query but the answered ones' (bench/prog/answers.rs).
pub const QUERY_NAME: &str = "www.example.com";

pub fn query_packet(id: u16) -> Vec<u8> {
    named_query_packet(id, QUERY_NAME)
}

/// A query for `name` from the client to dockerd's port on the resolver address (lo).
pub fn named_query_packet(id: u16, name: &str) -> Vec<u8> {
    Packet::udp(
        (CLIENT, CLIENT_PORT),
        (RESOLVER, DOCKERD_UDP),
        dns_query(id, name),
    )
    .bytes()
}

pub fn edns_query_packet(id: u16) -> Vec<u8> {
    Packet::udp(
        (CLIENT, CLIENT_PORT),
        (RESOLVER, DOCKERD_UDP),
        dns_query_edns(id, "www.example.com", 4096),
    )
    .bytes()
}

pub fn reply_packet(id: u16) -> Vec<u8> {
    Packet::udp(
        (UPSTREAM, UPSTREAM_PORT),
        (CONTAINER, CLIENT_PORT),
        dns_answer(id, "www.example.com"),
    )
    .bytes()
}

pub fn arp_packet() -> Vec<u8> {
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&[0x02, 0, 0, 0, 0, 0xbb, 0x08, 0x06]);
    arp.resize(14 + 28, 1);
    arp
}

pub fn https_packet(to_upstream: bool) -> Vec<u8> {
    let (src, dst) = if to_upstream {
        (CLIENT, RESOLVER)
    } else {
        (UPSTREAM, CONTAINER)
    };
    let (sport, dport) = if to_upstream {
        (CLIENT_PORT, 443)
    } else {
        (443, CLIENT_PORT)
    };
    Packet::tcp((src, sport), (dst, dport), vec![0x17; 100]).bytes()
}

/// An answer on lo as the query program sees it: one the reply program restored.
pub fn lo_answer_packet(id: u16) -> Vec<u8> {
    Packet::udp(
        (RESOLVER, DOCKERD_UDP),
        (CLIENT, CLIENT_PORT),
        dns_answer(id, "www.example.com"),
    )
    .bytes()
}
