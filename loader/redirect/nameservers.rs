//! The nameservers path (namespaces without Docker's embedded resolver: the default bridge,
//! Podman, CNI, pods): queries to the namespace's own nameservers are taken on the interface's
//! egress and sent to the upstream instead, source unchanged; the answers are restored on the
//! interface's ingress to come from the nameserver asked, and go on up the stack.

use super::{load_programs, program, put, remove_from_hook, transact, HookRef, Log};
use crate::abi::{Config, EGRESS_SECTION, MAX_NAMESERVERS, PATH_NAMESERVERS, REPLY_SECTION};
use crate::bpf::embedded;
use crate::error::Error;
use crate::layout::{addr_raw, port_raw};
use crate::net::netlink::Netlink;
use crate::net::tc::Hook;
use crate::probe;
use crate::redirect::resolver::{AttachRequest, Attached, TCP_CLOSE_GRACE_NS};
use crate::target::{self, ResolverPorts, TargetError};
use std::net::SocketAddrV4;

/// Attaches the nameservers path for `nameservers` (1 to [`MAX_NAMESERVERS`], none on
/// loopback), in the target's namespace already; the embedded-resolver path's lo filter goes.
pub fn attach_in(
    nl: &mut Netlink,
    request: &AttachRequest,
    nameservers: &[SocketAddrV4],
    log: Log,
) -> Result<Attached, Error> {
    if let Some(lo) = nameservers.iter().find(|n| n.ip().is_loopback()) {
        return Err(TargetError::LoopbackNameserver(*lo.ip()).into());
    }
    let nameservers = &nameservers[..nameservers.len().min(MAX_NAMESERVERS)];
    let lo = target::interface("lo")?;
    let iface = target::interface(&request.interface)?;
    let container_addr = iface
        .addr
        .ok_or_else(|| TargetError::NoIpv4(request.interface.clone()))?;
    log(format!(
        "{} is ifindex {} with address {container_addr}; nameservers taken over: {}",
        request.interface,
        iface.ifindex,
        list(nameservers)
    ));
    if *request.upstream.ip() == container_addr {
        return Err(Error::Upstream(format!(
            "{} is the container's own address",
            request.upstream.ip()
        )));
    }
    if nameservers.contains(&request.upstream) {
        return Err(Error::Upstream(format!(
            "{} is one of the nameservers taken over",
            request.upstream
        )));
    }
    for ns in nameservers {
        target::check_nameserver_route(&request.interface, container_addr, *ns)?;
    }
    target::check_route(&request.interface, container_addr, *request.upstream.ip())?;
    if request.probe_upstream {
        let rtt = probe::probe(container_addr, request.upstream, probe::TIMEOUT)?;
        log(format!(
            "upstream {} answered the probe in {}",
            request.upstream,
            probe::format_rtt(rtt)
        ));
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
        nameserver_count: nameservers.len() as u16,
        ..Config::UNSET
    };
    for (i, ns) in nameservers.iter().enumerate() {
        config.nameservers[i] = addr_raw(*ns.ip());
        config.nameserver_ports[i] = port_raw(ns.port());
    }

    // Programs go through the verifier before anything in the namespace changes.
    let loaded = load_programs(&config)?;
    let egress = program(&loaded, EGRESS_SECTION)?;
    let reply = program(&loaded, REPLY_SECTION)?;
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
            put(nl, ingress, &reply, log)?;
            put(nl, out, &egress, log)
        },
    )?;
    Ok(Attached {
        config,
        container_addr,
        ports: ResolverPorts::default(),
        left_with_dockerd: Vec::new(),
        nameservers: nameservers.to_vec(),
    })
}

/// Addresses as "8.8.8.8:53, 8.8.4.4:53".
pub fn list(addrs: &[SocketAddrV4]) -> String {
    addrs
        .iter()
        .map(SocketAddrV4::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
