//! The namespace's interfaces, their addresses, and where its routes send traffic.

use super::NamespaceError;
use std::ffi::{CStr, CString};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interface {
    pub ifindex: u32,
    pub addr: Option<Ipv4Addr>,
}

/// Looks an interface up by name in the calling thread's network namespace.
pub fn interface(name: &str) -> Result<Interface, NamespaceError> {
    Ok(Interface {
        ifindex: index_of(name)?,
        addr: ipv4_of(name)?,
    })
}

/// The index of the interface named `name` in the calling thread's network namespace (no
/// listing of addresses: one ioctl).
pub fn index_of(name: &str) -> Result<u32, NamespaceError> {
    let c_name = CString::new(name).map_err(|_| NamespaceError::NoInterface(name.to_string()))?;
    // SAFETY: a NUL-terminated string.
    let ifindex = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    if ifindex == 0 {
        return Err(NamespaceError::NoInterface(name.to_string()));
    }
    Ok(ifindex)
}

/// The interface's addresses in the order the kernel lists them (the primary one first).
fn addresses_of(name: &str) -> Result<Vec<IpAddr>, NamespaceError> {
    Ok(all_addresses()?
        .into_iter()
        .filter(|(n, _)| n == name)
        .map(|(_, a)| a)
        .collect())
}

/// Every interface's addresses, (name, address), in the order the kernel lists them.
fn all_addresses() -> Result<Vec<(String, IpAddr)>, NamespaceError> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list`, freed below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Err(NamespaceError::Interfaces(io::Error::last_os_error()));
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
        let name = unsafe { CStr::from_ptr(entry.ifa_name) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: as above; the family says which sockaddr it is.
        match unsafe { (*entry.ifa_addr).sa_family } as i32 {
            libc::AF_INET => {
                // SAFETY: AF_INET entries hold a sockaddr_in.
                let sin = unsafe { &*(entry.ifa_addr as *const libc::sockaddr_in) };
                let addr = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
                found.push((name, IpAddr::V4(addr)));
            }
            libc::AF_INET6 => {
                // SAFETY: AF_INET6 entries hold a sockaddr_in6.
                let sin6 = unsafe { &*(entry.ifa_addr as *const libc::sockaddr_in6) };
                found.push((name, IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr))));
            }
            _ => {}
        }
    }
    // SAFETY: the list from getifaddrs, freed once.
    unsafe { libc::freeifaddrs(list) };
    Ok(found)
}

/// The interface that holds `addr`, if one does.
fn interface_holding(addr: IpAddr) -> Option<String> {
    all_addresses()
        .ok()?
        .into_iter()
        .find(|(_, a)| *a == addr)
        .map(|(name, _)| name)
}

/// The interfaces other than loopback that have an IPv4 address: what an attach can send
/// queries from.
pub fn ipv4_interfaces() -> Result<Vec<String>, NamespaceError> {
    let mut names: Vec<String> = all_addresses()?
        .into_iter()
        .filter(|(_, a)| matches!(a, IpAddr::V4(v4) if !v4.is_loopback()))
        .map(|(name, _)| name)
        .collect();
    names.dedup();
    Ok(names)
}

/// The name of the interface with index `ifindex`, if there is one.
pub fn name_of(ifindex: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: the buffer holds IF_NAMESIZE bytes, as if_indextoname requires.
    let name = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if name.is_null() {
        return None;
    }
    // SAFETY: if_indextoname wrote a NUL-terminated name into buf.
    Some(
        unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// The interface this namespace's routes send traffic to `peer` through: the one holding the
/// source address the route lookup picks. `None`: no route, a loopback source, or a source
/// address no interface holds.
pub fn route_interface(peer: SocketAddr) -> Option<String> {
    let source = route_source(peer).ok()?;
    // A loopback source (an IPv6 peer with no global address to send from) is no way out.
    if source.is_loopback() {
        return None;
    }
    interface_holding(source)
}

/// The first IPv4 address on the interface (the primary one).
fn ipv4_of(name: &str) -> Result<Option<Ipv4Addr>, NamespaceError> {
    Ok(addresses_of(name)?.into_iter().find_map(|a| match a {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(_) => None,
    }))
}

/// The interface's first IPv6 address of global scope (ULAs included; not link-local), the
/// source of the namespace's IPv6 queries to its nameservers.
pub fn ipv6_of(name: &str) -> Result<Option<Ipv6Addr>, NamespaceError> {
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
) -> Result<(), NamespaceError> {
    let source = source.into();
    let (peer, route) = match to {
        RouteTo::Upstream(ip) => (SocketAddr::new(ip, 53), "the container's route"),
        RouteTo::Nameserver(addr) => (addr, "the route"),
    };
    let leaves = route_source(peer).and_then(|chosen| {
        if chosen == source {
            return Ok(());
        }
        let through = interface_holding(chosen).map_or_else(
            || format!("from {chosen}"),
            |name| format!("through {name} ({chosen})"),
        );
        Err(io::Error::other(format!(
            "{route} to it leaves {through}, not {interface} ({source})"
        )))
    });
    let interface = interface.to_string();
    leaves.map_err(|e| match to {
        RouteTo::Upstream(upstream) => NamespaceError::NoRoute {
            upstream,
            interface,
            source: e,
        },
        RouteTo::Nameserver(_) => NamespaceError::NameserverElsewhere {
            nameserver: peer.ip(),
            interface,
            problem: e.to_string(),
        },
    })
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
