//! What is attached in a namespace, read back from the kernel (filter dumps, program and map
//! info) — there is no state file to go stale. `--status` shows it, `--watch` finds its event
//! maps here ([`watch_maps`]); everything that reads an attached program starts here.

pub mod flows;
pub mod maps;
mod stale;
mod watch_maps;

use crate::abi::LAYOUT_VERSION;
use crate::error::Error;
use crate::namespace::interfaces;
use crate::net::tc::Hook;
use crate::redirect::hooks::{self, Found, Ours, PathKind};
use crate::redirect::in_namespace;
use crate::settings::Settings;
use crate::target::Target;
pub use maps::Build;
pub use watch_maps::{watch_maps, WatchMaps, Watchable};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HookStatus {
    pub attached: bool,
    pub prog_id: Option<u32>,
}

impl From<Option<&Ours>> for HookStatus {
    fn from(ours: Option<&Ours>) -> HookStatus {
        HookStatus {
            attached: ours.is_some(),
            prog_id: ours.and_then(|o| o.filter.prog_id()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    /// dnsredir's filters, on whichever interfaces they are.
    pub found: Found,
    /// The configuration in force (this build's layout only), typed.
    pub settings: Option<Settings>,
    /// What the attachment's maps say (whose build, flows, counters, rules).
    pub maps: maps::Read,
    /// Why the configuration in force no longer fits the container, with what to run.
    pub stale: Option<String>,
    /// What the stale check could not tell (dockerd's port among several sockets).
    pub unknown: Option<String>,
}

impl Status {
    /// Both programs of a path are on their hooks.
    pub fn attached(&self) -> bool {
        self.found.attached()
    }

    /// The interface dnsredir works through, where its filters say.
    pub fn interface(&self) -> Option<&str> {
        self.found.interface()
    }

    /// The nameservers path is in force (by the filters in place).
    pub fn nameservers_path(&self) -> bool {
        self.found.path() == Some(PathKind::Nameservers)
    }

    /// lo ingress (the embedded-resolver path's queries).
    pub fn lo(&self) -> HookStatus {
        self.found
            .filters
            .iter()
            .find(|o| o.at.is_lo_ingress())
            .into()
    }

    /// The interface's ingress (both paths' answers).
    pub fn ingress(&self) -> HookStatus {
        self.found.reply().into()
    }

    /// The interface's egress (the nameservers path's queries).
    pub fn egress(&self) -> HookStatus {
        let iface = self.interface();
        self.found
            .filters
            .iter()
            .find(|o| o.at.hook == Hook::Egress && Some(o.at.ifname.as_str()) == iface)
            .into()
    }
}

/// dnsredir's filters in the target's namespace (cheap enough to poll).
pub fn found(target: &Target) -> Result<Found, Error> {
    in_namespace(target, hooks::find)
}

pub fn status(target: &Target) -> Result<Status, Error> {
    in_namespace(target, |nl| {
        let found = hooks::find(nl)?;
        // The attachment's own programs hold its maps; a stray filter's may be another's.
        let programs: Vec<u32> = [found.query(), found.reply()]
            .into_iter()
            .flatten()
            .filter_map(|o| o.filter.prog_id())
            .collect();
        let mut status = Status {
            found,
            ..Status::default()
        };
        if status.found.filters.is_empty() {
            return Ok(status);
        }
        if !programs.is_empty() {
            status.maps = maps::read(&programs)?;
            status.settings = status.maps.config.as_ref().map(Settings::from_config);
        }
        let (stale, unknown) = stale_reason(&status, target)?;
        status.stale = stale;
        status.unknown = unknown;
        Ok(status)
    })
}

/// Why what is attached no longer fits the namespace, with what to run; and what the check
/// could not tell. Runs in the namespace.
fn stale_reason(
    status: &Status,
    target: &Target,
) -> Result<(Option<String>, Option<String>), Error> {
    let next = || next_step(target);
    let found = &status.found;
    if !found.attached() {
        let gone = status
            .settings
            .as_ref()
            .filter(|s| interfaces::name_of(s.ifindex).is_none())
            .map_or(String::new(), |s| {
                format!(
                    " (the interface it worked through, ifindex {}, is gone)",
                    s.ifindex
                )
            });
        return Ok((
            Some(format!(
                "half attached{}{gone}: {}",
                describe_filters(found),
                next()?
            )),
            None,
        ));
    }
    let strays = found.strays();
    if !strays.is_empty() {
        let at: Vec<String> = strays.iter().map(|o| o.at.to_string()).collect();
        return Ok((
            Some(format!(
                "dnsredir also has filters on {}, which the attachment on {} does not use: {}",
                at.join(", "),
                found.interface().unwrap_or("?"),
                next()?
            )),
            None,
        ));
    }
    let Some(settings) = &status.settings else {
        if !matches!(
            status.maps.build,
            Some(Build::OtherLayout { .. } | Build::Unknown)
        ) {
            return Ok((None, None));
        }
        let rerun = format!("{} with this binary", next()?);
        return Ok((
            match status.maps.build {
                Some(Build::OtherLayout { layout, build_id }) => Some(format!(
                    "attached by another dnsredir build (object fnv1a64 {build_id:016x}, layout {layout}; this binary reads layout {LAYOUT_VERSION}), so its configuration and counters are not shown: {rerun}"
                )),
                Some(Build::Unknown) => Some(format!(
                    "attached by a dnsredir build older than this one's configuration format, so its configuration and counters are not shown: {rerun}"
                )),
                _ => None,
            },
            None,
        ));
    };
    let mut reasons = Vec::new();
    let mut unknown = None;
    if !status.nameservers_path() {
        (reasons, unknown) = stale::dockerd_changes(settings)?;
    }
    if let Some(interface) = found.interface() {
        reasons.extend(stale::interface_changes(settings, interface));
    }
    if reasons.is_empty() {
        return Ok((None, unknown));
    }
    Ok((
        Some(format!("{}: {}", reasons.join("; "), next()?)),
        unknown,
    ))
}

/// What the user can run: attach again where the namespace has an interface to send DNS
/// through, else only detach.
fn next_step(target: &Target) -> Result<String, Error> {
    let args = target_args(target);
    Ok(if interfaces::ipv4_interfaces()?.is_empty() {
        format!("the namespace has no interface with an IPv4 address left to send DNS through, so only dnsredir {args} --detach remains")
    } else {
        format!("run dnsredir {args} --upstream ... again (or dnsredir {args} --detach)")
    })
}

/// " (dnsredir's filters: lo ingress, eth1 egress)", or "" with none.
pub fn describe_filters(found: &Found) -> String {
    if found.filters.is_empty() {
        return String::new();
    }
    let at: Vec<String> = found.filters.iter().map(|o| o.at.to_string()).collect();
    format!(" (dnsredir's filters: {})", at.join(", "))
}

pub fn target_args(target: &Target) -> String {
    match target {
        Target::Pid(pid) => format!("--pid {pid}"),
        Target::Path(p) => format!("--netns {}", p.display()),
    }
}
