//! The nameservers path end to end, in a CNI-style namespace: a container namespace with eth0
//! (a veth to a bridge host), no NAT rules and no embedded resolver, whose resolv.conf would
//! name the bridge host's nameserver; an upstream host behind the bridge host. dnsredir takes
//! over the nameserver on eth0's egress: queries to it are answered by the upstream.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

mod support;
use support::cni::{dns_server, Cni, OTHER_PORT};
use support::netns::{ns_run, run, Netns};
use support::{require_root, run_dnsredir, serial, DockerLikeNet};

const TIMEOUT: Duration = Duration::from_secs(2);

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn nameserver_queries_are_answered_by_the_upstream_until_detach() {
    let net = Cni::new();
    let ns = net.ns;
    let other = SocketAddrV4::new(*ns.ip(), OTHER_PORT);
    net.assert_answers(ns, net.nameserver.answer(), "before attach");

    let (out, _) = net.attach(&[]);
    assert!(out.contains("nameservers"), "{out}");
    net.assert_answers(ns, net.upstream.answer(), "the upstream answers");
    net.assert_answers(other, net.other_port.answer(), "another port is untouched");
    net.assert_answers(
        net.up,
        net.upstream.answer(),
        "direct queries to the upstream",
    );
    let before = net.nameserver.queries();

    let (code, status, err) = net.dnsredir(&["--status", "--json"]);
    assert_eq!(code, 0, "status: {status}{err}");
    assert!(status.contains("\"path\":\"nameservers\""), "{status}");
    assert!(
        status.contains(&format!("\"nameservers\":[\"{ns}\"]")),
        "{status}"
    );
    let (code, text, _) = net.dnsredir(&["--status"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("path: nameservers"), "{text}");
    assert!(text.contains("IPv6 DNS: not redirected"), "{text}");
    assert!(text.contains("eth0 egress: attached"), "{text}");

    let out = net.detach();
    assert!(out.contains("2 filters removed"), "{out}");
    net.assert_answers(ns, net.nameserver.answer(), "after detach");
    assert_eq!(
        net.nameserver.queries(),
        before + 2,
        "only the queries after detach"
    );
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn with_resolver_any_every_server_is_answered_by_the_upstream_from_the_address_asked() {
    let net = Cni::new();
    // A server no resolv.conf names (a hard-coded resolver), and one on the container's own
    // address: neither is the nameserver or the upstream.
    let other = dns_server(&net.host.name, net.other, Ipv4Addr::new(198, 18, 0, 1));
    let own_addr = SocketAddrV4::new(net.ctr_addr, 53);
    let own = dns_server(&net.ctr.name, own_addr, Ipv4Addr::new(198, 18, 0, 2));
    net.assert_answers(net.other, other.answer(), "before attach");
    net.assert_answers(own_addr, own.answer(), "before attach");

    let up = net.up.to_string();
    let (code, out, err) = net.dnsredir(&["--resolver", "any", "--upstream", &up]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!(
            "DNS to any server on port 53 now goes to {up}, answers from the server asked (taken on eth0's egress;"
        )),
        "{out}"
    );
    assert!(err.is_empty(), "{err}");
    let (other_before, up_before) = (other.queries(), net.upstream.queries());
    // The harness's client and dig take a UDP answer only from the address they asked (a
    // connected socket; dig ignores others), TCP only on its connection: an answer restored
    // with any other source would be no answer.
    net.assert_answers(net.other, net.upstream.answer(), "another server");
    assert_eq!(net.dig_a(net.other, false), vec![net.upstream.answer()]);
    net.assert_answers(net.ns, net.upstream.answer(), "the nameserver");
    assert_eq!(
        other.queries(),
        other_before,
        "the other server saw nothing"
    );
    assert_eq!(
        net.upstream.queries(),
        up_before + 5,
        "the upstream saw all"
    );
    net.assert_answers(own_addr, own.answer(), "the container's own address");
    let other_port = SocketAddrV4::new(*net.ns.ip(), OTHER_PORT);
    net.assert_answers(other_port, net.other_port.answer(), "another port");
    net.assert_answers(net.up, net.upstream.answer(), "the upstream asked directly");

    let (code, status, err) = net.dnsredir(&["--status", "--json"]);
    assert_eq!(code, 0, "status: {status}{err}");
    for field in [
        "\"path\":\"nameservers\"",
        "\"nameservers\":[]",
        "\"any_resolver\":true",
    ] {
        assert!(status.contains(field), "{field}: {status}");
    }
    let (code, text, _) = net.dnsredir(&["--status"]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("nameservers taken over: any (port 53)\n"),
        "{text}"
    );
    assert!(text.contains("eth0 egress: attached"), "{text}");
    assert!(text.contains("failures: 0\n"), "{text}");

    net.detach();
    net.assert_answers(net.other, other.answer(), "after detach");
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn nameservers_must_be_named_with_netns_and_reached_through_the_interface() {
    let net = Cni::new();
    let up = net.up.to_string();
    let (code, out, err) = net.dnsredir(&["--upstream", &up]);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--resolver"), "{err}");
    assert_eq!(egress_filters(&net.ctr.name), 0);

    // A nameserver reached through another interface cannot be taken on eth0's egress.
    let c = &net.ctr.name;
    // (A veth pair inside the namespace: this kernel may have no dummy interfaces.)
    for cmd in [
        "link add side0 type veth peer name side1",
        "addr add 10.217.0.2/24 dev side0",
        "link set side1 up",
        "link set side0 up",
    ] {
        let mut argv = vec!["ip", "-n", c];
        argv.extend(cmd.split_whitespace());
        run(&argv).unwrap_or_else(|e| panic!("{e}"));
    }
    // Its route leaves through side0, the upstream's through eth0: refused, naming both.
    let (code, out, err) = net.dnsredir(&["--upstream", &up, "--resolver", "10.217.0.53"]);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("10.217.0.53 leaves through side0")
            && err.contains("through eth0")
            && err.contains("only the nameservers behind side0 or only those behind eth0"),
        "{err}"
    );
    assert_eq!(egress_filters(&net.ctr.name), 0);
    // With --interface eth0, its queries would never pass eth0's egress.
    let (code, out, err) = net.dnsredir(&[
        "--upstream",
        &up,
        "--resolver",
        "10.217.0.53",
        "--interface",
        "eth0",
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("do not leave through eth0"), "{err}");
    assert_eq!(egress_filters(&net.ctr.name), 0);

    // The upstream cannot be one of the nameservers it stands in for.
    let ns = net.ns.to_string();
    let (code, out, err) = net.dnsredir(&["--upstream", &ns, "--resolver", &ns]);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("one of the nameservers taken over"), "{err}");
    assert_eq!(egress_filters(&net.ctr.name), 0);
}

/// Every interface of the machine's own namespace, with what tc shows on both hooks.
fn host_filters() -> String {
    let links = run(&["ip", "-o", "link", "show"]).expect("ip link");
    let mut all = String::new();
    for line in links.lines() {
        let Some(name) = line.split(": ").nth(1) else {
            continue;
        };
        let name = name.split('@').next().unwrap_or(name);
        for hook in ["ingress", "egress"] {
            if let Ok(o) = run(&["tc", "filter", "show", "dev", name, hook]) {
                all.push_str(&o);
            }
        }
    }
    all
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn a_pid_in_the_hosts_namespace_is_refused_before_anything_is_attached() {
    require_root();
    let _serial = serial();
    assert!(
        !host_filters().contains("dnsredir"),
        "dnsredir already on the host"
    );
    let me = std::process::id().to_string();
    // An interface that does not exist, so that even a broken refusal could not attach.
    for extra in [&["--resolver", "192.0.2.53"][..], &[][..]] {
        for pid in ["1", me.as_str()] {
            let mut args = vec![
                "--pid",
                pid,
                "--upstream",
                "192.0.2.1",
                "--no-probe",
                "--interface",
                "drtnone0",
            ];
            args.extend_from_slice(extra);
            let (code, out, err) = run_dnsredir(&args);
            assert_eq!(code, 1, "{args:?}: {out}{err}");
            assert_eq!(err.lines().count(), 1, "one line: {err}");
            // pid 1's namespace may not even be readable (no CAP_SYS_PTRACE over it), and
            // then cannot be entered either: refused or not, nothing is attached.
            assert!(
                err.contains("would take over the whole host's DNS")
                    || (pid == "1" && err.contains("Permission denied")),
                "{err}"
            );
            assert!(out.is_empty(), "{out}");
        }
    }
    assert!(!host_filters().contains("dnsredir"), "nothing on the host");
}

/// A process in the container namespace whose /etc/resolv.conf (as `/proc/PID/root` shows it)
/// says `resolv_conf`: `ip netns exec` bind-mounts /etc/netns/NAME/resolv.conf over it.
struct CtrProcess {
    child: std::process::Child,
    dir: std::path::PathBuf,
    /// /etc/netns did not exist before: it goes too (when empty).
    made_etc_netns: bool,
}

impl CtrProcess {
    fn start(ctr: &Netns, resolv_conf: &str) -> CtrProcess {
        let made_etc_netns = !std::path::Path::new("/etc/netns").exists();
        let dir = std::path::PathBuf::from(format!("/etc/netns/{}", ctr.name));
        std::fs::create_dir_all(&dir).expect("mkdir /etc/netns/NAME");
        std::fs::write(dir.join("resolv.conf"), resolv_conf).expect("resolv.conf");
        let child = std::process::Command::new("ip")
            .args(["netns", "exec", &ctr.name, "sleep", "600"])
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        let p = CtrProcess {
            child,
            dir,
            made_etc_netns,
        };
        let pid = p.pid();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default() != "sleep\n"
        {
            assert!(std::time::Instant::now() < deadline, "sleep did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
        let seen = std::fs::read_to_string(format!("/proc/{pid}/root/etc/resolv.conf"));
        assert_eq!(seen.ok().as_deref(), Some(resolv_conf), "the bind mount");
        p
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }
}

impl Drop for CtrProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
        if self.made_etc_netns {
            let _ = std::fs::remove_dir("/etc/netns");
        }
    }
}

fn egress_filters(ns: &str) -> usize {
    ns_run(ns, &["tc", "filter", "show", "dev", "eth0", "egress"])
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("dnsredir"))
        .count()
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn with_pid_the_nameservers_come_from_its_resolv_conf() {
    let net = Cni::new();
    let ns = net.ns;
    let resolv = format!(
        "search example.net\nnameserver {}\nnameserver 2001:db8::53\n",
        ns.ip()
    );
    let p = CtrProcess::start(&net.ctr, &resolv);
    let up = net.up.ip().to_string();
    let (code, out, err) = run_dnsredir(&["--pid", &p.pid(), "--upstream", &up]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("the nameservers {ns}")), "{out}");
    assert_eq!(egress_filters(&net.ctr.name), 1);
    net.assert_answers(ns, net.upstream.answer(), "the upstream answers");
    let (code, out, err) = run_dnsredir(&["--pid", &p.pid(), "--detach"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(net.ask(ns, false), vec![net.nameserver.answer()]);
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn a_loopback_nameserver_in_resolv_conf_is_refused() {
    let net = Cni::new();
    let p = CtrProcess::start(&net.ctr, "nameserver 127.0.0.53\noptions edns0\n");
    let up = net.up.ip().to_string();
    let (code, out, err) = run_dnsredir(&["--pid", &p.pid(), "--upstream", &up]);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("127.0.0.53 is a loopback address"), "{err}");
    assert_eq!(egress_filters(&net.ctr.name), 0);
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn switching_paths_replaces_the_other_paths_filters() {
    // DockerLikeNet takes the serialization lock itself.
    let net = DockerLikeNet::new();
    let ctr = net.ctr_ns.clone();
    net.attach(&[]);
    assert_eq!(net.dnsredir_filters("lo"), 1);
    assert_eq!(egress_filters(&ctr), 0);

    // The bridge address stands for a nameserver of the default bridge.
    let pid = net.ctr_pid.to_string();
    let up = net.up_addr.to_string();
    let resolver = net.bridge_addr.to_string();
    let (code, out, err) =
        run_dnsredir(&["--pid", &pid, "--upstream", &up, "--resolver", &resolver]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        net.dnsredir_filters("lo"),
        0,
        "the lo path's filter is gone"
    );
    assert_eq!(net.dnsredir_filters("eth0"), 1);
    assert_eq!(egress_filters(&ctr), 1);
    let (_, status) = net.status_json();
    assert!(format!("{status:?}").contains("nameservers"), "{status:?}");

    net.attach(&[]);
    assert_eq!(net.dnsredir_filters("lo"), 1);
    assert_eq!(net.dnsredir_filters("eth0"), 1);
    assert_eq!(egress_filters(&ctr), 0, "the egress path's filter is gone");
    // The embedded resolver path works again.
    let answer =
        support::query_a(&ctr, net.resolver(), "example.com", false, TIMEOUT).expect("query");
    assert_eq!(answer, vec![net.upstream_answer]);
    net.detach();
}
