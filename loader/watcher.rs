//! `--watch`: holds the programs' watcher flag, reads their ring buffer, prints each query as
//! its answer arrives, and changes nothing else — attach and detach stay as they are.
//!
//! The flag ([`WatchControl`]) carries our pid and a refresh time; the programs write events
//! only within [`WATCH_LEASE_NS`] of the last refresh, so a watcher killed with SIGKILL stops
//! them seconds later. Every second the flag is refreshed, the lost-event count read, and the
//! attachment and the container checked.

use crate::abi::{EventHeader, WatchControl, EVENT_DATA_MAX, EVENT_SIZE, WATCH_LEASE_NS};
use crate::abi::{ROUTE_BLOCKED, ROUTE_DISALLOWED, ROUTE_PINNED, ROUTE_RESET};
use crate::bpf::ringbuf::RingBuf;
use crate::bpf::sys;
use crate::error::{Context, Error};
use crate::inspect::{self, WatchMaps, Watchable};
use crate::redirect::rules::Rules;
use crate::report::pairing::{Clock, Record, Tracker};
use crate::report::query_lines::{render_json, render_line};
use crate::target::Target;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// What to watch and how to show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchRequest {
    pub target: Target,
    pub json: bool,
}

/// How a watch ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// Ctrl-C, SIGTERM, or the reader of our output went away (`| head`).
    Stopped,
    /// Nothing to watch, or not ours to read; the line says which.
    Refused(String),
    /// The watch ended by itself; the line says why (detached, container gone).
    Lost(String),
}

/// The programs wake the watcher only when the ring buffer fills up (a wakeup per record costs
/// more than the record): it looks for new records this often.
const POLL: Duration = Duration::from_millis(100);
const CHECK_EVERY: Duration = Duration::from_secs(1);

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// SIGINT and SIGTERM end the wait (no SA_RESTART: epoll_wait returns EINTR).
fn catch_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction with a handler that only stores an atomic.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

fn clock() -> Clock {
    Clock {
        monotonic_ns: sys::monotonic_ns(),
        wall: SystemTime::now(),
    }
}

/// The process exists and is not a zombie (one that exited but was not reaped yet).
fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let sent = unsafe { libc::kill(pid as libc::pid_t, 0) } == 0;
    if !sent && io::Error::last_os_error().raw_os_error() != Some(libc::EPERM) {
        return false;
    }
    // "pid (comm) S ...": the state follows the last parenthesis.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .map_or(true, |(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

fn read_control(maps: &WatchMaps) -> Result<WatchControl, Error> {
    let mut value = [0u8; WatchControl::SIZE];
    sys::map_lookup(&maps.control, &0u32.to_ne_bytes(), &mut value)
        .context(|| "reading the watcher flag".into())?;
    Ok(WatchControl::from_bytes(&value).unwrap_or_default())
}

fn write_control(maps: &WatchMaps, control: &WatchControl) -> Result<(), Error> {
    sys::map_update(&maps.control, &0u32.to_ne_bytes(), &control.to_bytes())
        .context(|| "setting the watcher flag".into())
}

fn lost_count(maps: &WatchMaps) -> Result<u64, Error> {
    let cpus = sys::possible_cpus().context(|| "counting CPUs".into())?;
    let mut value = vec![0u8; 8 * cpus];
    sys::map_lookup(&maps.lost, &0u32.to_ne_bytes(), &mut value)
        .context(|| "reading the lost-event count".into())?;
    Ok(value
        .chunks_exact(8)
        .map(|c| u64::from_ne_bytes(c.try_into().expect("8 bytes")))
        .sum())
}

/// Clears the flag when the watch ends, however it ends (but not if another watcher took it).
struct Flag<'a> {
    maps: &'a WatchMaps,
    pid: u32,
}

impl Flag<'_> {
    fn refresh(&self) -> Result<(), Error> {
        write_control(
            self.maps,
            &WatchControl {
                watcher_pid: self.pid,
                refreshed_ns: sys::monotonic_ns(),
                ..Default::default()
            },
        )
    }
}

impl Drop for Flag<'_> {
    fn drop(&mut self) {
        if read_control(self.maps).is_ok_and(|c| c.watcher_pid == self.pid) {
            let _ = write_control(self.maps, &WatchControl::default());
        }
    }
}

/// Why the watch cannot go on: the container or the attachment is gone.
fn gone(request: &WatchRequest, prog_id: u32) -> Option<String> {
    let target = &request.target;
    match target {
        Target::Pid(pid) if !alive(*pid) => {
            return Some(format!(
                "process {pid} exited (the container stopped): watch ended"
            ))
        }
        Target::Path(p) if !p.exists() => {
            return Some(format!("{} is gone: watch ended", p.display()))
        }
        _ => {}
    }
    match inspect::found(target) {
        Ok(found) if !found.attached() => {
            Some(format!("dnsredir was detached from {target}: watch ended"))
        }
        Ok(found) if found.query().and_then(|q| q.filter.prog_id()) != Some(prog_id) => {
            Some(format!(
                "dnsredir was attached to {target} again (another program{}): watch ended; run --watch again",
                found
                    .query()
                    .map_or(String::new(), |q| format!(" on {}", q.at))
            ))
        }
        Ok(_) => None,
        Err(e) => Some(format!("{target} cannot be inspected any more ({}): watch ended", e.one_line())),
    }
}

/// Runs the watch until it is stopped or ends by itself. Records go to `out`; `note` gets
/// the lines about lost events.
pub fn run(
    request: &WatchRequest,
    out: &mut dyn Write,
    note: &mut dyn FnMut(String),
) -> Result<Ended, Error> {
    let maps = match inspect::watch_maps(&request.target)? {
        Watchable::Ready(maps) => maps,
        Watchable::Refused(line) => return Ok(Ended::Refused(line)),
    };
    let pid = std::process::id();
    let current = read_control(&maps)?;
    if current.watcher_pid != 0
        && current.watcher_pid != pid
        && alive(current.watcher_pid)
        && sys::monotonic_ns().saturating_sub(current.refreshed_ns) < WATCH_LEASE_NS
    {
        return Ok(Ended::Refused(format!(
            "another dnsredir --watch (pid {}) is reading {}'s events; one watch at a time",
            current.watcher_pid, request.target
        )));
    }
    let events = maps
        .events
        .try_clone()
        .context(|| "duplicating the ring buffer's descriptor".into())?;
    let mut ring = RingBuf::new(events, maps.events_size as usize)
        .context(|| "mapping the ring buffer".into())?;
    // What an earlier watcher left unread belongs to no query we will see answered.
    ring.skip_all();
    catch_signals();
    let flag = Flag { maps: &maps, pid };
    flag.refresh()?;
    note(format!(
        "watching {}: a line per query as its answer arrives; Ctrl-C ends the watch, the redirect stays",
        request.target
    ));
    let lost_at_start = lost_count(&maps)?;
    let mut lost_shown = 0;
    let mut tracker = Tracker::default();
    let mut last_check = Instant::now();
    let ended = loop {
        if STOP.load(Ordering::Relaxed) {
            break Ended::Stopped;
        }
        match ring.wait(POLL) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context(|| "waiting for events".into()),
        }
        let now = clock();
        let mut records: Vec<Record> = Vec::new();
        ring.consume(|r| {
            if r.len() < EVENT_SIZE {
                return;
            }
            let Some(head) = EventHeader::from_bytes(r) else {
                return;
            };
            let captured = (head.captured as usize).min(EVENT_DATA_MAX);
            let data = &r[EventHeader::SIZE..EventHeader::SIZE + captured];
            records.extend(tracker.event(&head, data, &now));
        });
        records.extend(tracker.expire(&now));
        for r in records.iter_mut() {
            r.rule = rule_of(r, &maps.rules);
        }
        if let Err(e) = show(out, &records, request.json) {
            if e.kind() == io::ErrorKind::BrokenPipe {
                break Ended::Stopped;
            }
            return Err(e).context(|| "writing the watch".into());
        }
        if last_check.elapsed() >= CHECK_EVERY {
            last_check = Instant::now();
            if let Some(why) = gone(request, maps.prog_id) {
                break Ended::Lost(why);
            }
            flag.refresh()?;
            let lost = lost_count(&maps)?.saturating_sub(lost_at_start);
            if lost > lost_shown {
                note(format!(
                    "{lost} events lost so far: the ring buffer was full (queries not shown)"
                ));
                lost_shown = lost;
            }
        }
    };
    drop(flag);
    let lost = lost_count(&maps)?.saturating_sub(lost_at_start);
    if lost > lost_shown {
        note(format!(
            "{lost} events lost: the ring buffer was full (queries not shown)"
        ));
    }
    Ok(ended)
}

/// A rule that only says where a name goes (`keep`, `only`, `outside --only`) or lets it
/// resolve (`allow`): it cannot be why the program answered a query itself or reset it.
fn routes_only(rule: &str) -> bool {
    ["keep ", "only ", "allow "]
        .iter()
        .any(|kind| rule.starts_with(kind))
        || rule == "outside --only"
}

/// The rule a record shows: [`Rules::decision`] of its name, which says what the programs
/// decide for it.
/// - UDP: that rule, whatever the path.
/// - TCP: none (TCP follows no routing rule), but for a reset.
/// - Answered by the program or reset although no decision covers the name (the rule is a
///   routing one, an `allow`, or none): why the program decided by itself. `disallowed`:
///   `not readable` (a name it cannot read, or QDCOUNT ≠ 1, opcode ≠ QUERY, class ≠ IN: the
///   name is unreadable here too, or allowed) or else `not allowed`; `reset`: `not one whole
///   message` (split across segments, or pipelined).
fn rule_of(r: &Record, rules: &Rules) -> Option<String> {
    let decided = matches!(
        r.path,
        ROUTE_BLOCKED | ROUTE_PINNED | ROUTE_DISALLOWED | ROUTE_RESET
    );
    if r.tcp && !decided {
        return None;
    }
    let rule = r.question.name.as_deref().and_then(|n| rules.decision(n));
    let explains = rule.as_deref().is_some_and(|rule| !routes_only(rule));
    if !decided || explains {
        return rule;
    }
    let unreadable = r.question.name.is_none()
        || rule
            .as_deref()
            .is_some_and(|rule| rule.starts_with("allow "));
    match r.path {
        ROUTE_RESET => Some("not one whole message".to_string()),
        ROUTE_DISALLOWED if unreadable => Some("not readable".to_string()),
        ROUTE_DISALLOWED => Some("not allowed".to_string()),
        // Blocked or pinned with no decision for the name: the rules read at the start of
        // the watch are not those in force any more (rewritten in place).
        _ => rule,
    }
}

fn show(out: &mut dyn Write, records: &[Record], json: bool) -> io::Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    for r in records {
        let line = if json { render_json(r) } else { render_line(r) };
        writeln!(out, "{line}")?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{ROUTE_DOCKERD, ROUTE_UPSTREAM};
    use crate::redirect::rules::{Kind, Rule};
    use crate::report::pairing::Asked;

    fn record(name: Option<&str>, path: u8, tcp: bool) -> Record {
        Record {
            time: SystemTime::UNIX_EPOCH,
            client: "127.0.0.1:40000".parse().unwrap(),
            tcp,
            question: Asked {
                id: Some(1),
                name: name.map(str::to_string),
                qtype: Some(1),
            },
            path,
            answer: None,
            rule: None,
        }
    }

    /// Routing rules only (the policy helper's decisions are shown as `decision` names them).
    fn rules() -> Rules {
        Rules {
            // Sorted by suffix, as every constructor of Rules leaves them.
            rules: vec![
                Rule {
                    suffix: "corp.test".into(),
                    kind: Kind::Only,
                },
                Rule {
                    suffix: "internal.test".into(),
                    kind: Kind::Keep,
                },
            ],
        }
    }

    #[test]
    fn the_rule_shown_is_what_decided_or_why_the_program_did() {
        let rules = rules();
        let rule = |name, path, tcp| rule_of(&record(name, path, tcp), &rules);
        assert_eq!(
            rule(Some("a.corp.test"), ROUTE_UPSTREAM, false).as_deref(),
            Some("only corp.test")
        );
        assert_eq!(
            rule(Some("x.example"), ROUTE_DOCKERD, false).as_deref(),
            Some("outside --only")
        );
        assert_eq!(rule(Some("a.corp.test"), ROUTE_UPSTREAM, true), None, "TCP");
        assert_eq!(
            rule(Some("a.corp.test"), ROUTE_RESET, true).as_deref(),
            Some("not one whole message")
        );
        assert_eq!(
            rule(None, ROUTE_RESET, true).as_deref(),
            Some("not one whole message")
        );
        assert_eq!(
            rule(None, ROUTE_DISALLOWED, false).as_deref(),
            Some("not readable")
        );
        assert_eq!(
            rule(Some("x.example"), ROUTE_DISALLOWED, false).as_deref(),
            Some("not allowed")
        );
        assert!(
            routes_only("allow example.com")
                && routes_only("keep a")
                && routes_only("outside --only")
        );
        assert!(!routes_only("block ads.example") && !routes_only("answer api.stripe.com"));
        assert!(!routes_only("hosts mock.test") && !routes_only("not allowed"));
    }
}
