//! Privileges: the dnsredir binary run with one capability dropped (setpriv, from the bounding
//! set, so the effective set loses it too) refuses up front: exit 1, one stderr line naming
//! what is missing, nothing attached. CAP_SYS_ADMIN also grants what CAP_BPF does, so
//! `check_privileges` asks for CAP_BPF only when CAP_SYS_ADMIN is missing as well. `--metrics`
//! needs CAP_SYS_ADMIN alone.

mod support;

use std::process::{Command, Output};
use support::{ns_run, Netns};

const BIN: &str = env!("CARGO_BIN_EXE_dnsredir");

/// A namespace of our own (root only; deleted on Drop) and the tc state it started with.
struct EmptyNetns {
    ns: Netns,
    before: String,
}

impl EmptyNetns {
    fn new(tag: &str) -> EmptyNetns {
        let ns = Netns::new(tag).expect("a namespace");
        let before = tc_state(&ns);
        EmptyNetns { ns, before }
    }

    fn path(&self) -> String {
        self.ns.path()
    }

    /// Tc shows what it showed when the namespace was made.
    fn assert_nothing_attached(&self, what: &str) {
        assert_eq!(tc_state(&self.ns), self.before, "nothing attached {what}");
    }
}

/// Whatever tc state dnsredir could have left on lo: qdiscs other than the default, filters.
fn tc_state(ns: &Netns) -> String {
    [
        &["qdisc", "show", "dev", "lo"][..],
        &["filter", "show", "dev", "lo", "ingress"],
        &["filter", "show", "dev", "lo", "egress"],
    ]
    .iter()
    .map(|what| ns_run(&ns.name, &[&["tc"][..], what].concat()).expect("tc show"))
    .collect()
}

fn run_without(caps: &[&str], args: &[&str]) -> Output {
    let bounding: Vec<String> = caps.iter().map(|c| format!("-{c}")).collect();
    Command::new("setpriv")
        .arg(format!("--bounding-set={}", bounding.join(",")))
        .arg("--inh-caps=-all")
        .arg("--")
        .arg(BIN)
        .args(args)
        .output()
        .expect("setpriv (util-linux)")
}

fn stderr_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// (capabilities dropped, the names the refusal must give)
const CASES: [(&[&str], &[&str]); 4] = [
    (&["sys_admin"], &["CAP_SYS_ADMIN"]),
    (&["net_admin"], &["CAP_NET_ADMIN"]),
    (&["sys_admin", "bpf"], &["CAP_SYS_ADMIN", "CAP_BPF"]),
    (
        &["sys_admin", "net_admin", "bpf"],
        &["CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_BPF"],
    ),
];

#[test]
#[ignore = "needs root: bpf(2)"]
fn a_missing_capability_is_named_and_nothing_is_attached() {
    let ns = EmptyNetns::new("a");
    let path = ns.path();
    let actions: [&[&str]; 2] = [
        &["--netns", &path, "--status"],
        &["--netns", &path, "--upstream", "192.0.2.1"],
    ];
    for (dropped, named) in CASES {
        for args in actions {
            let out = run_without(dropped, args);
            let lines = stderr_lines(&out);
            let what = format!("without {dropped:?}, dnsredir {args:?}: {out:?}");
            assert_eq!(out.status.code(), Some(1), "exit 1 {what}");
            assert_eq!(lines.len(), 1, "one stderr line {what}");
            assert!(lines[0].contains("permission denied"), "{what}");
            for cap in named {
                assert!(lines[0].contains(cap), "names {cap} {what}");
            }
            for cap in ["CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_BPF"] {
                if !named.contains(&cap) {
                    let lacks = lines[0].split(';').next().unwrap_or_default();
                    assert!(
                        !lacks.contains(cap),
                        "does not claim {cap} is missing {what}"
                    );
                }
            }
            ns.assert_nothing_attached(&what);
        }
    }
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn cap_bpf_alone_is_not_needed_with_cap_sys_admin() {
    let ns = EmptyNetns::new("b");
    let path = ns.path();
    // --status in an empty namespace: not attached (exit 3), no refusal.
    let out = run_without(&["bpf"], &["--netns", &path, "--status"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("permission denied"),
        "{out:?}"
    );
    // An attach gets past the privilege check and stops at the namespace's facts (no eth0).
    let out = run_without(&["bpf"], &["--netns", &path, "--upstream", "192.0.2.1"]);
    let lines = stderr_lines(&out);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(lines.len(), 1, "{out:?}");
    assert!(!lines[0].contains("permission denied"), "{out:?}");
    ns.assert_nothing_attached("without CAP_BPF");
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn metrics_needs_cap_sys_admin_and_nothing_else() {
    support::require_root();
    let out = run_without(&["sys_admin"], &["--metrics", "127.0.0.1:0"]);
    let lines = stderr_lines(&out);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(lines.len(), 1, "{out:?}");
    assert!(
        lines[0].contains("permission denied: dnsredir lacks CAP_SYS_ADMIN")
            && lines[0].contains("BPF programs by id"),
        "{out:?}"
    );
    // Without the others it serves: its first line says where.
    let mut child = Command::new("setpriv")
        .args([
            "--bounding-set=-net_admin,-bpf",
            "--inh-caps=-all",
            "--",
            BIN,
        ])
        .args(["--metrics", "127.0.0.1:0"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("setpriv");
    let mut line = String::new();
    let stderr = child.stderr.take().expect("piped");
    let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stderr), &mut line);
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        line.contains("serving metrics on http://127.0.0.1:"),
        "{line}"
    );
}
