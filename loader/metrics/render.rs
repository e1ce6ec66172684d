//! The Prometheus text format (version 0.0.4) of the node's attachments: a `# HELP` and a
//! `# TYPE` line for every family, even one without samples, so that a scraper sees the same
//! families on every node; one sample per decoded attachment, labelled with its `id` (which
//! keeps two attachments with the same label apart) and its `label`.

use super::{Attachment, Decoded};
use crate::abi::Counters;
use crate::inspect::Build;
use std::fmt::Write;

/// What each counter of `--status --json` counts (README's words), in the order of
/// [`Counters::NAMES`], whose names it goes with.
const COUNTER_HELP: [&str; Counters::COUNT] = [
    "UDP queries sent to the upstream.",
    "TCP connections (SYNs) sent to the upstream.",
    "TCP segments sent to the upstream, SYNs included.",
    "UDP queries left to dockerd or the nameserver asked (single-label names, names kept by a rule).",
    "Packets from the upstream handed back to the application (one per UDP answer, every segment of a TCP connection).",
    "Packets from the upstream that answered no redirected query (passed untouched).",
    "Every other packet the programs saw (passed untouched).",
    "Packets a checksum helper or a redirect refused.",
    "Redirected UDP queries whose EDNS UDP payload size was lowered to --edns-max.",
    "First fragments of answers to redirected queries (passed untouched: the answer is lost).",
    "UDP queries kept because their name is equal to or under a --keep suffix.",
    "UDP queries kept because --only is in force and their name is under none of its suffixes.",
    "UDP queries redirected because their name is equal to or under an --only suffix.",
    "UDP queries whose name the rules could not read (they follow the rules' default).",
    "UDP queries answered in the kernel with NXDOMAIN (or REFUSED): a blocked name.",
    "UDP queries answered in the kernel from a pinned name's addresses.",
    "UDP queries refused in the kernel under --allow (not allowed, or not readable).",
    "TCP connections reset in the kernel: a query a decision covers, or one not readable whole in one segment.",
    "Flows dropped from a full flow table to make room for a new one: queries never answered, or more in flight than the table holds (16,384).",
];

/// What every per-attachment HELP adds.
const PER_ATTACHMENT: &str = "Per attachment (id: its configuration map, new at every attach, so counters restart at 0 when a pod is attached again); attachments by another dnsredir layout are not decoded (dnsredir_attachments{build=\"other\"} counts them).";

/// The build as the `build` label says it.
fn build_label(build: &Build) -> &'static str {
    match build {
        Build::This => "this",
        Build::SameLayout { .. } => "same-layout",
        Build::OtherLayout { .. } | Build::Unknown => "other",
    }
}

/// The page for `attachments`, which took `scan_seconds` to read.
pub fn render(attachments: &[Attachment], scan_seconds: f64) -> String {
    let mut out = String::new();
    family(
        &mut out,
        "dnsredir_attachments",
        "gauge",
        "dnsredir attachments on this node (sets of dnsredir programs sharing one configuration), by build: this binary's, another build with this binary's layout (decoded), another layout (counted only: its configuration and counters are not decoded).",
    );
    for build in ["this", "same-layout", "other"] {
        let n = attachments
            .iter()
            .filter(|a| build_label(&a.build) == build)
            .count();
        sample(
            &mut out,
            "dnsredir_attachments",
            &[("build", build)],
            n as u64,
        );
    }
    family(
        &mut out,
        "dnsredir_attachment_info",
        "gauge",
        "One series per attachment (value 1): its id (its configuration map's), label, path and build; label and path are empty for another layout's.",
    );
    for a in attachments {
        let id = a.id.to_string();
        let (label, path) = a.decoded.as_ref().map_or(("", ""), |d| (&d.label, d.path));
        sample(
            &mut out,
            "dnsredir_attachment_info",
            &[
                ("id", &id),
                ("label", label),
                ("path", path),
                ("build", build_label(&a.build)),
            ],
            1,
        );
    }
    let decoded: Vec<(String, &Decoded)> = attachments
        .iter()
        .filter_map(|a| a.decoded.as_ref().map(|d| (a.id.to_string(), d)))
        .collect();
    family(
        &mut out,
        "dnsredir_tracked_flows",
        "gauge",
        &format!(
            "Flows waiting for their answer (UDP queries, open TCP connections). {PER_ATTACHMENT}"
        ),
    );
    for (id, d) in &decoded {
        let labels = [("id", id.as_str()), ("label", d.label.as_str())];
        sample(
            &mut out,
            "dnsredir_tracked_flows",
            &labels,
            d.tracked_flows as u64,
        );
    }
    for (i, (name, help)) in Counters::NAMES.iter().zip(COUNTER_HELP).enumerate() {
        let metric = format!("dnsredir_{name}_total");
        family(
            &mut out,
            &metric,
            "counter",
            &format!("{help} {PER_ATTACHMENT}"),
        );
        for (id, d) in &decoded {
            let labels = [("id", id.as_str()), ("label", d.label.as_str())];
            sample(&mut out, &metric, &labels, d.counters.as_array()[i]);
        }
    }
    family(
        &mut out,
        "dnsredir_scrape_duration_seconds",
        "gauge",
        "How long reading the node's attachments from the kernel took for this page.",
    );
    let _ = writeln!(out, "dnsredir_scrape_duration_seconds {scan_seconds:.6}");
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let help = help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: u64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (key, value)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{key}=\"{}\"", escape_label(value));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// A label value as the text format quotes it: `\`, `"` and line feeds escaped.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::AttachmentId;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label("x\ny"), "x\\ny");
        assert_eq!(escape_label("default/web-7"), "default/web-7");
    }

    /// The page for two attachments, byte for byte, families cut to their first lines.
    #[test]
    fn a_small_page_byte_for_byte() {
        let mut counters = Counters::from_array([0; Counters::COUNT]);
        counters.queries_redirected_udp = 7;
        counters.replies_restored = 6;
        let attachments = [
            Attachment {
                id: AttachmentId::ConfigMap(41),
                build: Build::This,
                decoded: Some(Decoded {
                    label: "ns/web \"a\"\\".into(),
                    path: "nameservers",
                    tracked_flows: 1,
                    counters,
                }),
            },
            Attachment {
                id: AttachmentId::ConfigMap(57),
                build: Build::OtherLayout {
                    layout: 6,
                    build_id: 1,
                },
                decoded: None,
            },
        ];
        let page = render(&attachments, 0.25);
        let mut expected = [
            "# HELP dnsredir_attachments dnsredir attachments on this node (sets of dnsredir programs sharing one configuration), by build: this binary's, another build with this binary's layout (decoded), another layout (counted only: its configuration and counters are not decoded).",
            "# TYPE dnsredir_attachments gauge",
            "dnsredir_attachments{build=\"this\"} 1",
            "dnsredir_attachments{build=\"same-layout\"} 0",
            "dnsredir_attachments{build=\"other\"} 1",
            "# HELP dnsredir_attachment_info One series per attachment (value 1): its id (its configuration map's), label, path and build; label and path are empty for another layout's.",
            "# TYPE dnsredir_attachment_info gauge",
            r#"dnsredir_attachment_info{id="41",label="ns/web \"a\"\\",path="nameservers",build="this"} 1"#,
            r#"dnsredir_attachment_info{id="57",label="",path="",build="other"} 1"#,
            "# HELP dnsredir_tracked_flows Flows waiting for their answer (UDP queries, open TCP connections). Per attachment (id: its configuration map, new at every attach, so counters restart at 0 when a pod is attached again); attachments by another dnsredir layout are not decoded (dnsredir_attachments{build=\"other\"} counts them).",
            "# TYPE dnsredir_tracked_flows gauge",
            r#"dnsredir_tracked_flows{id="41",label="ns/web \"a\"\\"} 1"#,
            "# HELP dnsredir_queries_redirected_udp_total UDP queries sent to the upstream. Per attachment (id: its configuration map, new at every attach, so counters restart at 0 when a pod is attached again); attachments by another dnsredir layout are not decoded (dnsredir_attachments{build=\"other\"} counts them).",
            "# TYPE dnsredir_queries_redirected_udp_total counter",
            r#"dnsredir_queries_redirected_udp_total{id="41",label="ns/web \"a\"\\"} 7"#,
        ]
        .map(String::from)
        .to_vec();
        // The other counters' families have the same form: their values are the test's.
        let values = [7, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(values.len(), Counters::COUNT);
        for ((name, help), value) in Counters::NAMES.iter().zip(COUNTER_HELP).zip(values).skip(1) {
            expected.push(format!(
                "# HELP dnsredir_{name}_total {help} {PER_ATTACHMENT}"
            ));
            expected.push(format!("# TYPE dnsredir_{name}_total counter"));
            expected.push(format!(
                r#"dnsredir_{name}_total{{id="41",label="ns/web \"a\"\\"}} {value}"#
            ));
        }
        expected.extend(
            [
                "# HELP dnsredir_scrape_duration_seconds How long reading the node's attachments from the kernel took for this page.",
                "# TYPE dnsredir_scrape_duration_seconds gauge",
                "dnsredir_scrape_duration_seconds 0.250000",
                "",
            ]
            .map(String::from),
        );
        assert_eq!(page, expected.join("\n"));
        assert!(page.contains(
            "\ndnsredir_replies_restored_total{id=\"41\",label=\"ns/web \\\"a\\\"\\\\\"} 6\n"
        ));
    }

    #[test]
    fn no_attachments_still_names_every_family() {
        let page = render(&[], 0.0);
        assert!(page.contains("dnsredir_attachments{build=\"this\"} 0\n"));
        assert!(page.contains("# TYPE dnsredir_rule_unparsed_total counter\n"));
        assert!(!page.contains("{id="), "{page}");
    }
}
