#!/usr/bin/env python3
"""Summarises the raw results scripts/bench wrote to DIR (default target/bench) as Markdown
tables with the goals: per packet, end to end (emulation, Docker), latency and sizes."""
import csv
import statistics
import sys
from pathlib import Path

out = Path(sys.argv[1] if len(sys.argv) > 1 else "target/bench")


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(v, spec=".0f"):
    return "–" if v is None else format(v, spec)


def verdict(ok):
    return "–" if ok is None else ("met" if ok else "**missed**")


def tsv(path):
    """The rows of a tab-separated file with a header line; none if this run did not write it."""
    if not path.exists():
        return []
    with path.open() as f:
        return list(csv.DictReader(f, delimiter="\t"))


def attached_runs(before, after):
    """(runs, ns per run) of each program in `prog-stats` output `after` (in its order), less
    what `before` counted; None if this run did not write both files."""
    if not (before.exists() and after.exists()):
        return None
    b = {l.split()[0]: l.split()[1:] for l in before.read_text().splitlines() if l.strip()}
    runs = []
    for pid, cnt, ns in (l.split() for l in after.read_text().splitlines() if l.strip()):
        c0, n0 = (int(x) for x in b.get(pid, ["0", "0"]))
        n = int(cnt) - c0
        runs.append((n, (int(ns) - n0) / n if n else None))
    return runs


def kv(path):
    d = {}
    if path.exists():
        for line in path.read_text().splitlines():
            k, _, v = line.partition(": ")
            d[k] = v
    return d


lines = []
p = lines.append

machine = kv(out / "machine.txt")
p("## Run")
p("")
for k in ["date", "command", "nproc", "cpu", "memory", "kernel", "dnsredir", "dnsperf", "rounds", "docker", "elapsed_s"]:
    if k in machine:
        p(f"- {k}: {machine[k]}")
p("")

# ---------------------------------------------------------------- per packet
pp = out / "per-packet.tsv"
if pp.exists():
    rows = {}
    header = None
    for line in pp.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        cols = line.split("\t")
        if header is None:
            header = cols
            continue
        rows[cols[0]] = dict(zip(header, cols))
    notes = [l[2:] for l in pp.read_text().splitlines() if l.startswith("# ")]
    floor = next(r for k, r in rows.items() if k.startswith("floor"))
    goals = {
        "query redirected": 450,
        "reply restored": 500,
        "query redirected, unanswered": None,
        "non-DNS TCP:443, lo prog": 20,
        "non-DNS TCP:443, eth0 prog": 20,
        "ARP, eth0 prog": 20,
        "UDP other port, lo prog": 20,
        "UDP other port, eth0 prog": 20,
    }
    p("## 1. Per packet (BPF_PROG_TEST_RUN, fresh packet per call, ns over the floor program)")
    p("")
    p(f"Floor program (`r0 = 0; exit`): mean {float(floor['mean_ns']):.1f} ns per call, "
      f"bpf_stats {floor['bpf_stats_ns']} ns.")
    p("")
    p("| case | goal | with counters | without counters | counters cost | bpf_stats (with / without) | verdict |")
    p("|---|---|---|---|---|---|---|")
    for name, goal in goals.items():
        w, n = rows.get(name), rows.get(name + ", no counters")
        if not w or not n:
            continue
        wv, nv = float(w["mean_over_floor_ns"]), float(n["mean_over_floor_ns"])
        ok = None if goal is None else wv <= goal
        p(f"| {name} | {'≤ %d' % goal if goal else '–'} | {wv:.0f} | {nv:.0f} | {wv - nv:+.0f} | "
          f"{w['bpf_stats_over_floor_ns']} / {n['bpf_stats_over_floor_ns']} | {verdict(ok)} |")
    p("")
    p("Figures: median over rounds of each round's mean per-call duration, minus the floor's.")
    p("")
    seed_rows = [k for k in rows if k.startswith("seed C")]
    if seed_rows:
        p("### dnsredir and the seed's C programs, same run (bench/seed/seed.c, clang -O2 -target bpf)")
        p("")
        p("| case | dnsredir with counters | dnsredir without counters | seed C + flow table | seed C, no flow table |")
        p("|---|---|---|---|---|")
        for name in ["query redirected", "reply restored", "answered query (query + reply)"]:
            cells = [rows.get(name), rows.get(name + ", no counters"), rows.get("seed C: " + name),
                     rows.get("seed C, no flow table: " + name)]
            p(f"| {name} | " + " | ".join("–" if c is None else f"{float(c['mean_over_floor_ns']):.0f}" for c in cells) + " |")
        p("")
        p("(ns over the floor; the answered query times two programs and has two floors subtracted.)")
        p("")
        for n_ in notes:
            if n_.startswith("ratio"):
                p(f"- {n_}")
        p("")
    for n_ in notes:
        if n_.startswith(("size", "kernel", "this - other")):
            p(f"- {n_}")
    p("")

# ---------------------------------------------------------------- end to end
data = tsv(out / "results.tsv")
if data:
    for r in data:
        for k in ["qps", "sent", "completed", "lost", "cpu_us_per_answer", "responder_cpu_pct", "procs_us_per_answer"]:
            r[k] = float(r.get(k) or 0)
    for setting, title, resolver in [
        ("emulation", "namespace emulation (scripts/demo's topology)", "standin"),
        ("docker", "real Docker engine (scripts/docker-env)", "docker-resolver"),
    ]:
        rs = [r for r in data if r["setting"] == setting]
        if not rs:
            continue
        sat = [r for r in rs if r["mode"] == "saturation"]
        fixed = [r for r in rs if r["mode"] == "fixed"]

        def q(path, key="qps", rows=sat):
            return med([r[key] for r in rows if r["path"] == path])

        def lost(path, rows):
            return int(sum(r["lost"] for r in rows if r["path"] == path))

        def per_round_ratio(a, b):
            by = {}
            for r in sat:
                by.setdefault(r["round"], {})[r["path"]] = r["qps"]
            return med([v[a] / v[b] for v in by.values() if a in v and b in v and v[b] > 0])

        p(f"## End to end: {title}")
        p("")
        if setting == "emulation":
            alone = q("responder-alone")
            p(f"Upstream responder (bench/prog.rs `responder`, 1 UDP thread) with dnsperf next to it in its own "
              f"namespace: {fmt(alone)} q/s. During the direct saturation runs it used "
              f"{fmt(q('direct', 'responder_cpu_pct'))} % of one CPU (dnsredir runs: "
              f"{fmt(q('dnsredir', 'responder_cpu_pct'))} %).")
        else:
            p(f"Upstream and dockerd's forwarder target are the same Rust responder program. During the direct "
              f"saturation runs the upstream responder used {fmt(q('direct', 'responder_cpu_pct'))} % of one CPU.")
        p("")
        p(f"Saturation (dnsperf -c 20, {len(set(r['round'] for r in sat))} interleaved rounds, medians):")
        p("")
        p("| path | q/s | ÷ direct (same round) | lost (all rounds) |")
        p("|---|---|---|---|")
        label = {"direct": "direct to the upstream",
                 "standin": "stand-in for Docker's resolver (dnsmasq, NOT dockerd)",
                 "docker-resolver": "Docker's embedded resolver (dockerd)",
                 "dnsredir": "through dnsredir"}
        for path in ["direct", resolver, "dnsredir"]:
            p(f"| {label[path]} | {fmt(q(path))} | {fmt(per_round_ratio(path, 'direct'), '.3f')} | {lost(path, sat)} |")
        p("")
        ratio_direct = per_round_ratio("dnsredir", "direct")
        ratio_resolver = per_round_ratio("dnsredir", resolver)
        # fixed rate: each dnsredir run against the mean of the direct runs before and after it
        d = {int(r["round"]): r for r in fixed if r["path"] == "direct"}
        ratios = []
        for r in fixed:
            if r["path"] != "dnsredir":
                continue
            k = int(r["round"])
            if k - 1 in d and k in d:
                base = (d[k - 1]["cpu_us_per_answer"] + d[k]["cpu_us_per_answer"]) / 2
                ratios.append(r["cpu_us_per_answer"] / base)
        cpu_ratio = med(ratios)
        lost_all = lost("dnsredir", rs)
        p(f"Fixed rate (dnsperf -c 20 -Q {machine.get('fixed_qps', '?')}), "
          "whole-machine CPU per answered query (/proc/stat), each dnsredir run against the direct runs "
          "just before and after it:")
        p("")
        p("| path | q/s answered | CPU µs per answer | lost |")
        p("|---|---|---|---|")
        for path in ["direct", "dnsredir"]:
            p(f"| {label[path]} | {fmt(q(path, rows=fixed))} | {fmt(q(path, 'cpu_us_per_answer', fixed), '.2f')} | {lost(path, fixed)} |")
        p(f"| CPU ratio dnsredir ÷ direct (median of rounds; per round: {', '.join(f'{x:.3f}' for x in ratios)}) | | {fmt(cpu_ratio, '.3f')} | |")
        p("")
        p("| goal | measured | verdict |")
        p("|---|---|---|")
        p(f"| saturation dnsredir ≥ 0.95 × direct | {fmt(ratio_direct, '.3f')} | {verdict(None if ratio_direct is None else ratio_direct >= 0.95)} |")
        p(f"| (fixed rate: direct's CPU per answer ÷ dnsredir's ≥ 0.95) | {fmt(None if not cpu_ratio else 1 / cpu_ratio, '.3f')} | {verdict(None if not cpu_ratio else 1 / cpu_ratio >= 0.95)} |")
        what = "the dnsmasq stand-in (not Docker's resolver)" if setting == "emulation" else "Docker's embedded resolver"
        p(f"| dnsredir ≥ 4 × {what} | {fmt(ratio_resolver, '.2f')} | {verdict(None if ratio_resolver is None else ratio_resolver >= 4)} |")
        p(f"| 0 lost queries through dnsredir | {lost_all} | {verdict(lost_all == 0)} |")
        p("")

# ---------------------------------------------------------------- the nameservers path
ns = [r for r in data if r["setting"] == "nameservers"]
if ns:
    sat = [r for r in ns if r["mode"] == "saturation" and r["path"] in ("direct", "dnsredir")]
    fixed = [r for r in ns if r["mode"] == "fixed"]
    by = {}
    for r in sat:
        by.setdefault(r["round"], {})[r["path"]] = r
    qps_ratios = [v["dnsredir"]["qps"] / v["direct"]["qps"] for v in by.values() if len(v) == 2]
    cpu_ratios = [v["dnsredir"]["cpu_us_per_answer"] / v["direct"]["cpu_us_per_answer"]
                  for v in by.values() if len(v) == 2]
    procs_ratios = [v["dnsredir"]["procs_us_per_answer"] / v["direct"]["procs_us_per_answer"]
                    for v in by.values() if len(v) == 2 and v["direct"]["procs_us_per_answer"] > 0]
    d = {int(r["round"]): r for r in fixed if r["path"] == "direct"}
    fixed_ratios, fixed_procs = [], []
    for r in fixed:
        k = int(r["round"])
        if r["path"] == "dnsredir" and k - 1 in d and k in d:
            base = (d[k - 1]["cpu_us_per_answer"] + d[k]["cpu_us_per_answer"]) / 2
            fixed_ratios.append(r["cpu_us_per_answer"] / base)
            pbase = (d[k - 1]["procs_us_per_answer"] + d[k]["procs_us_per_answer"]) / 2
            if pbase > 0:
                fixed_procs.append(r["procs_us_per_answer"] / pbase)
    p("## End to end: the nameservers path (CNI-style namespace, no NAT; `--resolver NS --upstream UP`)")
    p("")
    p(f"Saturation (dnsperf -c 20, {len(by)} interleaved rounds, medians; CPU per answered query):")
    p("")
    p("| path | q/s | CPU µs per answer, whole machine | CPU µs per answer, dnsperf + responder | lost (all rounds) |")
    p("|---|---|---|---|---|")
    lab = {"direct": "dnsperf → the upstream directly", "dnsredir": "dnsperf → the nameserver, taken over by dnsredir"}
    for path in ["direct", "dnsredir"]:
        rs_ = [r for r in sat if r["path"] == path]
        p(f"| {lab[path]} | {fmt(med([r['qps'] for r in rs_]))} | {fmt(med([r['cpu_us_per_answer'] for r in rs_]), '.2f')} | "
          f"{fmt(med([r['procs_us_per_answer'] for r in rs_]), '.2f')} | {int(sum(r['lost'] for r in rs_))} |")
    qr, cr, pr = med(qps_ratios), med(cpu_ratios), med(procs_ratios)
    p(f"| ratio dnsredir ÷ direct, same round | {fmt(qr, '.3f')} | {fmt(cr, '.3f')} | {fmt(pr, '.3f')} | |")
    p("")
    p(f"Per round: q/s {', '.join(f'{x:.3f}' for x in qps_ratios)}; whole-machine CPU "
      f"{', '.join(f'{x:.3f}' for x in cpu_ratios)}; dnsperf + responder CPU {', '.join(f'{x:.3f}' for x in procs_ratios)}.")
    p("")
    p(f"Fixed rate (-Q {machine.get('fixed_qps', '?')}), CPU per answer: direct "
      f"{fmt(med([r['cpu_us_per_answer'] for r in fixed if r['path'] == 'direct']), '.2f')} µs, dnsredir "
      f"{fmt(med([r['cpu_us_per_answer'] for r in fixed if r['path'] == 'dnsredir']), '.2f')} µs; ratio to the "
      f"direct runs around each: {', '.join(f'{x:.3f}' for x in fixed_ratios)} → median {fmt(med(fixed_ratios), '.3f')}; "
      f"lost {int(sum(r['lost'] for r in fixed))}. dnsperf + responder CPU per answer: direct "
      f"{fmt(med([r['procs_us_per_answer'] for r in fixed if r['path'] == 'direct']), '.2f')} µs, dnsredir "
      f"{fmt(med([r['procs_us_per_answer'] for r in fixed if r['path'] == 'dnsredir']), '.2f')} µs; ratios "
      f"{', '.join(f'{x:.3f}' for x in fixed_procs)} → median {fmt(med(fixed_procs), '.3f')}.")
    p("")
    lost_ns = int(sum(r["lost"] for r in ns if r["path"] == "dnsredir"))
    attached = attached_runs(out / "ns-bpf-stats-before.txt", out / "ns-bpf-stats-after.txt")
    if attached is not None:
        p("Attached programs in one more dnsredir saturation run (kernel.bpf_stats_enabled; "
          "`--status --json` order: interface ingress (reply), then egress (query)):")
        p("")
        for name, (runs, per_run) in zip(["reply (eth0 ingress)", "query (eth0 egress)"], attached):
            p(f"- {name}: {runs} runs, {fmt(per_run, '.0f')} ns per run")
        p("")
    p("| goal | measured | verdict |")
    p("|---|---|---|")
    p(f"| saturation q/s ≥ 0.97 × direct | {fmt(qr, '.3f')} | {verdict(None if qr is None else qr >= 0.97)} |")
    p(f"| (CPU per answer at saturation, whole machine, direct ÷ dnsredir ≥ 0.97) | {fmt(None if not cr else 1 / cr, '.3f')} | {verdict(None if not cr else 1 / cr >= 0.97)} |")
    p(f"| (CPU per answer at saturation, dnsperf + responder, direct ÷ dnsredir ≥ 0.97) | {fmt(None if not pr else 1 / pr, '.3f')} | {verdict(None if not pr else 1 / pr >= 0.97)} |")
    p(f"| 0 lost queries through dnsredir | {lost_ns} | {verdict(lost_ns == 0)} |")
    p("")

# ---------------------------------------------------------------- profile: bpf_stats of attached programs
attached = attached_runs(out / "bpf-stats-before.txt", out / "bpf-stats-after.txt")
if attached is not None:
    p("## Attached programs under load (kernel.bpf_stats_enabled, one dnsredir saturation run)")
    p("")
    p("| program | runs | ns per run |")
    p("|---|---|---|")
    for name, (runs, per_run) in zip(["dnsredir_query (lo ingress)", "dnsredir_reply (eth0 ingress)"], attached):
        p(f"| {name} | {runs} | {fmt(per_run, '.0f')} |")
    p("")

# ---------------------------------------------------------------- latency and sizes
rows = tsv(out / "latency.tsv")
if rows:
    p("## Attach / detach latency (process start to filters in place and back; `exec-time`: fork to reaping)")
    p("")
    p("| setting | operation | runs | median ms | max ms | peak RSS kB (max) | goal | verdict |")
    p("|---|---|---|---|---|---|---|---|")
    for setting in ["emulation", "docker"]:
        for op in ["attach", "detach", "status"]:
            rs = [r for r in rows if r["setting"] == setting and r["op"] == op]
            if not rs:
                continue
            ms = [int(r["wall_us"]) / 1000 for r in rs]
            bad = [r for r in rs if r["exit"] != "0"]
            m = statistics.median(ms)
            goal = op in ("attach", "detach")
            p(f"| {setting} | {op}{' (%d failed)' % len(bad) if bad else ''} | {len(rs)} | {m:.1f} | {max(ms):.1f} | "
              f"{max(int(r['maxrss_kb']) for r in rs)} | {'≤ 20 ms' if goal else '–'} | {verdict(m <= 20 and not bad) if goal else '–'} |")
    p("")
sizes = kv(out / "sizes.txt")
if sizes:
    p("## Size and memory")
    p("")
    p(f"- release binary (glibc, stripped): {int(sizes['release_binary_bytes']) / 1024:.0f} KiB")
    p(f"- static musl binary (`scripts/build-static`): {int(sizes['static_binary_bytes']) / 1024:.0f} KiB")
    p(f"- static binary peak RSS (`/usr/bin/time -v`): attach {sizes.get('static_maxrss_kb_attach')} kB, "
      f"--status {sizes.get('static_maxrss_kb_status')} kB, detach {sizes.get('static_maxrss_kb_detach')} kB")
    p("")

print("\n".join(lines))
