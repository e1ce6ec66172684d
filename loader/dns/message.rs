//! Reading a DNS message (RFC 1035 §4.1) in place, as far as its bytes go: the watcher sees
//! the first bytes the programs captured, so a message cut short still shows its header and
//! question, and its answer records up to the cut.

use super::codes::{CLASS_IN, TYPE_A, TYPE_AAAA};
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
    /// Another type, not read; an A/AAAA record whose data is not 4/16 bytes long, or of a
    /// class other than IN (RDATA's meaning depends on the class).
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

    /// The address and TTL of every A and AAAA record of the answer section, in order, as far
    /// as [`answers`](Self::answers) reads (whatever their owner: a CNAME chain's target
    /// holds them).
    pub fn addresses(&self) -> impl Iterator<Item = (IpAddr, u32)> + 'a {
        self.answers()
            .filter_map(|r| r.address().map(|address| (address, r.ttl)))
    }
}

/// The record at `at`: (it, the offset after it).
fn read_record(msg: &[u8], at: usize) -> Option<(Record, usize)> {
    let (name, fixed) = Name::read(msg, at)?;
    let rtype = u16_at(msg, fixed)?;
    let class = u16_at(msg, fixed + 2)?;
    let ttl = u32_at(msg, fixed + 4)?;
    let rdlen = u16_at(msg, fixed + 8)? as usize;
    let rdata = fixed + 10;
    let bytes = msg.get(rdata..rdata + rdlen)?;
    let data = match (
        rtype,
        class,
        <[u8; 4]>::try_from(bytes),
        <[u8; 16]>::try_from(bytes),
    ) {
        (TYPE_A, CLASS_IN, Ok(v4), _) => Rdata::A(v4.into()),
        (TYPE_AAAA, CLASS_IN, _, Ok(v6)) => Rdata::Aaaa(v6.into()),
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
    use crate::dns::samples::{answer, name, query, CNAME_2A_AAAA};

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

    fn addresses(bytes: &[u8]) -> Vec<(String, u32)> {
        Message::parse(bytes)
            .map(|m| m.addresses().map(|(a, ttl)| (a.to_string(), ttl)).collect())
            .unwrap_or_default()
    }

    #[test]
    fn every_address_of_the_answer_with_its_ttl_through_a_cname() {
        assert_eq!(CNAME_2A_AAAA.len(), 122);
        let m = Message::parse(CNAME_2A_AAAA).unwrap();
        let target = m.answers().nth(1).expect("the first A").name;
        assert_eq!(target.to_string(), "web.example.com", "compressed twice");
        assert_eq!(
            addresses(CNAME_2A_AAAA),
            [
                ("192.0.2.10".to_string(), 60),
                ("192.0.2.11".to_string(), 60),
                ("2001:db8::10".to_string(), 120)
            ]
        );
        // A pinned answer as the programs build it: `c0 0c`, A, IN, TTL 10, 4 bytes.
        let mut pinned = query(7, &[b"api", b"stripe", b"com"], TYPE_A);
        pinned[2] = 0x81;
        pinned[3] = 0x80;
        pinned[7] = 2;
        for addr in [[10, 5, 5, 5], [10, 5, 5, 6]] {
            pinned.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 10, 0, 4]);
            pinned.extend_from_slice(&addr);
        }
        assert_eq!(
            addresses(&pinned),
            [("10.5.5.5".to_string(), 10), ("10.5.5.6".to_string(), 10)]
        );
    }

    #[test]
    fn a_truncated_answer_yields_the_records_that_fit() {
        let full = addresses(CNAME_2A_AAAA);
        for len in 0..=CNAME_2A_AAAA.len() {
            let got = addresses(&CNAME_2A_AAAA[..len]);
            let whole = match len {
                0..=66 => 0,
                67..=82 => 1,
                83..=110 => 2,
                _ => 3,
            };
            assert_eq!(got, full[..whole], "cut at {len}");
        }
    }

    #[test]
    fn records_that_lie_stop_the_reading_or_are_no_address() {
        let with = |at: usize, bytes: &[u8]| {
            let mut m = CNAME_2A_AAAA.to_vec();
            m[at..at + bytes.len()].copy_from_slice(bytes);
            addresses(&m)
        };
        let first = || vec![("192.0.2.10".to_string(), 60)];
        // The second A's owner points forwards, then at itself: the reading stops there.
        assert_eq!(with(67, &[0xc0, 83]), first());
        assert_eq!(with(67, &[0xc0, 67]), first());
        // Its RDLENGTH runs past the end: no record, nothing after it.
        assert_eq!(with(77, &[0xff, 0xff]), first());
        // A reserved label type as owner.
        assert_eq!(with(67, &[0x80, 0]), first());
        // An A of 5 bytes (RDLENGTH says so, the next record shifts): not an address.
        assert_eq!(with(77, &[0, 5]), first());
        // Class CHAOS: not an address; the records after it still are.
        assert_eq!(with(71, &[0, 3]).len(), 2);
        // More answers announced than there are: the ones there.
        assert_eq!(with(6, &[0xff, 0xff]).len(), 3);
        // Fewer announced: the OPT is not read as an answer, nor the records left out.
        assert_eq!(with(6, &[0, 2]), first());
    }

    #[test]
    fn garbage_never_panics() {
        // xorshift: the same garbage every run.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let len = (next() % 600) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Half of them start as a real answer, so the reading gets past the header.
            if next() % 2 == 0 {
                let keep = len.min(CNAME_2A_AAAA.len());
                let cut = (next() as usize) % (keep + 1);
                bytes[..cut].copy_from_slice(&CNAME_2A_AAAA[..cut]);
            }
            if let Some(m) = Message::parse(&bytes) {
                let _ = (m.question(), m.question_name());
                assert!(m.answers().count() <= usize::from(m.header.answer_count));
                let _ = m.addresses().count();
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
