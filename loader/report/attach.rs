//! The one line an attach prints: what now goes where.

use crate::namespace;
use crate::redirect::{AttachRequest, Attached};
use crate::settings::Path;

pub fn summary(request: &AttachRequest, a: &Attached) -> String {
    let s = &a.settings;
    let interface = &a.interface;
    match &s.path {
        Path::Nameservers {
            ipv6, any: true, ..
        } => {
            let (v6, not6) = match ipv6 {
                Some(v6) => (
                    format!(", IPv6 DNS to any server now goes to {}", v6.upstream),
                    "",
                ),
                None => (String::new(), "; IPv6 DNS is not redirected"),
            };
            format!(
                "dnsredir: attached to {}: DNS to any server on port 53 now goes to {}{v6}, answers from the server asked (taken on {interface}'s egress; not the upstream, not {interface}'s own address{not6})",
                request.target, s.upstream
            )
        }
        Path::Nameservers {
            nameservers, ipv6, ..
        } => {
            let mut to = Vec::new();
            if !nameservers.is_empty() {
                to.push(format!(
                    "DNS to the nameservers {} now goes to {}",
                    namespace::list(nameservers),
                    s.upstream
                ));
            }
            let v6 = match ipv6 {
                Some(v6) if !v6.nameservers.is_empty() => {
                    to.push(format!(
                        "DNS to the IPv6 nameservers {} now goes to {}",
                        namespace::list(&v6.nameservers),
                        v6.upstream
                    ));
                    String::new()
                }
                Some(_) => "; no IPv6 nameserver to take over".to_string(),
                None => "; IPv6 DNS is not redirected".to_string(),
            };
            format!(
                "dnsredir: attached to {}: {} (taken on {interface}'s egress{v6})",
                request.target,
                to.join(", ")
            )
        }
        Path::EmbeddedResolver {
            ports,
            redirect_all,
        } => {
            let port = |p: Option<u16>| p.map_or("not redirected".to_string(), |p| p.to_string());
            format!(
                "dnsredir: attached to {}: DNS to 127.0.0.11 (dockerd UDP port {}, TCP port {}) now goes to {} from {} on {interface}{}{}",
                request.target,
                port(ports.udp),
                port(ports.tcp),
                s.upstream,
                s.source,
                if *redirect_all { ", all names" } else { "; single-label names stay with dockerd" },
                match request.rules.rules.len() {
                    0 => String::new(),
                    n => format!("; {n} name rules (see --status)"),
                }
            )
        }
    }
}
