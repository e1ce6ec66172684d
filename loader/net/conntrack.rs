//! One ctnetlink question: "what became of this flow?". Given the original tuple of a flow the
//! calling thread's namespace has seen, the kernel's conntrack entry holds the reply tuple, and
//! a NAT rule shows there: after a DNAT to 127.0.0.11:P, replies come *from* port P.
//!
//! Encoded by hand (include/uapi/linux/netfilter/nfnetlink.h, nfnetlink_conntrack.h): an
//! nlmsghdr, an nfgenmsg, then netlink attributes.

use crate::net::netlink::{attributes, extended_ack_message, NetlinkError, NLMSG_HDRLEN};
use crate::net::sockopt;
use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLA_F_NESTED: u16 = 0x8000;

/// NFNL_SUBSYS_CTNETLINK (nfnetlink.h).
const NFNL_SUBSYS_CTNETLINK: u16 = 1;
/// enum cntl_msg_types: the kernel answers a GET with a NEW message.
const IPCTNL_MSG_CT_NEW: u16 = 0;
const IPCTNL_MSG_CT_GET: u16 = 1;
/// struct nfgenmsg: family, version, res_id (big endian).
const NFGENMSG_LEN: usize = 4;
const NFNETLINK_V0: u8 = 0;

/// enum ctattr_type.
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
/// enum ctattr_tuple.
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
/// enum ctattr_ip.
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
/// enum ctattr_l4proto.
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;

/// The kernel answers at once; this only guards against a wedged socket.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(1);

/// One direction of a flow, as conntrack keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuple {
    /// IPPROTO_UDP or IPPROTO_TCP.
    pub proto: u8,
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
}

fn put_attr(buf: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    buf.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(payload);
    buf.resize(buf.len().next_multiple_of(4), 0);
}

fn nested(kind: u16, build: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut inner = Vec::new();
    build(&mut inner);
    let mut buf = Vec::new();
    put_attr(&mut buf, kind | NLA_F_NESTED, &inner);
    buf
}

/// A tuple attribute (`kind`: CTA_TUPLE_ORIG or CTA_TUPLE_REPLY): addresses, protocol, ports.
fn encode_tuple(kind: u16, t: &Tuple) -> Vec<u8> {
    nested(kind, |b| {
        b.extend(nested(CTA_TUPLE_IP, |ip| {
            put_attr(ip, CTA_IP_V4_SRC, &t.src.ip().octets());
            put_attr(ip, CTA_IP_V4_DST, &t.dst.ip().octets());
        }));
        b.extend(nested(CTA_TUPLE_PROTO, |p| {
            put_attr(p, CTA_PROTO_NUM, &[t.proto]);
            put_attr(p, CTA_PROTO_SRC_PORT, &t.src.port().to_be_bytes());
            put_attr(p, CTA_PROTO_DST_PORT, &t.dst.port().to_be_bytes());
        }));
    })
}

/// IPCTNL_MSG_CT_GET for the entry whose original direction is `orig`.
pub fn encode_get(sequence: u32, orig: &Tuple) -> Vec<u8> {
    let tuple = encode_tuple(CTA_TUPLE_ORIG, orig);
    let length = NLMSG_HDRLEN + NFGENMSG_LEN + tuple.len();
    let mut msg = Vec::with_capacity(length);
    msg.extend_from_slice(&(length as u32).to_ne_bytes());
    msg.extend_from_slice(&((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET).to_ne_bytes());
    msg.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    msg.extend_from_slice(&sequence.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
    msg.extend_from_slice(&[libc::AF_INET as u8, NFNETLINK_V0, 0, 0]);
    msg.extend_from_slice(&tuple);
    msg
}

fn find(data: &[u8], kind: u16) -> Option<&[u8]> {
    attributes(data).find(|(k, _)| *k == kind).map(|(_, p)| p)
}

fn decode_tuple(data: &[u8]) -> Option<Tuple> {
    let ip = find(data, CTA_TUPLE_IP)?;
    let proto = find(data, CTA_TUPLE_PROTO)?;
    let addr = |kind| -> Option<Ipv4Addr> {
        let b: [u8; 4] = find(ip, kind)?.try_into().ok()?;
        Some(Ipv4Addr::from(b))
    };
    let port = |kind| -> Option<u16> {
        let b: [u8; 2] = find(proto, kind)?.try_into().ok()?;
        Some(u16::from_be_bytes(b))
    };
    Some(Tuple {
        proto: *find(proto, CTA_PROTO_NUM)?.first()?,
        src: SocketAddrV4::new(addr(CTA_IP_V4_SRC)?, port(CTA_PROTO_SRC_PORT)?),
        dst: SocketAddrV4::new(addr(CTA_IP_V4_DST)?, port(CTA_PROTO_DST_PORT)?),
    })
}

/// What the kernel said to request `sequence`: `Ok(Some(reply tuple))`, `Ok(None)` when
/// there is no such entry (ENOENT), or the error. Messages for other requests are skipped.
pub fn decode_answer(data: &[u8], sequence: u32) -> Result<Option<Option<Tuple>>, NetlinkError> {
    let mut rest = data;
    while rest.len() >= NLMSG_HDRLEN {
        let length = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if length < NLMSG_HDRLEN || length > rest.len() {
            return Err(NetlinkError::Decode(format!(
                "a conntrack message of {length} bytes in {} received",
                rest.len()
            )));
        }
        let kind = u16::from_ne_bytes([rest[4], rest[5]]);
        let seq = u32::from_ne_bytes([rest[8], rest[9], rest[10], rest[11]]);
        let body = &rest[NLMSG_HDRLEN..length];
        rest = rest.get(length.next_multiple_of(4)..).unwrap_or_default();
        if seq != sequence {
            continue;
        }
        if kind == NLMSG_ERROR {
            let code = body
                .get(..4)
                .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or_else(|| NetlinkError::Decode("a short netlink error".into()))?;
            return match -code {
                0 => Ok(None), // an ACK: no answer in this datagram
                libc::ENOENT => Ok(Some(None)),
                errno => Err(NetlinkError::Kernel {
                    errno,
                    message: body.get(4..).and_then(extended_ack_message),
                }),
            };
        }
        if kind == (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW {
            let attributes = body.get(NFGENMSG_LEN..).unwrap_or_default();
            let reply = find(attributes, CTA_TUPLE_REPLY)
                .and_then(decode_tuple)
                .ok_or_else(|| {
                    NetlinkError::Decode("a conntrack entry without a reply tuple".into())
                })?;
            return Ok(Some(Some(reply)));
        }
    }
    Ok(None)
}

/// Asks the calling thread's namespace's conntrack table for the reply direction of the flow
/// `orig`; `None` when conntrack has no such entry.
pub fn reply_tuple(orig: &Tuple) -> Result<Option<Tuple>, NetlinkError> {
    crate::fault::call(crate::fault::Funnel::Conntrack)?;
    let mut socket = Socket::new(NETLINK_NETFILTER)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    set_receive_timeout(&socket, ANSWER_TIMEOUT)?;
    let sequence = 1;
    socket.send(&encode_get(sequence, orig), 0)?;
    loop {
        let (data, _) = socket.recv_from_full()?;
        if let Some(answer) = decode_answer(&data, sequence)? {
            return Ok(answer);
        }
    }
}

fn set_receive_timeout(socket: &Socket, timeout: Duration) -> std::io::Result<()> {
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as _,
        tv_usec: timeout.subsec_micros() as _,
    };
    sockopt::set(socket, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe() -> Tuple {
        Tuple {
            proto: libc::IPPROTO_UDP as u8,
            src: "127.0.0.1:40000".parse().unwrap(),
            dst: "127.0.0.11:53".parse().unwrap(),
        }
    }

    /// What `conntrack -G -p udp -s 127.0.0.1 -d 127.0.0.11 --sport 40000 --dport 53` sends,
    /// attribute by attribute (sizes, types with NLA_F_NESTED, network-order values).
    #[test]
    fn encodes_the_get_request() {
        let msg = encode_get(7, &probe());
        let mut want: Vec<u8> = Vec::new();
        want.extend_from_slice(&72u32.to_ne_bytes());
        want.extend_from_slice(&0x0101u16.to_ne_bytes());
        want.extend_from_slice(&1u16.to_ne_bytes());
        want.extend_from_slice(&7u32.to_ne_bytes());
        want.extend_from_slice(&0u32.to_ne_bytes());
        want.extend_from_slice(&[2, 0, 0, 0]); // AF_INET, version 0, res_id 0
        let attr = |w: &mut Vec<u8>, len: u16, kind: u16| {
            w.extend_from_slice(&len.to_ne_bytes());
            w.extend_from_slice(&kind.to_ne_bytes());
        };
        attr(&mut want, 52, 0x8001); // CTA_TUPLE_ORIG
        attr(&mut want, 20, 0x8001); //   CTA_TUPLE_IP
        attr(&mut want, 8, 1); //           CTA_IP_V4_SRC
        want.extend_from_slice(&[127, 0, 0, 1]);
        attr(&mut want, 8, 2); //           CTA_IP_V4_DST
        want.extend_from_slice(&[127, 0, 0, 11]);
        attr(&mut want, 28, 0x8002); //   CTA_TUPLE_PROTO
        attr(&mut want, 5, 1); //           CTA_PROTO_NUM
        want.extend_from_slice(&[17, 0, 0, 0]);
        attr(&mut want, 6, 2); //           CTA_PROTO_SRC_PORT
        want.extend_from_slice(&[0x9c, 0x40, 0, 0]);
        attr(&mut want, 6, 3); //           CTA_PROTO_DST_PORT
        want.extend_from_slice(&[0, 53, 0, 0]);
        assert_eq!(msg, want);
    }

    /// A kernel answer: IPCTNL_MSG_CT_NEW with both tuples (and a status attribute between).
    fn answer(sequence: u32, reply_sport: u16) -> Vec<u8> {
        let orig = probe();
        let reply = Tuple {
            proto: orig.proto,
            src: SocketAddrV4::new(*orig.dst.ip(), reply_sport),
            dst: orig.src,
        };
        let mut attrs = encode_tuple(CTA_TUPLE_ORIG, &orig);
        put_attr(&mut attrs, 3, &0x1b0u32.to_be_bytes()); // CTA_STATUS
        attrs.extend(encode_tuple(CTA_TUPLE_REPLY, &reply));
        let length = NLMSG_HDRLEN + NFGENMSG_LEN + attrs.len();
        let mut msg = Vec::new();
        msg.extend_from_slice(&(length as u32).to_ne_bytes());
        msg.extend_from_slice(&0x0100u16.to_ne_bytes());
        msg.extend_from_slice(&0u16.to_ne_bytes());
        msg.extend_from_slice(&sequence.to_ne_bytes());
        msg.extend_from_slice(&1234u32.to_ne_bytes());
        msg.extend_from_slice(&[2, 0, 0, 0]);
        msg.extend_from_slice(&attrs);
        msg
    }

    fn error(sequence: u32, errno: i32) -> Vec<u8> {
        let mut msg = Vec::new();
        msg.extend_from_slice(&36u32.to_ne_bytes());
        msg.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        msg.extend_from_slice(&0u16.to_ne_bytes());
        msg.extend_from_slice(&sequence.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(&(-errno).to_ne_bytes());
        msg.extend_from_slice(&[0u8; 16]); // the capped request header
        msg
    }

    #[test]
    fn decodes_the_reply_tuple_of_a_dnat() {
        let got = decode_answer(&answer(5, 41552), 5).unwrap();
        let reply = got.flatten().expect("a reply tuple");
        assert_eq!(reply.src, "127.0.0.11:41552".parse().unwrap());
        assert_eq!(reply.dst, "127.0.0.1:40000".parse().unwrap());
        assert_eq!(reply.proto, 17);
    }

    #[test]
    fn no_entry_is_not_an_error() {
        assert_eq!(
            decode_answer(&error(5, libc::ENOENT), 5).unwrap(),
            Some(None)
        );
    }

    #[test]
    fn other_errors_and_other_requests() {
        assert!(matches!(
            decode_answer(&error(5, libc::EPERM), 5),
            Err(NetlinkError::Kernel { errno, .. }) if errno == libc::EPERM
        ));
        // an answer to another request, then ours
        let mut both = answer(4, 1);
        both.extend(answer(5, 41552));
        let reply = decode_answer(&both, 5).unwrap().flatten().unwrap();
        assert_eq!(reply.src.port(), 41552);
        assert_eq!(decode_answer(&answer(4, 1), 5).unwrap(), None);
    }

    #[test]
    fn truncated_answers_are_errors_not_panics() {
        let full = answer(5, 41552);
        for cut in 0..full.len() {
            let _ = decode_answer(&full[..cut], 5);
        }
        assert!(decode_answer(&full[..40], 5).is_err());
    }
}
