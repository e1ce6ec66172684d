//! The CNI front end run as a runtime runs it — the binary with `CNI_*` in its environment and
//! the configuration on stdin — against a CNI-style namespace ([`Cni`]: eth0 on a bridge, a
//! nameserver on the bridge host, an upstream behind it): the spec's conformance points (ADD
//! twice, DEL without ADD, DEL twice, DEL of a namespace that is gone, CHECK, VERSION, prevResult
//! handed on) and a failed ADD that leaves nothing.

use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Stdio};

mod support;
use support::cni::Cni;
use support::netns::ns_run;
use support::{dnsredir_bin, require_root, run_dnsredir};

/// What one plugin invocation did.
struct Invocation {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Invocation {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self}"))
    }

    /// A CNI error object, with a non-zero exit.
    fn error(&self) -> Value {
        assert_ne!(self.code, 0, "expected a failure: {self}");
        let e = self.json();
        for key in ["cniVersion", "code", "msg", "details"] {
            assert!(e.get(key).is_some(), "no {key} in the error: {self}");
        }
        e
    }

    fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "expected success: {self}");
        self
    }
}

impl std::fmt::Display for Invocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}, stdout {:?}, stderr {:?}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs the plugin: `command` on `netns` (none: CNI_NETNS unset), the configuration on stdin.
fn plugin(command: &str, netns: Option<&str>, conf: &Value) -> Invocation {
    plugin_on(command, netns, "eth0", conf)
}

/// [`plugin`] with another CNI_IFNAME.
fn plugin_on(command: &str, netns: Option<&str>, ifname: &str, conf: &Value) -> Invocation {
    let mut cmd = Command::new(dnsredir_bin());
    cmd.env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", "e2e0c0ffee")
        .env("CNI_IFNAME", ifname)
        .env("CNI_PATH", "/usr/lib/cni")
        .env(
            "CNI_ARGS",
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=e2e;K8S_POD_NAME=pod-1",
        )
        .env_remove("CNI_NETNS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(netns) = netns {
        cmd.env("CNI_NETNS", netns);
    }
    let mut child = cmd.spawn().expect("runs the plugin");
    let stdin = conf.to_string();
    if let Some(mut pipe) = child.stdin.take() {
        pipe.write_all(stdin.as_bytes()).expect("writes stdin");
    }
    let out = child.wait_with_output().expect("waits for the plugin");
    Invocation {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// What the bridge plugin hands on for the container, in `version`'s shape.
fn prev_result(net: &Cni, version: &str) -> Value {
    let mut ip =
        json!({"address": "10.215.0.2/24", "gateway": net.ns.ip().to_string(), "interface": 2});
    if version.starts_with("0.") {
        ip["version"] = json!("4");
    }
    json!({
        "cniVersion": version,
        "interfaces": [
            {"name": "br0", "mac": "02:00:00:00:00:01"},
            {"name": "vc1", "mac": "02:00:00:00:00:02"},
            {"name": "eth0", "mac": "02:00:00:00:00:03", "sandbox": net.ctr.path()}
        ],
        "ips": [ip],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dns": {"nameservers": [net.ns.ip().to_string()], "search": ["e2e.test"]}
    })
}

/// dnsredir's entry of a conflist as the runtime hands it on: the nameserver taken over for
/// the upstream, with `prevResult`.
fn conf(net: &Cni, version: &str) -> Value {
    json!({
        "cniVersion": version,
        "name": "e2enet",
        "type": "dnsredir",
        "upstream": net.up.to_string(),
        "resolvers": [net.ns.to_string()],
        "prevResult": prev_result(net, version),
    })
}

/// dnsredir's filters on eth0's `hook` (ingress or egress) in the container.
fn filters(net: &Cni, hook: &str) -> usize {
    ns_run(
        &net.ctr.name,
        &["tc", "filter", "show", "dev", "eth0", hook],
    )
    .unwrap_or_default()
    .lines()
    .filter(|l| l.contains("dnsredir"))
    .count()
}

fn assert_detached(net: &Cni, what: &str) {
    assert_eq!(
        (filters(net, "ingress"), filters(net, "egress")),
        (0, 0),
        "{what}: no dnsredir filter left"
    );
    net.assert_answers(net.ns, net.nameserver.answer(), what);
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn add_takes_dns_over_and_hands_prev_result_on() {
    let net = Cni::new();
    let netns = net.ctr.path();
    for version in ["1.0.0", "0.4.0"] {
        let c = conf(&net, version);
        let add = plugin("ADD", Some(&netns), &c);
        add.ok();
        assert_eq!(
            add.json(),
            c["prevResult"],
            "{version}: prevResult unchanged"
        );
        net.assert_answers(net.ns, net.upstream.answer(), version);
    }
    // A 1.0.0 result asked as 0.4.0 gains ips' version, and nothing else changes.
    let mut c = conf(&net, "0.4.0");
    c["prevResult"] = prev_result(&net, "1.0.0");
    let out = plugin("ADD", Some(&netns), &c);
    assert_eq!(out.ok().json(), prev_result(&net, "0.4.0"));
    let (code, status, err) = run_dnsredir(&["--netns", &netns, "--status", "--json"]);
    assert_eq!(code, 0, "{status}{err}");
    let status: Value = serde_json::from_str(&status).expect("status JSON");
    assert_eq!(
        status["label"], "e2e/pod-1",
        "Kubernetes' arguments name the pod"
    );
    assert_eq!(status["config"]["upstream"], net.up.to_string());
    assert_eq!(status["ifname"], "eth0");
    plugin("DEL", Some(&netns), &c).ok();
    assert_detached(&net, "after DEL");
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn add_twice_leaves_one_filter_per_hook() {
    let net = Cni::new();
    let netns = net.ctr.path();
    let c = conf(&net, "1.0.0");
    plugin("ADD", Some(&netns), &c).ok();
    plugin("ADD", Some(&netns), &c).ok();
    assert_eq!((filters(&net, "ingress"), filters(&net, "egress")), (1, 1));
    net.assert_answers(net.ns, net.upstream.answer(), "after the second ADD");
    plugin("CHECK", Some(&netns), &c).ok();
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn del_without_add_twice_and_without_a_namespace_succeeds() {
    let net = Cni::new();
    let netns = net.ctr.path();
    let c = conf(&net, "1.0.0");
    let del = plugin("DEL", Some(&netns), &c);
    assert_eq!((del.ok().stdout.as_str()), "", "DEL prints nothing");
    plugin("ADD", Some(&netns), &c).ok();
    plugin("DEL", Some(&netns), &c).ok();
    plugin("DEL", Some(&netns), &c).ok();
    assert_detached(&net, "after two DELs");

    plugin("DEL", Some("/var/run/netns/dnsredir-e2e-no-such-ns"), &c).ok();
    plugin("DEL", None, &c).ok();
    // What an unmounted bind mount leaves: an empty file where the namespace was.
    let empty = std::env::temp_dir().join(format!("dnsredir-e2e-empty-{}", std::process::id()));
    std::fs::write(&empty, b"").expect("an empty file");
    let out = plugin("DEL", Some(&empty.display().to_string()), &c);
    let _ = std::fs::remove_file(&empty);
    out.ok();
    // DEL removes dnsredir whatever its configuration says (an ADD refused it).
    plugin("ADD", Some(&netns), &c).ok();
    let mut broken = c.clone();
    broken["upstream"] = json!("not-an-address");
    plugin("DEL", Some(&netns), &broken).ok();
    assert_detached(&net, "after a DEL with a broken configuration");
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn del_for_another_interface_leaves_the_attachment() {
    // A pod on two networks: the second network's DEL (its interface, eth1) must not take the
    // first network's dnsredir (eth0).
    let net = Cni::new();
    let netns = net.ctr.path();
    let c = conf(&net, "1.0.0");
    plugin("ADD", Some(&netns), &c).ok();
    plugin_on("DEL", Some(&netns), "eth1", &c).ok();
    assert_eq!((filters(&net, "ingress"), filters(&net, "egress")), (1, 1));
    net.assert_answers(net.ns, net.upstream.answer(), "after eth1's DEL");
    let mut on_eth0 = c.clone();
    on_eth0["interface"] = json!("eth0");
    plugin_on("DEL", Some(&netns), "eth1", &on_eth0).ok();
    assert_detached(&net, "after a DEL whose configuration names eth0");
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn check_passes_after_add_and_fails_when_things_differ() {
    let net = Cni::new();
    let netns = net.ctr.path();
    let c = conf(&net, "1.0.0");
    let before = plugin("CHECK", Some(&netns), &c).error();
    assert_eq!(before["code"], 102, "not attached");
    plugin("ADD", Some(&netns), &c).ok();
    assert_eq!(plugin("CHECK", Some(&netns), &c).ok().stdout, "");

    let mut other = c.clone();
    other["edns_max"] = json!(4096);
    other["keep"] = json!(["internal.test"]);
    let e = plugin("CHECK", Some(&netns), &other).error();
    assert_eq!(e["code"], 103, "{e}");
    let msg = e["msg"].as_str().unwrap_or_default();
    assert!(
        msg.contains("edns_max is 1232") && msg.contains("keep internal.test"),
        "{msg}"
    );

    let mut old = c.clone();
    old["cniVersion"] = json!("0.3.1");
    old["prevResult"] = prev_result(&net, "0.3.1");
    assert_eq!(
        plugin("CHECK", Some(&netns), &old).error()["code"],
        1,
        "no CHECK before 0.4.0"
    );

    let (code, out, err) = run_dnsredir(&["--netns", &netns, "--detach"]);
    assert_eq!(code, 0, "{out}{err}");
    let e = plugin("CHECK", Some(&netns), &c).error();
    assert_eq!(e["code"], 102, "{e}");
    assert!(
        e["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("not attached"),
        "{e}"
    );
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn version_and_status_answer() {
    require_root();
    let out = plugin("VERSION", None, &json!({"cniVersion": "0.4.0"}));
    assert_eq!(
        out.ok().json(),
        json!({"cniVersion": "0.4.0", "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]})
    );
    let status = plugin("STATUS", None, &json!({"cniVersion": "1.1.0", "name": "n"}));
    assert_eq!(status.ok().stdout, "", "this node can attach");
    let old = plugin("STATUS", None, &json!({"cniVersion": "1.0.0", "name": "n"}));
    assert_eq!(old.error()["code"], 1);
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn a_failed_add_says_why_and_leaves_nothing() {
    let net = Cni::new();
    let netns = net.ctr.path();
    let mut c = conf(&net, "1.0.0");
    c["interface"] = json!("eth9");
    let e = plugin("ADD", Some(&netns), &c).error();
    assert_eq!(e["code"], 100, "{e}");
    assert!(
        e["msg"].as_str().unwrap_or_default().contains("eth9"),
        "{e}"
    );
    assert_detached(&net, "after an ADD on a missing interface");

    // An upstream that does not answer, asked to be probed: refused, in the configuration's words.
    let mut c = conf(&net, "1.0.0");
    c["upstream"] = json!(format!("{}:5399", net.up.ip()));
    c["probe"] = json!(true);
    let e = plugin("ADD", Some(&netns), &c).error();
    assert_eq!(e["code"], 100, "{e}");
    assert!(
        e["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("did not answer"),
        "{e}"
    );
    assert!(
        e["details"]
            .as_str()
            .unwrap_or_default()
            .contains("\"probe\": false"),
        "{e}"
    );
    assert_detached(&net, "after an ADD whose probe failed");

    let mut c = conf(&net, "1.0.0");
    c["edns_max"] = json!(100);
    let e = plugin("ADD", Some(&netns), &c).error();
    assert_eq!(e["code"], 7, "{e}");
    assert!(
        e["msg"].as_str().unwrap_or_default().contains("below 512"),
        "{e}"
    );
    assert_detached(&net, "after an ADD with a bad edns_max");
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn resolvers_any_and_none_take_every_server() {
    let net = Cni::new();
    let netns = net.ctr.path();
    for resolvers in [json!("any"), Value::Null] {
        let mut c = conf(&net, "1.0.0");
        match &resolvers {
            Value::Null => drop(c.as_object_mut().map(|o| o.remove("resolvers"))),
            any => c["resolvers"] = any.clone(),
        }
        plugin("ADD", Some(&netns), &c).ok();
        let (code, out, err) = net.dnsredir(&["--status", "--json"]);
        assert_eq!(code, 0, "{resolvers}: {out}{err}");
        assert!(out.contains("\"any_resolver\":true"), "{resolvers}: {out}");
        plugin("CHECK", Some(&netns), &c).ok();
        plugin("DEL", Some(&netns), &c).ok();
        assert_detached(&net, "after DEL");
    }
}
