//! The maps `--watch` reads: the ring buffer, the watcher's flag, the lost-event count.

use super::maps::{self, Build};
use super::target_args;
use crate::abi::{
    ConfigHeader, WatchControl, ANSWERS_MAP, EVENTS_LOST_MAP, EVENTS_MAP, LAYOUT_VERSION,
    RULES_MAP, WATCH_MAP,
};
use crate::bpf::ringbuf;
use crate::error::Error;
use crate::redirect::rules::Rules;
use crate::target::Target;
use std::os::fd::OwnedFd;

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

/// Finds the attached programs' event maps, wherever dnsredir is attached in the namespace,
/// refusing what another build attached: its events could have another layout.
pub fn watch_maps(target: &Target) -> Result<Watchable, Error> {
    let found = super::found(target)?;
    // Attached: both programs of a path on their hooks.
    let attached = found.query().filter(|_| found.attached());
    let Some(prog_id) = attached.and_then(|q| q.filter.prog_id()) else {
        return Ok(Watchable::Refused(format!(
            "not attached to {target}{}: nothing to watch; run dnsredir {} --upstream ... first",
            super::describe_filters(&found),
            target_args(target)
        )));
    };
    let maps = maps::program_maps(prog_id)?;
    let rodata = maps::rodata_of(&maps)?;
    let config = maps::config_offset(&rodata).and_then(|at| rodata.get(at..));
    let build = maps::build_of(config.and_then(ConfigHeader::from_bytes));
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
    let (mut rules_map, mut answers_map) = (None, None);
    for (map, info) in maps {
        match info.name.as_str() {
            RULES_MAP => rules_map = Some(map),
            ANSWERS_MAP => answers_map = Some(map),
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
    let rules = match &rules_map {
        Some(map) => maps::read_rules(map, answers_map.as_ref())?,
        None => Rules::default(),
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
