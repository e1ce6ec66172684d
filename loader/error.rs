//! The errors a user can meet, each printed as one line that names what was wrong and what
//! to do about it.

use crate::container::ContainerError;
use crate::elf::{GlobalError, ParseError};
use crate::load::LoadError;
use crate::netlink::NetlinkError;
use crate::netns::NetnsError;
use std::fmt;
use std::io;

#[derive(Debug)]
pub enum Error {
    NotPrivileged {
        missing: Vec<&'static str>,
    },
    Netns(NetnsError),
    Container(ContainerError),
    /// The upstream cannot work from this container.
    Upstream(String),
    /// The embedded object is malformed: a build problem, not the user's.
    Object(ParseError),
    Global(GlobalError),
    Load(LoadError),
    Netlink {
        action: String,
        source: NetlinkError,
    },
    /// Reading back what is attached (--status).
    Inspect {
        action: String,
        source: io::Error,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotPrivileged { missing } => write!(
                f,
                "permission denied: dnsredir needs root (it lacks {}); run it with sudo",
                missing.join(", ")
            ),
            Error::Netns(e) => e.fmt(f),
            Error::Container(e) => e.fmt(f),
            Error::Upstream(e) => write!(f, "bad --upstream: {e}"),
            Error::Object(e) => write!(
                f,
                "the embedded BPF object is malformed ({e}): rebuild dnsredir"
            ),
            Error::Global(e) => write!(
                f,
                "the embedded BPF object does not match this loader ({e}): rebuild dnsredir"
            ),
            Error::Load(e) => e.fmt(f),
            Error::Netlink { action, source } => write!(f, "{action} failed: {source}"),
            Error::Inspect { action, source } => write!(f, "{action} failed: {source}"),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// Extra lines worth showing after the one-line message: the verifier's log.
    pub fn details(&self) -> Option<&str> {
        match self {
            Error::Load(LoadError::Verifier { log, .. }) if !log.is_empty() => Some(log),
            _ => None,
        }
    }
}

impl From<NetnsError> for Error {
    fn from(e: NetnsError) -> Self {
        Error::Netns(e)
    }
}

impl From<ContainerError> for Error {
    fn from(e: ContainerError) -> Self {
        Error::Container(e)
    }
}

impl From<LoadError> for Error {
    fn from(e: LoadError) -> Self {
        Error::Load(e)
    }
}

impl From<ParseError> for Error {
    fn from(e: ParseError) -> Self {
        Error::Object(e)
    }
}

impl From<GlobalError> for Error {
    fn from(e: GlobalError) -> Self {
        Error::Global(e)
    }
}

/// Checks the capabilities up front, so the user gets one clear message instead of an
/// EPERM from whichever step happens to come first.
pub fn check_privileges() -> Result<(), Error> {
    const CAP_NET_ADMIN: u32 = 12;
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_BPF: u32 = 39;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let Some(effective) = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
    else {
        return Ok(()); // cannot tell: let the kernel decide
    };
    let has = |cap: u32| effective & (1u64 << cap) != 0;
    let mut missing = Vec::new();
    if !has(CAP_SYS_ADMIN) {
        missing.push("CAP_SYS_ADMIN");
    }
    if !has(CAP_NET_ADMIN) {
        missing.push("CAP_NET_ADMIN");
    }
    if !has(CAP_BPF) && !has(CAP_SYS_ADMIN) {
        missing.push("CAP_BPF");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::NotPrivileged { missing })
    }
}
