//! dnsredir as a chained CNI plugin under a real Podman (Debian's 4.3, CNI backend): runs
//! `scripts/podman-e2e` with this build's binary as the plugin.
//!
//! The script writes its own containers.conf and storage.conf (a scratch directory, the CNI
//! backend, the plugin directory holding this binary), imports its test image from a tarball,
//! and starts its test resolvers on a bridge of its own; then `podman run` with `dig` as the
//! container's command must get its very first answer from the upstream, `podman network
//! disconnect`/`connect` and `podman rm` must leave nothing of dnsredir's, and broken or refused
//! configurations must fail the container's network set-up with dnsredir's CNI error.
//! Needs root, so it is `#[ignore]`d; as root, `DNSREDIR_SKIP_PODMAN=1` skips it (not when
//! `CI=true`: CI always runs it).

mod support;

use support::require_root;

#[test]
#[ignore = "needs root: Podman"]
fn podman_runs_containers_through_the_cni_chain() {
    if support::script::skipped(
        "DNSREDIR_SKIP_PODMAN",
        "podman_runs_containers_through_the_cni_chain",
    ) {
        return;
    }
    require_root();
    support::script::run_checks("podman-e2e", &support::dnsredir_bin());
}
