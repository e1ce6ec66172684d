//! The loader's view of the shared layouts in [`abi`](crate::abi): raw forms of addresses and
//! ports as the programs compare them, and per-CPU counter sums. The byte encodings themselves
//! are the abi crate's.

use crate::abi::{Config, Counters, PATH_NAMESERVERS};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

/// An address as the programs compare it: its network-order bytes loaded as a native u32.
pub fn addr_raw(addr: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(addr.octets())
}

pub fn addr_from_raw(raw: u32) -> Ipv4Addr {
    Ipv4Addr::from(raw.to_ne_bytes())
}

/// An IPv6 address as the programs compare it: four raw loads of its bytes.
pub fn addr6_raw(addr: Ipv6Addr) -> [u32; 4] {
    let b = addr.octets();
    std::array::from_fn(|i| {
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

/// A port (or any 16-bit field compared with packet bytes, like the EDNS size) as the programs
/// compare it: network-order bytes loaded as a native u16.
pub fn port_raw(port: u16) -> u16 {
    u16::from_ne_bytes(port.to_be_bytes())
}

pub fn port_from_raw(raw: u16) -> u16 {
    u16::from_be_bytes(raw.to_ne_bytes())
}

pub fn upstream_of(c: &Config) -> SocketAddrV4 {
    SocketAddrV4::new(
        addr_from_raw(c.upstream_addr),
        port_from_raw(c.upstream_port),
    )
}

/// The IPv6 upstream, when there is one (nameservers path).
pub fn upstream6_of(c: &Config) -> Option<SocketAddrV6> {
    (c.upstream6_port != 0).then(|| {
        SocketAddrV6::new(
            addr6_from_raw(&c.upstream6_addr),
            port_from_raw(c.upstream6_port),
            0,
            0,
        )
    })
}

/// The interface's IPv6 address the configuration expects answers at (with an IPv6 upstream).
pub fn container6_of(c: &Config) -> Option<Ipv6Addr> {
    (c.upstream6_port != 0).then(|| addr6_from_raw(&c.container6_addr))
}

/// The IPv6 nameservers a nameservers-path configuration takes over.
pub fn nameservers6_of(c: &Config) -> Vec<SocketAddrV6> {
    if c.path != PATH_NAMESERVERS || c.upstream6_port == 0 {
        return Vec::new();
    }
    c.nameservers6
        .chunks_exact(4)
        .zip(c.nameserver6_ports)
        .take(c.nameserver6_count as usize)
        .map(|(a, p)| SocketAddrV6::new(addr6_from_raw(a), port_from_raw(p), 0, 0))
        .collect()
}

/// The nameservers a nameservers-path configuration takes over (none on the other path).
pub fn nameservers_of(c: &Config) -> Vec<SocketAddrV4> {
    if c.path != PATH_NAMESERVERS {
        return Vec::new();
    }
    c.nameservers
        .iter()
        .zip(c.nameserver_ports)
        .take(c.nameserver_count as usize)
        .map(|(a, p)| SocketAddrV4::new(addr_from_raw(*a), port_from_raw(p)))
        .collect()
}

/// The path's name in `--status`.
pub fn path_name(c: &Config) -> &'static str {
    if c.path == PATH_NAMESERVERS {
        "nameservers"
    } else {
        "embedded-resolver"
    }
}

/// Sums a per-CPU lookup result: one `Counters` per possible CPU, each slot rounded up to 8 bytes.
pub fn sum_percpu_counters(bytes: &[u8]) -> Counters {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{ConfigHeader, FlowKey, FlowValue, CONFIG_MAGIC, LAYOUT_VERSION};

    fn config() -> Config {
        Config {
            build_id: 0x0102_0304_0506_0708,
            resolver_addr: addr_raw(Ipv4Addr::new(127, 0, 0, 11)),
            container_addr: addr_raw(Ipv4Addr::new(172, 18, 0, 2)),
            upstream_addr: addr_raw(Ipv4Addr::new(1, 1, 1, 1)),
            upstream_port: port_raw(53),
            dockerd_udp_port: port_raw(41552),
            dockerd_tcp_port: port_raw(37011),
            flags: 1,
            edns_max: port_raw(1232),
            iface_ifindex: 43,
            lo_ifindex: 1,
            tcp_close_grace_ns: 10_000_000_000,
            nameservers: [
                addr_raw(Ipv4Addr::new(8, 8, 8, 8)),
                addr_raw(Ipv4Addr::new(8, 8, 4, 4)),
                0,
                0,
            ],
            nameserver_ports: [port_raw(53), port_raw(5300), 0, 0],
            path: PATH_NAMESERVERS,
            nameserver_count: 2,
            ..Config::UNSET
        }
    }

    #[test]
    fn config_bytes_sit_at_fixed_offsets() {
        let c = config();
        let b = c.to_bytes();
        assert_eq!(b.len(), 200);
        assert_eq!(&b[0..4], b"DNSR", "magic");
        assert_eq!(&b[4..8], &6u32.to_ne_bytes(), "layout");
        assert_eq!(&b[8..16], &0x0102_0304_0506_0708u64.to_ne_bytes());
        assert_eq!(&b[16..20], &[127, 0, 0, 11], "resolver, network order");
        assert_eq!(&b[20..24], &[172, 18, 0, 2]);
        assert_eq!(&b[24..28], &[1, 1, 1, 1]);
        assert_eq!(&b[28..30], &[0, 53], "ports in network order");
        assert_eq!(&b[30..32], &41552u16.to_be_bytes());
        assert_eq!(&b[32..34], &37011u16.to_be_bytes());
        assert_eq!(&b[34..36], &1u16.to_ne_bytes(), "flags");
        assert_eq!(
            &b[36..38],
            &1232u16.to_be_bytes(),
            "edns_max, network order"
        );
        assert_eq!(&b[38..40], &[0, 0], "padding");
        assert_eq!(&b[40..44], &43u32.to_ne_bytes(), "iface_ifindex");
        assert_eq!(&b[44..48], &1u32.to_ne_bytes(), "lo_ifindex");
        assert_eq!(&b[48..56], &10_000_000_000u64.to_ne_bytes());
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
        assert_eq!(upstream6_of(&c), None);
        assert!(nameservers6_of(&c).is_empty());
        assert_eq!(Config::from_bytes(&b), Some(c));
        assert_eq!(
            nameservers_of(&c),
            vec![
                "8.8.8.8:53".parse().unwrap(),
                "8.8.4.4:5300".parse().unwrap()
            ]
        );
        assert_eq!(path_name(&c), "nameservers");
        assert_eq!(upstream_of(&c), "1.1.1.1:53".parse().unwrap());
    }

    #[test]
    fn ipv6_fields_sit_after_the_ipv4_ones() {
        let up: Ipv6Addr = "2001:db8::53".parse().unwrap();
        let ns: Ipv6Addr = "fd00:dead:1::1".parse().unwrap();
        let mut c = Config {
            upstream6_addr: addr6_raw(up),
            container6_addr: addr6_raw("fd00:dead:1::2".parse().unwrap()),
            upstream6_port: port_raw(5353),
            nameserver6_count: 1,
            ..config()
        };
        c.nameservers6[..4].copy_from_slice(&addr6_raw(ns));
        c.nameserver6_ports[0] = port_raw(53);
        let b = c.to_bytes();
        assert_eq!(&b[88..104], &up.octets(), "upstream6, network order");
        assert_eq!(&b[120..136], &ns.octets(), "nameservers6[0]");
        assert_eq!(&b[136..184], &[0; 48]);
        assert_eq!(&b[184..186], &[0, 53], "nameserver6_ports[0]");
        assert_eq!(&b[192..194], &5353u16.to_be_bytes(), "upstream6_port");
        assert_eq!(&b[194..196], &1u16.to_ne_bytes(), "nameserver6_count");
        assert_eq!(Config::from_bytes(&b), Some(c));
        assert_eq!(upstream6_of(&c), Some(SocketAddrV6::new(up, 5353, 0, 0)));
        assert_eq!(nameservers6_of(&c), vec![SocketAddrV6::new(ns, 53, 0, 0)]);
        assert_eq!(addr6_from_raw(&addr6_raw(up)), up);
    }

    #[test]
    fn a_config_of_another_layout_is_recognised_and_not_decoded() {
        let mut b = config().to_bytes();
        assert_eq!(
            ConfigHeader::from_bytes(&b),
            Some(ConfigHeader {
                magic: CONFIG_MAGIC,
                layout: LAYOUT_VERSION,
                build_id: 0x0102_0304_0506_0708
            })
        );
        assert_eq!(Config::from_bytes(&b[..55]), None, "short");
        b[4..8].copy_from_slice(&1u32.to_ne_bytes());
        let header = ConfigHeader::from_bytes(&b).expect("16 bytes");
        assert_eq!(header.layout, 1);
        assert!(!header.is_current());
        assert_eq!(Config::from_bytes(&b), None, "another layout");
        b[0] = b'X';
        assert_eq!(Config::from_bytes(&b), None, "not ours");
        assert_eq!(ConfigHeader::from_bytes(&b[..15]), None);
    }

    #[test]
    fn flow_layouts_sit_at_fixed_offsets() {
        let k = FlowKey {
            port: port_raw(50123),
            dns_id: 0x1234,
            proto: 17,
            ..FlowKey::default()
        };
        let b = k.to_bytes();
        assert_eq!(b.len(), 8);
        assert_eq!(&b[0..2], &50123u16.to_be_bytes());
        assert_eq!(&b[2..4], &0x1234u16.to_ne_bytes());
        assert_eq!(&b[4..8], &[17, 0, 0, 0]);
        assert_eq!(FlowKey::from_bytes(&b), Some(k));

        let v = FlowValue {
            closing_since_ns: 7,
            client_addr: addr_raw(Ipv4Addr::new(127, 0, 0, 1)),
            resolver_addr: addr_raw(Ipv4Addr::new(127, 0, 0, 11)),
            resolver_port: port_raw(41552),
            ..FlowValue::default()
        };
        let b = v.to_bytes();
        assert_eq!(b.len(), 24);
        assert_eq!(&b[0..8], &7u64.to_ne_bytes());
        assert_eq!(&b[8..12], &[127, 0, 0, 1]);
        assert_eq!(&b[12..16], &[127, 0, 0, 11]);
        assert_eq!(&b[16..18], &41552u16.to_be_bytes());
        assert_eq!(&b[18..24], &[0; 6]);
        assert_eq!(FlowValue::from_bytes(&b), Some(v));
    }

    #[test]
    fn counter_names_and_values_follow_the_fields() {
        assert_eq!(
            Counters::NAMES,
            [
                "queries_redirected_udp",
                "queries_redirected_tcp",
                "tcp_segments_redirected",
                "queries_kept_for_dockerd",
                "replies_restored",
                "replies_unknown_flow",
                "passed",
                "failures",
                "edns_clamped",
                "replies_fragmented",
                "rule_kept",
                "rule_outside_only",
                "rule_only_redirected",
                "rule_unparsed",
            ]
        );
        let c = Counters {
            tcp_segments_redirected: 3,
            failures: 9,
            replies_fragmented: 11,
            rule_unparsed: 13,
            ..Counters::default()
        };
        assert_eq!(c.as_array(), [0, 0, 3, 0, 0, 0, 0, 9, 0, 11, 0, 0, 0, 13]);
        assert_eq!(Counters::from_array(c.as_array()), c);
        let b = c.to_bytes();
        assert_eq!(b.len(), 112);
        assert_eq!(&b[16..24], &3u64.to_ne_bytes(), "tcp_segments_redirected");
        assert_eq!(&b[56..64], &9u64.to_ne_bytes(), "failures");
        assert_eq!(&b[72..80], &11u64.to_ne_bytes(), "replies_fragmented");
        assert_eq!(&b[104..112], &13u64.to_ne_bytes(), "rule_unparsed");
        assert_eq!(Counters::from_bytes(&b), Some(c));
    }

    #[test]
    fn percpu_counters_are_summed() {
        let slot = Counters::SIZE.next_multiple_of(8);
        let mut bytes = vec![0u8; slot * 2];
        bytes[0] = 3; // cpu 0: queries_redirected_udp
        bytes[slot] = 4; // cpu 1: queries_redirected_udp
        bytes[slot + 8 * 4] = 5; // cpu 1: replies_restored
        bytes[slot + 8 * 8] = 6; // cpu 1: edns_clamped
        let sum = sum_percpu_counters(&bytes);
        assert_eq!(sum.queries_redirected_udp, 7);
        assert_eq!(sum.replies_restored, 5);
        assert_eq!(sum.edns_clamped, 6);
        assert_eq!(sum.failures, 0);
    }
}
