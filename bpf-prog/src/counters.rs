//! What happened to each packet, counted per CPU.

use crate::config::config;
use crate::kernel::{self, MapDef, TC_ACT_UNSPEC};
use crate::rules::Rule;
use core::ffi::c_void;
use dnsredir_abi::{Counters, FLAG_NO_COUNTERS, ROUTE_BLOCKED, ROUTE_PINNED};

#[no_mangle]
#[link_section = "maps"]
pub static COUNTERS: MapDef = MapDef {
    map_type: kernel::BPF_MAP_TYPE_PERCPU_ARRAY,
    key_size: 4,
    value_size: Counters::SIZE as u32,
    max_entries: 1,
    map_flags: 0,
};

pub enum Outcome {
    Passed,
    /// Kept for dockerd: a single-label name (`Rule::Default`: no rule decided it), or a name
    /// the rules keep. One variant with its rule always set: LLVM packed a payload-less
    /// variant's undefined rule byte in a register the verifier refused.
    Kept(Rule),
    RedirectedUdp {
        clamped: bool,
        rule: Rule,
    },
    RedirectedTcp {
        syn: bool,
    },
    Restored,
    UnknownFlow,
    Fragmented,
    Failed,
    /// Answered by the program (UDP): the `ROUTE_` of its decision.
    Answered(u8),
    /// A TCP connection reset by the program.
    Reset,
    /// An answer's later pass through lo (see answer.rs): counted once, when it was made.
    Delivered,
    /// A flow dropped from a full table for a new one (counted besides the query's outcome).
    Evicted,
}

/// A packet a program leaves alone: on to the next filter.
pub const PASS: (Outcome, i32) = (Outcome::Passed, TC_ACT_UNSPEC);

#[inline(always)]
pub fn count(outcome: &Outcome) {
    if config!(flags) & FLAG_NO_COUNTERS != 0 {
        return;
    }
    let key: u32 = 0;
    let counters =
        unsafe { kernel::map_lookup_elem(&COUNTERS, &key as *const u32 as *const c_void) }
            as *mut Counters;
    if counters.is_null() {
        return;
    }
    // Per-CPU value, programs do not migrate mid-run: a plain add is race-free.
    let c = unsafe { &mut *counters };
    match outcome {
        Outcome::Passed => c.passed += 1,
        Outcome::Kept(rule) => {
            c.queries_kept_for_dockerd += 1;
            count_rule(c, rule);
        }
        Outcome::RedirectedUdp { clamped, rule } => {
            c.queries_redirected_udp += 1;
            if *clamped {
                c.edns_clamped += 1;
            }
            count_rule(c, rule);
        }
        Outcome::RedirectedTcp { syn } => {
            c.tcp_segments_redirected += 1;
            if *syn {
                c.queries_redirected_tcp += 1;
            }
        }
        Outcome::Restored => c.replies_restored += 1,
        Outcome::UnknownFlow => c.replies_unknown_flow += 1,
        Outcome::Fragmented => c.replies_fragmented += 1,
        Outcome::Failed => c.failures += 1,
        Outcome::Answered(ROUTE_BLOCKED) => c.answered_blocked += 1,
        Outcome::Answered(ROUTE_PINNED) => c.answered_pinned += 1,
        Outcome::Answered(_) => c.answered_disallowed += 1,
        Outcome::Reset => c.tcp_reset += 1,
        Outcome::Delivered => {}
        Outcome::Evicted => c.flows_evicted += 1,
    }
}

#[inline(always)]
fn count_rule(c: &mut Counters, rule: &Rule) {
    match rule {
        Rule::Default => {}
        Rule::Keep => c.rule_kept += 1,
        Rule::OutsideOnly => c.rule_outside_only += 1,
        Rule::Only => c.rule_only_redirected += 1,
        Rule::Unparsed => c.rule_unparsed += 1,
    }
}
