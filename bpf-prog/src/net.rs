//! Packets: IPv4 and IPv6 with UDP or TCP, their checksums, and the DNS messages they carry.

pub mod checksum;
pub mod dns;
pub mod ipv6;
pub mod packet;
