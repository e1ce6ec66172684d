//! `--status` as text for people and as one JSON object for scripts.

use crate::abi::{Config, Counters, FLAG_REDIRECT_ALL, LAYOUT_VERSION};
use crate::bpf::embedded;
use crate::inspect::{Build, HookStatus, Status};
use crate::layout::{self, addr_from_raw, port_from_raw};
use crate::namespace;
use crate::redirect::rules::{Kind, Rules};
use crate::report::json_string;

/// The human-readable report.
pub fn render_text(s: &Status, interface: &str) -> String {
    let mut out = String::new();
    let hook = |name: &str, h: &HookStatus| match (h.attached, h.prog_id) {
        (true, Some(id)) => format!("{name}: attached (program id {id})\n"),
        (true, None) => format!("{name}: attached\n"),
        _ => format!("{name}: not attached\n"),
    };
    out.push_str(if s.attached() {
        "dnsredir: attached\n"
    } else {
        "dnsredir: not attached\n"
    });
    let nameservers = s.nameservers_path();
    if !nameservers || s.lo.attached {
        out.push_str(&hook("lo ingress", &s.lo));
    }
    out.push_str(&hook(&format!("{interface} ingress"), &s.interface));
    if nameservers || s.egress.attached {
        out.push_str(&hook(&format!("{interface} egress"), &s.egress));
    }
    if let Some(c) = &s.config {
        out.push_str(&format!("path: {}\n", layout::path_name(c)));
    }
    if let Some(c) = s.config.as_ref().filter(|_| nameservers) {
        out.push_str(&format!(
            "upstream: {}\ncontainer address: {}\nnameservers taken over: {}\n{}EDNS UDP size of queries: {}\n",
            layout::upstream_of(c),
            addr_from_raw(c.container_addr),
            namespace::list(&layout::nameservers_of(c)),
            ipv6_text(c),
            edns(c.edns_max)
        ));
    } else if let Some(c) = &s.config {
        out.push_str(&format!(
            "upstream: {}\ncontainer address: {}\nresolver: {} (dockerd UDP port {}, TCP port {})\nsingle-label names: {}\nEDNS UDP size of queries: {}\n",
            layout::upstream_of(c),
            addr_from_raw(c.container_addr),
            addr_from_raw(c.resolver_addr),
            port_or_none(c.dockerd_udp_port),
            port_or_none(c.dockerd_tcp_port),
            if c.flags & FLAG_REDIRECT_ALL != 0 { "redirected too (--redirect-all)" } else { "left to dockerd" },
            edns(c.edns_max)
        ));
    }
    match s.build {
        Some(Build::This) | None => {}
        Some(Build::SameLayout { build_id }) => out.push_str(&format!(
            "attached by: another dnsredir build (object fnv1a64 {build_id:016x}), same layout\n"
        )),
        Some(Build::OtherLayout { layout, build_id }) => out.push_str(&format!(
            "attached by: another dnsredir build (object fnv1a64 {build_id:016x}, layout {layout})\n"
        )),
        Some(Build::Unknown) => out.push_str("attached by: an older dnsredir build\n"),
    }
    if let Some(r) = &s.rules {
        let keeper = if s.nameservers_path() {
            "the nameserver asked"
        } else {
            "dockerd"
        };
        out.push_str(&rules_text(r, keeper));
    }
    if let Some(n) = s.tracked_flows {
        out.push_str(&format!("tracked flows: {n}\n"));
    }
    if let Some(c) = &s.counters {
        for (name, value) in Counters::NAMES.iter().zip(c.as_array()) {
            out.push_str(&format!("{name}: {value}\n"));
        }
    }
    if let Some(reason) = &s.stale {
        out.push_str(&format!("STALE: {reason}\n"));
    }
    if let Some(unknown) = &s.unknown {
        out.push_str(&format!("dockerd's ports not checked: {unknown}\n"));
    }
    out
}

/// The IPv6 lines of the nameservers path.
fn ipv6_text(c: &Config) -> String {
    match (layout::upstream6_of(c), layout::container6_of(c)) {
        (Some(up6), Some(addr6)) => format!(
            "IPv6 upstream: {up6}\ncontainer IPv6 address: {addr6}\nIPv6 nameservers taken over: {}\n",
            or_none(namespace::list(&layout::nameservers6_of(c)))
        ),
        _ => "IPv6 DNS: not redirected\n".to_string(),
    }
}

fn or_none(list: String) -> String {
    if list.is_empty() {
        "none".to_string()
    } else {
        list
    }
}

fn edns(raw: u16) -> String {
    match port_from_raw(raw) {
        0 => "not clamped".to_string(),
        max => format!("at most {max}"),
    }
}

/// The rules in force, one line each; what names not under any of them do (`keeper`: where
/// kept queries go).
fn rules_text(r: &Rules, keeper: &str) -> String {
    if r.is_empty() {
        return "name rules: none\n".to_string();
    }
    let default = if r.rules.iter().any(|x| x.kind != Kind::Keep) {
        format!("other names and all TCP stay with {keeper} (--only)")
    } else {
        "other names are redirected (--keep only)".to_string()
    };
    let mut out = format!("name rules: {} ({default})\n", r.rules.len());
    for rule in &r.rules {
        out.push_str(&format!("  {} {}\n", rule.kind.name(), rule.suffix));
    }
    out
}

fn port_or_none(raw: u16) -> String {
    if raw == 0 {
        "none".to_string()
    } else {
        port_from_raw(raw).to_string()
    }
}

/// The same as one JSON object, for scripts.
pub fn render_json(s: &Status) -> String {
    let hook = |h: &HookStatus| {
        format!(
            "{{\"attached\":{},\"prog_id\":{}}}",
            h.attached,
            h.prog_id.map_or("null".to_string(), |i| i.to_string())
        )
    };
    let config = s.config.as_ref().map_or("null".to_string(), |c| {
        let port = |raw: u16| if raw == 0 { "null".to_string() } else { port_from_raw(raw).to_string() };
        format!(
            "{{\"path\":{},\"upstream\":{},\"container_addr\":{},\"nameservers\":[{}],\"resolver_addr\":{},\"dockerd_udp_port\":{},\"dockerd_tcp_port\":{},\"redirect_all\":{},\"edns_max\":{},\"upstream6\":{},\"container_addr6\":{},\"nameservers6\":[{}]}}",
            json_string(layout::path_name(c)),
            json_string(&layout::upstream_of(c).to_string()),
            json_string(&addr_from_raw(c.container_addr).to_string()),
            layout::nameservers_of(c)
                .iter()
                .map(|n| json_string(&n.to_string()))
                .collect::<Vec<_>>()
                .join(","),
            json_string(&addr_from_raw(c.resolver_addr).to_string()),
            port(c.dockerd_udp_port),
            port(c.dockerd_tcp_port),
            c.flags & FLAG_REDIRECT_ALL != 0,
            port_from_raw(c.edns_max),
            layout::upstream6_of(c).map_or("null".to_string(), |u| json_string(&u.to_string())),
            layout::container6_of(c).map_or("null".to_string(), |a| json_string(&a.to_string())),
            layout::nameservers6_of(c)
                .iter()
                .map(|n| json_string(&n.to_string()))
                .collect::<Vec<_>>()
                .join(",")
        )
    });
    let build = match s.build {
        None => "null".to_string(),
        Some(Build::This) => format!(
            "{{\"this_binary\":true,\"build_id\":\"{:016x}\",\"layout\":{LAYOUT_VERSION}}}",
            embedded::object_hash()
        ),
        Some(Build::SameLayout { build_id }) => format!(
            "{{\"this_binary\":false,\"build_id\":\"{build_id:016x}\",\"layout\":{LAYOUT_VERSION}}}"
        ),
        Some(Build::OtherLayout { layout, build_id }) => format!(
            "{{\"this_binary\":false,\"build_id\":\"{build_id:016x}\",\"layout\":{layout}}}"
        ),
        Some(Build::Unknown) => {
            "{\"this_binary\":false,\"build_id\":null,\"layout\":null}".to_string()
        }
    };
    let counters = s.counters.as_ref().map_or("null".to_string(), |c| {
        let fields: Vec<String> = Counters::NAMES
            .iter()
            .zip(c.as_array())
            .map(|(n, v)| format!("\"{n}\":{v}"))
            .collect();
        format!("{{{}}}", fields.join(","))
    });
    let rules = s.rules.as_ref().map_or("null".to_string(), |r| {
        let items: Vec<String> = r
            .rules
            .iter()
            .map(|x| {
                format!(
                    "{{\"suffix\":{},\"kind\":{}}}",
                    json_string(&x.suffix),
                    json_string(x.kind.json_name())
                )
            })
            .collect();
        format!("[{}]", items.join(","))
    });
    format!(
        "{{\"attached\":{},\"path\":{},\"lo\":{},\"interface\":{},\"egress\":{},\"build\":{},\"config\":{},\"tracked_flows\":{},\"counters\":{},\"stale\":{},\"stale_reason\":{},\"ports_unknown\":{},\"rules\":{},\"rules_map_id\":{}}}",
        s.attached(),
        s.config
            .as_ref()
            .map_or("null".to_string(), |c| json_string(layout::path_name(c))),
        hook(&s.lo),
        hook(&s.interface),
        hook(&s.egress),
        build,
        config,
        s.tracked_flows.unwrap_or(0),
        counters,
        s.stale.is_some(),
        s.stale.as_deref().map_or("null".to_string(), json_string),
        s.unknown.as_deref().map_or("null".to_string(), json_string),
        rules,
        s.rules_map_id
            .map_or("null".to_string(), |i| i.to_string())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redirect::rules::Rule;

    #[test]
    fn rules_are_listed() {
        let s = Status {
            rules: Some(Rules {
                rules: vec![
                    Rule {
                        suffix: "internal.test".into(),
                        kind: Kind::Keep,
                    },
                    Rule {
                        suffix: "corp.test".into(),
                        kind: Kind::Only,
                    },
                ],
            }),
            rules_map_id: Some(7),
            ..Status::default()
        };
        let text = render_text(&s, "eth0");
        assert!(text.contains("name rules: 2 (other names and all TCP stay with dockerd (--only))\n  keep internal.test\n  only corp.test\n"), "{text}");
        let json = render_json(&s);
        assert!(json.ends_with(",\"rules\":[{\"suffix\":\"internal.test\",\"kind\":\"keep\"},{\"suffix\":\"corp.test\",\"kind\":\"only\"}],\"rules_map_id\":7}"), "{json}");
    }

    #[test]
    fn not_attached_json_has_every_field() {
        let json = render_json(&Status::default());
        assert_eq!(
            json,
            "{\"attached\":false,\"path\":null,\"lo\":{\"attached\":false,\"prog_id\":null},\"interface\":{\"attached\":false,\"prog_id\":null},\"egress\":{\"attached\":false,\"prog_id\":null},\"build\":null,\"config\":null,\"tracked_flows\":0,\"counters\":null,\"stale\":false,\"stale_reason\":null,\"ports_unknown\":null,\"rules\":null,\"rules_map_id\":null}"
        );
    }
}
