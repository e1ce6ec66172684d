//! End-to-end test against a real Docker engine: runs `scripts/docker-e2e` with this build's binary.
//!
//! The script starts its own dockerd (private data-root, socket and test resolvers in a network namespace),
//! attaches dnsredir to a container, checks which resolver answers, and tears everything down.
//! Needs root, so it is `#[ignore]`d: `scripts/test` runs it with `cargo test -- --include-ignored`.
//! A developer running the ignored tests as root can skip this one with `DNSREDIR_SKIP_DOCKER=1`
//! (ignored when `CI=true`: CI always runs it).

mod support;

use std::path::Path;
use std::process::Command;
use support::require_root;

#[test]
#[ignore = "needs root: a Docker engine"]
fn docker_end_to_end() {
    let ci = std::env::var("CI").as_deref() == Ok("true");
    if std::env::var("DNSREDIR_SKIP_DOCKER").as_deref() == Ok("1") && !ci {
        println!("skipped: docker_end_to_end (DNSREDIR_SKIP_DOCKER=1)");
        return;
    }
    require_root();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/docker-e2e");
    let started = std::time::Instant::now();
    let out = Command::new("bash")
        .arg(&script)
        .env("DNSREDIR", env!("CARGO_BIN_EXE_dnsredir"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    print!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    println!(
        "# scripts/docker-e2e: {} after {:.1} s",
        out.status,
        started.elapsed().as_secs_f64()
    );

    let stdout = String::from_utf8_lossy(&out.stdout);
    let failed: Vec<&str> = stdout.lines().filter(|l| l.starts_with("not ok")).collect();
    assert!(
        out.status.success(),
        "scripts/docker-e2e failed ({}); failed checks:\n{}",
        out.status,
        failed.join("\n")
    );
    assert!(
        stdout.lines().any(|l| l.ends_with(" passed, 0 failed")),
        "scripts/docker-e2e exited 0 without its summary line"
    );
}
