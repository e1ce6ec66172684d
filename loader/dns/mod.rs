//! The DNS wire format as the loader needs it: names ([`name`]), reading a message
//! ([`message`]), building a query ([`query`]), and the numbers that name types and response
//! codes ([`codes`]). No sockets here.

pub mod codes;
pub mod message;
pub mod name;
pub mod query;

pub use codes::{rcode_name, type_name, CLASS_IN, TYPE_A, TYPE_AAAA, TYPE_NS};
pub use message::{Header, Message, Question, Rdata, Record};
pub use name::Name;

/// Messages for the tests of this module and of its users.
#[cfg(test)]
pub(crate) mod samples {
    use super::{query, Name, Question};
    use std::net::IpAddr;

    /// A resolver's answer to `www.example.com A` (id 0xbeef), byte for byte: a CNAME to
    /// `web.example.com` (its rdata `web` + a pointer to `example.com` in the question), two A
    /// and one AAAA record owned by that target (pointers to the CNAME's rdata), then an OPT.
    pub const CNAME_2A_AAAA: &[u8] = &[
        0xbe, 0xef, 0x81, 0x80, 0, 1, 0, 4, 0, 0, 0, 1, // header: QR RD RA; 1 q, 4 an, 1 ar
        3, b'w', b'w', b'w', 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 3, b'c', b'o', b'm', 0,
        0, 1, 0, 1, // A IN
        // 33: CNAME, TTL 300, rdata at 45: "web" + pointer to 16 ("example.com")
        0xc0, 12, 0, 5, 0, 1, 0, 0, 1, 0x2c, 0, 6, 3, b'w', b'e', b'b', 0xc0, 16,
        // 51: A 192.0.2.10 TTL 60, owner a pointer to 45
        0xc0, 45, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 10,
        // 67: A 192.0.2.11 TTL 60
        0xc0, 45, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 11,
        // 83: AAAA 2001:db8::10 TTL 120
        0xc0, 45, 0, 28, 0, 1, 0, 0, 0, 120, 0, 16, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0x10, // 111: OPT, payload 1232
        0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0,
    ];

    /// A name's wire form from its labels (any bytes, any length: not checked).
    fn wire(labels: &[&[u8]]) -> Vec<u8> {
        let mut wire = Vec::new();
        for l in labels {
            wire.push(l.len() as u8);
            wire.extend_from_slice(l);
        }
        wire.push(0);
        wire
    }

    pub fn name(labels: &[&[u8]]) -> Name {
        Name::read(&wire(labels), 0)
            .expect("a name of at most 255 bytes")
            .0
    }

    /// A query for a name given as labels, which may make a name no reader accepts.
    pub fn query(id: u16, labels: &[&[u8]], qtype: u16) -> Vec<u8> {
        let mut m = query::build(
            id,
            &Question {
                name: Name::root(),
                qtype,
            },
        );
        m.splice(12..13, wire(labels));
        m
    }

    /// The query turned into an answer: a CNAME first (compressed owner), then an A or AAAA.
    pub fn answer(query: &[u8], rcode: u8, addr: Option<IpAddr>) -> Vec<u8> {
        let mut m = query.to_vec();
        m[2] = 0x81;
        m[3] = 0x80 | rcode;
        let mut count = 0u16;
        // CNAME: owner = pointer to the question name, rdata "x" + pointer.
        m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 4, 1, b'x', 0xc0, 12]);
        count += 1;
        match addr {
            Some(IpAddr::V4(a)) => {
                m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
                m.extend_from_slice(&a.octets());
                count += 1;
            }
            Some(IpAddr::V6(a)) => {
                m.extend_from_slice(&[0xc0, 12, 0, 28, 0, 1, 0, 0, 0, 60, 0, 16]);
                m.extend_from_slice(&a.octets());
                count += 1;
            }
            None => {}
        }
        m[6..8].copy_from_slice(&count.to_be_bytes());
        m
    }
}
