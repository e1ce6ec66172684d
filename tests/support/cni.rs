//! The CNI-style topology of the nameservers path's end-to-end tests: a container namespace
//! with eth0 (a veth to a bridge host), no NAT rules and no embedded resolver, whose
//! resolv.conf would name the bridge host's nameserver; an upstream host behind the bridge
//! host. Each server answers every name with its own address. [`Cni::dual_stack`] adds an IPv6
//! layer on the same links: ULA addresses, an IPv6 nameserver and an IPv6 upstream. A test may
//! start another server on the bridge host's uplink address ([`Cni::other`], with
//! [`dns_server`]): an address no resolv.conf names, as a hard-coded resolver would be.
//! All links are checksum-strict (tx offload off on both ends).

use super::docker::serial;
use super::netns::{cleanup_stale_namespaces, next_id, ns_run, run, Netns};
use super::{query_a, require_root, run_dnsredir, DnsServer, DnsServerBuilder};
use std::fmt::Display;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(2);

pub const OTHER_PORT: u16 = 5300;

/// The topology, holding the serialization lock. Fields drop in order: servers first, then
/// the namespaces, then the lock.
pub struct Cni {
    pub nameserver: DnsServer,
    /// The same bridge host, another port: must stay untouched.
    pub other_port: DnsServer,
    pub upstream: DnsServer,
    v6: Option<Ipv6Layer>,
    pub ctr: Netns,
    /// The bridge host.
    pub host: Netns,
    _up: Netns,
    /// The nameserver, port 53 of the bridge host's br0 address.
    pub ns: SocketAddrV4,
    pub up: SocketAddrV4,
    /// The container's eth0 address.
    pub ctr_addr: Ipv4Addr,
    /// Port 53 of the bridge host's uplink address: no server unless a test starts one.
    pub other: SocketAddrV4,
    _serial: MutexGuard<'static, ()>,
}

/// The IPv6 servers of [`Cni::dual_stack`]: they answer with IPv4 addresses of their own.
pub struct Ipv6Layer {
    pub nameserver: DnsServer,
    pub upstream: DnsServer,
    pub ns: SocketAddrV6,
    pub up: SocketAddrV6,
    pub ctr_addr: Ipv6Addr,
    /// As [`Cni::other`].
    pub other: SocketAddrV6,
}

impl Cni {
    /// The IPv4-only topology (eth0 has no global IPv6 address). Checks for root.
    pub fn new() -> Cni {
        Self::build(false)
    }

    /// The topology with IPv6 too. Checks for root.
    pub fn dual_stack() -> Cni {
        Self::build(true)
    }

    /// [`Cni::new`], then [`Cni::attach`] with `extra`.
    pub fn attached(extra: &[&str]) -> Cni {
        let net = Self::new();
        net.attach(extra);
        net
    }

    fn build(dual_stack: bool) -> Cni {
        require_root();
        let serial = serial();
        cleanup_stale_namespaces();
        let host = Netns::new("h").expect("netns");
        let ctr = Netns::new("c").expect("netns");
        let up = Netns::new("u").expect("netns");
        let k = (std::process::id() % 200 + 20) as u8;
        let v4 = Addresses::v4(k);
        let v6 = dual_stack.then(|| Addresses::v6(k));
        let tag = next_id();
        let (vc, vu) = (format!("egc{tag}"), format!("egu{tag}"));
        let links = Links {
            h: &host.name,
            c: &ctr.name,
            u: &up.name,
            vc: &vc,
            vu: &vu,
        };
        links.create();
        links.address(&v4);
        if let Some(v6) = &v6 {
            links.address(v6);
        }
        links.set_up();
        links.route(&v4);
        if let Some(v6) = &v6 {
            links.route(v6);
            links.wait_for_path(v6);
        }

        let (h, u) = (links.h, links.u);
        let ns = SocketAddrV4::new(v4.bridge, 53);
        let upa = SocketAddrV4::new(v4.up, 53);
        let v6 = v6.map(|v6| {
            let ns = SocketAddrV6::new(v6.bridge, 53, 0, 0);
            let up = SocketAddrV6::new(v6.up, 53, 0, 0);
            Ipv6Layer {
                nameserver: dns_server(h, ns, Ipv4Addr::new(198, 51, 101, k)),
                upstream: dns_server(u, up, Ipv4Addr::new(203, 0, 114, k)),
                ns,
                up,
                ctr_addr: v6.ctr,
                other: SocketAddrV6::new(v6.uplink, 53, 0, 0),
            }
        });
        let other = SocketAddrV4::new(v4.bridge, OTHER_PORT);
        Cni {
            nameserver: dns_server(h, ns, Ipv4Addr::new(198, 51, 100, k)),
            other_port: dns_server(h, other, Ipv4Addr::new(192, 0, 2, k)),
            upstream: dns_server(u, upa, Ipv4Addr::new(203, 0, 113, k)),
            v6,
            ctr,
            host,
            _up: up,
            ns,
            up: upa,
            ctr_addr: v4.ctr,
            other: SocketAddrV4::new(v4.uplink, 53),
            _serial: serial,
        }
    }

    /// The IPv6 servers; only a [`Cni::dual_stack`] has them.
    pub fn v6(&self) -> &Ipv6Layer {
        self.v6
            .as_ref()
            .expect("an IPv6 layer: build the topology with Cni::dual_stack")
    }

    pub fn ask(&self, server: SocketAddrV4, tcp: bool) -> Vec<Ipv4Addr> {
        self.ask_name(server, "example.com", tcp)
    }

    /// The A records the container gets for `name` from `server`.
    pub fn ask_name(&self, server: SocketAddrV4, name: &str, tcp: bool) -> Vec<Ipv4Addr> {
        query_a(&self.ctr.name, server.into(), name, tcp, TIMEOUT)
            .unwrap_or_else(|e| panic!("query for {name} to {server} (tcp {tcp}): {e}"))
    }

    /// Over UDP and over TCP, the container's A query for example.com to `server` (of either
    /// family) gets `answer` and nothing else.
    pub fn assert_answers(&self, server: impl Into<SocketAddr>, answer: Ipv4Addr, what: &str) {
        let server = server.into();
        for tcp in [false, true] {
            let got = match server {
                SocketAddr::V4(s) => self.ask(s, tcp),
                SocketAddr::V6(s) => self.dig_a(s, tcp),
            };
            assert_eq!(got, vec![answer], "{what} ({server}, tcp {tcp})");
        }
    }

    /// `dig A example.com` at a server: the answers of a NOERROR reply.
    pub fn dig_a(&self, server: impl Into<SocketAddr>, tcp: bool) -> Vec<Ipv4Addr> {
        let server = server.into();
        let (status, answers) = self.dig(server, "A", tcp);
        assert_eq!(
            status, "NOERROR",
            "dig A at {server} (tcp {tcp}): {answers:?}"
        );
        answers
            .iter()
            .map(|a| {
                a.parse()
                    .unwrap_or_else(|e| panic!("dig's answer {a}: {e}"))
            })
            .collect()
    }

    /// `dig TYPE example.com` at a server from the container: (status, answers). (The test
    /// harness's own client speaks IPv4 only.) dig takes a UDP answer only from the address
    /// and port it asked.
    pub fn dig(
        &self,
        server: impl Into<SocketAddr>,
        qtype: &str,
        tcp: bool,
    ) -> (String, Vec<String>) {
        let server = server.into();
        let mut argv = vec![
            "dig".to_string(),
            format!("@{}", server.ip()),
            "-p".into(),
            server.port().to_string(),
            "example.com".into(),
            qtype.into(),
            "+time=2".into(),
            "+tries=1".into(),
            "+noall".into(),
            "+comments".into(),
            "+answer".into(),
        ];
        if tcp {
            argv.push("+tcp".into());
        }
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let out = ns_run(&self.ctr.name, &argv).unwrap_or_else(|e| panic!("dig: {e}"));
        let status = out
            .split("status: ")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .unwrap_or_else(|| panic!("dig {argv:?} said: {out}"))
            .to_string();
        let answers = out
            .lines()
            .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
            .filter_map(|l| l.split_whitespace().last().map(String::from))
            .collect();
        (status, answers)
    }

    /// `dnsredir --netns CTR EXTRA...`: (exit code, stdout, stderr).
    pub fn dnsredir(&self, extra: &[&str]) -> (i32, String, String) {
        let path = self.ctr.path();
        let mut args = vec!["--netns", path.as_str()];
        args.extend_from_slice(extra);
        run_dnsredir(&args)
    }

    /// Takes over the nameserver for the upstream, with `extra` options; must succeed:
    /// (stdout, stderr).
    pub fn attach(&self, extra: &[&str]) -> (String, String) {
        let (ns, up) = (self.ns.to_string(), self.up.to_string());
        let mut args = vec!["--resolver", &ns, "--upstream", &up];
        args.extend_from_slice(extra);
        let (code, out, err) = self.dnsredir(&args);
        assert_eq!(code, 0, "attach {extra:?}: {out}{err}");
        (out, err)
    }

    /// `--detach`; must succeed: its stdout.
    pub fn detach(&self) -> String {
        let (code, out, err) = self.dnsredir(&["--detach"]);
        assert_eq!(code, 0, "detach: {out}{err}");
        out
    }
}

/// A UDP and TCP server on `addr` in `ns` that answers every A query with `answer`.
pub fn dns_server(ns: &str, addr: impl Into<SocketAddr>, answer: Ipv4Addr) -> DnsServer {
    let addr = addr.into();
    DnsServerBuilder::new(ns, answer)
        .udp(addr)
        .tcp(addr)
        .start()
        .unwrap_or_else(|e| panic!("dns server on {addr}: {e}"))
}

/// What `ip` and sysctl need to know of an address family.
trait Family: Copy + Display {
    /// `ip`'s family option.
    const IP: &'static str;
    const PREFIX_LEN: u8;
    /// Extra words for `ip addr add`.
    const ADDR_FLAGS: &'static str;
    /// The sysctl that makes the bridge host route between its links.
    const FORWARDING: &'static str;
}

impl Family for Ipv4Addr {
    const IP: &'static str = "-4";
    const PREFIX_LEN: u8 = 24;
    const ADDR_FLAGS: &'static str = "";
    const FORWARDING: &'static str = "net.ipv4.ip_forward";
}

impl Family for Ipv6Addr {
    const IP: &'static str = "-6";
    const PREFIX_LEN: u8 = 64;
    /// No duplicate address detection: the address is usable at once.
    const ADDR_FLAGS: &'static str = "nodad";
    const FORWARDING: &'static str = "net.ipv6.conf.all.forwarding";
}

/// One family's addresses: the bridge host's on br0 (the nameserver's) and on its uplink, the
/// container's (on br0's subnet) and the upstream host's (on the uplink's).
struct Addresses<A> {
    bridge: A,
    ctr: A,
    uplink: A,
    up: A,
}

impl Addresses<Ipv4Addr> {
    fn v4(k: u8) -> Self {
        let a = |subnet, host| Ipv4Addr::new(10, subnet, k, host);
        Addresses {
            bridge: a(215, 1),
            ctr: a(215, 2),
            uplink: a(216, 1),
            up: a(216, 2),
        }
    }
}

impl Addresses<Ipv6Addr> {
    fn v6(k: u8) -> Self {
        let a = |subnet, host| Ipv6Addr::new(0xfd00, subnet, k.into(), 0, 0, 0, 0, host);
        Addresses {
            bridge: a(0xdead, 1),
            ctr: a(0xdead, 2),
            uplink: a(0xbeef, 1),
            up: a(0xbeef, 2),
        }
    }
}

/// The three namespaces (bridge host, container, upstream host) and the bridge host's veth
/// ends towards the container (a port of br0) and towards the upstream host.
#[derive(Clone, Copy)]
struct Links<'a> {
    h: &'a str,
    c: &'a str,
    u: &'a str,
    vc: &'a str,
    vu: &'a str,
}

impl Links<'_> {
    /// The veth pairs (eth0 in the container, uplink0 in the upstream host) and the bridge.
    fn create(&self) {
        let Links { h, c, u, vc, vu } = *self;
        sh(&format!(
            "ip -n {h} link add {vc} type veth peer name eth0 netns {c}"
        ));
        sh(&format!("ip -n {h} link add br0 type bridge"));
        sh(&format!("ip -n {h} link set {vc} master br0"));
        sh(&format!(
            "ip -n {h} link add {vu} type veth peer name uplink0 netns {u}"
        ));
        // A wrong checksum must get the packet dropped, as a real NIC's would.
        for (ns, dev) in [(h, vc), (c, "eth0"), (h, vu), (u, "uplink0")] {
            sh(&format!("ip netns exec {ns} ethtool -K {dev} tx off"));
        }
    }

    /// One family's address on each link.
    fn address<A: Family>(&self, a: &Addresses<A>) {
        let Links { h, c, u, vu, .. } = *self;
        for (ns, dev, addr) in [
            (h, "br0", a.bridge),
            (h, vu, a.uplink),
            (c, "eth0", a.ctr),
            (u, "uplink0", a.up),
        ] {
            sh(&format!(
                "ip -n {ns} {} addr add {addr}/{} dev {dev} {}",
                A::IP,
                A::PREFIX_LEN,
                A::ADDR_FLAGS
            ));
        }
    }

    fn set_up(&self) {
        let Links { h, c, u, vc, vu } = *self;
        for (ns, dev) in [(h, "br0"), (h, vc), (h, vu), (c, "eth0"), (u, "uplink0")] {
            sh(&format!("ip -n {ns} link set {dev} up"));
        }
    }

    /// One family's default routes of the container and the upstream host through the
    /// bridge host, which forwards.
    fn route<A: Family>(&self, a: &Addresses<A>) {
        let Links { h, c, u, .. } = *self;
        for (ns, via) in [(c, a.bridge), (u, a.uplink)] {
            sh(&format!("ip -n {ns} {} route add default via {via}", A::IP));
        }
        sh(&format!("ip netns exec {h} sysctl -qw {}=1", A::FORWARDING));
    }

    /// The first forwarded packets of a family can go while the bridge host's neighbours are
    /// still being resolved (seen with IPv6): the path must carry packets before a test's
    /// probe (with its 1 s wait) counts.
    fn wait_for_path<A: Family>(&self, a: &Addresses<A>) {
        let up = a.up.to_string();
        let deadline = Instant::now() + Duration::from_secs(10);
        while ns_run(self.c, &["ping", A::IP, "-c1", "-W1", &up]).is_err() {
            assert!(Instant::now() < deadline, "no path to {up}");
        }
    }
}

/// Runs a command line (words split on spaces); a failure ends the test.
fn sh(cmd: &str) {
    let argv: Vec<&str> = cmd.split_whitespace().collect();
    run(&argv).unwrap_or_else(|e| panic!("{e}"));
}
