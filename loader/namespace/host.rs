//! Whether a namespace is the host's own.

use super::NamespaceError;

/// The (device, inode) of a namespace file.
fn ns_identity(path: &std::path::Path) -> Result<(u64, u64), NamespaceError> {
    crate::net::netns::identity(path).map_err(|source| NamespaceError::Proc {
        path: path.to_path_buf(),
        source,
    })
}

/// Refuses a namespace that is the host's own: that of pid 1, or, where pid 1's cannot be
/// read (no CAP_SYS_PTRACE over it), the one dnsredir itself runs in. Called before anything
/// is loaded or attached.
pub fn refuse_host_namespace(ns_path: &std::path::Path, what: &str) -> Result<(), NamespaceError> {
    // A namespace that cannot be read is reported by whatever enters it.
    let Ok(this) = ns_identity(ns_path) else {
        return Ok(());
    };
    let host = ns_identity(std::path::Path::new("/proc/1/ns/net"))
        .or_else(|_| ns_identity(std::path::Path::new("/proc/self/ns/net")))?;
    if this == host {
        return Err(NamespaceError::HostNamespace(what.to_string()));
    }
    Ok(())
}
