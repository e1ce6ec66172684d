//! Entering the target's network namespace. setns(2) moves only the calling thread, and
//! sockets keep the namespace they were created in: open netlink sockets after entering.

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
}

impl fmt::Display for NetnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetnsError::NoSuchProcess(pid) => write!(
                f,
                "no process with pid {pid}: pass the pid of a process inside the container, e.g. $(docker inspect -f '{{{{.State.Pid}}}}' NAME)"
            ),
            NetnsError::Open { path, source } => {
                write!(f, "cannot open network namespace {}: {source}; pass /proc/PID/ns/net or /var/run/netns/NAME", path.display())
            }
            NetnsError::Enter { path, source } => {
                write!(f, "cannot enter network namespace {}: {source}; is it a network namespace, and are we root?", path.display())
            }
        }
    }
}

impl std::error::Error for NetnsError {}

/// While alive, the calling thread is in the target namespace; dropping it goes back.
pub struct Entered {
    original: File,
}

fn setns(file: &File) -> io::Result<()> {
    // SAFETY: a valid fd and a namespace type; setns does not touch our memory.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub fn enter(target: &Target) -> Result<Entered, NetnsError> {
    if let Target::Pid(pid) = target {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return Err(NetnsError::NoSuchProcess(*pid));
        }
    }
    let path = target.ns_path();
    let ns = File::open(&path).map_err(|source| match (target, source.kind()) {
        (Target::Pid(pid), io::ErrorKind::NotFound) => NetnsError::NoSuchProcess(*pid),
        _ => NetnsError::Open {
            path: path.clone(),
            source,
        },
    })?;
    let here = PathBuf::from("/proc/thread-self/ns/net");
    let original = File::open(&here).map_err(|source| NetnsError::Open { path: here, source })?;
    setns(&ns).map_err(|source| NetnsError::Enter { path, source })?;
    Ok(Entered { original })
}

impl Drop for Entered {
    fn drop(&mut self) {
        // Nothing sensible to do if returning fails; the process is about to exit anyway.
        let _ = setns(&self.original);
    }
}
