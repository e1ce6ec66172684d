//! The nameservers path (namespaces without Docker's embedded resolver: the default bridge,
//! Podman, CNI, pods): queries to the namespace's own nameservers are taken on the interface's
//! egress and sent to the upstream instead, source unchanged; the answers are restored on the
//! interface's ingress to come from the nameserver asked, and go on up the stack. IPv6
//! nameservers likewise go to the IPv6 upstream, when one is given. Name rules (`--keep`,
//! `--only`) leave the queries they keep with the nameserver asked, untouched. With
//! `--resolver any` there is no list: every query to port 53 is taken, whatever server it names.

use super::{check_upstream, AttachRequest, Log};
use crate::error::Error;
use crate::namespace::interfaces;
use crate::namespace::resolv_conf::Nameservers;
use crate::namespace::{self, NamespaceError};
use crate::settings::{Ipv6Settings, Path, Settings, Upstream};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};

/// What the path takes over.
#[derive(Debug, Clone, Copy)]
pub enum Taken<'a> {
    /// These nameservers.
    Named(&'a Nameservers),
    /// Every server on port 53 (`--resolver any`).
    Any,
}

/// The path's settings for `taken` (named: as `--resolver` and resolv.conf give them, checked
/// there: none on loopback, at most `MAX_NAMESERVERS` per family; here at least one in all,
/// the IPv6 ones only with `request.upstream6`), with the upstreams
/// checked through `interface`; and, when an IPv6 upstream cannot be used, the line that says
/// why.
pub fn settings(
    request: &AttachRequest,
    base: Settings,
    taken: Taken,
    interface: &str,
    log: Log,
) -> Result<(Settings, Option<String>), Error> {
    let none = Nameservers::default();
    let (named, any) = match taken {
        Taken::Named(named) => (named, false),
        Taken::Any => (&none, true),
    };
    let nameservers = named.v4.clone();
    log(if any {
        format!("every DNS server on port 53 taken over on {interface} (--resolver any)")
    } else {
        format!(
            "nameservers taken over on {interface}: {}",
            namespace::list(&nameservers)
        )
    });
    let taken4: Vec<SocketAddr> = nameservers.iter().map(|&ns| ns.into()).collect();
    check_upstream(
        request,
        interface,
        base.source.into(),
        request.upstream.map(Into::into),
        &taken4,
        log,
    )?;
    let (ipv6, ipv6_not_redirected) = match request.upstream6 {
        Some(upstream6) => ipv6_side(request, interface, upstream6, &named.v6, any, log)?,
        // Decisions answer queries to the IPv6 nameservers too; the rest passes untouched.
        None if request.rules.kinds().decide && !named.v6.is_empty() => {
            log(format!(
                "IPv6 nameservers taken over for the rules' answers only (no IPv6 upstream): {}",
                namespace::list(&named.v6)
            ));
            let source = interfaces::ipv6_of(interface)?.unwrap_or(Ipv6Addr::UNSPECIFIED);
            let v6 = Ipv6Settings {
                upstream: Upstream(None),
                source,
                nameservers: named.v6.clone(),
            };
            (Some(v6), None)
        }
        None => (None, None),
    };
    let none6 = !ipv6.as_ref().is_some_and(|v6| !v6.nameservers.is_empty());
    if !any && nameservers.is_empty() && none6 {
        return Err(match &ipv6_not_redirected {
            Some(why) => Error::Upstream(why.clone()),
            None => NamespaceError::NameserversUnknown.into(),
        });
    }
    let settings = Settings {
        path: Path::Nameservers {
            nameservers,
            ipv6,
            any,
        },
        ..base
    };
    Ok((settings, ipv6_not_redirected))
}

/// Checks the IPv6 upstream like the IPv4 one (route, probe) from the interface's global
/// IPv6 address. Without such an address IPv6 is left alone: `Ok` with the one line that
/// says why, and IPv4 goes on. `any`: every IPv6 server on port 53 is taken, not `nameservers`.
fn ipv6_side(
    request: &AttachRequest,
    interface: &str,
    upstream: SocketAddrV6,
    nameservers: &[SocketAddrV6],
    any: bool,
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
    let nameservers = nameservers.to_vec();
    let taken = if any {
        "any on port 53".to_string()
    } else {
        namespace::list(&nameservers)
    };
    log(format!(
        "{interface}'s IPv6 address {source}; IPv6 nameservers taken over: {taken}"
    ));
    let taken6: Vec<SocketAddr> = nameservers.iter().map(|&ns| ns.into()).collect();
    check_upstream(
        request,
        interface,
        source.into(),
        Some(upstream.into()),
        &taken6,
        log,
    )?;
    Ok((
        Some(Ipv6Settings {
            upstream: upstream.into(),
            source,
            nameservers,
        }),
        None,
    ))
}
