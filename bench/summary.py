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
        if n_.startswith(("size", "kernel", "this - other", "other:")):
            p(f"- {n_}")
    p("")

    # issue 19: answers from the kernel
    def over(name):
        r = rows.get(name)
        return None if r is None else float(r["mean_over_floor_ns"])

    diffs = {}
    for n_ in notes:
        if n_.startswith("difference: "):
            pair, _, rest = n_[len("difference: "):].partition(": median of rounds' differences of means ")
            diffs[pair] = rest
    if any(k.startswith("answers: ") for k in rows):
        p("## Issue 19, per packet: answers from the kernel (this build only; ns over the floor, mean of calls, median of rounds)")
        p("")
        p("| path | query redirected (today) | query redirected, decisions in force (name undecided) | blocked query answered (NXDOMAIN) | pinned query answered (2 A) |")
        p("|---|---|---|---|---|")
        for label, today, pre in [
            ("lo (query program, embedded resolver's path)", "query redirected", "answers: "),
            ("interface egress (egress program, nameservers path)", "nameservers path: query redirected on egress",
             "answers: nameservers path: "),
        ]:
            lo = pre == "answers: "
            cells = [over(today),
                     over(pre + ("query redirected, decisions in force (name undecided)" if lo else
                                 "query redirected on egress, decisions in force (name undecided)")),
                     over(pre + ("blocked query answered (NXDOMAIN), lo prog" if lo else "blocked query answered on egress")),
                     over(pre + ("pinned query answered (2 A), lo prog" if lo else "pinned query answered on egress (2 A)"))]
            p(f"| {label} | " + " | ".join(fmt(c) for c in cells) + " |")
        p("")
        p("The redirected queries also need their reply restored (\"reply restored\" above); an answered query is "
          "the program's whole work on the way in (on lo, two more passes of the query program follow: a mark "
          "read and one helper each, not timed here).")
        p("")
        p("### The matcher: a query no rule decides (www.example.com), with N rules")
        p("")
        p("| rules | N --keep rules, no decisions | N --block rules, FLAG_DECIDE | decisions − keep (median of rounds' differences) | goal | verdict |")
        p("|---|---|---|---|---|---|")
        for n in [1, 256, 4096]:
            a = f"matcher: query redirected, {n} --block rules (name undecided)"
            b = f"matcher: query redirected, {n} --keep rules"
            d = diffs.get(f"{a} - {b}")
            dv = None
            if d:
                try:
                    dv = float(d.split(" ns")[0])
                except ValueError:
                    pass
            p(f"| {n} | {fmt(over(b))} | {fmt(over(a))} | {d or '–'} | ≤ +20 ns | {verdict(None if dv is None else dv <= 20)} |")
        big = [k for k in rows if k.startswith("blocklist: ")]
        for k in big:
            p(f"| {k[len('blocklist: '):]} | | {fmt(over(k))} | | | |")
        p("")
        for k, v in diffs.items():
            p(f"- {k}: {v}")
        p("")
    for n_ in notes:
        if n_.startswith("fill-tsv"):
            _, n, secs, memlock, slab, _empty = n_.split("\t")
            n, secs, memlock, slab = int(n), float(secs), float(memlock), float(slab)
            p("### A blocklist of 10^5 names in RULES (hosts entries, exact names; fresh maps, median of fills)")
            p("")
            p("| names | fill (map updates) | per rule | kernel memory, map's own account (fdinfo memlock = bpftool's) | per rule | kernel memory, /proc/meminfo Slab delta | per rule |")
            p("|---|---|---|---|---|---|---|")
            p(f"| {n} | {secs:.3f} s | {secs * 1e6 / n:.2f} µs | {memlock / 1048576:.1f} MiB | {memlock / n:.0f} B | "
              f"{slab / 1048576:.1f} MiB | {slab / n:.0f} B |")
            p("")
        elif n_.startswith("fill RULES"):
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
    # direct, dnsredir and (issue 21) nft-dnat: an nftables DNAT rule in the container's namespace
    modes = ["direct", "dnsredir", "nft-dnat"]
    sat = [r for r in ns if r["mode"] == "saturation" and r["path"] in modes]
    fixed = [r for r in ns if r["mode"] == "fixed"]
    by = {}
    for r in sat:
        by.setdefault(r["round"], {})[r["path"]] = r

    def round_ratios(a, b, key):
        """a's key ÷ b's key in each round that has both, in round order."""
        return [v[a][key] / v[b][key] for _, v in sorted(by.items(), key=lambda kv: int(kv[0]))
                if a in v and b in v and v[b][key] > 0]

    d = {int(r["round"]): r for r in fixed if r["path"] == "direct"}

    def fixed_ratios(path, key):
        """each fixed-rate run of path against the mean of the direct runs before and after it"""
        out_ = []
        for r in sorted(fixed, key=lambda r: int(r["round"])):
            k = int(r["round"])
            if r["path"] == path and k - 1 in d and k in d:
                base = (d[k - 1][key] + d[k][key]) / 2
                if base > 0:
                    out_.append(r[key] / base)
        return out_

    present = [m for m in modes if any(r["path"] == m for r in sat)]
    p("## End to end: the nameservers path (CNI-style namespace; `--resolver NS --upstream UP`, and nftables DNAT)")
    p("")
    p(f"Saturation (dnsperf -c 20, {len(by)} interleaved rounds, the modes' order rotating; medians; "
      "ratios: each run ÷ the direct run of its round, median of the rounds; CPU per answered query):")
    p("")
    p("| path | q/s | ÷ direct (median; per round) | CPU µs per answer, whole machine (÷ direct) | "
      "CPU µs per answer, dnsperf + responder (÷ direct) | lost (all rounds) |")
    p("|---|---|---|---|---|---|")
    lab = {"direct": "dnsperf → the upstream directly",
           "dnsredir": "dnsperf → the nameserver, taken over by dnsredir",
           "nft-dnat": "dnsperf → the nameserver, nftables DNAT in the container's namespace (nat output)"}
    ratios = {}
    for path in present:
        rs_ = [r for r in sat if r["path"] == path]
        qr = round_ratios(path, "direct", "qps")
        cr = round_ratios(path, "direct", "cpu_us_per_answer")
        pr = round_ratios(path, "direct", "procs_us_per_answer")
        ratios[path] = (qr, cr, pr)
        rat = "–" if path == "direct" else f"{fmt(med(qr), '.3f')} ({', '.join(f'{x:.3f}' for x in qr)})"
        cpu = f"{fmt(med([r['cpu_us_per_answer'] for r in rs_]), '.2f')}"
        procs = f"{fmt(med([r['procs_us_per_answer'] for r in rs_]), '.2f')}"
        if path != "direct":
            cpu += f" ({fmt(med(cr), '.3f')})"
            procs += f" ({fmt(med(pr), '.3f')})"
        p(f"| {lab[path]} | {fmt(med([r['qps'] for r in rs_]))} | {rat} | {cpu} | {procs} | "
          f"{int(sum(r['lost'] for r in rs_))} |")
    p("")
    dn = round_ratios("dnsredir", "nft-dnat", "qps")
    if dn:
        p(f"dnsredir ÷ nft DNAT, q/s, same round: {fmt(med(dn), '.3f')} (per round {', '.join(f'{x:.3f}' for x in dn)}).")
        p("")
    for path in present:
        if path == "direct":
            continue
        _, cr, pr = ratios[path]
        p(f"Per round, {path} ÷ direct: whole-machine CPU {', '.join(f'{x:.3f}' for x in cr)}; "
          f"dnsperf + responder CPU {', '.join(f'{x:.3f}' for x in pr)}.")
    p("")
    fixed_present = [m for m in modes if any(r["path"] == m for r in fixed)]
    p(f"Fixed rate (-Q {machine.get('fixed_qps', '?')}), CPU per answer, each run against the mean of the "
      f"direct runs just before and after it; lost {int(sum(r['lost'] for r in fixed))}:")
    p("")
    p("| path | CPU µs per answer, whole machine | ÷ direct (median; per round) | CPU µs per answer, dnsperf + responder | ÷ direct (median; per round) |")
    p("|---|---|---|---|---|")
    for path in fixed_present:
        rs_ = [r for r in fixed if r["path"] == path]
        cells = [fmt(med([r["cpu_us_per_answer"] for r in rs_]), ".2f"), "–",
                 fmt(med([r["procs_us_per_answer"] for r in rs_]), ".2f"), "–"]
        if path != "direct":
            fc, fp = fixed_ratios(path, "cpu_us_per_answer"), fixed_ratios(path, "procs_us_per_answer")
            cells[1] = f"{fmt(med(fc), '.3f')} ({', '.join(f'{x:.3f}' for x in fc)})"
            cells[3] = f"{fmt(med(fp), '.3f')} ({', '.join(f'{x:.3f}' for x in fp)})"
        p(f"| {lab[path]} | " + " | ".join(cells) + " |")
    p("")
    lost_ns = int(sum(r["lost"] for r in ns if r["path"] == "dnsredir"))
    lost_nft = int(sum(r["lost"] for r in ns if r["path"] == "nft-dnat"))
    attached = attached_runs(out / "ns-bpf-stats-before.txt", out / "ns-bpf-stats-after.txt")
    if attached is not None:
        p("Attached programs in one more dnsredir saturation run (kernel.bpf_stats_enabled; "
          "`--status --json` order: interface ingress (reply), then egress (query)):")
        p("")
        for name, (runs, per_run) in zip(["reply (eth0 ingress)", "query (eth0 egress)"], attached):
            p(f"- {name}: {runs} runs, {fmt(per_run, '.0f')} ns per run")
        p("")
    qr, cr, pr = (med(x) for x in ratios.get("dnsredir", ([], [], [])))
    p("| goal | measured | verdict |")
    p("|---|---|---|")
    p(f"| saturation q/s ≥ 0.97 × direct | {fmt(qr, '.3f')} | {verdict(None if qr is None else qr >= 0.97)} |")
    if "nft-dnat" in ratios:
        nq = med(ratios["nft-dnat"][0])
        p(f"| (the nftables DNAT alternative, same run: q/s ÷ direct) | {fmt(nq, '.3f')} | – |")
        p(f"| (dnsredir ÷ nft DNAT, q/s, same round) | {fmt(med(dn), '.3f')} | – |")
    p(f"| (CPU per answer at saturation, whole machine, direct ÷ dnsredir ≥ 0.97) | {fmt(None if not cr else 1 / cr, '.3f')} | {verdict(None if not cr else 1 / cr >= 0.97)} |")
    p(f"| (CPU per answer at saturation, dnsperf + responder, direct ÷ dnsredir ≥ 0.97) | {fmt(None if not pr else 1 / pr, '.3f')} | {verdict(None if not pr else 1 / pr >= 0.97)} |")
    p(f"| 0 lost queries through dnsredir | {lost_ns} | {verdict(lost_ns == 0)} |")
    if "nft-dnat" in ratios:
        p(f"| (lost queries through nft DNAT) | {lost_nft} | – |")
    p("")

# ---------------------------------------------------------------- 6. answers from the kernel
ans_goals = {"answers-lo": {"blocked": 1.7, "pinned": 1.5}, "answers-ns": {"blocked": 2.0, "pinned": 1.5}}
for setting, title in [("answers-lo", "lo path (section 2's Docker-like emulation: `--pid P --dockerd-port U --dockerd-tcp-port T --block S --answer S=A`)"),
                       ("answers-ns", "nameservers path (section 5's CNI-style namespace: `--netns PATH --resolver NS --block S --answer S=A`)")]:
    rs = [r for r in data if r["setting"] == setting]
    if not rs:
        continue
    by = {}
    for r in rs:
        by.setdefault(r["round"], {})[r["path"]] = r
    p(f"## Issue 19 end to end: answers from the kernel, {title}")
    p("")
    p(f"dnsperf -c 8 -q 64 at saturation, {len(by)} interleaved rounds, medians; ratio: each run ÷ the direct run of its round.")
    p("")
    p("| queries | q/s | ÷ direct (median of rounds; per round) | goal | verdict | lost (all rounds) |")
    p("|---|---|---|---|---|---|")
    lab = {"direct": "answered by the upstream responder directly", "blocked": "blocked names, NXDOMAIN from the program",
           "pinned": "pinned names, 2 A records from the program"}
    for path in ["direct", "blocked", "pinned"]:
        q = med([r["qps"] for r in rs if r["path"] == path])
        ratios = [v[path]["qps"] / v["direct"]["qps"] for v in by.values()
                  if path in v and "direct" in v and v["direct"]["qps"] > 0]
        ratio = med(ratios)
        goal = ans_goals[setting].get(path)
        lost_ = int(sum(r["lost"] for r in rs if r["path"] == path))
        per = ", ".join(f"{x:.2f}" for x in ratios)
        p(f"| {lab[path]} | {fmt(q)} | {fmt(ratio, '.2f')} ({per}) | {'≥ %.1f×' % goal if goal else '–'} | "
          f"{verdict(None if goal is None or ratio is None else ratio >= goal)} | {lost_} |")
    p("")
arows = tsv(out / "answers-latency.tsv")
if arows:
    p("## Issue 19: attach with a policy (`exec-time`: fork to reaping, lo path)")
    p("")
    p("| policy | operation | runs | median ms | max ms | peak RSS kB (max) | failed |")
    p("|---|---|---|---|---|---|---|")
    for setting, what in [("policy-3-rules", "--block S --answer S=A ×2"), ("hosts-100000", "--hosts: 10^5 lines 0.0.0.0 NAME")]:
        for op in ["attach", "detach"]:
            rs = [r for r in arows if r["setting"] == setting and r["op"] == op]
            if not rs:
                continue
            ms = [int(r["wall_us"]) / 1000 for r in rs]
            p(f"| {what} | {op} | {len(rs)} | {statistics.median(ms):.1f} | {max(ms):.1f} | "
              f"{max(int(r['maxrss_kb']) for r in rs)} | {sum(r['exit'] != '0' for r in rs)} |")
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
