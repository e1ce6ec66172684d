//! The node's dnsredir attachments, from the kernel's list of BPF programs: every program whose
//! name starts with `dnsredir_`, grouped by the configuration map its programs share (one
//! attach loads its programs with one `.rodata` map), each group's maps read as `--status`
//! reads them. Programs and maps can go between two calls (a pod deleted during the scan):
//! those are skipped, not errors.

use super::{Attachment, AttachmentId, Decoded};
use crate::bpf::sys;
use crate::error::{Context, Error};
use crate::inspect::maps::{self, Build};
use crate::settings::Settings;
use std::collections::{BTreeMap, HashMap};
use std::io;

/// The kernel names a program after its function: dnsredir_query, dnsredir_reply,
/// dnsredir_egress (at most 15 bytes).
pub const PROG_PREFIX: &str = "dnsredir_";

/// Every dnsredir attachment on the node, in the order of their ids.
pub fn attachments() -> Result<Vec<Attachment>, Error> {
    let mut groups: BTreeMap<AttachmentId, Vec<u32>> = BTreeMap::new();
    // Whether a map is a `.rodata` one: attachments share few maps, but each is asked once.
    let mut rodata: HashMap<u32, bool> = HashMap::new();
    let mut id = 0;
    while let Some(next) =
        sys::prog_next_id(id).context(|| "listing the node's BPF programs".into())?
    {
        id = next;
        let Some(prog) =
            unless_gone(sys::prog_fd_by_id(id)).context(|| format!("opening BPF program {id}"))?
        else {
            continue;
        };
        let Some(info) = unless_gone(sys::prog_info(&prog))
            .context(|| format!("reading program {id}'s info"))?
        else {
            continue;
        };
        if !info.name.starts_with(PROG_PREFIX) {
            continue;
        }
        let mut config = None;
        for &map_id in &info.map_ids {
            let is_rodata = match rodata.get(&map_id) {
                Some(&known) => known,
                None => {
                    let Some(known) = is_rodata(map_id)? else {
                        continue;
                    };
                    rodata.insert(map_id, known);
                    known
                }
            };
            if is_rodata {
                config = Some(map_id);
                break;
            }
        }
        let key = config.map_or(AttachmentId::Program(id), AttachmentId::ConfigMap);
        groups.entry(key).or_default().push(id);
    }
    let mut found = Vec::with_capacity(groups.len());
    for (id, programs) in groups {
        let read = match maps::read(&programs) {
            Ok(read) => read,
            Err(e) if gone(&e) => continue,
            Err(e) => return Err(e),
        };
        // `read` always tells the build of maps it could read.
        let build = read.build.unwrap_or(Build::Unknown);
        let decoded = match (read.config, read.counters) {
            (Some(config), Some(counters)) => {
                let settings = Settings::from_config(&config);
                Some(Decoded {
                    label: settings.label,
                    path: settings.path.name(),
                    tracked_flows: read.tracked_flows.unwrap_or(0),
                    counters,
                })
            }
            _ => None,
        };
        found.push(Attachment { id, build, decoded });
    }
    Ok(found)
}

/// Whether map `id` is a `.rodata` map; `None` if it is gone.
fn is_rodata(id: u32) -> Result<Option<bool>, Error> {
    let Some(map) = unless_gone(sys::map_fd_by_id(id)).context(|| format!("opening map {id}"))?
    else {
        return Ok(None);
    };
    let info = unless_gone(sys::map_info(&map)).context(|| format!("reading map {id}'s info"))?;
    Ok(info.map(|i| i.name.ends_with(".rodata")))
}

/// `Ok(None)` for an object that went away since its id was listed.
fn unless_gone<T>(result: io::Result<T>) -> io::Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// An error that only says a program or map went away during the read.
fn gone(e: &Error) -> bool {
    matches!(e, Error::Inspect { source, .. } if source.raw_os_error() == Some(libc::ENOENT))
}
