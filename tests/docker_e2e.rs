//! End-to-end test against a real Docker engine: runs `scripts/docker-e2e` with this build's binary.
//!
//! The script starts its own dockerd (private data-root, socket and test resolvers in a network namespace),
//! attaches dnsredir to a container, checks which resolver answers, and tears everything down.
//! Needs root, so it is `#[ignore]`d: `scripts/test` runs it with `cargo test -- --include-ignored`.
//! A developer running the ignored tests as root can skip this one with `DNSREDIR_SKIP_DOCKER=1`
//! (ignored when `CI=true`: CI always runs it).

mod support;

use support::require_root;

#[test]
#[ignore = "needs root: a Docker engine"]
fn docker_end_to_end() {
    if support::script::skipped("DNSREDIR_SKIP_DOCKER", "docker_end_to_end") {
        return;
    }
    require_root();
    support::script::run_checks("docker-e2e", env!("CARGO_BIN_EXE_dnsredir"));
}
