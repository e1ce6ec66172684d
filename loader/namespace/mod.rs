//! Facts about the target namespace, looked up, never assumed: its interfaces and routes
//! ([`interfaces`]), the ports Docker's embedded resolver listens on ([`dockerd`]), the
//! nameservers its processes use ([`resolv_conf`], read through [`container_file`]) and whether
//! it is the host's own ([`host`]). Everything here reads (or probes) the calling thread's
//! namespace.

pub mod container_file;
pub mod dockerd;
pub mod host;
pub mod interfaces;
pub mod resolv_conf;

use container_file::Refusal;
use dockerd::DOCKER_RESOLVER;
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Debug)]
pub enum NamespaceError {
    NoInterface(String),
    NoIpv4(String),
    Interfaces(io::Error),
    Proc {
        path: PathBuf,
        source: io::Error,
    },
    NoRoute {
        upstream: IpAddr,
        interface: String,
        source: io::Error,
    },
    Ambiguous {
        proto: &'static str,
        ports: Vec<u16>,
    },
    /// The target shares the host's network namespace (a `--network host` container).
    HostNamespace(String),
    /// No embedded resolver, and the namespace's nameservers must be named (`--netns`).
    NameserversUnknown,
    /// resolv.conf names no nameserver that can be taken over.
    NoNameservers(PathBuf),
    /// The namespace's route to a nameserver leaves through another interface: its queries
    /// would never pass the interface's egress.
    NameserverElsewhere {
        nameserver: IpAddr,
        interface: String,
        problem: String,
    },
    /// resolv.conf names a loopback nameserver: its queries never leave through the interface.
    LoopbackNameserver(IpAddr),
    /// The routes to what one attach takes over leave through two interfaces.
    InterfacesDisagree {
        first: (IpAddr, String),
        second: (IpAddr, String),
    },
    /// A file of the container (`path`, as the container names it, in the root of `pid`) that
    /// dnsredir does not read: one it cannot open inside that root, or one not safe to read.
    ContainerFile {
        pid: u32,
        path: &'static str,
        refusal: Refusal,
    },
}

impl fmt::Display for NamespaceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NamespaceError::NoInterface(name) => write!(f, "the namespace has no interface {name}"),
            NamespaceError::NoIpv4(name) => write!(f, "{name} has no IPv4 address"),
            NamespaceError::Interfaces(e) => write!(f, "cannot list the namespace's interfaces: {e}"),
            NamespaceError::Proc { path, source } => write!(f, "cannot read {}: {source}", path.display()),
            NamespaceError::NoRoute { upstream, interface, source } => write!(
                f,
                "the upstream {upstream} cannot be reached through {interface} ({source})"
            ),
            NamespaceError::HostNamespace(what) => write!(f, "{what} is in the host's network namespace: taking over its nameservers would take over the whole host's DNS; nothing attached"),
            NamespaceError::NameserversUnknown => write!(f, "nothing listens on {DOCKER_RESOLVER} in this namespace and its nameservers are unknown with --netns"),
            NamespaceError::NoNameservers(path) => write!(f, "{} names no nameserver to take over (IPv6 ones count only with an IPv6 --upstream)", path.display()),
            NamespaceError::NameserverElsewhere { nameserver, interface, problem } => write!(f, "queries to the nameserver {nameserver} do not leave through {interface} ({problem}), so they cannot be taken on its egress"),
            NamespaceError::LoopbackNameserver(addr) => write!(f, "the nameserver {addr} is a loopback address: its queries never leave through the interface, so they cannot be taken on its egress"),
            NamespaceError::InterfacesDisagree { first, second } => write!(f, "the container's route to {} leaves through {} but its route to {} through {}: one attach takes one interface", first.0, first.1, second.0, second.1),
            NamespaceError::ContainerFile { pid, path, refusal } => write!(f, "cannot read the container's {path} (pid {pid}): {refusal}; nothing attached"),
            NamespaceError::Ambiguous { proto, ports } => write!(f, "several {proto} sockets listen on {DOCKER_RESOLVER} (ports {}) and Docker's NAT did not say which is dockerd's: say it with --dockerd-port / --dockerd-tcp-port", list(ports)),
        }
    }
}

impl std::error::Error for NamespaceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NamespaceError::Interfaces(source)
            | NamespaceError::Proc { source, .. }
            | NamespaceError::NoRoute { source, .. } => Some(source),
            NamespaceError::ContainerFile { refusal, .. } => Some(refusal),
            _ => None,
        }
    }
}

/// Values as "8.8.8.8:53, 8.8.4.4:53", "[fd00::53]:53" or "41000, 41552".
pub fn list<A: std::fmt::Display>(values: &[A]) -> String {
    values
        .iter()
        .map(A::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
