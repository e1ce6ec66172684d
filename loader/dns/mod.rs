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
