//! What the programs are told, typed: the one place that writes a [`Config`] and reads one back.
//! The byte encoding of its addresses and ports is the ABI crate's ([`crate::abi::raw`]).

use crate::abi::raw::{
    addr6_from_raw as addr6_from, addr6_raw as addr6, addr_from_raw as addr_from, addr_raw as addr,
    port_from_raw as port_from, port_raw as port,
};
use crate::abi::{
    Config, FLAG_ALLOWLIST, FLAG_ANY_RESOLVER, FLAG_BLOCK_REFUSED, FLAG_DECIDE, FLAG_NO_UPSTREAM,
    FLAG_REDIRECT_ALL, FLAG_RULES_KEEP, FLAG_RULES_ONLY, LABEL_MAX, MAX_NAMESERVERS,
    PATH_NAMESERVERS,
};
use crate::abi::{
    ANSWER_SCRATCH_MAP, EGRESS_SECTION, FLOWS6_MAP, FLOWS_MAP, QUERY_SECTION, REPLY_SECTION,
    RULES_MAP, RULES_SCRATCH_MAP,
};
use crate::bpf::load;
use crate::namespace::dockerd::{ResolverPorts, DOCKER_RESOLVER};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::str::FromStr;
use std::time::Duration;

/// How long a closing TCP flow keeps being restored (retransmitted FINs and ACKs).
pub const TCP_CLOSE_GRACE: Duration = Duration::from_secs(10);

/// `d` in jiffies, the programs' clock (see `FlowValue::stamp`), rounded up: one jiffy is the
/// resolution of CLOCK_MONOTONIC_COARSE (the kernel's tick; 4 ms at CONFIG_HZ=250). Should the
/// clock not say, the shortest tick Linux has (1 ms, CONFIG_HZ=1000): then a period is at
/// least `d`, never shorter.
pub fn jiffies(d: Duration) -> u64 {
    let mut res = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_getres writes one timespec.
    let known = unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC_COARSE, &mut res) } == 0;
    let tick = res.tv_sec as u128 * 1_000_000_000 + res.tv_nsec as u128;
    let tick = if known && tick > 0 { tick } else { 1_000_000 };
    d.as_nanos().div_ceil(tick) as u64
}

/// One attachment's configuration, as the loader thinks of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub path: Path,
    /// The interface queries leave through and answers arrive at.
    pub ifindex: u32,
    pub lo_ifindex: u32,
    /// The interface's IPv4 address: where redirected queries come from.
    pub source: Ipv4Addr,
    /// None: a policy alone (`FLAG_NO_UPSTREAM`), undecided queries go where they were going.
    pub upstream: Upstream<SocketAddrV4>,
    /// The largest EDNS UDP payload size redirected queries may announce; 0 leaves it alone.
    pub edns_max: u16,
    /// Which kinds of name rules the rules map holds (the program skips the lookup otherwise).
    pub rules: RuleKinds,
    /// What the attachment is for (at most [`LABEL_MAX`] bytes; [`label`] makes one).
    pub label: String,
}

/// A label as the configuration can hold it: at most [`LABEL_MAX`] bytes, cut at a character
/// boundary, control characters replaced (it is printed in reports and metrics labels).
pub fn label(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let c = if c.is_control() { '?' } else { c };
        if out.len() + c.len_utf8() > LABEL_MAX {
            break;
        }
        out.push(c);
    }
    out
}

/// Where queries are taken, with what only that path knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Path {
    /// Docker's embedded resolver, taken on lo ingress behind Docker's DNAT.
    EmbeddedResolver {
        ports: ResolverPorts,
        /// Single-label names (Docker's own) are redirected too.
        redirect_all: bool,
    },
    /// The namespace's own nameservers, taken on the interface's egress.
    Nameservers {
        nameservers: Vec<SocketAddrV4>,
        ipv6: Option<Ipv6Settings>,
        /// `--resolver any`: every server on port 53 is taken (but the upstreams and the
        /// interface's own addresses); the nameserver lists are empty.
        any: bool,
    },
}

/// The IPv6 half of the nameservers path: with an IPv6 upstream, or without one with
/// decisions in force (the IPv6 nameservers are then taken to answer what the rules decide;
/// the rest passes untouched).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv6Settings {
    pub upstream: Upstream<SocketAddrV6>,
    /// The interface's global IPv6 address: where queries leave from and answers arrive
    /// (`::` when there is no IPv6 upstream and the interface has none).
    pub source: Ipv6Addr,
    /// Empty with `--resolver any`.
    pub nameservers: Vec<SocketAddrV6>,
}

/// An upstream, or none: a policy without `--upstream` (the queries no rule answers go on
/// where they were going). Shown as the address, or `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Upstream<A>(pub Option<A>);

impl<A: fmt::Display> fmt::Display for Upstream<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(a) => a.fmt(f),
            None => f.write_str("none"),
        }
    }
}

/// An address (`"10.0.0.53:53".parse()`) is an upstream.
impl<A: FromStr> FromStr for Upstream<A> {
    type Err = A::Err;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(|a| Upstream(Some(a)))
    }
}

impl<A> From<A> for Upstream<A> {
    fn from(a: A) -> Self {
        Upstream(Some(a))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RuleKinds {
    /// Some rule keeps names with dockerd or the nameserver asked.
    pub keep: bool,
    /// Some rule redirects only the names under it.
    pub only: bool,
    /// Some rule decides an answer (allow, block, answer, hosts): the programs read every
    /// query to a server taken over and answer the decided ones.
    pub decide: bool,
    /// `--allow` is in force: names no decision covers are refused.
    pub allowlist: bool,
    /// `--block-rcode refused`.
    pub block_refused: bool,
    /// Bytes of name the rules map's keys hold ([`Config::rule_key_bytes`]); 0 without rules.
    pub key_bytes: u16,
}

impl RuleKinds {
    /// The configuration flags that tell the programs which rules are in force (the
    /// decisions' two options only with decisions).
    pub fn flags(self) -> u16 {
        let mut flags = 0;
        for (set, flag) in [
            (self.keep, FLAG_RULES_KEEP),
            (self.only, FLAG_RULES_ONLY),
            (self.decide, FLAG_DECIDE),
            (self.decide && self.allowlist, FLAG_ALLOWLIST),
            (self.decide && self.block_refused, FLAG_BLOCK_REFUSED),
        ] {
            if set {
                flags |= flag;
            }
        }
        flags
    }

    fn from_flags(flags: u16) -> RuleKinds {
        let decide = flags & FLAG_DECIDE != 0;
        RuleKinds {
            keep: flags & FLAG_RULES_KEEP != 0,
            only: flags & FLAG_RULES_ONLY != 0,
            decide,
            allowlist: decide && flags & FLAG_ALLOWLIST != 0,
            block_refused: decide && flags & FLAG_BLOCK_REFUSED != 0,
            key_bytes: 0,
        }
    }
}

impl Path {
    /// The name `--status` shows.
    pub fn name(&self) -> &'static str {
        match self {
            Path::EmbeddedResolver { .. } => "embedded-resolver",
            Path::Nameservers { .. } => "nameservers",
        }
    }
}

impl Settings {
    /// The configuration the programs of the object `build_id` read.
    pub fn to_config(&self, build_id: u64) -> Config {
        let mut flags = self.rules.flags();
        if self.upstream.0.is_none() {
            flags |= FLAG_NO_UPSTREAM;
        }
        let upstream = self.upstream.0;
        let mut config = Config {
            build_id,
            container_addr: addr(self.source),
            upstream_addr: upstream.map_or(0, |u| addr(*u.ip())),
            upstream_port: upstream.map_or(0, |u| port(u.port())),
            edns_max: port(self.edns_max),
            rule_key_bytes: self.rules.key_bytes,
            iface_ifindex: self.ifindex,
            lo_ifindex: self.lo_ifindex,
            tcp_close_grace_jiffies: jiffies(TCP_CLOSE_GRACE),
            ..Config::UNSET
        };
        match &self.path {
            Path::EmbeddedResolver {
                ports,
                redirect_all,
            } => {
                config.resolver_addr = addr(DOCKER_RESOLVER);
                config.dockerd_udp_port = ports.udp.map_or(0, port);
                config.dockerd_tcp_port = ports.tcp.map_or(0, port);
                if *redirect_all {
                    flags |= FLAG_REDIRECT_ALL;
                }
            }
            Path::Nameservers {
                nameservers,
                ipv6,
                any,
            } => {
                config.path = PATH_NAMESERVERS;
                if *any {
                    flags |= FLAG_ANY_RESOLVER;
                }
                let nameservers = &nameservers[..nameservers.len().min(MAX_NAMESERVERS)];
                config.nameserver_count = nameservers.len() as u16;
                for (i, ns) in nameservers.iter().enumerate() {
                    config.nameservers[i] = addr(*ns.ip());
                    config.nameserver_ports[i] = port(ns.port());
                }
                if let Some(v6) = ipv6 {
                    if let Some(up6) = v6.upstream.0 {
                        config.upstream6_addr = addr6(*up6.ip());
                        config.upstream6_port = port(up6.port());
                    }
                    config.container6_addr = addr6(v6.source);
                    let nameservers = &v6.nameservers[..v6.nameservers.len().min(MAX_NAMESERVERS)];
                    config.nameserver6_count = nameservers.len() as u16;
                    for (i, ns) in nameservers.iter().enumerate() {
                        config.nameservers6[4 * i..4 * i + 4].copy_from_slice(&addr6(*ns.ip()));
                        config.nameserver6_ports[i] = port(ns.port());
                    }
                }
            }
        }
        config.flags = flags;
        let text = label(&self.label);
        config.label[..text.len()].copy_from_slice(text.as_bytes());
        config
    }

    /// What a configuration read back from an attached program says (this build's layout:
    /// [`Config::from_bytes`] decodes nothing else).
    pub fn from_config(c: &Config) -> Settings {
        let path = if c.path == PATH_NAMESERVERS {
            let count = (c.nameserver_count as usize).min(MAX_NAMESERVERS);
            let nameservers = c.nameservers[..count]
                .iter()
                .zip(c.nameserver_ports)
                .map(|(a, p)| SocketAddrV4::new(addr_from(*a), port_from(p)))
                .collect();
            let ipv6 = (c.upstream6_port != 0 || c.nameserver6_count != 0).then(|| Ipv6Settings {
                upstream: Upstream((c.upstream6_port != 0).then(|| {
                    SocketAddrV6::new(
                        addr6_from(&c.upstream6_addr),
                        port_from(c.upstream6_port),
                        0,
                        0,
                    )
                })),
                source: addr6_from(&c.container6_addr),
                nameservers: c
                    .nameservers6
                    .chunks_exact(4)
                    .zip(c.nameserver6_ports)
                    .take((c.nameserver6_count as usize).min(MAX_NAMESERVERS))
                    .map(|(a, p)| SocketAddrV6::new(addr6_from(a), port_from(p), 0, 0))
                    .collect(),
            });
            Path::Nameservers {
                nameservers,
                ipv6,
                any: c.flags & FLAG_ANY_RESOLVER != 0,
            }
        } else {
            let dockerd = |raw: u16| (raw != 0).then(|| port_from(raw));
            Path::EmbeddedResolver {
                ports: ResolverPorts {
                    udp: dockerd(c.dockerd_udp_port),
                    tcp: dockerd(c.dockerd_tcp_port),
                },
                redirect_all: c.flags & FLAG_REDIRECT_ALL != 0,
            }
        };
        Settings {
            path,
            ifindex: c.iface_ifindex,
            lo_ifindex: c.lo_ifindex,
            source: addr_from(c.container_addr),
            upstream: Upstream((c.flags & FLAG_NO_UPSTREAM == 0).then(|| {
                SocketAddrV4::new(addr_from(c.upstream_addr), port_from(c.upstream_port))
            })),
            edns_max: port_from(c.edns_max),
            rules: RuleKinds {
                key_bytes: c.rule_key_bytes,
                ..RuleKinds::from_flags(c.flags)
            },
            label: {
                let end = c.label.iter().position(|&b| b == 0).unwrap_or(LABEL_MAX);
                label(&String::from_utf8_lossy(&c.label[..end]))
            },
        }
    }

    /// What to load: only the path's two programs (the verifier's time is most of an
    /// attach's), and the maps these settings leave unused at their smallest (a map a program
    /// refers to must exist, whatever its size): without an IPv6 upstream a one-entry IPv6
    /// flow table, without any upstream (a policy alone: nothing is redirected) a one-entry
    /// IPv4 flow table too, without name rules an 8-byte rule scratch buffer per CPU instead
    /// of 776 (the rules' code is dead then, which the verifier skips). The answers' array is
    /// sized by the attach, which knows the rules (`policy::answers_capacity`).
    pub fn load_options(&self) -> load::Options {
        let query = match self.path {
            Path::EmbeddedResolver { .. } => QUERY_SECTION,
            Path::Nameservers { .. } => EGRESS_SECTION,
        };
        let mut options = load::Options::sections(&[query, REPLY_SECTION]);
        if self.ipv6().and_then(|v6| v6.upstream.0).is_none() {
            options = options.max_entries(FLOWS6_MAP, 1);
        }
        if self.upstream.0.is_none() {
            options = options.max_entries(FLOWS_MAP, 1);
        }
        if self.rules == RuleKinds::default() {
            options = options.value_size(RULES_SCRATCH_MAP, 8);
        }
        // Without decisions the answer code is dead: its per-CPU buffer need not be 1 KiB.
        if !self.rules.decide {
            options = options.value_size(ANSWER_SCRATCH_MAP, 8);
        }
        if self.rules.key_bytes != 0 {
            options = options.key_size(RULES_MAP, 4 + self.rules.key_bytes as u32);
        }
        options
    }

    /// The IPv4 nameservers taken over (none on the embedded-resolver path).
    pub fn nameservers(&self) -> &[SocketAddrV4] {
        match &self.path {
            Path::Nameservers { nameservers, .. } => nameservers,
            Path::EmbeddedResolver { .. } => &[],
        }
    }

    /// The IPv6 side, when an IPv6 upstream is in force.
    pub fn ipv6(&self) -> Option<&Ipv6Settings> {
        match &self.path {
            Path::Nameservers { ipv6, .. } => ipv6.as_ref(),
            Path::EmbeddedResolver { .. } => None,
        }
    }

    /// dockerd's ports redirected (none on the nameservers path).
    pub fn dockerd_ports(&self) -> ResolverPorts {
        match &self.path {
            Path::EmbeddedResolver { ports, .. } => *ports,
            Path::Nameservers { .. } => ResolverPorts::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jiffies_follow_the_kernels_tick() {
        // CONFIG_HZ is one of 100, 250, 300, 1000.
        let hz = jiffies(Duration::from_secs(1));
        assert!([100, 250, 300, 1000].contains(&hz), "HZ {hz}");
        assert_eq!(jiffies(Duration::from_secs(10)), 10 * hz);
        assert_eq!(jiffies(Duration::from_nanos(1)), 1, "rounded up");
        assert_eq!(jiffies(Duration::ZERO), 0);
    }
    use crate::abi::LAYOUT_VERSION;

    fn nameservers_path() -> Settings {
        Settings {
            path: Path::Nameservers {
                nameservers: vec![
                    "8.8.8.8:53".parse().unwrap(),
                    "8.8.4.4:5300".parse().unwrap(),
                ],
                ipv6: None,
                any: false,
            },
            ifindex: 43,
            lo_ifindex: 1,
            source: Ipv4Addr::new(172, 18, 0, 2),
            upstream: "1.1.1.1:53".parse().unwrap(),
            edns_max: 1232,
            rules: RuleKinds::default(),
            label: "default/web-7".into(),
        }
    }

    #[test]
    fn nameservers_settings_sit_at_fixed_offsets() {
        let s = nameservers_path();
        let c = s.to_config(0x0102_0304_0506_0708);
        let b = c.to_bytes();
        assert_eq!(b.len(), 264);
        assert_eq!(&b[0..4], b"DNSR", "magic");
        assert_eq!(&b[4..8], &LAYOUT_VERSION.to_ne_bytes(), "layout");
        assert_eq!(&b[8..16], &0x0102_0304_0506_0708u64.to_ne_bytes());
        assert_eq!(&b[16..20], &[0; 4], "no resolver on this path");
        assert_eq!(&b[20..24], &[172, 18, 0, 2]);
        assert_eq!(&b[24..28], &[1, 1, 1, 1]);
        assert_eq!(&b[28..30], &[0, 53], "ports in network order");
        assert_eq!(&b[30..34], &[0; 4], "no dockerd ports");
        assert_eq!(&b[34..36], &0u16.to_ne_bytes(), "flags");
        assert_eq!(
            &b[36..38],
            &1232u16.to_be_bytes(),
            "edns_max, network order"
        );
        assert_eq!(&b[38..40], &[0, 0], "padding");
        assert_eq!(&b[40..44], &43u32.to_ne_bytes(), "iface_ifindex");
        assert_eq!(&b[44..48], &1u32.to_ne_bytes(), "lo_ifindex");
        assert_eq!(&b[48..56], &jiffies(TCP_CLOSE_GRACE).to_ne_bytes());
        assert_eq!(
            &b[56..64],
            &[8, 8, 8, 8, 8, 8, 4, 4],
            "nameservers, network order"
        );
        assert_eq!(&b[64..72], &[0; 8]);
        assert_eq!(
            &b[72..76],
            &[0, 53, 0x14, 0xb4],
            "their ports, network order"
        );
        assert_eq!(&b[76..80], &[0; 4]);
        assert_eq!(&b[80..82], &1u16.to_ne_bytes(), "path");
        assert_eq!(&b[82..84], &2u16.to_ne_bytes(), "nameserver_count");
        assert_eq!(&b[84..88], &[0; 4], "padding");
        assert_eq!(&b[88..200], &[0; 112], "no IPv6 upstream");
        assert_eq!(&b[200..213], b"default/web-7", "label");
        assert_eq!(&b[213..264], &[0; 51], "NUL-padded");
        assert_eq!(Config::from_bytes(&b), Some(c));
        assert_eq!(Settings::from_config(&c), s);
        assert_eq!(s.path.name(), "nameservers");
    }

    #[test]
    fn embedded_resolver_settings_round_trip() {
        let s = Settings {
            path: Path::EmbeddedResolver {
                ports: ResolverPorts {
                    udp: Some(41552),
                    tcp: None,
                },
                redirect_all: true,
            },
            rules: RuleKinds {
                keep: true,
                only: false,
                ..RuleKinds::default()
            },
            edns_max: 0,
            ..nameservers_path()
        };
        let b = s.to_config(7).to_bytes();
        assert_eq!(&b[16..20], &[127, 0, 0, 11], "resolver, network order");
        assert_eq!(&b[30..32], &41552u16.to_be_bytes());
        assert_eq!(&b[32..34], &[0, 0], "TCP stays with dockerd");
        assert_eq!(
            &b[34..36],
            &(FLAG_REDIRECT_ALL | FLAG_RULES_KEEP).to_ne_bytes(),
            "flags"
        );
        assert_eq!(&b[56..88], &[0; 32], "no nameservers, path 0");
        let back = Config::from_bytes(&b).expect("this layout");
        assert_eq!(Settings::from_config(&back), s);
        assert_eq!(s.path.name(), "embedded-resolver");
        assert!(s.nameservers().is_empty());
    }

    #[test]
    fn a_path_loads_its_two_programs_and_an_ipv6_table_only_with_an_ipv6_upstream() {
        let nameservers = nameservers_path();
        let o = nameservers.load_options();
        assert_eq!(
            o.sections,
            Some(vec![EGRESS_SECTION.to_string(), REPLY_SECTION.to_string()])
        );
        assert_eq!(o.max_entries, vec![(FLOWS6_MAP.to_string(), 1)]);
        assert_eq!(
            o.value_size,
            vec![
                (RULES_SCRATCH_MAP.to_string(), 8),
                (ANSWER_SCRATCH_MAP.to_string(), 8)
            ]
        );
        let with_rules = Settings {
            rules: RuleKinds {
                keep: true,
                only: false,
                ..RuleKinds::default()
            },
            ..nameservers_path()
        };
        assert_eq!(
            with_rules.load_options().value_size,
            vec![(ANSWER_SCRATCH_MAP.to_string(), 8)]
        );
        let resolver = Settings {
            path: Path::EmbeddedResolver {
                ports: ResolverPorts::default(),
                redirect_all: false,
            },
            ..nameservers_path()
        };
        assert_eq!(
            resolver.load_options().sections,
            Some(vec![QUERY_SECTION.to_string(), REPLY_SECTION.to_string()])
        );
        let dual = Settings {
            path: Path::Nameservers {
                nameservers: vec![],
                any: true,
                ipv6: Some(Ipv6Settings {
                    upstream: "[fd00::53]:53".parse().unwrap(),
                    source: "fd00::2".parse().unwrap(),
                    nameservers: vec![],
                }),
            },
            ..nameservers_path()
        };
        assert_eq!(dual.load_options().max_entries, vec![]);
    }

    #[test]
    fn labels_fit_the_configuration() {
        assert_eq!(label("kube-system/coredns-1"), "kube-system/coredns-1");
        assert_eq!(label("a\nb\u{7}"), "a?b?");
        let long = "é".repeat(40);
        let cut = label(&long);
        assert_eq!(cut.len(), LABEL_MAX, "32 two-byte characters");
        assert!(long.starts_with(&cut));
        let s = Settings {
            label: long,
            ..nameservers_path()
        };
        assert_eq!(Settings::from_config(&s.to_config(1)).label, cut);
    }

    #[test]
    fn ipv6_fields_sit_after_the_ipv4_ones() {
        let up: Ipv6Addr = "2001:db8::53".parse().unwrap();
        let ns: Ipv6Addr = "fd00:dead:1::1".parse().unwrap();
        let s = Settings {
            path: Path::Nameservers {
                nameservers: vec!["8.8.8.8:53".parse().unwrap()],
                ipv6: Some(Ipv6Settings {
                    upstream: SocketAddrV6::new(up, 5353, 0, 0).into(),
                    source: "fd00:dead:1::2".parse().unwrap(),
                    nameservers: vec![SocketAddrV6::new(ns, 53, 0, 0)],
                }),
                any: false,
            },
            ..nameservers_path()
        };
        let c = s.to_config(1);
        let b = c.to_bytes();
        assert_eq!(&b[88..104], &up.octets(), "upstream6, network order");
        assert_eq!(&b[120..136], &ns.octets(), "nameservers6[0]");
        assert_eq!(&b[136..184], &[0; 48]);
        assert_eq!(&b[184..186], &[0, 53], "nameserver6_ports[0]");
        assert_eq!(&b[192..194], &5353u16.to_be_bytes(), "upstream6_port");
        assert_eq!(&b[194..196], &1u16.to_ne_bytes(), "nameserver6_count");
        assert_eq!(Settings::from_config(&c), s);
    }

    #[test]
    fn any_resolver_is_a_flag_and_empty_tables() {
        let s = Settings {
            path: Path::Nameservers {
                nameservers: Vec::new(),
                ipv6: Some(Ipv6Settings {
                    upstream: "[2001:db8::53]:53".parse().unwrap(),
                    source: "fd00:dead:1::2".parse().unwrap(),
                    nameservers: Vec::new(),
                }),
                any: true,
            },
            rules: RuleKinds {
                keep: true,
                only: false,
                ..RuleKinds::default()
            },
            ..nameservers_path()
        };
        let c = s.to_config(1);
        assert_eq!(c.flags, FLAG_ANY_RESOLVER | FLAG_RULES_KEEP);
        assert_eq!(FLAG_ANY_RESOLVER, 16, "the bit after the rules' flags");
        let b = c.to_bytes();
        assert_eq!(&b[34..36], &(16u16 | 4).to_ne_bytes(), "flags");
        assert_eq!(&b[56..80], &[0; 24], "no nameservers, no ports");
        assert_eq!(&b[80..82], &1u16.to_ne_bytes(), "path");
        assert_eq!(&b[82..84], &0u16.to_ne_bytes(), "nameserver_count");
        assert_eq!(&b[120..184], &[0; 64], "no IPv6 nameservers");
        assert_eq!(&b[194..196], &0u16.to_ne_bytes(), "nameserver6_count");
        assert_eq!(Settings::from_config(&c), s);
        assert_eq!(s.path.name(), "nameservers");
        // The bit means nothing on the embedded-resolver path.
        let mut other = c;
        other.path = crate::abi::PATH_EMBEDDED_RESOLVER;
        assert!(matches!(
            Settings::from_config(&other).path,
            Path::EmbeddedResolver { .. }
        ));
    }
}
