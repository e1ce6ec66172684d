//! The embedded-resolver path (Docker's user-defined networks): queries that Docker's DNAT sends
//! to dockerd on 127.0.0.11 are taken on lo ingress and sent out of the interface to the
//! upstream; the answers are taken on the interface's ingress and handed back to lo.

use super::{
    check_upstream, interfaces, load_and_attach, put, remove_from_hook, transact, AttachRequest,
    Attached, HookRef, Log, TCP_CLOSE_GRACE_NS,
};
use crate::abi::{Config, FLAG_REDIRECT_ALL, QUERY_SECTION};
use crate::bpf::embedded;
use crate::error::Error;
use crate::layout::{addr_raw, port_raw};
use crate::namespace;
use crate::namespace::dockerd::{PortFinding, PortSource, Proto, ResolverPorts, DOCKER_RESOLVER};
use crate::namespace::resolv_conf::Nameservers;
use crate::namespace::NamespaceError;
use crate::net::netlink::Netlink;
use crate::net::tc::Hook;

/// Attaches the embedded-resolver path, in the target's namespace already. Fails with
/// [`NamespaceError::NoResolver`] before anything is loaded when there is no embedded resolver.
pub fn attach_in(nl: &mut Netlink, request: &AttachRequest, log: Log) -> Result<Attached, Error> {
    let (lo, iface, container_addr) = interfaces(request)?;
    log(format!(
        "lo is ifindex {}; {} is ifindex {} with address {container_addr}",
        lo.ifindex, request.interface, iface.ifindex
    ));
    let (ports, left_with_dockerd) = dockerd_ports(request, log)?;
    if let Some(up6) = request.upstream6 {
        return Err(Error::Upstream(format!(
            "{up6} is IPv6, but Docker's embedded resolver ({DOCKER_RESOLVER}) is reached over IPv4 only: give one IPv4 --upstream"
        )));
    }
    check_upstream(
        request,
        container_addr.into(),
        request.upstream.into(),
        &[],
        log,
    )?;
    let config = Config {
        build_id: embedded::object_hash(),
        resolver_addr: addr_raw(DOCKER_RESOLVER),
        container_addr: addr_raw(container_addr),
        upstream_addr: addr_raw(*request.upstream.ip()),
        upstream_port: port_raw(request.upstream.port()),
        dockerd_udp_port: ports.udp.map_or(0, port_raw),
        dockerd_tcp_port: ports.tcp.map_or(0, port_raw),
        flags: if request.redirect_all {
            FLAG_REDIRECT_ALL
        } else {
            0
        } | request.rules.flags(),
        edns_max: port_raw(request.edns_max),
        iface_ifindex: iface.ifindex,
        lo_ifindex: lo.ifindex,
        tcp_close_grace_ns: TCP_CLOSE_GRACE_NS,
        ..Config::UNSET
    };

    load_and_attach(
        &config,
        &request.rules,
        QUERY_SECTION,
        "query",
        log,
        |query, reply, log| {
            let hooks = [
                HookRef {
                    ifname: &request.interface,
                    ifindex: iface.ifindex,
                    hook: Hook::Ingress,
                },
                HookRef {
                    ifname: "lo",
                    ifindex: lo.ifindex,
                    hook: Hook::Ingress,
                },
            ];
            // The reply side goes first: once queries leave, their answers must already be
            // handled; the nameservers path's egress filter, when that path was in force, goes
            // last.
            let egress = HookRef {
                hook: Hook::Egress,
                ..hooks[0]
            };
            transact(
                nl,
                &request.target,
                &[hooks[0], hooks[1], egress],
                log,
                |nl, log| {
                    put(nl, hooks[0], reply, log)?;
                    put(nl, hooks[1], query, log)?;
                    remove_from_hook(nl, egress, log)
                },
            )
        },
    )?;
    Ok(Attached {
        config,
        container_addr,
        ports,
        left_with_dockerd,
        nameservers: Nameservers::default(),
        ipv6_not_redirected: None,
    })
}

/// dockerd's ports: given ones as given, the others found ([`namespace::dockerd::find_port`]). A protocol
/// whose port cannot be told stays with dockerd (one line for the user says so); only when
/// neither protocol has a port is there nothing to attach.
fn dockerd_ports(request: &AttachRequest, log: Log) -> Result<(ResolverPorts, Vec<String>), Error> {
    let udp = namespace::dockerd::find_port(Proto::Udp, request.dockerd_ports.udp)?;
    let tcp = namespace::dockerd::find_port(Proto::Tcp, request.dockerd_ports.tcp)?;
    let ports = ResolverPorts {
        udp: udp.source.port(),
        tcp: tcp.source.port(),
    };
    if ports.udp.is_none() && ports.tcp.is_none() {
        if let Some(f) = [&udp, &tcp]
            .into_iter()
            .find(|f| f.source.ambiguous().is_some())
        {
            return Err(NamespaceError::Ambiguous {
                proto: f.proto.name(),
                ports: f.source.ambiguous().unwrap_or_default().to_vec(),
            }
            .into());
        }
        return Err(NamespaceError::NoResolver.into());
    }
    let describe = |f: &PortFinding| match (&f.source, f.source.port()) {
        (PortSource::Given(p), _) => format!("{p} (given)"),
        (_, Some(p)) => format!("{p} (found)"),
        (_, None) => "none found, not redirected".to_string(),
    };
    log(format!(
        "dockerd's resolver on {DOCKER_RESOLVER}: UDP port {}, TCP port {}",
        describe(&udp),
        describe(&tcp)
    ));
    for f in [&udp, &tcp] {
        if let Some(problem) = &f.nat_problem {
            log(format!(
                "{}: Docker's NAT told nothing: {problem}",
                f.proto.name()
            ));
        }
        log(format!("{} port: {}", f.proto.name(), f.source.how()));
    }
    let left = [&udp, &tcp]
        .into_iter()
        .filter_map(PortFinding::left_with_dockerd)
        .collect();
    Ok((ports, left))
}
