//! The loader's view of the shared layouts in [`abi`](crate::abi): raw forms of addresses and
//! ports as the programs compare them, and per-CPU counter sums. The byte encodings themselves
//! are the abi crate's.

use crate::abi::{Config, Counters};
use std::net::{Ipv4Addr, SocketAddrV4};

/// An address as the programs compare it: its network-order bytes loaded as a native u32.
pub fn addr_raw(addr: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(addr.octets())
}

pub fn addr_from_raw(raw: u32) -> Ipv4Addr {
    Ipv4Addr::from(raw.to_ne_bytes())
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
            ..Config::UNSET
        }
    }

    #[test]
    fn config_bytes_sit_at_fixed_offsets() {
        let c = config();
        let b = c.to_bytes();
        assert_eq!(b.len(), 56);
        assert_eq!(&b[0..4], b"DNSR", "magic");
        assert_eq!(&b[4..8], &3u32.to_ne_bytes(), "layout");
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
        assert_eq!(Config::from_bytes(&b), Some(c));
        assert_eq!(upstream_of(&c), "1.1.1.1:53".parse().unwrap());
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
            ]
        );
        let c = Counters {
            tcp_segments_redirected: 3,
            failures: 9,
            replies_fragmented: 11,
            ..Counters::default()
        };
        assert_eq!(c.as_array(), [0, 0, 3, 0, 0, 0, 0, 9, 0, 11]);
        assert_eq!(Counters::from_array(c.as_array()), c);
        let b = c.to_bytes();
        assert_eq!(b.len(), 80);
        assert_eq!(&b[16..24], &3u64.to_ne_bytes(), "tcp_segments_redirected");
        assert_eq!(&b[56..64], &9u64.to_ne_bytes(), "failures");
        assert_eq!(&b[72..80], &11u64.to_ne_bytes(), "replies_fragmented");
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
