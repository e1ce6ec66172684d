//! Memory layouts shared by dnsredir's BPF programs (kernel side) and its loader (user side).
//!
//! Every struct is `#[repr(C)]` and spells out its padding as fields, so each of its bytes is
//! defined: the loader fills maps with [`Config::to_bytes`] and reads them back with the
//! `from_bytes` functions, never by casting memory. A compile-time check per struct proves that
//! the fields cover it entirely.
//!
//! Addresses and ports are kept in network byte order exactly as they sit in a packet, so the
//! programs compare raw loads against them without swapping; every other integer is in the
//! host's order, as the kernel stores map values.
#![no_std]

use core::mem::{offset_of, size_of};

/// Addresses and ports as the programs compare them with packet bytes: network-order bytes
/// loaded as native integers. The one place either side turns them into numbers and back.
pub mod raw {
    use core::net::{Ipv4Addr, Ipv6Addr};

    pub fn addr_raw(addr: Ipv4Addr) -> u32 {
        u32::from_ne_bytes(addr.octets())
    }

    pub fn addr_from_raw(raw: u32) -> Ipv4Addr {
        Ipv4Addr::from(raw.to_ne_bytes())
    }

    /// Four raw loads of the address's bytes.
    pub fn addr6_raw(addr: Ipv6Addr) -> [u32; 4] {
        let b = addr.octets();
        core::array::from_fn(|i| {
            u32::from_ne_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
        })
    }

    pub fn addr6_from_raw(raw: &[u32]) -> Ipv6Addr {
        let mut b = [0u8; 16];
        for (chunk, word) in b.chunks_exact_mut(4).zip(raw) {
            chunk.copy_from_slice(&word.to_ne_bytes());
        }
        Ipv6Addr::from(b)
    }

    /// A port, or any 16-bit field compared with packet bytes (the EDNS size).
    pub fn port_raw(port: u16) -> u16 {
        u16::from_ne_bytes(port.to_be_bytes())
    }

    pub fn port_from_raw(raw: u16) -> u16 {
        u16::from_be_bytes(raw.to_ne_bytes())
    }
}

/// Declares a `#[repr(C)]` struct together with its byte encoding, from one list of fields.
macro_rules! layout {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$field_meta:meta])* pub $field:ident: $ty:ty, )*
        }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        pub struct $name {
            $( $(#[$field_meta])* pub $field: $ty, )*
        }

        // Implicit padding would be bytes no field defines: the fields must cover the struct.
        const _: () = assert!(0 $( + size_of::<$ty>() )* == size_of::<$name>());

        impl $name {
            pub const SIZE: usize = size_of::<$name>();

            /// The struct's bytes as the kernel holds them in a map.
            pub fn to_bytes(&self) -> [u8; $name::SIZE] {
                let mut out = [0u8; $name::SIZE];
                $( put(&mut out, offset_of!($name, $field), &self.$field.to_ne_bytes()); )*
                out
            }

            fn decode(bytes: &[u8]) -> Option<$name> {
                Some($name {
                    $( $field: <$ty>::from_ne_bytes(get(bytes, offset_of!($name, $field))?), )*
                })
            }
        }
    };
}

/// Native-order bytes for the array fields (the integers have these as inherent methods).
pub trait NeBytes<const N: usize>: Sized {
    fn to_ne_bytes(&self) -> [u8; N];
    fn from_ne_bytes(bytes: [u8; N]) -> Self;
}

macro_rules! array_bytes {
    ($elem:ty, $len:literal, $n:literal) => {
        impl NeBytes<$n> for [$elem; $len] {
            fn to_ne_bytes(&self) -> [u8; $n] {
                let mut out = [0u8; $n];
                let w = size_of::<$elem>();
                for (i, v) in self.iter().enumerate() {
                    put(&mut out, i * w, &v.to_ne_bytes());
                }
                out
            }
            fn from_ne_bytes(bytes: [u8; $n]) -> Self {
                let mut out = [0; $len];
                let w = size_of::<$elem>();
                for (i, v) in out.iter_mut().enumerate() {
                    *v = <$elem>::from_ne_bytes(get(&bytes, i * w).unwrap_or_default());
                }
                out
            }
        }
    };
}

array_bytes!(u32, 4, 16);
array_bytes!(u16, 4, 8);
array_bytes!(u32, 16, 64);
array_bytes!(u8, 64, 64);
array_bytes!(u8, 128, 128);
array_bytes!(u8, 224, 224);

fn put(out: &mut [u8], at: usize, value: &[u8]) {
    if let Some(slot) = out.get_mut(at..at + value.len()) {
        slot.copy_from_slice(value);
    }
}

fn get<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    bytes.get(at..at + N)?.try_into().ok()
}

/// Set in [`Config::flags`]: redirect every query, also single-label names (Docker's own names).
pub const FLAG_REDIRECT_ALL: u16 = 1;
/// Set in [`Config::flags`] by the benchmark only: skip the counters, to measure what they cost.
/// The verifier sees the frozen flag and drops the dead branch, so the program is the same
/// as one compiled without counters.
pub const FLAG_NO_COUNTERS: u16 = 2;

/// The bytes `DNSR` read as a native u32: how every [`Config`] starts, whatever its layout.
pub const CONFIG_MAGIC: u32 = u32::from_ne_bytes(*b"DNSR");
/// The layout of everything the loader reads back from attached programs: [`Config`] after
/// its header, [`Counters`], [`FlowKey`], [`FlowValue`], [`FlowValue6`], [`EventHeader`] and [`WatchControl`]. Bump it whenever one of their
/// fields is added, removed, moved or changes meaning, so that a reader never decodes another
/// build's maps as its own.
pub const LAYOUT_VERSION: u32 = 10;

/// [`Config::path`]: Docker's embedded resolver, taken on lo ingress (the query program).
pub const PATH_EMBEDDED_RESOLVER: u16 = 0;
/// [`Config::path`]: the namespace's own nameservers, taken on the interface's egress (the
/// egress program); the reply program restores answers in place instead of handing them to lo.
pub const PATH_NAMESERVERS: u16 = 1;
/// How many nameservers one configuration can take over.
pub const MAX_NAMESERVERS: usize = 4;

layout! {
    /// The first bytes of every [`Config`], the same in every build: read them first to tell
    /// which build wrote a configuration before decoding anything else.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct ConfigHeader {
        /// [`CONFIG_MAGIC`].
        pub magic: u32,
        /// [`LAYOUT_VERSION`] of the build that wrote it.
        pub layout: u32,
        /// FNV-1a 64 of the BPF object the loader loaded with it; 0 in the object itself.
        pub build_id: u64,
    }
}

impl ConfigHeader {
    /// The header at the start of `bytes`; `None` only if there are fewer than 16 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<ConfigHeader> {
        ConfigHeader::decode(bytes)
    }

    /// Written by a build with this layout of [`Config`].
    pub fn is_current(&self) -> bool {
        self.magic == CONFIG_MAGIC && self.layout == LAYOUT_VERSION
    }
}

layout! {
    /// The per-container configuration, the value of the `CONFIG` symbol in `.rodata`.
    /// The loader writes it into the read-only map before loading, so the verifier sees constants.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Config {
        /// [`CONFIG_MAGIC`]; with `layout` and `build_id` the same 16 bytes as [`ConfigHeader`].
        pub magic: u32,
        pub layout: u32,
        pub build_id: u64,
        /// The address applications query: 127.0.0.11 in Docker.
        pub resolver_addr: u32,
        /// The address of the interface queries leave through: their new source.
        pub container_addr: u32,
        pub upstream_addr: u32,
        pub upstream_port: u16,
        /// The port dockerd's resolver listens on for UDP after Docker's DNAT; 0 leaves UDP alone.
        pub dockerd_udp_port: u16,
        /// Same for TCP; 0 leaves TCP alone.
        pub dockerd_tcp_port: u16,
        pub flags: u16,
        /// The largest EDNS UDP payload size a redirected query may announce (network order, as
        /// in the packet); larger ones are lowered to it, so that answers come unfragmented.
        /// 0 leaves them alone.
        pub edns_max: u16,
        /// Bytes of name the `RULES` map's keys hold (its key size is 4 + this): the longest
        /// rule's, rounded up to a power of two from 32, so that a trie node costs what the
        /// rules need (a node holds a whole key). A longer name is looked up by its last
        /// labels that fit, where every rule's key ends. 0: [`RULE_KEY_DATA`].
        pub rule_key_bytes: u16,
        /// The interface redirected queries leave through (`--interface`).
        pub iface_ifindex: u32,
        pub lo_ifindex: u32,
        /// How long a closing TCP flow still gets its segments restored (retransmitted FINs and
        /// ACKs), before its entry is dropped so that its port cannot capture a later direct
        /// connection. In jiffies (the kernel's tick, 1/CONFIG_HZ s: the resolution of
        /// CLOCK_MONOTONIC_COARSE), the units of [`FlowValue::stamp`].
        pub tcp_close_grace_jiffies: u64,
        /// [`PATH_NAMESERVERS`]: the addresses applications query (resolv.conf), the first
        /// `nameserver_count` used, the rest 0.
        pub nameservers: [u32; MAX_NAMESERVERS],
        /// Their ports, one per address.
        pub nameserver_ports: [u16; MAX_NAMESERVERS],
        /// [`PATH_EMBEDDED_RESOLVER`] or [`PATH_NAMESERVERS`]: which path is in force.
        pub path: u16,
        pub nameserver_count: u16,
        pub pad1: u32,
        /// The IPv6 upstream of the nameservers path (raw words of its 16 bytes); the port 0
        /// when there is none, and then IPv6 DNS passes untouched.
        pub upstream6_addr: [u32; 4],
        /// The interface's global IPv6 address: the destination of the upstream's answers.
        pub container6_addr: [u32; 4],
        /// [`PATH_NAMESERVERS`]: the IPv6 nameservers taken over, four words each, the first
        /// `nameserver6_count` used, the rest 0.
        pub nameservers6: [u32; 4 * MAX_NAMESERVERS],
        /// Their ports, one per address.
        pub nameserver6_ports: [u16; MAX_NAMESERVERS],
        pub upstream6_port: u16,
        pub nameserver6_count: u16,
        pub pad2: u32,
        /// What the attachment is for, as `--status`, `--watch` and `--metrics` name it (a
        /// pod's namespace/name, `--label`): UTF-8, NUL-padded. The programs never read it.
        pub label: [u8; LABEL_MAX],
    }
}

/// The largest label, in bytes.
pub const LABEL_MAX: usize = 64;

// The header never moves, whatever comes after it.
const _: () = assert!(ConfigHeader::SIZE == 16);
const _: () = assert!(offset_of!(Config, magic) == offset_of!(ConfigHeader, magic));
const _: () = assert!(offset_of!(Config, layout) == offset_of!(ConfigHeader, layout));
const _: () = assert!(offset_of!(Config, build_id) == offset_of!(ConfigHeader, build_id));
const _: () = assert!(Config::SIZE == 264);

impl Config {
    /// The header of this build and every other field 0: the object's compiled-in value, and
    /// the base the loader fills in.
    pub const UNSET: Config = Config {
        magic: CONFIG_MAGIC,
        layout: LAYOUT_VERSION,
        build_id: 0,
        resolver_addr: 0,
        container_addr: 0,
        upstream_addr: 0,
        upstream_port: 0,
        dockerd_udp_port: 0,
        dockerd_tcp_port: 0,
        flags: 0,
        edns_max: 0,
        rule_key_bytes: 0,
        iface_ifindex: 0,
        lo_ifindex: 0,
        tcp_close_grace_jiffies: 0,
        nameservers: [0; MAX_NAMESERVERS],
        nameserver_ports: [0; MAX_NAMESERVERS],
        path: PATH_EMBEDDED_RESOLVER,
        nameserver_count: 0,
        pad1: 0,
        upstream6_addr: [0; 4],
        container6_addr: [0; 4],
        nameservers6: [0; 4 * MAX_NAMESERVERS],
        nameserver6_ports: [0; MAX_NAMESERVERS],
        upstream6_port: 0,
        nameserver6_count: 0,
        pad2: 0,
        label: [0; LABEL_MAX],
    };

    /// Decodes a configuration written by a build with this layout; `None` for fewer than
    /// [`Config::SIZE`] bytes or another build's header (see [`ConfigHeader`]).
    pub fn from_bytes(bytes: &[u8]) -> Option<Config> {
        if !ConfigHeader::from_bytes(bytes)?.is_current() {
            return None;
        }
        Config::decode(bytes)
    }
}

layout! {
    /// A redirected flow, as the reply will show it on the interface. In a table's slot it is
    /// one 8-byte word, compared whole; all zero is a free slot (a flow's `proto` never is 0).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct FlowKey {
        /// The client's source port (network order), unchanged by the redirect.
        pub port: u16,
        /// The DNS message id for UDP, so a stale entry cannot capture a direct query that
        /// reuses the port; 0 for TCP.
        pub dns_id: u16,
        /// IPPROTO_UDP or IPPROTO_TCP.
        pub proto: u8,
        pub pad0: u8,
        pub pad1: u16,
    }
}

const _: () = assert!(FlowKey::SIZE == 8);

impl FlowKey {
    pub fn from_bytes(bytes: &[u8]) -> Option<FlowKey> {
        FlowKey::decode(bytes)
    }
}

layout! {
    /// What the reply must get back: where the client's query was going, and from where. Eight
    /// bytes: with its [`FlowKey`], a slot of the table is 16 (see [`FLOW_SETS`]).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct FlowValue {
        /// On the embedded-resolver path, the client's address (the query leaves from the
        /// container's address; where it went, Docker's resolver and dockerd's port, is in the
        /// configuration). On the nameservers path, the index of the nameserver asked in the
        /// configuration's table (the client's address is the answer's destination already);
        /// with `--resolver any`, the address of the server asked (its port is 53).
        pub origin: u32,
        /// In jiffies (bpf_jiffies64, inlined by the verifier: a clock read that costs nothing),
        /// the low 32 bits: when the flow was last used (the query, or a TCP connection's
        /// latest segment), lowest bit clear; once a TCP connection's first FIN is seen, the
        /// time of that FIN with the lowest bit set. A full table makes room by dropping the
        /// flow used longest ago.
        pub stamp: u32,
    }
}

const _: () = assert!(FlowValue::SIZE == 8);

impl FlowValue {
    pub fn from_bytes(bytes: &[u8]) -> Option<FlowValue> {
        FlowValue::decode(bytes)
    }
}

layout! {
    /// An IPv6 redirected flow's entry (the `FLOWS6` table, keyed by [`FlowKey`] as for IPv4).
    /// The client's address is the reply's destination, which the redirect never changes.
    /// With `--resolver any` the server asked is in no table, so its 16 bytes are here: 24
    /// bytes, slots of 32 (the table has its full size only with an IPv6 upstream).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct FlowValue6 {
        /// With `--resolver any`, the server asked (four raw words; its port is 53); else 0.
        pub server: [u32; 4],
        /// The index of the nameserver asked in the configuration's IPv6 table.
        pub nameserver: u32,
        /// As in [`FlowValue`].
        pub stamp: u32,
    }
}

const _: () = assert!(FlowValue6::SIZE == 24);

impl FlowValue6 {
    pub fn from_bytes(bytes: &[u8]) -> Option<FlowValue6> {
        FlowValue6::decode(bytes)
    }
}

/// Declares [`Counters`] with its names and array form in the order of its fields.
macro_rules! counters {
    ( $( $(#[$field_meta:meta])* $field:ident, )* ) => {
        layout! {
            /// Per-CPU packet counters, one array element; the loader sums them over CPUs.
            #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
            pub struct Counters {
                $( $(#[$field_meta])* pub $field: u64, )*
            }
        }

        impl Counters {
            pub const COUNT: usize = [$(stringify!($field)),*].len();
            /// The field names, in the order of the fields.
            pub const NAMES: [&'static str; Counters::COUNT] = [$(stringify!($field)),*];

            /// The values in the order of [`Counters::NAMES`].
            pub fn as_array(&self) -> [u64; Counters::COUNT] {
                [$(self.$field),*]
            }

            pub fn from_array(values: [u64; Counters::COUNT]) -> Counters {
                let [$($field),*] = values;
                Counters { $($field),* }
            }
        }
    };
}

counters! {
    queries_redirected_udp,
    /// TCP connections redirected (their SYNs).
    queries_redirected_tcp,
    /// Every TCP segment sent to the upstream, SYNs included.
    tcp_segments_redirected,
    /// UDP queries left to dockerd by their name: single-label names (Docker's container and
    /// service names) and the names the rules keep (the `rule_*` counters tell which).
    queries_kept_for_dockerd,
    /// One per UDP answer; every segment of a redirected TCP connection.
    replies_restored,
    /// Packets from the upstream that matched no redirected flow.
    replies_unknown_flow,
    /// Everything else: not DNS to the resolver, not from the upstream, or not parseable.
    passed,
    /// A checksum helper or a redirect refused the packet.
    failures,
    /// Redirected UDP queries whose EDNS payload size was lowered to [`Config::edns_max`].
    edns_clamped,
    /// First fragments of a reply to a redirected flow: passed untouched, since the rest of the
    /// datagram carries no ports to match (a sign that the upstream ignores the EDNS size).
    replies_fragmented,
    /// UDP queries kept for dockerd because their name is equal to or under a `--keep` suffix.
    rule_kept,
    /// UDP queries kept for dockerd because `--only` is in force and their name is under none
    /// of its suffixes.
    rule_outside_only,
    /// UDP queries redirected because their name is equal to or under an `--only` suffix.
    rule_only_redirected,
    /// UDP queries whose name the rules could not read (bytes outside letters, digits, `-` and
    /// `_`, or a malformed name): they follow the default of the rules in force (kept with
    /// `--only`, redirected with `--keep` alone).
    rule_unparsed,
    /// UDP queries answered by the program with NXDOMAIN (or REFUSED): a blocked name.
    answered_blocked,
    /// UDP queries answered by the program from a pinned name's records.
    answered_pinned,
    /// UDP queries refused by the program under `--allow`.
    answered_disallowed,
    /// TCP connections reset by the program: a query a decision covers, or one it could not
    /// read whole in one segment with decisions in force.
    tcp_reset,
    /// Flows dropped from a full table for a new one (see [`FLOW_SETS`]): queries never
    /// answered, or more in flight than the table holds.
    flows_evicted,
}

const _: () = assert!(Counters::SIZE == 8 * Counters::COUNT);

impl Counters {
    /// Sums a per-CPU lookup result: one `Counters` per possible CPU, each slot rounded up
    /// to 8 bytes (the kernel's per-CPU value stride).
    pub fn sum_per_cpu(bytes: &[u8]) -> Counters {
        let mut total = [0u64; Counters::COUNT];
        for cpu in bytes.chunks_exact(Counters::SIZE.next_multiple_of(8)) {
            if let Some(c) = Counters::from_bytes(cpu) {
                for (t, v) in total.iter_mut().zip(c.as_array()) {
                    *t += v;
                }
            }
        }
        Counters::from_array(total)
    }

    /// One CPU's counters (one slot of a per-CPU lookup).
    pub fn from_bytes(bytes: &[u8]) -> Option<Counters> {
        Counters::decode(bytes)
    }
}

/// Each flow table (`FLOWS`, `FLOWS6`) is an array of this many sets. A set is
/// [`FLOW_SET_TAGS`] bytes of tags, 16 bits per slot (0: free; no two slots of a set share
/// one), then [`FLOW_WAYS`] slots, a slot being a [`FlowKey`] and its value. A flow may live in
/// two sets, both picked by a hash of its key: a new flow takes the emptier, and where both are
/// full (counted: `flows_evicted`) the older of one sampled slot of each. Two choices of 8 ways
/// hold 10,000 queries in flight with random keys without a loss (simulated: 300 draws of
/// 10,000, none lost; one choice of 16 ways needs twice the memory for the same). 16,384
/// slots: 288 KiB for IPv4, 544 KiB for IPv6.
pub const FLOW_SETS: u32 = 2048;
pub const FLOW_WAYS: usize = 8;
pub const FLOW_SET_TAGS: usize = 16;

/// Flows a table holds at most.
pub const FLOW_TABLE_ENTRIES: u32 = FLOW_SETS * FLOW_WAYS as u32;

/// Section and symbol names the loader looks for.
pub const QUERY_SECTION: &str = "dnsredir/query";
pub const REPLY_SECTION: &str = "dnsredir/reply";
pub const EGRESS_SECTION: &str = "dnsredir/egress";
pub const CONFIG_SYMBOL: &str = "CONFIG";
pub const FLOWS_MAP: &str = "FLOWS";
pub const FLOWS6_MAP: &str = "FLOWS6";
pub const COUNTERS_MAP: &str = "COUNTERS";

// ---- name rules (`--keep`, `--only`) ----

/// Set in [`Config::flags`]: the `RULES` map holds `--keep` rules.
pub const FLAG_RULES_KEEP: u16 = 4;
/// Set in [`Config::flags`]: the `RULES` map holds `--only` rules; names under none of them,
/// names the program cannot read and all of TCP stay with dockerd.
pub const FLAG_RULES_ONLY: u16 = 8;
/// Set in [`Config::flags`] on the nameservers path (`--resolver any`): every query to port 53
/// leaving the interface is taken, whatever server it names, but for the upstreams themselves
/// and the interface's own addresses; the nameserver tables are empty. Not a layout change: a
/// reader that does not know the bit sees a nameservers path with no nameservers.
pub const FLAG_ANY_RESOLVER: u16 = 16;

/// The LPM trie of name rules, filled by the loader after loading and before attaching.
pub const RULES_MAP: &str = "RULES";
/// The per-CPU buffer the query programs build a name's rule key in.
pub const RULES_SCRATCH_MAP: &str = "RULES_SCRATCH";
/// Its capacity.
/// Its largest size: every suffix and hosts name of one attachment, a 10^5-name blocklist
/// with room to spare. The loader creates the map with the entries it holds.
pub const MAX_RULES: u32 = 1 << 17;
/// Bytes of a [`RuleKey`]'s name: a name of at most 253 text characters is at most 254 bytes
/// in the key, rounded up.
pub const RULE_KEY_DATA: usize = 256;
/// A key of the LPM trie (`struct bpf_lpm_trie_key` with its data).
pub const RULE_KEY_SIZE: usize = 4 + RULE_KEY_DATA;

/// [`RuleValue::kind`]: names equal to or under the suffix stay with dockerd.
pub const RULE_KEEP: u32 = 1;
/// Names equal to or under the suffix are redirected (and with `--only`, only they).
pub const RULE_ONLY: u32 = 2;
/// An `--only` suffix equal to or under a `--keep` suffix: keep wins, so it keeps.
pub const RULE_ONLY_UNDER_KEEP: u32 = 3;

/// A rule's key: the suffix in the form the query program builds from a question's name.
///
/// The name's wire form without its root byte, each length byte replaced by `.`, letters
/// lowercased, then reversed byte by byte: `api.internal.test` is `tset.lanretni.ipa.`. A
/// suffix's key is then a prefix of the key of every name equal to or under it, and only
/// whole labels match, since `.` never occurs inside a label the program accepts.
/// `prefixlen` is in bits (8 per byte), as the LPM trie wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleKey {
    pub prefixlen: u32,
    pub data: [u8; RULE_KEY_DATA],
}

impl RuleKey {
    /// The kernel's bytes: prefixlen in host order, then the data.
    pub fn to_bytes(&self) -> [u8; RULE_KEY_SIZE] {
        let mut out = [0u8; RULE_KEY_SIZE];
        put(&mut out, 0, &self.prefixlen.to_ne_bytes());
        put(&mut out, 4, &self.data);
        out
    }

    /// The key from a map's bytes; a map may have shorter keys than [`RULE_KEY_SIZE`] (see
    /// [`Config::rule_key_bytes`]): the rest of the data is 0.
    pub fn from_bytes(bytes: &[u8]) -> Option<RuleKey> {
        let prefixlen = u32::from_ne_bytes(get(bytes, 0)?);
        let name = bytes.get(4..)?;
        let mut data = [0u8; RULE_KEY_DATA];
        let n = name.len().min(RULE_KEY_DATA);
        data[..n].copy_from_slice(&name[..n]);
        Some(RuleKey { prefixlen, data })
    }

    /// The name's bytes in the key: `prefixlen / 8` of them.
    pub fn name_bytes(&self) -> &[u8] {
        let n = (self.prefixlen as usize / 8).min(RULE_KEY_DATA);
        &self.data[..n]
    }
}

layout! {
    /// What the names a key matches get: where they go (`kind`) and what is answered for them
    /// (`decision`). The loader stores in every entry the merged word of all the rules that
    /// cover its names (see the loader's `redirect::policy`), so that the program's one
    /// lookup (the longest match) is the whole answer.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct RuleValue {
        /// 0, [`RULE_KEEP`], [`RULE_ONLY`] or [`RULE_ONLY_UNDER_KEEP`].
        pub kind: u32,
        /// [`DECISION_NONE`], [`DECISION_ALLOW`], [`DECISION_BLOCK`] or [`DECISION_ANSWER`].
        pub decision: u32,
        /// For [`DECISION_ANSWER`]: the index of its records in [`ANSWERS_MAP`]; else 0.
        pub answer: u32,
        /// Which of `kind` and `decision` are the key's own rule's ([`RULE_OWN_KIND`],
        /// [`RULE_OWN_DECISION`]) rather than inherited from a shorter suffix: what the loader
        /// reads the user's rules back from (`--status`, a rewrite in place). The programs
        /// never read it.
        pub own: u32,
    }
}

const _: () = assert!(RuleValue::SIZE == 16);

/// [`RuleValue::own`]: the key has a routing rule of its own (`--keep`, `--only`).
pub const RULE_OWN_KIND: u32 = 1;
/// [`RuleValue::own`]: the key has a decision of its own (`--allow`, `--block`, `--answer`,
/// a hosts entry).
pub const RULE_OWN_DECISION: u32 = 2;

impl RuleValue {
    pub fn from_bytes(bytes: &[u8]) -> Option<RuleValue> {
        RuleValue::decode(bytes)
    }
}

// ---- decisions (`--block`, `--allow`, `--answer`, `--hosts`) ----

/// [`RuleValue::decision`]: no decision covers the name; it is routed (with `--allow` in
/// force, it is disallowed).
pub const DECISION_NONE: u32 = 0;
/// Under an `--allow` suffix: routed as without decisions.
pub const DECISION_ALLOW: u32 = 1;
/// Blocked: NXDOMAIN (REFUSED with [`FLAG_BLOCK_REFUSED`]).
pub const DECISION_BLOCK: u32 = 2;
/// Pinned: answered from [`AnswerValue`] `answer`.
pub const DECISION_ANSWER: u32 = 3;

/// Set in [`Config::flags`]: the `RULES` map holds decisions; the programs read every query
/// to a server taken over (TCP's too) and answer the decided ones themselves.
pub const FLAG_DECIDE: u16 = 32;
/// Set with [`FLAG_DECIDE`] when `--allow` is in force: a name no decision covers, a query
/// the program cannot read, with QDCOUNT ≠ 1 or of a class other than IN is refused.
pub const FLAG_ALLOWLIST: u16 = 64;
/// A policy without `--upstream`: the queries no decision answers go on where they were going
/// (dockerd, or the nameserver asked), untouched; no flow is recorded.
pub const FLAG_NO_UPSTREAM: u16 = 128;
/// `--block-rcode refused`: blocked names get REFUSED instead of NXDOMAIN.
pub const FLAG_BLOCK_REFUSED: u16 = 256;

/// Appended to the key of an exact name (`--hosts`), after the name's bytes: such a key
/// matches only a lookup of that very name, which the program always makes with this byte
/// after the name. Never a byte of [`NAME_BYTES`] nor [`RULE_LABEL_MARK`].
pub const RULE_EXACT_MARK: u8 = b'$';

/// The array of pinned answers, indexed by [`RuleValue::answer`]; the loader sizes it.
pub const ANSWERS_MAP: &str = "ANSWERS";
/// The per-CPU buffer the programs build an answer in.
pub const ANSWER_SCRATCH_MAP: &str = "ANSWER_SCRATCH";
/// Addresses of each family one pinned name answers with.
pub const MAX_ANSWER_ADDRS: usize = 8;
/// Wire size of one A record in an answer: a pointer to the question's name (0xc00c), TYPE,
/// CLASS, TTL, RDLENGTH, the address.
pub const A_RECORD_SIZE: usize = 16;
/// Wire size of one AAAA record.
pub const AAAA_RECORD_SIZE: usize = 28;
/// The TTL of pinned answers, in seconds: short, so that a rule changed in place reaches
/// caching stub resolvers soon.
pub const ANSWER_TTL: u32 = 10;
/// The UDP payload size the programs' own answers announce in their OPT record.
pub const ANSWER_EDNS_SIZE: u16 = 1232;

layout! {
    /// A pinned name's answer records, built by the loader exactly as they go into the
    /// packet (after the question), with the one's-complement sums the program adds to the
    /// UDP checksum instead of reading them again.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct AnswerValue {
        /// A records in `a` (0 to [`MAX_ANSWER_ADDRS`]).
        pub a_count: u16,
        /// AAAA records in `aaaa`.
        pub aaaa_count: u16,
        /// Sum of the big-endian 16-bit words of the first `a_count` records (unfolded).
        pub a_sum: u32,
        /// The same for the AAAA records.
        pub aaaa_sum: u32,
        pub pad0: u32,
        pub a: [u8; A_RECORD_SIZE * MAX_ANSWER_ADDRS],
        pub aaaa: [u8; AAAA_RECORD_SIZE * MAX_ANSWER_ADDRS],
    }
}

const _: () = assert!(AnswerValue::SIZE == 16 + 128 + 224);

impl AnswerValue {
    pub fn from_bytes(bytes: &[u8]) -> Option<AnswerValue> {
        AnswerValue::decode(bytes)
    }
}

/// What the query program maps each byte of a question's name to in a [`RuleKey`]: letters
/// lowercased, digits, `-` and `_` as they are, every other byte 0 (the name is then not read).
pub const NAME_BYTES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = match c {
            b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => c,
            b'A'..=b'Z' => c | 0x20,
            _ => 0,
        };
        b += 1;
    }
    t
};

/// The `.` that stands for a length byte in a [`RuleKey`].
pub const RULE_LABEL_MARK: u8 = b'.';

// ---- Events for `--watch` ----
//
// The programs write one record per DNS message into the [`EVENTS_MAP`] ring buffer, but only
// while a watcher holds the [`WATCH_MAP`] flag: an [`EventHeader`] followed by the first
// [`EventHeader::captured`] bytes of the DNS message (the TCP length prefix left out). The
// watcher parses those bytes itself (id, question, rcode, answers), so the programs never walk
// more of a message than they already do.

/// The ring buffer of events (`BPF_MAP_TYPE_RINGBUF`).
pub const EVENTS_MAP: &str = "EVENTS";
/// The one-element array a watcher writes [`WatchControl`] into.
pub const WATCH_MAP: &str = "WATCH";
/// Per-CPU u64: events the ring buffer had no room for.
pub const EVENTS_LOST_MAP: &str = "EVENTS_LOST";
/// Data size of the ring buffer: a power of two and a multiple of the page size. Every
/// attachment pays for it, watched or not (78 KB with the kernel's pages around it), so it is
/// what a watcher needs between two reads: 120 records of [`EVENT_SIZE`], of which the programs
/// wake the watcher at a quarter (it reads every 100 ms otherwise). Beyond ~600 queries a
/// second the watcher lives on those wakeups; a burst that fills the rest before the watcher
/// runs loses events, which are counted and reported.
pub const EVENTS_RING_SIZE: u32 = 64 * 1024;
/// The most bytes of a DNS message a record carries: the whole question of any query (a
/// 255-byte name) and the start of the answer section of most replies.
pub const EVENT_DATA_MAX: usize = 512;
/// A record's whole size in the ring buffer, before its 8-byte ring header.
pub const EVENT_SIZE: usize = EventHeader::SIZE + EVENT_DATA_MAX;
/// How long a watcher's flag stays valid after its last refresh: a watcher that died without
/// clearing it (SIGKILL) stops the events this long after its last refresh.
pub const WATCH_LEASE_NS: u64 = 3_000_000_000;

/// [`EventHeader::kind`]: a query, as it was sent on (redirected or left to dockerd).
pub const EVENT_QUERY: u8 = 1;
/// [`EventHeader::kind`]: an answer on its way to the client.
pub const EVENT_REPLY: u8 = 2;

/// [`EventHeader::path`] of replies: the watcher takes it from the query.
pub const ROUTE_NONE: u8 = 0;
/// Redirected from the embedded resolver to the upstream.
pub const ROUTE_UPSTREAM: u8 = 1;
/// Left to dockerd's embedded resolver (single-label names).
pub const ROUTE_DOCKERD: u8 = 2;
/// Sent directly to a nameserver (no embedded resolver) and redirected on egress.
pub const ROUTE_NAMESERVER: u8 = 3;
/// Sent directly to a nameserver and left with it by a name rule (`--keep`, `--only`).
pub const ROUTE_NAMESERVER_KEPT: u8 = 4;
/// Answered by the program: a blocked name.
pub const ROUTE_BLOCKED: u8 = 5;
/// Answered by the program: a pinned name.
pub const ROUTE_PINNED: u8 = 6;
/// Answered by the program: refused under `--allow` (not allowed, or not readable).
pub const ROUTE_DISALLOWED: u8 = 7;
/// A TCP query a decision covers, or one the program could not decide with decisions in
/// force: the connection is reset.
pub const ROUTE_RESET: u8 = 8;

layout! {
    /// The start of every event record.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct EventHeader {
        /// bpf_ktime_get_ns (CLOCK_MONOTONIC) when the program saw the packet.
        pub time_ns: u64,
        /// The client's address and port (network order): the query's source, the reply's
        /// destination.
        pub client_addr: u32,
        pub client_port: u16,
        /// The DNS message's whole length, as the IP header tells it.
        pub msg_len: u16,
        /// How many of its bytes follow the header (at most [`EVENT_DATA_MAX`]).
        pub captured: u16,
        /// [`EVENT_QUERY`] or [`EVENT_REPLY`].
        pub kind: u8,
        /// One of the `ROUTE_*` values: where the query was sent.
        pub path: u8,
        /// IPPROTO_UDP or IPPROTO_TCP.
        pub proto: u8,
        pub pad0: u8,
        pub pad1: u16,
    }
}

const _: () = assert!(EventHeader::SIZE == 24);
const _: () = assert!(EVENT_SIZE % 8 == 0 && EVENT_DATA_MAX.is_power_of_two());

impl EventHeader {
    pub fn from_bytes(bytes: &[u8]) -> Option<EventHeader> {
        EventHeader::decode(bytes)
    }

    /// The client's address and port, decoded from their network-order fields.
    pub fn client(&self) -> core::net::SocketAddrV4 {
        core::net::SocketAddrV4::new(
            raw::addr_from_raw(self.client_addr),
            raw::port_from_raw(self.client_port),
        )
    }
}

layout! {
    /// The value of [`WATCH_MAP`]'s element 0, written only by a watcher.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct WatchControl {
        /// The watcher's pid; 0: nobody watches, the programs write no events.
        pub watcher_pid: u32,
        pub pad0: u32,
        /// CLOCK_MONOTONIC of the watcher's last refresh: events stop [`WATCH_LEASE_NS`] after it.
        pub refreshed_ns: u64,
    }
}

const _: () = assert!(WatchControl::SIZE == 16);

impl WatchControl {
    pub fn from_bytes(bytes: &[u8]) -> Option<WatchControl> {
        WatchControl::decode(bytes)
    }
}
