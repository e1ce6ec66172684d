//! Turns a parsed object into kernel objects: maps created and filled, `.rodata` frozen,
//! instructions relocated, programs through the verifier.

use super::elf::{ObjectFile, ProgramSpec};
use super::insn::Insn;
use super::reloc::{self, RelocError};
use super::sys;
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
                "this kernel lacks the BPF helper {helper}, which {program} needs (Linux {min_kernel})"
            ),
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoadError::Map { source, .. } | LoadError::Verifier { source, .. } => Some(source),
            LoadError::Reloc(e) => Some(e),
            LoadError::MissingHelper { .. } => None,
        }
    }
}

/// Helpers that came late to the kernel: (helper id as the verifier names it, name, version).
const LATE_HELPERS: [(&str, &str, &str); 1] = [("#152", "bpf_redirect_neigh", "5.10")];

pub struct LoadedProgram {
    pub section: String,
    pub name: String,
    pub fd: OwnedFd,
}

/// Kernel objects of one object file; the maps are shared by all its programs.
pub struct Loaded {
    /// In the order of [`ObjectFile::maps`]; `None` for a map no loaded program uses, which
    /// was not created.
    pub maps: Vec<Option<OwnedFd>>,
    pub programs: Vec<LoadedProgram>,
}

impl Loaded {
    pub fn program(&self, section: &str) -> Option<&LoadedProgram> {
        self.programs.iter().find(|p| p.section == section)
    }

    pub fn map(&self, object: &ObjectFile, name: &str) -> Option<&OwnedFd> {
        object
            .map_index(name)
            .and_then(|i| self.maps.get(i))
            .and_then(Option::as_ref)
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

/// What to load from an object, and as what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub kind: sys::ProgKind,
    /// Sections of the programs to load; `None` loads every program of the object. Only the
    /// maps the programs loaded use are created.
    pub sections: Option<Vec<String>>,
    /// Maps created with another capacity than the object's: (map name, max_entries).
    pub max_entries: Vec<(String, u32)>,
    /// Maps created with another value size than the object's: (map name, value_size).
    pub value_size: Vec<(String, u32)>,
    /// Maps created with another key size than the object's: (map name, key_size).
    pub key_size: Vec<(String, u32)>,
}

impl Options {
    /// Every program, as tc classifiers (`BPF_PROG_TYPE_SCHED_CLS`).
    pub fn sched_cls() -> Options {
        Options {
            kind: sys::ProgKind::SCHED_CLS,
            sections: None,
            max_entries: Vec::new(),
            value_size: Vec::new(),
            key_size: Vec::new(),
        }
    }

    /// Only the programs of `sections`, as tc classifiers: each program costs the verifier's
    /// time at load, each map its memory.
    pub fn sections(sections: &[&str]) -> Options {
        Options {
            sections: Some(sections.iter().map(|s| s.to_string()).collect()),
            ..Options::sched_cls()
        }
    }

    /// The map `name` created with `max_entries` (for a hash: its capacity, which the verifier
    /// does not look at) instead of the object's.
    pub fn max_entries(mut self, name: &str, max_entries: u32) -> Options {
        self.max_entries.push((name.to_string(), max_entries));
        self
    }

    /// The map `name` created with values of `value_size` bytes instead of the object's: for a
    /// map that only code the verifier finds unreachable uses (it checks a value's size where a
    /// program reaches into it, nowhere else).
    pub fn value_size(mut self, name: &str, value_size: u32) -> Options {
        self.value_size.push((name.to_string(), value_size));
        self
    }

    /// The map `name` created with keys of `key_size` bytes instead of the object's: for an
    /// LPM trie whose longest key is shorter (every node holds a whole key).
    pub fn key_size(mut self, name: &str, key_size: u32) -> Options {
        self.key_size.push((name.to_string(), key_size));
        self
    }

    fn wants(&self, section: &str) -> bool {
        self.sections
            .as_ref()
            .map_or(true, |s| s.iter().any(|w| w == section))
    }
}

/// Which of the object's maps the programs `options` asks for refer to.
fn maps_used(object: &ObjectFile, options: &Options) -> Vec<bool> {
    let mut used = vec![options.sections.is_none(); object.maps.len()];
    let wanted = object.programs.iter().filter(|p| options.wants(&p.section));
    for reloc in wanted.flat_map(|p| &p.relocations) {
        if let Some(u) = used.get_mut(reloc.map) {
            *u = true;
        }
    }
    used
}

pub fn load(object: &ObjectFile, options: &Options) -> Result<Loaded, LoadError> {
    raise_memlock_limit();
    let used = maps_used(object, options);
    let mut maps = Vec::with_capacity(object.maps.len());
    for (spec, used) in object.maps.iter().zip(used) {
        if !used {
            maps.push(None);
            continue;
        }
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
        let sized = |overrides: &[(String, u32)], default: u32| {
            overrides
                .iter()
                .find(|(name, _)| *name == spec.name)
                .map_or(default, |&(_, n)| n)
        };
        let fd = sys::map_create(
            &spec.name,
            spec.map_type,
            sized(&options.key_size, spec.key_size),
            sized(&options.value_size, spec.value_size),
            sized(&options.max_entries, spec.max_entries),
            flags,
        )
        .map_err(map_err("create"))?;
        if let Some(data) = &spec.data {
            sys::map_update(&fd, &0u32.to_ne_bytes(), data).map_err(map_err("fill"))?;
        }
        if spec.read_only {
            sys::map_freeze(&fd).map_err(map_err("freeze"))?;
        }
        maps.push(Some(fd));
    }
    // -1 for a map not created: no program loaded refers to it (a reference would be refused
    // by the kernel as a bad fd).
    let fds: Vec<i32> = maps
        .iter()
        .map(|m| m.as_ref().map_or(-1, |m| m.as_raw_fd()))
        .collect();

    let wanted: Vec<_> = object
        .programs
        .iter()
        .filter(|p| options.wants(&p.section))
        .collect();
    let mut relocated = Vec::with_capacity(wanted.len());
    for spec in &wanted {
        relocated.push(reloc::relocate(spec, &fds).map_err(LoadError::Reloc)?);
    }
    let load_one = |spec: &ProgramSpec, insns: &[Insn]| -> Result<LoadedProgram, LoadError> {
        let fd = sys::prog_load(&spec.name, options.kind, insns, &object.license).map_err(|e| {
            match missing_helper(&e.log) {
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
            }
        })?;
        Ok(LoadedProgram {
            section: spec.section.clone(),
            name: spec.name.clone(),
            fd,
        })
    };
    // The verifier runs in the calling thread: the programs go through it side by side, the
    // first (the path's larger, query side) here, each other on a thread of its own. The first
    // failure in the object's order is the one reported; the programs loaded are dropped.
    let results: Vec<Result<LoadedProgram, LoadError>> = std::thread::scope(|scope| {
        let mut jobs = wanted.iter().zip(&relocated);
        let first = jobs.next();
        let others: Vec<_> = jobs
            .map(|(spec, insns)| {
                let spawned = std::thread::Builder::new()
                    .name("dnsredir-load".into())
                    .spawn_scoped(scope, || load_one(spec, insns));
                (spawned, spec, insns)
            })
            .collect();
        let mut results = Vec::with_capacity(wanted.len());
        if let Some((spec, insns)) = first {
            results.push(load_one(spec, insns));
        }
        for (spawned, spec, insns) in others {
            results.push(match spawned {
                Ok(handle) => handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                // No thread: loaded here, after the first.
                Err(_) => load_one(spec, insns),
            });
        }
        results
    });
    let programs = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    Ok(Loaded { maps, programs })
}

/// Before 5.11 the kernel charges BPF maps to RLIMIT_MEMLOCK, whose default (64 KiB or 8 MiB)
/// is too small for the flow table: lift it there, as far as we may. Newer kernels charge
/// memory cgroups instead, and the limit is left alone.
fn raise_memlock_limit() {
    if !kernel_before(5, 11) {
        return;
    }
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: a valid rlimit struct; a refusal leaves the limit as it was and map creation
    // then reports EPERM with advice.
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) };
}

/// The running kernel is older than `major.minor` (unknown: not older).
pub fn kernel_before(major: u32, minor: u32) -> bool {
    // SAFETY: uname fills the zeroed struct.
    let mut name: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut name) } != 0 {
        return false;
    }
    // SAFETY: the kernel NUL-terminates release.
    let release = unsafe { std::ffi::CStr::from_ptr(name.release.as_ptr()) };
    release_before(&release.to_string_lossy(), major, minor)
}

/// "5.10.0-23-amd64" → (5, 10), compared with (major, minor).
fn release_before(release: &str, major: u32, minor: u32) -> bool {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(a), Some(b)) => (a, b) < (major, minor),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{REPLY_SECTION, RULES_MAP};
    use crate::bpf::embedded;

    #[test]
    fn only_the_maps_of_the_programs_asked_for_are_created() {
        let object = ObjectFile::parse(embedded::object_bytes()).expect("embedded object");
        let all = maps_used(&object, &Options::sched_cls());
        assert!(all.iter().all(|&u| u));
        // The reply program has no name rules: their maps are left out.
        let reply = maps_used(&object, &Options::sections(&[REPLY_SECTION]));
        let rules = object.map_index(RULES_MAP).expect("rules map");
        assert!(!reply[rules]);
        assert!(reply.iter().any(|&u| u));
        let none = maps_used(&object, &Options::sections(&[]));
        assert!(none.iter().all(|&u| !u));
    }

    #[test]
    fn old_kernels_are_recognised_by_the_verifiers_words() {
        // What a kernel before 5.10 says about helper 152.
        let log = "0: (b7) r2 = 0\n1: (85) call unknown#152\ninvalid func unknown#152\n";
        assert_eq!(missing_helper(log), Some(("bpf_redirect_neigh", "5.10")));
        assert_eq!(missing_helper("R1 invalid mem access 'scalar'"), None);
    }

    #[test]
    fn kernel_releases_compare_by_major_and_minor() {
        assert!(release_before("5.10.0-23-amd64", 5, 11));
        assert!(!release_before("5.11.0", 5, 11));
        assert!(!release_before("6.18.44-fc-v1045", 5, 11));
        assert!(!release_before("garbage", 5, 11));
    }
}
