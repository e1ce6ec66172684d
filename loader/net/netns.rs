//! Work inside the target's network namespace. setns(2) moves only the calling thread, and
//! sockets keep the namespace they were created in, so the work runs on a thread of its own
//! that enters the namespace and ends with the work: the caller's thread never moves.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Pid(u32),
    Path(PathBuf),
}

impl Target {
    pub fn ns_path(&self) -> PathBuf {
        match self {
            Target::Pid(pid) => PathBuf::from(format!("/proc/{pid}/ns/net")),
            Target::Path(p) => p.clone(),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Pid(pid) => write!(f, "pid {pid}"),
            Target::Path(p) => write!(f, "namespace {}", p.display()),
        }
    }
}

#[derive(Debug)]
pub enum NetnsError {
    NoSuchProcess(u32),
    Open { path: PathBuf, source: io::Error },
    Enter { path: PathBuf, source: io::Error },
    Thread(io::Error),
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
        }
    }
}

impl std::error::Error for NetnsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NetnsError::NoSuchProcess(_) => None,
            NetnsError::Open { source, .. }
            | NetnsError::Enter { source, .. }
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
    File::open(&path).map_err(|source| match (target, source.kind()) {
        (Target::Pid(pid), io::ErrorKind::NotFound) => NetnsError::NoSuchProcess(*pid),
        _ => NetnsError::Open { path, source },
    })
}

/// Runs `work` on a new thread inside the target's network namespace and returns its result.
/// A panic in `work` is raised again here.
pub fn run_in<T, E, F>(target: &Target, work: F) -> Result<T, E>
where
    T: Send,
    E: From<NetnsError> + Send,
    F: FnOnce() -> Result<T, E> + Send,
{
    let ns = open(target)?;
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
