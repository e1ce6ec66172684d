//! Kernel networking plumbing: an rtnetlink channel ([`netlink`]), clsact qdiscs and bpf
//! filters on it ([`tc`]), and work inside another network namespace ([`netns`]).

pub mod netlink;
pub mod netns;
pub mod tc;
