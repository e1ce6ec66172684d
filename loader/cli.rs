//! The command line: flags in, one plain [`Action`] out. Nothing here touches the system but
//! a `--hosts` file, read here so that one that cannot be read is a bad command line.

use crate::install::{InstallRequest, UninstallRequest};
use crate::namespace::dockerd::ResolverPorts;
use crate::options::{
    block_rcode, edns_max, label, optional_upstreams, policy_rules, read_hosts, resolvers,
    PolicyFlags, FLAGS,
};
use crate::redirect::{AttachRequest, Resolvers};
use crate::settings;
use crate::target::Target;
use crate::watcher::WatchRequest;
use argh::FromArgs;
use node::node_action;
use std::net::SocketAddr;
use std::path::PathBuf;

mod node;

pub const EXIT_ERROR: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_NOT_ATTACHED: u8 = 3;

#[derive(FromArgs)]
/// Send a container's DNS to another resolver, with TC-BPF programs in the container's
/// network namespace: queries to Docker's embedded resolver (127.0.0.11) where there is one,
/// else queries to the nameservers of its resolv.conf (default bridge, Podman, CNI, pods;
/// IPv6 nameservers too, given an IPv6 upstream), or with --resolver any to every DNS server
/// on port 53. Attaches and exits; the programs stay until --detach.
#[argh(
    example = "dnsredir --pid $(docker inspect -f '{{{{.State.Pid}}}}' web) --upstream 1.1.1.1",
    example = "dnsredir --pid 1234 --dockerd-port 41552 --upstream 10.0.0.53:5353",
    example = "dnsredir --netns /var/run/netns/pod1 --resolver 10.96.0.10 --upstream 10.0.0.53",
    example = "dnsredir --netns /var/run/netns/pod1 --resolver any --upstream 10.0.0.53",
    example = "dnsredir --pid 1234 --upstream 10.0.0.53 --upstream [fd00::53]:53",
    example = "dnsredir --pid 1234 --block ads.example --block tracker.test",
    example = "dnsredir --pid 1234 --allow example.com --allow pypi.org",
    example = "dnsredir --pid 1234 --answer api.stripe.com=10.5.5.5 --answer api.stripe.com=fd00::5",
    example = "dnsredir --pid 1234 --hosts mocks.hosts --upstream 10.0.0.53",
    example = "dnsredir --pid 1234 --status --json",
    example = "dnsredir --pid 1234 --watch",
    example = "dnsredir --metrics 127.0.0.1:9353",
    example = "dnsredir --install-cni --cni-options /etc/dnsredir/options.json",
    example = "dnsredir --netns /var/run/netns/blue --detach",
    error_code(1, "an error (one line on stderr says what and what to do)"),
    error_code(2, "bad command line"),
    error_code(
        3,
        "--status: dnsredir is not attached (fully) in that namespace; --watch: not attached, attached by another build, or detached (or the container stopped) during the watch"
    )
)]
pub struct Args {
    /// pid of a process in the container (docker inspect -f '{{.State.Pid}}' NAME)
    #[argh(option)]
    pid: Option<u32>,
    /// path of the network namespace instead of --pid (/var/run/netns/NAME, /proc/PID/ns/net)
    #[argh(option)]
    netns: Option<PathBuf>,
    /// resolver to send queries to: IP, IP:PORT or [IPv6]:PORT (port 53 by default); once per address family: a second, IPv6 upstream takes the IPv6 nameservers' queries (nameservers path only). Optional with --block, --allow, --answer or --hosts: without it the names no rule answers go where they were going (dockerd, or the nameserver asked)
    #[argh(option)]
    upstream: Vec<String>,
    /// a nameserver of the container's resolv.conf to take over on its interface's egress: IP, IP:PORT or [IPv6]:PORT (port 53 by default; IPv6 ones need an IPv6 --upstream); repeatable, up to 4 per address family. Or "any", alone: every query to port 53 leaving the interface, whatever server it names (hard-coded ones too; not the upstream, not the container's own address), each answer coming back from the server asked. Without it, a container with no embedded resolver on 127.0.0.11 has the nameservers of /proc/PID/root/etc/resolv.conf taken over (needed with --netns)
    #[argh(option)]
    resolver: Vec<String>,
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
    /// a name equal to SUFFIX or under it stays with dockerd, or with the nameserver asked on the nameservers path (repeatable; whole labels, any case: corp.example covers a.corp.example, not xcorp.example)
    #[argh(option)]
    keep: Vec<String>,
    /// only names equal to or under SUFFIX are redirected, all others (and TCP) stay with dockerd or the nameserver asked (repeatable; --keep wins where both match)
    #[argh(option)]
    only: Vec<String>,
    /// answer NXDOMAIN in the kernel for SUFFIX and every name under it (repeatable; whole labels, any case, like --keep; REFUSED with --block-rcode refused)
    #[argh(option)]
    block: Vec<String>,
    /// an allowlist: only names equal to or under SUFFIX (or answered by --answer/--hosts) resolve, every other name is refused (REFUSED) in the kernel (repeatable; single-label names stay with dockerd unless --redirect-all)
    #[argh(option)]
    allow: Vec<String>,
    /// NAME=ADDR: answer NAME and every name under it in the kernel with ADDR, an A record for IPv4 and AAAA for IPv6 (TTL 10 s; other types and the missing family get an empty NOERROR); repeatable, addresses for one NAME accumulate, up to 8 per family
    #[argh(option)]
    answer: Vec<String>,
    /// a file in /etc/hosts syntax (ADDR NAME [NAME...], # comments), hosts meaning: each NAME exactly (not the names under it) is answered with its addresses in the kernel, or blocked by a 0.0.0.0 or :: line
    #[argh(option)]
    hosts: Option<PathBuf>,
    /// what blocked names get: nxdomain (default) or refused
    #[argh(option)]
    block_rcode: Option<String>,
    /// lower the EDNS UDP payload size redirected queries announce to at most this (default 1232, so answers are not fragmented; larger ones come truncated and are fetched over TCP); 512 to 65535, or 0 to leave it alone
    #[argh(option)]
    edns_max: Option<u16>,
    /// the container's interface toward the upstream (default: the one its routes to the upstream, or to the nameservers taken over, leave through; almost always eth0). --status, --watch and --detach find dnsredir's filters on any interface and take no --interface
    #[argh(option)]
    interface: Option<String>,
    /// a name for this attachment, kept in its configuration and shown by --status, --watch and --metrics (at most 64 bytes, no control characters; default: the --pid or --netns given)
    #[argh(option)]
    label: Option<String>,
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
    /// serve the counters of every dnsredir attachment on this node as Prometheus metrics at http://ADDR:PORT/metrics until killed (port 0: a free one, printed on stderr); no authentication: bind it to 127.0.0.1 or the node's internal address
    #[argh(option)]
    metrics: Option<String>,
    /// copy this binary into the CNI bin directory and add dnsredir, with the options of --cni-options, to the node's CNI chain (the first conflist of the CNI conf directory); again: replaces both
    #[argh(switch)]
    install_cni: bool,
    /// take dnsredir out of every conflist of the CNI conf directory, then remove its binary from the CNI bin directory
    #[argh(switch)]
    uninstall_cni: bool,
    /// with --install-cni: a file holding one JSON object, the plugin's options in the conflist (e.g. {"upstream": "10.0.0.53"})
    #[argh(option)]
    cni_options: Option<PathBuf>,
    /// with --install-cni / --uninstall-cni: the CNI bin directory (default /opt/cni/bin)
    #[argh(option)]
    cni_bin_dir: Option<PathBuf>,
    /// with --install-cni / --uninstall-cni: the CNI conf directory (default /etc/cni/net.d)
    #[argh(option)]
    cni_conf_dir: Option<PathBuf>,
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
    Detach { target: Target },
    Status { target: Target, json: bool },
    Watch(WatchRequest),
    Metrics(SocketAddr),
    InstallCni(InstallRequest),
    UninstallCni(UninstallRequest),
}

/// The first option given that only an attach takes: any other action refuses it.
fn attach_only(args: &Args) -> Option<&'static str> {
    [
        ("--upstream", !args.upstream.is_empty()),
        ("--edns-max", args.edns_max.is_some()),
        ("--dockerd-port", args.dockerd_port.is_some()),
        ("--dockerd-tcp-port", args.dockerd_tcp_port.is_some()),
        ("--redirect-all", args.redirect_all),
        ("--no-probe", args.no_probe),
        ("--resolver", !args.resolver.is_empty()),
        ("--keep", !args.keep.is_empty()),
        ("--only", !args.only.is_empty()),
        ("--block", !args.block.is_empty()),
        ("--allow", !args.allow.is_empty()),
        ("--answer", !args.answer.is_empty()),
        ("--hosts", args.hosts.is_some()),
        ("--block-rcode", args.block_rcode.is_some()),
        ("--interface", args.interface.is_some()),
        ("--label", args.label.is_some()),
    ]
    .into_iter()
    .find_map(|(flag, given)| given.then_some(flag))
}

pub fn action(args: Args) -> Result<Action, String> {
    if args.version {
        return Ok(Action::Version);
    }
    if let Some(node) = node_action(&args) {
        return node;
    }
    let attach_only = attach_only(&args);
    let target = match (args.pid, args.netns) {
        (Some(pid), None) => Target::Pid(pid),
        (None, Some(path)) => Target::Path(path),
        (Some(_), Some(_)) => return Err("give either --pid or --netns, not both".into()),
        (None, None) => return Err("say which container: --pid PID (or --netns PATH)".into()),
    };
    let only_attach = |action: &str, flag: &str| {
        let why = if flag == "--interface" {
            format!(" ({action} finds dnsredir's filters on any interface)")
        } else {
            String::new()
        };
        format!("{action} does not take {flag}: it applies to an attach only{why}")
    };
    if args.watch {
        if args.detach || args.status {
            return Err("--watch excludes --detach and --status".into());
        }
        if let Some(flag) = attach_only {
            return Err(only_attach("--watch", flag));
        }
        return Ok(Action::Watch(WatchRequest {
            target,
            json: args.json,
        }));
    }
    match (args.detach, args.status) {
        (true, true) => Err("--detach and --status exclude each other".into()),
        (true, false) => match attach_only {
            Some(flag) => Err(only_attach("--detach", flag)),
            None if args.json => Err("--json goes with --status or --watch".into()),
            None => Ok(Action::Detach { target }),
        },
        (false, true) => match attach_only {
            Some(flag) => Err(only_attach("--status", flag)),
            None => Ok(Action::Status {
                target,
                json: args.json,
            }),
        },
        (false, false) => {
            if args.json {
                return Err("--json goes with --status or --watch".into());
            }
            let flags = PolicyFlags {
                keep: args.keep,
                only: args.only,
                allow: args.allow,
                block: args.block,
                answer: args.answer,
            };
            let policy = flags.decides() || args.hosts.is_some();
            let (upstream, upstream6) = optional_upstreams(&args.upstream, policy, FLAGS)?;
            for port in [args.dockerd_port, args.dockerd_tcp_port]
                .into_iter()
                .flatten()
            {
                if port == 0 {
                    return Err("--dockerd-port and --dockerd-tcp-port must not be 0".into());
                }
            }
            // IPv6 nameservers are taken with an IPv6 upstream, or to answer what rules decide.
            let resolvers = resolvers(&args.resolver, upstream6.is_some() || policy, FLAGS)?;
            if resolvers != Resolvers::FromNamespace
                && (args.dockerd_port.is_some() || args.dockerd_tcp_port.is_some())
            {
                return Err("--resolver (the nameservers path) excludes --dockerd-port / --dockerd-tcp-port (Docker's embedded resolver)".into());
            }
            let block_refused = block_rcode(args.block_rcode.as_deref())?;
            if args.block_rcode.is_some() && flags.block.is_empty() && args.hosts.is_none() {
                return Err(
                    "--block-rcode goes with --block or --hosts (what blocked names get)".into(),
                );
            }
            // The one file the command line reads: a hosts file that cannot be read is bad input.
            let hosts = args.hosts.as_deref().map(read_hosts).transpose()?;
            let rules = policy_rules(&flags, hosts, FLAGS)?;
            let label = match args.label {
                Some(text) => label(text, FLAGS)?,
                None => settings::label(&target.to_string()),
            };
            Ok(Action::Attach(AttachRequest {
                label,
                target,
                interface: args.interface,
                upstream,
                upstream6,
                resolvers,
                dockerd_ports: ResolverPorts {
                    udp: args.dockerd_port,
                    tcp: args.dockerd_tcp_port,
                },
                redirect_all: args.redirect_all,
                probe_upstream: !args.no_probe,
                edns_max: edns_max(args.edns_max, FLAGS)?,
                rules,
                block_refused,
            }))
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::options::{parse_upstream, upstreams};
    use crate::redirect::EDNS_MAX;
    use std::net::{SocketAddrV4, SocketAddrV6};

    pub(super) fn parse(argv: &[&str]) -> Result<Action, String> {
        let args = <Args as FromArgs>::from_args(&["dnsredir"], argv).map_err(|e| e.output)?;
        action(args)
    }

    /// What `--help` prints.
    pub(super) fn help() -> String {
        <Args as FromArgs>::from_args(&["dnsredir"], &["--help"])
            .err()
            .map(|e| e.output)
            .unwrap_or_default()
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
        let help = help();
        assert!(help.contains("--no-probe"), "{help}");
    }

    #[test]
    fn resolver_option() {
        let attach = |argv: &[&str]| match parse(argv) {
            Ok(Action::Attach(r)) => r,
            Ok(_) => panic!("{argv:?} is an attach"),
            Err(e) => panic!("{argv:?}: {e}"),
        };
        assert_eq!(
            attach(&["--pid", "1", "--upstream", "1.1.1.1"]).resolvers,
            Resolvers::FromNamespace
        );
        let named = |r: AttachRequest| match r.resolvers {
            Resolvers::Named(n) => n,
            other => panic!("named resolvers: {other:?}"),
        };
        let r = named(attach(&[
            "--netns",
            "/run/netns/x",
            "--upstream",
            "1.1.1.1",
            "--resolver",
            "8.8.8.8",
            "--resolver",
            "10.0.0.2:5300",
        ]));
        assert_eq!(
            r.v4,
            vec![
                "8.8.8.8:53".parse::<SocketAddrV4>().unwrap(),
                "10.0.0.2:5300".parse().unwrap()
            ]
        );
        let base = ["--pid", "1", "--upstream", "1.1.1.1"];
        let with = |extra: &[&str]| parse(&[&base[..], extra].concat());
        assert!(with(&["--resolver", "127.0.0.53"])
            .err()
            .unwrap()
            .contains("loopback"));
        assert!(with(&["--resolver", "2001:db8::1"])
            .err()
            .unwrap()
            .contains("give an IPv6 --upstream"));
        let both = attach(&[
            "--pid",
            "1",
            "--upstream",
            "1.1.1.1",
            "--upstream",
            "[2001:db8::53]:5353",
            "--resolver",
            "[fd00::53]:5300",
            "--resolver",
            "fd00::54",
            "--resolver",
            "10.0.0.2",
        ]);
        assert_eq!(both.upstream6, Some("[2001:db8::53]:5353".parse().unwrap()));
        let both = named(both);
        assert_eq!(
            both.v6,
            vec![
                "[fd00::53]:5300".parse::<SocketAddrV6>().unwrap(),
                "[fd00::54]:53".parse().unwrap()
            ]
        );
        assert_eq!(both.v4, vec!["10.0.0.2:53".parse().unwrap()]);
        assert!(with(&["--resolver", "::1"])
            .err()
            .unwrap()
            .contains("loopback"));
        assert!(with(&["--resolver", "8.8.8.8", "--dockerd-port", "5"]).is_err());
        let five: Vec<&str> = (0..5).flat_map(|_| ["--resolver", "8.8.8.8"]).collect();
        assert!(with(&five).err().unwrap().contains("at most 4 IPv4"));
        assert!(parse(&["--pid", "1", "--status", "--resolver", "8.8.8.8"]).is_err());
        let help = help();
        assert!(help.contains("--resolver"), "{help}");
    }

    #[test]
    fn resolver_any_stands_alone() {
        let base = ["--netns", "/run/netns/x", "--upstream", "1.1.1.1"];
        let with = |extra: &[&str]| parse(&[&base[..], extra].concat());
        match with(&["--resolver", "any"]) {
            Ok(Action::Attach(r)) => {
                assert_eq!(r.resolvers, Resolvers::Any);
                assert_eq!(r.upstream6, None);
            }
            _ => panic!("an attach"),
        }
        match with(&[
            "--resolver",
            "any",
            "--upstream",
            "[fd00::53]:53",
            "--keep",
            "a.test",
        ]) {
            Ok(Action::Attach(r)) => {
                assert_eq!(r.resolvers, Resolvers::Any);
                assert_eq!(r.upstream6, Some("[fd00::53]:53".parse().unwrap()));
            }
            _ => panic!("an attach"),
        }
        for mixed in [
            &["--resolver", "any", "--resolver", "8.8.8.8"][..],
            &["--resolver", "10.0.0.2", "--resolver", "any"],
            &["--resolver", "any", "--resolver", "any"],
        ] {
            let e = with(mixed)
                .err()
                .unwrap_or_else(|| panic!("{mixed:?} accepted"));
            assert!(
                e.starts_with("--resolver any takes every DNS server: give it alone")
                    && !e.contains('\n'),
                "{mixed:?}: {e}"
            );
        }
        let e = with(&["--resolver", "any", "--dockerd-port", "5"])
            .err()
            .unwrap_or_default();
        assert!(e.contains("excludes --dockerd-port"), "{e}");
        // Only the word itself: anything else is an address that does not parse.
        for bad in ["ANY", "any:53", "*"] {
            let e = with(&["--resolver", bad]).err().unwrap_or_default();
            assert!(
                e.starts_with("bad --resolver:") && e.contains("or any, alone"),
                "{bad}: {e}"
            );
        }
        let e = parse(&["--pid", "1", "--status", "--resolver", "any"])
            .err()
            .unwrap_or_default();
        assert!(e.starts_with("--status does not take --resolver"), "{e}");
        let help = help();
        assert!(help.contains("Or \"any\", alone"), "{help}");
        assert!(help.contains("--resolver any --upstream"), "{help}");
    }

    #[test]
    fn one_upstream_per_family() {
        let up = |given: &[&str]| {
            upstreams(
                &given.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                FLAGS,
            )
        };
        assert_eq!(up(&["1.1.1.1"]), Ok(("1.1.1.1:53".parse().unwrap(), None)));
        assert_eq!(
            up(&["[2606:4700::1111]:5353", "1.1.1.1"]),
            Ok((
                "1.1.1.1:53".parse().unwrap(),
                Some("[2606:4700::1111]:5353".parse().unwrap())
            ))
        );
        assert!(up(&["1.1.1.1", "8.8.8.8"])
            .unwrap_err()
            .contains("one IPv4"));
        assert!(up(&["::2", "fd00::1"]).unwrap_err().contains("one IPv6"));
        assert!(up(&["fd00::1"])
            .unwrap_err()
            .contains("IPv4 upstream is needed"));
        assert!(up(&[]).unwrap_err().contains("--upstream"));
        assert!(
            parse(&["--pid", "1", "--upstream", "1.1.1.1", "--upstream", "::1"])
                .err()
                .unwrap()
                .contains("loopback")
        );
    }

    #[test]
    fn rules_on_the_command_line() {
        let base = ["--pid", "1", "--upstream", "1.1.1.1"];
        let with = |extra: &[&str]| {
            let argv: Vec<&str> = base.iter().chain(extra).copied().collect();
            parse(&argv)
        };
        match with(&[
            "--keep",
            ".Internal.test",
            "--keep",
            "b",
            "--only",
            "corp.test.",
        ]) {
            Ok(Action::Attach(r)) => assert_eq!(r.rules.rules.len(), 3),
            _ => panic!("an attach"),
        }
        let e = with(&["--keep", "a..b"]).err().unwrap_or_default();
        assert!(e.starts_with("bad --keep:") && !e.contains('\n'), "{e}");
        assert!(with(&["--only", "*.corp"]).is_err());
        assert!(parse(&["--pid", "1", "--status", "--keep", "a"]).is_err());
    }

    #[test]
    fn a_policy_needs_no_upstream() {
        let attach = |argv: &[&str]| match parse(argv) {
            Ok(Action::Attach(r)) => r,
            Ok(_) => panic!("{argv:?} is an attach"),
            Err(e) => panic!("{argv:?}: {e}"),
        };
        let r = attach(&[
            "--pid",
            "1",
            "--block",
            "Ads.Example",
            "--block-rcode",
            "refused",
        ]);
        assert_eq!(r.upstream, None);
        assert!(r.block_refused);
        assert_eq!(
            r.rules.decision("x.ads.example").as_deref(),
            Some("block ads.example")
        );
        let r = attach(&[
            "--netns",
            "/run/netns/x",
            "--answer",
            "api.test=[fd00::5]",
            "--answer",
            "api.test=10.0.0.5",
            "--resolver",
            "fd00::53",
        ]);
        assert_eq!(r.rules.rules.len(), 1);
        assert_eq!(
            r.rules.rules[0].to_string(),
            "answer api.test 10.0.0.5 fd00::5"
        );
        assert!(
            matches!(r.resolvers, Resolvers::Named(n) if n.v6.len() == 1),
            "IPv6 nameservers are taken to answer what rules decide"
        );
        let r = attach(&[
            "--pid",
            "1",
            "--upstream",
            "1.1.1.1",
            "--allow",
            "example.com",
        ]);
        assert_eq!(r.upstream, Some("1.1.1.1:53".parse().unwrap()));
        assert!(r.rules.kinds().allowlist);
        assert!(
            !attach(&["--pid", "1", "--keep", "x", "--upstream", "1.1.1.1"])
                .rules
                .kinds()
                .decide
        );
        // Routing rules alone are no policy: an upstream is still needed.
        let e = parse(&["--pid", "1", "--keep", "x"])
            .err()
            .unwrap_or_default();
        assert!(e.starts_with("say where DNS should go"), "{e}");
        let help = help();
        for flag in ["--block", "--allow", "--answer", "--hosts", "--block-rcode"] {
            assert!(help.contains(flag), "{flag}: {help}");
        }
    }

    #[test]
    fn watch_takes_only_the_target_and_json() {
        match parse(&["--pid", "7", "--watch", "--json"]) {
            Ok(Action::Watch(w)) => {
                assert!(w.json);
                assert_eq!(w.target, Target::Pid(7));
            }
            _ => panic!("a watch"),
        }
        assert!(parse(&["--pid", "7", "--watch", "--status"]).is_err());
        assert!(parse(&["--pid", "7", "--watch", "--detach"]).is_err());
        assert!(parse(&["--pid", "7", "--watch", "--upstream", "1.1.1.1"]).is_err());
        assert!(parse(&["--watch"]).is_err());
    }

    #[test]
    fn an_attach_option_is_refused_by_every_other_action_whatever_its_value() {
        for action in ["--status", "--watch", "--detach"] {
            for extra in [
                &["--edns-max", "1232"][..],
                &["--edns-max", "1231"],
                &["--interface", "eth0"],
                &["--no-probe"],
                &["--keep", "a.test"],
            ] {
                let mut argv = vec!["--pid", "7", action];
                argv.extend_from_slice(extra);
                let e = parse(&argv)
                    .err()
                    .unwrap_or_else(|| panic!("{argv:?} accepted"));
                assert!(
                    e.starts_with(&format!("{action} does not take {}", extra[0])),
                    "{argv:?}: {e}"
                );
            }
        }
    }

    #[test]
    fn edns_sizes_below_512_are_refused_and_0_leaves_queries_alone() {
        let edns = |v: &str| match parse(&["--pid", "7", "--upstream", "1.1.1.1", "--edns-max", v])
        {
            Ok(Action::Attach(r)) => Ok(r.edns_max),
            Ok(_) => panic!("an attach"),
            Err(e) => Err(e),
        };
        assert_eq!(edns("0"), Ok(0));
        assert_eq!(edns("512"), Ok(512));
        assert_eq!(edns("4096"), Ok(4096));
        for bad in ["1", "100", "511"] {
            let e = edns(bad).unwrap_err();
            assert!(e.contains("below 512") && e.contains(bad), "{e}");
        }
        match parse(&["--pid", "7", "--upstream", "1.1.1.1"]) {
            Ok(Action::Attach(r)) => {
                assert_eq!(r.edns_max, EDNS_MAX);
                assert_eq!(r.interface, None, "found from the routes");
            }
            _ => panic!("an attach"),
        }
    }

    #[test]
    fn upstream_forms() {
        for (given, meant) in [
            ("1.1.1.1", "1.1.1.1:53"),
            ("10.0.0.53:5353", "10.0.0.53:5353"),
            ("2606:4700::1111", "[2606:4700::1111]:53"),
            ("[2606:4700::1111]", "[2606:4700::1111]:53"),
            ("[fd00::53]:5353", "[fd00::53]:5353"),
        ] {
            assert_eq!(parse_upstream(given), Ok(meant.parse().unwrap()), "{given}");
        }
        for bad in [
            "not-an-ip",
            "1.1.1.1:0",
            "127.0.0.1",
            "[fd00::53]:0",
            "ff02::1",
            "1.1.1.1:99999",
        ] {
            assert!(parse_upstream(bad).is_err(), "{bad}");
        }
    }
}
