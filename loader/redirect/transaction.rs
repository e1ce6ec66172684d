//! One change of the namespace's hooks as one step: what is on them is noted (and held) first,
//! and a failure puts it back.

use super::hooks::{self, Clsact, Found, HookRef};
use super::Log;
use crate::bpf::sys;
use crate::error::{Context, Error, Undo};
use crate::fault;
use crate::net::netlink::Netlink;
use crate::net::netns::{self, NetnsError};
use crate::net::tc::Filter;
use crate::target::Target;
use std::os::fd::OwnedFd;

/// What was on some hooks before an attach changed them: what a failed attach puts back.
pub struct Previous {
    hooks: Vec<Before>,
}

struct Before {
    at: HookRef,
    had_clsact: bool,
    /// Our filter there, with its program held open so it can go back.
    ours: Option<(Filter, OwnedFd)>,
}

/// Changes the namespace's hooks as one step: what `found` (read just before, under the
/// namespace's lock) says is on `hooks` is noted (and held) first, and a failure — or the
/// `--pid` process gone by the end, its namespace going away — puts it back
/// ([`Previous::undo`]). `hooks` are in the order the change fills them, reply side first.
pub fn transact(
    nl: &mut Netlink,
    target: &Target,
    found: &Found,
    hooks: &[HookRef],
    log: Log,
    change: impl FnOnce(&mut Netlink, Log) -> Result<(), Error>,
) -> Result<(), Error> {
    let namespace = netns::current().context(|| "reading the namespace's identity".into())?;
    let previous = snapshot(found, hooks)?;
    fault::pause("attach");
    let result = change(nl, &mut *log).and_then(|()| match target {
        Target::Pid(pid) if !netns::still_names(target, namespace) => {
            Err(NetnsError::Exited(*pid).into())
        }
        _ => Ok(()),
    });
    result.map_err(|e| previous.undo(nl, e, log))
}

/// Takes note of our filters on `hooks`, as `found` lists them, holding their programs. A
/// filter of ours whose program cannot be held is an error here, before anything changes.
fn snapshot(found: &Found, hooks: &[HookRef]) -> Result<Previous, Error> {
    let mut before = Vec::new();
    for at in hooks {
        let mut ours = None;
        if let Some(o) = found.filters.iter().find(|o| o.at == *at) {
            let fd = o
                .filter
                .prog_id()
                .ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::InvalidData, "no program id")
                })
                .and_then(sys::prog_fd_by_id)
                .context(|| at.describe("holding the dnsredir program attached"))?;
            ours = Some((o.filter.clone(), fd));
        }
        before.push(Before {
            at: at.clone(),
            had_clsact: found.clsact.contains(&at.ifindex),
            ours,
        });
    }
    Ok(Previous { hooks: before })
}

impl Previous {
    /// Whether dnsredir had a filter on any of the hooks.
    fn attached(&self) -> bool {
        self.hooks.iter().any(|b| b.ours.is_some())
    }

    /// Undoes a failed attach: each hook gets back the filter of ours it had, or loses ours;
    /// a clsact qdisc the attach created goes when it is empty. When that fails, everything of
    /// ours on the hooks goes (dockerd answers again); the last hooks are undone first (queries
    /// stop before their answers' path). Wraps `error` with what is left.
    fn undo(self, nl: &mut Netlink, error: Error, log: Log) -> Error {
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
                    last = last.and(before.remove_ours(nl));
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

impl Before {
    fn restore(&self, nl: &mut Netlink) -> Result<(), Error> {
        match &self.ours {
            Some((old, fd)) => hooks::put_back(nl, &self.at, old, fd),
            None => self.remove_ours(nl),
        }
    }

    /// Removes our filters from the hook; then the clsact qdisc too when it is empty and was
    /// not there before.
    fn remove_ours(&self, nl: &mut Netlink) -> Result<(), Error> {
        let clsact = if self.had_clsact {
            Clsact::Keep
        } else {
            Clsact::RemoveIfEmpty
        };
        hooks::remove(nl, &self.at, clsact, None).map(drop)
    }
}
