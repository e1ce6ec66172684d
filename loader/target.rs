//! Facts about the target namespace, looked up, never assumed: interface indexes, the
//! interface's address, the route to the upstream, and the ports Docker's embedded resolver
//! listens on behind its DNAT. Everything here reads the calling thread's namespace.

use std::ffi::{CStr, CString};
use std::fmt;
use std::io;
use std::net::Ipv4Addr;
use std::path::PathBuf;

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
        upstream: Ipv4Addr,
        interface: String,
        source: io::Error,
    },
    Ambiguous {
        proto: &'static str,
        ports: Vec<u16>,
    },
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
            TargetError::Ambiguous { proto, ports } => write!(f, "several {proto} sockets listen on {DOCKER_RESOLVER} (ports {ports:?}): say which is dockerd's with --dockerd-port / --dockerd-tcp-port"),
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

/// The first IPv4 address on the interface (the primary one).
fn ipv4_of(name: &str) -> Result<Option<Ipv4Addr>, TargetError> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list`, freed below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Err(TargetError::Interfaces(io::Error::last_os_error()));
    }
    let mut found = None;
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
        let family = unsafe { (*entry.ifa_addr).sa_family } as i32;
        if entry_name.to_bytes() == name.as_bytes() && family == libc::AF_INET {
            // SAFETY: AF_INET entries hold a sockaddr_in.
            let sin = unsafe { &*(entry.ifa_addr as *const libc::sockaddr_in) };
            found = Some(Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes()));
            break;
        }
    }
    // SAFETY: the list from getifaddrs, freed once.
    unsafe { libc::freeifaddrs(list) };
    Ok(found)
}

/// Checks that the container's own routing sends traffic for `upstream` out of the interface
/// whose address is `source`: connecting a UDP socket does the route lookup and sends nothing.
/// (`bpf_redirect_neigh` pins the interface, and with no route there the kernel would just ARP
/// for the upstream on that link, so a bad upstream would only show as timeouts.)
pub fn check_route(
    interface: &str,
    source: Ipv4Addr,
    upstream: Ipv4Addr,
) -> Result<(), TargetError> {
    let problem = |source| TargetError::NoRoute {
        upstream,
        interface: interface.to_string(),
        source,
    };
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").map_err(problem)?;
    socket.connect((upstream, 53)).map_err(problem)?;
    let chosen = socket.local_addr().map_err(problem)?.ip();
    if chosen != std::net::IpAddr::V4(source) {
        return Err(problem(io::Error::other(format!(
            "the container's route to it leaves from {chosen}, not {interface}'s {source}"
        ))));
    }
    Ok(())
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

/// The resolver's ports as the current namespace's sockets show them.
pub fn resolver_ports(addr: Ipv4Addr) -> Result<ResolverPorts, TargetError> {
    let read = |proto: &'static str| -> Result<Option<u16>, TargetError> {
        let path = PathBuf::from(format!("/proc/thread-self/net/{proto}"));
        let table =
            std::fs::read_to_string(&path).map_err(|source| TargetError::Proc { path, source })?;
        let ports = ports_in_proc_table(&table, addr, proto == "tcp");
        match ports.as_slice() {
            [] => Ok(None),
            [port] => Ok(Some(*port)),
            _ => Err(TargetError::Ambiguous {
                proto: if proto == "tcp" { "TCP" } else { "UDP" },
                ports,
            }),
        }
    };
    Ok(ResolverPorts {
        udp: read("udp")?,
        tcp: read("tcp")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn nothing_on_other_addresses() {
        assert!(ports_in_proc_table(UDP, Ipv4Addr::new(127, 0, 0, 1), false).is_empty());
        assert!(ports_in_proc_table("header only\n", DOCKER_RESOLVER, false).is_empty());
    }
}
