//! `dnsredir --metrics` against real attachments: two namespaces with their own labels, the
//! page scraped over TCP on 127.0.0.1 before and after queries through one of them (its counter
//! rises by exactly what was sent, the other's does not move), every counter of `--status
//! --json` there with HELP and TYPE lines, one attachment fewer after a detach; a client that
//! sends nothing holds the next scrape back for the server's deadline only; and the time a
//! scrape of 110 attachments takes. Other processes on the machine may have attachments of
//! their own: the tests look at their labels' series only.

use std::net::TcpStream;
use std::time::{Duration, Instant};

mod support;
use support::cni::Cni;
use support::metrics::{small_namespace, MetricsServer, Page, SMALL_ATTACH};
use support::{require_root, run_dnsredir, Json};

/// The series of `label`'s attachment that `dnsredir_attachment_info` lists.
fn attachments_labelled(page: &Page, label: &str) -> usize {
    page.of("dnsredir_attachment_info", label).len()
}

/// Scrapes until `done` holds (a detached program is freed by the kernel a moment later).
fn scrape_until(server: &MetricsServer, done: impl Fn(&Page) -> bool) -> Page {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page = server.scrape();
        if done(&page) || Instant::now() > deadline {
            return page;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn counters_rise_by_what_was_sent_and_a_detach_takes_its_series_away() {
    let net = Cni::new();
    let small = small_namespace("m");
    let a = format!("metrics-e2e-a-{}", std::process::id());
    let b = format!("metrics-e2e-b-{}", std::process::id());
    net.attach(&["--label", &a]);
    let small_path = small.path();
    let mut attach_b = vec!["--netns", small_path.as_str(), "--label", &b];
    attach_b.extend(SMALL_ATTACH);
    let (code, out, err) = run_dnsredir(&attach_b);
    assert_eq!(code, 0, "attach b: {out}{err}");

    let server = MetricsServer::start();
    let before = server.scrape();
    assert_eq!(attachments_labelled(&before, &a), 1, "{}", before.text);
    assert_eq!(attachments_labelled(&before, &b), 1, "{}", before.text);
    let info = before.of("dnsredir_attachment_info", &a);
    assert!(
        info[0].0.contains("path=\"nameservers\"") && info[0].0.contains("build=\"this\""),
        "{info:?}"
    );
    assert!(
        before.samples["dnsredir_attachments{build=\"this\"}"] >= 2.0,
        "{}",
        before.text
    );

    const N: u64 = 20;
    for _ in 0..N {
        assert_eq!(net.ask(net.ns, false), vec![net.upstream.answer()]);
    }
    let after = server.scrape();
    let udp = "dnsredir_queries_redirected_udp_total";
    assert_eq!(
        after.value(udp, &a) - before.value(udp, &a),
        N as f64,
        "before:\n{}\nafter:\n{}",
        before.text,
        after.text
    );
    assert_eq!(after.value(udp, &b), before.value(udp, &b), "b saw nothing");
    let restored = "dnsredir_replies_restored_total";
    assert_eq!(
        after.value(restored, &a) - before.value(restored, &a),
        N as f64
    );

    // Every counter of --status --json is a family with HELP and TYPE, and a's sample.
    let (code, json, err) = net.dnsredir(&["--status", "--json"]);
    assert_eq!(code, 0, "{json}{err}");
    let status = Json::parse(json.trim()).expect("status JSON");
    let Some(Json::Obj(counters)) = status.get("counters") else {
        panic!("no counters in {status}");
    };
    assert_eq!(counters.len(), dnsredir::abi::Counters::COUNT, "{status}");
    for (name, value) in counters {
        let metric = format!("dnsredir_{name}_total");
        assert!(
            after.text.contains(&format!("\n# HELP {metric} "))
                && after.text.contains(&format!("\n# TYPE {metric} counter\n")),
            "{metric}:\n{}",
            after.text
        );
        if name == "queries_redirected_udp" {
            assert_eq!(after.value(&metric, &a), value.as_u64().unwrap_or(0) as f64);
        } else {
            after.value(&metric, &a);
        }
    }
    for family in ["dnsredir_tracked_flows gauge", "dnsredir_attachments gauge"] {
        assert!(
            after.text.contains(&format!("# TYPE {family}\n")),
            "{family}"
        );
    }
    assert!(after.value("dnsredir_tracked_flows", &a) >= 0.0);

    let (code, out, err) = run_dnsredir(&["--netns", small_path.as_str(), "--detach"]);
    assert_eq!(code, 0, "detach b: {out}{err}");
    let gone = scrape_until(&server, |p| attachments_labelled(p, &b) == 0);
    assert_eq!(attachments_labelled(&gone, &b), 0, "{}", gone.text);
    assert!(gone.of(udp, &b).is_empty(), "{}", gone.text);
    assert_eq!(attachments_labelled(&gone, &a), 1, "a stays: {}", gone.text);
    assert_eq!(gone.value(udp, &a), after.value(udp, &a));

    let (code, body) = server.get("/");
    assert_eq!(code, 404, "{body}");
    net.detach();
}

#[test]
#[ignore = "needs root: bpf(2)"]
fn a_client_that_sends_nothing_holds_the_next_scrape_back_for_the_deadline_only() {
    require_root();
    let server = MetricsServer::start();
    let silent = TcpStream::connect(server.addr).expect("connects");
    let start = Instant::now();
    let page = server.scrape();
    let waited = start.elapsed();
    assert!(page.text.contains("# TYPE dnsredir_attachments gauge"));
    assert!(waited < Duration::from_secs(8), "waited {waited:?}");
    drop(silent);
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn a_scrape_of_110_attachments() {
    const ATTACHMENTS: usize = 110;
    let tag = format!("metrics-scale-{}-", std::process::id());
    let mut namespaces = Vec::new();
    let start = Instant::now();
    for i in 0..ATTACHMENTS {
        let ns = small_namespace("s");
        let path = ns.path();
        let label = format!("{tag}{i}");
        let mut args = vec!["--netns", path.as_str(), "--label", &label];
        args.extend(SMALL_ATTACH);
        let (code, out, err) = run_dnsredir(&args);
        assert_eq!(code, 0, "attach {i}: {out}{err}");
        namespaces.push(ns);
    }
    eprintln!(
        "{ATTACHMENTS} namespaces made and attached in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    let server = MetricsServer::start();
    let mut times = Vec::new();
    let mut page = None;
    for _ in 0..9 {
        let start = Instant::now();
        page = Some(server.scrape());
        times.push(start.elapsed());
    }
    let page = page.expect("scraped");
    let ours = page
        .samples
        .keys()
        .filter(|s| s.starts_with("dnsredir_attachment_info{") && s.contains(&tag))
        .count();
    assert_eq!(ours, ATTACHMENTS, "{}", page.text);
    times.sort();
    let (median, worst) = (times[times.len() / 2], times[times.len() - 1]);
    let scan = page.samples["dnsredir_scrape_duration_seconds"];
    eprintln!(
        "a scrape of {} attachments ({} bytes): median {:.1} ms, worst {:.1} ms over {} scrapes; the kernel scan inside it {:.1} ms",
        page.samples["dnsredir_attachments{build=\"this\"}"],
        page.text.len(),
        median.as_secs_f64() * 1e3,
        worst.as_secs_f64() * 1e3,
        times.len(),
        scan * 1e3
    );
    assert!(median < Duration::from_secs(1), "median {median:?}");
    drop(namespaces);
}
