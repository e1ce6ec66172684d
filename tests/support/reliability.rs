//! What the reliability tests (`fault_injection_e2e`, `concurrency_e2e`, `load_e2e`) share:
//! running the binary with extra environment variables, reading back what tc shows in the
//! emulated container, one query's answerer, and a sampling thread.

use super::docker::{dnsredir_bin, DockerLikeNet};
use super::netns::{ns_run, ns_run_timeout};
use super::redirect::T;
use super::{lines, query_a};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Runs dnsredir with extra environment variables: (exit code, stdout, stderr).
pub fn run_env(args: &[String], env: &[(&str, String)]) -> (i32, String, String) {
    run_bin_env(&dnsredir_bin(), args, env)
}

/// [`run_env`] with another binary than the one under test.
pub fn run_bin_env(bin: &str, args: &[String], env: &[(&str, String)]) -> (i32, String, String) {
    let out = Command::new(bin)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {bin}: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn spawn_env(args: &[String], env: &[(&str, String)]) -> Child {
    Command::new(dnsredir_bin())
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning dnsredir")
}

pub fn output_of(child: Child) -> (i32, String, String) {
    let out = child.wait_with_output().expect("waiting for dnsredir");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Everything tc shows in the container for lo and eth0: qdiscs and both hooks' filters.
pub fn tc_state(net: &DockerLikeNet) -> BTreeMap<String, String> {
    let mut state = BTreeMap::new();
    for dev in ["lo", "eth0"] {
        let qd = ns_run(&net.ctr_ns, &["tc", "qdisc", "show", "dev", dev]).unwrap();
        state.insert(format!("{dev} qdiscs"), qd);
        for hook in ["ingress", "egress"] {
            let f = ns_run_timeout(&net.ctr_ns, &["tc", "filter", "show", "dev", dev, hook], T)
                .unwrap();
            state.insert(format!("{dev} {hook}"), f.stdout + &f.stderr);
        }
    }
    state
}

pub fn dnsredir_filter_count(state: &BTreeMap<String, String>) -> BTreeMap<String, usize> {
    state
        .iter()
        .filter(|(k, _)| !k.ends_with("qdiscs"))
        .map(|(k, v)| {
            let n = v.lines().filter(|l| l.contains("dnsredir")).count();
            (k.clone(), n)
        })
        .collect()
}

/// Our filters only on lo and eth0 ingress, one each; or none anywhere.
pub fn attached_state(state: &BTreeMap<String, String>) -> Option<bool> {
    let n = dnsredir_filter_count(state);
    let ones = n["lo ingress"] == 1 && n["eth0 ingress"] == 1;
    let egress_clear = n["lo egress"] == 0 && n["eth0 egress"] == 0;
    if ones && egress_clear {
        Some(true)
    } else if n.values().all(|c| *c == 0) {
        Some(false)
    } else {
        None
    }
}

/// One UDP query through 127.0.0.11: which resolver answered.
pub fn answered_by(net: &DockerLikeNet) -> Result<Vec<Ipv4Addr>, String> {
    query_a(&net.ctr_ns, net.resolver(), "example.com", false, T)
}

pub fn one_error_line(err: &str) -> String {
    let l = lines(err);
    assert_eq!(l.len(), 1, "expected ONE stderr line:\n{err}");
    assert!(l[0].starts_with("dnsredir: error: "), "{err}");
    l[0].to_string()
}

/// A thread taking one sample after another (`pause` between them) until stopped.
pub struct MaxSampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<u64>,
}

impl MaxSampler {
    pub fn start(pause: Duration, mut sample: impl FnMut() -> u64 + Send + 'static) -> MaxSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut most = 0;
            while !stopped.load(Ordering::SeqCst) {
                most = most.max(sample());
                std::thread::sleep(pause);
            }
            most
        });
        MaxSampler { stop, thread }
    }

    /// Stops the sampling: the largest sample taken.
    pub fn stop(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().expect("the sampling thread")
    }
}
