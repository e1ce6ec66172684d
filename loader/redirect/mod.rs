//! What dnsredir puts into a namespace and takes out again: the steps shared by every redirect
//! path (our filter on a hook, found, swapped or removed without touching anyone else's), and
//! the paths themselves ([`resolver`]: Docker's embedded resolver, taken on lo).

pub mod resolver;
pub mod rules;

use crate::error::{check_privileges, Context, Error};
use crate::net::netlink::Netlink;
use crate::net::netns::{self, Target};
use crate::net::tc::{self, Filter, Hook};
use crate::target;
use std::os::fd::OwnedFd;

pub use resolver::{attach, AttachRequest, Attached};

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

/// Removes our filters from both hooks of an interface, and its clsact qdisc when nothing
/// else is left on it. Returns how many filters were removed.
pub fn remove_ours(nl: &mut Netlink, ifname: &str, ifindex: u32, log: Log) -> Result<usize, Error> {
    if !tc::has_clsact(nl, ifindex).context(|| format!("listing qdiscs on {ifname}"))? {
        return Ok(0);
    }
    let mut removed = 0;
    let mut left = 0;
    for hook in [Hook::Ingress, Hook::Egress] {
        let at = HookRef {
            ifname,
            ifindex,
            hook,
        };
        let filters = tc::filters(nl, ifindex, hook).context(|| at.describe("listing filters"))?;
        for filter in &filters {
            if !filter.is_named(FILTER_PREFIX) {
                left += 1;
                continue;
            }
            tc::del_filter(nl, ifindex, hook, filter)
                .context(|| at.describe("removing the dnsredir filter"))?;
            log(format!(
                "{}: {}",
                at.describe("removed"),
                filter.name.as_deref().unwrap_or("?")
            ));
            removed += 1;
        }
    }
    if left == 0 {
        tc::del_clsact(nl, ifindex).context(|| format!("removing the clsact qdisc on {ifname}"))?;
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
    in_namespace(target, |nl| {
        let mut removed = 0;
        // Queries stop first, then their answers' path.
        for ifname in ["lo", interface] {
            // A missing interface has nothing of ours on it.
            if let Ok(iface) = target::interface(ifname) {
                removed += remove_ours(nl, ifname, iface.ifindex, log)?;
            }
        }
        Ok(removed)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::tc::ETH_P_ALL;

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
