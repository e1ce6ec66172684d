//! `dnsredir --watch` against the Docker emulation: a watcher process runs while the test
//! makes UDP, TCP and single-label queries in the container, and prints a line (or a JSON
//! object) for each; an unanswered query shows after 5 s; SIGINT, a closed pipe, a detach and
//! the container's exit end it as documented, and the redirect stays as it was.

mod support;

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};
use support::watcher::Watcher;
use support::{DockerLikeNet, Json, DOCKER_RESOLVER};

/// `dnsredir --pid <the container> --watch <extra>`, started (see [`Watcher::start`]).
fn start(net: &DockerLikeNet, extra: &[&str]) -> Watcher {
    Watcher::start(&["--pid", &net.ctr_pid.to_string()], extra)
}

fn redirect_works(net: &DockerLikeNet) {
    let got = net
        .dig(&net.ctr_ns, DOCKER_RESOLVER, "after.example", false)
        .expect("dig after the watch");
    assert_eq!(got, vec![net.upstream_answer]);
}

#[test]
#[ignore = "needs root: network namespaces, tc, bpf(2)"]
fn udp_tcp_and_single_label_queries_show_up_and_sigint_leaves_the_redirect() {
    let net = DockerLikeNet::attached(&[]);
    let mut w = start(&net, &[]);
    let ns = net.ctr_ns.clone();
    assert_eq!(
        net.dig(&ns, DOCKER_RESOLVER, "www.example.com", false),
        Ok(vec![net.upstream_answer])
    );
    assert_eq!(
        net.dig(&ns, DOCKER_RESOLVER, "tcp.example.org", true),
        Ok(vec![net.upstream_answer])
    );
    assert_eq!(
        net.dig(&ns, DOCKER_RESOLVER, "c2", false),
        Ok(vec![net.c2_addr])
    );
    let up = net.upstream_answer.to_string();
    let c2 = net.c2_addr.to_string();
    let udp = w.wait_for(
        &[
            "  udp  ",
            "www.example.com  A  upstream  NOERROR  answers=1  ",
            &up,
        ],
        Duration::from_secs(5),
    );
    let tcp = w.wait_for(
        &[
            "  tcp  ",
            "tcp.example.org  A  upstream  NOERROR  answers=1  ",
            &up,
        ],
        Duration::from_secs(5),
    );
    let single = w.wait_for(
        &["  udp  ", "c2  A  dockerd  NOERROR  answers=1  ", &c2],
        Duration::from_secs(5),
    );
    for line in [&udp, &tcp, &single] {
        assert!(
            line.starts_with(|c: char| c.is_ascii_digit()),
            "a time first: {line}"
        );
        assert!(line.contains("127.0.0.1:"), "the client: {line}");
        assert!(line.ends_with("µs"), "the latency last: {line}");
    }
    assert_eq!(w.lines().len(), 3, "one line per query: {:#?}", w.lines());
    eprintln!("--watch output:\n{}", w.lines().join("\n"));

    w.signal(libc::SIGINT);
    assert_eq!(w.wait_exit(Duration::from_secs(5)), 0, "{}", w.stderr());
    assert!(!w.stderr().contains("error"), "{}", w.stderr());
    assert_eq!(net.dnsredir_filters("lo"), 1, "the filters stay");
    assert_eq!(net.dnsredir_filters("eth0"), 1);
    redirect_works(&net);
}

#[test]
#[ignore = "needs root: network namespaces, tc, bpf(2)"]
fn json_records_parse_and_a_silent_upstream_shows_as_unanswered() {
    let mut net = DockerLikeNet::attached(&[]);
    let mut w = start(&net, &["--json"]);
    let ns = net.ctr_ns.clone();
    assert!(net.dig(&ns, DOCKER_RESOLVER, "json.example", false).is_ok());
    let line = w.wait_for(&["json.example"], Duration::from_secs(5));
    let j = Json::parse(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(j.get("name").and_then(Json::as_str), Some("json.example"));
    assert_eq!(j.get("type").and_then(Json::as_str), Some("A"));
    assert_eq!(j.u64_at(&["qtype"]), 1);
    assert_eq!(j.get("proto").and_then(Json::as_str), Some("udp"));
    assert_eq!(j.get("path").and_then(Json::as_str), Some("upstream"));
    assert_eq!(j.get("client").and_then(Json::as_str), Some("127.0.0.1"));
    assert!(j.u64_at(&["port"]) > 0);
    assert!(j.get("id").and_then(Json::as_u64).is_some());
    assert!(j.bool_at(&["answered"]));
    assert_eq!(j.get("rcode").and_then(Json::as_str), Some("NOERROR"));
    assert_eq!(j.u64_at(&["answers"]), 1);
    let up = net.upstream_answer.to_string();
    assert_eq!(
        j.get("first_answer").and_then(Json::as_str),
        Some(up.as_str())
    );
    assert!(j.get("latency_us").and_then(Json::as_u64).is_some());
    assert!(j
        .get("time")
        .and_then(Json::as_str)
        .is_some_and(|t| t.ends_with('Z')));

    // The upstream goes silent: the query waits 5 s, then shows once as unanswered.
    net.stop_upstream();
    let asked = Instant::now();
    assert!(net
        .dig(&ns, DOCKER_RESOLVER, "silent.example", false)
        .is_err());
    let line = w.wait_for(&["silent.example"], Duration::from_secs(10));
    let waited = asked.elapsed();
    assert!(
        waited >= Duration::from_millis(4500),
        "shown after {waited:?}"
    );
    let j = Json::parse(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert!(!j.bool_at(&["answered"]));
    for field in ["rcode", "answers", "first_answer", "latency_us"] {
        assert!(j.get(field).is_some_and(Json::is_null), "{field}: {line}");
    }
    eprintln!("--watch --json output:\n{}", w.lines().join("\n"));
    w.signal(libc::SIGTERM);
    assert_eq!(w.wait_exit(Duration::from_secs(5)), 0);
    assert_eq!(
        w.lines()
            .iter()
            .filter(|l| l.contains("silent.example"))
            .count(),
        1,
        "shown once"
    );
}

#[test]
#[ignore = "needs root: network namespaces, tc, bpf(2)"]
fn refused_when_not_attached_and_ended_by_a_detach_or_the_containers_exit() {
    let mut net = DockerLikeNet::new();
    let (code, out, err) = net.dnsredir(&["--watch"]);
    assert_eq!(code, 3, "{out}{err}");
    assert_eq!(support::lines(&err).len(), 1, "one line: {err}");
    assert!(err.contains("not attached"), "{err}");

    net.attach(&[]);
    let mut w = start(&net, &[]);
    net.detach();
    assert_eq!(w.wait_exit(Duration::from_secs(5)), 3);
    assert!(w.stderr().contains("detached"), "{}", w.stderr());

    net.attach(&[]);
    let mut w = start(&net, &[]);
    // A second watcher is refused while the first one runs.
    let (code, _, err) = net.dnsredir(&["--watch"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("one watch at a time"), "{err}");
    // The container's process exits (the test's child: killed, then reaped).
    let sleeper = net
        .spawn_in_ctr(&["sleep", "600"])
        .expect("a second process");
    assert!(sleeper > 0);
    // SAFETY: the emulation's own child.
    unsafe { libc::kill(net.ctr_pid as i32, libc::SIGKILL) };
    assert_eq!(w.wait_exit(Duration::from_secs(5)), 3);
    assert!(w.stderr().contains("exited"), "{}", w.stderr());
}

#[test]
#[ignore = "needs root: network namespaces, tc, bpf(2)"]
fn a_closed_pipe_ends_the_watch_quietly() {
    let net = DockerLikeNet::attached(&[]);
    let mut w = Watcher::spawn(&["--pid", &net.ctr_pid.to_string()], &[], false);
    let out = w.child.stdout.take().expect("stdout");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !w.stderr().contains("watching") {
        assert!(Instant::now() < deadline, "{}", w.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
    let ns = net.ctr_ns.clone();
    assert!(net.dig(&ns, DOCKER_RESOLVER, "one.example", false).is_ok());
    // `| head -n 1`: one line read, then the pipe closes.
    let mut first = String::new();
    BufReader::new(out).read_line(&mut first).expect("a line");
    assert!(first.contains("one.example"), "{first}");
    assert!(net.dig(&ns, DOCKER_RESOLVER, "two.example", false).is_ok());
    assert_eq!(w.wait_exit(Duration::from_secs(5)), 0, "{}", w.stderr());
    assert!(!w.stderr().contains("error"), "{}", w.stderr());
    redirect_works(&net);
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2), tc"]
fn each_line_says_which_name_rule_decided() {
    let net = DockerLikeNet::attached(&["--keep", ".internal.test", "--only", "corp.test"]);
    let w = start(&net, &[]);
    let ns = net.ctr_ns.clone();
    let (stand_in, up) = (net.stand_in_answer, net.upstream_answer);
    assert_eq!(
        net.dig(&ns, DOCKER_RESOLVER, "api.internal.test", false),
        Ok(vec![stand_in])
    );
    assert_eq!(
        net.dig(&ns, DOCKER_RESOLVER, "x.corp.test", false),
        Ok(vec![up])
    );
    assert_eq!(
        net.dig(&ns, DOCKER_RESOLVER, "example.com", false),
        Ok(vec![stand_in])
    );
    let t = Duration::from_secs(5);
    w.wait_for(
        &[
            "api.internal.test  A  dockerd  NOERROR",
            "[keep internal.test]",
        ],
        t,
    );
    w.wait_for(
        &["x.corp.test  A  upstream  NOERROR", "[only corp.test]"],
        t,
    );
    w.wait_for(&["example.com  A  dockerd  NOERROR", "[outside --only]"], t);
}
