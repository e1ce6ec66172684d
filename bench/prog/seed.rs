//! The C reference of the seed's programs (bench/seed/seed.c, built by scripts/bench), loaded
//! by dnsredir's own loader and timed on the same packets.

use crate::build::{prog, size_line};
use crate::case::{median, Case};
use crate::packet::{
    csum_fold, l4_checksum, sum_words, CLIENT, CLIENT_PORT, CONTAINER, DOCKERD_UDP, RESOLVER,
    TC_ACT_REDIRECT, UDP, UPSTREAM,
};
use crate::packets::{query_packet, reply_packet, IDS, UPSTREAM_PORT};
use dnsredir::bpf::elf::ObjectFile;
use dnsredir::bpf::load::{self, Loaded};
use dnsredir::bpf::sys;
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;

/// The C reference of the seed's programs (bench/seed/seed.c): its `seed_config` global, as
/// that file lays it out, for the addresses of the test configuration.
pub fn seed_config() -> Vec<u8> {
    let mut c = Vec::with_capacity(28);
    for a in [RESOLVER, CONTAINER, UPSTREAM, CLIENT] {
        c.extend_from_slice(&a.octets());
    }
    // iface_ifindex and lo_ifindex, as in test_config
    c.extend_from_slice(&1u32.to_ne_bytes());
    c.extend_from_slice(&1u32.to_ne_bytes());
    c.extend_from_slice(&DOCKERD_UDP.to_be_bytes());
    c.extend_from_slice(&UPSTREAM_PORT.to_be_bytes());
    c
}

/// The seed's C programs from an object built at bench time, loaded by dnsredir's own loader.
pub fn load_seed(path: &str) -> Result<Loaded, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    let mut object = ObjectFile::parse(&bytes).map_err(|e| format!("{path}: parse: {e}"))?;
    object
        .set_global(SEED_CONFIG, &seed_config())
        .map_err(|e| format!("{path}: config: {e}"))?;
    load::load(&object, &load::Options::sched_cls()).map_err(|e| format!("{path}: load: {e}"))
}

pub const SEED_CONFIG: &str = "seed_config";

/// The seed's programs must do the same job as dnsredir's before their times mean anything:
/// one query and its reply through each variant, addresses, ports and both checksums checked.
pub fn check_seed(query_prog: &OwnedFd, reply_prog: &OwnedFd, label: &str) -> Result<(), String> {
    let check = |what: &str,
                 prog: &OwnedFd,
                 packet: Vec<u8>,
                 src: (Ipv4Addr, u16),
                 dst: (Ipv4Addr, u16)| {
        let r = sys::prog_test_run(prog, &packet, 1)
            .map_err(|e| format!("seed C{label} {what}: {e}"))?;
        let d = &r.data;
        let ip = &d[14..34];
        let addr = |o: usize| Ipv4Addr::new(ip[o], ip[o + 1], ip[o + 2], ip[o + 3]);
        let port = |o: usize| u16::from_be_bytes([d[34 + o], d[35 + o]]);
        let got = ((addr(12), port(0)), (addr(16), port(2)));
        let ip_ok = csum_fold(sum_words(ip)) == 0;
        let udp_ok = l4_checksum(addr(12), addr(16), UDP, &d[34..]) == 0;
        if r.retval != TC_ACT_REDIRECT || got != (src, dst) || !ip_ok || !udp_ok {
            return Err(format!(
                "seed C{label} {what}: verdict {}, {got:?} (want {:?}), IP checksum ok {ip_ok}, UDP checksum ok {udp_ok}",
                r.retval,
                (src, dst)
            ));
        }
        Ok(())
    };
    check(
        "query",
        query_prog,
        query_packet(7),
        (CONTAINER, CLIENT_PORT),
        (UPSTREAM, UPSTREAM_PORT),
    )?;
    check(
        "reply",
        reply_prog,
        reply_packet(7),
        (RESOLVER, DOCKERD_UDP),
        (CLIENT, CLIENT_PORT),
    )
}

/// The seed's programs on the same packets as dnsredir's: query redirected (answered, untimed),
/// reply restored (its query untimed before it), the answered query (both timed).
pub fn seed_cases<'a>(
    label: &str,
    query_prog: &'a OwnedFd,
    reply_prog: &'a OwnedFd,
) -> Vec<Case<'a>> {
    let queries: Vec<Vec<u8>> = (0..IDS).map(query_packet).collect();
    let replies: Vec<Vec<u8>> = (0..IDS).map(reply_packet).collect();
    vec![
        Case::redirected("query redirected", query_prog, queries.clone())
            .after(reply_prog, replies.clone()),
        Case::redirected("reply restored", reply_prog, replies.clone())
            .before(query_prog, queries.clone()),
        Case::redirected("answered query (query + reply)", query_prog, queries)
            .then(reply_prog, replies),
    ]
    .into_iter()
    .map(|c| Case {
        name: format!("seed C{label}: {}", c.name),
        ..c
    })
    .collect()
}

/// Its cases after checking both variants: the seed with a flow table like ours (like for
/// like), then the seed as described (no flow table).
pub fn cases(seed: &Loaded) -> Result<Vec<Case<'_>>, String> {
    check_seed(
        prog(seed, "seedflow/query")?,
        prog(seed, "seedflow/reply")?,
        " + flow table",
    )?;
    check_seed(
        prog(seed, "seed/query")?,
        prog(seed, "seed/reply")?,
        ", no flow table",
    )?;
    let mut cases = seed_cases(
        "",
        prog(seed, "seedflow/query")?,
        prog(seed, "seedflow/reply")?,
    );
    cases.extend(seed_cases(
        ", no flow table",
        prog(seed, "seed/query")?,
        prog(seed, "seed/reply")?,
    ));
    Ok(cases)
}

/// "# ratio" lines: dnsredir ÷ seed C over the floor, per round (both cases ran in the same
/// round), then the median; `means` as measured, in round order, the floor first.
pub fn ratios(all_cases: &[Case], means: &[Vec<f64>], rounds: usize) -> String {
    let avg: Vec<f64> = means.iter().map(|v| median(&mut v.clone())).collect();
    let index = |name: &str| all_cases.iter().position(|c| c.name == name);
    let mut out = String::new();
    for (ours, theirs) in [
        (
            "answered query (query + reply)",
            "seed C: answered query (query + reply)",
        ),
        ("query redirected", "seed C: query redirected"),
        ("reply restored", "seed C: reply restored"),
        (
            "answered query (query + reply)",
            "seed C, no flow table: answered query (query + reply)",
        ),
    ] {
        for label in ["", ", no counters"] {
            let (Some(a), Some(b)) = (index(&format!("{ours}{label}")), index(theirs)) else {
                continue;
            };
            let over = |i: usize, r: usize| means[i][r] - all_cases[i].runs() * means[0][r];
            let mut ratios: Vec<f64> = (0..rounds).map(|r| over(a, r) / over(b, r)).collect();
            let per_round = ratios
                .iter()
                .map(|x| format!("{x:.2}"))
                .collect::<Vec<_>>()
                .join(",");
            let whole =
                (avg[a] - all_cases[a].runs() * avg[0]) / (avg[b] - all_cases[b].runs() * avg[0]);
            out.push_str(&format!(
                "# ratio {ours}{label} / {theirs} (means over floor): median of rounds {:.3} [{per_round}], of the medians {whole:.3}\n",
                median(&mut ratios)
            ));
        }
    }
    out
}

/// "# size" lines of its programs.
pub fn sizes(seed: &Loaded) -> Result<String, String> {
    let mut out = String::new();
    for s in [
        "seedflow/query",
        "seedflow/reply",
        "seed/query",
        "seed/reply",
    ] {
        out.push_str(&size_line(seed, s, "seed C")?);
    }
    Ok(out)
}
