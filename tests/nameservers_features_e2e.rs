//! Name rules and `--watch` on the nameservers path, end to end, in the CNI-style namespace of
//! egress_e2e.rs: with `--keep` the names under it stay with the nameserver asked, with
//! `--only` only the names under it go to the upstream (and TCP stays), and a `--watch`
//! process prints a line per query with its path and first answer.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddrV4;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::cni::Cni;
use support::{dnsredir_bin, require_root, serial};

fn attach(net: &Cni, extra: &[&str]) -> (SocketAddrV4, SocketAddrV4) {
    let ns = SocketAddrV4::new(net.ns_addr, 53);
    let up = SocketAddrV4::new(net.up_addr, 53);
    let (ns_s, up_s) = (ns.to_string(), up.to_string());
    let mut args = vec!["--resolver", &ns_s, "--upstream", &up_s];
    args.extend_from_slice(extra);
    let (code, out, err) = net.dnsredir(&args);
    assert_eq!(code, 0, "attach {extra:?}: {out}{err}");
    (ns, up)
}

fn detach(net: &Cni) {
    let (code, out, err) = net.dnsredir(&["--detach"]);
    assert_eq!(code, 0, "detach: {out}{err}");
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn keep_leaves_its_names_with_the_nameserver() {
    require_root();
    let _serial = serial();
    let net = Cni::new();
    let (ns, _) = attach(&net, &["--keep", "kept.test"]);
    for tcp in [false, true] {
        assert_eq!(
            net.ask_name(ns, "example.com", tcp),
            vec![net.upstream.answer()],
            "tcp {tcp}: other names go to the upstream"
        );
    }
    assert_eq!(
        net.ask_name(ns, "x.kept.test", false),
        vec![net.nameserver.answer()],
        "under --keep: the nameserver answers"
    );
    let (code, status, _) = net.dnsredir(&["--status"]);
    assert_eq!(code, 0);
    assert!(status.contains("kept.test"), "{status}");
    detach(&net);
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn only_sends_only_its_names_to_the_upstream() {
    require_root();
    let _serial = serial();
    let net = Cni::new();
    let (ns, _) = attach(&net, &["--only", "corp.test"]);
    assert_eq!(
        net.ask_name(ns, "x.corp.test", false),
        vec![net.upstream.answer()],
        "under --only: the upstream answers"
    );
    for tcp in [false, true] {
        assert_eq!(
            net.ask_name(ns, "example.com", tcp),
            vec![net.nameserver.answer()],
            "tcp {tcp}: outside --only (and all TCP): the nameserver answers"
        );
    }
    detach(&net);
}

/// A running `dnsredir --netns … --watch`, its lines collected.
struct Watcher {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
}

impl Watcher {
    fn start(net: &Cni) -> Watcher {
        let path = net.ctr.path();
        let mut child = Command::new(dnsredir_bin())
            .args(["--netns", path.as_str(), "--watch"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn dnsredir --watch");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().expect("stdout");
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
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
        let mut w = Watcher {
            child,
            lines,
            stderr,
        };
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

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn wait_for(&self, words: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let lines = self.lines.lock().unwrap().clone();
            if let Some(l) = lines.iter().find(|l| words.iter().all(|w| l.contains(w))) {
                return l.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no line with {words:?}; lines: {lines:#?}\nstderr: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn watch_prints_the_nameserver_paths_queries_with_their_answers() {
    require_root();
    let _serial = serial();
    let net = Cni::new();
    let (ns, _) = attach(&net, &["--keep", "kept.test"]);
    let watcher = Watcher::start(&net);
    assert_eq!(
        net.ask_name(ns, "watched.example.com", false),
        vec![net.upstream.answer()]
    );
    let upstream = net.upstream.answer().to_string();
    let line = watcher.wait_for(&["watched.example.com", " nameserver ", &upstream]);
    assert!(line.contains("NOERROR"), "{line}");
    assert_eq!(
        net.ask_name(ns, "x.kept.test", false),
        vec![net.nameserver.answer()]
    );
    let nameserver = net.nameserver.answer().to_string();
    watcher.wait_for(&["x.kept.test", " kept ", &nameserver]);
    drop(watcher);
    detach(&net);
}
