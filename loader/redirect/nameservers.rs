//! The nameservers path (namespaces without Docker's embedded resolver: the default bridge,
//! Podman, CNI, pods): queries to the namespace's own nameservers are taken on the interface's
//! egress and sent to the upstream instead, source unchanged; the answers are restored on the
//! interface's ingress to come from the nameserver asked, and go on up the stack. IPv6
//! nameservers likewise go to the IPv6 upstream, when one is given. Name rules (`--keep`,
//! `--only`) leave the queries they keep with the nameserver asked, untouched.

use super::{
    check_upstream, interfaces, load_and_attach, put, remove_from_hook, transact, HookRef, Log,
};
use super::{AttachRequest, Attached, TCP_CLOSE_GRACE_NS};
use crate::abi::{Config, EGRESS_SECTION, MAX_NAMESERVERS, PATH_NAMESERVERS};
use crate::bpf::embedded;
use crate::error::Error;
use crate::layout::{addr6_raw, addr_raw, port_raw};
use crate::namespace;
use crate::namespace::dockerd::ResolverPorts;
use crate::namespace::resolv_conf::Nameservers;
use crate::namespace::NamespaceError;
use crate::net::netlink::Netlink;
use crate::net::tc::Hook;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};

/// Attaches the nameservers path for `taken` (up to [`MAX_NAMESERVERS`] per family, at least
/// one in all, none on loopback; the IPv6 ones only with `request.upstream6`), in the target's
/// namespace already; the embedded-resolver path's lo filter goes.
pub fn attach_in(
    nl: &mut Netlink,
    request: &AttachRequest,
    taken: &Nameservers,
    log: Log,
) -> Result<Attached, Error> {
    if let Some(lo) = taken.loopback() {
        return Err(NamespaceError::LoopbackNameserver(lo).into());
    }
    let nameservers = &taken.v4[..taken.v4.len().min(MAX_NAMESERVERS)];
    let (lo, iface, container_addr) = interfaces(request)?;
    log(format!(
        "{} is ifindex {} with address {container_addr}; nameservers taken over: {}",
        request.interface,
        iface.ifindex,
        namespace::list(nameservers)
    ));
    let taken4: Vec<SocketAddr> = nameservers.iter().map(|&ns| ns.into()).collect();
    check_upstream(
        request,
        container_addr.into(),
        request.upstream.into(),
        &taken4,
        log,
    )?;
    let (v6, ipv6_not_redirected) = match request.upstream6 {
        Some(upstream6) => ipv6_side(request, upstream6, &taken.v6, log)?,
        None => (None, None),
    };
    let nameservers6 = v6.as_ref().map_or(&[][..], |v| &v.nameservers[..]);
    if nameservers.is_empty() && nameservers6.is_empty() {
        return Err(match &ipv6_not_redirected {
            Some(why) => Error::Upstream(why.clone()),
            None => NamespaceError::NameserversUnknown.into(),
        });
    }
    let mut config = Config {
        build_id: embedded::object_hash(),
        container_addr: addr_raw(container_addr),
        upstream_addr: addr_raw(*request.upstream.ip()),
        upstream_port: port_raw(request.upstream.port()),
        edns_max: port_raw(request.edns_max),
        iface_ifindex: iface.ifindex,
        lo_ifindex: lo.ifindex,
        tcp_close_grace_ns: TCP_CLOSE_GRACE_NS,
        path: PATH_NAMESERVERS,
        flags: request.rules.flags(),
        nameserver_count: nameservers.len() as u16,
        ..Config::UNSET
    };
    for (i, ns) in nameservers.iter().enumerate() {
        config.nameservers[i] = addr_raw(*ns.ip());
        config.nameserver_ports[i] = port_raw(ns.port());
    }
    if let Some(v6) = &v6 {
        config.upstream6_addr = addr6_raw(*v6.upstream.ip());
        config.upstream6_port = port_raw(v6.upstream.port());
        config.container6_addr = addr6_raw(v6.source);
        config.nameserver6_count = v6.nameservers.len() as u16;
        for (i, ns) in v6.nameservers.iter().enumerate() {
            config.nameservers6[4 * i..4 * i + 4].copy_from_slice(&addr6_raw(*ns.ip()));
            config.nameserver6_ports[i] = port_raw(ns.port());
        }
    }

    load_and_attach(
        &config,
        &request.rules,
        EGRESS_SECTION,
        "egress",
        log,
        |egress, reply, log| {
            let ingress = HookRef {
                ifname: &request.interface,
                ifindex: iface.ifindex,
                hook: Hook::Ingress,
            };
            let out = HookRef {
                hook: Hook::Egress,
                ..ingress
            };
            let lo_ingress = HookRef {
                ifname: "lo",
                ifindex: lo.ifindex,
                hook: Hook::Ingress,
            };
            // The other path's query filter goes first, then the reply side, then the queries.
            transact(
                nl,
                &request.target,
                &[lo_ingress, ingress, out],
                log,
                |nl, log| {
                    remove_from_hook(nl, lo_ingress, log)?;
                    put(nl, ingress, reply, log)?;
                    put(nl, out, egress, log)
                },
            )
        },
    )?;
    Ok(Attached {
        config,
        container_addr,
        ports: ResolverPorts::default(),
        left_with_dockerd: Vec::new(),
        nameservers: Nameservers {
            v4: nameservers.to_vec(),
            v6: nameservers6.to_vec(),
        },
        ipv6_not_redirected,
    })
}

/// The IPv6 half of the configuration, checked.
struct Ipv6Side {
    upstream: SocketAddrV6,
    /// The interface's global IPv6 address: where queries leave from and answers arrive.
    source: Ipv6Addr,
    nameservers: Vec<SocketAddrV6>,
}

/// Checks the IPv6 upstream like the IPv4 one (route, probe) from the interface's global
/// IPv6 address. Without such an address IPv6 is left alone: `Ok` with the one line that
/// says why, and IPv4 goes on.
fn ipv6_side(
    request: &AttachRequest,
    upstream: SocketAddrV6,
    nameservers: &[SocketAddrV6],
    log: Log,
) -> Result<(Option<Ipv6Side>, Option<String>), Error> {
    let Some(source) = namespace::interfaces::ipv6_of(&request.interface)? else {
        return Ok((
            None,
            Some(format!(
                "IPv6 DNS is not redirected: {} has no global IPv6 address to reach the upstream {upstream} from",
                request.interface
            )),
        ));
    };
    let nameservers = nameservers[..nameservers.len().min(MAX_NAMESERVERS)].to_vec();
    log(format!(
        "{}'s IPv6 address {source}; IPv6 nameservers taken over: {}",
        request.interface,
        namespace::list(&nameservers)
    ));
    let taken6: Vec<SocketAddr> = nameservers.iter().map(|&ns| ns.into()).collect();
    check_upstream(request, source.into(), upstream.into(), &taken6, log)?;
    Ok((
        Some(Ipv6Side {
            upstream,
            source,
            nameservers,
        }),
        None,
    ))
}
