//! Packets: IPv4 with UDP or TCP, their checksums, and the DNS messages they carry.

pub mod checksum;
pub mod dns;
pub mod packet;
