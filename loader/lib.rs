//! dnsredir: redirect a container's DNS with TC-BPF programs, loaded by our own ELF loader and
//! attached over rtnetlink.
//!
//! Data flows one way: the command line ([`cli`]) or a CNI runtime ([`cni`]) makes a plain
//! request (their options parsed once, [`options`]) → facts about the
//! target namespace ([`target`]), the upstream tried ([`probe`]) → the object loaded ([`bpf`]) → attached ([`redirect`], over
//! [`net`]) → read back ([`inspect`]) → shown ([`report`]).

pub use dnsredir_abi as abi;
pub mod bpf;
pub mod cli;
pub mod cni;
pub mod dns;
pub mod error;
pub mod fault;
pub mod inspect;
pub mod install;
pub mod metrics;
pub mod namespace;
pub mod net;
pub mod options;
pub mod probe;
pub mod redirect;
pub mod report;
pub mod settings;
pub mod target;
pub mod watcher;
