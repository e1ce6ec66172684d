//! Test harness for dnsredir's end-to-end tests (std + libc only).
//!
//! - [`dns`]: a stand-in authoritative DNS server ([`DnsServer`]) and stub-resolver-like clients
//!   ([`query_a`], [`query_many`]) that run inside a network namespace;
//! - [`netns`]: entering namespaces, running commands in them, RAII [`Netns`], [`TcpEcho`];
//! - [`docker`]: [`DockerLikeNet`], Docker's topology for one container, plus `run_dnsredir`
//!   and tc helpers;
//! - [`json`]: a tiny JSON parser for `--status --json`;
//! - [`packet`]: crafted frames and checksums for BPF_PROG_TEST_RUN (also used by bench/prog.rs).
//!
//! Every namespace is named `drt<pid>x<n><role>` and deleted on Drop (stale ones from killed
//! test processes are removed the next time a topology is built).
#![allow(dead_code, unused_imports)]

pub mod dns;
pub mod docker;
pub mod json;
pub mod netns;
pub mod packet;

pub use dns::{query, query_a, query_many, DnsServer, DnsServerBuilder, ManyResult, Reply};
pub use docker::{
    count_dnsredir_filters, dnsredir_bin, has_clsact, run_dnsredir, serial, tc_filters,
    DockerLikeNet, Options, DOCKER_RESOLVER,
};
pub use json::Json;
pub use netns::{
    enter_netns, in_netns, ns_run, ns_run_timeout, ping, run, run_timeout, tcp_echo_roundtrip,
    CmdOutput, Netns, TcpEcho,
};

/// The root/CI rule: true when the test can run. Not root: with `CI=true` the test FAILS (panic),
/// otherwise it prints that it is skipped and the caller returns.
pub fn require_root() -> bool {
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var("CI").map(|v| v == "true").unwrap_or(false) {
        panic!("this test needs root (CI=true, so not skipping)");
    }
    eprintln!("SKIPPED: this test needs root (bpf(2), network namespaces, tc, iptables)");
    false
}

/// The non-empty lines of a text.
pub fn lines(s: &str) -> Vec<&str> {
    s.lines().filter(|l| !l.trim().is_empty()).collect()
}
