//! The end-to-end scripts against real runtimes (`scripts/docker-e2e`, `scripts/podman-e2e`):
//! one `ok - …` / `not ok - …` line per check, then `N passed, M failed`.

use std::path::Path;
use std::process::Command;

/// Whether the script's test is skipped: `skip_env=1` outside CI (CI always runs it).
pub fn skipped(skip_env: &str, test: &str) -> bool {
    let ci = std::env::var("CI").as_deref() == Ok("true");
    if std::env::var(skip_env).as_deref() == Ok("1") && !ci {
        println!("skipped: {test} ({skip_env}=1)");
        return true;
    }
    false
}

/// Runs `scripts/NAME` with `DNSREDIR` set to `binary`, shows its output, and fails unless every
/// check passed and the summary line came.
pub fn run_checks(name: &str, binary: &str) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name);
    let started = std::time::Instant::now();
    let out = Command::new("bash")
        .arg(&script)
        .env("DNSREDIR", binary)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    print!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    println!(
        "# scripts/{name}: {} after {:.1} s",
        out.status,
        started.elapsed().as_secs_f64()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let failed: Vec<&str> = stdout.lines().filter(|l| l.starts_with("not ok")).collect();
    assert!(
        out.status.success(),
        "scripts/{name} failed ({}); failed checks:\n{}",
        out.status,
        failed.join("\n")
    );
    assert!(
        stdout.lines().any(|l| l.ends_with(" passed, 0 failed")),
        "scripts/{name} exited 0 without its summary line"
    );
}
