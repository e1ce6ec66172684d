//! The byte layouts shared with the programs, checked field by field: what the programs and
//! every build of the loader agree on (no root needed).

use dnsredir::abi::{
    Config, ConfigHeader, Counters, FlowKey, FlowValue, FlowValue6, CONFIG_MAGIC, LAYOUT_VERSION,
};

fn config() -> Config {
    Config {
        build_id: 0x0102_0304_0506_0708,
        upstream_port: 53u16.to_be(),
        ..Config::UNSET
    }
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
        port: 50123u16.to_be(),
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
        origin: u32::from_ne_bytes([127, 0, 0, 1]),
        stamp: 7,
    };
    let b = v.to_bytes();
    assert_eq!(
        b.len(),
        8,
        "64-byte table entries with the kernel's header and the key"
    );
    assert_eq!(&b[0..4], &[127, 0, 0, 1]);
    assert_eq!(&b[4..8], &7u32.to_ne_bytes());
    assert_eq!(FlowValue::from_bytes(&b), Some(v));
    let v6 = FlowValue6 {
        server: [
            u32::from_ne_bytes([0xfd, 0, 0, 0]),
            0,
            0,
            u32::from_ne_bytes([0, 0, 0, 0x53]),
        ],
        nameserver: 2,
        stamp: 9,
    };
    let b = v6.to_bytes();
    assert_eq!(b.len(), 24);
    assert_eq!(
        &b[0..4],
        &[0xfd, 0, 0, 0],
        "the server asked, network order"
    );
    assert_eq!(&b[12..16], &[0, 0, 0, 0x53]);
    assert_eq!(&b[16..20], &2u32.to_ne_bytes(), "nameserver index");
    assert_eq!(&b[20..24], &9u32.to_ne_bytes(), "stamp");
    assert_eq!(FlowValue6::from_bytes(&b), Some(v6));
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
            "answered_blocked",
            "answered_pinned",
            "answered_disallowed",
            "tcp_reset",
            "flows_evicted",
        ]
    );
    let c = Counters {
        tcp_segments_redirected: 3,
        failures: 9,
        replies_fragmented: 11,
        rule_unparsed: 13,
        answered_pinned: 15,
        flows_evicted: 17,
        ..Counters::default()
    };
    assert_eq!(
        c.as_array(),
        [0, 0, 3, 0, 0, 0, 0, 9, 0, 11, 0, 0, 0, 13, 0, 15, 0, 0, 17]
    );
    assert_eq!(Counters::from_array(c.as_array()), c);
    let b = c.to_bytes();
    assert_eq!(b.len(), 152);
    assert_eq!(&b[16..24], &3u64.to_ne_bytes(), "tcp_segments_redirected");
    assert_eq!(&b[56..64], &9u64.to_ne_bytes(), "failures");
    assert_eq!(&b[72..80], &11u64.to_ne_bytes(), "replies_fragmented");
    assert_eq!(&b[104..112], &13u64.to_ne_bytes(), "rule_unparsed");
    assert_eq!(&b[144..152], &17u64.to_ne_bytes(), "flows_evicted");
    assert_eq!(Counters::from_bytes(&b), Some(c));
}
