//! Privileges: the dnsredir binary run with one capability dropped (setpriv, from the bounding
//! set, so the effective set loses it too) refuses up front: exit 1, one stderr line naming
//! what is missing, nothing attached. CAP_SYS_ADMIN also grants what CAP_BPF does, so
//! `check_privileges` asks for CAP_BPF only when CAP_SYS_ADMIN is missing as well.

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_dnsredir");

fn require_root_or_panic() {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test needs root (bpf(2), setns, ip netns); run it with sudo and --include-ignored"
    );
}

/// A namespace of our own, deleted on Drop.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("drtpriv{}{tag}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .expect("ip netns add");
        assert!(out.status.success(), "ip netns add {name}: {out:?}");
        let ns = Netns(name);
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }
    fn path(&self) -> String {
        format!("/var/run/netns/{}", self.0)
    }
    fn ip(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(args)
            .output()
            .expect("ip netns exec");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    /// Whatever tc state dnsredir could have left: qdiscs other than the default, filters.
    fn tc_state(&self) -> String {
        let mut s = String::new();
        for dev in ["lo"] {
            for what in [
                &["qdisc", "show", "dev", dev][..],
                &["filter", "show", "dev", dev, "ingress"],
                &["filter", "show", "dev", dev, "egress"],
            ] {
                let mut args = vec!["tc"];
                args.extend_from_slice(what);
                s.push_str(&self.ip(&args));
            }
        }
        s
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
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
    require_root_or_panic();
    let ns = Netns::new("a");
    let path = ns.path();
    let before = ns.tc_state();
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
            assert_eq!(ns.tc_state(), before, "nothing attached {what}");
        }
    }
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn cap_bpf_alone_is_not_needed_with_cap_sys_admin() {
    require_root_or_panic();
    let ns = Netns::new("b");
    let path = ns.path();
    let before = ns.tc_state();
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
    assert_eq!(ns.tc_state(), before, "nothing attached");
}
