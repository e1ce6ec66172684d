//! Turns a parsed object into kernel objects: maps created and filled, `.rodata` frozen,
//! instructions relocated, programs through the verifier.

use crate::elf::ObjectFile;
use crate::reloc::{self, RelocError};
use crate::sys;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

#[derive(Debug)]
pub enum LoadError {
    Map {
        map: String,
        action: &'static str,
        source: io::Error,
    },
    Reloc(RelocError),
    /// The verifier refused the program; `log` is its explanation.
    Verifier {
        program: String,
        source: io::Error,
        log: String,
    },
    /// The kernel does not know a helper the programs call.
    MissingHelper {
        program: String,
        helper: &'static str,
        min_kernel: &'static str,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Map { map, action, source } => write!(f, "cannot {action} BPF map {map}: {source}"),
            LoadError::Reloc(e) => write!(f, "cannot relocate: {e}"),
            LoadError::Verifier { program, source, log } => {
                let last = log.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no log");
                write!(f, "the kernel's verifier rejected program {program} ({source}): {last}")
            }
            LoadError::MissingHelper { program, helper, min_kernel } => write!(
                f,
                "this kernel lacks the BPF helper {helper}, which {program} needs: dnsredir requires Linux {min_kernel} or newer"
            ),
        }
    }
}

impl std::error::Error for LoadError {}

/// Helpers that came late to the kernel: (helper id as the verifier names it, name, version).
const LATE_HELPERS: [(&str, &str, &str); 1] = [("#152", "bpf_redirect_neigh", "5.10")];

pub struct LoadedProgram {
    pub section: String,
    pub name: String,
    pub fd: OwnedFd,
}

/// Kernel objects of one object file; the maps are shared by all its programs.
pub struct Loaded {
    pub maps: Vec<OwnedFd>,
    pub programs: Vec<LoadedProgram>,
}

impl Loaded {
    pub fn program(&self, section: &str) -> Option<&LoadedProgram> {
        self.programs.iter().find(|p| p.section == section)
    }

    pub fn map(&self, object: &ObjectFile, name: &str) -> Option<&OwnedFd> {
        object.map_index(name).and_then(|i| self.maps.get(i))
    }
}

/// A helper the verifier did not know ("invalid func unknown#152"), with the kernel that has it.
pub fn missing_helper(log: &str) -> Option<(&'static str, &'static str)> {
    LATE_HELPERS.iter().find_map(|(id, helper, min_kernel)| {
        log.lines()
            .any(|l| l.contains("invalid func") && l.contains(id))
            .then_some((*helper, *min_kernel))
    })
}

pub fn load(object: &ObjectFile) -> Result<Loaded, LoadError> {
    let mut maps = Vec::with_capacity(object.maps.len());
    for spec in &object.maps {
        let map_err = |action: &'static str| {
            move |source| LoadError::Map {
                map: spec.name.clone(),
                action,
                source,
            }
        };
        let flags = spec.flags
            | if spec.read_only {
                sys::BPF_F_RDONLY_PROG
            } else {
                0
            };
        let fd = sys::map_create(
            &spec.name,
            spec.map_type,
            spec.key_size,
            spec.value_size,
            spec.max_entries,
            flags,
        )
        .map_err(map_err("create"))?;
        if let Some(data) = &spec.data {
            sys::map_update(&fd, &0u32.to_ne_bytes(), data).map_err(map_err("fill"))?;
        }
        if spec.read_only {
            sys::map_freeze(&fd).map_err(map_err("freeze"))?;
        }
        maps.push(fd);
    }
    let fds: Vec<i32> = maps.iter().map(|m| m.as_raw_fd()).collect();

    let mut programs = Vec::with_capacity(object.programs.len());
    for spec in &object.programs {
        let insns = reloc::relocate(spec, &fds).map_err(LoadError::Reloc)?;
        let fd =
            sys::prog_load(&spec.name, &insns, &object.license).map_err(
                |e| match missing_helper(&e.log) {
                    Some((helper, min_kernel)) => LoadError::MissingHelper {
                        program: spec.name.clone(),
                        helper,
                        min_kernel,
                    },
                    None => LoadError::Verifier {
                        program: spec.name.clone(),
                        source: e.error,
                        log: e.log,
                    },
                },
            )?;
        programs.push(LoadedProgram {
            section: spec.section.clone(),
            name: spec.name.clone(),
            fd,
        });
    }
    Ok(Loaded { maps, programs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_kernels_are_recognised_by_the_verifiers_words() {
        // What a kernel before 5.10 says about helper 152.
        let log = "0: (b7) r2 = 0\n1: (85) call unknown#152\ninvalid func unknown#152\n";
        assert_eq!(missing_helper(log), Some(("bpf_redirect_neigh", "5.10")));
        assert_eq!(missing_helper("R1 invalid mem access 'scalar'"), None);
    }
}
