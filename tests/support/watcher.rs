//! A running `dnsredir --watch` for the end-to-end tests: its output lines and stderr
//! collected as they come, waited for, signalled, killed on Drop.

use super::docker::dnsredir_bin;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `dnsredir … --watch`, its output lines collected as they come.
pub struct Watcher {
    pub child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
}

/// Collects the lines of `out` into `lines` on a thread, until it closes.
pub fn collect_lines(out: ChildStdout, lines: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            lines.lock().unwrap().push(line);
        }
    });
}

impl Watcher {
    /// `dnsredir <target> --watch <extra>` started: back once it says it is watching.
    pub fn start(target: &[&str], extra: &[&str]) -> Watcher {
        let mut w = Watcher::spawn(target, extra, true);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !w.stderr().contains("watching") {
            if let Ok(Some(status)) = w.child.try_wait() {
                panic!("--watch exited early ({status}): {}", w.stderr());
            }
            assert!(
                Instant::now() < deadline,
                "--watch did not start: {}",
                w.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        w
    }

    /// `dnsredir <target> --watch <extra>` spawned; its stdout lines collected when `collect`,
    /// else left in `child` for the caller.
    pub fn spawn(target: &[&str], extra: &[&str], collect: bool) -> Watcher {
        let mut child = Command::new(dnsredir_bin())
            .args(target)
            .arg("--watch")
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn dnsredir --watch");
        let lines = Arc::new(Mutex::new(Vec::new()));
        if collect {
            collect_lines(child.stdout.take().expect("stdout"), lines.clone());
        }
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Watcher {
            child,
            lines,
            stderr,
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits until a line contains every one of `words`; returns it.
    pub fn wait_for(&self, words: &[&str], timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self
                .lines()
                .into_iter()
                .find(|l| words.iter().all(|w| l.contains(w)))
            {
                return l;
            }
            assert!(
                Instant::now() < deadline,
                "no line with {words:?} within {timeout:?}; lines: {:#?}\nstderr: {}",
                self.lines(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: our own child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits for the exit: its code (-1 for a signal).
    pub fn wait_exit(&mut self, timeout: Duration) -> i32 {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Let the stderr reader catch up.
                std::thread::sleep(Duration::from_millis(100));
                return status.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("--watch did not end within {timeout:?}: {}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
