//! dnsredir as a chained CNI plugin: when the runtime runs it with `CNI_COMMAND` set, the
//! environment and the configuration on stdin make the same [`AttachRequest`] the command line
//! makes, for the same [`redirect::attach`], [`redirect::detach`] and [`inspect::status`] —
//! a second thin front end, not a second way to attach. Spec versions 0.3.0 to 1.1.0
//! ([`version`]).
//!
//! - ADD attaches to `CNI_NETNS` on `CNI_IFNAME` (or `interface`) and prints `prevResult`
//!   back ([`result`]); a failed attach leaves nothing (the attach is one transaction) and
//!   fails the pod's network setup with a CNI error.
//! - DEL removes dnsredir's filters on the interface, whatever build put them there, and
//!   succeeds when there is nothing to remove or no namespace any more.
//! - CHECK compares what is attached with the configuration ([`check`]).
//! - VERSION, STATUS (can this node attach at all) and GC (nothing outside the pods' own
//!   namespaces to collect).

pub mod check;
pub mod config;
pub mod error;
pub mod result;
#[cfg(test)]
mod tests;
pub mod version;

use crate::error::{check_privileges, Error};
use crate::net::netns::NetnsError;
use crate::redirect::{self, AttachRequest};
use crate::target::Target;
use config::Env;
use error::{code, CniError};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use version::Version;

/// The largest configuration read from stdin: a real one is a few hundred bytes, with a
/// prevResult a few KiB.
const STDIN_MAX: u64 = 1 << 20;

/// What one invocation prints on stdout (nothing, a result, or an error object) and whether it
/// failed; `notes` go to stderr, which runtimes keep in their logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub stdout: Option<Value>,
    pub failed: bool,
    pub notes: Vec<String>,
}

/// The process's CNI invocation: environment and stdin in, stdout and exit code out.
pub fn main() -> ExitCode {
    let env = Env::from(|name| std::env::var(name).ok());
    let mut stdin = Vec::new();
    let read = std::io::stdin().take(STDIN_MAX + 1).read_to_end(&mut stdin);
    let outcome = match read {
        Err(e) => failure(
            &stdin,
            CniError::new(
                code::IO_FAILURE,
                format!("reading the network configuration from stdin: {e}"),
            ),
        ),
        Ok(n) if n as u64 > STDIN_MAX => failure(
            &stdin,
            CniError::new(
                code::IO_FAILURE,
                format!("the network configuration on stdin is over {STDIN_MAX} bytes"),
            ),
        ),
        Ok(_) => match crate::fault::init() {
            Err(message) => failure(&stdin, CniError::new(code::INVALID_ENVIRONMENT, message)),
            Ok(()) => run(&env, &stdin),
        },
    };
    for note in &outcome.notes {
        eprintln!("dnsredir: {note}");
    }
    if let Some(out) = &outcome.stdout {
        let mut stdout = std::io::stdout().lock();
        // A runtime that closed our stdout reads nothing either way; the exit code still tells.
        let _ = writeln!(stdout, "{out}").and_then(|()| stdout.flush());
    }
    if outcome.failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Runs the command `env` names with the configuration `stdin`.
pub fn run(env: &Env, stdin: &[u8]) -> Outcome {
    let mut notes = Vec::new();
    let done = match env.command.as_deref() {
        Some("VERSION") => Ok(Some(version_info(stdin))),
        Some("ADD") => add(env, stdin, &mut notes),
        Some("DEL") => del(env, stdin, &mut notes).map(|()| None),
        Some("CHECK") => check(env, stdin).map(|()| None),
        Some("STATUS") => status(stdin).map(|()| None),
        Some("GC") => gc(stdin).map(|()| None),
        Some(other) => Err(CniError::new(
            code::INVALID_ENVIRONMENT,
            format!("unknown CNI_COMMAND {other:?}: dnsredir knows ADD, DEL, CHECK, VERSION, STATUS and GC"),
        )),
        None => Err(CniError::new(
            code::INVALID_ENVIRONMENT,
            "required environment variables [CNI_COMMAND] missing",
        )),
    };
    match done {
        Ok(stdout) => Outcome {
            stdout,
            failed: false,
            notes,
        },
        Err(e) => Outcome {
            notes,
            ..failure(stdin, e)
        },
    }
}

fn failure(stdin: &[u8], e: CniError) -> Outcome {
    Outcome {
        stdout: Some(e.to_json(&config::error_version(stdin))),
        failed: true,
        notes: Vec::new(),
    }
}

/// The versions dnsredir speaks, in the version the runtime asked if it is one of them.
pub fn version_info(stdin: &[u8]) -> Value {
    json!({
        "cniVersion": config::error_version(stdin),
        "supportedVersions": version::SUPPORTED,
    })
}

fn add(env: &Env, stdin: &[u8], notes: &mut Vec<String>) -> Result<Option<Value>, CniError> {
    env.require(true)?;
    let conf = config::parse(stdin)?;
    let request = conf.request(env)?;
    // Before the attach: a prevResult that cannot be handed on must not leave an attachment
    // behind a failed ADD.
    let out = result::pass_on(conf.prev_result(), conf.version)?;
    let mut quiet = |_: String| {};
    let attached = redirect::attach(&request, &mut quiet)
        .map_err(|e| CniError::from_error(code::ATTACH_FAILED, &e))?;
    notes.extend(attached.ipv6_not_redirected);
    Ok(Some(out))
}

fn del(env: &Env, stdin: &[u8], notes: &mut Vec<String>) -> Result<(), CniError> {
    env.require(false)?;
    // The options are not checked: removing dnsredir needs only the interface, and a DEL must
    // succeed for a configuration whose ADD was refused.
    let conf = config::parse(stdin)?;
    let Some(netns) = &env.netns else {
        notes.push("no CNI_NETNS: nothing to remove".into());
        return Ok(());
    };
    let target = Target::Path(PathBuf::from(netns));
    let interface = conf.interface_or(env);
    let mut quiet = |_: String| {};
    match redirect::detach_interface(&target, &interface, &mut quiet) {
        Ok(_) => Ok(()),
        // Gone (deleted, or an unmounted bind mount's empty file): so are the filters in it.
        Err(Error::Netns(e @ NetnsError::Open { .. })) => {
            notes.push(format!("{e}: nothing to remove"));
            Ok(())
        }
        Err(e) => Err(CniError::from_error(code::DETACH_FAILED, &e)),
    }
}

fn check(env: &Env, stdin: &[u8]) -> Result<(), CniError> {
    env.require(true)?;
    let conf = config::parse(stdin)?;
    version::allows(conf.version, "CHECK", Version::CHECK)?;
    let request: AttachRequest = conf.request(env)?;
    check::check(&request)
}

/// Ready when this node can attach at all: the privileges and the kernel (a namespace's own
/// refusals are ADD's to tell).
fn status(stdin: &[u8]) -> Result<(), CniError> {
    let conf = config::parse(stdin)?;
    version::allows(conf.version, "STATUS", Version::STATUS_AND_GC)?;
    check_privileges().map_err(|e| CniError::from_error(code::NOT_AVAILABLE, &e))?;
    if crate::bpf::load::kernel_before(5, 10) {
        return Err(CniError::new(
            code::NOT_AVAILABLE,
            "dnsredir needs Linux 5.10 or newer (bpf_redirect_neigh)",
        ));
    }
    Ok(())
}

/// dnsredir keeps nothing outside the pods' namespaces: their filters go with them.
fn gc(stdin: &[u8]) -> Result<(), CniError> {
    let conf = config::parse(stdin)?;
    version::allows(conf.version, "GC", Version::STATUS_AND_GC)
}
