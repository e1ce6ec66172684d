//! What the container's DNS reaches, and what is attached, in a [`DockerLikeNet`]: the checks
//! shared by netns_e2e.rs and detect_e2e.rs.

use super::docker::{has_clsact, DockerLikeNet};
use super::json::Json;
use super::query_a;
use std::net::Ipv4Addr;
use std::time::Duration;

/// How long a query from the container may take.
pub const T: Duration = Duration::from_secs(3);

/// An A query from the container to 127.0.0.11:53.
pub fn a(net: &DockerLikeNet, name: &str, tcp: bool) -> Result<Vec<Ipv4Addr>, String> {
    query_a(&net.ctr_ns, net.resolver(), name, tcp, T)
}

/// A UDP and a TCP query to 127.0.0.11:53 are answered by the upstream (`redirected`) or the
/// stand-in, and reach that one server only, checked by address and counts.
fn assert_both_answered(net: &DockerLikeNet, redirected: bool) {
    let (si, up) = (net.stand_in().queries(), net.upstream().queries());
    let (answer, by, not_by) = if redirected {
        (net.upstream_answer, "upstream", "stand-in")
    } else {
        (net.stand_in_answer, "stand-in", "upstream")
    };
    assert_eq!(
        a(net, "example.com", false),
        Ok(vec![answer]),
        "UDP via 127.0.0.11:53"
    );
    assert_eq!(
        a(net, "example.org", true),
        Ok(vec![answer]),
        "TCP via 127.0.0.11:53"
    );
    let (si_want, up_want) = if redirected {
        (si, up + 2)
    } else {
        (si + 2, up)
    };
    assert_eq!(
        net.upstream().queries(),
        up_want,
        "the upstream's queries (both should have reached the {by})"
    );
    assert_eq!(
        net.stand_in().queries(),
        si_want,
        "the stand-in's queries (none should have reached the {not_by})"
    );
}

/// The container's DNS goes to the upstream (UDP and TCP), checked by address and counts.
pub fn assert_redirected(net: &DockerLikeNet) {
    assert_both_answered(net, true);
}

/// The stand-in (dockerd) answers 127.0.0.11:53 again.
pub fn assert_stand_in_answers(net: &DockerLikeNet) {
    assert_both_answered(net, false);
}

/// dnsredir found dockerd's ports itself: the container's DNS goes to the upstream and
/// `--status` shows the ports dockerd listens on.
pub fn assert_ports_found(net: &DockerLikeNet) {
    assert_redirected(net);
    assert_status_has_dockerd_ports(net, &net.attached_status());
}

/// No dnsredir filter on lo or eth0.
pub fn assert_no_filters(net: &DockerLikeNet) {
    assert_eq!(
        net.dnsredir_filters("lo") + net.dnsredir_filters("eth0"),
        0,
        "dnsredir filters on lo and eth0:\n{}\n{}",
        net.tc_filters("lo"),
        net.tc_filters("eth0")
    );
}

/// Nothing attached after a refusal: no filter, and the stand-in answers.
pub fn assert_refused_untouched(net: &DockerLikeNet) {
    assert_no_filters(net);
    assert_stand_in_answers(net);
}

/// Nothing attached, not even a clsact qdisc.
pub fn assert_nothing_attached(net: &DockerLikeNet, what: &str) {
    assert_no_filters(net);
    assert!(
        !has_clsact(&net.ctr_ns, "lo") && !has_clsact(&net.ctr_ns, "eth0"),
        "{what}"
    );
}

/// `--status --json`'s configuration names dockerd's two ports.
pub fn assert_status_has_dockerd_ports(net: &DockerLikeNet, j: &Json) {
    assert_eq!(
        j.u64_at(&["config", "dockerd_udp_port"]),
        net.dockerd_udp_port as u64,
        "{j}"
    );
    assert_eq!(
        j.u64_at(&["config", "dockerd_tcp_port"]),
        net.dockerd_tcp_port as u64,
        "{j}"
    );
}
