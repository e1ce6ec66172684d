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
//! Per-packet method: BPF_PROG_TEST_RUN with repeat = 1 on a fresh copy of the packet per call
//! (with a larger repeat the kernel runs the program again on the packet it has just
//! rewritten, which is not the packet a program meets), many calls per case, the kernel's own
//! per-call duration; a floor program (`r0 = 0; exit`) timed the same way is subtracted, since
//! the per-call overhead of BPF_PROG_TEST_RUN is most of a fast program's figure. Cases are
//! interleaved round by round and the figure is the median over rounds of each round's median
//! call.

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

// One file per tool; the per-packet tool's parts beside it.
#[path = "prog/answers.rs"]
mod answers;
#[path = "prog/build.rs"]
mod build;
#[path = "prog/case.rs"]
mod case;
#[path = "prog/exec_time.rs"]
mod exec_time;
#[path = "prog/packets.rs"]
mod packets;
#[path = "prog/per_packet.rs"]
mod per_packet;
#[path = "prog/prog_stats.rs"]
mod prog_stats;
#[path = "prog/responder.rs"]
mod responder;
#[path = "prog/seed.rs"]
mod seed;

use exec_time::exec_time;
use per_packet::per_packet;
use prog_stats::print_prog_stats;
use responder::responder;
use std::process::exit;

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
