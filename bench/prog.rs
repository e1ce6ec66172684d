//! dnsredir's benchmark helpers (`harness = false`; `scripts/bench` drives them):
//!
//!     prog [--rounds N] [--calls N] [--out FILE] [--seed-object FILE] [--other-object FILE]
//!                                                  per-packet cost with BPF_PROG_TEST_RUN (default);
//!                                                  with the C reference of the seed's programs
//!                                                  (bench/seed/seed.c, built by scripts/bench);
//!                                                  with another dnsredir build's BPF object (same
//!                                                  configuration layout): its cases as `other: …`
//!     responder ADDR[:PORT] ANSWER [THREADS]       a fast UDP+TCP DNS responder for end-to-end runs
//!     exec-time CMD [ARGS...]                      run CMD once: "wall_us maxrss_kb exit_code"
//!     prog-stats ID...                             "id run_cnt run_time_ns" of loaded programs
//!
//! `cargo bench --bench prog` passes `--bench`; it is ignored.
//!
//! Per-packet method (design.md §8): BPF_PROG_TEST_RUN with repeat = 1 on a fresh copy of the
//! packet per call, many calls per case, the kernel's own per-call duration; a floor program
//! (`r0 = 0; exit`) timed the same way is subtracted. Cases are interleaved round by round and
//! the figure is the median over rounds of each round's median call.

// The tests' support files: packets and the one DNS codec. dns.rs brings its namespace-bound
// test server and clients (and so netns.rs), which the benchmark does not use.
#[path = "../tests/support/dns.rs"]
#[allow(dead_code)]
mod dns;
#[path = "../tests/support/netns.rs"]
#[allow(dead_code)]
mod netns;
#[path = "../tests/support/packet.rs"]
mod packet;

use dnsredir::abi::raw::{addr_raw, port_raw};
use dnsredir::abi::Config;
use dnsredir::abi::{
    WatchControl, EGRESS_SECTION, EVENTS_MAP, FLAG_ANY_RESOLVER, FLAG_NO_COUNTERS,
    PATH_NAMESERVERS, QUERY_SECTION, REPLY_SECTION, RULES_MAP, WATCH_MAP,
};
use dnsredir::bpf::elf::ObjectFile;
use dnsredir::bpf::embedded;
use dnsredir::bpf::insn::Insn;
use dnsredir::bpf::load::{self, Loaded};
use dnsredir::bpf::ringbuf::RingBuf;
use dnsredir::bpf::sys;
use dnsredir::redirect::rules::{self, Rules};
use packet::*;
use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::{exit, Command, Stdio};
use std::time::Instant;

const UPSTREAM_PORT: u16 = 53;
/// Distinct DNS ids cycled through, so the flow table sees different keys.
const IDS: u16 = 1024;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let result = match args.first().map(String::as_str) {
        None | Some("prog") => per_packet(&args[args.len().min(1)..]),
        Some(a) if a.starts_with("--") => per_packet(&args),
        Some("responder") => responder(&args[1..]),
        Some("exec-time") => exec_time(&args[1..]),
        Some("prog-stats") => print_prog_stats(&args[1..]),
        Some(other) => Err(format!(
            "unknown subcommand {other:?} (prog, responder, exec-time, prog-stats)"
        )),
    };
    if let Err(e) = result {
        eprintln!("bench: {e}");
        exit(1);
    }
}

// ---------------------------------------------------------------- per packet

fn floor_program() -> Result<OwnedFd, String> {
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

/// One timed case: a program and the packets it runs on (cycled), with the verdict each must
/// get. `before` and `after`, when set, run untimed on the same index around each timed call:
/// the query that makes a reply's flow known, the reply that removes a query's flow again (so
/// the flow table stays as small as in real use, one entry per query in flight). `then`, when
/// set, runs right after the timed call on the same index and is timed too (the two durations
/// add up): an answered query, its query and then its reply.
struct Case<'a> {
    name: String,
    prog: &'a OwnedFd,
    packets: Vec<Vec<u8>>,
    expect: u32,
    before: Option<(&'a OwnedFd, Vec<Vec<u8>>)>,
    after: Option<(&'a OwnedFd, Vec<Vec<u8>>)>,
    /// A watcher for the object: its ring buffer emptied after each call (untimed).
    watcher: Option<&'a Watcher>,
    then: Option<(&'a OwnedFd, Vec<Vec<u8>>)>,
}

impl<'a> Case<'a> {
    /// `prog` timed alone on `packets`, every call to return `expect`.
    fn new(name: impl Into<String>, prog: &'a OwnedFd, packets: Vec<Vec<u8>>, expect: u32) -> Self {
        Case {
            name: name.into(),
            prog,
            packets,
            expect,
            before: None,
            after: None,
            watcher: None,
            then: None,
        }
    }

    /// Packets the program is to redirect (TC_ACT_REDIRECT).
    fn redirected(name: impl Into<String>, prog: &'a OwnedFd, packets: Vec<Vec<u8>>) -> Self {
        Case::new(name, prog, packets, TC_ACT_REDIRECT)
    }

    /// A packet the program is to pass on untouched (TC_ACT_UNSPEC): what saying no costs.
    fn passed(name: impl Into<String>, prog: &'a OwnedFd, packet: Vec<u8>) -> Self {
        Case::new(name, prog, vec![packet], TC_ACT_UNSPEC)
    }

    fn before(self, prog: &'a OwnedFd, packets: Vec<Vec<u8>>) -> Self {
        Case {
            before: Some((prog, packets)),
            ..self
        }
    }

    fn after(self, prog: &'a OwnedFd, packets: Vec<Vec<u8>>) -> Self {
        Case {
            after: Some((prog, packets)),
            ..self
        }
    }

    fn then(self, prog: &'a OwnedFd, packets: Vec<Vec<u8>>) -> Self {
        Case {
            then: Some((prog, packets)),
            ..self
        }
    }

    /// Timed program runs per call: what to subtract of the floor program.
    fn runs(&self) -> f64 {
        if self.then.is_some() {
            2.0
        } else {
            1.0
        }
    }
}

/// `--watch`'s part in the benchmark: holds the flag and empties the ring buffer.
struct Watcher {
    ring: RefCell<RingBuf>,
    control: OwnedFd,
    calls: Cell<u64>,
}

impl Watcher {
    /// `None` for an object without the event maps (a build before `--watch`).
    fn new(object: &ObjectFile, loaded: &Loaded) -> Result<Option<Watcher>, String> {
        let (Some(events), Some(control)) = (
            loaded.map(object, EVENTS_MAP),
            loaded.map(object, WATCH_MAP),
        ) else {
            return Ok(None);
        };
        let size = sys::map_info(events)
            .map_err(|e| e.to_string())?
            .max_entries;
        let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| e.to_string());
        let ring = RingBuf::new(dup(events)?, size as usize).map_err(|e| e.to_string())?;
        let w = Watcher {
            ring: RefCell::new(ring),
            control: dup(control)?,
            calls: Cell::new(0),
        };
        w.refresh()?;
        Ok(Some(w))
    }

    fn refresh(&self) -> Result<(), String> {
        let control = WatchControl {
            watcher_pid: std::process::id(),
            refreshed_ns: sys::monotonic_ns(),
            ..Default::default()
        };
        sys::map_update(&self.control, &0u32.to_ne_bytes(), &control.to_bytes())
            .map_err(|e| format!("watch flag: {e}"))
    }

    fn after_call(&self) -> Result<(), String> {
        self.ring.borrow_mut().consume(|_| ());
        self.calls.set(self.calls.get() + 1);
        if self.calls.get() % 1024 == 0 {
            self.refresh()?;
        }
        Ok(())
    }
}

fn query_packet(id: u16) -> Vec<u8> {
    Packet::udp(
        (CLIENT, CLIENT_PORT),
        (RESOLVER, DOCKERD_UDP),
        dns_query(id, "www.example.com"),
    )
    .bytes()
}

fn edns_query_packet(id: u16) -> Vec<u8> {
    Packet::udp(
        (CLIENT, CLIENT_PORT),
        (RESOLVER, DOCKERD_UDP),
        dns_query_edns(id, "www.example.com", 4096),
    )
    .bytes()
}

fn reply_packet(id: u16) -> Vec<u8> {
    Packet::udp(
        (UPSTREAM, UPSTREAM_PORT),
        (CONTAINER, CLIENT_PORT),
        dns_answer(id, "www.example.com"),
    )
    .bytes()
}

fn arp_packet() -> Vec<u8> {
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&[0x02, 0, 0, 0, 0, 0xbb, 0x08, 0x06]);
    arp.resize(14 + 28, 1);
    arp
}

fn https_packet(to_upstream: bool) -> Vec<u8> {
    let (src, dst) = if to_upstream {
        (CLIENT, RESOLVER)
    } else {
        (UPSTREAM, CONTAINER)
    };
    let (sport, dport) = if to_upstream {
        (CLIENT_PORT, 443)
    } else {
        (443, CLIENT_PORT)
    };
    Packet::tcp((src, sport), (dst, dport), vec![0x17; 100]).bytes()
}

/// An answer on lo as the query program sees it: one the reply program restored.
fn lo_answer_packet(id: u16) -> Vec<u8> {
    Packet::udp(
        (RESOLVER, DOCKERD_UDP),
        (CLIENT, CLIENT_PORT),
        dns_answer(id, "www.example.com"),
    )
    .bytes()
}

fn cases<'a>(
    label: &str,
    query_prog: &'a OwnedFd,
    reply_prog: &'a OwnedFd,
    watcher: Option<&'a Watcher>,
) -> Vec<Case<'a>> {
    let ids = 0..IDS;
    let queries: Vec<Vec<u8>> = ids.clone().map(query_packet).collect();
    let edns_queries: Vec<Vec<u8>> = ids.clone().map(edns_query_packet).collect();
    let lo_answers: Vec<Vec<u8>> = ids.clone().map(lo_answer_packet).collect();
    let replies: Vec<Vec<u8>> = ids.map(reply_packet).collect();
    let other_port_query = Packet::udp(
        (CLIENT, CLIENT_PORT),
        (RESOLVER, DOCKERD_UDP + 1),
        dns_query(1, "www.example.com"),
    );
    let other_port_answer = Packet::udp(
        (UPSTREAM, UPSTREAM_PORT + 1),
        (CONTAINER, CLIENT_PORT),
        dns_answer(1, "www.example.com"),
    );
    vec![
        Case::redirected("query redirected", query_prog, queries.clone())
            .after(reply_prog, replies.clone()),
        Case::redirected(
            "query redirected, EDNS 4096 clamped",
            query_prog,
            edns_queries,
        )
        .after(reply_prog, replies.clone()),
        Case::redirected("reply restored", reply_prog, replies.clone())
            .before(query_prog, queries.clone()),
        Case::redirected(
            "answered query (query + reply)",
            query_prog,
            queries.clone(),
        )
        .then(reply_prog, replies),
        // no replies: every query replaces a flow of the same key left by an earlier one
        Case::redirected("query redirected, unanswered", query_prog, queries),
        Case::new(
            "answer on lo (restored), lo prog",
            query_prog,
            lo_answers,
            TC_ACT_UNSPEC,
        ),
        Case::passed("non-DNS TCP:443, lo prog", query_prog, https_packet(true)),
        Case::passed(
            "non-DNS TCP:443, eth0 prog",
            reply_prog,
            https_packet(false),
        ),
        Case::passed("ARP, eth0 prog", reply_prog, arp_packet()),
        Case::passed(
            "UDP other port, lo prog",
            query_prog,
            other_port_query.bytes(),
        ),
        Case::passed(
            "UDP other port, eth0 prog",
            reply_prog,
            other_port_answer.bytes(),
        ),
    ]
    .into_iter()
    .map(|c| Case {
        name: format!("{}{label}", c.name),
        watcher,
        ..c
    })
    .collect()
}

/// The C reference of the seed's programs (bench/seed/seed.c): its `seed_config` global, as
/// that file lays it out, for the addresses of the test configuration.
fn seed_config() -> Vec<u8> {
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
fn load_seed(path: &str) -> Result<Loaded, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    let mut object = ObjectFile::parse(&bytes).map_err(|e| format!("{path}: parse: {e}"))?;
    object
        .set_global(SEED_CONFIG, &seed_config())
        .map_err(|e| format!("{path}: config: {e}"))?;
    load::load(&object, &load::Options::sched_cls()).map_err(|e| format!("{path}: load: {e}"))
}

const SEED_CONFIG: &str = "seed_config";

/// The seed's programs must do the same job as dnsredir's before their times mean anything:
/// one query and its reply through each variant, addresses, ports and both checksums checked.
fn check_seed(query_prog: &OwnedFd, reply_prog: &OwnedFd, label: &str) -> Result<(), String> {
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
fn seed_cases<'a>(label: &str, query_prog: &'a OwnedFd, reply_prog: &'a OwnedFd) -> Vec<Case<'a>> {
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

/// The nameserver the nameservers path takes over in [`egress_cases`].
const NAMESERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 53);
/// A server no configuration names, which `--resolver any` takes.
const ANY_SERVER: Ipv4Addr = Ipv4Addr::new(1, 1, 1, 1);

/// A query from the container to `server`:53 on eth0 egress.
fn egress_query(id: u16, server: Ipv4Addr) -> Vec<u8> {
    Packet::udp(
        (CONTAINER, CLIENT_PORT),
        (server, 53),
        dns_query(id, "www.example.com"),
    )
    .bytes()
}

/// The nameservers path (`label`): a query to `server` on eth0 egress, its answer on eth0
/// ingress; both continue with TC_ACT_UNSPEC.
fn egress_cases<'a>(
    label: &str,
    server: Ipv4Addr,
    egress_prog: &'a OwnedFd,
    reply_prog: &'a OwnedFd,
) -> Vec<Case<'a>> {
    let queries: Vec<Vec<u8>> = (0..IDS).map(|id| egress_query(id, server)).collect();
    let replies: Vec<Vec<u8>> = (0..IDS).map(reply_packet).collect();
    vec![
        Case::new(
            format!("{label}: query redirected on egress"),
            egress_prog,
            queries.clone(),
            TC_ACT_UNSPEC,
        )
        .after(reply_prog, replies.clone()),
        Case::new(
            format!("{label}: reply restored in place"),
            reply_prog,
            replies,
            TC_ACT_UNSPEC,
        )
        .before(egress_prog, queries),
    ]
}

struct Opts {
    rounds: usize,
    calls: usize,
    out: Option<String>,
    seed_object: Option<String>,
    other_object: Option<String>,
}

fn parse_opts(args: &[String]) -> Result<Opts, String> {
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

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The query or reply around a timed call, with the case's verdict: redirected (the
/// embedded-resolver path), or rewritten and passed on (the nameservers path).
fn untimed(case: &Case, prog: &OwnedFd, packet: &[u8]) -> Result<(), String> {
    let r = sys::prog_test_run(prog, packet, 1).map_err(|e| format!("{}: {e}", case.name))?;
    if r.retval != case.expect {
        return Err(format!("{}: untimed run returned {}", case.name, r.retval));
    }
    if r.retval == TC_ACT_UNSPEC && r.data == packet {
        return Err(format!("{}: untimed run did not rewrite", case.name));
    }
    Ok(())
}

/// Runs a case `calls` times; returns (median ns, mean ns) of the kernel's per-call durations.
fn time_case(case: &Case, calls: usize) -> Result<(f64, f64), String> {
    let mut durations = Vec::with_capacity(calls);
    for i in 0..calls {
        let k = i % case.packets.len();
        if let Some((prog, packets)) = &case.before {
            untimed(case, prog, &packets[k])?;
        }
        let r = sys::prog_test_run(case.prog, &case.packets[k], 1)
            .map_err(|e| format!("{}: {e}", case.name))?;
        if r.retval != case.expect {
            return Err(format!(
                "{}: returned {}, expected {}",
                case.name, r.retval, case.expect
            ));
        }
        let mut duration = r.duration_ns as f64;
        if let Some((prog, packets)) = &case.then {
            let r = sys::prog_test_run(prog, &packets[k], 1)
                .map_err(|e| format!("{}: {e}", case.name))?;
            if r.retval != case.expect {
                return Err(format!(
                    "{}: second program returned {}, expected {}",
                    case.name, r.retval, case.expect
                ));
            }
            duration += r.duration_ns as f64;
        }
        if let Some((prog, packets)) = &case.after {
            untimed(case, prog, &packets[k])?;
        }
        if let Some(w) = case.watcher {
            w.after_call()?;
        }
        durations.push(duration);
    }
    let mean = durations.iter().sum::<f64>() / durations.len() as f64;
    Ok((median(&mut durations), mean))
}

/// `kernel.bpf_stats_enabled`: run_time_ns and run_cnt of a program (struct bpf_prog_info
/// offsets 192 and 200), plus its translated and JITed sizes (offsets 20 and 16).
#[derive(Clone, Copy, Default)]
struct ProgStats {
    run_time_ns: u64,
    run_cnt: u64,
    xlated_len: u32,
    jited_len: u32,
}

fn prog_stats(prog: &OwnedFd) -> io::Result<ProgStats> {
    #[repr(C)]
    struct InfoAttr {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    let mut info = [0u64; 28];
    let mut attr = InfoAttr {
        bpf_fd: prog.as_raw_fd() as u32,
        info_len: std::mem::size_of_val(&info) as u32,
        info: info.as_mut_ptr() as u64,
    };
    const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
    // SAFETY: attr is the bpf_attr prefix for BPF_OBJ_GET_INFO_BY_FD and `info` outlives the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            &mut attr as *mut InfoAttr,
            std::mem::size_of::<InfoAttr>() as libc::c_long,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ProgStats {
        run_time_ns: info[192 / 8],
        run_cnt: info[200 / 8],
        xlated_len: (info[16 / 8] >> 32) as u32,
        jited_len: info[16 / 8] as u32,
    })
}

/// kernel.bpf_stats_enabled accounting of attached programs, by id (for end-to-end runs).
fn print_prog_stats(ids: &[String]) -> Result<(), String> {
    for id in ids {
        let n: u32 = id.parse().map_err(|e| format!("{id}: {e}"))?;
        let fd = sys::prog_fd_by_id(n).map_err(|e| format!("program {n}: {e}"))?;
        let st = prog_stats(&fd).map_err(|e| format!("program {n}: {e}"))?;
        println!("{n} {} {}", st.run_cnt, st.run_time_ns);
    }
    Ok(())
}

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// Restores kernel.bpf_stats_enabled when dropped.
struct StatsGuard(Option<String>);

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

/// Suffixes like Docker aliases and split-DNS zones, none of which www.example.com is under.
fn rule_names(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("svc{i}.zone{}.internal.test", i % 16))
        .collect()
}

fn load_with_rules(keep: &[String], only: &[String]) -> Result<Loaded, String> {
    let rules = Rules::new(keep, only)?;
    let config = test_config(UPSTREAM_PORT, rules.kinds().flags());
    let (object, loaded) = load_with(&config)?;
    let map = loaded
        .map(&object, RULES_MAP)
        .ok_or("no rules map".to_string())?;
    rules::fill(map, &rules).map_err(|e| e.to_string())?;
    Ok(loaded)
}

fn prog<'a>(l: &'a Loaded, s: &str) -> Result<&'a OwnedFd, String> {
    Ok(&l.program(s).ok_or(format!("no program {s}"))?.fd)
}

/// A program of `l` and its reply program.
fn pair<'a>(l: &'a Loaded, s: &str) -> Result<(&'a OwnedFd, &'a OwnedFd), String> {
    Ok((prog(l, s)?, prog(l, REPLY_SECTION)?))
}

/// `--resolver any` of [`egress_cases`]: every server on port 53 taken over on eth0's egress.
fn any_resolver_config() -> Config {
    let mut config = test_config(UPSTREAM_PORT, FLAG_ANY_RESOLVER);
    config.path = PATH_NAMESERVERS;
    config
}

/// The nameservers path of [`egress_cases`]: [`NAMESERVER`] taken over on eth0's egress.
fn nameservers_config() -> Config {
    let mut config = test_config(UPSTREAM_PORT, 0);
    config.path = PATH_NAMESERVERS;
    config.nameservers[0] = addr_raw(NAMESERVER);
    config.nameserver_ports[0] = port_raw(53);
    config.nameserver_count = 1;
    config
}

/// One dnsredir object (this build's, or another build's with `--other-object`) loaded with
/// the benchmark's configurations: with and without counters, a watcher's, the nameservers
/// path's.
struct Build {
    with: Loaded,
    without: Loaded,
    watched: Loaded,
    /// `None` for an object without the event maps.
    watcher: Option<Watcher>,
    nameservers: Loaded,
    /// `None` for an object without `--resolver any`.
    any_resolver: Option<Loaded>,
}

impl Build {
    fn load(bytes: &[u8]) -> Result<Build, String> {
        let load = |config: &Config| load_object(bytes, config);
        let (_, with) = load(&test_config(UPSTREAM_PORT, 0))?;
        let (_, without) = load(&test_config(UPSTREAM_PORT, FLAG_NO_COUNTERS))?;
        let (watched_object, watched) = load(&test_config(UPSTREAM_PORT, 0))?;
        let watcher = Watcher::new(&watched_object, &watched)?;
        let (_, nameservers) = load(&nameservers_config())?;
        let (_, any_resolver) = load(&any_resolver_config())?;
        // A build before the flag passes the query on untouched: it has nothing to time.
        let query = egress_query(1, ANY_SERVER);
        let out = sys::prog_test_run(prog(&any_resolver, EGRESS_SECTION)?, &query, 1)
            .map_err(|e| e.to_string())?;
        let any_resolver = (out.data != query).then_some(any_resolver);
        Ok(Build {
            with,
            without,
            watched,
            watcher,
            nameservers,
            any_resolver,
        })
    }

    /// Its cases (all but the name rules'), each name after `prefix`.
    fn cases(&self, prefix: &str) -> Result<Vec<Case<'_>>, String> {
        let (wq, wr) = pair(&self.with, QUERY_SECTION)?;
        let (nq, nr) = pair(&self.without, QUERY_SECTION)?;
        let mut all = cases("", wq, wr, None);
        all.extend(cases(", no counters", nq, nr, None));
        if let Some(w) = &self.watcher {
            let (q, r) = pair(&self.watched, QUERY_SECTION)?;
            all.extend(cases(", watcher present", q, r, Some(w)));
        }
        let (e, r) = pair(&self.nameservers, EGRESS_SECTION)?;
        all.extend(egress_cases("nameservers path", NAMESERVER, e, r));
        if let Some(any) = &self.any_resolver {
            let (e, r) = pair(any, EGRESS_SECTION)?;
            all.extend(egress_cases("any resolver", ANY_SERVER, e, r));
        }
        Ok(all
            .into_iter()
            .map(|c| Case {
                name: format!("{prefix}{}", c.name),
                ..c
            })
            .collect())
    }

    /// "# size" lines: translated and JITed sizes of its programs.
    fn sizes(&self, label: &str) -> Result<String, String> {
        let mut out = String::new();
        for (config, l, s) in [
            ("counters", &self.with, QUERY_SECTION),
            ("counters", &self.with, REPLY_SECTION),
            ("no counters", &self.without, QUERY_SECTION),
            ("no counters", &self.without, REPLY_SECTION),
            ("nameservers", &self.nameservers, EGRESS_SECTION),
            ("nameservers", &self.nameservers, REPLY_SECTION),
        ]
        .into_iter()
        .chain(self.any_resolver.iter().flat_map(|any| {
            [
                ("any resolver", any, EGRESS_SECTION),
                ("any resolver", any, REPLY_SECTION),
            ]
        })) {
            let st = prog_stats(prog(l, s)?).map_err(|e| e.to_string())?;
            out.push_str(&format!(
                "# size {s} ({label}{config}): {} insns translated, {} bytes JITed\n",
                st.xlated_len / 8,
                st.jited_len
            ));
        }
        Ok(out)
    }
}

/// The prefix of `--other-object`'s cases.
const OTHER: &str = "other: ";

fn per_packet(args: &[String]) -> Result<(), String> {
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
    // Name rules: www.example.com under none of the --keep suffixes (redirected after the walk
    // and one LPM lookup), or under one of the --only suffixes.
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
    for (label, loaded) in &with_rules {
        let (q, r) = (prog(loaded, QUERY_SECTION)?, prog(loaded, REPLY_SECTION)?);
        let queries = (0..IDS).map(query_packet).collect();
        let replies = (0..IDS).map(reply_packet).collect();
        all_cases.push(
            Case::redirected(format!("query redirected, {label}"), q, queries).after(r, replies),
        );
    }
    let seed = o.seed_object.as_deref().map(load_seed).transpose()?;
    if let Some(seed) = &seed {
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
        // the seed + a flow table like ours (like for like), then the seed as described
        all_cases.extend(seed_cases(
            "",
            prog(seed, "seedflow/query")?,
            prog(seed, "seedflow/reply")?,
        ));
        all_cases.extend(seed_cases(
            ", no flow table",
            prog(seed, "seed/query")?,
            prog(seed, "seed/reply")?,
        ));
    }

    // warm-up: caches, branch predictors, the flow table's first allocations
    for c in &all_cases {
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
    let elapsed = t0.elapsed();

    // bpf_stats cross-check: the kernel's own accounting around the program alone
    let mut stats_ns: Vec<Option<f64>> = vec![None; n];
    let guard = StatsGuard::enable();
    if guard.on() {
        for (i, c) in all_cases.iter().enumerate() {
            // the timed programs; an untimed one that is the same program would be counted too
            let mut progs = vec![c.prog];
            progs.extend(c.then.as_ref().map(|(p, _)| *p));
            let before = progs
                .iter()
                .map(|p| prog_stats(p))
                .collect::<io::Result<Vec<_>>>()
                .map_err(|e| e.to_string())?;
            time_case(c, o.calls)?;
            let mut total = 0.0;
            for (p, b) in progs.iter().zip(&before) {
                let a = prog_stats(p).map_err(|e| e.to_string())?;
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
    drop(guard);

    let med: Vec<f64> = medians.iter_mut().map(|v| median(v)).collect();
    let avg: Vec<f64> = means.iter().map(|v| median(&mut v.clone())).collect();
    let floor_med = med[0];
    let floor_stats = stats_ns[0];
    let mut out = String::new();
    out.push_str(&format!(
        "# BPF_PROG_TEST_RUN, repeat=1, {} calls x {} rounds per case (interleaved), {:.1} s\n",
        o.calls,
        o.rounds,
        elapsed.as_secs_f64()
    ));
    out.push_str("case\tmedian_ns\tover_floor_ns\tmean_ns\tmean_over_floor_ns\tbpf_stats_ns\tbpf_stats_over_floor_ns\trounds_medians\n");
    for i in 0..n {
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
            medians[i]
                .iter()
                .map(|m| format!("{m:.0}"))
                .collect::<Vec<_>>()
                .join(",")
        ));
    }
    out.push_str(&this.sizes("")?);
    if let Some(other) = &other {
        out.push_str(&other.sizes(OTHER)?);
        // this build − the other, per round (both cases ran in the same round), then the median
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
            let ((mean_d, mean_rounds), (med_d, _)) = (diff(&means), diff(&medians));
            out.push_str(&format!(
                "# this - other: {}: median of rounds' differences: means {mean_d:+.1} ns [{mean_rounds}], medians {med_d:+.0} ns\n",
                case.name
            ));
        }
    }
    if let Some(seed) = &seed {
        // dnsredir ÷ seed C, per round (both cases ran in the same round), then the median
        let index = |name: &str| all_cases.iter().position(|c| c.name == name);
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
                let mut ratios: Vec<f64> = (0..o.rounds).map(|r| over(a, r) / over(b, r)).collect();
                let per_round = ratios
                    .iter()
                    .map(|x| format!("{x:.2}"))
                    .collect::<Vec<_>>()
                    .join(",");
                let whole = (avg[a] - all_cases[a].runs() * avg[0])
                    / (avg[b] - all_cases[b].runs() * avg[0]);
                out.push_str(&format!(
                    "# ratio {ours}{label} / {theirs} (means over floor): median of rounds {:.3} [{per_round}], of the medians {whole:.3}\n",
                    median(&mut ratios)
                ));
            }
        }
        for s in [
            "seedflow/query",
            "seedflow/reply",
            "seed/query",
            "seed/reply",
        ] {
            let st = prog_stats(prog(seed, s)?).map_err(|e| e.to_string())?;
            out.push_str(&format!(
                "# size {s} (seed C): {} insns translated, {} bytes JITed\n",
                st.xlated_len / 8,
                st.jited_len
            ));
        }
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

// ---------------------------------------------------------------- responder

fn serve_udp(sock: UdpSocket, addr: Ipv4Addr) {
    let mut buf = [0u8; 4096];
    let mut out = Vec::with_capacity(512);
    loop {
        let Ok((n, peer)) = sock.recv_from(&mut buf) else {
            continue;
        };
        if dns::write_answer(&buf[..n], &mut out, || addr).is_some() {
            let _ = sock.send_to(&out, peer);
        }
    }
}

fn serve_tcp(mut conn: TcpStream, addr: Ipv4Addr) {
    let _ = conn.set_nodelay(true);
    let mut out = Vec::with_capacity(514);
    loop {
        let mut len = [0u8; 2];
        if conn.read_exact(&mut len).is_err() {
            return;
        }
        let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
        if conn.read_exact(&mut msg).is_err() {
            return;
        }
        out.clear();
        out.extend_from_slice(&[0, 0]);
        let mut body = Vec::new();
        if dns::write_answer(&msg, &mut body, || addr).is_none() {
            continue;
        }
        out[..2].copy_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(&body);
        if conn.write_all(&out).is_err() {
            return;
        }
    }
}

fn responder(args: &[String]) -> Result<(), String> {
    let usage = "responder ADDR[:PORT] ANSWER [THREADS]";
    let (listen, ans) = match args {
        [l, a, ..] => (l, a),
        _ => return Err(usage.into()),
    };
    let listen: SocketAddr = if listen.contains(':') {
        listen.parse()
    } else {
        format!("{listen}:53").parse()
    }
    .map_err(|e| format!("{listen}: {e}"))?;
    let addr: Ipv4Addr = ans.parse().map_err(|e| format!("{ans}: {e}"))?;
    let threads: usize = args
        .get(2)
        .map_or(Ok(1), |t| t.parse())
        .map_err(|e| format!("{e}"))?;
    let udp = UdpSocket::bind(listen).map_err(|e| format!("udp {listen}: {e}"))?;
    let tcp = TcpListener::bind(listen).map_err(|e| format!("tcp {listen}: {e}"))?;
    std::thread::spawn(move || {
        for conn in tcp.incoming().flatten() {
            std::thread::spawn(move || serve_tcp(conn, addr));
        }
    });
    for _ in 1..threads {
        let s = udp.try_clone().map_err(|e| e.to_string())?;
        std::thread::spawn(move || serve_udp(s, addr));
    }
    eprintln!("responder: {listen} udp+tcp, A -> {addr}, {threads} UDP thread(s)");
    serve_udp(udp, addr);
    Ok(())
}

// ---------------------------------------------------------------- exec-time

/// Runs a command once (its stdout discarded) and prints its wall time (µs, from just before
/// fork to its reaping), its peak RSS (ru_maxrss, kB) and its exit code.
fn exec_time(args: &[String]) -> Result<(), String> {
    let (cmd, rest) = args.split_first().ok_or("exec-time CMD [ARGS...]")?;
    let t0 = Instant::now();
    let child = Command::new(cmd)
        .args(rest)
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("{cmd}: {e}"))?;
    let mut status = 0;
    // SAFETY: rusage is plain data the kernel fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; std never waits for it afterwards (Child is forgotten).
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let wall = t0.elapsed();
    std::mem::forget(child);
    if pid < 0 {
        return Err(format!("wait4: {}", io::Error::last_os_error()));
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    println!("{} {} {}", wall.as_micros(), usage.ru_maxrss, code);
    Ok(())
}
