//! `--status`: what is attached, read back from the kernel (filter dump, program and map
//! info) — there is no state file to go stale.

use crate::abi::{Config, Counters, CONFIG_SYMBOL, COUNTERS_MAP, FLAG_REDIRECT_ALL, FLOWS_MAP};
use crate::attach::FILTER_PREFIX;
use crate::container::{self, DOCKER_RESOLVER};
use crate::elf::ObjectFile;
use crate::embedded;
use crate::error::{check_privileges, Error};
use crate::layout::{self, addr_from_raw, port_from_raw};
use crate::netlink::Netlink;
use crate::netns::{self, Target};
use crate::sys;
use crate::tc::{self, Hook};
use std::os::fd::OwnedFd;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HookStatus {
    pub attached: bool,
    pub prog_id: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    pub lo: HookStatus,
    pub eth0: HookStatus,
    pub config: Option<Config>,
    pub tracked_flows: Option<usize>,
    pub counters: Option<Counters>,
    /// Why the configuration in force no longer fits the container, with what to run.
    pub stale: Option<String>,
}

impl Status {
    pub fn attached(&self) -> bool {
        self.lo.attached && self.eth0.attached
    }
}

pub fn status(target: &Target, interface: &str) -> Result<Status, Error> {
    check_privileges()?;
    let _inside = netns::enter(target)?;
    let mut nl = Netlink::open().map_err(|source| Error::Netlink {
        action: "opening an rtnetlink socket".into(),
        source,
    })?;
    let mut status = Status::default();
    let lo = container::interface("lo")?;
    let eth0 = container::interface(interface).ok();
    status.lo = hook_status(&mut nl, "lo", lo.ifindex)?;
    if let Some(eth0) = eth0 {
        status.eth0 = hook_status(&mut nl, interface, eth0.ifindex)?;
    }
    let Some(prog_id) = status.lo.prog_id.or(status.eth0.prog_id) else {
        return Ok(status);
    };
    read_maps(prog_id, &mut status)?;

    let rerun = format!("run dnsredir {} --upstream ... again", target_args(target));
    status.stale = match (&status.config, status.lo.attached, status.eth0.attached) {
        (_, true, false) => Some(format!(
            "only lo has dnsredir's filter, {interface} has none: {rerun}"
        )),
        (_, false, true) => Some(format!(
            "only {interface} has dnsredir's filter, lo has none: {rerun}"
        )),
        (Some(config), _, _) => stale_reason(config, interface, &rerun)?,
        (None, _, _) => None,
    };
    Ok(status)
}

fn target_args(target: &Target) -> String {
    match target {
        Target::Pid(pid) => format!("--pid {pid}"),
        Target::Path(p) => format!("--netns {}", p.display()),
    }
}

fn hook_status(nl: &mut Netlink, ifname: &str, ifindex: u32) -> Result<HookStatus, Error> {
    if !tc::has_clsact(nl, ifindex).map_err(|source| Error::Netlink {
        action: format!("listing qdiscs on {ifname}"),
        source,
    })? {
        return Ok(HookStatus::default());
    }
    let filters = tc::filters(nl, ifindex, Hook::Ingress).map_err(|source| Error::Netlink {
        action: format!("listing filters on {ifname} ingress"),
        source,
    })?;
    let ours = filters.into_iter().find(|f| f.is_named(FILTER_PREFIX));
    Ok(HookStatus {
        attached: ours.is_some(),
        prog_id: ours.and_then(|f| f.prog_id),
    })
}

fn inspect<T>(action: &str, r: std::io::Result<T>) -> Result<T, Error> {
    r.map_err(|source| Error::Inspect {
        action: action.to_string(),
        source,
    })
}

/// Finds the program's maps by name and reads configuration, flow count and counters.
fn read_maps(prog_id: u32, status: &mut Status) -> Result<(), Error> {
    let prog = inspect("opening the attached program", sys::prog_fd_by_id(prog_id))?;
    let info = inspect("reading the program's info", sys::prog_info(&prog))?;
    let object = ObjectFile::parse(embedded::object_bytes())?;
    let rodata = object
        .globals
        .get(CONFIG_SYMBOL)
        .map(|g| (object.maps[g.map].name.clone(), g.offset));
    for map_id in info.map_ids {
        let map = inspect("opening the program's map", sys::map_fd_by_id(map_id))?;
        let map_info = inspect("reading the map's info", sys::map_info(&map))?;
        if Some(&map_info.name) == rodata.as_ref().map(|r| &r.0) {
            let mut value = vec![0u8; map_info.value_size as usize];
            inspect(
                "reading the configuration",
                sys::map_lookup(&map, &0u32.to_ne_bytes(), &mut value),
            )?;
            let offset = rodata.as_ref().map_or(0, |r| r.1);
            status.config = value.get(offset..).and_then(Config::from_bytes);
        } else if map_info.name == FLOWS_MAP {
            status.tracked_flows = Some(count_keys(&map, map_info.key_size as usize)?);
        } else if map_info.name == COUNTERS_MAP {
            let cpus = inspect("counting CPUs", sys::possible_cpus())?;
            let mut value = vec![0u8; (map_info.value_size as usize).next_multiple_of(8) * cpus];
            inspect(
                "reading the counters",
                sys::map_lookup(&map, &0u32.to_ne_bytes(), &mut value),
            )?;
            status.counters = Some(layout::sum_percpu_counters(&value));
        }
    }
    Ok(())
}

fn count_keys(map: &OwnedFd, key_size: usize) -> Result<usize, Error> {
    let mut key = vec![0u8; key_size];
    let mut next = vec![0u8; key_size];
    let mut count = 0;
    let mut first = true;
    while inspect(
        "walking the flow table",
        sys::map_next_key(map, if first { None } else { Some(&key) }, &mut next),
    )? {
        std::mem::swap(&mut key, &mut next);
        first = false;
        count += 1;
    }
    Ok(count)
}

/// Compares the configuration in force with the container as it is now.
fn stale_reason(config: &Config, interface: &str, rerun: &str) -> Result<Option<String>, Error> {
    let now = container::resolver_ports(DOCKER_RESOLVER)?;
    let check = |what: &str, in_force: u16, now: Option<u16>| -> Option<String> {
        let in_force = (in_force != 0).then(|| port_from_raw(in_force));
        match (in_force, now) {
            (Some(a), Some(b)) if a != b => Some(format!("dockerd's {what} port is now {b} but dnsredir redirects {a} (the container restarted?)")),
            (Some(a), None) => Some(format!("dnsredir redirects {what} port {a} but nothing listens there any more")),
            (None, Some(b)) => Some(format!("dockerd now has a {what} port ({b}) that dnsredir does not redirect")),
            _ => None,
        }
    };
    let mut reasons: Vec<String> = [
        check("UDP", config.dockerd_udp_port, now.udp),
        check("TCP", config.dockerd_tcp_port, now.tcp),
    ]
    .into_iter()
    .flatten()
    .collect();
    match container::interface(interface) {
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
    Ok((!reasons.is_empty()).then(|| format!("{}: {rerun}", reasons.join("; "))))
}

/// The human-readable report.
pub fn render_text(s: &Status, interface: &str) -> String {
    let mut out = String::new();
    let hook = |name: &str, h: &HookStatus| match (h.attached, h.prog_id) {
        (true, Some(id)) => format!("{name} ingress: attached (program id {id})\n"),
        (true, None) => format!("{name} ingress: attached\n"),
        _ => format!("{name} ingress: not attached\n"),
    };
    out.push_str(if s.attached() {
        "dnsredir: attached\n"
    } else {
        "dnsredir: not attached\n"
    });
    out.push_str(&hook("lo", &s.lo));
    out.push_str(&hook(interface, &s.eth0));
    if let Some(c) = &s.config {
        out.push_str(&format!(
            "upstream: {}\ncontainer address: {}\nresolver: {} (dockerd UDP port {}, TCP port {})\nsingle-label names: {}\n",
            layout::upstream_of(c),
            addr_from_raw(c.container_addr),
            addr_from_raw(c.resolver_addr),
            port_or_none(c.dockerd_udp_port),
            port_or_none(c.dockerd_tcp_port),
            if c.flags & FLAG_REDIRECT_ALL != 0 { "redirected too (--redirect-all)" } else { "left to dockerd" }
        ));
    }
    if let Some(n) = s.tracked_flows {
        out.push_str(&format!("tracked flows: {n}\n"));
    }
    if let Some(c) = &s.counters {
        for (name, value) in Counters::NAMES.iter().zip(c.as_array()) {
            out.push_str(&format!("{name}: {value}\n"));
        }
    }
    if let Some(reason) = &s.stale {
        out.push_str(&format!("STALE: {reason}\n"));
    }
    out
}

fn port_or_none(raw: u16) -> String {
    if raw == 0 {
        "none".to_string()
    } else {
        port_from_raw(raw).to_string()
    }
}

/// The same as one JSON object, for scripts.
pub fn render_json(s: &Status) -> String {
    let hook = |h: &HookStatus| {
        format!(
            "{{\"attached\":{},\"prog_id\":{}}}",
            h.attached,
            h.prog_id.map_or("null".to_string(), |i| i.to_string())
        )
    };
    let config = s.config.as_ref().map_or("null".to_string(), |c| {
        let port = |raw: u16| if raw == 0 { "null".to_string() } else { port_from_raw(raw).to_string() };
        format!(
            "{{\"upstream\":{},\"container_addr\":{},\"resolver_addr\":{},\"dockerd_udp_port\":{},\"dockerd_tcp_port\":{},\"redirect_all\":{}}}",
            json_string(&layout::upstream_of(c).to_string()),
            json_string(&addr_from_raw(c.container_addr).to_string()),
            json_string(&addr_from_raw(c.resolver_addr).to_string()),
            port(c.dockerd_udp_port),
            port(c.dockerd_tcp_port),
            c.flags & FLAG_REDIRECT_ALL != 0
        )
    });
    let counters = s.counters.as_ref().map_or("null".to_string(), |c| {
        let fields: Vec<String> = Counters::NAMES
            .iter()
            .zip(c.as_array())
            .map(|(n, v)| format!("\"{n}\":{v}"))
            .collect();
        format!("{{{}}}", fields.join(","))
    });
    format!(
        "{{\"attached\":{},\"lo\":{},\"eth0\":{},\"config\":{},\"tracked_flows\":{},\"counters\":{},\"stale\":{},\"stale_reason\":{}}}",
        s.attached(),
        hook(&s.lo),
        hook(&s.eth0),
        config,
        s.tracked_flows.unwrap_or(0),
        counters,
        s.stale.is_some(),
        s.stale.as_deref().map_or("null".to_string(), json_string)
    )
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escapes_strings() {
        assert_eq!(json_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }

    #[test]
    fn not_attached_json_has_every_field() {
        let json = render_json(&Status::default());
        assert_eq!(
            json,
            "{\"attached\":false,\"lo\":{\"attached\":false,\"prog_id\":null},\"eth0\":{\"attached\":false,\"prog_id\":null},\"config\":null,\"tracked_flows\":0,\"counters\":null,\"stale\":false,\"stale_reason\":null}"
        );
    }
}
