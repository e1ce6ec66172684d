//! Byte encodings of the shared layouts in `abi`, field by field in the same order and sizes
//! as the `#[repr(C)]` structs (checked by the tests), in the host's byte order as the kernel
//! stores map values.

use crate::abi::{Config, Counters, FlowKey};
use byteorder::{NativeEndian, ReadBytesExt, WriteBytesExt};
use std::io::{Cursor, Write};
use std::mem::size_of;
use std::net::{Ipv4Addr, SocketAddrV4};

/// An address as the programs compare it: its network-order bytes loaded as a native u32.
pub fn addr_raw(addr: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(addr.octets())
}

pub fn addr_from_raw(raw: u32) -> Ipv4Addr {
    Ipv4Addr::from(raw.to_ne_bytes())
}

/// A port as the programs compare it: network-order bytes loaded as a native u16.
pub fn port_raw(port: u16) -> u16 {
    u16::from_ne_bytes(port.to_be_bytes())
}

pub fn port_from_raw(raw: u16) -> u16 {
    u16::from_be_bytes(raw.to_ne_bytes())
}

pub fn encode_config(c: &Config) -> Vec<u8> {
    let mut out = Vec::with_capacity(size_of::<Config>());
    // Writes into a Vec cannot fail.
    let _ = (|| -> std::io::Result<()> {
        out.write_u32::<NativeEndian>(c.resolver_addr)?;
        out.write_u32::<NativeEndian>(c.container_addr)?;
        out.write_u32::<NativeEndian>(c.upstream_addr)?;
        out.write_u16::<NativeEndian>(c.upstream_port)?;
        out.write_u16::<NativeEndian>(c.dockerd_udp_port)?;
        out.write_u16::<NativeEndian>(c.dockerd_tcp_port)?;
        out.write_u16::<NativeEndian>(c.flags)?;
        out.write_u32::<NativeEndian>(c.eth0_ifindex)?;
        out.write_u32::<NativeEndian>(c.lo_ifindex)?;
        out.flush()
    })();
    out
}

pub fn decode_config(bytes: &[u8]) -> Option<Config> {
    if bytes.len() != size_of::<Config>() {
        return None;
    }
    let mut r = Cursor::new(bytes);
    Some(Config {
        resolver_addr: r.read_u32::<NativeEndian>().ok()?,
        container_addr: r.read_u32::<NativeEndian>().ok()?,
        upstream_addr: r.read_u32::<NativeEndian>().ok()?,
        upstream_port: r.read_u16::<NativeEndian>().ok()?,
        dockerd_udp_port: r.read_u16::<NativeEndian>().ok()?,
        dockerd_tcp_port: r.read_u16::<NativeEndian>().ok()?,
        flags: r.read_u16::<NativeEndian>().ok()?,
        eth0_ifindex: r.read_u32::<NativeEndian>().ok()?,
        lo_ifindex: r.read_u32::<NativeEndian>().ok()?,
    })
}

pub fn upstream_of(c: &Config) -> SocketAddrV4 {
    SocketAddrV4::new(
        addr_from_raw(c.upstream_addr),
        port_from_raw(c.upstream_port),
    )
}

pub const COUNTER_NAMES: [&str; 8] = [
    "queries_redirected_udp",
    "queries_redirected_tcp",
    "tcp_segments_redirected",
    "queries_kept_for_dockerd",
    "replies_restored",
    "replies_unknown_flow",
    "passed",
    "failures",
];

pub fn counters_as_array(c: &Counters) -> [u64; 8] {
    [
        c.queries_redirected_udp,
        c.queries_redirected_tcp,
        c.tcp_segments_redirected,
        c.queries_kept_for_dockerd,
        c.replies_restored,
        c.replies_unknown_flow,
        c.passed,
        c.failures,
    ]
}

/// Sums a per-CPU lookup result: one `Counters` per possible CPU, each slot rounded up to 8 bytes.
pub fn sum_percpu_counters(bytes: &[u8]) -> Counters {
    let slot = size_of::<Counters>().next_multiple_of(8);
    let mut total = [0u64; COUNTER_NAMES.len()];
    for cpu in bytes.chunks_exact(slot) {
        let mut r = Cursor::new(cpu);
        for t in total.iter_mut() {
            *t += r.read_u64::<NativeEndian>().unwrap_or(0);
        }
    }
    Counters {
        queries_redirected_udp: total[0],
        queries_redirected_tcp: total[1],
        tcp_segments_redirected: total[2],
        queries_kept_for_dockerd: total[3],
        replies_restored: total[4],
        replies_unknown_flow: total[5],
        passed: total[6],
        failures: total[7],
    }
}

pub const FLOW_KEY_SIZE: usize = size_of::<FlowKey>();

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    #[test]
    fn config_encoding_matches_repr_c_layout() {
        let c = Config {
            resolver_addr: addr_raw(Ipv4Addr::new(127, 0, 0, 11)),
            container_addr: addr_raw(Ipv4Addr::new(172, 18, 0, 2)),
            upstream_addr: addr_raw(Ipv4Addr::new(1, 1, 1, 1)),
            upstream_port: port_raw(53),
            dockerd_udp_port: port_raw(41552),
            dockerd_tcp_port: port_raw(37011),
            flags: 1,
            eth0_ifindex: 43,
            lo_ifindex: 1,
        };
        let bytes = encode_config(&c);
        assert_eq!(bytes.len(), size_of::<Config>());
        assert_eq!(
            &bytes[offset_of!(Config, resolver_addr)..][..4],
            &[127, 0, 0, 11]
        );
        assert_eq!(
            &bytes[offset_of!(Config, container_addr)..][..4],
            &[172, 18, 0, 2]
        );
        assert_eq!(
            &bytes[offset_of!(Config, upstream_addr)..][..4],
            &[1, 1, 1, 1]
        );
        assert_eq!(
            &bytes[offset_of!(Config, upstream_port)..][..2],
            &[0, 53],
            "network order"
        );
        assert_eq!(
            &bytes[offset_of!(Config, dockerd_udp_port)..][..2],
            &41552u16.to_be_bytes()
        );
        assert_eq!(
            &bytes[offset_of!(Config, dockerd_tcp_port)..][..2],
            &37011u16.to_be_bytes()
        );
        assert_eq!(
            &bytes[offset_of!(Config, eth0_ifindex)..][..4],
            &43u32.to_ne_bytes()
        );
        assert_eq!(
            &bytes[offset_of!(Config, lo_ifindex)..][..4],
            &1u32.to_ne_bytes()
        );
        assert_eq!(decode_config(&bytes), Some(c));
        assert_eq!(upstream_of(&c), "1.1.1.1:53".parse().unwrap());
    }

    #[test]
    fn counter_names_follow_the_struct() {
        assert_eq!(COUNTER_NAMES.len() * 8, size_of::<Counters>());
        let c = Counters {
            tcp_segments_redirected: 3,
            failures: 9,
            ..Counters::default()
        };
        let array = counters_as_array(&c);
        assert_eq!(
            array[COUNTER_NAMES
                .iter()
                .position(|n| *n == "tcp_segments_redirected")
                .unwrap()],
            3
        );
        assert_eq!(
            array[COUNTER_NAMES.iter().position(|n| *n == "failures").unwrap()],
            9
        );
    }

    #[test]
    fn percpu_counters_are_summed() {
        let slot = size_of::<Counters>().next_multiple_of(8);
        let mut bytes = vec![0u8; slot * 2];
        bytes[0] = 3; // cpu 0: queries_redirected_udp
        bytes[slot] = 4; // cpu 1: queries_redirected_udp
        bytes[slot + 8 * 4] = 5; // cpu 1: replies_restored
        let sum = sum_percpu_counters(&bytes);
        assert_eq!(sum.queries_redirected_udp, 7);
        assert_eq!(sum.replies_restored, 5);
        assert_eq!(sum.failures, 0);
    }
}
