//! `--watch`'s output: each [`Record`] as a line for people or as one JSON object per line
//! (the record format for record/replay users).
//!
//! JSON fields (stable; `null` where a value does not apply):
//! `time` (RFC 3339 UTC, µs, when the query was seen), `client` (address), `port`,
//! `proto` (`udp`/`tcp`), `id`, `name` (dotted, no final dot; `.` for the root; bytes outside
//! letters, digits, `-` and `_` as `\DDD`; `null` if malformed), `type` (mnemonic or `TYPEn`),
//! `qtype` (number), `path` (`upstream`, `dockerd`, `nameserver`, `kept`), `answered` (bool), `rcode`
//! (mnemonic or `RCODEn`), `answers` (answer count), `first_answer` (the first A or AAAA
//! record's address), `latency_us`, `rule` (the name rule that decided: `keep SUFFIX`, `only
//! SUFFIX`, `outside --only`).

use crate::abi::{ROUTE_DOCKERD, ROUTE_NAMESERVER, ROUTE_NAMESERVER_KEPT, ROUTE_UPSTREAM};
use crate::dns::{rcode_name, type_name};
use crate::report::json_string;
use crate::report::pairing::{Record, UNANSWERED_AFTER_NS};
use std::time::{SystemTime, UNIX_EPOCH};

pub fn route_name(route: u8) -> &'static str {
    match route {
        ROUTE_UPSTREAM => "upstream",
        ROUTE_DOCKERD => "dockerd",
        ROUTE_NAMESERVER => "nameserver",
        ROUTE_NAMESERVER_KEPT => "kept",
        _ => "unknown",
    }
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
    use crate::report::pairing::{Answer, Asked, Reply};
    use std::time::Duration;

    /// A query for `name` type A seen at 2026-12-01 07:11:02.118234 UTC.
    fn record(id: u16, name: &str, path: u8, answer: Option<Answer>) -> Record {
        Record {
            time: UNIX_EPOCH + Duration::from_secs(1_796_109_062) + Duration::from_micros(118_234),
            client: "127.0.0.1:50123".parse().unwrap(),
            tcp: false,
            question: Asked {
                id,
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
                first_address: first_address.map(|a| a.parse().unwrap()),
            },
            latency_us: 812,
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
            "{\"time\":\"2026-12-01T07:11:02.118234Z\",\"client\":\"127.0.0.1\",\"port\":50123,\"proto\":\"udp\",\"id\":4660,\"name\":\"example.com\",\"type\":\"A\",\"qtype\":1,\"path\":\"upstream\",\"answered\":true,\"rcode\":\"NOERROR\",\"answers\":2,\"first_answer\":\"203.0.113.7\",\"latency_us\":812,\"rule\":null}"
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
        assert!(json.contains("\"answered\":false,\"rcode\":null,\"answers\":null,\"first_answer\":null,\"latency_us\":null"), "{json}");
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
