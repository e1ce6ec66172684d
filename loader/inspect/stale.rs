//! Whether the configuration in force still fits the namespace as it is now: dockerd's ports
//! (they change when a container restarts), the interface's index and addresses.

use crate::error::Error;
use crate::namespace::dockerd::{self, PortSource, Proto};
use crate::namespace::{self, interfaces};
use crate::settings::Settings;

/// dockerd's port for a protocol as the namespace shows it now.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PortNow {
    Port(u16),
    Nothing,
    /// Cannot tell: several sockets and no answer from the NAT.
    Unknown(Vec<u16>),
}

/// dockerd's port now, checked against `in_force` (the port dnsredir redirects, if any).
/// A TCP probe is never made while TCP is redirected: it would be redirected too (and counted).
fn port_now(proto: Proto, in_force: Option<u16>) -> Result<PortNow, Error> {
    let from_sockets = |ports: Vec<u16>| match (in_force, ports.as_slice()) {
        (Some(a), ports) if ports.contains(&a) => PortNow::Port(a),
        (_, []) => PortNow::Nothing,
        (_, [b]) => PortNow::Port(*b),
        _ => PortNow::Unknown(ports),
    };
    if in_force.is_none() || proto == Proto::Udp {
        // The UDP probe is an empty datagram: the programs pass it to dockerd untouched.
        let found = dockerd::find_port(proto, None)?;
        return Ok(match found.source {
            PortSource::Given(p) | PortSource::Nat(p) => PortNow::Port(p),
            PortSource::Sockets(ports) => from_sockets(ports),
        });
    }
    Ok(from_sockets(dockerd::socket_ports(proto)?))
}

/// What changed about dockerd's ports since the attach (the embedded-resolver path), and what
/// could not be told.
pub fn dockerd_changes(settings: &Settings) -> Result<(Vec<String>, Option<String>), Error> {
    let ports = settings.dockerd_ports();
    let mut unknown = Vec::new();
    let mut reasons = Vec::new();
    for (proto, in_force) in [(Proto::Udp, ports.udp), (Proto::Tcp, ports.tcp)] {
        let what = proto.name();
        match (in_force, port_now(proto, in_force)?) {
            (_, PortNow::Unknown(ports)) => unknown.push(format!(
                "cannot tell which of the {what} sockets on 127.0.0.11 (ports {}) is dockerd's",
                namespace::list(&ports)
            )),
            (Some(a), PortNow::Port(b)) if a != b => reasons.push(format!("dockerd's {what} port is now {b} but dnsredir redirects {a} (the container restarted?)")),
            (Some(a), PortNow::Nothing) => reasons.push(format!("dnsredir redirects {what} port {a} but nothing listens there any more")),
            (None, PortNow::Port(b)) => reasons.push(format!("dockerd now has a {what} port ({b}) that dnsredir does not redirect")),
            _ => {}
        }
    }
    let unknown = (!unknown.is_empty()).then(|| {
        format!(
            "{}; pass the ports with --dockerd-port / --dockerd-tcp-port if in doubt",
            unknown.join("; ")
        )
    });
    Ok((reasons, unknown))
}

/// What changed about the interface the settings name (its index, its addresses) since the
/// attach. `interface`: its name where dnsredir's filters are.
pub fn interface_changes(settings: &Settings, interface: &str) -> Vec<String> {
    let mut reasons = Vec::new();
    match interfaces::interface(interface) {
        Ok(now) if now.addr != Some(settings.source) => reasons.push(format!(
            "{interface}'s address is now {} but dnsredir sends from {}",
            now.addr.map_or("none".to_string(), |a| a.to_string()),
            settings.source
        )),
        Ok(now) if now.ifindex != settings.ifindex => reasons.push(format!(
            "{interface} is now ifindex {} but dnsredir sends to {}",
            now.ifindex, settings.ifindex
        )),
        Err(_) => reasons.push(format!("{interface} is gone")),
        _ => {}
    }
    if let Some(v6) = settings.ipv6() {
        match interfaces::ipv6_of(interface) {
            Ok(now) if now != Some(v6.source) => reasons.push(format!(
                "{interface}'s IPv6 address is now {} but dnsredir expects IPv6 answers at {}",
                now.map_or("none".to_string(), |a| a.to_string()),
                v6.source
            )),
            _ => {}
        }
    }
    reasons
}
