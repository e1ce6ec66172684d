//! `--status` as text for people and as one JSON object for scripts.

use crate::abi::{Counters, LAYOUT_VERSION};
use crate::bpf::embedded;
use crate::inspect::{Build, HookStatus, Status};
use crate::namespace;
use crate::namespace::dockerd::DOCKER_RESOLVER;
use crate::redirect::detect::DEFAULT_INTERFACE;
use crate::redirect::rules::Rules;
use crate::report::json_string;
use crate::settings::{Ipv6Settings, Path};
use std::net::Ipv4Addr;

/// The human-readable report.
pub fn render_text(s: &Status) -> String {
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
    let interface = s.interface().unwrap_or(DEFAULT_INTERFACE);
    let nameservers = s.nameservers_path();
    if !nameservers || s.lo().attached {
        out.push_str(&hook("lo ingress", &s.lo()));
    }
    out.push_str(&hook(&format!("{interface} ingress"), &s.ingress()));
    if nameservers || s.egress().attached {
        out.push_str(&hook(&format!("{interface} egress"), &s.egress()));
    }
    for stray in s.found.strays() {
        if stray.at.ifname != interface && !stray.at.is_lo_ingress() {
            out.push_str(&hook(&stray.at.to_string(), &Some(stray).into()));
        }
    }
    if let Some(c) = &s.settings {
        out.push_str(&format!("label: {}\npath: {}\n", c.label, c.path.name()));
        out.push_str(&format!(
            "upstream: {}\ncontainer address: {}\n",
            c.upstream, c.source
        ));
    }
    match s.settings.as_ref().map(|c| &c.path) {
        Some(Path::Nameservers {
            nameservers,
            ipv6,
            any,
        }) => out.push_str(&format!(
            "nameservers taken over: {}\n{}",
            taken_text(nameservers, *any),
            ipv6_text(ipv6.as_ref(), *any)
        )),
        Some(Path::EmbeddedResolver {
            ports,
            redirect_all,
        }) => out.push_str(&format!(
            "resolver: {DOCKER_RESOLVER} (dockerd UDP port {}, TCP port {})\nsingle-label names: {}\n",
            port_or_none(ports.udp),
            port_or_none(ports.tcp),
            if *redirect_all { "redirected too (--redirect-all)" } else { "left to dockerd" },
        )),
        None => {}
    }
    if let Some(c) = &s.settings {
        out.push_str(&format!("EDNS UDP size of queries: {}\n", edns(c.edns_max)));
    }
    match s.maps.build {
        Some(Build::This) | None => {}
        Some(Build::SameLayout { build_id }) => out.push_str(&format!(
            "attached by: another dnsredir build (object fnv1a64 {build_id:016x}), same layout\n"
        )),
        Some(Build::OtherLayout { layout, build_id }) => out.push_str(&format!(
            "attached by: another dnsredir build (object fnv1a64 {build_id:016x}, layout {layout})\n"
        )),
        Some(Build::Unknown) => out.push_str("attached by: an older dnsredir build\n"),
    }
    if let Some(r) = &s.maps.rules {
        let keeper = if nameservers {
            "the nameserver asked"
        } else {
            "dockerd"
        };
        out.push_str(&rules_text(r, keeper));
    }
    if let Some(n) = s.maps.tracked_flows {
        out.push_str(&format!("tracked flows: {n}\n"));
    }
    if let Some(c) = &s.maps.counters {
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

/// What `--resolver any` takes, in place of a list.
const ANY_TAKEN: &str = "any (port 53)";

/// The nameservers of one family taken over: the list, or with `--resolver any` every server.
fn taken_text<T: std::fmt::Display>(nameservers: &[T], any: bool) -> String {
    if any {
        ANY_TAKEN.to_string()
    } else {
        namespace::list(nameservers)
    }
}

/// The IPv6 lines of the nameservers path.
fn ipv6_text(v6: Option<&Ipv6Settings>, any: bool) -> String {
    match v6 {
        Some(v6) => format!(
            "IPv6 upstream: {}\ncontainer IPv6 address: {}\nIPv6 nameservers taken over: {}\n",
            v6.upstream,
            v6.source,
            or_none(taken_text(&v6.nameservers, any))
        ),
        None => "IPv6 DNS: not redirected\n".to_string(),
    }
}

fn or_none(list: String) -> String {
    if list.is_empty() {
        "none".to_string()
    } else {
        list
    }
}

fn edns(max: u16) -> String {
    match max {
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
    let kinds = r.kinds();
    let default = if kinds.allowlist {
        "other names are refused (--allow)".to_string()
    } else if kinds.only {
        format!("other names and all TCP stay with {keeper} (--only)")
    } else if kinds.keep {
        "other names are redirected (--keep only)".to_string()
    } else {
        "other names go on as without rules".to_string()
    };
    let mut out = format!("name rules: {} ({default})\n", r.rules.len());
    for rule in &r.rules {
        out.push_str(&format!("  {rule}\n"));
    }
    out
}

fn port_or_none(port: Option<u16>) -> String {
    port.map_or("none".to_string(), |p| p.to_string())
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
    let list = |items: Vec<String>| {
        items
            .iter()
            .map(|n| json_string(n))
            .collect::<Vec<_>>()
            .join(",")
    };
    let config = s.settings.as_ref().map_or("null".to_string(), |c| {
        let port = |p: Option<u16>| p.map_or("null".to_string(), |p| p.to_string());
        let ports = c.dockerd_ports();
        let redirect_all = matches!(c.path, Path::EmbeddedResolver { redirect_all: true, .. });
        let any_resolver = matches!(c.path, Path::Nameservers { any: true, .. });
        let resolver = match c.path {
            Path::EmbeddedResolver { .. } => DOCKER_RESOLVER,
            Path::Nameservers { .. } => Ipv4Addr::UNSPECIFIED,
        };
        let v6 = c.ipv6();
        format!(
            "{{\"path\":{},\"upstream\":{},\"container_addr\":{},\"nameservers\":[{}],\"resolver_addr\":{},\"dockerd_udp_port\":{},\"dockerd_tcp_port\":{},\"redirect_all\":{},\"edns_max\":{},\"upstream6\":{},\"container_addr6\":{},\"nameservers6\":[{}],\"any_resolver\":{}}}",
            json_string(c.path.name()),
            json_string(&c.upstream.to_string()),
            json_string(&c.source.to_string()),
            list(c.nameservers().iter().map(|n| n.to_string()).collect()),
            json_string(&resolver.to_string()),
            port(ports.udp),
            port(ports.tcp),
            redirect_all,
            c.edns_max,
            v6.map_or("null".to_string(), |v6| json_string(&v6.upstream.to_string())),
            v6.map_or("null".to_string(), |v6| json_string(&v6.source.to_string())),
            list(v6.map_or(Vec::new(), |v6| v6.nameservers.iter().map(|n| n.to_string()).collect())),
            any_resolver
        )
    });
    let build = match s.maps.build {
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
    let counters = s.maps.counters.as_ref().map_or("null".to_string(), |c| {
        let fields: Vec<String> = Counters::NAMES
            .iter()
            .zip(c.as_array())
            .map(|(n, v)| format!("\"{n}\":{v}"))
            .collect();
        format!("{{{}}}", fields.join(","))
    });
    let rules = s.maps.rules.as_ref().map_or("null".to_string(), |r| {
        let items: Vec<String> = r
            .rules
            .iter()
            .map(|x| {
                let addresses = match x.kind.addresses() {
                    [] => String::new(),
                    a => format!(
                        ",\"addresses\":[{}]",
                        list(a.iter().map(|a| a.to_string()).collect())
                    ),
                };
                format!(
                    "{{\"suffix\":{},\"kind\":{}{addresses}}}",
                    json_string(&x.suffix),
                    json_string(x.kind.json_name())
                )
            })
            .collect();
        format!("[{}]", items.join(","))
    });
    format!(
        "{{\"attached\":{},\"path\":{},\"ifname\":{},\"label\":{},\"lo\":{},\"interface\":{},\"egress\":{},\"build\":{},\"config\":{},\"tracked_flows\":{},\"counters\":{},\"stale\":{},\"stale_reason\":{},\"ports_unknown\":{},\"rules\":{},\"rules_map_id\":{}}}",
        s.attached(),
        s.settings
            .as_ref()
            .map_or("null".to_string(), |c| json_string(c.path.name())),
        s.interface().map_or("null".to_string(), json_string),
        s.settings
            .as_ref()
            .map_or("null".to_string(), |c| json_string(&c.label)),
        hook(&s.lo()),
        hook(&s.ingress()),
        hook(&s.egress()),
        build,
        config,
        s.maps.tracked_flows.unwrap_or(0),
        counters,
        s.stale.is_some(),
        s.stale.as_deref().map_or("null".to_string(), json_string),
        s.unknown.as_deref().map_or("null".to_string(), json_string),
        rules,
        s.maps.rules_map_id
            .map_or("null".to_string(), |i| i.to_string())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redirect::rules::{Kind, Rule};

    #[test]
    fn every_counter_is_shown_with_its_value_the_decisions_too() {
        let values: Vec<u64> = (1..=Counters::COUNT as u64).collect();
        let counters = Counters::from_array(values.clone().try_into().expect("COUNT values"));
        let s = Status {
            maps: crate::inspect::maps::Read {
                counters: Some(counters),
                ..Default::default()
            },
            ..Status::default()
        };
        let text = render_text(&s);
        let json = render_json(&s);
        for (name, value) in Counters::NAMES.iter().zip(&values) {
            assert!(text.contains(&format!("\n{name}: {value}\n")), "{text}");
            assert!(json.contains(&format!("\"{name}\":{value}")), "{json}");
        }
        let n = Counters::COUNT;
        assert!(
            text.ends_with(&format!(
                "answered_disallowed: {}\ntcp_reset: {}\nflows_evicted: {}\n",
                n - 2,
                n - 1,
                n
            )),
            "{text}"
        );
        assert!(
            json.contains(&format!(
                ",\"answered_disallowed\":{},\"tcp_reset\":{},\"flows_evicted\":{}}}",
                n - 2,
                n - 1,
                n
            )),
            "{json}"
        );
    }

    #[test]
    fn rules_are_listed() {
        let s = Status {
            maps: crate::inspect::maps::Read {
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
                ..Default::default()
            },
            ..Status::default()
        };
        let text = render_text(&s);
        assert!(text.contains("name rules: 2 (other names and all TCP stay with dockerd (--only))\n  keep internal.test\n  only corp.test\n"), "{text}");
        let json = render_json(&s);
        assert!(json.ends_with(",\"rules\":[{\"suffix\":\"internal.test\",\"kind\":\"keep\"},{\"suffix\":\"corp.test\",\"kind\":\"only\"}],\"rules_map_id\":7}"), "{json}");
    }

    #[test]
    fn not_attached_json_has_every_field() {
        let json = render_json(&Status::default());
        assert_eq!(
            json,
            "{\"attached\":false,\"path\":null,\"ifname\":null,\"label\":null,\"lo\":{\"attached\":false,\"prog_id\":null},\"interface\":{\"attached\":false,\"prog_id\":null},\"egress\":{\"attached\":false,\"prog_id\":null},\"build\":null,\"config\":null,\"tracked_flows\":0,\"counters\":null,\"stale\":false,\"stale_reason\":null,\"ports_unknown\":null,\"rules\":null,\"rules_map_id\":null}"
        );
    }

    #[test]
    fn any_resolver_is_shown_in_place_of_the_nameservers() {
        use crate::settings::{RuleKinds, Settings};
        let settings = Settings {
            path: Path::Nameservers {
                nameservers: Vec::new(),
                ipv6: Some(Ipv6Settings {
                    upstream: "[fd00::53]:53".parse().unwrap(),
                    source: "fd00::2".parse().unwrap(),
                    nameservers: Vec::new(),
                }),
                any: true,
            },
            ifindex: 2,
            lo_ifindex: 1,
            source: Ipv4Addr::new(10, 0, 0, 2),
            upstream: "10.0.0.53:53".parse().unwrap(),
            edns_max: 1232,
            rules: RuleKinds::default(),
            label: "pod".into(),
        };
        let s = Status {
            settings: Some(settings.clone()),
            ..Status::default()
        };
        let text = render_text(&s);
        assert!(
            text.contains("nameservers taken over: any (port 53)\n"),
            "{text}"
        );
        assert!(
            text.contains("IPv6 nameservers taken over: any (port 53)\n"),
            "{text}"
        );
        let json = render_json(&s);
        assert!(
            json.contains("\"nameservers\":[],") && json.contains(",\"any_resolver\":true}"),
            "{json}"
        );
        let named = Status {
            settings: Some(Settings {
                path: Path::Nameservers {
                    nameservers: vec!["10.0.0.1:53".parse().unwrap()],
                    ipv6: None,
                    any: false,
                },
                ..settings
            }),
            ..Status::default()
        };
        let text = render_text(&named);
        assert!(
            text.contains("nameservers taken over: 10.0.0.1:53\nIPv6 DNS: not redirected\n"),
            "{text}"
        );
        assert!(
            render_json(&named).contains(",\"any_resolver\":false}"),
            "{}",
            render_json(&named)
        );
    }
}
