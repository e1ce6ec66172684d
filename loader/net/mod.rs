//! Kernel networking plumbing: an rtnetlink channel ([`netlink`]), clsact qdiscs and bpf
//! filters on it ([`tc`]), work inside another network namespace ([`netns`]), one question
//! to conntrack over ctnetlink ([`conntrack`]), and socket options ([`sockopt`]).

pub mod conntrack;
pub mod netlink;
pub mod netns;
pub mod sockopt;
pub mod tc;
