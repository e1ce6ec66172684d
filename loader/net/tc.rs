//! The clsact qdisc and direct-action bpf filters over rtnetlink.
//! Message numbers and attributes: vendor-docs/tc-rtnetlink.md.

use super::netlink::{Netlink, NetlinkError};
use netlink_packet_core::{NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::tc::{
    TcAttribute, TcBpfFlags, TcFilterBpfOption, TcHandle, TcHeader, TcMessage, TcOption,
};
use netlink_packet_route::RouteNetlinkMessage;
use std::os::fd::{AsRawFd, OwnedFd};

/// All protocols (if_ether.h), in host order; tcm_info carries it in network order
/// ([`filter_info`] swaps it).
pub const ETH_P_ALL: u16 = 0x0003;
const EEXIST: i32 = libc::EEXIST;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Ingress,
    Egress,
}

impl Hook {
    fn parent(self) -> TcHandle {
        let minor = match self {
            Hook::Ingress => TcHandle::MIN_INGRESS,
            Hook::Egress => TcHandle::MIN_EGRESS,
        };
        TcHandle {
            major: TcHandle::CLSACT.major,
            minor,
        }
    }
}

impl std::fmt::Display for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Hook::Ingress => "ingress",
            Hook::Egress => "egress",
        })
    }
}

/// A filter as a dump reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// Its priority (`tc`'s pref): lower numbers run first.
    pub prio: u16,
    /// Host order (decoded from tcm_info's network-order half).
    pub protocol: u16,
    pub handle: u32,
    pub classifier: Classifier,
}

/// A filter's classifier: only a bpf one runs a program that can be dnsredir's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classifier {
    /// Its program's name (TCA_BPF_NAME: how dnsredir knows its own) and id (to find the
    /// program and its maps), as far as the dump tells them.
    Bpf {
        name: Option<String>,
        prog_id: Option<u32>,
    },
    /// Any other classifier (`u32`, `flower`, ...), by its kind.
    Other(String),
}

impl Classifier {
    /// The kind (TCA_KIND) that a request about this filter names.
    pub fn kind(&self) -> &str {
        match self {
            Classifier::Bpf { .. } => "bpf",
            Classifier::Other(kind) => kind,
        }
    }
}

impl Filter {
    /// The program name of a bpf filter.
    pub fn prog_name(&self) -> Option<&str> {
        match &self.classifier {
            Classifier::Bpf { name, .. } => name.as_deref(),
            Classifier::Other(_) => None,
        }
    }

    pub fn is_named(&self, prefix: &str) -> bool {
        self.prog_name().is_some_and(|n| n.starts_with(prefix))
    }

    pub fn prog_id(&self) -> Option<u32> {
        match self.classifier {
            Classifier::Bpf { prog_id, .. } => prog_id,
            Classifier::Other(_) => None,
        }
    }
}

pub fn filter_info(prio: u16, protocol: u16) -> u32 {
    ((prio as u32) << 16) | protocol.to_be() as u32
}

fn header(ifindex: u32, handle: TcHandle, parent: TcHandle, info: u32) -> TcHeader {
    TcHeader {
        index: ifindex as i32,
        handle,
        parent,
        info,
        ..Default::default()
    }
}

pub fn clsact_message(ifindex: u32) -> TcMessage {
    TcMessage::from_parts(
        header(
            ifindex,
            TcHandle {
                major: TcHandle::CLSACT.major,
                minor: 0,
            },
            TcHandle::CLSACT,
            0,
        ),
        vec![TcAttribute::Kind("clsact".to_string())],
    )
}

pub fn bpf_filter_message(
    ifindex: u32,
    hook: Hook,
    prio: u16,
    handle: u32,
    prog: i32,
    name: &str,
) -> TcMessage {
    TcMessage::from_parts(
        header(
            ifindex,
            TcHandle::from(handle),
            hook.parent(),
            filter_info(prio, ETH_P_ALL),
        ),
        vec![
            TcAttribute::Kind("bpf".to_string()),
            TcAttribute::Options(vec![
                TcOption::Bpf(TcFilterBpfOption::ProgFd(prog as u32)),
                TcOption::Bpf(TcFilterBpfOption::ProgName(name.to_string())),
                TcOption::Bpf(TcFilterBpfOption::Flags(TcBpfFlags::DirectAction)),
            ]),
        ],
    )
}

/// Adds clsact to the interface; `Ok(false)` when it was already there (kept as it is).
pub fn add_clsact(nl: &mut Netlink, ifindex: u32) -> Result<bool, NetlinkError> {
    match nl.request(
        RouteNetlinkMessage::NewQueueDiscipline(clsact_message(ifindex)),
        NLM_F_CREATE | NLM_F_EXCL,
    ) {
        Ok(_) => Ok(true),
        Err(e) if e.errno() == Some(EEXIST) => Ok(false),
        Err(e) => Err(e),
    }
}

pub fn del_clsact(nl: &mut Netlink, ifindex: u32) -> Result<(), NetlinkError> {
    nl.request(
        RouteNetlinkMessage::DelQueueDiscipline(clsact_message(ifindex)),
        0,
    )
    .map(drop)
}

/// Whether the interface has a clsact qdisc.
pub fn has_clsact(nl: &mut Netlink, ifindex: u32) -> Result<bool, NetlinkError> {
    Ok(clsact_interfaces(nl)?.contains(&ifindex))
}

/// The interfaces of the namespace that have a clsact qdisc (one dump for all of them).
pub fn clsact_interfaces(nl: &mut Netlink) -> Result<Vec<u32>, NetlinkError> {
    let answers = nl.request(
        RouteNetlinkMessage::GetQueueDiscipline(TcMessage::from_parts(
            header(0, TcHandle::UNSPEC, TcHandle::UNSPEC, 0),
            vec![],
        )),
        NLM_F_DUMP,
    )?;
    let mut found: Vec<u32> = answers
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewQueueDiscipline(q)
                if q.attributes
                    .iter()
                    .any(|a| matches!(a, TcAttribute::Kind(k) if k == "clsact")) =>
            {
                u32::try_from(q.header.index).ok()
            }
            _ => None,
        })
        .collect();
    found.sort_unstable();
    found.dedup();
    Ok(found)
}

/// The filters on one hook. The chain heads a dump also returns (handle 0) are left out.
pub fn filters(nl: &mut Netlink, ifindex: u32, hook: Hook) -> Result<Vec<Filter>, NetlinkError> {
    let answers = nl.request(
        RouteNetlinkMessage::GetTrafficFilter(TcMessage::from_parts(
            header(ifindex, TcHandle::UNSPEC, hook.parent(), 0),
            vec![],
        )),
        NLM_F_DUMP,
    )?;
    Ok(answers
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewTrafficFilter(f) => decode_filter(f),
            _ => None,
        })
        .collect())
}

pub fn decode_filter(message: TcMessage) -> Option<Filter> {
    let handle: u32 = message.header.handle.into();
    if handle == 0 {
        return None;
    }
    let (mut kind, mut name, mut prog_id) = (String::new(), None, None);
    for attribute in message.attributes {
        match attribute {
            TcAttribute::Kind(k) => kind = k,
            TcAttribute::Options(options) => {
                for option in options {
                    match option {
                        TcOption::Bpf(TcFilterBpfOption::ProgName(n)) => name = Some(n),
                        TcOption::Bpf(TcFilterBpfOption::ProgId(id)) => prog_id = Some(id),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let classifier = if kind == "bpf" {
        Classifier::Bpf { name, prog_id }
    } else {
        Classifier::Other(kind)
    };
    Some(Filter {
        prio: (message.header.info >> 16) as u16,
        protocol: u16::from_be(message.header.info as u16),
        handle,
        classifier,
    })
}

/// Adds a direct-action bpf filter, or atomically swaps the program of the filter already at
/// (prio, handle).
pub fn put_bpf_filter(
    nl: &mut Netlink,
    ifindex: u32,
    hook: Hook,
    prio: u16,
    handle: u32,
    prog: &OwnedFd,
    name: &str,
) -> Result<(), NetlinkError> {
    let message = bpf_filter_message(ifindex, hook, prio, handle, prog.as_raw_fd(), name);
    nl.request(
        RouteNetlinkMessage::NewTrafficFilter(message),
        NLM_F_CREATE | NLM_F_REPLACE,
    )
    .map(drop)
}

pub fn del_filter(
    nl: &mut Netlink,
    ifindex: u32,
    hook: Hook,
    filter: &Filter,
) -> Result<(), NetlinkError> {
    let message = TcMessage::from_parts(
        header(
            ifindex,
            TcHandle::from(filter.handle),
            hook.parent(),
            filter_info(filter.prio, filter.protocol),
        ),
        vec![TcAttribute::Kind(filter.classifier.kind().to_string())],
    );
    nl.request(RouteNetlinkMessage::DelTrafficFilter(message), 0)
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::Emitable;

    fn emit(message: &TcMessage) -> Vec<u8> {
        let mut buf = vec![0u8; message.buffer_len()];
        message.emit(&mut buf);
        buf
    }

    #[test]
    fn protocol_all_is_network_order_in_tcm_info() {
        // `tc` prints this as `protocol all pref 1`: 0x0003 in host order would be protocol 768.
        assert_eq!(filter_info(1, ETH_P_ALL).to_ne_bytes()[..2], [0x00, 0x03]);
        assert_eq!(filter_info(1, ETH_P_ALL) >> 16, 1);
    }

    #[test]
    fn bpf_filter_encoding() {
        let bytes = emit(&bpf_filter_message(
            42,
            Hook::Ingress,
            1,
            1,
            7,
            "dnsredir_query",
        ));
        // struct tcmsg: family, pad, ifindex, handle, parent, info
        assert_eq!(bytes[0], 0);
        assert_eq!(&bytes[4..8], &42i32.to_ne_bytes());
        assert_eq!(&bytes[8..12], &1u32.to_ne_bytes());
        assert_eq!(
            &bytes[12..16],
            &0xffff_fff2u32.to_ne_bytes(),
            "parent ffff:fff2 (clsact ingress)"
        );
        assert_eq!(&bytes[16..20], &filter_info(1, ETH_P_ALL).to_ne_bytes());
        // TCA_KIND "bpf"
        assert_eq!(&bytes[20..28], &[8, 0, 1, 0, b'b', b'p', b'f', 0]);
        // TCA_OPTIONS holding TCA_BPF_FD=7, TCA_BPF_NAME, TCA_BPF_FLAGS=ACT_DIRECT
        assert_eq!(u16::from_ne_bytes([bytes[30], bytes[31]]), 2);
        let options = &bytes[32..];
        assert_eq!(options[..8], [8, 0, 6, 0, 7, 0, 0, 0]);
        let name_len = u16::from_ne_bytes([options[8], options[9]]) as usize;
        assert_eq!(u16::from_ne_bytes([options[10], options[11]]), 7);
        assert_eq!(&options[12..name_len + 8], b"dnsredir_query\0");
        let flags = &options[8 + ((name_len + 3) & !3)..];
        assert_eq!(flags[..8], [8, 0, 8, 0, 1, 0, 0, 0]);
    }

    #[test]
    fn clsact_encoding() {
        let bytes = emit(&clsact_message(3));
        assert_eq!(&bytes[4..8], &3i32.to_ne_bytes());
        assert_eq!(
            &bytes[8..12],
            &0xffff_0000u32.to_ne_bytes(),
            "handle ffff:0"
        );
        assert_eq!(
            &bytes[12..16],
            &0xffff_fff1u32.to_ne_bytes(),
            "parent TC_H_CLSACT"
        );
        assert_eq!(
            &bytes[20..32],
            &[11, 0, 1, 0, b'c', b'l', b's', b'a', b'c', b't', 0, 0]
        );
    }

    #[test]
    fn dump_entries_decode_and_chain_heads_are_skipped() {
        let mut message = bpf_filter_message(5, Hook::Ingress, 3, 9, 1, "dnsredir_reply");
        assert_eq!(
            decode_filter(message.clone()).map(|f| (f.prio, f.protocol, f.handle, f.classifier)),
            Some((
                3,
                ETH_P_ALL,
                9,
                Classifier::Bpf {
                    name: Some("dnsredir_reply".to_string()),
                    prog_id: None
                }
            ))
        );
        message.header.handle = TcHandle::UNSPEC;
        assert_eq!(decode_filter(message), None);
    }
}
