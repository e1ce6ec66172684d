//! What an attach is asked for and what it did: shared by both paths, the command line and
//! the report.

use super::rules::Rules;
use crate::namespace::dockerd::ResolverPorts;
use crate::namespace::resolv_conf::Nameservers;
use crate::settings::Settings;
use crate::target::Target;
use std::net::{SocketAddrV4, SocketAddrV6};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachRequest {
    pub target: Target,
    /// `--interface`; none: the one the container's routes use ([`super::detect::interface`]).
    pub interface: Option<String>,
    /// None only with a policy (decisions): the queries no rule answers go on where they were
    /// going, untouched.
    pub upstream: Option<SocketAddrV4>,
    /// The IPv6 upstream (a second `--upstream`), nameservers path only: without it IPv6 DNS
    /// passes untouched.
    pub upstream6: Option<SocketAddrV6>,
    /// `--resolver`: which queries the nameservers path takes on the interface's egress, or
    /// where to look for them.
    pub resolvers: Resolvers,
    /// `--dockerd-port` and `--dockerd-tcp-port`: the ones not given are found.
    pub dockerd_ports: ResolverPorts,
    pub redirect_all: bool,
    /// Send one DNS query to the upstream before attaching (off with --no-probe).
    pub probe_upstream: bool,
    /// The largest EDNS UDP payload size redirected queries may announce; 0 leaves it alone.
    pub edns_max: u16,
    /// `--keep`, `--only`, `--allow`, `--block`, `--answer`, `--hosts`: written into the
    /// query program's maps before it is attached (or in place of the attached ones).
    pub rules: Rules,
    /// `--block-rcode refused`: blocked names get REFUSED instead of NXDOMAIN.
    pub block_refused: bool,
    /// What the attachment is for, kept in its configuration (`--label`, else the target).
    pub label: String,
}

/// Which nameservers an attach takes over.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Resolvers {
    /// Docker's embedded resolver if the namespace has one, else the nameservers of the
    /// process's resolv.conf (`--pid` only).
    #[default]
    FromNamespace,
    /// These (`--resolver IP[:PORT]`), on the nameservers path; IPv6 ones need
    /// [`AttachRequest::upstream6`]. Never empty.
    Named(Nameservers),
    /// Every query to port 53 leaving the interface, whatever server it names (`--resolver
    /// any`; a CNI plugin, which cannot read the pod's resolv.conf): the nameservers path, each
    /// answer restored to come from the server asked. Not the upstreams, not the interface's
    /// own addresses.
    Any,
}

/// `--edns-max`'s default: DNS Flag Day 2020's size, below which answers are not fragmented
/// on common paths.
pub const EDNS_MAX: u16 = 1232;

/// What was attached, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    /// The interface queries leave through and answers arrive at.
    pub interface: String,
    pub settings: Settings,
    /// One line per protocol left with dockerd because its port could not be told.
    pub left_with_dockerd: Vec<String>,
    /// Why an IPv6 upstream that was given is not used (one line for the user).
    pub ipv6_not_redirected: Option<String>,
    /// The programs attached were kept and only their rules rewritten (same everything else).
    pub rules_updated_in_place: bool,
}
