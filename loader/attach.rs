//! Attach and detach: the steps in order, with everything undone when a step fails.

use crate::abi::{Config, CONFIG_SYMBOL, FLAG_REDIRECT_ALL, QUERY_SECTION, REPLY_SECTION};
use crate::container::{self, ResolverPorts, DOCKER_RESOLVER};
use crate::elf::ObjectFile;
use crate::embedded;
use crate::error::{check_privileges, Error};
use crate::layout::{addr_raw, port_raw};
use crate::load::{self, LoadedProgram};
use crate::netlink::Netlink;
use crate::netns::{self, Target};
use crate::tc::{self, Filter, Hook};
use std::net::{Ipv4Addr, SocketAddrV4};

/// Filter names start with this; only such filters are ever replaced or deleted.
pub const FILTER_PREFIX: &str = "dnsredir";

/// The EDNS UDP payload size redirected queries may announce at most: DNS Flag Day 2020's
/// safe size, below which answers are not fragmented on common paths.
pub const EDNS_MAX: u16 = 1232;

/// How long a closing TCP flow keeps being restored (retransmitted FINs and ACKs).
pub const TCP_CLOSE_GRACE_NS: u64 = 10_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachRequest {
    pub target: Target,
    pub upstream: SocketAddrV4,
    pub dockerd_udp_port: Option<u16>,
    pub dockerd_tcp_port: Option<u16>,
    pub redirect_all: bool,
    pub interface: String,
}

/// What was attached, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    pub config: Config,
    pub container_addr: Ipv4Addr,
    pub ports: ResolverPorts,
    pub lo: HookAttachment,
    pub eth0: HookAttachment,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookAttachment {
    pub ifname: String,
    pub ifindex: u32,
    pub prog_id: u32,
    pub prio: u16,
    pub handle: u32,
    pub created_clsact: bool,
}

/// Progress lines for --verbose.
pub type Log<'a> = &'a mut dyn FnMut(String);

pub fn attach(request: &AttachRequest, log: Log) -> Result<Attached, Error> {
    check_privileges()?;
    let _inside = netns::enter(&request.target)?;
    log(format!(
        "entered the network namespace of {}",
        request.target
    ));

    let lo = container::interface("lo")?;
    let eth0 = container::interface(&request.interface)?;
    let container_addr = eth0
        .addr
        .ok_or_else(|| container::ContainerError::NoIpv4(request.interface.clone()))?;
    log(format!(
        "lo is ifindex {}; {} is ifindex {} with address {container_addr}",
        lo.ifindex, request.interface, eth0.ifindex
    ));
    if *request.upstream.ip() == container_addr {
        return Err(Error::Upstream(format!(
            "{} is the container's own address",
            request.upstream.ip()
        )));
    }

    container::check_route(&request.interface, container_addr, *request.upstream.ip())?;
    let ports = dockerd_ports(request, log)?;
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
        },
        edns_max: port_raw(EDNS_MAX),
        iface_ifindex: eth0.ifindex,
        lo_ifindex: lo.ifindex,
        tcp_close_grace_ns: TCP_CLOSE_GRACE_NS,
        ..Config::UNSET
    };

    let mut object = ObjectFile::parse(embedded::object_bytes())?;
    object.set_global(CONFIG_SYMBOL, &config.to_bytes())?;
    let loaded = load::load(&object)?;
    let query = loaded
        .program(QUERY_SECTION)
        .ok_or(Error::Object(crate::elf::ParseError::NoPrograms))?;
    let reply = loaded
        .program(REPLY_SECTION)
        .ok_or(Error::Object(crate::elf::ParseError::NoPrograms))?;
    let query_id = crate::sys::prog_info(&query.fd).map(|i| i.id).unwrap_or(0);
    let reply_id = crate::sys::prog_info(&reply.fd).map(|i| i.id).unwrap_or(0);
    log(format!(
        "loaded {} as program id {query_id} and {} as program id {reply_id}",
        query.name, reply.name
    ));

    let mut nl = Netlink::open().map_err(|source| Error::Netlink {
        action: "opening an rtnetlink socket".into(),
        source,
    })?;
    let hooks = [
        (request.interface.as_str(), eth0.ifindex),
        ("lo", lo.ifindex),
    ];
    // The reply side goes first: once queries leave, their answers must already be handled.
    let result = (|| -> Result<(HookAttachment, HookAttachment), Error> {
        let eth0_hook = put(
            &mut nl,
            &request.interface,
            eth0.ifindex,
            reply,
            reply_id,
            log,
        )?;
        let lo_hook = put(&mut nl, "lo", lo.ifindex, query, query_id, log)?;
        Ok((lo_hook, eth0_hook))
    })();
    match result {
        Ok((lo, eth0)) => Ok(Attached {
            config,
            container_addr,
            ports,
            lo,
            eth0,
        }),
        Err(e) => {
            // Nothing half-attached: whatever of ours is on either hook goes.
            for (ifname, ifindex) in hooks {
                let _ = remove_ours(&mut nl, ifname, ifindex, &mut |_| {});
            }
            Err(e)
        }
    }
}

fn dockerd_ports(request: &AttachRequest, log: Log) -> Result<ResolverPorts, Error> {
    let found = container::resolver_ports(DOCKER_RESOLVER)?;
    let ports = ResolverPorts {
        udp: request.dockerd_udp_port.or(found.udp),
        tcp: request.dockerd_tcp_port.or(found.tcp),
    };
    if ports.udp.is_none() && ports.tcp.is_none() {
        return Err(container::ContainerError::NoResolver.into());
    }
    let describe =
        |given: Option<u16>, found: Option<u16>, used: Option<u16>| match (given, found, used) {
            (Some(p), _, _) => format!("{p} (given)"),
            (None, Some(p), _) => format!("{p} (found)"),
            _ => "none found, not redirected".to_string(),
        };
    log(format!(
        "dockerd's resolver on {DOCKER_RESOLVER}: UDP port {}, TCP port {}",
        describe(request.dockerd_udp_port, found.udp, ports.udp),
        describe(request.dockerd_tcp_port, found.tcp, ports.tcp)
    ));
    Ok(ports)
}

/// Attaches `program` on the interface's ingress: in place of ours if there is one (atomic
/// program swap), else at the first free priority. Other tools' filters are left alone.
fn put(
    nl: &mut Netlink,
    ifname: &str,
    ifindex: u32,
    program: &LoadedProgram,
    prog_id: u32,
    log: Log,
) -> Result<HookAttachment, Error> {
    let action = |what: &str| format!("{what} on {ifname} ingress");
    let created_clsact = tc::add_clsact(nl, ifindex).map_err(|source| Error::Netlink {
        action: action("adding the clsact qdisc"),
        source,
    })?;
    let existing = tc::filters(nl, ifindex, Hook::Ingress).map_err(|source| Error::Netlink {
        action: action("listing filters"),
        source,
    })?;
    let (prio, handle) = slot(&existing);
    tc::put_bpf_filter(
        nl,
        ifindex,
        Hook::Ingress,
        prio,
        handle,
        &program.fd,
        &program.name,
    )
    .map_err(|source| Error::Netlink {
        action: action(&format!("attaching {}", program.name)),
        source,
    })?;
    for stale in existing
        .iter()
        .filter(|f| f.is_named(FILTER_PREFIX) && (f.prio, f.handle) != (prio, handle))
    {
        tc::del_filter(nl, ifindex, Hook::Ingress, stale).map_err(|source| Error::Netlink {
            action: action("removing a duplicate dnsredir filter"),
            source,
        })?;
    }
    log(format!(
        "{} on {ifname} ingress: program id {prog_id}, filter pref {prio} handle {handle:#x}{}",
        program.name,
        if created_clsact {
            ", clsact qdisc created"
        } else {
            ", clsact qdisc already there"
        }
    ));
    Ok(HookAttachment {
        ifname: ifname.to_string(),
        ifindex,
        prog_id,
        prio,
        handle,
        created_clsact,
    })
}

/// Where our filter goes: the slot of a filter of ours already there, else the first priority
/// no filter uses (so, usually, 1: before filters that `tc` added with its default priority).
pub fn slot(existing: &[Filter]) -> (u16, u32) {
    if let Some(ours) = existing.iter().find(|f| f.is_named(FILTER_PREFIX)) {
        return (ours.prio, ours.handle);
    }
    let prio = (1..=u16::MAX)
        .find(|p| existing.iter().all(|f| f.prio != *p))
        .unwrap_or(u16::MAX);
    (prio, 1)
}

/// Removes our filters from the interface's ingress and the clsact qdisc when nothing else is
/// left on it. Returns how many filters were removed.
pub fn remove_ours(nl: &mut Netlink, ifname: &str, ifindex: u32, log: Log) -> Result<usize, Error> {
    let action = |what: &str| format!("{what} on {ifname}");
    if !tc::has_clsact(nl, ifindex).map_err(|source| Error::Netlink {
        action: action("listing qdiscs"),
        source,
    })? {
        return Ok(0);
    }
    let ingress = tc::filters(nl, ifindex, Hook::Ingress).map_err(|source| Error::Netlink {
        action: action("listing ingress filters"),
        source,
    })?;
    let mut removed = 0;
    for ours in ingress.iter().filter(|f| f.is_named(FILTER_PREFIX)) {
        tc::del_filter(nl, ifindex, Hook::Ingress, ours).map_err(|source| Error::Netlink {
            action: action("removing the dnsredir filter"),
            source,
        })?;
        log(format!(
            "removed {} from {ifname} ingress",
            ours.name.as_deref().unwrap_or("?")
        ));
        removed += 1;
    }
    let left = ingress.len() - removed
        + tc::filters(nl, ifindex, Hook::Egress)
            .map_err(|source| Error::Netlink {
                action: action("listing egress filters"),
                source,
            })?
            .len();
    if left == 0 {
        tc::del_clsact(nl, ifindex).map_err(|source| Error::Netlink {
            action: action("removing the clsact qdisc"),
            source,
        })?;
        log(format!("removed the now empty clsact qdisc from {ifname}"));
    } else {
        log(format!(
            "kept the clsact qdisc on {ifname}: {left} other filter(s) use it"
        ));
    }
    Ok(removed)
}

/// Removes dnsredir from the namespace; `Ok(0)` when it was not attached.
pub fn detach(target: &Target, interface: &str, log: Log) -> Result<usize, Error> {
    check_privileges()?;
    let _inside = netns::enter(target)?;
    let mut nl = Netlink::open().map_err(|source| Error::Netlink {
        action: "opening an rtnetlink socket".into(),
        source,
    })?;
    let mut removed = 0;
    // Queries stop first, then their answers' path.
    for ifname in ["lo", interface] {
        // A missing interface has nothing of ours on it.
        if let Ok(iface) = container::interface(ifname) {
            removed += remove_ours(&mut nl, ifname, iface.ifindex, log)?;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tc::ETH_P_ALL;

    fn filter(prio: u16, handle: u32, name: Option<&str>) -> Filter {
        Filter {
            prio,
            protocol: ETH_P_ALL,
            handle,
            kind: "bpf".into(),
            name: name.map(String::from),
            prog_id: None,
        }
    }

    #[test]
    fn first_attach_takes_priority_1() {
        assert_eq!(slot(&[]), (1, 1));
    }

    #[test]
    fn foreign_priorities_are_never_taken() {
        assert_eq!(
            slot(&[filter(1, 1, Some("cilium")), filter(2, 5, None)]),
            (3, 1)
        );
    }

    #[test]
    fn reattach_reuses_our_slot() {
        assert_eq!(
            slot(&[
                filter(1, 1, Some("other")),
                filter(7, 3, Some("dnsredir_query"))
            ]),
            (7, 3)
        );
    }
}
