//! The attach options both front ends take — the command line's flags ([`crate::cli`]) and a
//! CNI configuration's keys ([`crate::cni`]) — parsed and checked once, with messages that name
//! the option the way it was given.

use crate::abi::{LABEL_MAX, MAX_NAMESERVERS};
use crate::namespace::resolv_conf::Nameservers;
use crate::redirect::policy::{self, Given, Hosts, HostsError, MAX_HOSTS_FILE};
use crate::redirect::rules::{self, Rules};
use crate::redirect::{Resolvers, EDNS_MAX};
use std::io::Read;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::path::Path;

/// `IP`, `IP:PORT`, `[IPv6]:PORT` or a bare IPv6 address; port 53 when none is given.
fn parse_socket_addr(text: &str) -> Option<SocketAddr> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr);
    }
    let ip = match text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        Some(inner) => IpAddr::V6(inner.parse::<Ipv6Addr>().ok()?),
        None => text.parse::<IpAddr>().ok()?,
    };
    Some(SocketAddr::new(ip, 53))
}

/// What `--resolver` and `--upstream` share: a unicast address with a port, not on loopback.
fn parse_server(text: &str, example: &str, loopback: &str) -> Result<SocketAddr, String> {
    let addr = parse_socket_addr(text)
        .ok_or_else(|| format!("{text:?} is not IP, IP:PORT or [IPv6]:PORT ({example})"))?;
    if addr.port() == 0 {
        return Err(format!("{text:?}: port 0 is not a port"));
    }
    let ip = addr.ip();
    let broadcast = matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    if ip.is_unspecified() || broadcast || ip.is_multicast() {
        return Err(format!("{text:?} is not a unicast address"));
    }
    if ip.is_loopback() {
        return Err(format!("{text:?} is a loopback address{loopback}"));
    }
    Ok(addr)
}

/// `--resolver`: a nameserver applications send to directly, taken on the interface's egress.
pub fn parse_resolver(text: &str) -> Result<SocketAddr, String> {
    parse_server(
        text,
        "for example 8.8.8.8 or [fd00::53]:53; or any, alone, for every server",
        ": queries to it never leave through the interface, so they cannot be taken on its egress",
    )
}

pub fn parse_upstream(text: &str) -> Result<SocketAddr, String> {
    parse_server(
        text,
        "for example 1.1.1.1, 10.0.0.53:5353 or [2606:4700::1111]:53",
        "; the upstream must be reachable through the container's eth0",
    )
}

/// How the options are named where they were given, for the messages that refuse a value:
/// flags on the command line ([`FLAGS`]), keys in a CNI configuration. One set of parsers
/// serves both front ends.
#[derive(Debug, Clone, Copy)]
pub struct OptionNames {
    pub upstream: &'static str,
    pub resolver: &'static str,
    pub edns_max: &'static str,
    pub keep: &'static str,
    pub only: &'static str,
    pub label: &'static str,
}

pub const FLAGS: OptionNames = OptionNames {
    upstream: "--upstream",
    resolver: "--resolver",
    edns_max: "--edns-max",
    keep: "--keep",
    only: "--only",
    label: "--label",
};

/// The upstreams: one IPv4 (required), at most one IPv6.
pub fn upstreams(
    given: &[String],
    names: OptionNames,
) -> Result<(SocketAddrV4, Option<SocketAddrV6>), String> {
    match parse_upstreams(given, names)? {
        (Some(v4), v6) => Ok((v4, v6)),
        (None, _) => Err(format!(
            "say where DNS should go: {} IP[:PORT]",
            names.upstream
        )),
    }
}

/// The command line's upstreams: none at all is allowed when `policy` (decisions) is given,
/// and then the queries no rule answers go where they were going.
pub fn optional_upstreams(
    given: &[String],
    policy: bool,
    names: OptionNames,
) -> Result<(Option<SocketAddrV4>, Option<SocketAddrV6>), String> {
    match parse_upstreams(given, names)? {
        (None, None) if !policy => Err(format!("say where DNS should go: {} IP[:PORT] (or decide names in the kernel: --block, --allow, --answer, --hosts)", names.upstream)),
        both => Ok(both),
    }
}

/// At most one upstream per family; an IPv6 one needs an IPv4 one.
fn parse_upstreams(
    given: &[String],
    names: OptionNames,
) -> Result<(Option<SocketAddrV4>, Option<SocketAddrV6>), String> {
    let up = names.upstream;
    let mut v4 = None;
    let mut v6 = None;
    for text in given {
        match parse_upstream(text).map_err(|e| format!("bad {up}: {e}"))? {
            SocketAddr::V4(a) if v4.is_none() => v4 = Some(a),
            SocketAddr::V6(a) if v6.is_none() => v6 = Some(a),
            SocketAddr::V4(_) => {
                return Err(format!(
                    "{up}: one IPv4 upstream only (a second {up} is for IPv6)"
                ))
            }
            SocketAddr::V6(_) => {
                return Err(format!(
                    "{up}: one IPv6 upstream only (a second {up} is for IPv4)"
                ))
            }
        }
    }
    match (v4, v6) {
        (Some(v4), v6) => Ok((Some(v4), v6)),
        (None, Some(_)) => Err(format!("{up}: an IPv4 upstream is needed too (IPv4 DNS always is redirected); add {up} IP[:PORT]")),
        (None, None) => Ok((None, None)),
    }
}

/// The nameservers to take over, each family's at most [`MAX_NAMESERVERS`]; IPv6 ones only
/// with an IPv6 upstream (`with_upstream6`), where their queries go.
pub fn resolvers(
    given: &[String],
    with_upstream6: bool,
    names: OptionNames,
) -> Result<Resolvers, String> {
    if given.iter().any(|text| text == ANY) {
        if given.len() > 1 {
            return Err(format!(
                "{} {ANY} takes every DNS server: give it alone, without addresses ({} given)",
                names.resolver,
                given.len()
            ));
        }
        return Ok(Resolvers::Any);
    }
    let mut named = Nameservers::default();
    for text in given {
        match parse_resolver(text).map_err(|e| format!("bad {}: {e}", names.resolver))? {
            SocketAddr::V4(a) => named.v4.push(a),
            SocketAddr::V6(a) if with_upstream6 => named.v6.push(a),
            SocketAddr::V6(a) => {
                return Err(format!(
                    "{} {a} is IPv6: give an IPv6 {} too ([IPv6]:PORT), where its queries go",
                    names.resolver, names.upstream
                ))
            }
        }
    }
    for (family, n) in [("IPv4", named.v4.len()), ("IPv6", named.v6.len())] {
        if n > MAX_NAMESERVERS {
            return Err(format!(
                "{}: at most {MAX_NAMESERVERS} {family} nameservers, {n} given",
                names.resolver
            ));
        }
    }
    Ok(if named.is_empty() {
        Resolvers::FromNamespace
    } else {
        Resolvers::Named(named)
    })
}

/// The resolver that stands for every DNS server (`--resolver any`, `"resolvers": "any"`).
pub const ANY: &str = "any";

/// The edns-max option: 0 leaves the size alone; below 512 is no size at all (RFC 6891 treats a
/// smaller one as 512), so it is refused rather than sent.
pub fn edns_max(given: Option<u16>, names: OptionNames) -> Result<u16, String> {
    match given {
        None => Ok(EDNS_MAX),
        Some(n @ 1..=511) => Err(format!("{} {n} is below 512, the smallest EDNS UDP size (RFC 6891); give 512 to 65535, or 0 to leave queries alone", names.edns_max)),
        Some(n) => Ok(n),
    }
}

/// The keep and only suffixes, checked, as one rule set.
pub fn rules(keep: &[String], only: &[String], names: OptionNames) -> Result<Rules, String> {
    policy_rules(
        &PolicyFlags {
            keep: keep.to_vec(),
            only: only.to_vec(),
            ..PolicyFlags::default()
        },
        None,
        names,
    )
}

/// The rules' options as given (the command line's; a CNI configuration has keep and only).
#[derive(Debug, Clone, Default)]
pub struct PolicyFlags {
    pub keep: Vec<String>,
    pub only: Vec<String>,
    pub allow: Vec<String>,
    pub block: Vec<String>,
    /// `NAME=ADDR`.
    pub answer: Vec<String>,
}

impl PolicyFlags {
    /// Some decision is asked for (a hosts file is one too).
    pub fn decides(&self) -> bool {
        !(self.allow.is_empty() && self.block.is_empty() && self.answer.is_empty())
    }
}

fn suffixes(option: &str, given: &[String]) -> Result<Vec<String>, String> {
    given
        .iter()
        .map(|s| rules::parse_suffix(s).map_err(|e| format!("bad {option}: {e}")))
        .collect()
}

/// Every rule option checked and combined ([`policy::build`]): routing, decisions and the
/// entries of a hosts file already read ([`read_hosts`]).
pub fn policy_rules(
    flags: &PolicyFlags,
    hosts: Option<Hosts>,
    names: OptionNames,
) -> Result<Rules, String> {
    let given = Given {
        keep: suffixes(names.keep, &flags.keep)?,
        only: suffixes(names.only, &flags.only)?,
        allow: suffixes("--allow", &flags.allow)?,
        block: suffixes("--block", &flags.block)?,
        answer: flags
            .answer
            .iter()
            .map(|a| parse_answer(a))
            .collect::<Result<_, _>>()?,
        hosts,
    };
    policy::build(&given).map_err(|e| e.to_string())
}

/// `--answer NAME=ADDR`: NAME a SUFFIX, ADDR an IPv4 or IPv6 address (brackets allowed).
pub fn parse_answer(text: &str) -> Result<(String, IpAddr), String> {
    let bad = |why: String| format!("bad --answer {text:?}: {why}");
    let (name, addr) = text
        .split_once('=')
        .ok_or_else(|| bad("give NAME=ADDR, e.g. api.example.com=10.0.0.5".into()))?;
    let name = rules::parse_suffix(name).map_err(bad)?;
    let bare = addr
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(addr);
    let addr = bare
        .parse::<IpAddr>()
        .map_err(|_| bad(format!("{addr:?} is not an IPv4 or IPv6 address")))?;
    Ok((name, addr))
}

/// Reads and parses a `--hosts` file, at most [`MAX_HOSTS_FILE`] bytes: read here, before
/// anything is attached, so that a file that cannot be read is a bad command line.
pub fn read_hosts(path: &Path) -> Result<Hosts, String> {
    let file = path.display().to_string();
    let whole = |what: String| HostsError {
        file: file.clone(),
        line: 0,
        what,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_HOSTS_FILE + 1).read_to_end(&mut bytes))
        .map_err(|e| whole(format!("cannot read it: {e}")).to_string())?;
    if bytes.len() as u64 > MAX_HOSTS_FILE {
        return Err(whole(format!(
            "larger than {} MiB, the most a hosts file may be",
            MAX_HOSTS_FILE >> 20
        ))
        .to_string());
    }
    policy::parse_hosts(&file, &bytes).map_err(|e| e.to_string())
}

/// `--block-rcode`: `nxdomain` (the default) or `refused`; true for refused.
pub fn block_rcode(text: Option<&str>) -> Result<bool, String> {
    match text.map(str::to_ascii_lowercase).as_deref() {
        None | Some("nxdomain") => Ok(false),
        Some("refused") => Ok(true),
        Some(_) => Err(format!(
            "bad --block-rcode {:?}: nxdomain or refused",
            text.unwrap_or_default()
        )),
    }
}

/// A label given by the user: refused rather than cut, so that what `--status` shows is what
/// was asked.
pub fn label(text: String, names: OptionNames) -> Result<String, String> {
    if text.len() > LABEL_MAX || text.chars().any(char::is_control) {
        return Err(format!(
            "{} {text:?}: at most {LABEL_MAX} bytes and no control characters",
            names.label
        ));
    }
    Ok(text)
}
