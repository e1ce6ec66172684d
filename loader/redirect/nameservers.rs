//! The nameservers path (namespaces without Docker's embedded resolver: the default bridge,
//! Podman, CNI, pods): queries to the namespace's own nameservers are taken on the interface's
//! egress and sent to the upstream instead, source unchanged; the answers are restored on the
//! interface's ingress to come from the nameserver asked, and go on up the stack. IPv6
//! nameservers likewise go to the IPv6 upstream, when one is given. Name rules (`--keep`,
//! `--only`) leave the queries they keep with the nameserver asked, untouched.

use super::{check_upstream, AttachRequest, Log};
use crate::abi::MAX_NAMESERVERS;
use crate::error::Error;
use crate::namespace::interfaces;
use crate::namespace::resolv_conf::Nameservers;
use crate::namespace::{self, NamespaceError};
use crate::settings::{Ipv6Settings, Path, Settings};
use std::net::{SocketAddr, SocketAddrV6};

/// The path's settings for `taken` (up to [`MAX_NAMESERVERS`] per family, at least one in
/// all, none on loopback; the IPv6 ones only with `request.upstream6`), with the upstreams
/// checked through `interface`; and, when an IPv6 upstream cannot be used, the line that says
/// why.
pub fn settings(
    request: &AttachRequest,
    base: Settings,
    taken: &Nameservers,
    interface: &str,
    log: Log,
) -> Result<(Settings, Option<String>), Error> {
    if let Some(lo) = taken.loopback() {
        return Err(NamespaceError::LoopbackNameserver(lo).into());
    }
    let nameservers = taken.v4[..taken.v4.len().min(MAX_NAMESERVERS)].to_vec();
    log(format!(
        "nameservers taken over on {interface}: {}",
        namespace::list(&nameservers)
    ));
    let taken4: Vec<SocketAddr> = nameservers.iter().map(|&ns| ns.into()).collect();
    check_upstream(
        request,
        interface,
        base.source.into(),
        request.upstream.into(),
        &taken4,
        log,
    )?;
    let (ipv6, ipv6_not_redirected) = match request.upstream6 {
        Some(upstream6) => ipv6_side(request, interface, upstream6, &taken.v6, log)?,
        None => (None, None),
    };
    let none6 = !ipv6.as_ref().is_some_and(|v6| !v6.nameservers.is_empty());
    if nameservers.is_empty() && none6 {
        return Err(match &ipv6_not_redirected {
            Some(why) => Error::Upstream(why.clone()),
            None => NamespaceError::NameserversUnknown.into(),
        });
    }
    let settings = Settings {
        path: Path::Nameservers { nameservers, ipv6 },
        ..base
    };
    Ok((settings, ipv6_not_redirected))
}

/// Checks the IPv6 upstream like the IPv4 one (route, probe) from the interface's global
/// IPv6 address. Without such an address IPv6 is left alone: `Ok` with the one line that
/// says why, and IPv4 goes on.
fn ipv6_side(
    request: &AttachRequest,
    interface: &str,
    upstream: SocketAddrV6,
    nameservers: &[SocketAddrV6],
    log: Log,
) -> Result<(Option<Ipv6Settings>, Option<String>), Error> {
    let Some(source) = interfaces::ipv6_of(interface)? else {
        return Ok((
            None,
            Some(format!(
                "IPv6 DNS is not redirected: {interface} has no global IPv6 address to reach the upstream {upstream} from"
            )),
        ));
    };
    let nameservers = nameservers[..nameservers.len().min(MAX_NAMESERVERS)].to_vec();
    log(format!(
        "{interface}'s IPv6 address {source}; IPv6 nameservers taken over: {}",
        namespace::list(&nameservers)
    ));
    let taken6: Vec<SocketAddr> = nameservers.iter().map(|&ns| ns.into()).collect();
    check_upstream(
        request,
        interface,
        source.into(),
        upstream.into(),
        &taken6,
        log,
    )?;
    Ok((
        Some(Ipv6Settings {
            upstream,
            source,
            nameservers,
        }),
        None,
    ))
}
