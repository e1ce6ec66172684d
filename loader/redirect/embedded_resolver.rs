//! The embedded-resolver path (Docker's user-defined networks): queries that Docker's DNAT sends
//! to dockerd on 127.0.0.11 are taken on lo ingress and sent out of the interface to the
//! upstream; the answers are taken on the interface's ingress and handed back to lo. A policy
//! alone (no upstream) keeps both hooks: the query program answers what the rules decide and
//! passes the rest to dockerd, the reply program has no flow to restore.

use super::{check_upstream, AttachRequest, Log};
use crate::error::Error;
use crate::namespace::dockerd::{ResolverPorts, DOCKER_RESOLVER};
use crate::settings::{Path, Settings};

/// The path's settings for dockerd's `ports`, with the upstream checked from `base.source`
/// through `interface`.
pub fn settings(
    request: &AttachRequest,
    base: Settings,
    ports: ResolverPorts,
    interface: &str,
    log: Log,
) -> Result<Settings, Error> {
    if let Some(up6) = request.upstream6 {
        return Err(Error::Upstream(format!(
            "{up6} is IPv6, but Docker's embedded resolver ({DOCKER_RESOLVER}) is reached over IPv4 only: give one IPv4 --upstream"
        )));
    }
    check_upstream(
        request,
        interface,
        base.source.into(),
        request.upstream.map(Into::into),
        &[],
        log,
    )?;
    Ok(Settings {
        path: Path::EmbeddedResolver {
            ports,
            redirect_all: request.redirect_all,
        },
        ..base
    })
}
