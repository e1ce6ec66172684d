//! Reading a DNS message (RFC 1035 §4.1) in place, as far as its bytes go: the watcher sees
//! the first bytes the programs captured, so a message cut short still shows its header and
//! question, and its answer records up to the cut.

use super::codes::{TYPE_A, TYPE_AAAA};
use super::name::Name;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const HEADER_SIZE: usize = 12;
/// QR: set in responses.
pub const FLAG_RESPONSE: u16 = 0x8000;
/// RD: the client asks the server to resolve the name for it.
pub const FLAG_RECURSION_DESIRED: u16 = 0x0100;

/// The fixed 12-byte head of every message, as far as dnsredir reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub id: u16,
    /// QR, opcode, AA, TC, RD, RA, Z and the response code, as on the wire.
    pub flags: u16,
    pub question_count: u16,
    pub answer_count: u16,
}

impl Header {
    pub fn is_response(&self) -> bool {
        self.flags & FLAG_RESPONSE != 0
    }

    /// The 4-bit response code (without an EDNS extended rcode).
    pub fn rcode(&self) -> u8 {
        (self.flags & 0x0f) as u8
    }
}

/// What a query asks: a name and a record type, in class IN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub name: Name,
    pub qtype: u16,
}

/// A resource record of the answer section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its owner.
    pub name: Name,
    pub rtype: u16,
    /// Seconds it may be cached.
    pub ttl: u32,
    pub data: Rdata,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rdata {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    /// Another type, not read; or an A/AAAA record whose data is not 4/16 bytes long.
    Other,
}

impl Record {
    /// The address an A or AAAA record holds.
    pub fn address(&self) -> Option<IpAddr> {
        match self.data {
            Rdata::A(a) => Some(a.into()),
            Rdata::Aaaa(a) => Some(a.into()),
            Rdata::Other => None,
        }
    }
}

/// A message's bytes with its header read; the sections are read when asked for.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    bytes: &'a [u8],
    pub header: Header,
}

fn u16_at(msg: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(msg.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(msg: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(msg.get(at..at + 4)?.try_into().ok()?))
}

impl<'a> Message<'a> {
    /// `None` without a whole header.
    pub fn parse(bytes: &'a [u8]) -> Option<Message<'a>> {
        if bytes.len() < HEADER_SIZE {
            return None;
        }
        let header = Header {
            id: u16_at(bytes, 0)?,
            flags: u16_at(bytes, 2)?,
            question_count: u16_at(bytes, 4)?,
            answer_count: u16_at(bytes, 6)?,
        };
        Some(Message { bytes, header })
    }

    /// The first question's name and the offset after it.
    fn first_question_name(&self) -> Option<(Name, usize)> {
        if self.header.question_count == 0 {
            return None;
        }
        Name::read(self.bytes, HEADER_SIZE)
    }

    /// The first question's name: `None` without a question, or when the name is malformed or
    /// cut off.
    pub fn question_name(&self) -> Option<Name> {
        self.first_question_name().map(|(name, _)| name)
    }

    /// The first question, when its name and type are both within the bytes (a message cut
    /// right after the name has a [`question_name`](Self::question_name) only).
    pub fn question(&self) -> Option<Question> {
        let (name, at) = self.first_question_name()?;
        let qtype = u16_at(self.bytes, at)?;
        Some(Question { name, qtype })
    }

    /// Where the answer section begins: after every question's name, type and class.
    fn answers_start(&self) -> Option<usize> {
        let mut at = HEADER_SIZE;
        for _ in 0..self.header.question_count {
            let (_, after) = Name::read(self.bytes, at)?;
            at = after + 4;
        }
        Some(at)
    }

    /// The answer section's records, in order, up to the first one that is malformed or cut
    /// off.
    pub fn answers(&self) -> impl Iterator<Item = Record> + 'a {
        let msg = self.bytes;
        let mut at = self.answers_start();
        let mut left = self.header.answer_count;
        std::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            left -= 1;
            let record = read_record(msg, at?);
            at = record.as_ref().map(|&(_, next)| next);
            record.map(|(record, _)| record)
        })
    }
}

/// The record at `at`: (it, the offset after it).
fn read_record(msg: &[u8], at: usize) -> Option<(Record, usize)> {
    let (name, fixed) = Name::read(msg, at)?;
    let rtype = u16_at(msg, fixed)?;
    let ttl = u32_at(msg, fixed + 4)?;
    let rdlen = u16_at(msg, fixed + 8)? as usize;
    let rdata = fixed + 10;
    let bytes = msg.get(rdata..rdata + rdlen)?;
    let data = match (
        rtype,
        <[u8; 4]>::try_from(bytes),
        <[u8; 16]>::try_from(bytes),
    ) {
        (TYPE_A, Ok(v4), _) => Rdata::A(v4.into()),
        (TYPE_AAAA, _, Ok(v6)) => Rdata::Aaaa(v6.into()),
        _ => Rdata::Other,
    };
    let record = Record {
        name,
        rtype,
        ttl,
        data,
    };
    Some((record, rdata + rdlen))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::samples::{answer, name, query};

    #[test]
    fn header_question_and_answers_are_read() {
        let q = query(0x1234, &[b"www", b"example", b"com"], TYPE_A);
        let m = Message::parse(&q).expect("a header");
        assert_eq!(
            m.header,
            Header {
                id: 0x1234,
                flags: FLAG_RECURSION_DESIRED,
                question_count: 1,
                answer_count: 0
            }
        );
        assert!(!m.header.is_response());
        let www = name(&[b"www", b"example", b"com"]);
        assert_eq!(
            m.question(),
            Some(Question {
                name: www.clone(),
                qtype: TYPE_A
            })
        );
        assert_eq!(m.answers().count(), 0);

        let v4: IpAddr = "203.0.113.7".parse().unwrap();
        let a = answer(&q, 0, Some(v4));
        let m = Message::parse(&a).unwrap();
        assert!(m.header.is_response());
        assert_eq!((m.header.rcode(), m.header.answer_count), (0, 2));
        let records: Vec<Record> = m.answers().collect();
        assert_eq!(
            records,
            [
                Record {
                    name: www.clone(),
                    rtype: 5,
                    ttl: 60,
                    data: Rdata::Other
                },
                Record {
                    name: www,
                    rtype: TYPE_A,
                    ttl: 60,
                    data: Rdata::A("203.0.113.7".parse().unwrap())
                }
            ]
        );
        assert_eq!(records[1].address(), Some(v4));

        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let a = answer(&q, 0, Some(v6));
        let m = Message::parse(&a).unwrap();
        assert_eq!(m.answers().find_map(|r| r.address()), Some(v6));
        let nx = answer(&q, 3, None);
        let m = Message::parse(&nx).unwrap();
        assert_eq!((m.header.rcode(), m.answers().count()), (3, 1));
    }

    #[test]
    fn a_message_cut_short_is_read_up_to_the_cut() {
        let q = query(0x1234, &[b"www", b"example", b"com"], TYPE_A);
        let full = answer(&q, 0, Some("203.0.113.7".parse().unwrap()));
        let cut = Message::parse(&full[..full.len() - 2]).unwrap();
        assert_eq!(
            cut.question().map(|q| q.name.to_string()),
            Some("www.example.com".into())
        );
        assert_eq!(cut.answers().count(), 1, "the CNAME is whole, the A is not");
        // Cut right after the name: the name without its type.
        let after_name = Message::parse(&q[..q.len() - 4]).unwrap();
        assert_eq!(after_name.question(), None);
        assert_eq!(
            after_name.question_name().map(|n| n.to_string()),
            Some("www.example.com".into())
        );
        assert!(Message::parse(&q[..11]).is_none());
        for len in 0..full.len() {
            if let Some(m) = Message::parse(&full[..len]) {
                let _ = (m.question(), m.question_name(), m.answers().count());
            }
        }
    }

    #[test]
    fn a_bad_question_name_hides_the_question_and_the_answers() {
        let mut looped = query(1, &[], TYPE_A);
        looped[12] = 0xc0;
        looped.insert(13, 12);
        let m = Message::parse(&looped).unwrap();
        assert_eq!(m.question_name(), None, "a pointer to itself");
        let label: &[u8] = &[b'a'; 63];
        let long = answer(&query(1, &[label; 4], TYPE_A), 0, None);
        let m = Message::parse(&long).unwrap();
        assert_eq!(m.question_name(), None, "257 bytes of name");
        assert_eq!(m.answers().count(), 0);
        let mut none = query(1, &[b"x"], TYPE_A);
        none[5] = 0;
        assert_eq!(Message::parse(&none).unwrap().question_name(), None);
    }
}
