//! dnsredir's filters on the namespace's tc hooks: found wherever they are (the kernel knows
//! them; no state file), put in place of ours or at the first free priority, and removed
//! without touching anyone else's filters or a clsact qdisc that still holds some.

use super::Log;
use crate::error::{Context, Error};
use crate::namespace::interfaces;
use crate::net::netlink::Netlink;
use crate::net::tc::{self, Filter, Hook};
use std::os::fd::OwnedFd;

/// Filter names start with this; only such filters are ever replaced or deleted.
pub const FILTER_PREFIX: &str = "dnsredir";

/// One of an interface's tc hooks, as messages name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookRef {
    pub ifname: String,
    pub ifindex: u32,
    pub hook: Hook,
}

impl HookRef {
    pub fn new(ifname: &str, ifindex: u32, hook: Hook) -> HookRef {
        HookRef {
            ifname: ifname.to_string(),
            ifindex,
            hook,
        }
    }

    /// The same interface's other hook.
    pub fn with(&self, hook: Hook) -> HookRef {
        HookRef {
            hook,
            ..self.clone()
        }
    }

    pub fn is_lo_ingress(&self) -> bool {
        self.ifname == "lo" && self.hook == Hook::Ingress
    }

    pub fn describe(&self, what: &str) -> String {
        format!("{what} on {} {}", self.ifname, self.hook)
    }
}

impl std::fmt::Display for HookRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.ifname, self.hook)
    }
}

/// A filter of dnsredir's and the hook it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ours {
    pub at: HookRef,
    pub filter: Filter,
}

/// What dnsredir has on the namespace's hooks: the one answer to "is it attached, on which
/// interface, and which path".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    pub filters: Vec<Ours>,
    /// The interfaces with a clsact qdisc (whether or not a filter of ours is on them).
    pub clsact: Vec<u32>,
}

/// Which path the filters in place make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    /// A query filter on lo ingress.
    EmbeddedResolver,
    /// A query filter on an interface's egress.
    Nameservers,
}

impl Found {
    /// Where queries are taken: lo ingress (the embedded-resolver path) or an interface's
    /// egress (the nameservers path); lo wins if, against the rules, both hold one.
    pub fn query(&self) -> Option<&Ours> {
        let lo = self.filters.iter().find(|o| o.at.is_lo_ingress());
        lo.or_else(|| self.filters.iter().find(|o| o.at.hook == Hook::Egress))
    }

    /// Where answers are restored: an interface's ingress (not lo's).
    pub fn reply(&self) -> Option<&Ours> {
        self.filters
            .iter()
            .find(|o| o.at.hook == Hook::Ingress && !o.at.is_lo_ingress())
    }

    pub fn path(&self) -> Option<PathKind> {
        self.query().map(|q| {
            if q.at.is_lo_ingress() {
                PathKind::EmbeddedResolver
            } else {
                PathKind::Nameservers
            }
        })
    }

    /// The interface dnsredir works through: the reply filter's, else the egress filter's.
    pub fn interface(&self) -> Option<&str> {
        self.reply()
            .or_else(|| self.query().filter(|q| !q.at.is_lo_ingress()))
            .map(|o| o.at.ifname.as_str())
    }

    /// Both programs of a path on their hooks, on one interface.
    pub fn attached(&self) -> bool {
        match (self.query(), self.reply()) {
            (Some(q), Some(r)) => q.at.is_lo_ingress() || q.at.ifindex == r.at.ifindex,
            _ => false,
        }
    }

    /// Filters of ours that a whole attachment does not explain (left by a half attach, or on
    /// an interface the configuration no longer names).
    pub fn strays(&self) -> Vec<&Ours> {
        let (query, reply) = (self.query(), self.reply());
        self.filters
            .iter()
            .filter(|o| Some(*o) != query && Some(*o) != reply)
            .collect()
    }
}

/// Every filter of dnsredir's in the calling thread's namespace: one qdisc dump, then the
/// filters of both hooks of each interface with a clsact qdisc.
pub fn find(nl: &mut Netlink) -> Result<Found, Error> {
    let mut filters = Vec::new();
    let clsact = tc::clsact_interfaces(nl).context(|| "listing qdiscs".into())?;
    for &ifindex in &clsact {
        // An interface that went away since the dump holds nothing any more.
        let Some(ifname) = interfaces::name_of(ifindex) else {
            continue;
        };
        for hook in [Hook::Ingress, Hook::Egress] {
            let at = HookRef::new(&ifname, ifindex, hook);
            let on_hook =
                tc::filters(nl, ifindex, hook).context(|| at.describe("listing filters"))?;
            filters.extend(
                on_hook
                    .into_iter()
                    .filter(|f| f.is_named(FILTER_PREFIX))
                    .map(|filter| Ours {
                        at: at.clone(),
                        filter,
                    }),
            );
        }
    }
    Ok(Found { filters, clsact })
}

/// A loaded program to put on a hook.
pub struct Program<'a> {
    pub name: &'a str,
    pub fd: &'a OwnedFd,
    pub id: u32,
}

/// Adds the clsact qdisc to the interfaces of `hooks` that lack one, before the attach's
/// transaction: returns the ifindexes of those added (the transaction's undo, or
/// [`drop_clsact`] when the attach fails before it, removes them when they are left empty).
/// On a failure, those added already are removed again.
pub fn ready_clsact(nl: &mut Netlink, hooks: &[HookRef]) -> Result<Vec<u32>, Error> {
    let mut created = Vec::new();
    for (i, at) in hooks.iter().enumerate() {
        if hooks[..i].iter().any(|h| h.ifindex == at.ifindex) {
            continue;
        }
        match tc::add_clsact(nl, at.ifindex).context(|| at.describe("adding the clsact qdisc")) {
            Ok(true) => created.push(at.ifindex),
            Ok(false) => {}
            Err(e) => {
                drop_clsact(nl, hooks, &created, &mut |_| {});
                return Err(e);
            }
        }
    }
    Ok(created)
}

/// Removes the clsact qdiscs that [`ready_clsact`] added (`created`) from the interfaces of
/// `hooks`, each only when nothing is on it: for an attach that failed before any filter was
/// put. A failure is logged and left (an empty qdisc changes no packet).
pub fn drop_clsact(nl: &mut Netlink, hooks: &[HookRef], created: &[u32], log: Log) {
    for &ifindex in created {
        let Some(at) = hooks.iter().find(|h| h.ifindex == ifindex) else {
            continue;
        };
        if let Err(e) = remove(nl, at, Clsact::RemoveIfEmpty, None) {
            log(format!(
                "could not remove the clsact qdisc added on {}: {e}",
                at.ifname
            ));
        }
    }
}

/// Attaches `program` on the hook, whose interface has its clsact qdisc ([`ready_clsact`];
/// `created_clsact`: added by this attach, for the log): in place of ours if there is one
/// (atomic program swap), else at the first free priority. Other tools' filters are left alone.
pub fn put(
    nl: &mut Netlink,
    at: &HookRef,
    program: &Program,
    created_clsact: bool,
    log: Log,
) -> Result<(), Error> {
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
    remove_others(nl, at, &existing, (prio, handle))?;
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

/// Puts a filter of ours back where it was, with the program held open, and removes any other
/// of ours on that hook.
pub fn put_back(nl: &mut Netlink, at: &HookRef, old: &Filter, fd: &OwnedFd) -> Result<(), Error> {
    let name = old.prog_name().unwrap_or(FILTER_PREFIX);
    tc::put_bpf_filter(nl, at.ifindex, at.hook, old.prio, old.handle, fd, name)
        .context(|| at.describe("putting the previous dnsredir filter back"))?;
    let existing =
        tc::filters(nl, at.ifindex, at.hook).context(|| at.describe("listing filters"))?;
    remove_others(nl, at, &existing, (old.prio, old.handle))
}

/// Removes our filters in `existing` other than the one at `keep` (prio, handle).
fn remove_others(
    nl: &mut Netlink,
    at: &HookRef,
    existing: &[Filter],
    keep: (u16, u32),
) -> Result<(), Error> {
    for stale in existing
        .iter()
        .filter(|f| f.is_named(FILTER_PREFIX) && (f.prio, f.handle) != keep)
    {
        tc::del_filter(nl, at.ifindex, at.hook, stale)
            .context(|| at.describe("removing a duplicate dnsredir filter"))?;
    }
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

/// Whether a clsact qdisc that dnsredir emptied may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clsact {
    /// Keep it (another hook of the attachment still uses it, or it was there before).
    Keep,
    /// Remove it when no filter, ours or anyone's, is left on either hook.
    RemoveIfEmpty,
}

/// Removes our filters from one hook, and with [`Clsact::RemoveIfEmpty`] the interface's
/// clsact qdisc when nothing is left on it. `log` gets a line per filter (and on the qdisc).
/// Returns how many filters were removed.
pub fn remove(
    nl: &mut Netlink,
    at: &HookRef,
    clsact: Clsact,
    mut log: Option<Log>,
) -> Result<usize, Error> {
    if !tc::has_clsact(nl, at.ifindex).context(|| format!("listing qdiscs on {}", at.ifname))? {
        return Ok(0);
    }
    let filters =
        tc::filters(nl, at.ifindex, at.hook).context(|| at.describe("listing filters"))?;
    let mut removed = 0;
    for filter in filters.iter().filter(|f| f.is_named(FILTER_PREFIX)) {
        tc::del_filter(nl, at.ifindex, at.hook, filter)
            .context(|| at.describe("removing the dnsredir filter"))?;
        removed += 1;
        if let Some(log) = &mut log {
            log(format!(
                "{}: {}",
                at.describe("removed"),
                filter.prog_name().unwrap_or("?")
            ));
        }
    }
    if clsact == Clsact::Keep {
        return Ok(removed);
    }
    let left = filters.len() - removed
        + tc::filters(nl, at.ifindex, other(at.hook))
            .context(|| at.with(other(at.hook)).describe("listing filters"))?
            .len();
    if left == 0 {
        tc::del_clsact(nl, at.ifindex)
            .context(|| format!("removing the clsact qdisc on {}", at.ifname))?;
    }
    if let Some(log) = &mut log {
        log(if left == 0 {
            format!("removed the now empty clsact qdisc from {}", at.ifname)
        } else {
            format!(
                "kept the clsact qdisc on {}: {left} other filter(s) use it",
                at.ifname
            )
        });
    }
    Ok(removed)
}

fn other(hook: Hook) -> Hook {
    match hook {
        Hook::Ingress => Hook::Egress,
        Hook::Egress => Hook::Ingress,
    }
}

/// Removes every filter of dnsredir's in the namespace, wherever it is, queries first, and
/// each clsact qdisc left empty. Returns how many filters were removed.
pub fn remove_all(nl: &mut Netlink, log: Log) -> Result<usize, Error> {
    let found = find(nl)?.filters;
    remove_filters(nl, found, log)
}

/// [`remove_all`] for the attachment working through `interface` (its lo filter included) and
/// any filter of dnsredir's on that interface's hooks. An attachment through another interface
/// stays: a CNI DEL for one network must not take another network's.
pub fn remove_on(nl: &mut Netlink, interface: &str, log: Log) -> Result<usize, Error> {
    let found = find(nl)?;
    let whole = found.interface() == Some(interface);
    let ours = found
        .filters
        .into_iter()
        .filter(|o| whole || o.at.ifname == interface)
        .collect();
    remove_filters(nl, ours, log)
}

fn remove_filters(nl: &mut Netlink, mut found: Vec<Ours>, log: Log) -> Result<usize, Error> {
    // Queries stop first (lo ingress, egress), then their answers' path.
    found.sort_by_key(|o| !(o.at.is_lo_ingress() || o.at.hook == Hook::Egress));
    let mut removed = 0;
    for (i, ours) in found.iter().enumerate() {
        // The qdisc may go with the interface's last hook of ours.
        let last_here = found[i + 1..]
            .iter()
            .all(|o| o.at.ifindex != ours.at.ifindex);
        let clsact = if last_here {
            Clsact::RemoveIfEmpty
        } else {
            Clsact::Keep
        };
        removed += remove(nl, &ours.at, clsact, Some(&mut *log))?;
    }
    Ok(removed)
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

    fn ours(ifname: &str, ifindex: u32, hook: Hook, name: &str) -> Ours {
        Ours {
            at: HookRef::new(ifname, ifindex, hook),
            filter: filter(1, 1, Some(name)),
        }
    }

    #[test]
    fn the_path_and_interface_come_from_where_the_filters_are() {
        let lo = ours("lo", 1, Hook::Ingress, "dnsredir_query");
        let eth1_in = ours("eth1", 9, Hook::Ingress, "dnsredir_reply");
        let eth1_out = ours("eth1", 9, Hook::Egress, "dnsredir_egress");
        let resolver = Found {
            filters: vec![lo.clone(), eth1_in.clone()],
            ..Found::default()
        };
        assert_eq!(resolver.path(), Some(PathKind::EmbeddedResolver));
        assert_eq!(resolver.interface(), Some("eth1"));
        assert!(resolver.attached());
        assert!(resolver.strays().is_empty());

        let nameservers = Found {
            filters: vec![eth1_in.clone(), eth1_out.clone()],
            ..Found::default()
        };
        assert_eq!(nameservers.path(), Some(PathKind::Nameservers));
        assert!(nameservers.attached());

        let half = Found {
            filters: vec![eth1_out.clone()],
            ..Found::default()
        };
        assert!(!half.attached());
        assert_eq!(half.interface(), Some("eth1"));

        // The reply on eth0, the egress query on eth1: not one attachment.
        let split = Found {
            filters: vec![ours("eth0", 5, Hook::Ingress, "dnsredir_reply"), eth1_out],
            ..Found::default()
        };
        assert!(!split.attached());
        assert_eq!(Found::default().path(), None);
        assert!(!Found::default().attached());

        let with_stray = Found {
            filters: vec![
                lo,
                eth1_in,
                ours("eth0", 5, Hook::Ingress, "dnsredir_reply"),
            ],
            ..Found::default()
        };
        assert_eq!(with_stray.strays().len(), 1);
        assert_eq!(with_stray.strays()[0].at.ifname, "eth0");
    }
}
