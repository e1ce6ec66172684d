//! Memory layouts shared by the BPF programs and the loader.
//!
//! This one file is compiled into both crates (the loader includes it with `#[path]`), so the
//! configuration, the flow table and the counters cannot drift apart between the two sides.
//! Addresses and ports are kept in network byte order exactly as they sit in a packet, so the
//! programs compare raw loads against them without swapping.

/// Set in [`Config::flags`]: redirect every query, also single-label names (Docker's own names).
pub const FLAG_REDIRECT_ALL: u16 = 1;
/// Set in [`Config::flags`] by the benchmark only: skip the counters, to measure what they cost.
/// The verifier sees the frozen flag and drops the dead branch, so the program is the same
/// as one compiled without counters.
pub const FLAG_NO_COUNTERS: u16 = 2;

/// The per-container configuration, the value of the `CONFIG` symbol in `.rodata`.
/// The loader writes it into the read-only map before loading, so the verifier sees constants.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// The address applications query: 127.0.0.11 in Docker.
    pub resolver_addr: u32,
    /// The container's eth0 IPv4 address: the source of redirected queries.
    pub container_addr: u32,
    pub upstream_addr: u32,
    pub upstream_port: u16,
    /// The port dockerd's resolver listens on for UDP after Docker's DNAT; 0 leaves UDP alone.
    pub dockerd_udp_port: u16,
    /// Same for TCP; 0 leaves TCP alone.
    pub dockerd_tcp_port: u16,
    pub flags: u16,
    pub eth0_ifindex: u32,
    pub lo_ifindex: u32,
}

/// A redirected flow, as the reply will show it on eth0.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowKey {
    /// The client's source port (network order), unchanged by the redirect.
    pub port: u16,
    /// The DNS message id for UDP, so a stale entry cannot capture a direct query that reuses the port.
    pub dns_id: u16,
    /// IPPROTO_UDP or IPPROTO_TCP.
    pub proto: u8,
    pub pad: [u8; 3],
}

/// What the reply must get back: the addresses the client originally used.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowValue {
    /// For TCP: when the first FIN of the connection was seen (bpf_ktime_get_ns), 0 while open.
    pub closing_since_ns: u64,
    pub client_addr: u32,
    pub resolver_addr: u32,
    pub resolver_port: u16,
    pub pad: [u16; 3],
}

/// How long a closing TCP flow still gets its segments restored (retransmitted FINs and ACKs),
/// before its entry is dropped so that its port cannot capture a later direct connection.
pub const TCP_CLOSE_GRACE_NS: u64 = 10_000_000_000;

/// Per-CPU packet counters, one array element; the loader sums them over CPUs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub queries_redirected_udp: u64,
    /// TCP connections redirected (their SYNs).
    pub queries_redirected_tcp: u64,
    /// Every TCP segment sent to the upstream, SYNs included.
    pub tcp_segments_redirected: u64,
    /// Single-label names left to dockerd (Docker's container and service names).
    pub queries_kept_for_dockerd: u64,
    /// One per UDP answer; every segment of a redirected TCP connection.
    pub replies_restored: u64,
    /// Packets from the upstream that matched no redirected flow.
    pub replies_unknown_flow: u64,
    /// Everything else: not DNS to the resolver, not from the upstream, or not parseable.
    pub passed: u64,
    /// A checksum helper or a redirect refused the packet.
    pub failures: u64,
}

/// Capacity of the LRU table of redirected flows.
pub const FLOW_TABLE_ENTRIES: u32 = 16384;

/// Section and symbol names the loader looks for.
pub const QUERY_SECTION: &str = "dnsredir/query";
pub const REPLY_SECTION: &str = "dnsredir/reply";
pub const CONFIG_SYMBOL: &str = "CONFIG";
pub const FLOWS_MAP: &str = "FLOWS";
pub const COUNTERS_MAP: &str = "COUNTERS";
