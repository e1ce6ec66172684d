//! The errors a user can meet. Each says what went wrong (`Display`, with its cause chained
//! through `source()`); [`Error::advice`] says what to do about it, in this one place.

use crate::bpf::elf::{GlobalError, ParseError};
use crate::bpf::load::LoadError;
use crate::install::InstallError;
use crate::namespace::NamespaceError;
use crate::net::netlink::NetlinkError;
use crate::net::netns::NetnsError;
use crate::probe::NoAnswer;
use std::fmt;
use std::io;
use std::net::SocketAddr;

#[derive(Debug)]
pub enum Error {
    NotPrivileged {
        missing: Vec<&'static str>,
        /// What the action needs, for the advice.
        needs: &'static str,
    },
    Netns(NetnsError),
    Namespace(NamespaceError),
    /// The upstream cannot work from this namespace.
    Upstream(String),
    /// The upstream did not answer the DNS query sent before attaching.
    Probe(NoAnswer),
    /// The embedded object is malformed: a build problem, not the user's.
    Object(ParseError),
    Global(GlobalError),
    Load(LoadError),
    Netlink {
        action: String,
        source: NetlinkError,
    },
    /// A read or system call outside netlink and bpf(2) that failed: what is attached
    /// (--status, --watch), a namespace's identity, the watch's ring buffer and output.
    Inspect {
        action: String,
        source: io::Error,
    },
    /// `--metrics` could not listen on its address.
    Serve {
        addr: SocketAddr,
        source: io::Error,
    },
    /// `--install-cni`, `--uninstall-cni`: the node's CNI files.
    Install(InstallError),
    /// An attach that failed once it had begun to change the namespace, and what undoing it
    /// left there.
    Attach {
        source: Box<Error>,
        undo: Undo,
    },
}

/// What is left after a failed attach was undone.
#[derive(Debug)]
pub enum Undo {
    /// Nothing of dnsredir's: dockerd answers again.
    Nothing,
    /// The attachment that was there before, untouched or put back.
    Previous,
    /// Undoing failed as well: the namespace may hold part of the new attachment.
    Failed(Box<Error>),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotPrivileged { missing, .. } => write!(
                f,
                "permission denied: dnsredir lacks {}",
                missing.join(", ")
            ),
            Error::Netns(e) => e.fmt(f),
            Error::Namespace(e) => e.fmt(f),
            Error::Upstream(e) => write!(f, "bad --upstream: {e}"),
            Error::Probe(e) => write!(f, "{e}; nothing attached"),
            Error::Object(e) => write!(f, "the embedded BPF object is malformed ({e})"),
            Error::Global(e) => write!(
                f,
                "the embedded BPF object does not match this loader ({e})"
            ),
            Error::Load(e) => e.fmt(f),
            Error::Netlink { action, source } => write!(f, "{action} failed: {source}"),
            Error::Inspect { action, source } => write!(f, "{action} failed: {source}"),
            Error::Serve { addr, source } => {
                write!(f, "cannot serve metrics on {addr}: {source}")
            }
            Error::Install(e) => e.fmt(f),
            Error::Attach { source, undo } => match undo {
                Undo::Nothing => write!(f, "{source}; nothing attached"),
                Undo::Previous => write!(f, "{source}; the previous attachment is still in place"),
                Undo::Failed(e) => write!(
                    f,
                    "{source}; undoing the attach failed too ({e}), so dnsredir may be half attached"
                ),
            },
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::NotPrivileged { .. } | Error::Upstream(_) => None,
            Error::Netns(e) => Some(e),
            Error::Namespace(e) => Some(e),
            Error::Probe(e) => Some(e),
            Error::Object(e) => Some(e),
            Error::Global(e) => Some(e),
            Error::Load(e) => Some(e),
            Error::Netlink { source, .. } => Some(source),
            Error::Inspect { source, .. } => Some(source),
            Error::Serve { source, .. } => Some(source),
            Error::Install(e) => Some(e),
            Error::Attach { source, .. } => Some(source.as_ref()),
        }
    }
}

impl Error {
    /// What the user can do about it, printed after the message on the same line.
    pub fn advice(&self) -> Option<String> {
        use NamespaceError as T;
        let text = match self {
            Error::Attach { undo: Undo::Failed(_), .. } => {
                "run dnsredir with --detach, or the attach again, to leave a whole state"
            }
            Error::Attach { source, .. } => return source.advice(),
            Error::NotPrivileged { needs, .. } => {
                return Some(format!("run it as root (sudo), or with {needs}"))
            }
            Error::Serve { source, .. } if source.kind() == io::ErrorKind::AddrInUse => {
                "something else listens there: pick another --metrics ADDR:PORT"
            }
            Error::Serve { .. } => {
                "give an address of this host with a port: --metrics 127.0.0.1:9353, or the node's internal address"
            }
            Error::Install(e) => return e.advice(),
            Error::Netns(NetnsError::NoSuchProcess(_)) => "pass the pid of a process inside the container, e.g. $(docker inspect -f '{{.State.Pid}}' NAME)",
            Error::Netns(NetnsError::Open { .. }) => "pass /proc/PID/ns/net or /var/run/netns/NAME",
            Error::Netns(NetnsError::Enter { .. }) => "is it a network namespace, and are we root?",
            Error::Netns(NetnsError::Thread(_)) => "this is a bug in dnsredir; please report it",
            Error::Netns(NetnsError::Lock { .. }) => return None,
            Error::Netns(NetnsError::Exited(_)) => "did the container stop?",
            Error::Namespace(T::NoInterface(_)) => "is this a container on a Docker network? (use --interface for another name)",
            Error::Namespace(T::NoIpv4(_)) => "dnsredir needs one as the source of redirected queries",
            Error::Namespace(T::NoRoute { interface, .. }) => {
                return Some(format!("dnsredir sends queries out of {interface}; give an upstream this container can reach (a container on an --internal network has no route out), or pass --interface"))
            }
            Error::Namespace(T::HostNamespace(_)) => "pass the pid of a process in a container with a network namespace of its own (not --network host)",
            Error::Namespace(T::NameserversUnknown) => "name the namespace's nameservers with --resolver IP[:PORT] (repeatable), or pass --pid so that dnsredir reads its resolv.conf",
            Error::Namespace(T::NoNameservers(_)) => "name the nameservers to take over with --resolver IP[:PORT]",
            Error::Namespace(T::NameserverElsewhere { .. }) => "pass --interface for the interface its queries leave through, or name other nameservers with --resolver IP[:PORT]",
            Error::Namespace(T::LoopbackNameserver(_)) => "point that local resolver at the upstream instead, or name nameservers reachable through the interface with --resolver IP[:PORT]",
            Error::Namespace(T::InterfacesDisagree { first, second }) => {
                return Some(format!("DNS is taken on one interface: name with --resolver only the nameservers behind {} or only those behind {}, and an --upstream reached through the same one (--interface does not change where the routes leave)", first.1, second.1))
            }
            Error::Namespace(T::ContainerFile { .. }) => "name the nameservers to take over with --resolver IP[:PORT] instead",
            Error::Namespace(T::Interfaces(_) | T::Proc { .. } | T::Ambiguous { .. }) => return None,
            Error::Probe(_) => "check the --upstream address and port (is the resolver running there?), or pass --no-probe to attach anyway",
            Error::Object(_) | Error::Global(_) => "rebuild dnsredir",
            Error::Load(LoadError::MissingHelper { min_kernel, .. }) => {
                return Some(format!("dnsredir requires Linux {min_kernel} or newer"))
            }
            Error::Load(LoadError::Map { source, .. })
                if source.raw_os_error() == Some(libc::EPERM) =>
            {
                "run as root; on kernels before 5.11 raise the locked-memory limit (ulimit -l unlimited)"
            }
            Error::Upstream(_) | Error::Load(_) | Error::Netlink { .. } | Error::Inspect { .. } => {
                return None
            }
        };
        Some(text.to_string())
    }

    /// Extra lines worth showing after the one-line message: the verifier's log.
    pub fn details(&self) -> Option<&str> {
        match self {
            Error::Load(LoadError::Verifier { log, .. }) if !log.is_empty() => Some(log),
            Error::Attach { source, .. } => source.details(),
            _ => None,
        }
    }

    /// The one line a user sees: the message, its causes that add something, and the advice.
    pub fn one_line(&self) -> String {
        let mut line = self.to_string();
        if let Some(advice) = self.advice() {
            line.push_str("; ");
            line.push_str(&advice);
        }
        line
    }
}

/// Names the step a failed kernel request belonged to, once, where the request is made.
pub trait Context<T> {
    fn context(self, action: impl FnOnce() -> String) -> Result<T, Error>;
}

impl<T> Context<T> for Result<T, NetlinkError> {
    fn context(self, action: impl FnOnce() -> String) -> Result<T, Error> {
        self.map_err(|source| Error::Netlink {
            action: action(),
            source,
        })
    }
}

impl<T> Context<T> for io::Result<T> {
    fn context(self, action: impl FnOnce() -> String) -> Result<T, Error> {
        self.map_err(|source| Error::Inspect {
            action: action(),
            source,
        })
    }
}

macro_rules! from {
    ($($source:ty => $variant:ident),* $(,)?) => {$(
        impl From<$source> for Error {
            fn from(e: $source) -> Self {
                Error::$variant(e)
            }
        }
    )*};
}

from!(
    NetnsError => Netns,
    NamespaceError => Namespace,
    NoAnswer => Probe,
    LoadError => Load,
    ParseError => Object,
    GlobalError => Global,
);

/// Checks the capabilities up front, so the user gets one clear message instead of an
/// EPERM from whichever step happens to come first.
pub fn check_privileges() -> Result<(), Error> {
    let Some(has) = capabilities() else {
        return Ok(()); // cannot tell: let the kernel decide
    };
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
        Err(Error::NotPrivileged {
            missing,
            needs: "CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN",
        })
    }
}

/// `--metrics` reads every program on the node by its id: the kernel allows that with
/// CAP_SYS_ADMIN only (CAP_BPF is not enough), and nothing else is needed.
pub fn check_node_privileges() -> Result<(), Error> {
    match capabilities() {
        Some(has) if !has(CAP_SYS_ADMIN) => Err(Error::NotPrivileged {
            missing: vec!["CAP_SYS_ADMIN"],
            needs: "CAP_SYS_ADMIN (to read the node's BPF programs by id)",
        }),
        _ => Ok(()),
    }
}

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_BPF: u32 = 39;

/// The effective capabilities, as a test of one; `None` when /proc does not say.
fn capabilities() -> Option<impl Fn(u32) -> bool> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let effective = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())?;
    Some(move |cap: u32| effective & (1u64 << cap) != 0)
}
