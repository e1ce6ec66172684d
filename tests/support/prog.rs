//! Loading the programs and running them with BPF_PROG_TEST_RUN, for prog_test_run.rs and
//! fuzz_programs.rs: the counters, and the assertions on a verdict.

use super::packet::{load_programs, load_with, test_config, TC_ACT_REDIRECT, TC_ACT_UNSPEC};
use dnsredir::abi::{Config, Counters, COUNTERS_MAP, PATH_NAMESERVERS};
use dnsredir::bpf::elf::ObjectFile;
use dnsredir::bpf::load::Loaded;
use dnsredir::bpf::sys;
use dnsredir::layout::sum_percpu_counters;

/// The embedded object configured by `test_config(upstream_port, flags)`, loaded, or a panic.
pub fn load(upstream_port: u16, flags: u16) -> (ObjectFile, Loaded) {
    load_programs(upstream_port, flags).unwrap_or_else(|e| panic!("{e}"))
}

/// The embedded object with this configuration, loaded, or a panic.
pub fn load_config(config: &Config) -> (ObjectFile, Loaded) {
    load_with(config).unwrap_or_else(|e| panic!("{e}"))
}

/// The counters, summed over the CPUs.
pub fn counters(object: &ObjectFile, loaded: &Loaded) -> Counters {
    let map = loaded.map(object, COUNTERS_MAP).expect("counters map");
    let cpus = sys::possible_cpus().expect("cpus");
    let mut value = vec![0u8; std::mem::size_of::<Counters>().next_multiple_of(8) * cpus];
    sys::map_lookup(map, &0u32.to_ne_bytes(), &mut value).expect("lookup");
    sum_percpu_counters(&value)
}

/// The program of `section` run once on `packet`: its verdict and the frame it leaves.
pub fn run(loaded: &Loaded, section: &str, packet: &[u8]) -> (u32, Vec<u8>) {
    let program = loaded.program(section).expect("program");
    let out = sys::prog_test_run(&program.fd, packet, 1)
        .unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN on {} bytes: {e}", packet.len()));
    (out.retval, out.data)
}

/// `packet` through `section` comes back byte for byte, with TC_ACT_UNSPEC.
#[track_caller]
pub fn untouched(loaded: &Loaded, section: &str, packet: &[u8]) {
    assert_eq!(
        run(loaded, section, packet),
        (TC_ACT_UNSPEC, packet.to_vec())
    );
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

/// The embedded object with this configuration loaded: its programs and maps, or a panic.
pub fn load_programs_with(config: &Config) -> Loaded {
    load_config(config).1
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
