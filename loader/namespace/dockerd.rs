//! Docker's embedded resolver in the namespace: where its DNAT sends 127.0.0.11:53 (asked of
//! the NAT itself), else the ports of the sockets bound to 127.0.0.11.

use super::{list, NamespaceError};
use crate::net::conntrack::{self, Tuple};
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

/// Where applications in a Docker container send DNS (`/etc/resolv.conf`).
pub const DOCKER_RESOLVER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResolverPorts {
    pub udp: Option<u16>,
    pub tcp: Option<u16>,
}

/// Ports bound on `addr` in a /proc/net/{udp,tcp} table; for TCP only listening sockets.
pub fn ports_in_proc_table(table: &str, addr: Ipv4Addr, tcp: bool) -> Vec<u16> {
    let want = format!("{:08X}", u32::from_ne_bytes(addr.octets()));
    let mut ports: Vec<u16> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let local = fields.nth(1)?;
            let state = fields.nth(1)?;
            let (ip, port) = local.split_once(':')?;
            if !ip.eq_ignore_ascii_case(&want) || (tcp && state != "0A") {
                return None;
            }
            u16::from_str_radix(port, 16).ok()
        })
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// A protocol dockerd's embedded resolver serves, with the flag that names its port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Udp,
    Tcp,
}

impl Proto {
    pub fn name(self) -> &'static str {
        match self {
            Proto::Udp => "UDP",
            Proto::Tcp => "TCP",
        }
    }

    /// The command-line flag that gives dockerd's port for this protocol.
    pub fn flag(self) -> &'static str {
        match self {
            Proto::Udp => "--dockerd-port",
            Proto::Tcp => "--dockerd-tcp-port",
        }
    }

    fn table(self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        }
    }
}

/// How dockerd's port for one protocol was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortSource {
    /// On the command line.
    Given(u16),
    /// Where Docker's DNAT sends 127.0.0.11:53 (a probe, then its conntrack entry).
    Nat(u16),
    /// The sockets bound to 127.0.0.11 (none, one or several): when the NAT told nothing.
    Sockets(Vec<u16>),
}

impl PortSource {
    /// The port to redirect, when it is certain.
    pub fn port(&self) -> Option<u16> {
        match self {
            PortSource::Given(p) | PortSource::Nat(p) => Some(*p),
            PortSource::Sockets(ports) => match ports.as_slice() {
                [p] => Some(*p),
                _ => None,
            },
        }
    }

    /// Several candidates and nothing to choose between them.
    pub fn ambiguous(&self) -> Option<&[u16]> {
        match self {
            PortSource::Sockets(ports) if ports.len() > 1 => Some(ports),
            _ => None,
        }
    }

    /// How the port was found, for --verbose.
    pub fn how(&self) -> String {
        match self {
            PortSource::Given(_) => "given".to_string(),
            PortSource::Nat(p) => {
                format!("from Docker's NAT ({DOCKER_RESOLVER}:53 goes to {DOCKER_RESOLVER}:{p})")
            }
            PortSource::Sockets(ports) => match ports.as_slice() {
                [] => format!("none: Docker's NAT sends nothing elsewhere and no socket listens on {DOCKER_RESOLVER}"),
                [_] => format!("from the sockets on {DOCKER_RESOLVER}"),
                many => format!(
                    "unknown: Docker's NAT did not say and several sockets listen on {DOCKER_RESOLVER} (ports {})",
                    list(many)
                ),
            },
        }
    }
}

/// dockerd's port for one protocol, and why the NAT probe told nothing when it did not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortFinding {
    pub proto: Proto,
    pub source: PortSource,
    pub nat_problem: Option<String>,
}

impl PortFinding {
    /// The one line for a protocol left with dockerd because its port is ambiguous.
    pub fn left_with_dockerd(&self) -> Option<String> {
        let ports = self.source.ambiguous()?;
        let name = self.proto.name();
        Some(format!(
            "{name} stays with dockerd: several {name} sockets listen on {DOCKER_RESOLVER} (ports {}) and Docker's NAT did not say which is dockerd's; pass {} PORT to redirect {name} too",
            list(ports),
            self.proto.flag()
        ))
    }
}

/// dockerd's port for `proto`: the one given, else where Docker's NAT sends 127.0.0.11:53,
/// else the sockets bound to 127.0.0.11. Only reading /proc can fail.
pub fn find_port(proto: Proto, given: Option<u16>) -> Result<PortFinding, NamespaceError> {
    if let Some(port) = given {
        return Ok(PortFinding {
            proto,
            source: PortSource::Given(port),
            nat_problem: None,
        });
    }
    let nat_problem = match nat_port(proto) {
        Ok(Some(port)) => {
            return Ok(PortFinding {
                proto,
                source: PortSource::Nat(port),
                nat_problem: None,
            })
        }
        Ok(None) => None,
        Err(problem) => Some(problem),
    };
    Ok(PortFinding {
        proto,
        source: PortSource::Sockets(socket_ports(proto)?),
        nat_problem,
    })
}

/// The ports of the sockets bound to 127.0.0.11 in this namespace (TCP: listening ones).
pub fn socket_ports(proto: Proto) -> Result<Vec<u16>, NamespaceError> {
    let path = PathBuf::from(format!("/proc/thread-self/net/{}", proto.table()));
    let table = read_proc_table(&path).map_err(|source| NamespaceError::Proc { path, source })?;
    Ok(ports_in_proc_table(
        &table,
        DOCKER_RESOLVER,
        proto == Proto::Tcp,
    ))
}

/// A /proc/net socket table in as few reads as it takes: each read walks the kernel's socket
/// hash from the start, ~1.6 ms for TCP's here, and `read_to_string` begins with 32 bytes
/// (measured: three reads, 5 ms of `--status`). A read that does not fill the buffer has
/// reached the end.
fn read_proc_table(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut table = Vec::new();
    loop {
        let start = table.len();
        table.resize(start + (256 << 10), 0);
        let n = file.read(&mut table[start..])?;
        table.truncate(start + n);
        if n < 256 << 10 {
            break;
        }
    }
    String::from_utf8(table).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// How long the TCP probe waits for its connection.
const TCP_PROBE_TIMEOUT: Duration = Duration::from_millis(300);

/// Where Docker's DNAT sends 127.0.0.11:53 for `proto`: a probe goes there from a fresh
/// socket (UDP: an empty datagram, which no resolver answers; TCP: a connection closed at
/// once), and the probe's conntrack entry says where it went. `Ok(None)`: no NAT to another
/// port on 127.0.0.11. `Err`: why the probe could not tell (for --verbose).
pub fn nat_port(proto: Proto) -> Result<Option<u16>, String> {
    let resolver = SocketAddrV4::new(DOCKER_RESOLVER, 53);
    let (ipproto, local) = match proto {
        Proto::Udp => {
            let local = udp_probe(resolver).map_err(|e| format!("UDP probe: {e}"))?;
            (libc::IPPROTO_UDP, local)
        }
        Proto::Tcp => {
            match TcpStream::connect_timeout(&resolver.into(), TCP_PROBE_TIMEOUT) {
                // Kept open until conntrack has answered; dropped (closed) after.
                Ok(stream) => {
                    let local = v4(stream.local_addr().map_err(|e| format!("TCP probe: {e}"))?)?;
                    let port = nat_target(libc::IPPROTO_TCP, local, resolver);
                    drop(stream);
                    return port;
                }
                // Nothing accepts on 127.0.0.11:53 or where the NAT sends it.
                Err(e) => return Err(format!("TCP probe to {resolver}: {e}")),
            }
        }
    };
    nat_target(ipproto, local, resolver)
}

fn udp_probe(resolver: SocketAddrV4) -> io::Result<SocketAddrV4> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    socket.send_to(&[], resolver)?;
    v4(socket.local_addr()?).map_err(io::Error::other)
}

fn v4(addr: std::net::SocketAddr) -> Result<SocketAddrV4, String> {
    match addr {
        std::net::SocketAddr::V4(a) => Ok(a),
        std::net::SocketAddr::V6(a) => Err(format!("the probe got an IPv6 address {a}")),
    }
}

fn nat_target(
    ipproto: i32,
    local: SocketAddrV4,
    resolver: SocketAddrV4,
) -> Result<Option<u16>, String> {
    let orig = Tuple {
        proto: ipproto as u8,
        src: local,
        dst: resolver,
    };
    match conntrack::reply_tuple(&orig) {
        Ok(Some(reply)) => Ok(dnat_port(&orig, &reply)),
        Ok(None) => Err("conntrack has no entry for the probe (no NAT in this namespace?)".into()),
        Err(e) => Err(format!("asking conntrack about the probe: {e}")),
    }
}

/// The port a DNAT sent `orig` to, from its reply tuple: replies then come from that port on
/// 127.0.0.11. `None` when the flow was not sent to another port of 127.0.0.11.
pub fn dnat_port(orig: &Tuple, reply: &Tuple) -> Option<u16> {
    let from = reply.src;
    (*from.ip() == DOCKER_RESOLVER && from.port() != orig.dst.port() && from.port() != 0)
        .then_some(from.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    const UDP: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  190: 0B00007F:A250 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 41234 2 0000000000000000 0
  201: 00000000:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 41235 2 0000000000000000 0
";
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0B00007F:9093 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 41230 1 0000000000000000 100 0 0 10 0
   1: 0B00007F:C001 0B00007F:9093 01 00000000:00000000 00:00000000 00000000     0        0 41299 1 0000000000000000 100 0 0 10 0
";
    #[test]
    fn finds_dockerds_udp_port() {
        assert_eq!(
            ports_in_proc_table(UDP, DOCKER_RESOLVER, false),
            vec![0xA250]
        );
    }

    #[test]
    fn finds_only_listening_tcp_sockets() {
        assert_eq!(
            ports_in_proc_table(TCP, DOCKER_RESOLVER, true),
            vec![0x9093]
        );
    }

    fn tuple(src: &str, dst: &str) -> Tuple {
        Tuple {
            proto: 17,
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
        }
    }

    #[test]
    fn dnat_port_from_the_reply_tuple() {
        let orig = tuple("127.0.0.1:40000", "127.0.0.11:53");
        let dnat = tuple("127.0.0.11:41552", "127.0.0.1:40000");
        assert_eq!(dnat_port(&orig, &dnat), Some(41552));
        // no NAT: the reply comes from where the probe went
        let plain = tuple("127.0.0.11:53", "127.0.0.1:40000");
        assert_eq!(dnat_port(&orig, &plain), None);
        // a DNAT elsewhere is not a port on 127.0.0.11
        let elsewhere = tuple("10.0.0.53:5353", "127.0.0.1:40000");
        assert_eq!(dnat_port(&orig, &elsewhere), None);
    }

    #[test]
    fn port_sources() {
        assert_eq!(PortSource::Given(5).port(), Some(5));
        assert_eq!(PortSource::Nat(6).port(), Some(6));
        assert_eq!(PortSource::Sockets(vec![7]).port(), Some(7));
        assert_eq!(PortSource::Sockets(vec![]).port(), None);
        let two = PortSource::Sockets(vec![7, 8]);
        assert_eq!(two.port(), None);
        assert_eq!(two.ambiguous(), Some(&[7u16, 8][..]));
        assert_eq!(PortSource::Sockets(vec![7]).ambiguous(), None);
        assert_eq!(PortSource::Given(5).how(), "given");
        assert!(PortSource::Nat(6).how().starts_with("from Docker's NAT"));
        assert!(PortSource::Sockets(vec![7])
            .how()
            .starts_with("from the sockets on 127.0.0.11"));
    }

    #[test]
    fn the_line_for_a_protocol_left_with_dockerd() {
        let finding = PortFinding {
            proto: Proto::Udp,
            source: PortSource::Sockets(vec![41000, 41552]),
            nat_problem: None,
        };
        let line = finding.left_with_dockerd().unwrap();
        assert!(line.starts_with("UDP stays with dockerd"), "{line}");
        assert!(
            line.contains("41000, 41552") && line.contains("--dockerd-port PORT"),
            "{line}"
        );
        let tcp = PortFinding {
            proto: Proto::Tcp,
            ..finding
        };
        assert!(tcp
            .left_with_dockerd()
            .unwrap()
            .contains("--dockerd-tcp-port"));
        let sure = PortFinding {
            proto: Proto::Udp,
            source: PortSource::Nat(41552),
            nat_problem: None,
        };
        assert_eq!(sure.left_with_dockerd(), None);
    }

    #[test]
    fn nothing_on_other_addresses() {
        assert!(ports_in_proc_table(UDP, Ipv4Addr::new(127, 0, 0, 1), false).is_empty());
        assert!(ports_in_proc_table("header only\n", DOCKER_RESOLVER, false).is_empty());
    }
}
