//! Turns a parsed object into kernel objects: maps created and filled, `.rodata` frozen,
//! instructions relocated, programs through the verifier.

use super::elf::ObjectFile;
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

/// What to load from an object, and as what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub kind: sys::ProgKind,
    /// Sections of the programs to load; `None` loads every program of the object.
    pub sections: Option<Vec<String>>,
}

impl Options {
    /// Every program, as tc classifiers (`BPF_PROG_TYPE_SCHED_CLS`).
    pub fn sched_cls() -> Options {
        Options {
            kind: sys::ProgKind::SCHED_CLS,
            sections: None,
        }
    }

    fn wants(&self, section: &str) -> bool {
        self.sections
            .as_ref()
            .map_or(true, |s| s.iter().any(|w| w == section))
    }
}

pub fn load(object: &ObjectFile, options: &Options) -> Result<Loaded, LoadError> {
    raise_memlock_limit();
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
    for spec in object.programs.iter().filter(|p| options.wants(&p.section)) {
        let insns = reloc::relocate(spec, &fds).map_err(LoadError::Reloc)?;
        let fd =
            sys::prog_load(&spec.name, options.kind, &insns, &object.license).map_err(|e| {
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
        programs.push(LoadedProgram {
            section: spec.section.clone(),
            name: spec.name.clone(),
            fd,
        });
    }
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
