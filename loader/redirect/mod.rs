//! What dnsredir puts into a namespace and takes out again. An attach looks at the namespace
//! ([`detect`]: which path, through which interface), builds the path's [`Settings`]
//! ([`embedded_resolver`]: Docker's embedded resolver, taken on lo; [`nameservers`]: the
//! namespace's own nameservers, taken on the interface's egress), loads the programs with
//! them, and puts them on their hooks as one step ([`transaction`]) through [`hooks`], which
//! knows dnsredir's filters wherever they are.

pub mod detect;
pub mod embedded_resolver;
pub mod hooks;
pub mod nameservers;
mod request;
pub mod rules;
mod transaction;

use crate::abi::CONFIG_SYMBOL;
use crate::abi::{EGRESS_SECTION, QUERY_SECTION, REPLY_SECTION, RULES_MAP};
use crate::bpf::elf::{GlobalError, ObjectFile, ParseError};
use crate::bpf::embedded;
use crate::bpf::load::{self, LoadError, Loaded, LoadedProgram};
use crate::bpf::sys;
use crate::error::{check_privileges, Context, Error};
use crate::namespace::host;
use crate::namespace::interfaces::{self, Interface, RouteTo};
use crate::namespace::NamespaceError;
use crate::net::netlink::Netlink;
use crate::net::netns;
use crate::net::tc::Hook;
use crate::probe;
use crate::settings::{Path, Settings};
use crate::target::Target;
use detect::Detected;
use hooks::{Clsact, HookRef, Program};
use rules::Rules;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use transaction::transact;

pub use request::{AttachRequest, Attached, Resolvers, EDNS_MAX};

/// Attaches the path that fits the namespace ([`detect`]) on the interface its routes use
/// (or `--interface`). The host's own namespace is refused before anything is loaded; a
/// failure once the hooks begin to change puts back what was there.
pub fn attach(request: &AttachRequest, log: Log) -> Result<Attached, Error> {
    change_namespace(&request.target, log, |nl, log| {
        // The namespace entered, not the path: a path can name another namespace by now.
        host::refuse_host_namespace(netns::CURRENT.as_ref(), &request.target.to_string())?;
        log(format!(
            "entered the network namespace of {}",
            request.target
        ));
        let detected = detect::path(request, log)?;
        let interface = detect::interface(request, &detected)?;
        let (lo, iface, source) = interfaces_for(&interface)?;
        log(format!(
            "lo is ifindex {}; {interface} is ifindex {} with address {source}",
            lo.ifindex, iface.ifindex
        ));
        let base = Settings {
            path: Path::Nameservers {
                nameservers: Vec::new(),
                ipv6: None,
                any: false,
            },
            ifindex: iface.ifindex,
            lo_ifindex: lo.ifindex,
            source,
            upstream: request.upstream,
            edns_max: request.edns_max,
            rules: request.rules.kinds(),
            label: request.label.clone(),
        };
        let (settings, left_with_dockerd, ipv6_not_redirected) = match detected {
            Detected::EmbeddedResolver {
                ports,
                left_with_dockerd,
            } => {
                let settings = embedded_resolver::settings(request, base, ports, &interface, log)?;
                (settings, left_with_dockerd, None)
            }
            Detected::Nameservers(nameservers) => {
                let taken = nameservers::Taken::Named(&nameservers);
                let (settings, ipv6_not_redirected) =
                    nameservers::settings(request, base, taken, &interface, log)?;
                (settings, Vec::new(), ipv6_not_redirected)
            }
            Detected::AnyResolver => {
                let taken = nameservers::Taken::Any;
                let (settings, ipv6_not_redirected) =
                    nameservers::settings(request, base, taken, &interface, log)?;
                (settings, Vec::new(), ipv6_not_redirected)
            }
        };
        let loaded = load_programs(&settings, &request.rules)?;
        if !request.rules.is_empty() {
            log(format!(
                "{} name rules in the query program's map",
                request.rules.rules.len()
            ));
        }
        let reply = program(&loaded, REPLY_SECTION)?;
        let on_iface = |hook| HookRef::new(&interface, iface.ifindex, hook);
        // The reply side goes first: once queries are taken, their answers must already be
        // handled.
        let wanted = match settings.path {
            Path::EmbeddedResolver { .. } => [
                (on_iface(Hook::Ingress), reply),
                (
                    HookRef::new("lo", lo.ifindex, Hook::Ingress),
                    program(&loaded, QUERY_SECTION)?,
                ),
            ],
            Path::Nameservers { .. } => [
                (on_iface(Hook::Ingress), reply),
                (on_iface(Hook::Egress), program(&loaded, EGRESS_SECTION)?),
            ],
        };
        install(nl, &request.target, &wanted, log)?;
        Ok(Attached {
            interface,
            settings,
            left_with_dockerd,
            ipv6_not_redirected,
        })
    })
}

/// Puts the programs on their hooks as one step, and takes dnsredir's filters off every other
/// hook where they are (the other path's query hook, an interface attached before): what was
/// there is put back if anything fails.
fn install(
    nl: &mut Netlink,
    target: &Target,
    wanted: &[(HookRef, Program)],
    log: Log,
) -> Result<(), Error> {
    let found = hooks::find(nl)?;
    let mut stale: Vec<HookRef> = Vec::new();
    for ours in &found.filters {
        if !wanted.iter().any(|(at, _)| *at == ours.at) && !stale.contains(&ours.at) {
            stale.push(ours.at.clone());
        }
    }
    let all: Vec<HookRef> = wanted
        .iter()
        .map(|(at, _)| at.clone())
        .chain(stale.iter().cloned())
        .collect();
    transact(nl, target, &found, &all, log, |nl, log| {
        for (at, program) in wanted {
            hooks::put(nl, at, program, log)?;
        }
        for at in &stale {
            // An interface the attachment still uses keeps its qdisc.
            let clsact = if wanted.iter().any(|(w, _)| w.ifindex == at.ifindex) {
                Clsact::Keep
            } else {
                Clsact::RemoveIfEmpty
            };
            hooks::remove(nl, at, clsact, Some(&mut *log))?;
        }
        Ok(())
    })
}

/// lo and the interface with its IPv4 address, the source of redirected queries: what both
/// paths start from.
fn interfaces_for(name: &str) -> Result<(Interface, Interface, Ipv4Addr), Error> {
    let lo = interfaces::interface("lo")?;
    let iface = interfaces::interface(name)?;
    let addr = iface
        .addr
        .ok_or_else(|| NamespaceError::NoIpv4(name.to_string()))?;
    Ok((lo, iface, addr))
}

/// What both paths check of one family's `upstream` before anything is attached: it is
/// neither the interface's own address `source` nor one of the `nameservers` taken over
/// (none on the embedded-resolver path), the routes to all of them leave through the
/// interface, and with `request.probe_upstream` it answers a query from `source` (its round
/// trip in `log`).
fn check_upstream(
    request: &AttachRequest,
    interface: &str,
    source: IpAddr,
    upstream: SocketAddr,
    nameservers: &[SocketAddr],
    log: Log,
) -> Result<(), Error> {
    if upstream.ip() == source {
        return Err(Error::Upstream(format!(
            "{} is the container's own address",
            upstream.ip()
        )));
    }
    if nameservers.contains(&upstream) {
        return Err(Error::Upstream(format!(
            "{upstream} is one of the nameservers taken over"
        )));
    }
    for ns in nameservers {
        interfaces::check_route(interface, source, RouteTo::Nameserver(*ns))?;
    }
    interfaces::check_route(interface, source, RouteTo::Upstream(upstream.ip()))?;
    if request.probe_upstream {
        let rtt = probe::probe(source, upstream, probe::TIMEOUT)?;
        log(format!(
            "upstream {upstream} answered the probe in {}",
            probe::format_rtt(rtt)
        ));
    }
    Ok(())
}

/// Loads the programs with the configuration `settings` make (new ones every time:
/// re-attaching replaces the old programs, and their maps go with them) and fills the rules map.
fn load_programs(settings: &Settings, rules: &Rules) -> Result<Loaded, Error> {
    let mut object = ObjectFile::parse(embedded::object_bytes())?;
    let config = settings.to_config(embedded::object_hash());
    object.set_global(CONFIG_SYMBOL, &config.to_bytes())?;
    let loaded = load::load(&object, &settings.load_options())?;
    let map = loaded
        .map(&object, RULES_MAP)
        .ok_or_else(|| GlobalError::Missing(RULES_MAP.into()))?;
    rules::fill(map, rules).map_err(|e| LoadError::Map {
        map: RULES_MAP.into(),
        action: e.action,
        source: e.source,
    })?;
    Ok(loaded)
}

fn program<'a>(loaded: &'a Loaded, section: &str) -> Result<Program<'a>, Error> {
    let LoadedProgram { name, fd, .. } = loaded
        .program(section)
        .ok_or(Error::Object(ParseError::NoPrograms))?;
    Ok(Program {
        name,
        fd,
        id: sys::prog_info(fd).map(|i| i.id).unwrap_or(0),
    })
}

/// Progress lines for --verbose.
pub type Log<'a> = &'a mut (dyn FnMut(String) + Send);

/// Runs `work` on a thread inside the target's network namespace, with an rtnetlink channel
/// opened there: the preamble of everything that looks at or changes a namespace.
pub fn in_namespace<T: Send>(
    target: &Target,
    work: impl FnOnce(&mut Netlink) -> Result<T, Error> + Send,
) -> Result<T, Error> {
    check_privileges()?;
    netns::run_in(target, || {
        let mut nl = Netlink::open().context(|| "opening an rtnetlink socket".into())?;
        work(&mut nl)
    })
}

/// [`in_namespace`] for work that changes the namespace (attach, detach): one dnsredir at a
/// time per namespace, by an exclusive lock on the namespace held from before the first look
/// until the last change ([`netns::open_locked`]). `--status` takes no lock.
pub fn change_namespace<T: Send>(
    target: &Target,
    log: Log,
    work: impl FnOnce(&mut Netlink, Log) -> Result<T, Error> + Send,
) -> Result<T, Error> {
    check_privileges()?;
    let asked = std::time::Instant::now();
    let ns = netns::open_locked(target, || {
        log(format!(
            "another dnsredir is changing the namespace of {target}; waiting for it"
        ))
    })?;
    log(format!(
        "holding the lock on the namespace of {target} (waited {} ms; CLOCK_MONOTONIC {:.6} s)",
        asked.elapsed().as_millis(),
        sys::monotonic_ns() as f64 / 1e9
    ));
    netns::run_with(target, ns, || {
        let mut nl = Netlink::open().context(|| "opening an rtnetlink socket".into())?;
        work(&mut nl, log)
    })
}

/// Removes dnsredir from the namespace, from whichever interfaces it is on; `Ok(0)` when it
/// was not attached.
pub fn detach(target: &Target, log: Log) -> Result<usize, Error> {
    change_namespace(target, log, |nl, log| hooks::remove_all(nl, log))
}

/// [`detach`] of the attachment working through `interface` only: a CNI DEL for one network
/// leaves an attachment another network made through another interface.
pub fn detach_interface(target: &Target, interface: &str, log: Log) -> Result<usize, Error> {
    change_namespace(target, log, |nl, log| hooks::remove_on(nl, interface, log))
}
