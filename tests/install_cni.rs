//! `--install-cni` / `--uninstall-cni` on node-style CNI directories in a temporary directory
//! (no root needed): real network plugins' conflists (Calico, flannel, Podman's bridge) get
//! dnsredir appended to their chain and nothing else changed; installing twice leaves one
//! entry; uninstalling gives the original plugins back; every file is replaced by a rename and
//! no temporary file is left; every refusal is one line naming the file, changing nothing.

use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

const CONFLISTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/conflists");

/// A node's two CNI directories, removed on Drop.
struct Node {
    root: PathBuf,
    bin: PathBuf,
    conf: PathBuf,
    options: PathBuf,
}

impl Node {
    fn new(tag: &str) -> Node {
        let root = std::env::temp_dir().join(format!("dnsredir-cni-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let (bin, conf) = (root.join("opt-cni-bin"), root.join("etc-cni-net.d"));
        for dir in [&bin, &conf] {
            fs::create_dir_all(dir).expect("dir");
        }
        // Neighbours in the bin directory, as a node has them.
        for plugin in ["bridge", "host-local", "portmap", "calico"] {
            fs::write(bin.join(plugin), "#!/bin/false\n").expect("plugin");
        }
        let options = root.join("options.json");
        fs::write(
            &options,
            r#"{"upstream": "10.0.0.53", "keep": ["cluster.local"]}"#,
        )
        .expect("options");
        Node {
            root,
            bin,
            conf,
            options,
        }
    }

    /// The node with one of tests/data/conflists in its conf directory.
    fn with(tag: &str, conflist: &str) -> Node {
        let node = Node::new(tag);
        fs::copy(
            Path::new(CONFLISTS).join(conflist),
            node.conf.join(conflist),
        )
        .expect("copy");
        node
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let (bin, conf) = (self.bin.to_str().unwrap(), self.conf.to_str().unwrap());
        let out = Command::new(env!("CARGO_BIN_EXE_dnsredir"))
            .args(args)
            .args(["--cni-bin-dir", bin, "--cni-conf-dir", conf])
            .output()
            .expect("runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn install(&self) -> String {
        let options = self.options.to_str().unwrap().to_string();
        let (code, out, err) = self.run(&["--install-cni", "--cni-options", &options]);
        assert_eq!(code, 0, "install: {out}{err}");
        assert!(err.is_empty(), "{err}");
        out
    }

    fn uninstall(&self) -> String {
        let (code, out, err) = self.run(&["--uninstall-cni"]);
        assert_eq!(code, 0, "uninstall: {out}{err}");
        out
    }

    /// An install that must fail: its one stderr line.
    fn refused(&self) -> String {
        let options = self.options.to_str().unwrap().to_string();
        let (code, out, err) = self.run(&["--install-cni", "--cni-options", &options]);
        assert_eq!(code, 1, "{out}{err}");
        assert!(out.is_empty(), "{out}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("dnsredir: error: "), "{err}");
        err
    }

    fn json(&self, name: &str) -> Value {
        let text = fs::read_to_string(self.conf.join(name)).expect("conflist");
        serde_json::from_str(&text).expect("JSON")
    }

    /// Every file name in both directories, for "nothing else appeared".
    fn files(&self) -> Vec<String> {
        let mut names = Vec::new();
        for dir in [&self.bin, &self.conf] {
            for entry in fs::read_dir(dir).expect("list") {
                names.push(
                    entry
                        .expect("entry")
                        .file_name()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
        names.sort();
        names
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

fn types(list: &Value) -> Vec<&str> {
    list["plugins"]
        .as_array()
        .expect("plugins")
        .iter()
        .map(|p| p["type"].as_str().unwrap_or("?"))
        .collect()
}

#[test]
fn dnsredir_is_appended_to_real_network_plugins_chains_and_taken_out_again() {
    for (name, chain) in [
        ("10-calico.conflist", vec!["calico", "portmap", "bandwidth"]),
        ("10-flannel.conflist", vec!["flannel", "portmap"]),
        (
            "87-podman-bridge.conflist",
            vec!["bridge", "portmap", "firewall", "tuning"],
        ),
    ] {
        let node = Node::with(name.trim_end_matches(".conflist"), name);
        let original = node.json(name);
        assert_eq!(types(&original), chain, "{name}");
        let before = node.files();

        let out = node.install();
        assert!(
            out.contains("added dnsredir to") && out.contains(name),
            "{out}"
        );
        let installed = node.json(name);
        let mut expected = chain.clone();
        expected.push("dnsredir");
        assert_eq!(types(&installed), expected, "{name}");
        assert_eq!(
            installed["plugins"][chain.len()],
            json!({"type": "dnsredir", "upstream": "10.0.0.53", "keep": ["cluster.local"]})
        );
        // Everything else as it was: the list without its last entry is the original.
        let mut rest = installed.clone();
        rest["plugins"].as_array_mut().unwrap().pop();
        assert_eq!(rest, original, "{name}");

        let binary = node.bin.join("dnsredir");
        assert_eq!(
            fs::read(&binary).expect("copied"),
            fs::read(env!("CARGO_BIN_EXE_dnsredir")).expect("ours"),
            "the running binary, byte for byte"
        );
        let mode = fs::metadata(&binary).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o755);
        let mut with_binary = before.clone();
        with_binary.push("dnsredir".into());
        with_binary.sort();
        assert_eq!(node.files(), with_binary, "no temporary file left");

        let out = node.uninstall();
        assert!(out.contains("took dnsredir out of"), "{out}");
        assert!(out.contains("removed"), "{out}");
        assert_eq!(node.json(name), original, "{name}: the original plugins");
        assert_eq!(node.files(), before, "the binary is gone, nothing else");
        assert!(node.uninstall().contains("nothing to remove"));
    }
}

#[test]
fn installing_twice_leaves_one_entry_and_other_options_replace_it() {
    let name = "10-calico.conflist";
    let node = Node::with("twice", name);
    node.install();
    let once = node.json(name);
    let out = node.install();
    assert!(out.contains("already"), "{out}");
    assert_eq!(node.json(name), once, "the same file");

    fs::write(&node.options, r#"{"upstream": "10.0.0.54"}"#).unwrap();
    let out = node.install();
    assert!(out.contains("replaced dnsredir's options"), "{out}");
    let list = node.json(name);
    assert_eq!(types(&list), ["calico", "portmap", "bandwidth", "dnsredir"]);
    assert_eq!(
        list["plugins"][3],
        json!({"type": "dnsredir", "upstream": "10.0.0.54"})
    );
}

#[test]
fn files_are_replaced_by_a_rename_keeping_their_mode() {
    let name = "10-flannel.conflist";
    let node = Node::with("rename", name);
    let path = node.conf.join(name);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    let old_text = fs::read_to_string(&path).unwrap();
    // A reader that opened the file before keeps reading the old one, whole.
    let held = fs::File::open(&path).unwrap();
    let inode = fs::metadata(&path).unwrap().ino();
    node.install();
    let meta = fs::metadata(&path).unwrap();
    assert_ne!(meta.ino(), inode, "a new file, renamed over the old");
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600, "mode kept");
    let mut old = String::new();
    std::io::Read::read_to_string(&mut &held, &mut old).unwrap();
    assert_eq!(old, old_text);

    // The binary too: a runtime executing the old one keeps its inode.
    let binary = node.bin.join("dnsredir");
    let inode = fs::metadata(&binary).unwrap().ino();
    node.install();
    assert_ne!(fs::metadata(&binary).unwrap().ino(), inode);
    assert!(
        node.files().iter().all(|f| !f.ends_with(".tmp")),
        "{:?}",
        node.files()
    );
}

#[test]
fn refusals_are_one_line_naming_the_file_and_change_nothing() {
    let node = Node::new("none");
    let err = node.refused();
    assert!(err.contains("no CNI network configuration list"), "{err}");
    assert!(err.contains(node.conf.to_str().unwrap()), "{err}");
    assert!(!node.bin.join("dnsredir").exists(), "nothing copied");

    let malformed = node.conf.join("10-broken.conflist");
    fs::write(&malformed, "{\"plugins\": [{\"type\": \"calico\"},").unwrap();
    let err = node.refused();
    assert!(
        err.contains(malformed.to_str().unwrap()) && err.contains("not JSON"),
        "{err}"
    );
    assert!(!node.bin.join("dnsredir").exists(), "nothing copied");
    fs::write(&malformed, r#"{"type": "bridge"}"#).unwrap();
    let err = node.refused();
    assert!(err.contains("no \"plugins\" list"), "{err}");
    let (code, out, err) = node.run(&["--uninstall-cni"]);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(err.contains(malformed.to_str().unwrap()), "{err}");
    fs::remove_file(&malformed).unwrap();

    // A single-plugin file first in lexical order: the runtime would never load the list.
    fs::copy(
        Path::new(CONFLISTS).join("10-flannel.conflist"),
        node.conf.join("10-flannel.conflist"),
    )
    .unwrap();
    fs::write(node.conf.join("05-other.conf"), r#"{"type": "bridge"}"#).unwrap();
    let err = node.refused();
    assert!(
        err.contains("05-other.conf") && err.contains("10-flannel.conflist"),
        "{err}"
    );
    fs::remove_file(node.conf.join("05-other.conf")).unwrap();

    for (options, says) in [
        ("[\"upstream\"]", "not a JSON object"),
        ("{\"type\": \"bridge\"}", "\"type\""),
        ("upstream=1", "not JSON"),
        // What the plugin would refuse at every pod's ADD is refused at install.
        ("{\"upstream\": \"not-an-address\"}", "\"upstream\""),
        (
            "{\"upstream\": \"10.0.0.53\", \"edns_max\": 100}",
            "below 512",
        ),
        (
            "{\"upstream\": \"10.0.0.53\", \"upstreams\": []}",
            "unsupported field",
        ),
    ] {
        fs::write(&node.options, options).unwrap();
        let err = node.refused();
        assert!(
            err.contains("bad --cni-options") && err.contains(says),
            "{options}: {err}"
        );
    }
    let original = fs::read(node.conf.join("10-flannel.conflist")).unwrap();
    fs::remove_file(&node.options).unwrap();
    let err = node.refused();
    assert!(err.contains(node.options.to_str().unwrap()), "{err}");
    assert_eq!(
        fs::read(node.conf.join("10-flannel.conflist")).unwrap(),
        original
    );
    assert!(!node.bin.join("dnsredir").exists(), "nothing copied");
}
