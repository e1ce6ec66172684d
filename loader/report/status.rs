//! `--status` as text for people and as one JSON object for scripts.

use crate::abi::FLAG_REDIRECT_ALL;
use crate::inspect::{HookStatus, Status};
use crate::layout::{self, addr_from_raw, port_from_raw};
use crate::report::json_string;

/// The human-readable report.
pub fn render_text(s: &Status, interface: &str) -> String {
    let mut out = String::new();
    let hook = |name: &str, h: &HookStatus| match (h.attached, h.prog_id) {
        (true, Some(id)) => format!("{name} ingress: attached (program id {id})\n"),
        (true, None) => format!("{name} ingress: attached\n"),
        _ => format!("{name} ingress: not attached\n"),
    };
    out.push_str(if s.attached() {
        "dnsredir: attached\n"
    } else {
        "dnsredir: not attached\n"
    });
    out.push_str(&hook("lo", &s.lo));
    out.push_str(&hook(interface, &s.interface));
    if let Some(c) = &s.config {
        out.push_str(&format!(
            "upstream: {}\ncontainer address: {}\nresolver: {} (dockerd UDP port {}, TCP port {})\nsingle-label names: {}\n",
            layout::upstream_of(c),
            addr_from_raw(c.container_addr),
            addr_from_raw(c.resolver_addr),
            port_or_none(c.dockerd_udp_port),
            port_or_none(c.dockerd_tcp_port),
            if c.flags & FLAG_REDIRECT_ALL != 0 { "redirected too (--redirect-all)" } else { "left to dockerd" }
        ));
    }
    if let Some(n) = s.tracked_flows {
        out.push_str(&format!("tracked flows: {n}\n"));
    }
    if let Some(c) = &s.counters {
        for (name, value) in layout::COUNTER_NAMES
            .iter()
            .zip(layout::counters_as_array(c))
        {
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
            "{{\"upstream\":{},\"container_addr\":{},\"resolver_addr\":{},\"dockerd_udp_port\":{},\"dockerd_tcp_port\":{},\"redirect_all\":{}}}",
            json_string(&layout::upstream_of(c).to_string()),
            json_string(&addr_from_raw(c.container_addr).to_string()),
            json_string(&addr_from_raw(c.resolver_addr).to_string()),
            port(c.dockerd_udp_port),
            port(c.dockerd_tcp_port),
            c.flags & FLAG_REDIRECT_ALL != 0
        )
    });
    let counters = s.counters.as_ref().map_or("null".to_string(), |c| {
        let fields: Vec<String> = layout::COUNTER_NAMES
            .iter()
            .zip(layout::counters_as_array(c))
            .map(|(n, v)| format!("\"{n}\":{v}"))
            .collect();
        format!("{{{}}}", fields.join(","))
    });
    format!(
        "{{\"attached\":{},\"lo\":{},\"interface\":{},\"config\":{},\"tracked_flows\":{},\"counters\":{},\"stale\":{},\"stale_reason\":{},\"ports_unknown\":{}}}",
        s.attached(),
        hook(&s.lo),
        hook(&s.interface),
        config,
        s.tracked_flows.unwrap_or(0),
        counters,
        s.stale.is_some(),
        s.stale.as_deref().map_or("null".to_string(), json_string),
        s.unknown.as_deref().map_or("null".to_string(), json_string)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_attached_json_has_every_field() {
        let json = render_json(&Status::default());
        assert_eq!(
            json,
            "{\"attached\":false,\"lo\":{\"attached\":false,\"prog_id\":null},\"interface\":{\"attached\":false,\"prog_id\":null},\"config\":null,\"tracked_flows\":0,\"counters\":null,\"stale\":false,\"stale_reason\":null,\"ports_unknown\":null}"
        );
    }
}
