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
pub mod policy;
mod request;
pub mod rules;
mod transaction;

use crate::abi::{Config, CONFIG_SYMBOL};
use crate::abi::{ANSWERS_MAP, EGRESS_SECTION, QUERY_SECTION, REPLY_SECTION, RULES_MAP};
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
use crate::settings::{Path, Settings, Upstream};
use crate::target::Target;
use detect::Detected;
use hooks::{Clsact, Found, HookRef, Program};
use rules::{RuleMaps, Rules};
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
        let (lo_ifindex, iface, source) = interfaces_for(&interface)?;
        log(format!(
            "lo is ifindex {lo_ifindex}; {interface} is ifindex {} with address {source}",
            iface.ifindex
        ));
        let base = Settings {
            path: Path::Nameservers {
                nameservers: Vec::new(),
                ipv6: None,
                any: false,
            },
            ifindex: iface.ifindex,
            lo_ifindex,
            source,
            upstream: Upstream(request.upstream),
            edns_max: request.edns_max,
            rules: crate::settings::RuleKinds {
                block_refused: request.block_refused,
                ..request.rules.kinds()
            },
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
        let on_iface = |hook| HookRef::new(&interface, iface.ifindex, hook);
        let query_hook = match settings.path {
            Path::EmbeddedResolver { .. } => HookRef::new("lo", lo_ifindex, Hook::Ingress),
            Path::Nameservers { .. } => on_iface(Hook::Egress),
        };
        let attached = Attached {
            interface: interface.clone(),
            settings: settings.clone(),
            left_with_dockerd,
            ipv6_not_redirected,
            rules_updated_in_place: true,
        };
        let hooks = [on_iface(Hook::Ingress), query_hook];
        // One look at the hooks serves both the in-place check and the install.
        let found = hooks::find(nl)?;
        if rewrite_in_place(&found, &settings, &hooks, &request.rules, log)? {
            return Ok(attached);
        }
        // The verifier takes most of an attach: while the programs load here, a thread of its
        // own (in the namespace too: threads start where their creator is) readies the hooks'
        // clsact qdiscs, which can take a few ms (the first in the system turns the kernel's
        // tc hooks on). This thread goes on with the load at once: a new thread can take a
        // while to be scheduled.
        let (loaded, clsact) = std::thread::scope(|scope| {
            let (tc, at) = (&mut *nl, &hooks);
            let readying = std::thread::Builder::new()
                .name("dnsredir-tc".into())
                .spawn_scoped(scope, move || hooks::ready_clsact(tc, at));
            let loaded = load_programs(&settings, &request.rules);
            let clsact = readying.ok().map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            });
            (loaded, clsact)
        });
        // No thread: the qdiscs are readied after the load.
        let clsact = clsact.unwrap_or_else(|| hooks::ready_clsact(nl, &hooks));
        // A qdisc that could not be added: those added before it are gone again already.
        let created = clsact?;
        // Nothing is attached yet on a failure here: the qdiscs added for this attach go
        // again, empty.
        let undo = |nl: &mut Netlink, log: Log, e: Error| {
            hooks::drop_clsact(nl, &hooks, &created, log);
            e
        };
        let loaded = loaded.map_err(|e| undo(nl, log, e))?;
        if !request.rules.is_empty() {
            log(format!(
                "{} name rules in the query program's map",
                request.rules.rules.len()
            ));
        }
        let query_section = match settings.path {
            Path::EmbeddedResolver { .. } => QUERY_SECTION,
            Path::Nameservers { .. } => EGRESS_SECTION,
        };
        // The reply side goes first: once queries are taken, their answers must already be
        // handled.
        let [reply_hook, query_hook] = hooks.clone();
        let wanted = program(&loaded, REPLY_SECTION)
            .and_then(|reply| {
                Ok([
                    (reply_hook, reply),
                    (query_hook, program(&loaded, query_section)?),
                ])
            })
            .map_err(|e| undo(nl, log, e))?;
        install(nl, &request.target, found, &wanted, &created, log)?;
        Ok(Attached {
            rules_updated_in_place: false,
            ..attached
        })
    })
}

/// Rewrites the rules of the attachment in place when it is this build's, on `hooks` (reply
/// side, query side) and nowhere else, with the very configuration `settings` make, and its
/// answers' array has room for the new answers beside the live ones: the same programs go on,
/// no flow is lost. `Ok(false)` (after a line in `log` saying why) when anything differs: the
/// attach then loads new programs as always. A rewrite that fails half-way is logged and
/// followed by that full attach too, which replaces the half-written maps with the programs.
fn rewrite_in_place(
    found: &Found,
    settings: &Settings,
    hooks: &[HookRef; 2],
    rules: &Rules,
    log: Log,
) -> Result<bool, Error> {
    let (Some(reply), Some(query)) = (found.reply(), found.query()) else {
        return Ok(false);
    };
    if reply.at != hooks[0] || query.at != hooks[1] || !found.strays().is_empty() {
        return Ok(false);
    }
    let (Some(reply_id), Some(query_id)) = (reply.filter.prog_id(), query.filter.prog_id()) else {
        return Ok(false);
    };
    let wanted = settings.to_config(embedded::object_hash());
    let config_of =
        |maps: &[(std::os::fd::OwnedFd, sys::MapInfo)]| -> Result<Option<Config>, Error> {
            let rodata = crate::inspect::maps::rodata_of(maps)?;
            Ok(crate::inspect::maps::config_offset(&rodata)
                .and_then(|at| rodata.get(at..))
                .and_then(Config::from_bytes))
        };
    let query_maps = crate::inspect::maps::program_maps(query_id)?;
    let reply_maps = crate::inspect::maps::program_maps(reply_id)?;
    if config_of(&query_maps)? != Some(wanted) || config_of(&reply_maps)? != Some(wanted) {
        log("the attached programs' configuration differs: loading new ones".into());
        return Ok(false);
    }
    let map = |name: &str| query_maps.iter().find(|(_, info)| info.name == name);
    let Some((rules_map, _)) = map(RULES_MAP) else {
        return Ok(false);
    };
    let answers = map(ANSWERS_MAP);
    let maps = RuleMaps {
        rules: rules_map,
        answers: answers.map(|(fd, _)| fd),
    };
    let capacity = answers.map_or(0, |(_, info)| info.max_entries);
    let stored = rules::read(maps).map_err(|e| Error::Inspect {
        action: "reading the attached rules".into(),
        source: e.source,
    })?;
    let Some(plan) = policy::plan(&stored, policy::encode(rules), capacity) else {
        log(format!(
            "the new answers do not fit beside the live ones in the {capacity} slots of the attached answers' array: loading new programs"
        ));
        return Ok(false);
    };
    match rules::fill(maps, &plan) {
        Ok(()) => {
            log(format!(
                "rules rewritten in place (programs {query_id} and {reply_id} kept): {} answers written, {} keys written, {} keys removed",
                plan.answers.len(),
                plan.update.len(),
                plan.delete.len()
            ));
            Ok(true)
        }
        Err(e) => {
            log(format!(
                "{e} while rewriting in place: loading new programs"
            ));
            Ok(false)
        }
    }
}

/// Puts the programs on their hooks as one step, and takes dnsredir's filters off every other
/// hook where they are (the other path's query hook, an interface attached before): what was
/// there is put back if anything fails.
fn install(
    nl: &mut Netlink,
    target: &Target,
    found: Found,
    wanted: &[(HookRef, Program)],
    created_clsact: &[u32],
    log: Log,
) -> Result<(), Error> {
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
            let created = created_clsact.contains(&at.ifindex);
            hooks::put(nl, at, program, created, log)?;
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

/// lo's index and the interface with its IPv4 address, the source of redirected queries: what
/// both paths start from. (lo's addresses are not listed: each listing is two rtnetlink dumps.)
fn interfaces_for(name: &str) -> Result<(u32, Interface, Ipv4Addr), Error> {
    let lo = interfaces::index_of("lo")?;
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
/// trip in `log`). Without an upstream (a policy alone) only the nameservers' routes.
fn check_upstream(
    request: &AttachRequest,
    interface: &str,
    source: IpAddr,
    upstream: Option<SocketAddr>,
    nameservers: &[SocketAddr],
    log: Log,
) -> Result<(), Error> {
    let Some(upstream) = upstream else {
        for ns in nameservers {
            interfaces::check_route(interface, source, RouteTo::Nameserver(*ns))?;
        }
        return Ok(());
    };
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
/// re-attaching replaces the old programs, and their maps go with them) and fills the rules
/// map and the answers' array, sized for the rules' distinct answers
/// ([`policy::answers_capacity`]).
fn load_programs(settings: &Settings, rules: &Rules) -> Result<Loaded, Error> {
    let mut object = ObjectFile::parse(embedded::object_bytes())?;
    let config = settings.to_config(embedded::object_hash());
    object.set_global(CONFIG_SYMBOL, &config.to_bytes())?;
    let encoded = policy::encode(rules);
    let capacity = policy::answers_capacity(encoded.answers.len());
    let options = settings.load_options().max_entries(ANSWERS_MAP, capacity);
    let loaded = load::load(&object, &options)?;
    let map = loaded
        .map(&object, RULES_MAP)
        .ok_or_else(|| GlobalError::Missing(RULES_MAP.into()))?;
    let maps = RuleMaps {
        rules: map,
        answers: loaded.map(&object, ANSWERS_MAP),
    };
    // Fresh maps: every slot is free, and the array has room for every answer.
    let plan = policy::plan(&policy::Stored::default(), encoded, capacity).unwrap_or_default();
    rules::fill(maps, &plan).map_err(|e| LoadError::Map {
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
