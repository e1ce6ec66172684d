//! Test harness for dnsredir's end-to-end tests (std + libc only).
//!
//! - [`answers`]: the programs' own answers (issue 19) rebuilt from first principles: rules
//!   and records written as the byte contract says, the frames a query must become, a model of
//!   the decision, BPF_PROG_TEST_RUN with skb->mark;
//! - [`cni`]: the nameservers path's CNI-style topology ([`cni::Cni`]);
//! - [`dns`]: a stand-in authoritative DNS server ([`dns::DnsServer`]) and stub-resolver-like clients
//!   ([`query_a`], [`query_many`]) that run inside a network namespace;
//! - [`netns`]: entering namespaces, running commands in them, RAII [`Netns`], [`TcpEcho`], the
//!   root check of the tests that need root ([`require_root`]);
//! - [`docker`]: [`DockerLikeNet`], Docker's topology for one container, plus `run_dnsredir`
//!   and tc helpers;
//! - [`json`]: a tiny JSON parser for `--status --json`;
//! - [`metrics`]: a running `dnsredir --metrics` ([`metrics::MetricsServer`]), its pages, small
//!   namespaces to attach to;
//! - [`watcher`]: a running `dnsredir --watch` ([`watcher::Watcher`]);
//! - [`packet`]: crafted frames and checksums for BPF_PROG_TEST_RUN (also used by bench/prog.rs).
//! - [`reliability`]: what the fault, concurrency and load tests share (the binary run with extra
//!   environment variables, the container's tc state, a sampling thread);
//! - [`script`]: the real-runtime scripts (`scripts/docker-e2e`, `scripts/podman-e2e`) run as
//!   one test each.
//!
//! Every namespace is named `drt<pid>x<n><role>` and deleted on Drop (stale ones from killed
//! test processes are removed the next time a topology is built).
// Each test binary (and bench/prog.rs, for dns.rs, netns.rs and packet.rs) compiles its own copy
// of this module and uses a subset of it, and rustc judges dead code per binary: without this
// allow, every binary would warn about the helpers only the others use. Helpers that no binary
// uses are removed (checked by building each test binary without this line).
#![allow(dead_code, unused_imports)]

pub mod answers;
pub mod cni;
pub mod dns;
pub mod docker;
pub mod json;
pub mod metrics;
pub mod netns;
pub mod packet;
pub mod prog;
pub mod redirect;
pub mod reliability;
pub mod rng;
pub mod script;
pub mod watcher;

pub use dns::{query_a, query_many, DnsServer, DnsServerBuilder};
pub use docker::{
    count_dnsredir_filters, dnsredir_bin, has_clsact, run_dnsredir, serial, tc_filters,
    DockerLikeNet, DOCKER_RESOLVER,
};
pub use json::Json;
pub use netns::{
    in_netns, ns_run, ns_run_timeout, ping, require_root, run, tcp_echo_roundtrip, Netns, TcpEcho,
};

/// The non-empty lines of a text.
pub fn lines(s: &str) -> Vec<&str> {
    s.lines().filter(|l| !l.trim().is_empty()).collect()
}

/// Every one of `expected` is in `text` (`what` says which text, and the failure which part is
/// missing).
pub fn assert_mentions<S: AsRef<str>>(text: &str, expected: &[S], what: &str) {
    for e in expected {
        let e = e.as_ref();
        assert!(text.contains(e), "{what} should mention {e:?}:\n{text}");
    }
}
