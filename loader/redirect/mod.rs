//! What dnsredir puts into a namespace and takes out again: the steps shared by every redirect
//! path (our filter on a hook, found, swapped or removed without touching anyone else's), and
//! the paths themselves ([`resolver`]: Docker's embedded resolver, taken on lo; [`nameservers`]:
//! the namespace's own nameservers, taken on the interface's egress), and which one applies.

pub mod embedded_resolver;
pub mod nameservers;
mod request;
pub mod rules;

use crate::abi::{Config, CONFIG_SYMBOL, MAX_NAMESERVERS, REPLY_SECTION, RULES_MAP};
use crate::bpf::elf::{GlobalError, ObjectFile, ParseError};
use crate::bpf::embedded;
use crate::bpf::load::{self, LoadError, Loaded, LoadedProgram};
use crate::bpf::sys;
use crate::error::{check_privileges, Context, Error, Undo};
use crate::fault;
use crate::namespace;
use crate::namespace::interfaces::{Interface, RouteTo};
use crate::namespace::NamespaceError;
use crate::net::netlink::Netlink;
use crate::net::netns::{self, NetnsError};
use crate::net::tc::{self, Filter, Hook};
use crate::probe;
use crate::target::Target;
use rules::Rules;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::OwnedFd;

pub use request::{AttachRequest, Attached, EDNS_MAX, TCP_CLOSE_GRACE_NS};

/// Attaches the path that fits the namespace: with `--resolver`, the nameservers named; else
/// Docker's embedded resolver when the namespace has one, else the nameservers of the
/// process's resolv.conf. The host's own namespace is refused before anything is loaded.
pub fn attach(request: &AttachRequest, log: Log) -> Result<Attached, Error> {
    check_privileges()?;
    change_namespace(&request.target, log, |nl, log| {
        // The namespace entered, not the path: a path can name another namespace by now.
        namespace::host::refuse_host_namespace(
            netns::CURRENT.as_ref(),
            &request.target.to_string(),
        )?;
        log(format!(
            "entered the network namespace of {}",
            request.target
        ));
        if !request.resolvers.is_empty() {
            return nameservers::attach_in(nl, request, &request.resolvers, log);
        }
        match embedded_resolver::attach_in(nl, request, log) {
            Err(Error::Namespace(NamespaceError::NoResolver)) => {}
            other => return other,
        }
        let Target::Pid(pid) = &request.target else {
            return Err(NamespaceError::NameserversUnknown.into());
        };
        let found = namespace::resolv_conf::pid_nameservers(
            *pid,
            MAX_NAMESERVERS,
            request.upstream6.is_some(),
        )?;
        log(format!(
            "no embedded resolver on {}: taking over the nameservers of {}",
            namespace::dockerd::DOCKER_RESOLVER,
            namespace::resolv_conf::resolv_conf_path(*pid).display()
        ));
        nameservers::attach_in(nl, request, &found, log)
    })
}

/// lo and the `--interface` with its IPv4 address, the source of redirected queries: what both
/// paths start from.
fn interfaces(request: &AttachRequest) -> Result<(Interface, Interface, Ipv4Addr), Error> {
    let lo = namespace::interfaces::interface("lo")?;
    let iface = namespace::interfaces::interface(&request.interface)?;
    let addr = iface
        .addr
        .ok_or_else(|| NamespaceError::NoIpv4(request.interface.clone()))?;
    Ok((lo, iface, addr))
}

/// What both paths check of one family's `upstream` before anything is attached: it is
/// neither the interface's own address `source` nor one of the `nameservers` taken over
/// (none on the embedded-resolver path), the routes to all of them leave through the
/// interface, and with `request.probe_upstream` it answers a query from `source` (its round
/// trip in `log`).
fn check_upstream(
    request: &AttachRequest,
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
        namespace::interfaces::check_route(&request.interface, source, RouteTo::Nameserver(*ns))?;
    }
    namespace::interfaces::check_route(
        &request.interface,
        source,
        RouteTo::Upstream(upstream.ip()),
    )?;
    if request.probe_upstream {
        let rtt = probe::probe(source, upstream, probe::TIMEOUT)?;
        log(format!(
            "upstream {upstream} answered the probe in {}",
            probe::format_rtt(rtt)
        ));
    }
    Ok(())
}

/// Loads the programs with their maps (new ones every time: re-attaching replaces the old
/// programs, and their maps go with them) and fills the rules map.
fn load_programs(config: &Config, rules: &Rules) -> Result<Loaded, Error> {
    let mut object = ObjectFile::parse(embedded::object_bytes())?;
    object.set_global(CONFIG_SYMBOL, &config.to_bytes())?;
    let loaded = load::load(&object, &load::Options::sched_cls())?;
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

/// Loads the programs with `config` and `rules` (through the verifier before anything in the
/// namespace changes; the rules go to the map of the `holder` program, which `log` says) and
/// hands `attach` the program of `section` and the reply program.
fn load_and_attach(
    config: &Config,
    rules: &Rules,
    section: &str,
    holder: &str,
    log: Log,
    attach: impl FnOnce(&Program, &Program, Log) -> Result<(), Error>,
) -> Result<(), Error> {
    let loaded = load_programs(config, rules)?;
    if !rules.is_empty() {
        log(format!(
            "{} name rules in the {holder} program's map",
            rules.rules.len()
        ));
    }
    let program_of_section = program(&loaded, section)?;
    let reply = program(&loaded, REPLY_SECTION)?;
    attach(&program_of_section, &reply, log)
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

/// Filter names start with this; only such filters are ever replaced or deleted.
pub const FILTER_PREFIX: &str = "dnsredir";

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

/// One of the interface's tc hooks, as messages name it.
#[derive(Debug, Clone, Copy)]
pub struct HookRef<'a> {
    pub ifname: &'a str,
    pub ifindex: u32,
    pub hook: Hook,
}

impl HookRef<'_> {
    fn describe(&self, what: &str) -> String {
        format!("{what} on {} {}", self.ifname, self.hook)
    }
}

/// A loaded program to put on a hook.
pub struct Program<'a> {
    pub name: &'a str,
    pub fd: &'a OwnedFd,
    pub id: u32,
}

/// Attaches `program` on the hook: in place of ours if there is one (atomic program swap),
/// else at the first free priority. Other tools' filters are left alone.
pub fn put(nl: &mut Netlink, at: HookRef, program: &Program, log: Log) -> Result<(), Error> {
    let created_clsact =
        tc::add_clsact(nl, at.ifindex).context(|| at.describe("adding the clsact qdisc"))?;
    let existing =
        tc::filters(nl, at.ifindex, at.hook).context(|| at.describe("listing filters"))?;
    let (prio, handle) = slot(&existing);
    tc::put_bpf_filter(
        nl,
        at.ifindex,
        at.hook,
        prio,
        handle,
        program.fd,
        program.name,
    )
    .context(|| at.describe(&format!("attaching {}", program.name)))?;
    for stale in existing
        .iter()
        .filter(|f| f.is_named(FILTER_PREFIX) && (f.prio, f.handle) != (prio, handle))
    {
        tc::del_filter(nl, at.ifindex, at.hook, stale)
            .context(|| at.describe("removing a duplicate dnsredir filter"))?;
    }
    log(format!(
        "{}: {} as program id {}, filter pref {prio} handle {handle:#x}{}",
        at.describe("attached"),
        program.name,
        program.id,
        if created_clsact {
            ", clsact qdisc created"
        } else {
            ", clsact qdisc already there"
        }
    ));
    Ok(())
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

/// Removes our filter from one hook (the other path's, when switching paths); other filters
/// and the clsact qdisc stay.
pub fn remove_from_hook(nl: &mut Netlink, at: HookRef, log: Log) -> Result<(), Error> {
    let said = Some((log, "removed (the other path's)"));
    remove_filters(nl, at.ifname, at.ifindex, &[at.hook], false, said).map(drop)
}

/// Removes our filters from both hooks of an interface, and its clsact qdisc when nothing
/// else is left on it. Returns how many filters were removed.
pub fn remove_ours(nl: &mut Netlink, ifname: &str, ifindex: u32, log: Log) -> Result<usize, Error> {
    let both = [Hook::Ingress, Hook::Egress];
    remove_filters(nl, ifname, ifindex, &both, true, Some((log, "removed")))
}

/// Removes our filters from `hooks` of the interface, and with `drop_clsact` its clsact qdisc
/// when no filter is left on either hook. `said`: the log and the word for each filter
/// removed (and a line on the qdisc). Returns how many filters were removed.
fn remove_filters(
    nl: &mut Netlink,
    ifname: &str,
    ifindex: u32,
    hooks: &[Hook],
    drop_clsact: bool,
    mut said: Option<(Log, &str)>,
) -> Result<usize, Error> {
    if !tc::has_clsact(nl, ifindex).context(|| format!("listing qdiscs on {ifname}"))? {
        return Ok(0);
    }
    let (mut removed, mut left) = (0, 0);
    for hook in [Hook::Ingress, Hook::Egress] {
        let ours_here = hooks.contains(&hook);
        // The other hook's filters matter only to whether the qdisc may go.
        if !ours_here && !drop_clsact {
            continue;
        }
        let at = HookRef {
            ifname,
            ifindex,
            hook,
        };
        let filters = tc::filters(nl, ifindex, hook).context(|| at.describe("listing filters"))?;
        for filter in &filters {
            if !(ours_here && filter.is_named(FILTER_PREFIX)) {
                left += 1;
                continue;
            }
            tc::del_filter(nl, ifindex, hook, filter)
                .context(|| at.describe("removing the dnsredir filter"))?;
            removed += 1;
            if let Some((log, word)) = &mut said {
                log(format!(
                    "{}: {}",
                    at.describe(word),
                    filter.prog_name().unwrap_or("?")
                ));
            }
        }
    }
    if !drop_clsact {
        return Ok(removed);
    }
    if left == 0 {
        tc::del_clsact(nl, ifindex).context(|| format!("removing the clsact qdisc on {ifname}"))?;
    }
    if let Some((log, _)) = &mut said {
        log(if left == 0 {
            format!("removed the now empty clsact qdisc from {ifname}")
        } else {
            format!("kept the clsact qdisc on {ifname}: {left} other filter(s) use it")
        });
    }
    Ok(removed)
}

/// What was on some hooks before an attach changed them: what a failed attach puts back.
pub struct Previous<'a> {
    hooks: Vec<Before<'a>>,
}

struct Before<'a> {
    at: HookRef<'a>,
    had_clsact: bool,
    /// Our filter there, with its program held open so it can go back.
    ours: Option<(Filter, OwnedFd)>,
}

/// Changes the namespace's hooks as one step: what is on `hooks` is noted (and held) first, and
/// a failure — or the `--pid` process gone by the end, its namespace going away — puts it back
/// ([`Previous::undo`]). `hooks` are in the order the change fills them, reply side first.
pub fn transact(
    nl: &mut Netlink,
    target: &Target,
    hooks: &[HookRef],
    log: Log,
    change: impl FnOnce(&mut Netlink, Log) -> Result<(), Error>,
) -> Result<(), Error> {
    let namespace = netns::current().context(|| "reading the namespace's identity".into())?;
    let previous = snapshot(nl, hooks)?;
    fault::pause("attach");
    let result = change(nl, &mut *log).and_then(|()| match target {
        Target::Pid(pid) if !netns::still_names(target, namespace) => {
            Err(NetnsError::Exited(*pid).into())
        }
        _ => Ok(()),
    });
    result.map_err(|e| previous.undo(nl, e, log))
}

/// Takes note of our filters on `hooks` (read-only). A filter of ours whose program cannot be
/// held is an error here, before anything changes.
pub fn snapshot<'a>(nl: &mut Netlink, hooks: &[HookRef<'a>]) -> Result<Previous<'a>, Error> {
    let mut before = Vec::new();
    for &at in hooks {
        let had_clsact = tc::has_clsact(nl, at.ifindex)
            .context(|| format!("listing qdiscs on {}", at.ifname))?;
        let mut ours = None;
        if had_clsact {
            let filters =
                tc::filters(nl, at.ifindex, at.hook).context(|| at.describe("listing filters"))?;
            if let Some(f) = filters.into_iter().find(|f| f.is_named(FILTER_PREFIX)) {
                let fd = f
                    .prog_id()
                    .ok_or_else(|| {
                        std::io::Error::new(std::io::ErrorKind::InvalidData, "no program id")
                    })
                    .and_then(sys::prog_fd_by_id)
                    .context(|| at.describe("holding the dnsredir program attached"))?;
                ours = Some((f, fd));
            }
        }
        before.push(Before {
            at,
            had_clsact,
            ours,
        });
    }
    Ok(Previous { hooks: before })
}

impl Previous<'_> {
    /// Whether dnsredir had a filter on any of the hooks.
    pub fn attached(&self) -> bool {
        self.hooks.iter().any(|b| b.ours.is_some())
    }

    /// Undoes a failed attach: each hook gets back the filter of ours it had, or loses ours;
    /// a clsact qdisc the attach created goes when it is empty. When that fails, everything of
    /// ours on the hooks goes (dockerd answers again); the last hooks are undone first (queries
    /// stop before their answers' path). Wraps `error` with what is left.
    pub fn undo(self, nl: &mut Netlink, error: Error, log: Log) -> Error {
        let had = self.attached();
        let mut first_failure = None;
        for before in self.hooks.iter().rev() {
            if let Err(e) = before.restore(nl) {
                first_failure.get_or_insert(e);
            }
        }
        let undo = match first_failure {
            None if had => Undo::Previous,
            None => Undo::Nothing,
            Some(e) => {
                let mut last = Ok(());
                for before in self.hooks.iter().rev() {
                    last = last.and(remove_on_hook(nl, before.at, before.had_clsact));
                }
                match last {
                    Ok(()) => Undo::Nothing,
                    Err(_) => Undo::Failed(Box::new(e)),
                }
            }
        };
        log(format!("undid the failed attach: {undo:?}"));
        Error::Attach {
            source: Box::new(error),
            undo,
        }
    }
}

impl Before<'_> {
    fn restore(&self, nl: &mut Netlink) -> Result<(), Error> {
        let Some((old, fd)) = &self.ours else {
            return remove_on_hook(nl, self.at, self.had_clsact);
        };
        let at = self.at;
        let name = old.prog_name().unwrap_or(FILTER_PREFIX);
        tc::put_bpf_filter(nl, at.ifindex, at.hook, old.prio, old.handle, fd, name)
            .context(|| at.describe("putting the previous dnsredir filter back"))?;
        let filters =
            tc::filters(nl, at.ifindex, at.hook).context(|| at.describe("listing filters"))?;
        for f in filters
            .iter()
            .filter(|f| f.is_named(FILTER_PREFIX) && (f.prio, f.handle) != (old.prio, old.handle))
        {
            tc::del_filter(nl, at.ifindex, at.hook, f)
                .context(|| at.describe("removing the new dnsredir filter"))?;
        }
        Ok(())
    }
}

/// Removes our filters from one hook; then the clsact qdisc too when it is empty and was not
/// there before (`had_clsact`).
fn remove_on_hook(nl: &mut Netlink, at: HookRef, had_clsact: bool) -> Result<(), Error> {
    remove_filters(nl, at.ifname, at.ifindex, &[at.hook], !had_clsact, None).map(drop)
}

/// Removes dnsredir from the namespace; `Ok(0)` when it was not attached.
pub fn detach(target: &Target, interface: &str, log: Log) -> Result<usize, Error> {
    change_namespace(target, log, |nl, log| {
        let mut removed = 0;
        // Queries stop first, then their answers' path.
        for ifname in ["lo", interface] {
            // A missing interface has nothing of ours on it.
            if let Ok(iface) = namespace::interfaces::interface(ifname) {
                removed += remove_ours(nl, ifname, iface.ifindex, log)?;
            }
        }
        Ok(removed)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::tc::{Classifier, ETH_P_ALL};

    fn filter(prio: u16, handle: u32, name: Option<&str>) -> Filter {
        Filter {
            prio,
            protocol: ETH_P_ALL,
            handle,
            classifier: Classifier::Bpf {
                name: name.map(String::from),
                prog_id: None,
            },
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
