//! The command line: flags in, one plain [`Action`] out. Nothing here touches the system.

use crate::net::netns::Target;
use crate::redirect::resolver::EDNS_MAX;
use crate::redirect::AttachRequest;
use crate::watch::WatchRequest;
use argh::FromArgs;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;

pub const EXIT_ERROR: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_NOT_ATTACHED: u8 = 3;

#[derive(FromArgs)]
/// Send a Docker container's DNS (queries to 127.0.0.11) to another resolver, with two
/// TC-BPF programs in the container's network namespace. Attaches and exits; the
/// programs stay until --detach.
#[argh(
    example = "dnsredir --pid $(docker inspect -f '{{{{.State.Pid}}}}' web) --upstream 1.1.1.1",
    example = "dnsredir --pid 1234 --dockerd-port 41552 --upstream 10.0.0.53:5353",
    example = "dnsredir --pid 1234 --status --json",
    example = "dnsredir --pid 1234 --watch",
    example = "dnsredir --netns /var/run/netns/blue --detach",
    error_code(1, "an error (one line on stderr says what and what to do)"),
    error_code(2, "bad command line"),
    error_code(
        3,
        "--status: dnsredir is not attached (fully) in that namespace; --watch: not attached, attached by another build, or detached (or the container stopped) during the watch"
    )
)]
pub struct Args {
    /// pid of a process in the container (docker inspect -f '{{{{.State.Pid}}}}' NAME)
    #[argh(option)]
    pid: Option<u32>,
    /// path of the network namespace instead of --pid (/var/run/netns/NAME, /proc/PID/ns/net)
    #[argh(option)]
    netns: Option<PathBuf>,
    /// resolver to send queries to: IP or IP:PORT (port 53 by default)
    #[argh(option)]
    upstream: Option<String>,
    /// UDP port of dockerd's embedded resolver behind Docker's DNAT (found in the namespace when omitted)
    #[argh(option)]
    dockerd_port: Option<u16>,
    /// TCP port of dockerd's embedded resolver (found in the namespace when omitted)
    #[argh(option)]
    dockerd_tcp_port: Option<u16>,
    /// attach without first checking that the upstream answers a DNS query (sent from the container, 1 s timeout)
    #[argh(switch)]
    no_probe: bool,
    /// also redirect single-label names (container and service names), which otherwise stay with dockerd
    #[argh(switch)]
    redirect_all: bool,
    /// lower the EDNS UDP payload size redirected queries announce to at most this (default 1232, so answers are not fragmented; larger ones come truncated and are fetched over TCP); 0 leaves it alone
    #[argh(option, default = "EDNS_MAX")]
    edns_max: u16,
    /// the container's interface toward the upstream (default eth0)
    #[argh(option, default = "String::from(\"eth0\")")]
    interface: String,
    /// remove dnsredir's filters (and the clsact qdisc when nothing else uses it)
    #[argh(switch)]
    detach: bool,
    /// show whether dnsredir is attached, its configuration and counters (exit 3 if not attached)
    #[argh(switch)]
    status: bool,
    /// print each query as its answer arrives (or as unanswered after 5 s), read from the attached programs, until Ctrl-C; changes nothing
    #[argh(switch)]
    watch: bool,
    /// with --status: print one JSON object; with --watch: one JSON object per query
    #[argh(switch)]
    json: bool,
    /// print each step of attach and detach
    #[argh(switch, short = 'v')]
    pub verbose: bool,
    /// print the version, the git revision and the hash of the embedded BPF object
    #[argh(switch, short = 'V')]
    version: bool,
}

pub enum Action {
    Version,
    Attach(AttachRequest),
    Detach {
        target: Target,
        interface: String,
    },
    Status {
        target: Target,
        interface: String,
        json: bool,
    },
    Watch(WatchRequest),
}

fn parse_upstream(text: &str) -> Result<SocketAddrV4, String> {
    let addr = match text.parse::<SocketAddrV4>() {
        Ok(a) => a,
        Err(_) => match text.parse::<Ipv4Addr>() {
            Ok(ip) => SocketAddrV4::new(ip, 53),
            Err(_) if text.contains(':') && text.matches(':').count() > 1 => {
                return Err(format!(
                    "{text:?} looks like IPv6; dnsredir redirects to IPv4 upstreams only"
                ))
            }
            Err(_) => {
                return Err(format!(
                    "{text:?} is not IP or IP:PORT (for example 1.1.1.1 or 10.0.0.53:5353)"
                ))
            }
        },
    };
    let ip = addr.ip();
    if addr.port() == 0 {
        return Err(format!("{text:?}: port 0 is not a port"));
    }
    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
        return Err(format!("{text:?} is not a unicast address"));
    }
    if ip.is_loopback() {
        return Err(format!("{text:?} is a loopback address; the upstream must be reachable through the container's eth0"));
    }
    Ok(addr)
}

pub fn action(args: Args) -> Result<Action, String> {
    if args.version {
        return Ok(Action::Version);
    }
    let target = match (args.pid, args.netns) {
        (Some(pid), None) => Target::Pid(pid),
        (None, Some(path)) => Target::Path(path),
        (Some(_), Some(_)) => return Err("give either --pid or --netns, not both".into()),
        (None, None) => return Err("say which container: --pid PID (or --netns PATH)".into()),
    };
    let attach_only = args.upstream.is_some()
        || args.edns_max != EDNS_MAX
        || args.dockerd_port.is_some()
        || args.dockerd_tcp_port.is_some()
        || args.redirect_all
        || args.no_probe;
    if args.watch {
        if args.detach || args.status {
            return Err("--watch excludes --detach and --status".into());
        }
        if attach_only {
            return Err("--watch takes only --pid/--netns, --interface and --json".into());
        }
        return Ok(Action::Watch(WatchRequest {
            target,
            interface: args.interface,
            json: args.json,
        }));
    }
    match (args.detach, args.status) {
        (true, true) => Err("--detach and --status exclude each other".into()),
        (true, false) if attach_only || args.json => {
            Err("--detach takes only --pid/--netns (and --interface)".into())
        }
        (true, false) => Ok(Action::Detach {
            target,
            interface: args.interface,
        }),
        (false, true) if attach_only => {
            Err("--status takes only --pid/--netns, --interface and --json".into())
        }
        (false, true) => Ok(Action::Status {
            target,
            interface: args.interface,
            json: args.json,
        }),
        (false, false) => {
            if args.json {
                return Err("--json goes with --status or --watch".into());
            }
            let upstream = args
                .upstream
                .ok_or("say where DNS should go: --upstream IP[:PORT]")?;
            let upstream = parse_upstream(&upstream).map_err(|e| format!("bad --upstream: {e}"))?;
            for port in [args.dockerd_port, args.dockerd_tcp_port]
                .into_iter()
                .flatten()
            {
                if port == 0 {
                    return Err("--dockerd-port and --dockerd-tcp-port must not be 0".into());
                }
            }
            Ok(Action::Attach(AttachRequest {
                target,
                upstream,
                dockerd_udp_port: args.dockerd_port,
                dockerd_tcp_port: args.dockerd_tcp_port,
                redirect_all: args.redirect_all,
                probe_upstream: !args.no_probe,
                interface: args.interface,
                edns_max: args.edns_max,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(argv: &[&str]) -> Result<Action, String> {
        let args = <Args as FromArgs>::from_args(&["dnsredir"], argv).map_err(|e| e.output)?;
        action(args)
    }

    #[test]
    fn no_probe_switch() {
        let attach = |argv: &[&str]| match parse(argv) {
            Ok(Action::Attach(r)) => r,
            _ => panic!("{argv:?} is an attach"),
        };
        assert!(attach(&["--pid", "1", "--upstream", "1.1.1.1"]).probe_upstream);
        assert!(!attach(&["--pid", "1", "--upstream", "1.1.1.1", "--no-probe"]).probe_upstream);
        assert!(parse(&["--pid", "1", "--status", "--no-probe"]).is_err());
        assert!(parse(&["--pid", "1", "--detach", "--no-probe"]).is_err());
        let help = <Args as FromArgs>::from_args(&["dnsredir"], &["--help"])
            .err()
            .map(|e| e.output)
            .unwrap_or_default();
        assert!(help.contains("--no-probe"), "{help}");
    }

    #[test]
    fn watch_takes_only_the_target_and_json() {
        match parse(&["--pid", "7", "--watch", "--json"]) {
            Ok(Action::Watch(w)) => {
                assert!(w.json);
                assert_eq!(w.target, Target::Pid(7));
                assert_eq!(w.interface, "eth0");
            }
            _ => panic!("a watch"),
        }
        assert!(parse(&["--pid", "7", "--watch", "--status"]).is_err());
        assert!(parse(&["--pid", "7", "--watch", "--detach"]).is_err());
        assert!(parse(&["--pid", "7", "--watch", "--upstream", "1.1.1.1"]).is_err());
        assert!(parse(&["--watch"]).is_err());
    }

    #[test]
    fn upstream_forms() {
        assert_eq!(parse_upstream("1.1.1.1"), Ok("1.1.1.1:53".parse().unwrap()));
        assert_eq!(
            parse_upstream("10.0.0.53:5353"),
            Ok("10.0.0.53:5353".parse().unwrap())
        );
        assert!(parse_upstream("not-an-ip").is_err());
        assert!(parse_upstream("1.1.1.1:0").is_err());
        assert!(parse_upstream("127.0.0.1").is_err());
        assert!(parse_upstream("2606:4700::1111")
            .unwrap_err()
            .contains("IPv6"));
        assert!(parse_upstream("1.1.1.1:99999").is_err());
    }
}
