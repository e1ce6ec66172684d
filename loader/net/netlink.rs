//! A blocking rtnetlink request/response channel with the kernel's extended-ack messages.

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::fmt;
use std::io;

/// NLMSGERR_ATTR_MSG (include/uapi/linux/netlink.h): the kernel's text for an error.
const NLMSGERR_ATTR_MSG: u16 = 1;
/// The size of struct nlmsghdr.
pub const NLMSG_HDRLEN: usize = 16;
/// An attribute's type without its NLA_F_NESTED and NLA_F_NET_BYTEORDER flags.
const NLA_TYPE_MASK: u16 = 0x3fff;

#[derive(Debug)]
pub enum NetlinkError {
    Io(io::Error),
    /// The kernel refused the request.
    Kernel {
        errno: i32,
        message: Option<String>,
    },
    Decode(String),
}

impl NetlinkError {
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Kernel { errno, .. } => Some(*errno),
            NetlinkError::Io(e) => e.raw_os_error(),
            NetlinkError::Decode(_) => None,
        }
    }
}

impl fmt::Display for NetlinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetlinkError::Io(e) => write!(f, "netlink socket: {e}"),
            NetlinkError::Kernel { errno, message } => {
                write!(f, "{}", io::Error::from_raw_os_error(*errno))?;
                if let Some(m) = message {
                    write!(f, " ({m})")?;
                }
                Ok(())
            }
            NetlinkError::Decode(e) => write!(f, "cannot decode the kernel's answer: {e}"),
        }
    }
}

impl std::error::Error for NetlinkError {}

impl From<io::Error> for NetlinkError {
    fn from(e: io::Error) -> Self {
        NetlinkError::Io(e)
    }
}

pub struct Netlink {
    socket: Socket,
    sequence: u32,
}

impl Netlink {
    /// Opens a socket in the calling thread's current network namespace.
    pub fn open() -> Result<Netlink, NetlinkError> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        // Errors then carry only the request's header followed by the kernel's text.
        socket.set_cap_ack(true)?;
        socket.set_ext_ack(true)?;
        Ok(Netlink {
            socket,
            sequence: 0,
        })
    }

    /// Sends one request and collects every message of the answer until the ACK or, for a
    /// dump, the DONE message.
    pub fn request(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        if let Err(e) = crate::fault::call(crate::fault::Funnel::Netlink) {
            return Err(NetlinkError::Kernel {
                errno: e.raw_os_error().unwrap_or(libc::EIO),
                message: Some(format!("injected by {}", crate::fault::FAULT_ENV)),
            });
        }
        self.sequence = self.sequence.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        header.sequence_number = self.sequence;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(message));
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.socket.send(&buf, 0)?;

        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut answers = Vec::new();
        loop {
            let (data, _) = self.socket.recv_from_full()?;
            let mut offset = 0;
            while offset < data.len() {
                let bytes = &data[offset..];
                let message = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes)
                    .map_err(|e| NetlinkError::Decode(e.to_string()))?;
                let length = message.header.length as usize;
                if length == 0 {
                    return Err(NetlinkError::Decode("zero-length message".into()));
                }
                offset += (length + 3) & !3;
                if message.header.sequence_number != self.sequence {
                    continue;
                }
                match message.payload {
                    NetlinkPayload::InnerMessage(inner) => answers.push(inner),
                    NetlinkPayload::Done(_) => return Ok(answers),
                    NetlinkPayload::Error(e) => match e.code {
                        None if !dump => return Ok(answers),
                        None => {}
                        Some(code) => {
                            return Err(NetlinkError::Kernel {
                                errno: -code.get(),
                                message: extended_ack_message(&e.header),
                            })
                        }
                    },
                    _ => {}
                }
            }
        }
    }
}

/// The text of NLMSGERR_ATTR_MSG in an error's payload (after the capped request header).
pub fn extended_ack_message(payload: &[u8]) -> Option<String> {
    let (_, text) =
        attributes(payload.get(NLMSG_HDRLEN..)?).find(|(k, _)| *k == NLMSGERR_ATTR_MSG)?;
    let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
    Some(String::from_utf8_lossy(&text[..end]).into_owned())
}

/// The attributes of a netlink attribute stream, (type without flags, payload), up to the
/// first one that is cut short.
pub fn attributes(mut data: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if data.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([data[0], data[1]]) as usize;
        let kind = u16::from_ne_bytes([data[2], data[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > data.len() {
            return None;
        }
        let payload = &data[4..len];
        data = data.get(len.next_multiple_of(4)..).unwrap_or_default();
        Some((kind, payload))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_kernels_error_text() {
        let mut payload = vec![0u8; NLMSG_HDRLEN];
        // an unrelated attribute first (NLMSGERR_ATTR_OFFS = 2), then the message
        payload.extend_from_slice(&[8, 0, 2, 0, 1, 0, 0, 0]);
        let text = b"Exclusivity flag on, cannot modify\0";
        payload.extend_from_slice(&((4 + text.len()) as u16).to_ne_bytes());
        payload.extend_from_slice(&1u16.to_ne_bytes());
        payload.extend_from_slice(text);
        assert_eq!(
            extended_ack_message(&payload).as_deref(),
            Some("Exclusivity flag on, cannot modify")
        );
    }

    #[test]
    fn no_text_without_attributes() {
        assert_eq!(extended_ack_message(&[0u8; NLMSG_HDRLEN]), None);
        assert_eq!(extended_ack_message(&[0u8; 3]), None);
    }
}
