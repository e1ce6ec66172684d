//! Issue 19's cases, answers from the kernel: a blocked and a pinned query answered by the
//! programs themselves on both paths, next to the query they redirect; the matcher's cost for
//! a query no rule decides with 1, 256, 4096 and 10^5 rules, against the same query with
//! `--keep` rules and no decisions; and what filling a 10^5-name blocklist into `RULES` costs
//! (time and kernel memory). They need ABI layout 9 (RuleValue's decision and answer, the
//! ANSWERS map): this build's object only, never `--other-object`'s.
//!
//! The maps are filled as the loader's `redirect::policy` encodes rules (the contract of
//! issue 19): a suffix's key as `rules::key_of` makes it, an exact (hosts) name's key the same
//! bytes and RULE_EXACT_MARK; every value the merged word (here: one kind of rule per set,
//! so a key's own rule is its whole word).

use crate::build::{named_egress_query, nameservers_config, prog, NAMESERVER};
use crate::case::{median, Case};
use crate::packet::{load_with, test_config, TC_ACT_REDIRECT};
use crate::packets::{named_query_packet, query_packet, reply_packet, IDS, UPSTREAM_PORT};
use crate::per_packet::Timings;
use dnsredir::abi::{
    AnswerValue, Config, RuleKey, RuleValue, ANSWERS_MAP, ANSWER_TTL, A_RECORD_SIZE,
    DECISION_ANSWER, DECISION_BLOCK, EGRESS_SECTION, FLAG_DECIDE, FLAG_RULES_KEEP, MAX_RULES,
    QUERY_SECTION, REPLY_SECTION, RULES_MAP, RULE_KEEP, RULE_KEY_SIZE,
};
use dnsredir::bpf::load::Loaded;
use dnsredir::bpf::sys;
use dnsredir::redirect::rules::{exact_key_of, key_of};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Instant;

/// Blocked (`--block example.net`): its query, the same length as the redirected one's.
pub const BLOCKED_SUFFIX: &str = "example.net";
pub const BLOCKED_NAME: &str = "www.example.net";
/// Pinned (`--answer www.example.org=…` twice): two A records.
pub const PINNED_NAME: &str = "www.example.org";
pub const PINNED_ADDRS: [Ipv4Addr; 2] = [
    Ipv4Addr::new(198, 51, 100, 7),
    Ipv4Addr::new(198, 51, 100, 8),
];
/// The matcher's rule set sizes (suffix rules, `--block` or `--keep`).
pub const MATCHER_SIZES: [usize; 3] = [1, 256, 4096];
/// The blocklist: hosts entries (`0.0.0.0 NAME`, exact names), the form public lists come in.
pub const BLOCKLIST_SIZE: usize = 100_000;
/// Fresh maps filled with the blocklist for its fill time and memory.
const FILL_REPEATS: usize = 3;

const BPF_MAP_TYPE_LPM_TRIE: u32 = 11;
const BPF_F_NO_PREALLOC: u32 = 1;
/// Where an answer's DNS header starts: Ethernet, IPv4 (no options), UDP.
const DNS_AT: usize = 14 + 20 + 8;
const RCODE_NXDOMAIN: u8 = 3;

/// Blocklist-like names: ad and tracker hosts under a few TLDs and domains, a quarter of them
/// under .com and some siblings of www.example.com (whose lookup then shares the longest
/// prefix with theirs). None is www.example.com or a suffix of it.
pub fn blocklist_names(n: usize) -> Vec<String> {
    const UNDER: [&str; 8] = [
        "com",
        "example.com",
        "net",
        "doubleclick.net",
        "org",
        "io",
        "tracker.test",
        "cdn.example.org",
    ];
    const HOSTS: [&str; 4] = ["ads", "pixel", "track", "metrics"];
    (0..n)
        .map(|i| format!("{}-{i:x}.{}", HOSTS[i % 4], UNDER[i % 8]))
        .collect()
}

/// A RuleValue with these fields and every other (a later layout's) 0.
pub fn rule_value(kind: u32, decision: u32, answer: u32) -> RuleValue {
    let mut v = RuleValue::from_bytes(&[0; RuleValue::SIZE]).expect("zeroed value");
    v.kind = kind;
    v.decision = decision;
    v.answer = answer;
    v
}

/// A pinned name's records as the loader builds them: `c0 0c 00 01 00 01 TTL 00 04 ADDR` each,
/// and the sum of their big-endian 16-bit words.
pub fn answer_value(addrs: &[Ipv4Addr]) -> AnswerValue {
    let mut v = AnswerValue::from_bytes(&[0; AnswerValue::SIZE]).expect("zeroed value");
    let mut sum = 0u32;
    for (i, a) in addrs.iter().enumerate() {
        let mut r = vec![0xc0, 0x0c, 0, 1, 0, 1];
        r.extend_from_slice(&ANSWER_TTL.to_be_bytes());
        r.extend_from_slice(&[0, 4]);
        r.extend_from_slice(&a.octets());
        sum += r
            .chunks(2)
            .map(|w| u16::from_be_bytes([w[0], w[1]]) as u32)
            .sum::<u32>();
        v.a[i * A_RECORD_SIZE..(i + 1) * A_RECORD_SIZE].copy_from_slice(&r);
    }
    v.a_count = addrs.len() as u16;
    v.a_sum = sum;
    v
}

fn rules_map<'a>(
    object: &dnsredir::bpf::elf::ObjectFile,
    l: &'a Loaded,
) -> Result<&'a OwnedFd, String> {
    l.map(object, RULES_MAP).ok_or("no RULES map".to_string())
}

fn fill(map: &OwnedFd, entries: &[(RuleKey, RuleValue)]) -> Result<(), String> {
    for (k, v) in entries {
        sys::map_update(map, &k.to_bytes(), &v.to_bytes()).map_err(|e| format!("RULES: {e}"))?;
    }
    Ok(())
}

/// This build's object with `config` and these RULES entries and ANSWERS slots.
fn load_filled(
    config: &Config,
    entries: &[(RuleKey, RuleValue)],
    answers: &[AnswerValue],
) -> Result<Loaded, String> {
    let (object, loaded) = load_with(config)?;
    fill(rules_map(&object, &loaded)?, entries)?;
    if !answers.is_empty() {
        let map = loaded
            .map(&object, ANSWERS_MAP)
            .ok_or("no ANSWERS map".to_string())?;
        for (slot, v) in answers.iter().enumerate() {
            sys::map_update(map, &(slot as u32).to_ne_bytes(), &v.to_bytes())
                .map_err(|e| format!("ANSWERS slot {slot}: {e}"))?;
        }
    }
    Ok(loaded)
}

/// `--block example.net --answer www.example.org=198.51.100.7 --answer …=198.51.100.8`.
fn decisions() -> (Vec<(RuleKey, RuleValue)>, Vec<AnswerValue>) {
    (
        vec![
            (key_of(BLOCKED_SUFFIX), rule_value(0, DECISION_BLOCK, 0)),
            (key_of(PINNED_NAME), rule_value(0, DECISION_ANSWER, 0)),
        ],
        vec![answer_value(&PINNED_ADDRS)],
    )
}

fn with_flags(config: Config, flags: u16) -> Config {
    Config {
        flags: config.flags | flags,
        ..config
    }
}

/// Every configuration the cases run on, loaded and filled.
pub struct Loads {
    lo: Loaded,
    nameservers: Loaded,
    /// (rules, with `--keep` rules and no decisions, with `--block` rules and FLAG_DECIDE)
    matcher: Vec<(usize, Loaded, Loaded)>,
    blocklist: Loaded,
    blocklist_name: String,
}

impl Loads {
    pub fn load() -> Result<Loads, String> {
        let (entries, answers) = decisions();
        let lo = load_filled(&test_config(UPSTREAM_PORT, FLAG_DECIDE), &entries, &answers)?;
        let nameservers = load_filled(
            &with_flags(nameservers_config(), FLAG_DECIDE),
            &entries,
            &answers,
        )?;
        let mut matcher = Vec::new();
        for n in MATCHER_SIZES {
            let names = blocklist_names(n);
            let keys =
                |value: RuleValue| -> Vec<_> { names.iter().map(|s| (key_of(s), value)).collect() };
            let keep = load_filled(
                &test_config(UPSTREAM_PORT, FLAG_RULES_KEEP),
                &keys(rule_value(RULE_KEEP, 0, 0)),
                &[],
            )?;
            let block = load_filled(
                &test_config(UPSTREAM_PORT, FLAG_DECIDE),
                &keys(rule_value(0, DECISION_BLOCK, 0)),
                &[],
            )?;
            matcher.push((n, keep, block));
        }
        let names = blocklist_names(BLOCKLIST_SIZE);
        let blocklist = load_filled(
            &test_config(UPSTREAM_PORT, FLAG_DECIDE),
            &hosts_block_entries(&names),
            &[],
        )?;
        Ok(Loads {
            lo,
            nameservers,
            matcher,
            blocklist,
            blocklist_name: names[1].clone(),
        })
    }

    /// The cases, each answered one checked once first (its verdict, QR, RCODE, ANCOUNT).
    pub fn cases(&self) -> Result<Vec<Case<'_>>, String> {
        let ids = || 0..IDS;
        let lo_named = |name: &str| ids().map(|id| named_query_packet(id, name)).collect();
        let eg_named = |name: &str| {
            ids()
                .map(|id| named_egress_query(id, NAMESERVER, name))
                .collect::<Vec<_>>()
        };
        let queries: Vec<Vec<u8>> = ids().map(query_packet).collect();
        let replies: Vec<Vec<u8>> = ids().map(reply_packet).collect();
        let (lq, lr) = (
            prog(&self.lo, QUERY_SECTION)?,
            prog(&self.lo, REPLY_SECTION)?,
        );
        let (eq, er) = (
            prog(&self.nameservers, EGRESS_SECTION)?,
            prog(&self.nameservers, REPLY_SECTION)?,
        );
        let mut cases = vec![
            answered(
                "answers: blocked query answered (NXDOMAIN), lo prog",
                lq,
                lo_named(BLOCKED_NAME),
                RCODE_NXDOMAIN,
                0,
            )?,
            answered(
                "answers: pinned query answered (2 A), lo prog",
                lq,
                lo_named(PINNED_NAME),
                0,
                2,
            )?,
            Case::redirected(
                "answers: query redirected, decisions in force (name undecided)",
                lq,
                queries.clone(),
            )
            .after(lr, replies.clone()),
            answered(
                "answers: nameservers path: blocked query answered on egress",
                eq,
                eg_named(BLOCKED_NAME),
                RCODE_NXDOMAIN,
                0,
            )?,
            answered(
                "answers: nameservers path: pinned query answered on egress (2 A)",
                eq,
                eg_named(PINNED_NAME),
                0,
                2,
            )?,
            Case::new(
                "answers: nameservers path: query redirected on egress, decisions in force (name undecided)",
                eq,
                eg_named(crate::packets::QUERY_NAME),
                crate::packet::TC_ACT_UNSPEC,
            )
            .after(er, replies.clone()),
        ];
        for (n, keep, block) in &self.matcher {
            for (label, l) in [
                (format!("matcher: query redirected, {n} --keep rules"), keep),
                (
                    format!("matcher: query redirected, {n} --block rules (name undecided)"),
                    block,
                ),
            ] {
                let (q, r) = (prog(l, QUERY_SECTION)?, prog(l, REPLY_SECTION)?);
                cases.push(Case::redirected(label, q, queries.clone()).after(r, replies.clone()));
            }
        }
        let (q, r) = (
            prog(&self.blocklist, QUERY_SECTION)?,
            prog(&self.blocklist, REPLY_SECTION)?,
        );
        cases.push(
            Case::redirected(
                format!(
                    "blocklist: query redirected, {BLOCKLIST_SIZE} hosts entries (name undecided)"
                ),
                q,
                queries,
            )
            .after(r, replies),
        );
        cases.push(answered(
            &format!("blocklist: listed name answered (NXDOMAIN), {BLOCKLIST_SIZE} hosts entries, lo prog"),
            q,
            lo_named(&self.blocklist_name),
            RCODE_NXDOMAIN,
            0,
        )?);
        Ok(cases)
    }
}

fn hosts_block_entries(names: &[String]) -> Vec<(RuleKey, RuleValue)> {
    names
        .iter()
        .map(|s| (exact_key_of(s), rule_value(0, DECISION_BLOCK, 0)))
        .collect()
}

/// A case of queries the program answers itself (turned around, TC_ACT_REDIRECT), its first
/// packet's answer checked: QR set, `rcode`, `ancount` records.
fn answered<'a>(
    name: &str,
    prog: &'a OwnedFd,
    packets: Vec<Vec<u8>>,
    rcode: u8,
    ancount: u16,
) -> Result<Case<'a>, String> {
    let r = sys::prog_test_run(prog, &packets[0], 1).map_err(|e| format!("{name}: {e}"))?;
    let d = &r.data;
    let got = (d.len() > DNS_AT + 12).then(|| {
        (
            d[DNS_AT + 2] & 0x80 != 0,
            d[DNS_AT + 3] & 0x0f,
            u16::from_be_bytes([d[DNS_AT + 6], d[DNS_AT + 7]]),
        )
    });
    if r.retval != TC_ACT_REDIRECT || got != Some((true, rcode, ancount)) {
        return Err(format!(
            "{name}: verdict {}, (QR, RCODE, ANCOUNT) {got:?}, want {TC_ACT_REDIRECT} and {:?}",
            r.retval,
            (true, rcode, ancount)
        ));
    }
    Ok(Case::redirected(name, prog, packets))
}

/// "# decisions - keep" lines: per round, the query no rule decides with N `--block` rules and
/// FLAG_DECIDE less the same query with N `--keep` rules; and the decisions' cases less the
/// query redirected without rules.
pub fn differences(all_cases: &[Case], timings: &Timings) -> String {
    let mut pairs: Vec<(String, String)> = MATCHER_SIZES
        .iter()
        .map(|n| {
            (
                format!("matcher: query redirected, {n} --block rules (name undecided)"),
                format!("matcher: query redirected, {n} --keep rules"),
            )
        })
        .collect();
    for a in [
        "answers: query redirected, decisions in force (name undecided)",
        "answers: blocked query answered (NXDOMAIN), lo prog",
        "answers: pinned query answered (2 A), lo prog",
    ] {
        pairs.push((a.into(), "query redirected".into()));
    }
    for a in [
        "answers: nameservers path: query redirected on egress, decisions in force (name undecided)",
        "answers: nameservers path: blocked query answered on egress",
        "answers: nameservers path: pinned query answered on egress (2 A)",
    ] {
        pairs.push((a.into(), "nameservers path: query redirected on egress".into()));
    }
    pairs.push((
        format!("blocklist: query redirected, {BLOCKLIST_SIZE} hosts entries (name undecided)"),
        "matcher: query redirected, 4096 --keep rules".into(),
    ));
    let mut out = String::new();
    for (a, b) in pairs {
        let index = |n: &str| all_cases.iter().position(|c| c.name == n);
        let (Some(i), Some(j)) = (index(&a), index(&b)) else {
            continue;
        };
        let mut d: Vec<f64> = timings.means[i]
            .iter()
            .zip(&timings.means[j])
            .map(|(x, y)| x - y)
            .collect();
        let rounds = d.iter().map(|x| format!("{x:.0}")).collect::<Vec<_>>();
        out.push_str(&format!(
            "# difference: {a} - {b}: median of rounds' differences of means {:+.1} ns [{}]\n",
            median(&mut d),
            rounds.join(",")
        ));
    }
    out
}

/// One fill of the blocklist into a fresh map like the programs' RULES.
struct Fill {
    seconds: f64,
    memlock: u64,
    slab_kb: i64,
}

fn memlock(map: &OwnedFd) -> Result<u64, String> {
    let path = format!("/proc/self/fdinfo/{}", map.as_raw_fd());
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("memlock:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or(format!("{path}: no memlock"))
}

fn slab_kb() -> Result<i64, String> {
    let text = std::fs::read_to_string("/proc/meminfo").map_err(|e| e.to_string())?;
    text.lines()
        .find_map(|l| l.strip_prefix("Slab:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or("/proc/meminfo: no Slab".into())
}

fn fill_once(entries: &[(RuleKey, RuleValue)]) -> Result<(Fill, u64), String> {
    let map = sys::map_create(
        "RULES",
        BPF_MAP_TYPE_LPM_TRIE,
        RULE_KEY_SIZE as u32,
        RuleValue::SIZE as u32,
        MAX_RULES,
        BPF_F_NO_PREALLOC,
    )
    .map_err(|e| format!("RULES map: {e}"))?;
    let empty = memlock(&map)?;
    let slab0 = slab_kb()?;
    let t0 = Instant::now();
    fill(&map, entries)?;
    let seconds = t0.elapsed().as_secs_f64();
    let slab1 = slab_kb()?;
    let fill = Fill {
        seconds,
        memlock: memlock(&map)? - empty,
        slab_kb: slab1 - slab0,
    };
    drop(map);
    // the trie's nodes are freed after an RCU grace period: let them go before the next one
    std::thread::sleep(std::time::Duration::from_millis(500));
    Ok((fill, empty))
}

/// "# fill" lines: the blocklist filled into fresh RULES maps ([`FILL_REPEATS`] times): the
/// time of its map updates, and the kernel memory it holds by the map's own account (fdinfo
/// memlock, what `bpftool map show` prints) and by /proc/meminfo's Slab (the whole machine's).
pub fn fill_lines() -> Result<String, String> {
    let entries = hosts_block_entries(&blocklist_names(BLOCKLIST_SIZE));
    let n = entries.len() as f64;
    let mut fills = Vec::new();
    let mut empty = 0;
    for _ in 0..FILL_REPEATS {
        let (f, e) = fill_once(&entries)?;
        fills.push(f);
        empty = e;
    }
    let mut secs: Vec<f64> = fills.iter().map(|f| f.seconds).collect();
    let mut mem: Vec<f64> = fills.iter().map(|f| f.memlock as f64).collect();
    let mut slab: Vec<f64> = fills.iter().map(|f| f.slab_kb as f64 * 1024.0).collect();
    let list = |v: &[f64], scale: f64, prec: usize| {
        v.iter()
            .map(|x| format!("{:.*}", prec, x * scale))
            .collect::<Vec<_>>()
            .join(",")
    };
    let lists = (
        list(&secs, 1.0, 3),
        list(&mem, 1.0 / n, 0),
        list(&slab, 1.0 / n, 0),
    );
    let (s, m, sl) = (median(&mut secs), median(&mut mem), median(&mut slab));
    let mut out = format!(
        "# fill RULES: {BLOCKLIST_SIZE} hosts entries (0.0.0.0 NAME, exact), {FILL_REPEATS} fresh maps: {s:.3} s ({:.2} us per rule) [{}]; memlock (fdinfo) {:.1} MiB ({:.0} B per rule) [{}], empty map {empty} B; Slab delta {:.1} MiB ({:.0} B per rule) [{}]\n",
        s * 1e6 / n,
        lists.0,
        m / 1048576.0,
        m / n,
        lists.1,
        sl / 1048576.0,
        sl / n,
        lists.2,
    );
    out.push_str(&format!(
        "# fill-tsv\t{BLOCKLIST_SIZE}\t{s:.4}\t{m:.0}\t{sl:.0}\t{empty}\n"
    ));
    Ok(out)
}
