//! `exec-time`: one command's wall time, peak RSS and exit code.

use std::io;
use std::process::{Command, Stdio};
use std::time::Instant;

/// Runs a command once (its stdout discarded) and prints its wall time (µs, from just before
/// fork to its reaping), its peak RSS (ru_maxrss, kB) and its exit code.
pub fn exec_time(args: &[String]) -> Result<(), String> {
    let (cmd, rest) = args.split_first().ok_or("exec-time CMD [ARGS...]")?;
    let t0 = Instant::now();
    let child = Command::new(cmd)
        .args(rest)
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("{cmd}: {e}"))?;
    let mut status = 0;
    // SAFETY: rusage is plain data the kernel fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; std never waits for it afterwards (Child is forgotten).
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let wall = t0.elapsed();
    std::mem::forget(child);
    if pid < 0 {
        return Err(format!("wait4: {}", io::Error::last_os_error()));
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    println!("{} {} {}", wall.as_micros(), usage.ru_maxrss, code);
    Ok(())
}
