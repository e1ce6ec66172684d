//! Commands racing on one namespace (issue 13): rounds of 8 concurrent attaches and detaches,
//! and `--status` after the container's process is gone. Root only, against the emulated
//! container of `support::DockerLikeNet`. `DNSREDIR_RACE_ROUNDS` (default 50) sets the rounds;
//! scripts/soak runs the long variant.

mod support;

use std::process::Child;
use std::time::{Duration, Instant};
use support::reliability::*;
use support::rng::env_u64;
use support::*;

/// Runs the commands (with --verbose) at once: for each, when it took the namespace lock
/// (the CLOCK_MONOTONIC its "holding the lock" line gives) and its output.
fn run_all_at_once(commands: Vec<Vec<String>>) -> Vec<(f64, (i32, String, String))> {
    use std::io::BufRead;
    let mut children: Vec<Child> = commands
        .iter()
        .map(|a| {
            let mut a = a.clone();
            a.push("--verbose".into());
            spawn_env(&a, &[])
        })
        .collect();
    let readers: Vec<_> = children
        .iter_mut()
        .map(|c| {
            let stderr = c.stderr.take().unwrap();
            std::thread::spawn(move || {
                let (mut locked, mut text) = (None, String::new());
                for line in std::io::BufReader::new(stderr).lines() {
                    let line = line.unwrap_or_default();
                    if line.contains("holding the lock") {
                        locked = line
                            .split("CLOCK_MONOTONIC ")
                            .nth(1)
                            .and_then(|t| t.split(' ').next())
                            .and_then(|t| t.parse::<f64>().ok());
                    }
                    text.push_str(&line);
                    text.push('\n');
                }
                (locked, text)
            })
        })
        .collect();
    children
        .into_iter()
        .zip(readers)
        .map(|(c, r)| {
            let (code, out, _) = output_of(c);
            let (locked, err) = r.join().unwrap();
            let locked = locked.unwrap_or_else(|| panic!("no lock line:\n{err}"));
            (locked, (code, out, err))
        })
        .collect()
}

#[test]
#[ignore = "needs root: network namespaces"]
fn eight_attaches_and_detaches_at_once() {
    let net = DockerLikeNet::new();
    let rounds = env_u64("DNSREDIR_RACE_ROUNDS", 50);
    let detach_args: Vec<String> = vec!["--pid".into(), net.ctr_pid.to_string(), "--detach".into()];
    // Half the commands name the namespace by its bind mount, half by the pid: one lock.
    let mut attach_by_path = net.attach_args();
    attach_by_path[0] = "--netns".into();
    attach_by_path[1] = net.ctr_netns_path();
    let started = Instant::now();
    let mut max_seen = 0;
    for round in 0..rounds {
        let mut kinds = Vec::new();
        let mut commands = Vec::new();
        for i in 0..8u64 {
            let r = support::dns::random_u64() >> (i * 3);
            let attach = r & 1 == 1;
            kinds.push(attach);
            commands.push(match (attach, r & 2 == 2) {
                (true, true) => attach_by_path.clone(),
                (true, false) => net.attach_args(),
                (false, _) => detach_args.clone(),
            });
        }
        // Watch the hooks while they run: never two of our filters on one.
        let ns = net.ctr_ns.clone();
        let watcher = MaxSampler::start(Duration::ZERO, move || {
            ["lo", "eth0"]
                .map(|dev| count_dnsredir_filters(&ns, dev) as u64)
                .into_iter()
                .max()
                .unwrap_or(0)
        });
        let mut results: Vec<(f64, (i32, String, String), bool)> = run_all_at_once(commands)
            .into_iter()
            .zip(kinds)
            .map(|((t, o), k)| (t, o, k))
            .collect();
        let most = watcher.stop();
        max_seen = max_seen.max(most);
        assert!(
            most <= 1,
            "round {round}: {most} dnsredir filters on one hook"
        );
        for (_, (code, out, err), attach) in &results {
            assert_eq!(*code, 0, "round {round} (attach: {attach}):\n{out}\n{err}");
        }
        results.sort_by(|a, b| a.0.total_cmp(&b.0));
        let last = results.last().unwrap();
        let state = tc_state(&net);
        let attached = attached_state(&state)
            .unwrap_or_else(|| panic!("round {round}: half a state: {state:#?}"));
        assert_eq!(
            attached, last.2,
            "round {round}: the last to hold the lock was attach={}, the state is attached={attached}: {results:#?}",
            last.2
        );
        let want = if attached {
            net.upstream_answer
        } else {
            net.stand_in_answer
        };
        assert_eq!(answered_by(&net), Ok(vec![want]), "round {round}");
    }
    eprintln!(
        "{rounds} rounds of 8 concurrent commands in {:?}; most dnsredir filters seen on a hook: {max_seen}",
        started.elapsed()
    );
}

#[test]
#[ignore = "needs root: network namespaces"]
fn status_when_the_container_stopped() {
    let mut net = DockerLikeNet::new();
    let pid = net.spawn_in_ctr(&["sleep", "600"]).unwrap();
    let mut args = net.attach_args();
    args[1] = pid.to_string();
    let (code, out, err) = run_env(&args, &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    std::thread::sleep(Duration::from_millis(100));
    // The process is gone (a zombie until the test reaps it): --pid says so.
    let status = |target: &[&str]| {
        let mut a: Vec<String> = target.iter().map(|s| s.to_string()).collect();
        a.push("--status".into());
        run_env(&a, &[])
    };
    let (code, _, err) = status(&["--pid", &pid.to_string()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        one_error_line(&err).contains(&format!("no process with pid {pid}")),
        "{err}"
    );
    // The namespace lives on in its bind mount, and the programs in it.
    let (code, out, err) = status(&["--netns", &net.ctr_netns_path()]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(answered_by(&net), Ok(vec![net.upstream_answer]));
}
