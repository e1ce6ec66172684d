//! Loading the programs and running them with BPF_PROG_TEST_RUN, for the `*_prog.rs` tests,
//! prog_test_run.rs and fuzz_programs.rs: the counters, the assertions on a verdict, and the
//! nameservers path of each family on a test bench.

use super::packet::{
    load_programs, load_with, test_config, CONTAINER, TC_ACT_REDIRECT, TC_ACT_UNSPEC, UPSTREAM,
    UPSTREAM_PORT,
};
use super::require_root;
use dnsredir::abi::raw::{addr6_raw, addr_raw, port_raw};
use dnsredir::abi::{
    Config, Counters, EventHeader, WatchControl, COUNTERS_MAP, EVENTS_MAP, EVENTS_RING_SIZE,
    EVENT_SIZE, FLAG_ANY_RESOLVER, PATH_NAMESERVERS, RULES_MAP, WATCH_MAP,
};
use dnsredir::bpf::elf::ObjectFile;
use dnsredir::bpf::load::Loaded;
use dnsredir::bpf::ringbuf::{self, RingBuf};
use dnsredir::bpf::sys;
use dnsredir::redirect::rules::{self, Rules};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The embedded object configured by `test_config(upstream_port, flags)`, loaded, or a panic
/// (a clear one without root).
pub fn load(upstream_port: u16, flags: u16) -> (ObjectFile, Loaded) {
    require_root();
    load_programs(upstream_port, flags).unwrap_or_else(|e| panic!("{e}"))
}

/// The embedded object with this configuration, loaded, or a panic (a clear one without root).
pub fn load_config(config: &Config) -> (ObjectFile, Loaded) {
    require_root();
    load_with(config).unwrap_or_else(|e| panic!("{e}"))
}

/// Rule suffixes as the command line's parser leaves them, or a panic.
pub fn suffixes(v: &[&str]) -> Vec<String> {
    v.iter()
        .map(|s| rules::parse_suffix(s).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

/// The object loaded as the loader would for `--keep keep... --only only...` on `config`: the
/// rules' flags added, the rules map filled.
pub fn load_with_rules(config: &Config, keep: &[&str], only: &[&str]) -> (ObjectFile, Loaded) {
    let rules = Rules::new(&suffixes(keep), &suffixes(only)).expect("rules");
    let (object, loaded) = load_config(&Config {
        flags: config.flags | rules.kinds().flags(),
        ..*config
    });
    let map = loaded.map(&object, RULES_MAP).expect("rules map");
    let maps = rules::RuleMaps {
        rules: map,
        answers: loaded.map(&object, dnsredir::abi::ANSWERS_MAP),
    };
    rules::fill_new(maps, &rules).expect("fill");
    (object, loaded)
}

/// The counters, summed over the CPUs.
pub fn counters(object: &ObjectFile, loaded: &Loaded) -> Counters {
    let map = loaded.map(object, COUNTERS_MAP).expect("counters map");
    let cpus = sys::possible_cpus().expect("cpus");
    let mut value = vec![0u8; std::mem::size_of::<Counters>().next_multiple_of(8) * cpus];
    sys::map_lookup(map, &0u32.to_ne_bytes(), &mut value).expect("lookup");
    Counters::sum_per_cpu(&value)
}

/// The program of `section` run once on `packet`: its verdict and the frame it leaves.
pub fn run(loaded: &Loaded, section: &str, packet: &[u8]) -> (u32, Vec<u8>) {
    let program = loaded.program(section).expect("program");
    let out = sys::prog_test_run(&program.fd, packet, 1)
        .unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN on {} bytes: {e}", packet.len()));
    (out.retval, out.data)
}

/// `test_config(upstream_port, flags)` turned to the nameservers path: no dockerd, no resolver
/// address; the caller adds the nameservers.
pub fn nameservers_path_config(upstream_port: u16, flags: u16) -> Config {
    let mut c = test_config(upstream_port, flags);
    c.path = PATH_NAMESERVERS;
    c.dockerd_udp_port = 0;
    c.dockerd_tcp_port = 0;
    c.resolver_addr = 0;
    c
}

/// `frame` through `section` comes back as it went in, with TC_ACT_UNSPEC.
#[track_caller]
pub fn assert_passed(loaded: &Loaded, section: &str, frame: &[u8], what: &str) {
    assert_eq!(
        run(loaded, section, frame),
        (TC_ACT_UNSPEC, frame.to_vec()),
        "{what}: through {section}, TC_ACT_UNSPEC and the frame untouched"
    );
}

/// `frame` through `section` is redirected; the frame the program leaves.
#[track_caller]
pub fn assert_redirected(loaded: &Loaded, section: &str, frame: &[u8], what: &str) -> Vec<u8> {
    let (ret, out) = run(loaded, section, frame);
    assert_eq!(
        ret, TC_ACT_REDIRECT,
        "{what}: through {section}, redirected"
    );
    out
}

pub use dnsredir::bpf::sys::monotonic_ns;

/// The events ring the programs write for `--watch`, mapped as the watcher maps it.
pub fn events_ring(object: &ObjectFile, loaded: &Loaded) -> RingBuf {
    let events = loaded.map(object, EVENTS_MAP).expect("EVENTS map");
    let info = sys::map_info(events).expect("map info");
    assert_eq!(info.map_type, ringbuf::BPF_MAP_TYPE_RINGBUF);
    assert_eq!(info.max_entries, EVENTS_RING_SIZE);
    let fd = events.try_clone().expect("dup");
    RingBuf::new(fd, info.max_entries as usize).expect("mmap ring")
}

/// The watcher's flag as `--watch` writes it.
pub fn set_watch(object: &ObjectFile, loaded: &Loaded, control: WatchControl) {
    let map = loaded.map(object, WATCH_MAP).expect("WATCH map");
    sys::map_update(map, &0u32.to_ne_bytes(), &control.to_bytes()).expect("update");
}

/// The flag of a live watcher: this process, refreshed now.
pub fn watch(object: &ObjectFile, loaded: &Loaded) {
    let control = WatchControl {
        watcher_pid: std::process::id(),
        refreshed_ns: monotonic_ns(),
        ..Default::default()
    };
    set_watch(object, loaded, control);
}

/// The events in the ring, taken out: each one's header and the DNS message bytes it carries.
pub fn take_events(ring: &mut RingBuf) -> Vec<(EventHeader, Vec<u8>)> {
    let mut out = Vec::new();
    ring.consume(|r| {
        assert_eq!(r.len(), EVENT_SIZE, "every record has the fixed size");
        let head = EventHeader::from_bytes(r).expect("header");
        let data = r[EventHeader::SIZE..EventHeader::SIZE + head.captured as usize].to_vec();
        out.push((head, data));
    });
    out
}

/// The nameservers resolv.conf names (the default bridge's 8.8.8.8, say), and their IPv6
/// counterparts, with the IPv6 container and upstream.
pub const NAMESERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 53);
pub const SECOND_NAMESERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 54);
pub const CONTAINER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xdead, 1, 0, 0, 0, 0, 2);
pub const NAMESERVER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xdead, 1, 0, 0, 0, 0, 1);
pub const SECOND_NAMESERVER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0x4860, 0x4860, 0, 0, 0, 0, 0x8888);
pub const UPSTREAM6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xdead, 2, 0, 0, 0, 0, 0x53);
pub const UPSTREAM6_PORT: u16 = 5353;

/// The nameservers path of one family on a test bench: its configuration, with two nameservers
/// taken over on port 53, and the addresses its frames carry. Tests written against it run for
/// both families.
pub struct NameserversPath {
    pub config: Config,
    pub container: IpAddr,
    pub nameservers: [IpAddr; 2],
    pub upstream: IpAddr,
    pub upstream_port: u16,
}

impl NameserversPath {
    /// IPv4 nameservers only: IPv6 DNS has no upstream.
    pub fn ipv4() -> NameserversPath {
        let nameservers = [NAMESERVER.into(), SECOND_NAMESERVER.into()];
        NameserversPath::new(
            CONTAINER.into(),
            nameservers,
            UPSTREAM.into(),
            UPSTREAM_PORT,
        )
    }

    /// IPv6 nameservers only (the IPv4 upstream of [`test_config`] is left, unused).
    pub fn ipv6() -> NameserversPath {
        let nameservers = [NAMESERVER6.into(), SECOND_NAMESERVER6.into()];
        NameserversPath::new(
            CONTAINER6.into(),
            nameservers,
            UPSTREAM6.into(),
            UPSTREAM6_PORT,
        )
    }

    /// The IPv4 path, then the IPv6 one.
    pub fn both() -> [NameserversPath; 2] {
        [NameserversPath::ipv4(), NameserversPath::ipv6()]
    }

    /// The configuration as the loader writes it for these addresses, all of one family.
    fn new(
        container: IpAddr,
        nameservers: [IpAddr; 2],
        upstream: IpAddr,
        upstream_port: u16,
    ) -> NameserversPath {
        let mut c = nameservers_path_config(UPSTREAM_PORT, 0);
        match (container, upstream) {
            (IpAddr::V4(container), IpAddr::V4(upstream)) => {
                c.container_addr = addr_raw(container);
                c.upstream_addr = addr_raw(upstream);
                c.upstream_port = port_raw(upstream_port);
            }
            (IpAddr::V6(container), IpAddr::V6(upstream)) => {
                c.container6_addr = addr6_raw(container);
                c.upstream6_addr = addr6_raw(upstream);
                c.upstream6_port = port_raw(upstream_port);
            }
            _ => panic!("container {container} and upstream {upstream}: one family"),
        }
        for (slot, nameserver) in nameservers.into_iter().enumerate() {
            match nameserver {
                IpAddr::V4(ns) if container.is_ipv4() => {
                    c.nameservers[slot] = addr_raw(ns);
                    c.nameserver_ports[slot] = port_raw(53);
                    c.nameserver_count += 1;
                }
                IpAddr::V6(ns) if container.is_ipv6() => {
                    c.nameservers6[4 * slot..4 * slot + 4].copy_from_slice(&addr6_raw(ns));
                    c.nameserver6_ports[slot] = port_raw(53);
                    c.nameserver6_count += 1;
                }
                _ => panic!("nameserver {nameserver} for the container {container}: one family"),
            }
        }
        NameserversPath {
            config: c,
            container,
            nameservers,
            upstream,
            upstream_port,
        }
    }

    /// "IPv4" or "IPv6", for failure messages.
    pub fn family(&self) -> &'static str {
        if self.container.is_ipv4() {
            "IPv4"
        } else {
            "IPv6"
        }
    }

    /// Only the first nameserver taken over (the second one's slot filled but not counted).
    pub fn one_nameserver(mut self) -> NameserversPath {
        match self.container {
            IpAddr::V4(_) => self.config.nameserver_count = 1,
            IpAddr::V6(_) => self.config.nameserver6_count = 1,
        }
        self
    }

    /// `--resolver any`: the flag set and the nameserver tables empty, as the loader writes
    /// them (the [`Self::nameservers`] stay, as servers a test may ask).
    pub fn any_resolver(mut self) -> NameserversPath {
        let c = &mut self.config;
        c.flags |= FLAG_ANY_RESOLVER;
        c.nameservers = [0; 4];
        c.nameserver_ports = [0; 4];
        c.nameserver_count = 0;
        c.nameservers6 = [0; 16];
        c.nameserver6_ports = [0; 4];
        c.nameserver6_count = 0;
        self
    }

    /// The upstream on `port` instead.
    pub fn upstream_on(mut self, port: u16) -> NameserversPath {
        match self.container {
            IpAddr::V4(_) => self.config.upstream_port = port_raw(port),
            IpAddr::V6(_) => self.config.upstream6_port = port_raw(port),
        }
        self.upstream_port = port;
        self
    }

    /// The programs loaded with this configuration.
    pub fn load(&self) -> Loaded {
        load_config(&self.config).1
    }
}
