//! `--watch`: the programs' events paired into one record per query, shown as a line for
//! people or as one JSON object per line (the record format for record/replay users).
//!
//! A query event waits for the answer event with the same protocol, client port and DNS id;
//! the pair becomes an answered record, a query alone for [`UNANSWERED_AFTER_NS`] an
//! unanswered one. Answers to queries sent before the watch began are not shown.
//!
//! JSON fields (stable; `null` where a value does not apply):
//! `time` (RFC 3339 UTC, µs, when the query was seen), `client` (address), `port`,
//! `proto` (`udp`/`tcp`), `id`, `name` (dotted, no final dot; `.` for the root; bytes outside
//! letters, digits, `-` and `_` as `\DDD`; `null` if malformed), `type` (mnemonic or `TYPEn`),
//! `qtype` (number), `path` (`upstream`, `dockerd`, `nameserver`, `kept`), `answered` (bool), `rcode`
//! (mnemonic or `RCODEn`), `answers` (answer count), `first_answer` (the first A or AAAA
//! record's address), `latency_us`, `rule` (the name rule that decided: `keep SUFFIX`, `only
//! SUFFIX`, `outside --only`).

use crate::abi::{
    EventHeader, EVENT_QUERY, EVENT_REPLY, ROUTE_DOCKERD, ROUTE_NAMESERVER, ROUTE_NAMESERVER_KEPT,
    ROUTE_UPSTREAM,
};
use crate::report::json_string;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a query waits for its answer before it is shown as unanswered.
pub const UNANSWERED_AFTER_NS: u64 = 5_000_000_000;
const IPPROTO_TCP: u8 = 6;

// ---------------------------------------------------------------- DNS messages

/// What the watch shows of a DNS message, from its first bytes (possibly cut short).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub question: Question,
    pub reply: Reply,
}

/// A message's id and question: what a query and its answer share.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Question {
    pub id: u16,
    /// `None` when it is malformed or cut off.
    pub name: Option<String>,
    pub qtype: Option<u16>,
}

/// What an answer tells of itself (a query's is all zeros).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub rcode: u8,
    pub answers: u16,
    /// The first A or AAAA record of the answer section, if the captured bytes reach it.
    pub first_address: Option<IpAddr>,
}

/// Reads a name at `at`: (its text, the offset after it). Follows compression pointers
/// (backwards only, so it ends), at most 255 bytes of name.
fn read_name(msg: &[u8], mut at: usize) -> Option<(String, usize)> {
    let mut text = String::new();
    let mut after = None;
    let mut wire = 0usize;
    loop {
        let len = *msg.get(at)? as usize;
        match len & 0xc0 {
            0x00 if len == 0 => {
                if text.is_empty() {
                    text.push('.');
                }
                return Some((text, after.unwrap_or(at + 1)));
            }
            0x00 => {
                let label = msg.get(at + 1..at + 1 + len)?;
                wire += len + 1;
                if wire >= 255 {
                    return None;
                }
                if !text.is_empty() {
                    text.push('.');
                }
                for &b in label {
                    if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                        text.push(b as char);
                    } else {
                        text.push_str(&format!("\\{b:03}"));
                    }
                }
                at += 1 + len;
            }
            0xc0 => {
                let target = ((len & 0x3f) << 8) | *msg.get(at + 1)? as usize;
                if target >= at {
                    return None;
                }
                after.get_or_insert(at + 2);
                at = target;
            }
            _ => return None,
        }
    }
}

fn u16_at(msg: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(msg.get(at..at + 2)?.try_into().ok()?))
}

/// Parses as much as the captured bytes hold; `None` without a whole 12-byte header.
pub fn parse_message(msg: &[u8]) -> Option<Message> {
    if msg.len() < 12 {
        return None;
    }
    let id = u16_at(msg, 0)?;
    let flags = u16_at(msg, 2)?;
    let qdcount = u16_at(msg, 4)?;
    let answers = u16_at(msg, 6)?;
    let mut m = Message {
        question: Question {
            id,
            ..Default::default()
        },
        reply: Reply {
            rcode: (flags & 0x0f) as u8,
            answers,
            first_address: None,
        },
    };
    if qdcount == 0 {
        return Some(m);
    }
    let Some((name, mut at)) = read_name(msg, 12) else {
        return Some(m);
    };
    m.question.name = Some(name);
    m.question.qtype = u16_at(msg, at);
    at += 4;
    for _ in 1..qdcount {
        let Some((_, next)) = read_name(msg, at) else {
            return Some(m);
        };
        at = next + 4;
    }
    for _ in 0..answers {
        let Some((_, next)) = read_name(msg, at) else {
            break;
        };
        let (Some(rtype), Some(rdlen)) = (u16_at(msg, next), u16_at(msg, next + 8)) else {
            break;
        };
        let rdata = next + 10;
        let Some(data) = msg.get(rdata..rdata + rdlen as usize) else {
            break;
        };
        m.reply.first_address = match (rtype, data.len()) {
            (1, 4) => Some(IpAddr::V4(Ipv4Addr::new(
                data[0], data[1], data[2], data[3],
            ))),
            (28, 16) => Some(IpAddr::V6(Ipv6Addr::from(
                <[u8; 16]>::try_from(data).expect("16 bytes"),
            ))),
            _ => None,
        };
        if m.reply.first_address.is_some() {
            break;
        }
        at = rdata + rdlen as usize;
    }
    Some(m)
}

pub fn type_name(qtype: u16) -> String {
    let known = match qtype {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        41 => "OPT",
        64 => "SVCB",
        65 => "HTTPS",
        255 => "ANY",
        257 => "CAA",
        _ => return format!("TYPE{qtype}"),
    };
    known.to_string()
}

pub fn rcode_name(rcode: u8) -> String {
    let known = match rcode {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        _ => return format!("RCODE{rcode}"),
    };
    known.to_string()
}

pub fn route_name(route: u8) -> &'static str {
    match route {
        ROUTE_UPSTREAM => "upstream",
        ROUTE_DOCKERD => "dockerd",
        ROUTE_NAMESERVER => "nameserver",
        ROUTE_NAMESERVER_KEPT => "kept",
        _ => "unknown",
    }
}

// ---------------------------------------------------------------- records

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub reply: Reply,
    pub latency_us: u64,
}

/// One query as the watch shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Wall-clock time the query was seen.
    pub time: SystemTime,
    pub client: SocketAddrV4,
    pub tcp: bool,
    pub question: Question,
    pub path: u8,
    /// `None`: no answer within [`UNANSWERED_AFTER_NS`].
    pub answer: Option<Answer>,
    /// The name rule that decided where a UDP query went (`keep SUFFIX`, `only SUFFIX`,
    /// `outside --only`); `None` without rules, or when none applied.
    pub rule: Option<String>,
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
    message: Message,
}

/// Pairs query and answer events.
#[derive(Default)]
pub struct Tracker {
    pending: HashMap<(u8, u16, u16), Pending>,
}

impl Tracker {
    /// Takes one event (header and captured message); returns the record it completes.
    pub fn event(&mut self, head: &EventHeader, data: &[u8], clock: &Clock) -> Option<Record> {
        let message = parse_message(data)?;
        let key = (head.proto, head.client_port, message.question.id);
        match head.kind {
            EVENT_QUERY => {
                // A retransmission keeps the first one's time.
                self.pending.entry(key).or_insert(Pending {
                    head: *head,
                    message,
                });
                None
            }
            EVENT_REPLY => {
                let q = self.pending.remove(&key)?;
                let answer = Answer {
                    reply: message.reply,
                    latency_us: head.time_ns.saturating_sub(q.head.time_ns) / 1000,
                };
                Some(record(&q, Some(answer), clock))
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
            .map(|p| record(&p, None, clock))
            .collect();
        out.sort_by_key(|r| r.time);
        out
    }
}

fn record(q: &Pending, answer: Option<Answer>, clock: &Clock) -> Record {
    Record {
        time: clock.wall_of(q.head.time_ns),
        client: q.head.client(),
        tcp: q.head.proto == IPPROTO_TCP,
        question: q.message.question.clone(),
        path: q.head.path,
        answer,
        rule: None,
    }
}

// ---------------------------------------------------------------- rendering

/// A moment as a UTC calendar date and time of day.
#[derive(Debug, PartialEq, Eq)]
struct Utc {
    date: (i64, u32, u32),
    hour: u32,
    minute: u32,
    second: u32,
    micros: u32,
}

fn utc(time: SystemTime) -> Utc {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400) as u32);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    Utc {
        date: (y, m, d),
        hour: rem / 3600,
        minute: rem / 60 % 60,
        second: rem % 60,
        micros: since.subsec_micros(),
    }
}

fn name_text(r: &Record) -> String {
    r.question
        .name
        .clone()
        .unwrap_or_else(|| "(malformed)".to_string())
}

fn type_text(r: &Record) -> String {
    r.question.qtype.map_or("?".to_string(), type_name)
}

/// `07:31:02.118  127.0.0.1:50123  udp  id=4660  example.com  A  upstream  NOERROR  answers=1  203.0.113.7  812µs`
pub fn render_line(r: &Record) -> String {
    let t = utc(r.time);
    let head = format!(
        "{:02}:{:02}:{:02}.{:03}  {}  {}  id={}  {}  {}  {}",
        t.hour,
        t.minute,
        t.second,
        t.micros / 1000,
        r.client,
        if r.tcp { "tcp" } else { "udp" },
        r.question.id,
        name_text(r),
        type_text(r),
        route_name(r.path)
    );
    let line = match &r.answer {
        Some(a) => format!(
            "{head}  {}  answers={}  {}  {}µs",
            rcode_name(a.reply.rcode),
            a.reply.answers,
            a.reply
                .first_address
                .map_or("-".to_string(), |a| a.to_string()),
            a.latency_us
        ),
        None => format!(
            "{head}  unanswered after {} s",
            UNANSWERED_AFTER_NS / 1_000_000_000
        ),
    };
    match &r.rule {
        Some(rule) => format!("{line}  [{rule}]"),
        None => line,
    }
}

/// One JSON object (see the module documentation for the fields).
pub fn render_json(r: &Record) -> String {
    let Utc {
        date: (y, mo, d),
        hour: h,
        minute: mi,
        second: s,
        micros: us,
    } = utc(r.time);
    let null = || "null".to_string();
    let a = r.answer.as_ref();
    format!(
        "{{\"time\":\"{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{us:06}Z\",\"client\":\"{}\",\"port\":{},\"proto\":\"{}\",\"id\":{},\"name\":{},\"type\":{},\"qtype\":{},\"path\":\"{}\",\"answered\":{},\"rcode\":{},\"answers\":{},\"first_answer\":{},\"latency_us\":{},\"rule\":{}}}",
        r.client.ip(),
        r.client.port(),
        if r.tcp { "tcp" } else { "udp" },
        r.question.id,
        r.question.name.as_deref().map_or_else(null, json_string),
        r.question.qtype.map_or_else(null, |t| json_string(&type_name(t))),
        r.question.qtype.map_or_else(null, |t| t.to_string()),
        route_name(r.path),
        a.is_some(),
        a.map_or_else(null, |a| json_string(&rcode_name(a.reply.rcode))),
        a.map_or_else(null, |a| a.reply.answers.to_string()),
        a.and_then(|a| a.reply.first_address)
            .map_or_else(null, |ip| json_string(&ip.to_string())),
        a.map_or_else(null, |a| a.latency_us.to_string()),
        r.rule.as_deref().map_or_else(null, json_string),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::raw::{addr_raw, port_raw};
    use crate::abi::ROUTE_NONE;

    fn query_msg(id: u16, labels: &[&[u8]], qtype: u16) -> Vec<u8> {
        let mut m = id.to_be_bytes().to_vec();
        m.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        for l in labels {
            m.push(l.len() as u8);
            m.extend_from_slice(l);
        }
        m.push(0);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&[0, 1]);
        m
    }

    /// The query turned into an answer: a CNAME first (compressed owner), then an A or AAAA.
    fn answer_msg(query: &[u8], rcode: u8, addr: Option<IpAddr>) -> Vec<u8> {
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

    #[test]
    fn messages_are_read_as_far_as_they_go() {
        let q = query_msg(0x1234, &[b"www", b"example", b"com"], 1);
        let m = parse_message(&q).expect("parses");
        assert_eq!(m.question.id, 0x1234);
        assert_eq!(m.question.name.as_deref(), Some("www.example.com"));
        assert_eq!(m.question.qtype, Some(1));
        let v4: IpAddr = "203.0.113.7".parse().unwrap();
        let a = parse_message(&answer_msg(&q, 0, Some(v4))).unwrap();
        assert_eq!(
            a.reply,
            Reply {
                rcode: 0,
                answers: 2,
                first_address: Some(v4)
            }
        );
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let a = parse_message(&answer_msg(&q, 0, Some(v6))).unwrap();
        assert_eq!(a.reply.first_address, Some(v6));
        let nx = parse_message(&answer_msg(&q, 3, None)).unwrap();
        assert_eq!(
            nx.reply,
            Reply {
                rcode: 3,
                answers: 1,
                first_address: None
            }
        );
        // Cut inside the answer: the header and question still show.
        let full = answer_msg(&q, 0, Some(v4));
        let cut = parse_message(&full[..full.len() - 2]).unwrap();
        assert_eq!(
            (cut.question.name.as_deref(), cut.reply.first_address),
            (Some("www.example.com"), None)
        );
        assert_eq!(parse_message(&q[..11]), None);
    }

    #[test]
    fn odd_names_are_escaped_or_refused_never_a_panic() {
        let m = parse_message(&query_msg(1, &[b"a.b", b"c d\xff"], 28)).unwrap();
        assert_eq!(m.question.name.as_deref(), Some("a\\046b.c\\032d\\255"));
        assert_eq!(
            parse_message(&query_msg(1, &[], 2))
                .unwrap()
                .question
                .name
                .as_deref(),
            Some(".")
        );
        let mut looped = query_msg(1, &[], 1);
        looped[12] = 0xc0;
        looped.insert(13, 12);
        assert_eq!(
            parse_message(&looped).unwrap().question.name,
            None,
            "a pointer to itself"
        );
        let label: &[u8] = &[b'a'; 63];
        let mut long = query_msg(1, &[label; 4], 1);
        assert_eq!(
            parse_message(&long).unwrap().question.name,
            None,
            "257 bytes of name"
        );
        long.truncate(40);
        assert_eq!(parse_message(&long).unwrap().question.name, None);
        for len in 0..25 {
            let _ = parse_message(&query_msg(7, &[b"abc", b"def"], 1)[..len]);
        }
    }

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
            wall: UNIX_EPOCH + Duration::from_secs(1_796_109_062) + Duration::from_micros(118_234),
        }
    }

    #[test]
    fn a_query_and_its_answer_make_one_line_and_one_json_object() {
        let mut t = Tracker::default();
        let q = query_msg(4660, &[b"example", b"com"], 1);
        let a = answer_msg(&q, 0, Some("203.0.113.7".parse().unwrap()));
        let c = clock(10_000_000_000);
        assert_eq!(
            t.event(
                &head(EVENT_QUERY, ROUTE_UPSTREAM, 50123, c.monotonic_ns),
                &q,
                &c
            ),
            None
        );
        // Another port or id is another query.
        let other = answer_msg(&query_msg(4661, &[b"x"], 1), 0, None);
        assert_eq!(
            t.event(&head(EVENT_REPLY, ROUTE_NONE, 50123, 1), &other, &c),
            None
        );
        let r = t
            .event(
                &head(EVENT_REPLY, ROUTE_NONE, 50123, c.monotonic_ns + 812_400),
                &a,
                &c,
            )
            .expect("a record");
        assert_eq!(
            render_line(&r),
            "07:11:02.118  127.0.0.1:50123  udp  id=4660  example.com  A  upstream  NOERROR  answers=2  203.0.113.7  812µs"
        );
        assert_eq!(
            render_json(&r),
            "{\"time\":\"2026-12-01T07:11:02.118234Z\",\"client\":\"127.0.0.1\",\"port\":50123,\"proto\":\"udp\",\"id\":4660,\"name\":\"example.com\",\"type\":\"A\",\"qtype\":1,\"path\":\"upstream\",\"answered\":true,\"rcode\":\"NOERROR\",\"answers\":2,\"first_answer\":\"203.0.113.7\",\"latency_us\":812,\"rule\":null}"
        );
        assert!(
            t.expire(&clock(u64::MAX)).is_empty(),
            "answered: nothing pending"
        );
    }

    #[test]
    fn the_deciding_rule_ends_the_line_and_is_a_json_field() {
        let mut t = Tracker::default();
        let c = clock(1_000_000_000);
        let q = query_msg(7, &[b"api", b"internal", b"test"], 1);
        assert!(t
            .event(
                &head(EVENT_QUERY, ROUTE_DOCKERD, 40000, 1_000_000_000),
                &q,
                &c
            )
            .is_none());
        let a = answer_msg(&q, 0, None);
        let mut r = t
            .event(&head(EVENT_REPLY, ROUTE_NONE, 40000, 1_000_500_000), &a, &c)
            .expect("paired");
        r.rule = Some("keep internal.test".into());
        assert!(
            render_line(&r).ends_with("  [keep internal.test]"),
            "{}",
            render_line(&r)
        );
        assert!(
            render_json(&r).ends_with(",\"rule\":\"keep internal.test\"}"),
            "{}",
            render_json(&r)
        );
    }

    #[test]
    fn a_query_without_an_answer_expires_once() {
        let mut t = Tracker::default();
        let q = query_msg(9, &[b"c2"], 1);
        t.event(
            &head(EVENT_QUERY, ROUTE_DOCKERD, 40000, 1_000),
            &q,
            &clock(1_000),
        );
        assert!(t.expire(&clock(1_000 + UNANSWERED_AFTER_NS - 1)).is_empty());
        let c = clock(1_000 + UNANSWERED_AFTER_NS);
        let gone = t.expire(&c);
        assert_eq!(gone.len(), 1);
        assert!(render_line(&gone[0]).ends_with("id=9  c2  A  dockerd  unanswered after 5 s"));
        let json = render_json(&gone[0]);
        assert!(json.contains("\"answered\":false,\"rcode\":null,\"answers\":null,\"first_answer\":null,\"latency_us\":null"), "{json}");
        assert!(t.expire(&c).is_empty(), "shown once");
        // Its late answer shows nothing.
        let a = answer_msg(&q, 0, None);
        assert_eq!(
            t.event(&head(EVENT_REPLY, ROUTE_NONE, 40000, 2), &a, &c),
            None
        );
    }

    #[test]
    fn dates_are_utc_civil_dates() {
        assert_eq!(utc(UNIX_EPOCH).date, (1970, 1, 1));
        assert_eq!(
            utc(UNIX_EPOCH + Duration::from_secs(951_782_400)).date,
            (2000, 2, 29)
        );
        assert_eq!(
            utc(UNIX_EPOCH + Duration::from_secs(1_796_109_062)).date,
            (2026, 12, 1)
        );
    }
}
