//! What an attach is asked for and what it did: shared by both paths, the command line and
//! the report.

use super::rules::Rules;
use crate::abi::Config;
use crate::namespace::dockerd::ResolverPorts;
use crate::namespace::resolv_conf::Nameservers;
use crate::target::Target;
use std::net::{Ipv4Addr, SocketAddrV4, SocketAddrV6};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachRequest {
    pub target: Target,
    pub interface: String,
    pub upstream: SocketAddrV4,
    /// The IPv6 upstream (a second `--upstream`), nameservers path only: without it IPv6 DNS
    /// passes untouched.
    pub upstream6: Option<SocketAddrV6>,
    /// `--resolver`: the nameservers to take over on the interface's egress (the nameservers
    /// path; IPv6 ones need [`Self::upstream6`]); empty: Docker's embedded resolver if there is
    /// one, else resolv.conf's nameservers.
    pub resolvers: Nameservers,
    /// `--dockerd-port` and `--dockerd-tcp-port`: the ones not given are found.
    pub dockerd_ports: ResolverPorts,
    pub redirect_all: bool,
    /// Send one DNS query to the upstream before attaching (off with --no-probe).
    pub probe_upstream: bool,
    /// The largest EDNS UDP payload size redirected queries may announce; 0 leaves it alone.
    pub edns_max: u16,
    /// `--keep` and `--only`: written into the query program's map before it is attached.
    pub rules: Rules,
}

/// `--edns-max`'s default: DNS Flag Day 2020's size, below which answers are not fragmented
/// on common paths.
pub const EDNS_MAX: u16 = 1232;

/// How long a closing TCP flow keeps being restored (retransmitted FINs and ACKs).
pub const TCP_CLOSE_GRACE_NS: u64 = 10_000_000_000;

/// What was attached, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    pub config: Config,
    pub container_addr: Ipv4Addr,
    pub ports: ResolverPorts,
    /// One line per protocol left with dockerd because its port could not be told.
    pub left_with_dockerd: Vec<String>,
    /// The nameservers path: the nameservers taken over, the IPv6 ones to the IPv6 upstream
    /// (none on the embedded-resolver path).
    pub nameservers: Nameservers,
    /// Why an IPv6 upstream that was given is not used (one line for the user).
    pub ipv6_not_redirected: Option<String>,
}
