//! The nameservers a process uses, from its resolv.conf.

use super::container_file::{ProcessRoot, Refusal};
use super::interfaces::is_global_scope;
use super::NamespaceError;
use crate::net::netns;
use std::net::{IpAddr, SocketAddrV4, SocketAddrV6};
use std::path::PathBuf;

/// The resolver configuration, as a container names it.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// Where the processes of `pid` read their resolver configuration, as the host names it: for
/// messages only. It is read by [`pid_nameservers`], inside the process's root.
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
/// `with_v6` (they count only with an IPv6 upstream; then they may be the only ones). The
/// process must be in the calling thread's network namespace (the one being changed), and
/// resolv.conf is read the container's way ([`ProcessRoot::read`]).
pub fn pid_nameservers(pid: u32, max: usize, with_v6: bool) -> Result<Nameservers, NamespaceError> {
    let refused = |refusal| NamespaceError::ContainerFile {
        pid,
        path: RESOLV_CONF,
        refusal,
    };
    let root = ProcessRoot::open(pid).map_err(refused)?;
    // The namespace was entered through /proc/PID/ns/net earlier: if that process has exited
    // since and its pid names another now, this is someone else's resolv.conf.
    let here = netns::current().map_err(|source| NamespaceError::Proc {
        path: PathBuf::from(netns::CURRENT),
        source,
    })?;
    if root
        .net_namespace()
        .map_err(|e| refused(Refusal::Process(e)))?
        != here
    {
        return Err(refused(Refusal::OtherNamespace));
    }
    let bytes = root.read(RESOLV_CONF).map_err(refused)?;
    // Bytes that are not UTF-8 (a comment in Latin-1) do not matter to nameserver lines.
    let mut found = nameservers_in(&String::from_utf8_lossy(&bytes));
    if !with_v6 {
        found.v6.clear();
    }
    if found.is_empty() {
        return Err(NamespaceError::NoNameservers(resolv_conf_path(pid)));
    }
    if let Some(lo) = found.loopback() {
        return Err(NamespaceError::LoopbackNameserver(lo));
    }
    found.v4.truncate(max);
    found.v6.truncate(max);
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

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
}
