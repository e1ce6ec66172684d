//! `--metrics ADDR:PORT`: what every dnsredir attachment on the node counts, in the Prometheus
//! text format, for as long as the process runs. The attachments are found in the kernel's
//! list of BPF programs ([`scan`]), not in a state file, so the pods a CNI runtime attached,
//! the ones attached by hand and the ones an older build attached are all seen; [`render`]
//! writes the page, [`serve`] answers `GET /metrics` over plain `std::net`.

pub mod render;
pub mod scan;
pub mod serve;

use crate::abi::Counters;
use crate::error::{check_node_privileges, Error};
use crate::inspect::Build;
use std::net::{SocketAddr, TcpListener};
use std::time::Instant;

/// One dnsredir attachment on the node: the programs that share one configuration map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The kernel's id of its configuration (`.rodata`) map: unique on the node, new at every
    /// attach. A program without one (not a build dnsredir can read) is its own attachment,
    /// named by its program id.
    pub id: AttachmentId,
    pub build: Build,
    /// The rest only for a build with this binary's layout (another layout is not decoded).
    pub decoded: Option<Decoded>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AttachmentId {
    ConfigMap(u32),
    Program(u32),
}

impl std::fmt::Display for AttachmentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttachmentId::ConfigMap(id) => write!(f, "{id}"),
            AttachmentId::Program(id) => write!(f, "prog{id}"),
        }
    }
}

/// What an attachment of this layout says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// From its configuration (`--label`, or the pod a CNI runtime named).
    pub label: String,
    /// `embedded-resolver` or `nameservers`.
    pub path: &'static str,
    pub tracked_flows: usize,
    pub counters: Counters,
}

/// Serves `/metrics` on `addr` until the process is killed. The node is scanned once before
/// the socket is bound, so that a missing privilege is one line at start, not an error page.
pub fn run(addr: SocketAddr, note: &mut dyn FnMut(String)) -> Result<u8, Error> {
    check_node_privileges()?;
    let found = scan::attachments()?;
    let listener = TcpListener::bind(addr).map_err(|source| Error::Serve { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| Error::Serve { addr, source })?;
    note(format!(
        "serving metrics on http://{bound}/metrics ({} dnsredir attachments on this node now); no authentication: keep it on localhost or the node's internal address",
        found.len()
    ));
    serve::exit_on_signals();
    serve::forever(&listener, &mut || page(), note)
}

/// One scrape: the node's attachments, rendered; an error as its one line.
fn page() -> Result<String, String> {
    let start = Instant::now();
    let found = scan::attachments().map_err(|e| e.one_line())?;
    Ok(render::render(&found, start.elapsed().as_secs_f64()))
}
