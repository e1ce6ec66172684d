//! dnsredir: redirect a Docker container's DNS with two TC-BPF programs, loaded by our own
//! ELF loader and attached over rtnetlink.
//!
//! Data flows one way: command line → [`attach::AttachRequest`] → [`elf`] (parse) →
//! [`reloc`] + [`load`] (kernel objects) → [`tc`] (attach) → report.

pub use dnsredir_abi as abi;
pub mod attach;
pub mod container;
pub mod elf;
pub mod embedded;
pub mod error;
pub mod insn;
pub mod layout;
pub mod load;
pub mod netlink;
pub mod netns;
pub mod reloc;
pub mod status;
pub mod sys;
pub mod tc;
