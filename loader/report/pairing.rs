//! `--watch`'s records: the programs' events paired into one record per query.
//!
//! A query event waits for the answer event with the same protocol, client port and DNS id;
//! the pair becomes an answered record, a query alone for [`UNANSWERED_AFTER_NS`] an
//! unanswered one. A TCP query the program reset ([`ROUTE_RESET`]) has no answer event: it
//! becomes a record at once, neither answered nor waiting. Answers to queries sent before the
//! watch began are not shown.

use crate::abi::{EventHeader, EVENT_QUERY, EVENT_REPLY, ROUTE_RESET};
use crate::dns::Message;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddrV4};
use std::time::{Duration, SystemTime};

/// How long a query waits for its answer before it is shown as unanswered.
pub const UNANSWERED_AFTER_NS: u64 = 5_000_000_000;
const IPPROTO_TCP: u8 = 6;

/// A message's id and question as the watch shows them: what a query and its answer share.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Asked {
    /// `None` only for a reset whose segment did not hold a whole DNS header.
    pub id: Option<u16>,
    /// As text (see [`crate::dns::Name`]'s `Display`); `None` when it is malformed or cut off.
    pub name: Option<String>,
    pub qtype: Option<u16>,
}

/// An A or AAAA record of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Address {
    pub address: IpAddr,
    /// Seconds, as the record says.
    pub ttl: u32,
}

/// What an answer tells of itself (a query's is all zeros).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reply {
    pub rcode: u8,
    /// The answer count of the header (CNAMEs and other records included).
    pub answers: u16,
    /// Every A and AAAA record of the answer section, in order, as far as the captured bytes
    /// reach (the programs capture the first 512 bytes of a message).
    pub addresses: Vec<Address>,
}

impl Reply {
    /// The first A or AAAA record's address.
    pub fn first_address(&self) -> Option<IpAddr> {
        self.addresses.first().map(|a| a.address)
    }
}

/// What the watch shows of a captured message; `None` without a whole header.
fn read(data: &[u8]) -> Option<(Asked, Reply)> {
    let m = Message::parse(data)?;
    let (name, qtype) = match m.question() {
        Some(q) => (Some(q.name.to_string()), Some(q.qtype)),
        None => (m.question_name().map(|n| n.to_string()), None),
    };
    let asked = Asked {
        id: Some(m.header.id),
        name,
        qtype,
    };
    // A message without a question says nothing we can pair with what was asked: its
    // records are not shown.
    let addresses = match m.header.question_count {
        0 => Vec::new(),
        _ => m
            .addresses()
            .map(|(address, ttl)| Address { address, ttl })
            .collect(),
    };
    let reply = Reply {
        rcode: m.header.rcode(),
        answers: m.header.answer_count,
        addresses,
    };
    Some((asked, reply))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub reply: Reply,
    /// From the query's event to the answer's, in ns (an answer from the kernel takes a few
    /// µs).
    pub latency_ns: u64,
}

impl Answer {
    /// Whole µs, rounded down (the JSON field).
    pub fn latency_us(&self) -> u64 {
        self.latency_ns / 1000
    }
}

/// One query as the watch shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Wall-clock time the query was seen.
    pub time: SystemTime,
    pub client: SocketAddrV4,
    pub tcp: bool,
    pub question: Asked,
    pub path: u8,
    /// `None`: no answer within [`UNANSWERED_AFTER_NS`]; or, with path [`ROUTE_RESET`], none
    /// to wait for (the program reset the connection).
    pub answer: Option<Answer>,
    /// The rule that decided the query (`keep SUFFIX`, `block SUFFIX`, …); `None` without
    /// rules, or when none applied. Set by the watcher.
    pub rule: Option<String>,
}

impl Record {
    /// The program reset the connection instead of letting the query on.
    pub fn reset(&self) -> bool {
        self.path == ROUTE_RESET
    }
}

/// Converts the programs' CLOCK_MONOTONIC stamps to wall-clock time.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub monotonic_ns: u64,
    pub wall: SystemTime,
}

impl Clock {
    pub fn wall_of(&self, monotonic_ns: u64) -> SystemTime {
        let back = self.monotonic_ns.saturating_sub(monotonic_ns);
        self.wall - Duration::from_nanos(back)
    }
}

struct Pending {
    head: EventHeader,
    asked: Asked,
}

/// Pairs query and answer events.
#[derive(Default)]
pub struct Tracker {
    pending: HashMap<(u8, u16, u16), Pending>,
}

impl Tracker {
    /// Takes one event (header and captured message); returns the record it completes.
    pub fn event(&mut self, head: &EventHeader, data: &[u8], clock: &Clock) -> Option<Record> {
        if head.kind == EVENT_QUERY && head.path == ROUTE_RESET {
            // Nothing will answer it: shown now, even when the segment held no whole header
            // (a message split across segments is one reason for a reset).
            let asked = read(data).map(|(asked, _)| asked).unwrap_or_default();
            let q = Pending { head: *head, asked };
            return Some(record(q, None, clock));
        }
        let (asked, reply) = read(data)?;
        let key = (head.proto, head.client_port, asked.id.unwrap_or_default());
        match head.kind {
            EVENT_QUERY => {
                // A retransmission keeps the first one's time.
                self.pending
                    .entry(key)
                    .or_insert(Pending { head: *head, asked });
                None
            }
            EVENT_REPLY => {
                let q = self.pending.remove(&key)?;
                let answer = Answer {
                    reply,
                    latency_ns: head.time_ns.saturating_sub(q.head.time_ns),
                };
                Some(record(q, Some(answer), clock))
            }
            _ => None,
        }
    }

    /// Queries without an answer for [`UNANSWERED_AFTER_NS`] at `clock`, oldest first.
    pub fn expire(&mut self, clock: &Clock) -> Vec<Record> {
        let now = clock.monotonic_ns;
        let old: Vec<_> = self
            .pending
            .iter()
            .filter(|(_, p)| now.saturating_sub(p.head.time_ns) >= UNANSWERED_AFTER_NS)
            .map(|(k, _)| *k)
            .collect();
        let mut out: Vec<Record> = old
            .into_iter()
            .filter_map(|k| self.pending.remove(&k))
            .map(|p| record(p, None, clock))
            .collect();
        out.sort_by_key(|r| r.time);
        out
    }
}

fn record(q: Pending, answer: Option<Answer>, clock: &Clock) -> Record {
    Record {
        time: clock.wall_of(q.head.time_ns),
        client: q.head.client(),
        tcp: q.head.proto == IPPROTO_TCP,
        question: q.asked,
        path: q.head.path,
        answer,
        rule: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::raw::{addr_raw, port_raw};
    use crate::abi::{ROUTE_BLOCKED, ROUTE_DOCKERD, ROUTE_NONE, ROUTE_UPSTREAM};
    use crate::dns::samples::{answer, query};
    use crate::dns::TYPE_A;
    use std::net::Ipv4Addr;
    use std::time::UNIX_EPOCH;

    fn head(kind: u8, path: u8, port: u16, time_ns: u64) -> EventHeader {
        EventHeader {
            time_ns,
            client_addr: addr_raw(Ipv4Addr::new(127, 0, 0, 1)),
            client_port: port_raw(port),
            kind,
            path,
            proto: 17,
            ..Default::default()
        }
    }

    fn clock(monotonic_ns: u64) -> Clock {
        Clock {
            monotonic_ns,
            wall: UNIX_EPOCH + Duration::from_secs(1_796_109_062),
        }
    }

    #[test]
    fn a_query_and_its_answer_make_one_record() {
        let mut t = Tracker::default();
        let q = query(4660, &[b"example", b"com"], TYPE_A);
        let a = answer(&q, 0, Some("203.0.113.7".parse().unwrap()));
        let c = clock(10_000_000_000);
        let asked = head(EVENT_QUERY, ROUTE_UPSTREAM, 50123, c.monotonic_ns - 2_000);
        assert_eq!(t.event(&asked, &q, &c), None);
        // Another port or id is another query.
        let other = answer(&query(4661, &[b"x"], TYPE_A), 0, None);
        assert_eq!(
            t.event(&head(EVENT_REPLY, ROUTE_NONE, 50123, 1), &other, &c),
            None
        );
        assert_eq!(
            t.event(&head(EVENT_REPLY, ROUTE_NONE, 50124, 1), &a, &c),
            None
        );
        let answered = head(EVENT_REPLY, ROUTE_NONE, 50123, c.monotonic_ns + 812_400);
        let r = t.event(&answered, &a, &c).expect("a record");
        assert_eq!(
            r,
            Record {
                time: c.wall - Duration::from_nanos(2_000),
                client: "127.0.0.1:50123".parse().unwrap(),
                tcp: false,
                question: Asked {
                    id: Some(4660),
                    name: Some("example.com".into()),
                    qtype: Some(TYPE_A)
                },
                path: ROUTE_UPSTREAM,
                answer: Some(Answer {
                    reply: Reply {
                        rcode: 0,
                        answers: 2,
                        addresses: vec![Address {
                            address: "203.0.113.7".parse().unwrap(),
                            ttl: 60
                        }]
                    },
                    latency_ns: 814_400
                }),
                rule: None
            }
        );
        assert!(
            t.expire(&clock(u64::MAX)).is_empty(),
            "answered: nothing pending"
        );
    }

    #[test]
    fn a_query_without_an_answer_expires_once() {
        let mut t = Tracker::default();
        let q = query(9, &[b"c2"], TYPE_A);
        let seen = head(EVENT_QUERY, ROUTE_DOCKERD, 40000, 1_000);
        t.event(&seen, &q, &clock(1_000));
        assert!(t.expire(&clock(1_000 + UNANSWERED_AFTER_NS - 1)).is_empty());
        let c = clock(1_000 + UNANSWERED_AFTER_NS);
        let gone = t.expire(&c);
        assert_eq!(gone.len(), 1);
        assert_eq!(
            (
                gone[0].question.name.as_deref(),
                gone[0].path,
                &gone[0].answer
            ),
            (Some("c2"), ROUTE_DOCKERD, &None)
        );
        assert!(t.expire(&c).is_empty(), "shown once");
        // Its late answer shows nothing.
        let a = answer(&q, 0, None);
        assert_eq!(
            t.event(&head(EVENT_REPLY, ROUTE_NONE, 40000, 2), &a, &c),
            None
        );
    }

    #[test]
    fn an_answer_from_the_kernel_pairs_like_any_with_its_latency_in_ns() {
        let mut t = Tracker::default();
        let q = query(77, &[b"ads", b"example"], TYPE_A);
        let mut nx = q.clone();
        nx[2] = 0x81;
        nx[3] = 0x83;
        let c = clock(10_000_000_000);
        let asked = head(EVENT_QUERY, ROUTE_BLOCKED, 41000, c.monotonic_ns);
        assert_eq!(t.event(&asked, &q, &c), None);
        let back = head(EVENT_REPLY, ROUTE_NONE, 41000, c.monotonic_ns + 3_400);
        let r = t.event(&back, &nx, &c).expect("a record");
        assert_eq!(r.path, ROUTE_BLOCKED);
        let a = r.answer.expect("answered");
        assert_eq!(
            (a.reply.rcode, a.reply.answers, a.latency_ns),
            (3, 0, 3_400)
        );
        assert_eq!(a.latency_us(), 3);
        assert!(a.reply.addresses.is_empty());
    }

    #[test]
    fn a_reset_is_shown_at_once_and_never_as_unanswered() {
        let mut t = Tracker::default();
        let c = clock(10_000_000_000);
        let q = query(5, &[b"ads", b"example"], TYPE_A);
        let mut reset = head(EVENT_QUERY, ROUTE_RESET, 42000, c.monotonic_ns - 1_000);
        reset.proto = IPPROTO_TCP;
        let r = t.event(&reset, &q, &c).expect("shown at once");
        assert_eq!(
            (r.path, r.tcp, r.reset(), &r.answer),
            (ROUTE_RESET, true, true, &None)
        );
        assert_eq!(r.question.name.as_deref(), Some("ads.example"));
        assert_eq!(r.question.id, Some(5));
        assert!(t.expire(&clock(u64::MAX)).is_empty(), "nothing waits");
        // A segment without a whole header (the message split): shown all the same.
        let r = t.event(&reset, &q[..5], &c).expect("shown");
        assert_eq!(r.question, Asked::default());
        assert!(t.expire(&clock(u64::MAX)).is_empty());
    }

    #[test]
    fn what_a_record_shows_of_odd_messages() {
        let (asked, reply) = read(&query(1, &[b"a.b", b"c d\xff"], 28)).expect("a header");
        assert_eq!(asked.name.as_deref(), Some("a\\046b.c\\032d\\255"));
        assert_eq!(reply.first_address(), None);
        let full = answer(
            &query(2, &[b"www", b"example", b"com"], TYPE_A),
            0,
            Some("203.0.113.7".parse().unwrap()),
        );
        let (asked, reply) = read(&full[..full.len() - 2]).unwrap();
        assert_eq!(
            (asked.name.as_deref(), reply.first_address()),
            (Some("www.example.com"), None),
            "cut inside the answer: the question still shows"
        );
        let (asked, _) = read(&full[..29]).unwrap();
        assert_eq!(
            (asked.name.as_deref(), asked.qtype),
            (Some("www.example.com"), None)
        );
        let mut no_question = full.clone();
        no_question[5] = 0;
        let (asked, reply) = read(&no_question).unwrap();
        assert_eq!(
            (asked.name, reply.answers, reply.addresses),
            (None, 2, vec![])
        );
        assert_eq!(read(&full[..11]), None);
    }
}
