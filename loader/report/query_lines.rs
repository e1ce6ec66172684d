//! `--watch`'s output: each [`Record`] as a line for people or as one JSON object per line
//! (the record format for record/replay users).
//!
//! JSON fields (stable; `null` where a value does not apply):
//! `time` (RFC 3339 UTC, µs, when the query was seen), `client` (address), `port`,
//! `proto` (`udp`/`tcp`), `id`, `name` (dotted, no final dot; `.` for the root; bytes outside
//! letters, digits, `-` and `_` as `\DDD`; `null` if malformed), `type` (mnemonic or `TYPEn`),
//! `qtype` (number), `path` (`upstream`, `dockerd`, `nameserver`, `kept`; answered by the
//! program: `blocked`, `pinned`, `disallowed`; TCP connection reset by it: `reset`),
//! `answered` (bool), `rcode` (mnemonic or `RCODEn`), `answers` (answer count),
//! `first_answer` (the first A or AAAA record's address), `addresses` (every A and AAAA
//! record of the answer as `{"address": "…", "ttl": N}`, in order), `latency_us`, `rule` (the
//! rule that decided: `keep SUFFIX`, `only SUFFIX`, `outside --only`, `block SUFFIX`, …).
//!
//! A `reset` record is shown as soon as its query is seen (no answer comes): `answered`
//! false and every answer field `null`, like an unanswered one, which it never becomes.

use crate::abi::{
    ROUTE_BLOCKED, ROUTE_DISALLOWED, ROUTE_DOCKERD, ROUTE_NAMESERVER, ROUTE_NAMESERVER_KEPT,
    ROUTE_PINNED, ROUTE_RESET, ROUTE_UPSTREAM,
};
use crate::dns::{rcode_name, type_name};
use crate::report::json_string;
use crate::report::pairing::{Address, Record, UNANSWERED_AFTER_NS};
use std::time::{SystemTime, UNIX_EPOCH};

pub fn route_name(route: u8) -> &'static str {
    match route {
        ROUTE_UPSTREAM => "upstream",
        ROUTE_DOCKERD => "dockerd",
        ROUTE_NAMESERVER => "nameserver",
        ROUTE_NAMESERVER_KEPT => "kept",
        ROUTE_BLOCKED => "blocked",
        ROUTE_PINNED => "pinned",
        ROUTE_DISALLOWED => "disallowed",
        ROUTE_RESET => "reset",
        _ => "unknown",
    }
}

/// Addresses a text line shows; the rest are counted (`+N`): the JSON has them all.
const LINE_ADDRESSES: usize = 3;

/// `203.0.113.7,203.0.113.8,2001:db8::7,+2`; `-` for none.
fn addresses_text(addresses: &[Address]) -> String {
    if addresses.is_empty() {
        return "-".to_string();
    }
    let mut shown: Vec<String> = addresses
        .iter()
        .take(LINE_ADDRESSES)
        .map(|a| a.address.to_string())
        .collect();
    if addresses.len() > LINE_ADDRESSES {
        shown.push(format!("+{}", addresses.len() - LINE_ADDRESSES));
    }
    shown.join(",")
}

/// `812µs`; below 10 µs (answers from the kernel) with a tenth: `3.4µs`, never `0µs`.
fn latency_text(ns: u64) -> String {
    let us = ns / 1000;
    if us < 10 {
        format!("{us}.{}µs", ns % 1000 / 100)
    } else {
        format!("{us}µs")
    }
}

fn addresses_json(addresses: &[Address]) -> String {
    let items: Vec<String> = addresses
        .iter()
        .map(|a| {
            format!(
                "{{\"address\":{},\"ttl\":{}}}",
                json_string(&a.address.to_string()),
                a.ttl
            )
        })
        .collect();
    format!("[{}]", items.join(","))
}

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
///
/// Up to [`LINE_ADDRESSES`] addresses, comma-separated; a reset ends `connection reset`.
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
        r.question.id.map_or("?".to_string(), |id| id.to_string()),
        name_text(r),
        type_text(r),
        route_name(r.path)
    );
    let line = match &r.answer {
        Some(a) => format!(
            "{head}  {}  answers={}  {}  {}",
            rcode_name(a.reply.rcode),
            a.reply.answers,
            addresses_text(&a.reply.addresses),
            latency_text(a.latency_ns)
        ),
        None if r.reset() => format!("{head}  connection reset"),
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
        "{{\"time\":\"{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{us:06}Z\",\"client\":\"{}\",\"port\":{},\"proto\":\"{}\",\"id\":{},\"name\":{},\"type\":{},\"qtype\":{},\"path\":\"{}\",\"answered\":{},\"rcode\":{},\"answers\":{},\"first_answer\":{},\"addresses\":{},\"latency_us\":{},\"rule\":{}}}",
        r.client.ip(),
        r.client.port(),
        if r.tcp { "tcp" } else { "udp" },
        r.question.id.map_or_else(null, |id| id.to_string()),
        r.question.name.as_deref().map_or_else(null, json_string),
        r.question.qtype.map_or_else(null, |t| json_string(&type_name(t))),
        r.question.qtype.map_or_else(null, |t| t.to_string()),
        route_name(r.path),
        a.is_some(),
        a.map_or_else(null, |a| json_string(&rcode_name(a.reply.rcode))),
        a.map_or_else(null, |a| a.reply.answers.to_string()),
        a.and_then(|a| a.reply.first_address())
            .map_or_else(null, |ip| json_string(&ip.to_string())),
        a.map_or_else(null, |a| addresses_json(&a.reply.addresses)),
        a.map_or_else(null, |a| a.latency_us().to_string()),
        r.rule.as_deref().map_or_else(null, json_string),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::pairing::{Answer, Asked, Reply};
    use std::time::Duration;

    /// A query for `name` type A seen at 2026-12-01 07:11:02.118234 UTC.
    fn record(id: u16, name: &str, path: u8, answer: Option<Answer>) -> Record {
        Record {
            time: UNIX_EPOCH + Duration::from_secs(1_796_109_062) + Duration::from_micros(118_234),
            client: "127.0.0.1:50123".parse().unwrap(),
            tcp: false,
            question: Asked {
                id: Some(id),
                name: Some(name.into()),
                qtype: Some(1),
            },
            path,
            answer,
            rule: None,
        }
    }

    fn answered(first_address: Option<&str>) -> Option<Answer> {
        Some(Answer {
            reply: Reply {
                rcode: 0,
                answers: 2,
                addresses: first_address
                    .map(|a| Address {
                        address: a.parse().unwrap(),
                        ttl: 60,
                    })
                    .into_iter()
                    .collect(),
            },
            latency_ns: 812_900,
        })
    }

    #[test]
    fn an_answered_query_is_one_line_and_one_json_object() {
        let r = record(
            4660,
            "example.com",
            ROUTE_UPSTREAM,
            answered(Some("203.0.113.7")),
        );
        assert_eq!(
            render_line(&r),
            "07:11:02.118  127.0.0.1:50123  udp  id=4660  example.com  A  upstream  NOERROR  answers=2  203.0.113.7  812µs"
        );
        assert_eq!(
            render_json(&r),
            "{\"time\":\"2026-12-01T07:11:02.118234Z\",\"client\":\"127.0.0.1\",\"port\":50123,\"proto\":\"udp\",\"id\":4660,\"name\":\"example.com\",\"type\":\"A\",\"qtype\":1,\"path\":\"upstream\",\"answered\":true,\"rcode\":\"NOERROR\",\"answers\":2,\"first_answer\":\"203.0.113.7\",\"addresses\":[{\"address\":\"203.0.113.7\",\"ttl\":60}],\"latency_us\":812,\"rule\":null}"
        );
    }

    #[test]
    fn the_deciding_rule_ends_the_line_and_is_a_json_field() {
        let mut r = record(7, "api.internal.test", ROUTE_DOCKERD, answered(None));
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
    fn an_unanswered_query_says_so() {
        let r = record(9, "c2", ROUTE_DOCKERD, None);
        assert!(render_line(&r).ends_with("id=9  c2  A  dockerd  unanswered after 5 s"));
        let json = render_json(&r);
        assert!(json.contains("\"answered\":false,\"rcode\":null,\"answers\":null,\"first_answer\":null,\"addresses\":null,\"latency_us\":null"), "{json}");
    }

    #[test]
    fn paths_have_their_names() {
        let names: Vec<&str> = (0..=9).map(route_name).collect();
        assert_eq!(
            names,
            [
                "unknown",
                "upstream",
                "dockerd",
                "nameserver",
                "kept",
                "blocked",
                "pinned",
                "disallowed",
                "reset",
                "unknown"
            ]
        );
    }

    #[test]
    fn answers_from_the_kernel_show_their_rule_and_latency_in_us() {
        let mut r = record(8, "ads.example", ROUTE_BLOCKED, answered(None));
        if let Some(a) = r.answer.as_mut() {
            a.reply.rcode = 3;
            a.reply.answers = 0;
            a.latency_ns = 3_470;
        }
        r.rule = Some("block ads.example".into());
        assert_eq!(
            render_line(&r),
            "07:11:02.118  127.0.0.1:50123  udp  id=8  ads.example  A  blocked  NXDOMAIN  answers=0  -  3.4µs  [block ads.example]"
        );
        let json = render_json(&r);
        assert!(
            json.contains("\"path\":\"blocked\",\"answered\":true,\"rcode\":\"NXDOMAIN\",\"answers\":0,\"first_answer\":null,\"addresses\":[],\"latency_us\":3,\"rule\":\"block ads.example\"}"),
            "{json}"
        );
        if let Some(a) = r.answer.as_mut() {
            a.latency_ns = 999;
        }
        assert!(
            render_line(&r).contains("  -  0.9µs  ["),
            "{}",
            render_line(&r)
        );
        if let Some(a) = r.answer.as_mut() {
            a.latency_ns = 10_000;
        }
        assert!(
            render_line(&r).contains("  -  10µs  ["),
            "{}",
            render_line(&r)
        );
        for (path, name) in [(ROUTE_PINNED, "pinned"), (ROUTE_DISALLOWED, "disallowed")] {
            r.path = path;
            assert!(render_line(&r).contains(&format!("  A  {name}  NXDOMAIN")));
            assert!(render_json(&r).contains(&format!("\"path\":\"{name}\",")));
        }
    }

    #[test]
    fn a_reset_says_so_and_has_no_answer_fields() {
        let mut r = record(5, "ads.example", ROUTE_RESET, None);
        r.tcp = true;
        r.rule = Some("block ads.example".into());
        assert_eq!(
            render_line(&r),
            "07:11:02.118  127.0.0.1:50123  tcp  id=5  ads.example  A  reset  connection reset  [block ads.example]"
        );
        let json = render_json(&r);
        assert!(
            json.contains("\"proto\":\"tcp\",\"id\":5,\"name\":\"ads.example\",\"type\":\"A\",\"qtype\":1,\"path\":\"reset\",\"answered\":false,\"rcode\":null,\"answers\":null,\"first_answer\":null,\"addresses\":null,\"latency_us\":null,\"rule\":\"block ads.example\"}"),
            "{json}"
        );
        // A segment without a whole header: no id, no name.
        r.question = Asked::default();
        r.rule = None;
        assert!(render_line(&r).ends_with("  tcp  id=?  (malformed)  ?  reset  connection reset"));
        assert!(render_json(&r).contains(
            "\"id\":null,\"name\":null,\"type\":null,\"qtype\":null,\"path\":\"reset\","
        ));
    }

    #[test]
    fn a_line_shows_three_addresses_and_counts_the_rest() {
        let addr = |a: &str| Address {
            address: a.parse().unwrap(),
            ttl: 10,
        };
        let mut r = record(6, "api.stripe.com", ROUTE_PINNED, answered(None));
        let all = ["10.5.5.5", "10.5.5.6", "fd00::5", "10.5.5.7", "10.5.5.8"];
        if let Some(a) = r.answer.as_mut() {
            a.reply.addresses = all.iter().map(|a| addr(a)).collect();
            a.reply.answers = 5;
        }
        assert!(
            render_line(&r)
                .contains("  pinned  NOERROR  answers=5  10.5.5.5,10.5.5.6,fd00::5,+2  812µs"),
            "{}",
            render_line(&r)
        );
        let json = render_json(&r);
        assert!(
            json.contains("\"first_answer\":\"10.5.5.5\",\"addresses\":[{\"address\":\"10.5.5.5\",\"ttl\":10},{\"address\":\"10.5.5.6\",\"ttl\":10},{\"address\":\"fd00::5\",\"ttl\":10},{\"address\":\"10.5.5.7\",\"ttl\":10},{\"address\":\"10.5.5.8\",\"ttl\":10}],"),
            "{json}"
        );
        if let Some(a) = r.answer.as_mut() {
            a.reply.addresses.truncate(3);
        }
        assert!(render_line(&r).contains("  10.5.5.5,10.5.5.6,fd00::5  "));
    }

    /// README's filter that turns a `--watch --json` recording into a hosts file.
    const JQ_HOSTS: &str =
        r#"select(.addresses and .name) | .addresses[] as $a | "\($a.address) \(.name)""#;

    /// What `jq -r JQ_HOSTS | sort -u` makes of the lines, done here with serde_json.
    fn hosts_of(lines: &[String]) -> String {
        let mut hosts: Vec<String> = Vec::new();
        for line in lines {
            let j: serde_json::Value = serde_json::from_str(line).expect("one JSON object a line");
            let (Some(addresses), Some(name)) = (j["addresses"].as_array(), j["name"].as_str())
            else {
                continue;
            };
            for a in addresses {
                let address = a["address"].as_str().expect("a string");
                hosts.push(format!("{address} {name}"));
            }
        }
        hosts.sort();
        hosts.dedup();
        hosts.iter().map(|h| format!("{h}\n")).collect()
    }

    /// A recording made by the real pairing and rendering from captured messages: a resolver's
    /// answer (CNAME, 2 A, 1 AAAA), the same name again, a pinned answer, an NXDOMAIN, a
    /// query never answered.
    fn recording() -> Vec<String> {
        use crate::abi::raw::{addr_raw, port_raw};
        use crate::abi::{EventHeader, EVENT_QUERY, EVENT_REPLY, ROUTE_NONE};
        use crate::dns::samples::{query, CNAME_2A_AAAA};
        use crate::dns::TYPE_A;
        use crate::report::pairing::{Clock, Tracker};
        use std::net::Ipv4Addr;

        let head = |kind, path, port: u16, time_ns| EventHeader {
            time_ns,
            client_addr: addr_raw(Ipv4Addr::LOCALHOST),
            client_port: port_raw(port),
            kind,
            path,
            proto: 17,
            ..Default::default()
        };
        let clock = Clock {
            monotonic_ns: 100_000_000_000,
            wall: UNIX_EPOCH + Duration::from_secs(1_796_109_062),
        };
        let www = query(0xbeef, &[b"www", b"example", b"com"], TYPE_A);
        let stripe = query(7, &[b"api", b"stripe", b"com"], TYPE_A);
        let mut pinned = stripe.clone();
        pinned[2..4].copy_from_slice(&[0x81, 0x80]);
        pinned[7] = 1;
        pinned.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 10, 0, 4, 10, 5, 5, 5]);
        let gone = query(8, &[b"gone", b"example"], TYPE_A);
        let mut nx = gone.clone();
        nx[2..4].copy_from_slice(&[0x81, 0x83]);
        let silent = query(9, &[b"silent", b"example"], TYPE_A);
        let events: Vec<(EventHeader, &[u8])> = vec![
            (head(EVENT_QUERY, ROUTE_UPSTREAM, 1001, 1_000), &www),
            (head(EVENT_REPLY, ROUTE_NONE, 1001, 900_000), CNAME_2A_AAAA),
            (head(EVENT_QUERY, ROUTE_UPSTREAM, 1002, 2_000_000), &www),
            (
                head(EVENT_REPLY, ROUTE_NONE, 1002, 2_500_000),
                CNAME_2A_AAAA,
            ),
            (head(EVENT_QUERY, ROUTE_PINNED, 1003, 3_000_000), &stripe),
            (head(EVENT_REPLY, ROUTE_NONE, 1003, 3_004_100), &pinned),
            (head(EVENT_QUERY, ROUTE_BLOCKED, 1004, 4_000_000), &gone),
            (head(EVENT_REPLY, ROUTE_NONE, 1004, 4_003_000), &nx),
            (head(EVENT_QUERY, ROUTE_UPSTREAM, 1005, 5_000_000), &silent),
        ];
        let mut t = Tracker::default();
        let mut records: Vec<Record> = events
            .iter()
            .filter_map(|(h, data)| t.event(h, data, &clock))
            .collect();
        records.extend(t.expire(&clock));
        assert_eq!(records.len(), 5);
        records.iter().map(render_json).collect()
    }

    const HOSTS: &str = "10.5.5.5 api.stripe.com\n192.0.2.10 www.example.com\n192.0.2.11 www.example.com\n2001:db8::10 www.example.com\n";

    #[test]
    fn a_recording_becomes_a_hosts_file_with_the_readme_filter() {
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"));
        let command = format!("jq -r '{JQ_HOSTS}' rec.jsonl | sort -u > mocks.hosts");
        assert!(readme.contains(&command), "README shows: {command}");
        let lines = recording();
        assert!(
            lines[0].contains("\"answers\":4,\"first_answer\":\"192.0.2.10\",\"addresses\":[{\"address\":\"192.0.2.10\",\"ttl\":60},{\"address\":\"192.0.2.11\",\"ttl\":60},{\"address\":\"2001:db8::10\",\"ttl\":120}],"),
            "{}",
            lines[0]
        );
        assert_eq!(hosts_of(&lines), HOSTS);
    }

    /// The same with jq itself, where it is installed (scripts/setup does not install it).
    #[test]
    fn jq_makes_the_same_hosts_file() {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let child = Command::new("jq")
            .args(["-r", JQ_HOSTS])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn();
        let mut child = match child {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!("jq is not installed: the filter's logic is checked without it");
                return;
            }
            Err(e) => panic!("running jq: {e}"),
        };
        let input = recording().join("\n") + "\n";
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(input.as_bytes())
            .expect("jq reads");
        let out = child.wait_with_output().expect("jq ends");
        assert!(out.status.success(), "{out:?}");
        let mut lines: Vec<&str> = std::str::from_utf8(&out.stdout)
            .expect("text")
            .lines()
            .collect();
        lines.sort();
        lines.dedup();
        let hosts: String = lines.iter().map(|l| format!("{l}\n")).collect();
        assert_eq!(hosts, HOSTS);
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
