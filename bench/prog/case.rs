//! One timed case and how it is timed (the method is in bench/prog.rs's documentation).

use crate::build::Watcher;
use crate::packet::{TC_ACT_REDIRECT, TC_ACT_UNSPEC};
use dnsredir::bpf::sys;
use std::os::fd::OwnedFd;

/// One timed case: a program and the packets it runs on (cycled), with the verdict each must
/// get. `before` and `after`, when set, run untimed on the same index around each timed call:
/// the query that makes a reply's flow known, the reply that removes a query's flow again (so
/// the flow table stays as small as in real use, one entry per query in flight). `then`, when
/// set, runs right after the timed call on the same index and is timed too (the two durations
/// add up): an answered query, its query and then its reply.
pub struct Case<'a> {
    pub name: String,
    pub prog: &'a OwnedFd,
    pub packets: Vec<Vec<u8>>,
    pub expect: u32,
    pub before: Option<(&'a OwnedFd, Vec<Vec<u8>>)>,
    pub after: Option<(&'a OwnedFd, Vec<Vec<u8>>)>,
    /// A watcher for the object: its ring buffer emptied after each call (untimed).
    pub watcher: Option<&'a Watcher>,
    pub then: Option<(&'a OwnedFd, Vec<Vec<u8>>)>,
}

impl<'a> Case<'a> {
    /// `prog` timed alone on `packets`, every call to return `expect`.
    pub fn new(
        name: impl Into<String>,
        prog: &'a OwnedFd,
        packets: Vec<Vec<u8>>,
        expect: u32,
    ) -> Self {
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
    pub fn redirected(name: impl Into<String>, prog: &'a OwnedFd, packets: Vec<Vec<u8>>) -> Self {
        Case::new(name, prog, packets, TC_ACT_REDIRECT)
    }

    /// A packet the program is to pass on untouched (TC_ACT_UNSPEC): what saying no costs.
    pub fn passed(name: impl Into<String>, prog: &'a OwnedFd, packet: Vec<u8>) -> Self {
        Case::new(name, prog, vec![packet], TC_ACT_UNSPEC)
    }

    pub fn before(self, prog: &'a OwnedFd, packets: Vec<Vec<u8>>) -> Self {
        Case {
            before: Some((prog, packets)),
            ..self
        }
    }

    pub fn after(self, prog: &'a OwnedFd, packets: Vec<Vec<u8>>) -> Self {
        Case {
            after: Some((prog, packets)),
            ..self
        }
    }

    pub fn then(self, prog: &'a OwnedFd, packets: Vec<Vec<u8>>) -> Self {
        Case {
            then: Some((prog, packets)),
            ..self
        }
    }

    /// Timed program runs per call: what to subtract of the floor program.
    pub fn runs(&self) -> f64 {
        if self.then.is_some() {
            2.0
        } else {
            1.0
        }
    }
}

/// The query or reply around a timed call, with the case's verdict: redirected (the
/// embedded-resolver path), or rewritten and passed on (the nameservers path).
pub fn untimed(case: &Case, prog: &OwnedFd, packet: &[u8]) -> Result<(), String> {
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
pub fn time_case(case: &Case, calls: usize) -> Result<(f64, f64), String> {
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

pub fn median(v: &mut [f64]) -> f64 {
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
