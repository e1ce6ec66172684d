//! Work inside the target's network namespace. setns(2) moves only the calling thread, and
//! sockets keep the namespace they were created in, so the work runs on a thread of its own
//! that enters the namespace and ends with the work: the caller's thread never moves.

use crate::target::Target;
use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub enum NetnsError {
    NoSuchProcess(u32),
    Open {
        path: PathBuf,
        source: io::Error,
    },
    Enter {
        path: PathBuf,
        source: io::Error,
    },
    Thread(io::Error),
    /// flock(2) on the namespace failed (not: it is taken; then we wait).
    Lock {
        path: PathBuf,
        source: io::Error,
    },
    /// The --pid process left the namespace (exited) while we worked in it.
    Exited(u32),
}

impl fmt::Display for NetnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetnsError::NoSuchProcess(pid) => write!(f, "no process with pid {pid}"),
            NetnsError::Open { path, source } => {
                write!(
                    f,
                    "cannot open network namespace {}: {source}",
                    path.display()
                )
            }
            NetnsError::Enter { path, source } => {
                write!(
                    f,
                    "cannot enter network namespace {}: {source}",
                    path.display()
                )
            }
            NetnsError::Thread(source) => {
                write!(f, "cannot start a thread for the namespace: {source}")
            }
            NetnsError::Lock { path, source } => {
                write!(
                    f,
                    "cannot lock network namespace {}: {source}",
                    path.display()
                )
            }
            NetnsError::Exited(pid) => write!(f, "process {pid} exited during the attach"),
        }
    }
}

impl std::error::Error for NetnsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NetnsError::NoSuchProcess(_) | NetnsError::Exited(_) => None,
            NetnsError::Open { source, .. }
            | NetnsError::Enter { source, .. }
            | NetnsError::Lock { source, .. }
            | NetnsError::Thread(source) => Some(source),
        }
    }
}

fn setns(file: &File) -> io::Result<()> {
    // SAFETY: a valid fd and a namespace type; setns does not touch our memory.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn open(target: &Target) -> Result<File, NetnsError> {
    if let Target::Pid(pid) = target {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return Err(NetnsError::NoSuchProcess(*pid));
        }
    }
    let path = target.ns_path();
    open_namespace_file(&path).map_err(|source| match (target, source.kind()) {
        (Target::Pid(pid), io::ErrorKind::NotFound) => NetnsError::NoSuchProcess(*pid),
        _ => NetnsError::Open { path, source },
    })
}

/// A namespace file and nothing else, opened for reading. `path` is found with O_PATH first,
/// which opens nothing (no FIFO blocks, no device sees an open), and must be on nsfs; only that
/// file is then opened, through its own descriptor, so a symlink swapped in between does not
/// count. `--netns` is the root operator's path, but it may lie under a directory a container
/// or a user can write.
fn open_namespace_file(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let found = File::options()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(path)?;
    // SAFETY: statfs is plain data (all zeroes is a valid value).
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a descriptor we own and a statfs to fill, alive for the call.
    if unsafe { libc::fstatfs(found.as_raw_fd(), &mut fs) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if fs.f_type as u64 != libc::NSFS_MAGIC as u64 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a namespace file",
        ));
    }
    File::open(format!("/proc/self/fd/{}", found.as_raw_fd()))
}

/// Runs `work` on a new thread inside the target's network namespace and returns its result.
/// A panic in `work` is raised again here.
pub fn run_in<T, E, F>(target: &Target, work: F) -> Result<T, E>
where
    T: Send,
    E: From<NetnsError> + Send,
    F: FnOnce() -> Result<T, E> + Send,
{
    run_with(target, open(target)?, work)
}

/// Opens the target's namespace and takes an exclusive flock(2) on it, waiting for whoever
/// holds it (`on_wait` is called first when someone does). The lock is on the namespace's own
/// inode, so every path naming it (/proc/PID/ns/net of any process in it, a bind mount under
/// /var/run/netns) meets the same lock, no lock file is needed and none is ever left over; it
/// goes with the returned file (and with the process, however it ends).
pub fn open_locked(target: &Target, on_wait: impl FnOnce()) -> Result<File, NetnsError> {
    let ns = open(target)?;
    let lock = |how| {
        // SAFETY: flock on a descriptor we own; it does not touch our memory.
        if unsafe { libc::flock(ns.as_raw_fd(), how) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    let failed = |source| NetnsError::Lock {
        path: target.ns_path(),
        source,
    };
    match lock(libc::LOCK_EX | libc::LOCK_NB) {
        Ok(()) => return Ok(ns),
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => on_wait(),
        Err(e) => return Err(failed(e)),
    }
    loop {
        match lock(libc::LOCK_EX) {
            Ok(()) => return Ok(ns),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(failed(e)),
        }
    }
}

/// The calling thread's network namespace.
pub const CURRENT: &str = "/proc/thread-self/ns/net";

/// (device, inode) of the calling thread's network namespace.
pub fn current() -> io::Result<(u64, u64)> {
    identity(Path::new(CURRENT))
}

/// (device, inode) of the namespace file at `path`: equal for two paths to one namespace.
pub fn identity(path: &Path) -> io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).map(|m| (m.dev(), m.ino()))
}

/// Whether the target still names namespace `ns`: false once a --pid process has exited (or
/// left it), or a bind mount is gone.
pub fn still_names(target: &Target, ns: (u64, u64)) -> bool {
    identity(&target.ns_path()).is_ok_and(|id| id == ns)
}

/// [`run_in`] in the namespace `ns` (opened by [`open_locked`]), kept open until `work` ends.
pub fn run_with<T, E, F>(target: &Target, ns: File, work: F) -> Result<T, E>
where
    T: Send,
    E: From<NetnsError> + Send,
    F: FnOnce() -> Result<T, E> + Send,
{
    let path = target.ns_path();
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("dnsredir-netns".into())
            .spawn_scoped(scope, move || -> Result<T, E> {
                setns(&ns).map_err(|source| NetnsError::Enter { path, source })?;
                work()
            })
            .map_err(NetnsError::Thread)?;
        match handle.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}
