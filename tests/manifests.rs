//! deploy/kubernetes checked without a cluster (`kubectl apply --dry-run=client` needs an API
//! server for its discovery): scripts/check-manifests parses every document and checks the
//! fields dnsredir relies on against each other and against `--help`; a broken copy is caught;
//! the ConfigMap's options, installed with `--install-cni` into a real Calico conflist, give the
//! chain the DaemonSet promises.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const BIN: &str = env!("CARGO_BIN_EXE_dnsredir");

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dnsredir-manifests-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("scratch");
    dir
}

/// scripts/check-manifests on `dir` (the tree's when `None`): (exit code, its lines).
fn check(dir: Option<&Path>, extra: &[&str]) -> (i32, String) {
    let mut cmd = Command::new(Path::new(ROOT).join("scripts/check-manifests"));
    cmd.arg(BIN).args(extra);
    if let Some(dir) = dir {
        cmd.env("DNSREDIR_MANIFESTS", dir);
    }
    let out = cmd.output().expect("python3 runs scripts/check-manifests");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !text.contains("needs python3-yaml"),
        "{text} (python3-yaml: scripts/setup installs it)"
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn the_manifests_parse_and_agree_with_each_other_and_with_the_binary() {
    let dir = scratch("options");
    let options = dir.join("options.json");
    let (code, text) = check(None, &["--options-out", options.to_str().unwrap()]);
    assert_eq!(code, 0, "{text}");

    // What the init container does on a Calico node, with the ConfigMap's options.
    let (bin, conf) = (dir.join("bin"), dir.join("net.d"));
    fs::create_dir_all(&bin).unwrap();
    fs::create_dir_all(&conf).unwrap();
    fs::copy(
        Path::new(ROOT).join("tests/data/conflists/10-calico.conflist"),
        conf.join("10-calico.conflist"),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["--install-cni", "--cni-options"])
        .arg(&options)
        .arg("--cni-bin-dir")
        .arg(&bin)
        .arg("--cni-conf-dir")
        .arg(&conf)
        .output()
        .expect("runs");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("(plugins: calico, portmap, bandwidth, dnsredir)"),
        "{said}"
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_broken_copy_is_caught() {
    let manifests = Path::new(ROOT).join("deploy/kubernetes");
    for (file, from, to, says) in [
        (
            "daemonset.yaml",
            "prometheus.io/port: \"9353\"",
            "prometheus.io/port: \"9100\"",
            "prometheus.io/port",
        ),
        (
            "daemonset.yaml",
            "- operator: Exists",
            "- operator: Exists\n          key: x",
            "toleration",
        ),
        (
            "daemonset.yaml",
            "- NET_ADMIN",
            "- NET_ADMIN\n                - SYS_PTRACE",
            "SYS_ADMIN and NET_ADMIN only",
        ),
        (
            "daemonset.yaml",
            "- /host/etc/cni/net.d",
            "- /etc/cni/net.d",
            "--cni-conf-dir",
        ),
        (
            "daemonset.yaml",
            "- --metrics",
            "- --metrix",
            "one container runs --metrics",
        ),
        (
            "daemonset.yaml",
            "hostPID: false",
            "hostPID: true",
            "no hostPID",
        ),
        (
            "configmap.yaml",
            "options.json: |",
            "opts.json: |",
            "the ConfigMap has options.json",
        ),
        (
            "configmap.yaml",
            "\"upstream\": \"10.0.0.53\"",
            "\"upstreams\": \"10.0.0.53\"",
            "with an upstream",
        ),
        ("configmap.yaml", "data:", "data: [", "configmap.yaml"),
    ] {
        let dir = scratch("broken");
        for entry in fs::read_dir(&manifests).unwrap() {
            let entry = entry.unwrap();
            fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
        let path = dir.join(file);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} has {from:?}");
        fs::write(&path, text.replacen(from, to, 1)).unwrap();
        let (code, said) = check(Some(&dir), &[]);
        assert_eq!(code, 1, "{from:?} → {to:?}: {said}");
        assert!(said.contains(says), "{from:?} → {to:?}: {said}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
