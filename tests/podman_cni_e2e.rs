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

use std::path::Path;
use std::process::Command;
use support::require_root;

#[test]
#[ignore = "needs root: Podman"]
fn podman_runs_containers_through_the_cni_chain() {
    let ci = std::env::var("CI").as_deref() == Ok("true");
    if std::env::var("DNSREDIR_SKIP_PODMAN").as_deref() == Ok("1") && !ci {
        println!("skipped: podman_runs_containers_through_the_cni_chain (DNSREDIR_SKIP_PODMAN=1)");
        return;
    }
    require_root();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/podman-e2e");
    let started = std::time::Instant::now();
    let out = Command::new("bash")
        .arg(&script)
        .env("DNSREDIR", support::dnsredir_bin())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    print!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    println!(
        "# scripts/podman-e2e: {} after {:.1} s",
        out.status,
        started.elapsed().as_secs_f64()
    );

    let stdout = String::from_utf8_lossy(&out.stdout);
    let failed: Vec<&str> = stdout.lines().filter(|l| l.starts_with("not ok")).collect();
    assert!(
        out.status.success(),
        "scripts/podman-e2e failed ({}); failed checks:\n{}",
        out.status,
        failed.join("\n")
    );
    assert!(
        stdout.lines().any(|l| l.ends_with(" passed, 0 failed")),
        "scripts/podman-e2e exited 0 without its summary line"
    );
}
