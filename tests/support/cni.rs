//! The CNI-style topology of the nameservers path's end-to-end tests: a container namespace
//! with eth0 (a veth to a bridge host), no NAT rules and no embedded resolver, whose
//! resolv.conf would name the bridge host's nameserver; an upstream host behind the bridge
//! host. Each server answers every name with its own address.

use super::netns::{ns_run, run, Netns};
use super::{query_a, run_dnsredir, DnsServer, DnsServerBuilder};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(2);

/// The topology. Fields drop in order: servers first, then the namespaces.
pub struct Cni {
    pub nameserver: DnsServer,
    /// The same bridge host, another port: must stay untouched.
    pub other_port: DnsServer,
    pub upstream: DnsServer,
    pub ctr: Netns,
    _host: Netns,
    _up: Netns,
    pub ns_addr: Ipv4Addr,
    pub up_addr: Ipv4Addr,
}

pub const OTHER_PORT: u16 = 5300;

impl Cni {
    pub fn new() -> Cni {
        super::netns::cleanup_stale_namespaces();
        let host = Netns::new("h").expect("netns");
        let ctr = Netns::new("c").expect("netns");
        let up = Netns::new("u").expect("netns");
        let k = (std::process::id() % 200 + 20) as u8;
        let ns_addr = Ipv4Addr::new(10, 215, k, 1);
        let ctr_addr = Ipv4Addr::new(10, 215, k, 2);
        let uplink = Ipv4Addr::new(10, 216, k, 1);
        let up_addr = Ipv4Addr::new(10, 216, k, 2);
        let (h, c, u) = (&host.name, &ctr.name, &up.name);
        let tag = super::netns::next_id();
        let vc = format!("egc{tag}");
        let vu = format!("egu{tag}");
        let sh = |argv: &[&str]| run(argv).unwrap_or_else(|e| panic!("{e}"));
        let nsh = |ns: &str, argv: &[&str]| {
            ns_run(ns, argv).unwrap_or_else(|e| panic!("{e}"));
        };
        sh(&[
            "ip", "-n", h, "link", "add", &vc, "type", "veth", "peer", "name", "eth0", "netns", c,
        ]);
        sh(&["ip", "-n", h, "link", "add", "br0", "type", "bridge"]);
        sh(&[
            "ip",
            "-n",
            h,
            "addr",
            "add",
            &format!("{ns_addr}/24"),
            "dev",
            "br0",
        ]);
        sh(&["ip", "-n", h, "link", "set", "br0", "up"]);
        sh(&["ip", "-n", h, "link", "set", &vc, "master", "br0", "up"]);
        sh(&[
            "ip", "-n", h, "link", "add", &vu, "type", "veth", "peer", "name", "uplink0", "netns",
            u,
        ]);
        sh(&[
            "ip",
            "-n",
            h,
            "addr",
            "add",
            &format!("{uplink}/24"),
            "dev",
            &vu,
        ]);
        sh(&["ip", "-n", h, "link", "set", &vu, "up"]);
        sh(&[
            "ip",
            "-n",
            u,
            "addr",
            "add",
            &format!("{up_addr}/24"),
            "dev",
            "uplink0",
        ]);
        sh(&["ip", "-n", u, "link", "set", "uplink0", "up"]);
        sh(&[
            "ip",
            "-n",
            u,
            "route",
            "add",
            "default",
            "via",
            &uplink.to_string(),
        ]);
        nsh(h, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        sh(&[
            "ip",
            "-n",
            c,
            "addr",
            "add",
            &format!("{ctr_addr}/24"),
            "dev",
            "eth0",
        ]);
        sh(&["ip", "-n", c, "link", "set", "eth0", "up"]);
        sh(&[
            "ip",
            "-n",
            c,
            "route",
            "add",
            "default",
            "via",
            &ns_addr.to_string(),
        ]);
        // A wrong checksum must get the packet dropped, as a real NIC's would.
        nsh(h, &["ethtool", "-K", &vc, "tx", "off"]);
        nsh(c, &["ethtool", "-K", "eth0", "tx", "off"]);
        nsh(h, &["ethtool", "-K", &vu, "tx", "off"]);
        nsh(u, &["ethtool", "-K", "uplink0", "tx", "off"]);

        let server = |ns: &str, addr: SocketAddr, answer: Ipv4Addr| {
            DnsServerBuilder::new(ns, answer)
                .udp(addr)
                .tcp(addr)
                .start()
                .unwrap_or_else(|e| panic!("dns server: {e}"))
        };
        let nameserver = server(h, (ns_addr, 53).into(), Ipv4Addr::new(198, 51, 100, k));
        let other_port = server(h, (ns_addr, OTHER_PORT).into(), Ipv4Addr::new(192, 0, 2, k));
        let upstream = server(u, (up_addr, 53).into(), Ipv4Addr::new(203, 0, 113, k));
        Cni {
            nameserver,
            other_port,
            upstream,
            ctr,
            _host: host,
            _up: up,
            ns_addr,
            up_addr,
        }
    }

    pub fn ask(&self, server: SocketAddrV4, tcp: bool) -> Vec<Ipv4Addr> {
        self.ask_name(server, "example.com", tcp)
    }

    /// The A records the container gets for `name` from `server`.
    pub fn ask_name(&self, server: SocketAddrV4, name: &str, tcp: bool) -> Vec<Ipv4Addr> {
        query_a(&self.ctr.name, server.into(), name, tcp, TIMEOUT)
            .unwrap_or_else(|e| panic!("query for {name} to {server} (tcp {tcp}): {e}"))
    }

    pub fn dnsredir(&self, extra: &[&str]) -> (i32, String, String) {
        let path = self.ctr.path();
        let mut args = vec!["--netns", path.as_str()];
        args.extend_from_slice(extra);
        run_dnsredir(&args)
    }
}
