//! Which network namespace the user named: a process's (`--pid`) or a path (`--netns`).

use std::fmt;
use std::path::PathBuf;

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
