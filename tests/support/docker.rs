//! Docker's topology for one container on a user-defined network, in three fresh namespaces.
//!
//! ```text
//!  ctr                        host                              up
//!  lo: 127.0.0.11:<udp>/<tcp>  br0 10.213.K.1/24 ── vcK           uplink0 10.214.K.2/24
//!      stand-in resolver       vuK 10.214.K.1/24 ───────────────  upstream DnsServer :53
//!      + Docker's nat rules    ip_forward=1, MASQUERADE
//!  eth0 10.213.K.2/24 (ifindex != 2), default via 10.213.K.1
//! ```
//! Every interface is created directly inside its namespace, so nothing ever appears in the
//! machine's own namespace.

use super::dns::{DnsServer, DnsServerBuilder};
use super::json::Json;
use super::netns::require_root;
use super::netns::{
    cleanup_stale_namespaces, ifindex, netns_path, next_id, ns_identity, ns_run, ns_run_timeout,
    run, run_timeout, CmdOutput, NS_PREFIX,
};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The resolver address Docker gives containers.
pub const DOCKER_RESOLVER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);

static SERIAL: Mutex<()> = Mutex::new(());

/// Serializes heavy tests (poison-tolerant: a failed test does not fail the next ones).
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Path of the binary under test: `$DNSREDIR_BIN` when set (e.g. a release build), otherwise
/// the one cargo built for this test.
pub fn dnsredir_bin() -> String {
    std::env::var("DNSREDIR_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_dnsredir").to_string())
}

/// Runs the tool (60 s timeout): (exit code, stdout, stderr). Exit code -1: killed by a signal.
pub fn run_dnsredir<S: AsRef<str>>(args: &[S]) -> (i32, String, String) {
    let bin = dnsredir_bin();
    let mut argv = vec![bin.as_str()];
    argv.extend(args.iter().map(|s| s.as_ref()));
    match run_timeout(&argv, Duration::from_secs(60)) {
        Ok(CmdOutput {
            code,
            stdout,
            stderr,
        }) => (code, stdout, stderr),
        Err(e) => panic!("running dnsredir: {e}"),
    }
}

/// `tc filter show dev DEV ingress` inside `ns` (empty string when there is no clsact qdisc).
pub fn tc_filters(ns: &str, dev: &str) -> String {
    match ns_run_timeout(
        ns,
        &["tc", "filter", "show", "dev", dev, "ingress"],
        Duration::from_secs(10),
    ) {
        Ok(o) => o.stdout + &o.stderr,
        Err(e) => panic!("tc filter show: {e}"),
    }
}

/// Runs the tool like [`run_dnsredir`]; panics with its output unless it exits 0, else its
/// (stdout, stderr).
fn run_dnsredir_ok(args: &[String]) -> (String, String) {
    let (code, out, err) = run_dnsredir(args);
    assert_eq!(
        code, 0,
        "dnsredir {args:?} failed\nstdout: {out}\nstderr: {err}"
    );
    (out, err)
}

/// Number of filters named like `dnsredir*` on `dev` ingress in `ns`.
pub fn count_dnsredir_filters(ns: &str, dev: &str) -> usize {
    tc_filters(ns, dev)
        .lines()
        .filter(|l| l.contains("dnsredir"))
        .count()
}

/// Whether `dev` in `ns` has a clsact qdisc.
pub fn has_clsact(ns: &str, dev: &str) -> bool {
    ns_run(ns, &["tc", "qdisc", "show", "dev", dev])
        .map(|o| o.contains("clsact"))
        .unwrap_or(false)
}

/// One emulated Docker container on a user-defined network, with its embedded resolver
/// (a stand-in DnsServer) and an upstream resolver host. Drop tears everything down.
pub struct DockerLikeNet {
    /// Namespace names (also under /var/run/netns/).
    pub ctr_ns: String,
    pub up_ns: String,
    pub bridge_addr: Ipv4Addr,
    pub ctr_addr: Ipv4Addr,
    /// The upstream resolver host's address (what `--upstream` gets).
    pub up_addr: Ipv4Addr,
    pub eth0_ifindex: u32,
    /// dockerd's (the stand-in's) random ports on 127.0.0.11.
    pub dockerd_udp_port: u16,
    pub dockerd_tcp_port: u16,
    /// Identity of the stand-in (answer for every other name) and of the upstream.
    pub stand_in_answer: Ipv4Addr,
    pub upstream_answer: Ipv4Addr,
    /// What the stand-in answers for the single-label name `c2`.
    pub c2_addr: Ipv4Addr,
    /// Process in `ctr` (`sleep 600`) for `--pid`.
    pub ctr_pid: u32,
    stand_in: Option<DnsServer>,
    upstream: Option<DnsServer>,
    // Declared after the servers, so dropped after them: their namespaces outlive them.
    owned: Owned,
}

/// What a topology holds besides its servers, released on Drop: the processes it started in
/// the container, its namespaces (deleted in reverse order), then the serialization lock.
struct Owned {
    children: Vec<Child>,
    namespaces: Vec<String>,
    _serial: MutexGuard<'static, ()>,
}

impl Drop for Owned {
    fn drop(&mut self) {
        for mut c in self.children.drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in self.namespaces.drain(..).rev() {
            if let Err(e) = run(&["ip", "netns", "del", &ns]) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

fn random_port_pair() -> (u16, u16) {
    let r = super::dns::random_u64();
    let a = 30000 + (r % 30001) as u16;
    let mut b = 30000 + ((r >> 20) % 30001) as u16;
    if b == a {
        b = if a == 60000 { 30000 } else { a + 1 };
    }
    (a, b)
}

impl DockerLikeNet {
    /// The topology, for a test that needs root ([`require_root`] first); panics (after
    /// cleaning up) when it cannot be built.
    pub fn new() -> DockerLikeNet {
        require_root();
        let serial = serial();
        cleanup_stale_namespaces();
        let id = next_id();
        let k = ((std::process::id() + id * 7) % 200 + 20) as u8;
        let (udp, tcp) = random_port_pair();
        let base = format!("{NS_PREFIX}{}x{id}", std::process::id());
        let mut net = DockerLikeNet {
            ctr_ns: format!("{base}c"),
            up_ns: format!("{base}u"),
            bridge_addr: Ipv4Addr::new(10, 213, k, 1),
            ctr_addr: Ipv4Addr::new(10, 213, k, 2),
            c2_addr: Ipv4Addr::new(10, 213, k, 3),
            up_addr: Ipv4Addr::new(10, 214, k, 2),
            eth0_ifindex: 0,
            dockerd_udp_port: udp,
            dockerd_tcp_port: tcp,
            stand_in_answer: Ipv4Addr::new(198, 51, 100, k),
            upstream_answer: Ipv4Addr::new(203, 0, 113, k),
            ctr_pid: 0,
            stand_in: None,
            upstream: None,
            owned: Owned {
                children: Vec::new(),
                namespaces: Vec::new(),
                _serial: serial,
            },
        };
        // On error `net` is dropped here: everything built so far goes away.
        if let Err(e) = net.setup(id, k, &format!("{base}h")) {
            panic!("building the Docker-like topology: {e}");
        }
        net
    }

    /// [`Self::new`], then [`Self::attach`] with `extra`.
    pub fn attached(extra: &[&str]) -> DockerLikeNet {
        let net = Self::new();
        net.attach(extra);
        net
    }

    fn setup(&mut self, id: u32, k: u8, host_ns: &str) -> Result<(), String> {
        for ns in [host_ns, &self.ctr_ns, &self.up_ns] {
            run(&["ip", "netns", "add", ns])?;
            self.owned.namespaces.push(ns.to_string());
            run(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
        }
        let (h, c, u) = (host_ns, self.ctr_ns.clone(), self.up_ns.clone());
        let vc = format!("vc{id}");
        let vu = format!("vu{id}");
        // An address in a /24 on `dev` in namespace `ns`, and the link up.
        let addr_up = |ns: &str, a: Ipv4Addr, dev: &str| -> Result<(), String> {
            run(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{a}/24"),
                "dev",
                dev,
            ])?;
            run(&["ip", "-n", ns, "link", "set", dev, "up"]).map(|_| ())
        };
        // The container's eth0 gets a high ifindex, as under Docker (never 2).
        // (iproute2/kernel honour the peer's index only when the first end's is given too.)
        let eth0_index = (40 + id % 200).to_string();
        let vc_index = (41 + id % 200).to_string();
        run(&[
            "ip",
            "-n",
            h,
            "link",
            "add",
            &vc,
            "index",
            &vc_index,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &c,
            "index",
            &eth0_index,
        ])?;
        run(&["ip", "-n", h, "link", "add", "br0", "type", "bridge"])?;
        addr_up(h, self.bridge_addr, "br0")?;
        run(&["ip", "-n", h, "link", "set", &vc, "master", "br0", "up"])?;
        run(&[
            "ip", "-n", h, "link", "add", &vu, "type", "veth", "peer", "name", "uplink0", "netns",
            &u,
        ])?;
        addr_up(h, Ipv4Addr::new(10, 214, k, 1), &vu)?;
        addr_up(&u, self.up_addr, "uplink0")?;
        ns_run(h, &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        let subnet = format!("10.213.{k}.0/24");
        ns_run(
            h,
            &[
                "iptables",
                "-t",
                "nat",
                "-A",
                "POSTROUTING",
                "-s",
                &subnet,
                "!",
                "-o",
                "br0",
                "-j",
                "MASQUERADE",
            ],
        )?;
        // A wrong checksum must get the packet dropped, as a real NIC's would.
        ns_run(h, &["ethtool", "-K", &vc, "tx", "off"])?;
        ns_run(h, &["ethtool", "-K", &vu, "tx", "off"])?;
        ns_run(&u, &["ethtool", "-K", "uplink0", "tx", "off"])?;

        addr_up(&c, self.ctr_addr, "eth0")?;
        run(&[
            "ip",
            "-n",
            &c,
            "route",
            "add",
            "default",
            "via",
            &self.bridge_addr.to_string(),
        ])?;
        self.eth0_ifindex = ifindex(&c, "eth0")?;
        if self.eth0_ifindex == 2 {
            return Err("the container's eth0 got ifindex 2".into());
        }
        self.add_docker_nat_rules()?;

        self.stand_in = Some(
            DnsServerBuilder::new(&c, self.stand_in_answer)
                .udp(SocketAddr::new(
                    DOCKER_RESOLVER.into(),
                    self.dockerd_udp_port,
                ))
                .tcp(SocketAddr::new(
                    DOCKER_RESOLVER.into(),
                    self.dockerd_tcp_port,
                ))
                .name("c2", self.c2_addr)
                .start()?,
        );
        self.upstream = Some(
            DnsServerBuilder::new(&u, self.upstream_answer)
                .udp(self.upstream_udp())
                .tcp(self.upstream_udp())
                .start()?,
        );
        self.ctr_pid = self.spawn_in_ctr(&["sleep", "600"])?;
        Ok(())
    }

    /// Docker's nat rules in the container, verbatim as Docker 20.10 (iptables-nft) writes them
    /// on a user-defined network: queries to 127.0.0.11:53 go to dockerd's port of their
    /// protocol, its replies leave from :53.
    fn add_docker_nat_rules(&self) -> Result<(), String> {
        let nat = |rule: &[&str]| {
            let mut argv = vec!["iptables", "-t", "nat"];
            argv.extend(rule);
            ns_run(&self.ctr_ns, &argv).map(|_| ())
        };
        nat(&["-N", "DOCKER_OUTPUT"])?;
        nat(&["-N", "DOCKER_POSTROUTING"])?;
        nat(&["-A", "OUTPUT", "-d", "127.0.0.11/32", "-j", "DOCKER_OUTPUT"])?;
        nat(&[
            "-A",
            "POSTROUTING",
            "-d",
            "127.0.0.11/32",
            "-j",
            "DOCKER_POSTROUTING",
        ])?;
        // TCP's rule first in each chain, as dockerd writes them.
        for (proto, port) in [
            ("tcp", self.dockerd_tcp_port),
            ("udp", self.dockerd_udp_port),
        ] {
            let (to, sport) = (format!("{DOCKER_RESOLVER}:{port}"), port.to_string());
            nat(&[
                "-A",
                "DOCKER_OUTPUT",
                "-d",
                "127.0.0.11/32",
                "-p",
                proto,
                "-m",
                proto,
                "--dport",
                "53",
                "-j",
                "DNAT",
                "--to-destination",
                &to,
            ])?;
            nat(&[
                "-A",
                "DOCKER_POSTROUTING",
                "-s",
                "127.0.0.11/32",
                "-p",
                proto,
                "-m",
                proto,
                "--sport",
                &sport,
                "-j",
                "SNAT",
                "--to-source",
                ":53",
            ])?;
        }
        Ok(())
    }

    /// Starts `argv` inside `ctr` (`ip netns exec`), killed on Drop; returns its pid once the
    /// process is really in the namespace (`ip netns exec` execs, so the pid stays the same).
    /// It also gets SIGKILL when the spawning thread dies (PR_SET_PDEATHSIG), so a test process
    /// killed with SIGKILL leaves no stray process behind.
    pub fn spawn_in_ctr(&mut self, argv: &[&str]) -> Result<u32, String> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ctr_ns])
            .args(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| format!("spawn in ctr: {e}"))?;
        let pid = child.id();
        self.owned.children.push(child);
        let want = ns_identity(&netns_path(&self.ctr_ns));
        let deadline = Instant::now() + Duration::from_secs(5);
        while ns_identity(&format!("/proc/{pid}/ns/net")) != want {
            if Instant::now() > deadline {
                return Err(format!("process {pid} did not enter {}", self.ctr_ns));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(pid)
    }

    /// The upstream resolver's address with port 53.
    pub fn upstream_udp(&self) -> SocketAddr {
        SocketAddr::new(self.up_addr.into(), 53)
    }

    /// 127.0.0.11:53, the address applications in the container use.
    pub fn resolver(&self) -> SocketAddr {
        SocketAddr::new(DOCKER_RESOLVER.into(), 53)
    }

    pub fn ctr_netns_path(&self) -> String {
        netns_path(&self.ctr_ns)
    }

    pub fn stand_in(&self) -> &DnsServer {
        self.stand_in.as_ref().expect("stand-in resolver")
    }

    pub fn upstream(&self) -> &DnsServer {
        self.upstream.as_ref().expect("upstream resolver")
    }

    /// Stops the upstream resolver: nothing answers on its address any more (another server
    /// may bind it).
    pub fn stop_upstream(&mut self) {
        self.upstream.take();
    }

    /// `--pid P` followed by `rest`: a command line for this container.
    fn ctr_args(&self, rest: &[&str]) -> Vec<String> {
        let pid = self.ctr_pid.to_string();
        ["--pid", &pid]
            .iter()
            .chain(rest)
            .map(|s| s.to_string())
            .collect()
    }

    /// Runs the tool for this container: `dnsredir --pid P rest...` (see [`run_dnsredir`]).
    pub fn dnsredir(&self, rest: &[&str]) -> (i32, String, String) {
        run_dnsredir(&self.ctr_args(rest))
    }

    /// `dnsredir --pid P --upstream A extra...`: an attach that leaves dockerd's ports to the
    /// tool to find; panics with its output unless it exits 0, else its (stdout, stderr).
    pub fn attach_finding_ports(&self, extra: &[&str]) -> (String, String) {
        let up = self.up_addr.to_string();
        run_dnsredir_ok(&self.ctr_args(&[&["--upstream", up.as_str()][..], extra].concat()))
    }

    /// The attach arguments with explicit ports: `--pid P --dockerd-port U --dockerd-tcp-port T --upstream A`.
    pub fn attach_args(&self) -> Vec<String> {
        let (udp, tcp) = (
            self.dockerd_udp_port.to_string(),
            self.dockerd_tcp_port.to_string(),
        );
        let up = self.up_addr.to_string();
        self.ctr_args(&[
            "--dockerd-port",
            &udp,
            "--dockerd-tcp-port",
            &tcp,
            "--upstream",
            &up,
        ])
    }

    /// Attaches with [`Self::attach_args`] plus `extra`; panics with the tool's output unless it exits 0.
    pub fn attach(&self, extra: &[&str]) {
        let mut args = self.attach_args();
        args.extend(extra.iter().map(|s| s.to_string()));
        run_dnsredir_ok(&args);
    }

    /// `--pid P --detach`; panics unless it exits 0.
    pub fn detach(&self) {
        run_dnsredir_ok(&self.ctr_args(&["--detach"]));
    }

    /// `--pid P --status --json`: (exit code, parsed JSON). Panics if stdout is not JSON.
    pub fn status_json(&self) -> (i32, Json) {
        let (code, out, err) = run_dnsredir(&self.ctr_args(&["--status", "--json"]));
        let j = Json::parse(out.trim()).unwrap_or_else(|e| {
            panic!("--status --json: {e}\nexit {code}\nstdout: {out}\nstderr: {err}")
        });
        (code, j)
    }

    /// [`Self::status_json`] of an attached container: panics unless it exits 0.
    pub fn attached_status(&self) -> Json {
        let (code, j) = self.status_json();
        assert_eq!(code, 0, "--status --json of an attached container: {j}");
        j
    }

    pub fn tc_filters(&self, dev: &str) -> String {
        tc_filters(&self.ctr_ns, dev)
    }

    /// dnsredir filters on `dev` ingress in the container.
    pub fn dnsredir_filters(&self, dev: &str) -> usize {
        count_dnsredir_filters(&self.ctr_ns, dev)
    }

    /// A `dig` inside the container: `dig +short +tries=1 +time=2 [+tcp] @server name`, the A
    /// addresses it printed (Err with dig's output when it failed or printed something else).
    pub fn dig(
        &self,
        ns: &str,
        server: Ipv4Addr,
        name: &str,
        tcp: bool,
    ) -> Result<Vec<Ipv4Addr>, String> {
        let at = format!("@{server}");
        let mut argv = vec!["dig", "+short", "+tries=1", "+time=2"];
        if tcp {
            argv.push("+tcp");
        }
        argv.extend([at.as_str(), name, "A"]);
        let o = ns_run_timeout(ns, &argv, Duration::from_secs(15))?;
        let addrs: Result<Vec<Ipv4Addr>, _> = o
            .stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.trim().parse())
            .collect();
        match addrs {
            Ok(a) if o.code == 0 && !a.is_empty() => Ok(a),
            _ => Err(format!(
                "dig {argv:?} exited {}: {}{}",
                o.code,
                o.stdout.trim(),
                o.stderr.trim()
            )),
        }
    }
}
