//! Which path an attach takes, decided from what the namespace shows — a value, not an error
//! caught: `--resolver` (addresses, or `any`) names the nameservers path; else Docker's
//! embedded resolver where its ports are found; else the nameservers of the process's
//! resolv.conf. And through which interface: the one `--interface` names, else the one the
//! container's routes use.

use super::{AttachRequest, Log, Resolvers};
use crate::abi::MAX_NAMESERVERS;
use crate::error::Error;
use crate::namespace::dockerd::{self, PortFinding, PortSource, Proto, ResolverPorts};
use crate::namespace::interfaces;
use crate::namespace::resolv_conf::{self, Nameservers};
use crate::namespace::NamespaceError;
use crate::target::Target;
use std::net::{IpAddr, SocketAddr};

/// The path chosen, with the facts it was chosen from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detected {
    EmbeddedResolver {
        ports: ResolverPorts,
        /// One line per protocol left with dockerd because its port could not be told.
        left_with_dockerd: Vec<String>,
    },
    /// These nameservers: at most [`MAX_NAMESERVERS`] per family; IPv6 ones only with an IPv6
    /// upstream.
    Nameservers(Nameservers),
    /// The nameservers path for every server on port 53 (`--resolver any`).
    AnyResolver,
}

/// What dockerd's two ports tell, before resolv.conf is looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dockerd {
    /// At least one protocol's port is known.
    Found {
        ports: ResolverPorts,
        left_with_dockerd: Vec<String>,
    },
    /// No embedded resolver in this namespace.
    Absent,
}

/// Decides from dockerd's port findings (pure): a known port makes the embedded-resolver path;
/// several candidates and no port for either protocol is an error; nothing at all means no
/// embedded resolver.
pub fn dockerd_from(udp: &PortFinding, tcp: &PortFinding) -> Result<Dockerd, NamespaceError> {
    let ports = ResolverPorts {
        udp: udp.source.port(),
        tcp: tcp.source.port(),
    };
    if ports.udp.is_some() || ports.tcp.is_some() {
        let left_with_dockerd = [udp, tcp]
            .into_iter()
            .filter_map(PortFinding::left_with_dockerd)
            .collect();
        return Ok(Dockerd::Found {
            ports,
            left_with_dockerd,
        });
    }
    match [udp, tcp]
        .into_iter()
        .find_map(|f| Some((f.proto, f.source.ambiguous()?)))
    {
        Some((proto, ports)) => Err(NamespaceError::Ambiguous {
            proto: proto.name(),
            ports: ports.to_vec(),
        }),
        None => Ok(Dockerd::Absent),
    }
}

/// Looks at the namespace (the calling thread is in it) and decides the path.
pub fn path(request: &AttachRequest, log: Log) -> Result<Detected, Error> {
    match &request.resolvers {
        Resolvers::Named(nameservers) => return Ok(Detected::Nameservers(nameservers.clone())),
        Resolvers::Any => return Ok(Detected::AnyResolver),
        Resolvers::FromNamespace => {}
    }
    let udp = dockerd::find_port(Proto::Udp, request.dockerd_ports.udp)?;
    let tcp = dockerd::find_port(Proto::Tcp, request.dockerd_ports.tcp)?;
    for f in [&udp, &tcp] {
        if let Some(problem) = &f.nat_problem {
            log(format!(
                "{}: Docker's NAT told nothing: {problem}",
                f.proto.name()
            ));
        }
        log(format!("{} port: {}", f.proto.name(), f.source.how()));
    }
    match dockerd_from(&udp, &tcp)? {
        Dockerd::Found {
            ports,
            left_with_dockerd,
        } => {
            let describe = |f: &PortFinding| match (&f.source, f.source.port()) {
                (PortSource::Given(p), _) => format!("{p} (given)"),
                (_, Some(p)) => format!("{p} (found)"),
                (_, None) => "none found, not redirected".to_string(),
            };
            log(format!(
                "dockerd's resolver on {}: UDP port {}, TCP port {}",
                dockerd::DOCKER_RESOLVER,
                describe(&udp),
                describe(&tcp)
            ));
            Ok(Detected::EmbeddedResolver {
                ports,
                left_with_dockerd,
            })
        }
        Dockerd::Absent => {
            let Target::Pid(pid) = &request.target else {
                return Err(NamespaceError::NameserversUnknown.into());
            };
            // IPv6 nameservers are taken with an IPv6 upstream, or to answer what rules decide.
            let with_v6 = request.upstream6.is_some() || request.rules.kinds().decide;
            let nameservers = resolv_conf::pid_nameservers(*pid, MAX_NAMESERVERS, with_v6)?;
            let read_from = resolv_conf::resolv_conf_path(*pid).display().to_string();
            log(format!(
                "no embedded resolver on {}: taking over the nameservers of {read_from}",
                dockerd::DOCKER_RESOLVER
            ));
            Ok(Detected::Nameservers(nameservers))
        }
    }
}

/// The addresses whose routes decide the interface: the upstream on the embedded-resolver
/// path; on the nameservers path the nameservers taken over (IPv6 ones only with an IPv6
/// upstream) and the upstreams, whose queries leave where the nameservers' would; with any
/// server taken, the upstreams alone (there is no list to route). A policy without an
/// upstream on the embedded-resolver path has none: the default interface then (its answers
/// never leave lo; the reply program sits there as on every attachment, with nothing to do).
pub fn routed_peers(request: &AttachRequest, detected: &Detected) -> Vec<SocketAddr> {
    let upstream = request.upstream.map(SocketAddr::from).into_iter();
    match detected {
        Detected::EmbeddedResolver { .. } => upstream.collect(),
        Detected::AnyResolver => upstream
            .chain(request.upstream6.map(SocketAddr::from))
            .collect(),
        Detected::Nameservers(nameservers) => {
            let v6 = request.upstream6.iter().flat_map(|up6| {
                nameservers
                    .v6
                    .iter()
                    .map(|&n| SocketAddr::from(n))
                    .chain(std::iter::once(SocketAddr::from(*up6)))
            });
            let v4 = nameservers.v4.iter().map(|&n| SocketAddr::from(n));
            v4.chain(upstream).chain(v6).collect()
        }
    }
}

/// The interface to attach on (pure): the one given, else the one every routed peer's route
/// leaves through (`routes`: each peer with its interface, `None` where there is no route).
/// Two interfaces are refused, naming both; no route at all falls back to eth0, where the
/// route check then says what is missing.
pub fn interface_from(
    given: Option<&str>,
    routes: &[(SocketAddr, Option<String>)],
) -> Result<String, NamespaceError> {
    if let Some(name) = given {
        return Ok(name.to_string());
    }
    let mut chosen: Option<(IpAddr, &str)> = None;
    for (peer, iface) in routes {
        let Some(iface) = iface.as_deref() else {
            continue;
        };
        match chosen {
            None => chosen = Some((peer.ip(), iface)),
            Some((first, name)) if name != iface => {
                return Err(NamespaceError::InterfacesDisagree {
                    first: (first, name.to_string()),
                    second: (peer.ip(), iface.to_string()),
                })
            }
            Some(_) => {}
        }
    }
    Ok(chosen
        .map_or(DEFAULT_INTERFACE, |(_, name)| name)
        .to_string())
}

/// The interface name Docker, Podman and CNI give a container's first network.
pub const DEFAULT_INTERFACE: &str = "eth0";

/// [`interface_from`] with the namespace's routes (the calling thread is in it); none are
/// looked up when `--interface` names it.
pub fn interface(request: &AttachRequest, detected: &Detected) -> Result<String, Error> {
    if let Some(given) = &request.interface {
        return Ok(given.clone());
    }
    let routes: Vec<_> = routed_peers(request, detected)
        .into_iter()
        .map(|peer| (peer, interfaces::route_interface(peer)))
        .collect();
    Ok(interface_from(request.interface.as_deref(), &routes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(proto: Proto, source: PortSource) -> PortFinding {
        PortFinding {
            proto,
            source,
            nat_problem: None,
        }
    }

    #[test]
    fn a_port_for_either_protocol_is_the_embedded_resolver() {
        let udp = finding(Proto::Udp, PortSource::Nat(41552));
        let tcp = finding(Proto::Tcp, PortSource::Sockets(vec![1, 2]));
        let Ok(Dockerd::Found {
            ports,
            left_with_dockerd,
        }) = dockerd_from(&udp, &tcp)
        else {
            panic!("found");
        };
        assert_eq!(
            ports,
            ResolverPorts {
                udp: Some(41552),
                tcp: None
            }
        );
        assert_eq!(left_with_dockerd.len(), 1, "TCP stays with dockerd");
        assert!(left_with_dockerd[0].starts_with("TCP stays with dockerd"));
    }

    #[test]
    fn nothing_on_127_0_0_11_is_no_embedded_resolver() {
        let udp = finding(Proto::Udp, PortSource::Sockets(vec![]));
        let tcp = finding(Proto::Tcp, PortSource::Sockets(vec![]));
        assert_eq!(dockerd_from(&udp, &tcp).ok(), Some(Dockerd::Absent));
    }

    #[test]
    fn several_sockets_and_no_port_is_an_error_not_another_path() {
        let udp = finding(Proto::Udp, PortSource::Sockets(vec![7, 8]));
        let tcp = finding(Proto::Tcp, PortSource::Sockets(vec![]));
        assert!(matches!(
            dockerd_from(&udp, &tcp),
            Err(NamespaceError::Ambiguous { proto: "UDP", .. })
        ));
    }

    fn peer(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_interface_is_where_the_routes_leave() {
        let routes = [
            (peer("10.0.0.53:53"), Some("eth1".to_string())),
            (peer("10.0.0.54:53"), Some("eth1".to_string())),
            (peer("[fd00::53]:53"), None),
        ];
        assert_eq!(interface_from(None, &routes).unwrap(), "eth1");
        assert_eq!(interface_from(Some("eth7"), &routes).unwrap(), "eth7");
        assert_eq!(interface_from(None, &[]).unwrap(), "eth0");
        assert_eq!(
            interface_from(None, &[(peer("10.0.0.53:53"), None)]).unwrap(),
            "eth0"
        );
    }

    #[test]
    fn two_interfaces_are_refused_naming_both() {
        let routes = [
            (peer("10.0.0.53:53"), Some("eth0".to_string())),
            (peer("10.1.0.53:53"), Some("eth1".to_string())),
        ];
        let e = interface_from(None, &routes).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("eth0") && text.contains("eth1"), "{text}");
        assert!(
            text.contains("10.0.0.53") && text.contains("10.1.0.53"),
            "{text}"
        );
        // --interface still decides.
        assert_eq!(interface_from(Some("eth1"), &routes).unwrap(), "eth1");
    }

    #[test]
    fn any_resolver_routes_the_upstreams_alone() {
        let mut request = AttachRequest {
            target: Target::Path("/run/netns/pod".into()),
            interface: None,
            upstream: Some("10.0.0.53:53".parse().unwrap()),
            upstream6: None,
            resolvers: Resolvers::Any,
            dockerd_ports: ResolverPorts::default(),
            redirect_all: false,
            probe_upstream: false,
            edns_max: 1232,
            rules: Default::default(),
            block_refused: false,
            label: "pod".into(),
        };
        let mut log = |_: String| {};
        assert_eq!(path(&request, &mut log).ok(), Some(Detected::AnyResolver));
        assert_eq!(
            routed_peers(&request, &Detected::AnyResolver),
            vec![peer("10.0.0.53:53")]
        );
        request.upstream6 = Some("[fd00::53]:5353".parse().unwrap());
        assert_eq!(
            routed_peers(&request, &Detected::AnyResolver),
            vec![peer("10.0.0.53:53"), peer("[fd00::53]:5353")]
        );
    }
}
