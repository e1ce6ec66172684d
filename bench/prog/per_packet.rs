//! `prog`: the per-packet cost of every case, interleaved round by round, with a floor program
//! subtracted, a bpf_stats cross-check, and the comparisons with another build and the seed.

use crate::answers;
use crate::build::{load_with_rules, prog, rule_names, Build};
use crate::case::{median, time_case, Case};
use crate::packets::{query_packet, reply_packet, IDS};
use crate::seed::{self, load_seed};
use dnsredir::abi::{LAYOUT_VERSION, QUERY_SECTION, REPLY_SECTION};
use dnsredir::bpf::embedded;
use dnsredir::bpf::insn::Insn;
use dnsredir::bpf::load::Loaded;
use dnsredir::bpf::sys;
use std::io;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

pub struct Opts {
    rounds: usize,
    calls: usize,
    out: Option<String>,
    seed_object: Option<String>,
    other_object: Option<String>,
}

pub fn parse_opts(args: &[String]) -> Result<Opts, String> {
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let mut o = Opts {
        rounds: env("BENCH_PROG_ROUNDS", 7),
        calls: env("BENCH_PROG_CALLS", 40_000),
        out: None,
        seed_object: std::env::var("BENCH_SEED_OBJECT").ok(),
        other_object: std::env::var("BENCH_OTHER_OBJECT").ok(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--rounds" => o.rounds = value()?.parse().map_err(|e| format!("--rounds: {e}"))?,
            "--calls" => o.calls = value()?.parse().map_err(|e| format!("--calls: {e}"))?,
            "--out" => o.out = Some(value()?),
            "--seed-object" => o.seed_object = Some(value()?),
            "--other-object" => o.other_object = Some(value()?),
            _ => return Err(format!("unknown option {a:?}")),
        }
    }
    Ok(o)
}

pub fn floor_program() -> Result<OwnedFd, String> {
    let insns = [
        Insn {
            code: 0xb7, // r0 = 0
            ..Default::default()
        },
        Insn {
            code: 0x95, // exit
            ..Default::default()
        },
    ];
    sys::prog_load("bench_floor", sys::ProgKind::SCHED_CLS, &insns, c"GPL")
        .map_err(|e| format!("floor program: {} {}", e.error, e.log))
}

/// The prefix of `--other-object`'s cases.
pub const OTHER: &str = "other: ";

pub fn per_packet(args: &[String]) -> Result<(), String> {
    let o = parse_opts(args)?;
    if unsafe { libc::geteuid() } != 0 {
        return Err("BPF_PROG_TEST_RUN needs root".into());
    }
    let this = Build::load(embedded::object_bytes())?;
    let other = match &o.other_object {
        None => None,
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
            Some(Build::load(&bytes).map_err(|e| format!("{path}: {e}"))?)
        }
    };
    let floor = floor_program()?;
    let mut all_cases = vec![Case::new(
        "floor (r0 = 0; exit)",
        &floor,
        vec![query_packet(1)],
        0,
    )];
    let mut others = match &other {
        Some(other) => other.cases(OTHER)?,
        None => Vec::new(),
    };
    // each case next to the other build's, so that the two run moments apart in every round
    for case in this.cases("")? {
        let theirs = others
            .iter()
            .position(|c| c.name == format!("{OTHER}{}", case.name));
        all_cases.push(case);
        all_cases.extend(theirs.map(|i| others.remove(i)));
    }
    all_cases.append(&mut others);
    let with_rules = load_rule_sets()?;
    all_cases.extend(rule_cases(&with_rules)?);
    // issue 19's cases: layout 9's maps, this build only
    let decisions = answers::Loads::load()?;
    all_cases.extend(decisions.cases()?);
    let seed = o.seed_object.as_deref().map(load_seed).transpose()?;
    if let Some(seed) = &seed {
        all_cases.extend(seed::cases(seed)?);
    }

    let mut timings = measure(&all_cases, &o)?;
    let stats_ns = bpf_stats_cross_check(&all_cases, o.calls)?;
    // median() sorts in place: from here on each case's round medians are in ascending order,
    // not in round order (the rows' rounds_medians and the other build's median differences
    // see them so); the means stay in round order.
    let med: Vec<f64> = timings.medians.iter_mut().map(|v| median(v)).collect();
    let mut out = table(&all_cases, &timings, &med, &stats_ns, &o);
    out.push_str(&this.sizes("")?);
    if let Some(other) = &other {
        out.push_str(&other.sizes(OTHER)?);
        out.push_str(&other_differences(&all_cases, &timings));
        out.push_str(&format!(
            "# other: configuration layout {} (this build's {LAYOUT_VERSION}): its cases are the ones above named \"{OTHER}…\"; the name rules' (\"query redirected, N --keep rules\") and issue 19's (\"answers:\", \"matcher:\", \"blocklist:\": RULES with decisions, ANSWERS) run for this build only\n",
            other.layout
        ));
    }
    out.push_str(&answers::differences(&all_cases, &timings));
    out.push_str(&answers::fill_lines()?);
    if let Some(seed) = &seed {
        out.push_str(&seed::ratios(&all_cases, &timings.means, o.rounds));
        out.push_str(&seed::sizes(seed)?);
    }
    if stats_ns[0].is_none() {
        out.push_str("# kernel.bpf_stats_enabled could not be set: no bpf_stats cross-check\n");
    }
    print!("{out}");
    if let Some(path) = o.out {
        std::fs::write(&path, &out).map_err(|e| format!("{path}: {e}"))?;
    }
    Ok(())
}

/// dnsredir loaded with name rules: www.example.com under none of the --keep suffixes
/// (redirected after the walk and one LPM lookup), or under one of the --only suffixes.
fn load_rule_sets() -> Result<Vec<(&'static str, Loaded)>, String> {
    let rule_sets = [
        ("8 --keep rules", rule_names(8), vec![]),
        ("256 --keep rules", rule_names(256), vec![]),
        ("256 --only rules, matched", vec![], {
            let mut v = rule_names(255);
            v.push("example.com".into());
            v
        }),
    ];
    let mut with_rules = Vec::new();
    for (label, keep, only) in &rule_sets {
        with_rules.push((*label, load_with_rules(keep, only)?));
    }
    Ok(with_rules)
}

fn rule_cases<'a>(with_rules: &'a [(&str, Loaded)]) -> Result<Vec<Case<'a>>, String> {
    let mut cases = Vec::new();
    for (label, loaded) in with_rules {
        let (q, r) = (prog(loaded, QUERY_SECTION)?, prog(loaded, REPLY_SECTION)?);
        let queries = (0..IDS).map(query_packet).collect();
        let replies = (0..IDS).map(reply_packet).collect();
        cases.push(
            Case::redirected(format!("query redirected, {label}"), q, queries).after(r, replies),
        );
    }
    Ok(cases)
}

/// Every round's median and mean per-call time of each case (indexed as the cases).
pub struct Timings {
    pub medians: Vec<Vec<f64>>,
    pub means: Vec<Vec<f64>>,
    elapsed: Duration,
}

/// A warm-up, then `o.rounds` rounds of `o.calls` calls per case.
fn measure(all_cases: &[Case], o: &Opts) -> Result<Timings, String> {
    // warm-up: caches, branch predictors, the flow table's first allocations
    for c in all_cases {
        time_case(c, o.calls / 10 + 1)?;
    }
    let n = all_cases.len();
    let mut medians = vec![Vec::new(); n];
    let mut means = vec![Vec::new(); n];
    let t0 = Instant::now();
    for round in 0..o.rounds {
        for j in 0..n {
            // interleaved: each round starts at another case, floor included
            let i = (j + round) % n;
            let (m, mean) = time_case(&all_cases[i], o.calls)?;
            medians[i].push(m);
            means[i].push(mean);
        }
    }
    Ok(Timings {
        medians,
        means,
        elapsed: t0.elapsed(),
    })
}

/// bpf_stats cross-check: the kernel's own accounting around the program alone, per case;
/// all `None` when kernel.bpf_stats_enabled cannot be set.
fn bpf_stats_cross_check(all_cases: &[Case], calls: usize) -> Result<Vec<Option<f64>>, String> {
    let mut stats_ns: Vec<Option<f64>> = vec![None; all_cases.len()];
    let guard = StatsGuard::enable();
    if guard.on() {
        for (i, c) in all_cases.iter().enumerate() {
            // the timed programs; an untimed one that is the same program would be counted too
            let mut progs = vec![c.prog];
            progs.extend(c.then.as_ref().map(|(p, _)| *p));
            let before = progs
                .iter()
                .map(|p| sys::prog_stats(p))
                .collect::<io::Result<Vec<_>>>()
                .map_err(|e| e.to_string())?;
            time_case(c, calls)?;
            let mut total = 0.0;
            for (p, b) in progs.iter().zip(&before) {
                let a = sys::prog_stats(p).map_err(|e| e.to_string())?;
                let runs = a.run_cnt - b.run_cnt;
                if runs > 0 {
                    total += (a.run_time_ns - b.run_time_ns) as f64 / runs as f64;
                }
            }
            if total > 0.0 {
                stats_ns[i] = Some(total);
            }
        }
    }
    Ok(stats_ns)
}

/// The heading and one row per case (`med`: each case's median of its round medians).
fn table(
    all_cases: &[Case],
    timings: &Timings,
    med: &[f64],
    stats_ns: &[Option<f64>],
    o: &Opts,
) -> String {
    let avg: Vec<f64> = timings
        .means
        .iter()
        .map(|v| median(&mut v.clone()))
        .collect();
    let floor_med = med[0];
    let floor_stats = stats_ns[0];
    let mut out = String::new();
    out.push_str(&format!(
        "# BPF_PROG_TEST_RUN, repeat=1, {} calls x {} rounds per case (interleaved), {:.1} s\n",
        o.calls,
        o.rounds,
        timings.elapsed.as_secs_f64()
    ));
    out.push_str("case\tmedian_ns\tover_floor_ns\tmean_ns\tmean_over_floor_ns\tbpf_stats_ns\tbpf_stats_over_floor_ns\trounds_medians\n");
    for i in 0..all_cases.len() {
        let fmt_opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
        // a case that times two programs has two floors' worth of call overhead
        let runs = all_cases[i].runs();
        out.push_str(&format!(
            "{}\t{:.0}\t{:.0}\t{:.1}\t{:.1}\t{}\t{}\t{}\n",
            all_cases[i].name,
            med[i],
            med[i] - runs * floor_med,
            avg[i],
            avg[i] - runs * avg[0],
            fmt_opt(stats_ns[i]),
            fmt_opt(stats_ns[i].zip(floor_stats).map(|(a, b)| a - runs * b)),
            timings.medians[i]
                .iter()
                .map(|m| format!("{m:.0}"))
                .collect::<Vec<_>>()
                .join(",")
        ));
    }
    out
}

/// "# this - other" lines: this build − the other, per round (both cases ran in the same
/// round), then the median.
fn other_differences(all_cases: &[Case], timings: &Timings) -> String {
    let mut out = String::new();
    for (a, case) in all_cases.iter().enumerate() {
        let Some(b) = all_cases
            .iter()
            .position(|c| c.name == format!("{OTHER}{}", case.name))
        else {
            continue;
        };
        let diff = |v: &[Vec<f64>]| {
            let mut d: Vec<f64> = v[a].iter().zip(&v[b]).map(|(x, y)| x - y).collect();
            let rounds = d.iter().map(|x| format!("{x:.0}")).collect::<Vec<_>>();
            (median(&mut d), rounds.join(","))
        };
        let ((mean_d, mean_rounds), (med_d, _)) = (diff(&timings.means), diff(&timings.medians));
        out.push_str(&format!(
            "# this - other: {}: median of rounds' differences: means {mean_d:+.1} ns [{mean_rounds}], medians {med_d:+.0} ns\n",
            case.name
        ));
    }
    out
}

pub const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// Restores kernel.bpf_stats_enabled when dropped.
pub struct StatsGuard(Option<String>);

impl StatsGuard {
    fn enable() -> StatsGuard {
        let old = std::fs::read_to_string(BPF_STATS).ok();
        match std::fs::write(BPF_STATS, "1") {
            Ok(()) => StatsGuard(old),
            Err(_) => StatsGuard(None),
        }
    }
    fn on(&self) -> bool {
        self.0.is_some()
    }
}

impl Drop for StatsGuard {
    fn drop(&mut self) {
        if let Some(old) = &self.0 {
            let _ = std::fs::write(BPF_STATS, old.trim());
        }
    }
}
