//! Facts about the target namespace, looked up, never assumed: interface indexes, the
//! interface's address, the route to the upstream, and the ports Docker's embedded resolver
//! listens on behind its DNAT (asked of the NAT itself, else read off the sockets on
//! 127.0.0.11). Everything here reads (or probes) the calling thread's namespace.

use crate::net::conntrack::{self, Tuple};
use std::ffi::{CStr, CString};
use std::fmt;
use std::io;
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, TcpStream, UdpSocket,
};
use std::path::PathBuf;
use std::time::Duration;

/// Where applications in a Docker container send DNS (`/etc/resolv.conf`).
pub const DOCKER_RESOLVER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);

#[derive(Debug)]
pub enum TargetError {
    NoInterface(String),
    NoIpv4(String),
    Interfaces(io::Error),
    Proc {
        path: PathBuf,
        source: io::Error,
    },
    NoResolver,
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
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetError::NoInterface(name) => write!(f, "the namespace has no interface {name}"),
            TargetError::NoIpv4(name) => write!(f, "{name} has no IPv4 address"),
            TargetError::Interfaces(e) => write!(f, "cannot list the namespace's interfaces: {e}"),
            TargetError::Proc { path, source } => write!(f, "cannot read {}: {source}", path.display()),
            TargetError::NoResolver => write!(
                f,
                "nothing listens on {DOCKER_RESOLVER} in this namespace, so there is no Docker embedded resolver to redirect"
            ),
            TargetError::NoRoute { upstream, interface, source } => write!(
                f,
                "the upstream {upstream} cannot be reached through {interface} ({source})"
            ),
            TargetError::HostNamespace(what) => write!(f, "{what} is in the host's network namespace: taking over its nameservers would take over the whole host's DNS; nothing attached"),
            TargetError::NameserversUnknown => write!(f, "nothing listens on {DOCKER_RESOLVER} in this namespace and its nameservers are unknown with --netns"),
            TargetError::NoNameservers(path) => write!(f, "{} names no nameserver to take over (IPv6 ones count only with an IPv6 --upstream)", path.display()),
            TargetError::NameserverElsewhere { nameserver, interface, problem } => write!(f, "queries to the nameserver {nameserver} do not leave through {interface} ({problem}), so they cannot be taken on its egress"),
            TargetError::LoopbackNameserver(addr) => write!(f, "the nameserver {addr} is a loopback address: its queries never leave through the interface, so they cannot be taken on its egress"),
            TargetError::Ambiguous { proto, ports } => write!(f, "several {proto} sockets listen on {DOCKER_RESOLVER} (ports {}) and Docker's NAT did not say which is dockerd's: say it with --dockerd-port / --dockerd-tcp-port", list(ports)),
        }
    }
}

impl std::error::Error for TargetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TargetError::Interfaces(source)
            | TargetError::Proc { source, .. }
            | TargetError::NoRoute { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interface {
    pub ifindex: u32,
    pub addr: Option<Ipv4Addr>,
}

/// Looks an interface up by name in the calling thread's network namespace.
pub fn interface(name: &str) -> Result<Interface, TargetError> {
    let c_name = CString::new(name).map_err(|_| TargetError::NoInterface(name.to_string()))?;
    // SAFETY: a NUL-terminated string.
    let ifindex = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    if ifindex == 0 {
        return Err(TargetError::NoInterface(name.to_string()));
    }
    Ok(Interface {
        ifindex,
        addr: ipv4_of(name)?,
    })
}

/// The interface's addresses in the order the kernel lists them (the primary one first).
fn addresses_of(name: &str) -> Result<Vec<IpAddr>, TargetError> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list`, freed below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Err(TargetError::Interfaces(io::Error::last_os_error()));
    }
    let mut found = Vec::new();
    let mut cursor = list;
    while !cursor.is_null() {
        // SAFETY: a node of the list getifaddrs returned; its fields are valid until freeifaddrs.
        let entry = unsafe { &*cursor };
        cursor = entry.ifa_next;
        if entry.ifa_addr.is_null() || entry.ifa_name.is_null() {
            continue;
        }
        // SAFETY: as above.
        let entry_name = unsafe { CStr::from_ptr(entry.ifa_name) };
        if entry_name.to_bytes() != name.as_bytes() {
            continue;
        }
        // SAFETY: as above; the family says which sockaddr it is.
        match unsafe { (*entry.ifa_addr).sa_family } as i32 {
            libc::AF_INET => {
                // SAFETY: AF_INET entries hold a sockaddr_in.
                let sin = unsafe { &*(entry.ifa_addr as *const libc::sockaddr_in) };
                found.push(IpAddr::V4(Ipv4Addr::from(
                    sin.sin_addr.s_addr.to_ne_bytes(),
                )));
            }
            libc::AF_INET6 => {
                // SAFETY: AF_INET6 entries hold a sockaddr_in6.
                let sin6 = unsafe { &*(entry.ifa_addr as *const libc::sockaddr_in6) };
                found.push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
            }
            _ => {}
        }
    }
    // SAFETY: the list from getifaddrs, freed once.
    unsafe { libc::freeifaddrs(list) };
    Ok(found)
}

/// The first IPv4 address on the interface (the primary one).
fn ipv4_of(name: &str) -> Result<Option<Ipv4Addr>, TargetError> {
    Ok(addresses_of(name)?.into_iter().find_map(|a| match a {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(_) => None,
    }))
}

/// The interface's first IPv6 address of global scope (ULAs included; not link-local), the
/// source of the namespace's IPv6 queries to its nameservers.
pub fn ipv6_of(name: &str) -> Result<Option<Ipv6Addr>, TargetError> {
    Ok(addresses_of(name)?.into_iter().find_map(|a| match a {
        IpAddr::V6(v6) if is_global_scope(v6) => Some(v6),
        _ => None,
    }))
}

/// Not loopback, link-local, multicast or unspecified: an address routed beyond the link.
pub fn is_global_scope(addr: Ipv6Addr) -> bool {
    let link_local = addr.segments()[0] & 0xffc0 == 0xfe80;
    !(addr.is_loopback() || addr.is_unspecified() || addr.is_multicast() || link_local)
}

/// What a route is checked to: the error says which.
#[derive(Debug, Clone, Copy)]
pub enum RouteTo {
    /// The upstream, where redirected queries go.
    Upstream(IpAddr),
    /// A nameserver whose queries are taken on the interface's egress.
    Nameserver(SocketAddr),
}

/// Checks that the container's own routing sends traffic to `to` out of `interface`, whose
/// address is `source` (of the same family). (`bpf_redirect_neigh` pins the interface, and with
/// no route there the kernel would just ARP for the upstream on that link, so a bad upstream
/// would only show as timeouts; a nameserver reached elsewhere is never seen on its egress.)
pub fn check_route(
    interface: &str,
    source: impl Into<IpAddr>,
    to: RouteTo,
) -> Result<(), TargetError> {
    let source = source.into();
    let (peer, route) = match to {
        RouteTo::Upstream(ip) => (SocketAddr::new(ip, 53), "the container's route"),
        RouteTo::Nameserver(addr) => (addr, "the route"),
    };
    let leaves = route_source(peer).and_then(|chosen| {
        if chosen == source {
            return Ok(());
        }
        Err(io::Error::other(format!(
            "{route} to it leaves from {chosen}, not {interface}'s {source}"
        )))
    });
    let interface = interface.to_string();
    leaves.map_err(|e| match to {
        RouteTo::Upstream(upstream) => TargetError::NoRoute {
            upstream,
            interface,
            source: e,
        },
        RouteTo::Nameserver(_) => TargetError::NameserverElsewhere {
            nameserver: peer.ip(),
            interface,
            problem: e.to_string(),
        },
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResolverPorts {
    pub udp: Option<u16>,
    pub tcp: Option<u16>,
}

/// Ports bound on `addr` in a /proc/net/{udp,tcp} table; for TCP only listening sockets.
pub fn ports_in_proc_table(table: &str, addr: Ipv4Addr, tcp: bool) -> Vec<u16> {
    let want = format!("{:08X}", u32::from_ne_bytes(addr.octets()));
    let mut ports: Vec<u16> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let local = fields.nth(1)?;
            let state = fields.nth(1)?;
            let (ip, port) = local.split_once(':')?;
            if !ip.eq_ignore_ascii_case(&want) || (tcp && state != "0A") {
                return None;
            }
            u16::from_str_radix(port, 16).ok()
        })
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// A protocol dockerd's embedded resolver serves, with the flag that names its port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Udp,
    Tcp,
}

impl Proto {
    pub fn name(self) -> &'static str {
        match self {
            Proto::Udp => "UDP",
            Proto::Tcp => "TCP",
        }
    }

    /// The command-line flag that gives dockerd's port for this protocol.
    pub fn flag(self) -> &'static str {
        match self {
            Proto::Udp => "--dockerd-port",
            Proto::Tcp => "--dockerd-tcp-port",
        }
    }

    fn table(self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        }
    }
}

/// How dockerd's port for one protocol was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortSource {
    /// On the command line.
    Given(u16),
    /// Where Docker's DNAT sends 127.0.0.11:53 (a probe, then its conntrack entry).
    Nat(u16),
    /// The sockets bound to 127.0.0.11 (none, one or several): when the NAT told nothing.
    Sockets(Vec<u16>),
}

impl PortSource {
    /// The port to redirect, when it is certain.
    pub fn port(&self) -> Option<u16> {
        match self {
            PortSource::Given(p) | PortSource::Nat(p) => Some(*p),
            PortSource::Sockets(ports) => match ports.as_slice() {
                [p] => Some(*p),
                _ => None,
            },
        }
    }

    /// Several candidates and nothing to choose between them.
    pub fn ambiguous(&self) -> Option<&[u16]> {
        match self {
            PortSource::Sockets(ports) if ports.len() > 1 => Some(ports),
            _ => None,
        }
    }

    /// How the port was found, for --verbose.
    pub fn how(&self) -> String {
        match self {
            PortSource::Given(_) => "given".to_string(),
            PortSource::Nat(p) => {
                format!("from Docker's NAT ({DOCKER_RESOLVER}:53 goes to {DOCKER_RESOLVER}:{p})")
            }
            PortSource::Sockets(ports) => match ports.as_slice() {
                [] => format!("none: Docker's NAT sends nothing elsewhere and no socket listens on {DOCKER_RESOLVER}"),
                [_] => format!("from the sockets on {DOCKER_RESOLVER}"),
                many => format!(
                    "unknown: Docker's NAT did not say and several sockets listen on {DOCKER_RESOLVER} (ports {})",
                    list(many)
                ),
            },
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

/// dockerd's port for one protocol, and why the NAT probe told nothing when it did not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortFinding {
    pub proto: Proto,
    pub source: PortSource,
    pub nat_problem: Option<String>,
}

impl PortFinding {
    /// The one line for a protocol left with dockerd because its port is ambiguous.
    pub fn left_with_dockerd(&self) -> Option<String> {
        let ports = self.source.ambiguous()?;
        let name = self.proto.name();
        Some(format!(
            "{name} stays with dockerd: several {name} sockets listen on {DOCKER_RESOLVER} (ports {}) and Docker's NAT did not say which is dockerd's; pass {} PORT to redirect {name} too",
            list(ports),
            self.proto.flag()
        ))
    }
}

/// dockerd's port for `proto`: the one given, else where Docker's NAT sends 127.0.0.11:53,
/// else the sockets bound to 127.0.0.11. Only reading /proc can fail.
pub fn find_port(proto: Proto, given: Option<u16>) -> Result<PortFinding, TargetError> {
    if let Some(port) = given {
        return Ok(PortFinding {
            proto,
            source: PortSource::Given(port),
            nat_problem: None,
        });
    }
    let nat_problem = match nat_port(proto) {
        Ok(Some(port)) => {
            return Ok(PortFinding {
                proto,
                source: PortSource::Nat(port),
                nat_problem: None,
            })
        }
        Ok(None) => None,
        Err(problem) => Some(problem),
    };
    Ok(PortFinding {
        proto,
        source: PortSource::Sockets(socket_ports(proto)?),
        nat_problem,
    })
}

/// The ports of the sockets bound to 127.0.0.11 in this namespace (TCP: listening ones).
pub fn socket_ports(proto: Proto) -> Result<Vec<u16>, TargetError> {
    let path = PathBuf::from(format!("/proc/thread-self/net/{}", proto.table()));
    let table =
        std::fs::read_to_string(&path).map_err(|source| TargetError::Proc { path, source })?;
    Ok(ports_in_proc_table(
        &table,
        DOCKER_RESOLVER,
        proto == Proto::Tcp,
    ))
}

/// How long the TCP probe waits for its connection.
const TCP_PROBE_TIMEOUT: Duration = Duration::from_millis(300);

/// Where Docker's DNAT sends 127.0.0.11:53 for `proto`: a probe goes there from a fresh
/// socket (UDP: an empty datagram, which no resolver answers; TCP: a connection closed at
/// once), and the probe's conntrack entry says where it went. `Ok(None)`: no NAT to another
/// port on 127.0.0.11. `Err`: why the probe could not tell (for --verbose).
pub fn nat_port(proto: Proto) -> Result<Option<u16>, String> {
    let resolver = SocketAddrV4::new(DOCKER_RESOLVER, 53);
    let (ipproto, local) = match proto {
        Proto::Udp => {
            let local = udp_probe(resolver).map_err(|e| format!("UDP probe: {e}"))?;
            (libc::IPPROTO_UDP, local)
        }
        Proto::Tcp => {
            match TcpStream::connect_timeout(&resolver.into(), TCP_PROBE_TIMEOUT) {
                // Kept open until conntrack has answered; dropped (closed) after.
                Ok(stream) => {
                    let local = v4(stream.local_addr().map_err(|e| format!("TCP probe: {e}"))?)?;
                    let port = nat_target(libc::IPPROTO_TCP, local, resolver);
                    drop(stream);
                    return port;
                }
                // Nothing accepts on 127.0.0.11:53 or where the NAT sends it.
                Err(e) => return Err(format!("TCP probe to {resolver}: {e}")),
            }
        }
    };
    nat_target(ipproto, local, resolver)
}

fn udp_probe(resolver: SocketAddrV4) -> io::Result<SocketAddrV4> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    socket.send_to(&[], resolver)?;
    v4(socket.local_addr()?).map_err(io::Error::other)
}

fn v4(addr: std::net::SocketAddr) -> Result<SocketAddrV4, String> {
    match addr {
        std::net::SocketAddr::V4(a) => Ok(a),
        std::net::SocketAddr::V6(a) => Err(format!("the probe got an IPv6 address {a}")),
    }
}

fn nat_target(
    ipproto: i32,
    local: SocketAddrV4,
    resolver: SocketAddrV4,
) -> Result<Option<u16>, String> {
    let orig = Tuple {
        proto: ipproto as u8,
        src: local,
        dst: resolver,
    };
    match conntrack::reply_tuple(&orig) {
        Ok(Some(reply)) => Ok(dnat_port(&orig, &reply)),
        Ok(None) => Err("conntrack has no entry for the probe (no NAT in this namespace?)".into()),
        Err(e) => Err(format!("asking conntrack about the probe: {e}")),
    }
}

/// The port a DNAT sent `orig` to, from its reply tuple: replies then come from that port on
/// 127.0.0.11. `None` when the flow was not sent to another port of 127.0.0.11.
pub fn dnat_port(orig: &Tuple, reply: &Tuple) -> Option<u16> {
    let from = reply.src;
    (*from.ip() == DOCKER_RESOLVER && from.port() != orig.dst.port() && from.port() != 0)
        .then_some(from.port())
}

/// The address this namespace's routing sends traffic to `peer` from: connecting a UDP socket
/// (of `peer`'s family, on an ephemeral port) does the route lookup and sends nothing.
fn route_source(peer: SocketAddr) -> io::Result<IpAddr> {
    let socket = match peer {
        SocketAddr::V4(_) => UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?,
        SocketAddr::V6(_) => UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0))?,
    };
    socket.connect(peer)?;
    Ok(socket.local_addr()?.ip())
}

/// Where the processes of `pid` read their resolver configuration.
pub fn resolv_conf_path(pid: u32) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/root/etc/resolv.conf"))
}

/// Nameservers, per address family.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Nameservers {
    pub v4: Vec<SocketAddrV4>,
    pub v6: Vec<SocketAddrV6>,
}

impl Nameservers {
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// The first nameserver on loopback, IPv4 ones first.
    pub fn loopback(&self) -> Option<IpAddr> {
        let v4 = self.v4.iter().map(|n| IpAddr::from(*n.ip()));
        let v6 = self.v6.iter().map(|n| IpAddr::from(*n.ip()));
        v4.chain(v6).find(IpAddr::is_loopback)
    }
}

/// The `nameserver` lines of a resolv.conf, in order, on port 53. IPv6 ones of global scope
/// only (a zone index, `%eth0`, makes a line link-local: skipped, as are link-local
/// addresses); loopback ones stay, to be refused.
pub fn nameservers_in(resolv_conf: &str) -> Nameservers {
    let mut found = Nameservers::default();
    for line in resolv_conf.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        match words.next().and_then(|w| w.parse::<IpAddr>().ok()) {
            Some(IpAddr::V4(a)) => found.v4.push(SocketAddrV4::new(a, 53)),
            Some(IpAddr::V6(a)) if is_global_scope(a) || a.is_loopback() => {
                found.v6.push(SocketAddrV6::new(a, 53, 0, 0))
            }
            _ => {}
        }
    }
    found
}

/// The nameservers that the processes of `pid` use: at least one, none of them on loopback, at
/// most `max` per family (the first ones; the resolver library uses 3). IPv6 ones only
/// `with_v6` (they count only with an IPv6 upstream; then they may be the only ones).
pub fn pid_nameservers(pid: u32, max: usize, with_v6: bool) -> Result<Nameservers, TargetError> {
    let path = resolv_conf_path(pid);
    let text = std::fs::read_to_string(&path).map_err(|source| TargetError::Proc {
        path: path.clone(),
        source,
    })?;
    let mut found = nameservers_in(&text);
    if !with_v6 {
        found.v6.clear();
    }
    if found.is_empty() {
        return Err(TargetError::NoNameservers(path));
    }
    if let Some(lo) = found.loopback() {
        return Err(TargetError::LoopbackNameserver(lo));
    }
    found.v4.truncate(max);
    found.v6.truncate(max);
    Ok(found)
}

/// The (device, inode) of a namespace file.
fn ns_identity(path: &std::path::Path) -> Result<(u64, u64), TargetError> {
    crate::net::netns::identity(path).map_err(|source| TargetError::Proc {
        path: path.to_path_buf(),
        source,
    })
}

/// Refuses a namespace that is the host's own: that of pid 1, or, where pid 1's cannot be
/// read (no CAP_SYS_PTRACE over it), the one dnsredir itself runs in. Called before anything
/// is loaded or attached.
pub fn refuse_host_namespace(ns_path: &std::path::Path, what: &str) -> Result<(), TargetError> {
    // A namespace that cannot be read is reported by whatever enters it.
    let Ok(this) = ns_identity(ns_path) else {
        return Ok(());
    };
    let host = ns_identity(std::path::Path::new("/proc/1/ns/net"))
        .or_else(|_| ns_identity(std::path::Path::new("/proc/self/ns/net")))?;
    if this == host {
        return Err(TargetError::HostNamespace(what.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_nameservers() {
        let text = "# Generated\nsearch example.com\nnameserver 8.8.8.8\nnameserver 2001:4860:4860::8888\n nameserver\t8.8.4.4 \noptions ndots:0\nnameserver bogus\n";
        let found = nameservers_in(&format!(
            "{text}nameserver fe80::1%eth0\nnameserver fe80::2\nnameserver fd00::53\n"
        ));
        assert_eq!(
            found.v4,
            vec![
                SocketAddrV4::new(Ipv4Addr::new(8, 8, 8, 8), 53),
                SocketAddrV4::new(Ipv4Addr::new(8, 8, 4, 4), 53)
            ]
        );
        assert_eq!(
            found.v6,
            vec![
                "[2001:4860:4860::8888]:53".parse::<SocketAddrV6>().unwrap(),
                "[fd00::53]:53".parse().unwrap()
            ]
        );
        assert!(nameservers_in("").is_empty());
        assert!(is_global_scope("fd00:dead:1::2".parse().unwrap()));
        assert!(!is_global_scope("fe80::1".parse().unwrap()));
        assert!(!is_global_scope("::1".parse().unwrap()));
    }

    const UDP: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  190: 0B00007F:A250 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 41234 2 0000000000000000 0
  201: 00000000:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 41235 2 0000000000000000 0
";
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0B00007F:9093 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 41230 1 0000000000000000 100 0 0 10 0
   1: 0B00007F:C001 0B00007F:9093 01 00000000:00000000 00:00000000 00000000     0        0 41299 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn finds_dockerds_udp_port() {
        assert_eq!(
            ports_in_proc_table(UDP, DOCKER_RESOLVER, false),
            vec![0xA250]
        );
    }

    #[test]
    fn finds_only_listening_tcp_sockets() {
        assert_eq!(
            ports_in_proc_table(TCP, DOCKER_RESOLVER, true),
            vec![0x9093]
        );
    }

    fn tuple(src: &str, dst: &str) -> Tuple {
        Tuple {
            proto: 17,
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
        }
    }

    #[test]
    fn dnat_port_from_the_reply_tuple() {
        let orig = tuple("127.0.0.1:40000", "127.0.0.11:53");
        let dnat = tuple("127.0.0.11:41552", "127.0.0.1:40000");
        assert_eq!(dnat_port(&orig, &dnat), Some(41552));
        // no NAT: the reply comes from where the probe went
        let plain = tuple("127.0.0.11:53", "127.0.0.1:40000");
        assert_eq!(dnat_port(&orig, &plain), None);
        // a DNAT elsewhere is not a port on 127.0.0.11
        let elsewhere = tuple("10.0.0.53:5353", "127.0.0.1:40000");
        assert_eq!(dnat_port(&orig, &elsewhere), None);
    }

    #[test]
    fn port_sources() {
        assert_eq!(PortSource::Given(5).port(), Some(5));
        assert_eq!(PortSource::Nat(6).port(), Some(6));
        assert_eq!(PortSource::Sockets(vec![7]).port(), Some(7));
        assert_eq!(PortSource::Sockets(vec![]).port(), None);
        let two = PortSource::Sockets(vec![7, 8]);
        assert_eq!(two.port(), None);
        assert_eq!(two.ambiguous(), Some(&[7u16, 8][..]));
        assert_eq!(PortSource::Sockets(vec![7]).ambiguous(), None);
        assert_eq!(PortSource::Given(5).how(), "given");
        assert!(PortSource::Nat(6).how().starts_with("from Docker's NAT"));
        assert!(PortSource::Sockets(vec![7])
            .how()
            .starts_with("from the sockets on 127.0.0.11"));
    }

    #[test]
    fn the_line_for_a_protocol_left_with_dockerd() {
        let finding = PortFinding {
            proto: Proto::Udp,
            source: PortSource::Sockets(vec![41000, 41552]),
            nat_problem: None,
        };
        let line = finding.left_with_dockerd().unwrap();
        assert!(line.starts_with("UDP stays with dockerd"), "{line}");
        assert!(
            line.contains("41000, 41552") && line.contains("--dockerd-port PORT"),
            "{line}"
        );
        let tcp = PortFinding {
            proto: Proto::Tcp,
            ..finding
        };
        assert!(tcp
            .left_with_dockerd()
            .unwrap()
            .contains("--dockerd-tcp-port"));
        let sure = PortFinding {
            proto: Proto::Udp,
            source: PortSource::Nat(41552),
            nat_problem: None,
        };
        assert_eq!(sure.left_with_dockerd(), None);
    }

    #[test]
    fn nothing_on_other_addresses() {
        assert!(ports_in_proc_table(UDP, Ipv4Addr::new(127, 0, 0, 1), false).is_empty());
        assert!(ports_in_proc_table("header only\n", DOCKER_RESOLVER, false).is_empty());
    }
}
