//! What is attached in a namespace, read back from the kernel (filter dumps, program and map
//! info) — there is no state file to go stale. `--status` shows it, `--watch` finds its event
//! maps here; everything that reads an attached program starts here.

use crate::abi::{
    Config, ConfigHeader, Counters, WatchControl, CONFIG_MAGIC, COUNTERS_MAP, EVENTS_LOST_MAP,
    EVENTS_MAP, FLOWS6_MAP, FLOWS_MAP, LAYOUT_VERSION, PATH_NAMESERVERS, RULES_MAP, WATCH_MAP,
};
use crate::bpf::{embedded, ringbuf, sys};
use crate::error::{Context, Error};
use crate::layout::{self, addr_from_raw, port_from_raw};
use crate::namespace;
use crate::namespace::dockerd::{PortSource, Proto};
use crate::net::netlink::Netlink;
use crate::net::tc::{self, Hook};
use crate::redirect::rules::{self, Rules};
use crate::redirect::{in_namespace, FILTER_PREFIX};
use crate::target::Target;
use std::os::fd::OwnedFd;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HookStatus {
    pub attached: bool,
    pub prog_id: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    pub lo: HookStatus,
    /// The `--interface`'s ingress.
    pub interface: HookStatus,
    /// The `--interface`'s egress (the nameservers path).
    pub egress: HookStatus,
    pub config: Option<Config>,
    pub tracked_flows: Option<usize>,
    pub counters: Option<Counters>,
    /// Which build attached the program (`None` when nothing is attached).
    pub build: Option<Build>,
    /// Why the configuration in force no longer fits the container, with what to run.
    pub stale: Option<String>,
    /// What the stale check could not tell (dockerd's port among several sockets).
    pub unknown: Option<String>,
    /// The name rules in the attached query program's map (`--keep`, `--only`).
    pub rules: Option<Rules>,
    /// That map's id: a re-attach brings a new one.
    pub rules_map_id: Option<u32>,
}

impl Status {
    /// Both programs of the path in force are on their hooks.
    pub fn attached(&self) -> bool {
        self.interface.attached && self.query_hook().attached
    }

    /// The nameservers path is in force (by the configuration, else by the filters there).
    pub fn nameservers_path(&self) -> bool {
        match &self.config {
            Some(c) => c.path == PATH_NAMESERVERS,
            None => self.egress.attached && !self.lo.attached,
        }
    }

    /// Where the path in force takes queries: lo ingress, or the interface's egress.
    pub fn query_hook(&self) -> &HookStatus {
        if self.nameservers_path() {
            &self.egress
        } else {
            &self.lo
        }
    }
}

pub fn status(target: &Target, interface: &str) -> Result<Status, Error> {
    in_namespace(target, |nl| {
        let hooks = read_hooks(nl, interface)?;
        let mut status = Status {
            lo: hooks.lo,
            interface: hooks.ingress,
            egress: hooks.egress,
            ..Status::default()
        };
        // Each program holds some of the maps (the rules are the query program's): all of them.
        let programs: Vec<u32> = [&status.interface, &status.lo, &status.egress]
            .iter()
            .filter_map(|h| h.prog_id)
            .collect();
        if programs.is_empty() {
            return Ok(status);
        }
        read_maps(&programs, &mut status)?;

        let rerun = format!("run dnsredir {} --upstream ... again", target_args(target));
        let query_hook = if status.nameservers_path() {
            format!("{interface} egress")
        } else {
            "lo".to_string()
        };
        status.stale = match (
            &status.config,
            status.query_hook().attached,
            status.interface.attached,
        ) {
            (_, true, false) => Some(format!(
                "only {query_hook} has dnsredir's filter, {interface} ingress has none: {rerun}"
            )),
            (_, false, true) => Some(format!(
                "only {interface} ingress has dnsredir's filter, {query_hook} has none: {rerun}"
            )),
            (Some(config), _, _) if config.path == PATH_NAMESERVERS => {
                interface_stale(config, interface, &rerun, Vec::new())
            }
            (Some(config), _, _) => {
                let (stale, unknown) = stale_reason(config, interface, &rerun)?;
                status.unknown = unknown;
                stale
            }
            (None, _, _) => match status.build {
                Some(Build::OtherLayout { layout, build_id }) => Some(format!(
                    "attached by another dnsredir build (object fnv1a64 {build_id:016x}, layout {layout}; this binary reads layout {LAYOUT_VERSION}), so its configuration and counters are not shown: {rerun} with this binary"
                )),
                Some(Build::Unknown) => Some(format!(
                    "attached by a dnsredir build older than this one's configuration format, so its configuration and counters are not shown: {rerun} with this binary"
                )),
                _ => None,
            },
        };
        Ok(status)
    })
}

fn target_args(target: &Target) -> String {
    match target {
        Target::Pid(pid) => format!("--pid {pid}"),
        Target::Path(p) => format!("--netns {}", p.display()),
    }
}

fn hook_status(
    nl: &mut Netlink,
    ifname: &str,
    ifindex: u32,
    hook: Hook,
) -> Result<HookStatus, Error> {
    if !tc::has_clsact(nl, ifindex).context(|| format!("listing qdiscs on {ifname}"))? {
        return Ok(HookStatus::default());
    }
    let filters =
        tc::filters(nl, ifindex, hook).context(|| format!("listing filters on {ifname} {hook}"))?;
    let ours = filters.into_iter().find(|f| f.is_named(FILTER_PREFIX));
    Ok(HookStatus {
        attached: ours.is_some(),
        prog_id: ours.and_then(|f| f.prog_id()),
    })
}

/// The build that attached a program, from its configuration's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Build {
    /// This very binary's object.
    This,
    /// Another build with the same layouts: decoded, but worth re-attaching.
    SameLayout { build_id: u64 },
    /// Another layout: nothing is decoded.
    OtherLayout { layout: u32, build_id: u64 },
    /// No dnsredir configuration header (a build older than the header, or not dnsredir's).
    Unknown,
}

/// Where the configuration sits in a `.rodata` value: other constants may precede it, and only
/// its header's magic (the same in every build) tells where.
fn config_offset(rodata: &[u8]) -> Option<usize> {
    (0..rodata.len()).step_by(4).find(|&at| {
        rodata
            .get(at..)
            .and_then(ConfigHeader::from_bytes)
            .is_some_and(|h| h.magic == CONFIG_MAGIC)
    })
}

fn build_of(header: Option<ConfigHeader>) -> Build {
    match header {
        None => Build::Unknown,
        Some(h) if h.layout != LAYOUT_VERSION => Build::OtherLayout {
            layout: h.layout,
            build_id: h.build_id,
        },
        Some(h) if h.build_id == embedded::object_hash() => Build::This,
        Some(h) => Build::SameLayout {
            build_id: h.build_id,
        },
    }
}

/// Reads the attached program's maps: first its configuration's header, to know whose they
/// are, then — only if their layout is this build's — configuration, flow count and counters.
fn read_maps(programs: &[u32], status: &mut Status) -> Result<(), Error> {
    // The programs of one attach share their maps: each map once.
    let mut maps: Vec<(OwnedFd, sys::MapInfo)> = Vec::new();
    for &prog_id in programs {
        for (fd, info) in program_maps(prog_id)? {
            if maps.iter().all(|(_, m)| m.id != info.id) {
                maps.push((fd, info));
            }
        }
    }
    let rodata = rodata_of(&maps)?;
    let config = config_offset(&rodata).and_then(|at| rodata.get(at..));
    status.build = Some(build_of(config.and_then(ConfigHeader::from_bytes)));
    if !matches!(status.build, Some(Build::This | Build::SameLayout { .. })) {
        return Ok(());
    }
    status.config = config.and_then(Config::from_bytes);
    for (map, map_info) in &maps {
        if map_info.name == FLOWS_MAP || map_info.name == FLOWS6_MAP {
            // IPv4 and IPv6 flows together.
            let n = count_keys(map, map_info.key_size as usize)?;
            status.tracked_flows = Some(status.tracked_flows.unwrap_or(0) + n);
        } else if map_info.name == COUNTERS_MAP {
            let cpus = sys::possible_cpus().context(|| "counting CPUs".into())?;
            let mut value = vec![0u8; (map_info.value_size as usize).next_multiple_of(8) * cpus];
            sys::map_lookup(map, &0u32.to_ne_bytes(), &mut value)
                .context(|| "reading the counters".into())?;
            status.counters = Some(layout::sum_percpu_counters(&value));
        } else if map_info.name == RULES_MAP {
            status.rules = Some(rules::read(map).map_err(|e| Error::Inspect {
                action: "reading the name rules".into(),
                source: e.source,
            })?);
            status.rules_map_id = Some(map_info.id);
        }
    }
    Ok(())
}

/// The maps an attached program uses, with their info.
fn program_maps(prog_id: u32) -> Result<Vec<(OwnedFd, sys::MapInfo)>, Error> {
    let prog = sys::prog_fd_by_id(prog_id).context(|| "opening the attached program".into())?;
    let info = sys::prog_info(&prog).context(|| "reading the program's info".into())?;
    let mut maps = Vec::new();
    for map_id in info.map_ids {
        let map = sys::map_fd_by_id(map_id).context(|| "opening the program's map".into())?;
        let map_info = sys::map_info(&map).context(|| "reading the map's info".into())?;
        maps.push((map, map_info));
    }
    Ok(maps)
}

/// The value of the `.rodata` map among `maps` (empty without one).
fn rodata_of(maps: &[(OwnedFd, sys::MapInfo)]) -> Result<Vec<u8>, Error> {
    let mut rodata = Vec::new();
    for (map, map_info) in maps.iter().filter(|(_, i)| i.name.ends_with(".rodata")) {
        rodata = vec![0u8; map_info.value_size as usize];
        sys::map_lookup(map, &0u32.to_ne_bytes(), &mut rodata)
            .context(|| "reading the configuration".into())?;
    }
    Ok(rodata)
}

/// Our filters on lo and on both hooks of the `--interface`, nothing else (cheap enough to poll).
pub fn hooks(target: &Target, interface: &str) -> Result<Hooks, Error> {
    in_namespace(target, |nl| read_hooks(nl, interface))
}

/// The hooks, read in the namespace the caller is in.
fn read_hooks(nl: &mut Netlink, interface: &str) -> Result<Hooks, Error> {
    let lo = namespace::interfaces::interface("lo")?;
    let lo = hook_status(nl, "lo", lo.ifindex, Hook::Ingress)?;
    let (ingress, egress) = match namespace::interfaces::interface(interface) {
        Ok(iface) => (
            hook_status(nl, interface, iface.ifindex, Hook::Ingress)?,
            hook_status(nl, interface, iface.ifindex, Hook::Egress)?,
        ),
        Err(_) => Default::default(),
    };
    Ok(Hooks {
        lo,
        ingress,
        egress,
    })
}

/// Our filters on the hooks of either path.
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    pub lo: HookStatus,
    /// The `--interface`'s ingress (the reply program, both paths).
    pub ingress: HookStatus,
    /// The `--interface`'s egress (the nameservers path's queries).
    pub egress: HookStatus,
}

impl Hooks {
    /// Where queries are taken, with the hook's name: lo when our filter is there (the
    /// embedded-resolver path), else the interface's egress (the nameservers path).
    pub fn query(&self, interface: &str) -> (&HookStatus, String) {
        if !self.lo.attached && self.egress.attached {
            (&self.egress, format!("{interface} egress"))
        } else {
            (&self.lo, "lo".to_string())
        }
    }

    /// Both programs of a path are on their hooks.
    pub fn attached(&self) -> bool {
        self.ingress.attached && (self.lo.attached || self.egress.attached)
    }
}

/// The maps `--watch` reads, from the query program attached (on lo, or on the interface's
/// egress): one object load's programs share the event maps.
pub struct WatchMaps {
    /// The query program's id: the watch ends when another program takes its place.
    pub prog_id: u32,
    /// The ring buffer, and its data size.
    pub events: OwnedFd,
    pub events_size: u32,
    /// The watcher's flag ([`crate::abi::WatchControl`]).
    pub control: OwnedFd,
    /// Per-CPU count of events the ring buffer had no room for.
    pub lost: OwnedFd,
    /// The name rules in force, to say which one decided a query.
    pub rules: Rules,
}

/// Either the maps to watch, or the one line that says why there are none.
pub enum Watchable {
    Ready(WatchMaps),
    Refused(String),
}

/// Finds the attached programs' event maps, refusing what another build attached: its
/// events could have another layout.
pub fn watch_maps(target: &Target, interface: &str) -> Result<Watchable, Error> {
    let hooks = hooks(target, interface)?;
    let rerun = format!("run dnsredir {} --upstream ... first", target_args(target));
    let (query, query_name) = hooks.query(interface);
    let (true, true, Some(prog_id)) = (query.attached, hooks.ingress.attached, query.prog_id)
    else {
        return Ok(Watchable::Refused(format!(
            "not attached to {target} ({query_name}: {}, {interface} ingress: {}): nothing to watch; {rerun}",
            attached_word(query),
            attached_word(&hooks.ingress)
        )));
    };
    let maps = program_maps(prog_id)?;
    let rodata = rodata_of(&maps)?;
    let config = config_offset(&rodata).and_then(|at| rodata.get(at..));
    let build = build_of(config.and_then(ConfigHeader::from_bytes));
    let other_build = format!(
        "{target} has dnsredir attached by another build ({}), whose events this binary cannot read: run dnsredir {} --upstream ... again with this binary",
        match build {
            Build::This | Build::SameLayout { .. } => "without the event maps".to_string(),
            Build::OtherLayout { layout, build_id } => format!(
                "object fnv1a64 {build_id:016x}, layout {layout}; this binary reads layout {LAYOUT_VERSION}"
            ),
            Build::Unknown => "an older one".to_string(),
        },
        target_args(target)
    );
    if !matches!(build, Build::This | Build::SameLayout { .. }) {
        return Ok(Watchable::Refused(other_build));
    }
    let (mut events, mut control, mut lost) = (None, None, None);
    let mut rules = Rules::default();
    for (map, info) in maps {
        match info.name.as_str() {
            RULES_MAP => {
                rules = rules::read(&map).map_err(|e| Error::Inspect {
                    action: "reading the name rules".into(),
                    source: e.source,
                })?
            }
            EVENTS_MAP if info.map_type == ringbuf::BPF_MAP_TYPE_RINGBUF => {
                events = Some((map, info.max_entries))
            }
            WATCH_MAP if info.value_size as usize == WatchControl::SIZE => control = Some(map),
            EVENTS_LOST_MAP if info.value_size == 8 => lost = Some(map),
            _ => {}
        }
    }
    let (Some((events, events_size)), Some(control), Some(lost)) = (events, control, lost) else {
        return Ok(Watchable::Refused(other_build));
    };
    Ok(Watchable::Ready(WatchMaps {
        prog_id,
        events,
        events_size,
        control,
        lost,
        rules,
    }))
}

fn attached_word(h: &HookStatus) -> &'static str {
    if h.attached {
        "attached"
    } else {
        "not attached"
    }
}

fn count_keys(map: &OwnedFd, key_size: usize) -> Result<usize, Error> {
    sys::map_keys(map, key_size)
        .try_fold(0, |n, key| key.map(|_| n + 1))
        .context(|| "walking the flow table".into())
}

/// dockerd's port for a protocol as the namespace shows it now.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PortNow {
    Port(u16),
    Nothing,
    /// Cannot tell: several sockets and no answer from the NAT.
    Unknown(Vec<u16>),
}

/// dockerd's port now, checked against `in_force` (the port dnsredir redirects, if any).
/// A TCP probe is never made while TCP is redirected: it would be redirected too (and counted).
fn port_now(proto: Proto, in_force: Option<u16>) -> Result<PortNow, Error> {
    let from_sockets = |ports: Vec<u16>| match (in_force, ports.as_slice()) {
        (Some(a), ports) if ports.contains(&a) => PortNow::Port(a),
        (_, []) => PortNow::Nothing,
        (_, [b]) => PortNow::Port(*b),
        _ => PortNow::Unknown(ports),
    };
    if in_force.is_none() || proto == Proto::Udp {
        // The UDP probe is an empty datagram: the programs pass it to dockerd untouched.
        let found = namespace::dockerd::find_port(proto, None)?;
        return Ok(match found.source {
            PortSource::Given(p) | PortSource::Nat(p) => PortNow::Port(p),
            PortSource::Sockets(ports) => from_sockets(ports),
        });
    }
    Ok(from_sockets(namespace::dockerd::socket_ports(proto)?))
}

/// Compares the configuration in force with the container as it is now: (why it is stale,
/// what could not be told).
fn stale_reason(
    config: &Config,
    interface: &str,
    rerun: &str,
) -> Result<(Option<String>, Option<String>), Error> {
    let mut unknown = Vec::new();
    let mut check = |proto: Proto, in_force: u16| -> Result<Option<String>, Error> {
        let what = proto.name();
        let in_force = (in_force != 0).then(|| port_from_raw(in_force));
        let now = port_now(proto, in_force)?;
        Ok(match (in_force, now) {
            (_, PortNow::Unknown(ports)) => {
                unknown.push(format!(
                    "cannot tell which of the {what} sockets on 127.0.0.11 (ports {}) is dockerd's",
                    namespace::list(&ports)
                ));
                None
            }
            (Some(a), PortNow::Port(b)) if a != b => Some(format!("dockerd's {what} port is now {b} but dnsredir redirects {a} (the container restarted?)")),
            (Some(a), PortNow::Nothing) => Some(format!("dnsredir redirects {what} port {a} but nothing listens there any more")),
            (None, PortNow::Port(b)) => Some(format!("dockerd now has a {what} port ({b}) that dnsredir does not redirect")),
            _ => None,
        })
    };
    let udp = check(Proto::Udp, config.dockerd_udp_port)?;
    let tcp = check(Proto::Tcp, config.dockerd_tcp_port)?;
    let reasons: Vec<String> = [udp, tcp].into_iter().flatten().collect();
    let stale = interface_stale(config, interface, rerun, reasons);
    let unknown = (!unknown.is_empty()).then(|| {
        format!(
            "{}; pass the ports with --dockerd-port / --dockerd-tcp-port if in doubt",
            unknown.join("; ")
        )
    });
    Ok((stale, unknown))
}

/// `reasons` and what changed about the interface (its address, its index), with what to
/// run; `None` when nothing did.
fn interface_stale(
    config: &Config,
    interface: &str,
    rerun: &str,
    mut reasons: Vec<String>,
) -> Option<String> {
    match namespace::interfaces::interface(interface) {
        Ok(eth0) if eth0.addr != Some(addr_from_raw(config.container_addr)) => {
            reasons.push(format!(
                "{interface}'s address is now {} but dnsredir sends from {}",
                eth0.addr.map_or("none".to_string(), |a| a.to_string()),
                addr_from_raw(config.container_addr)
            ))
        }
        Ok(eth0) if eth0.ifindex != config.iface_ifindex => reasons.push(format!(
            "{interface} is now ifindex {} but dnsredir sends to {}",
            eth0.ifindex, config.iface_ifindex
        )),
        Err(_) => reasons.push(format!("{interface} is gone")),
        _ => {}
    }
    if let Some(addr6) = layout::container6_of(config) {
        match namespace::interfaces::ipv6_of(interface) {
            Ok(now) if now != Some(addr6) => reasons.push(format!(
                "{interface}'s IPv6 address is now {} but dnsredir expects IPv6 answers at {addr6}",
                now.map_or("none".to_string(), |a| a.to_string())
            )),
            _ => {}
        }
    }
    (!reasons.is_empty()).then(|| format!("{}: {rerun}", reasons.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rodata_with(config: &Config, before: usize) -> Vec<u8> {
        let mut bytes = vec![0xaa; before];
        bytes.extend_from_slice(&config.to_bytes());
        bytes.extend_from_slice(&[0x55; 8]);
        bytes
    }

    #[test]
    fn the_configuration_is_found_by_its_magic_wherever_it_sits() {
        let config = Config {
            build_id: embedded::object_hash(),
            upstream_port: 53u16.to_be(),
            ..Config::UNSET
        };
        for before in [0, 4, 8, 20] {
            let rodata = rodata_with(&config, before);
            let at = config_offset(&rodata).expect("found");
            assert_eq!(at, before);
            assert_eq!(Config::from_bytes(&rodata[at..]), Some(config));
            let header = ConfigHeader::from_bytes(&rodata[at..]);
            assert_eq!(build_of(header), Build::This);
        }
        assert_eq!(config_offset(&[0xaa; 64]), None);
        assert_eq!(build_of(None), Build::Unknown);
    }

    #[test]
    fn another_build_is_told_apart_before_anything_is_decoded() {
        let other = Config {
            build_id: embedded::object_hash() ^ 1,
            ..Config::UNSET
        };
        let header = ConfigHeader::from_bytes(&other.to_bytes());
        assert_eq!(
            build_of(header),
            Build::SameLayout {
                build_id: other.build_id
            }
        );
        let older = Config {
            layout: LAYOUT_VERSION - 1,
            ..other
        };
        let bytes = older.to_bytes();
        assert_eq!(
            build_of(ConfigHeader::from_bytes(&bytes)),
            Build::OtherLayout {
                layout: LAYOUT_VERSION - 1,
                build_id: other.build_id
            }
        );
        assert_eq!(Config::from_bytes(&bytes), None, "never decoded");
    }
}
