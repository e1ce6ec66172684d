//! Test-only knobs for the failure and race tests that run the real binary: `DNSREDIR_FAULT`
//! makes chosen calls of a kernel funnel fail, `DNSREDIR_PAUSE` stops at a named step for a
//! while. They exist only in a build with `--features fault-injection` (which `scripts/test`
//! uses): a root tool must not change what it does because of its environment, so without the
//! feature [`call`] is `Ok(())`, [`pause`] does nothing and neither variable is read.
//!
//! `DNSREDIR_FAULT=FUNNEL:N[-[M]][,...]` fails the Nth call (counted from 1) of that funnel with
//! EIO, or calls N to M, or every call from N on (`bpf:7-`). Funnels: `bpf` (every bpf(2) call,
//! [`crate::bpf::sys`]), `netlink` (every rtnetlink request, [`crate::net::netlink::Netlink`]),
//! `conntrack` (every ctnetlink question, [`crate::net::conntrack`]). With `--verbose`, the last
//! line says how many calls of each funnel the run made (the tests find the Nth call from it;
//! counting is part of the feature too, so a shipped binary's funnels cost nothing).
//!
//! `DNSREDIR_PAUSE=STEP:MS` sleeps MS milliseconds at step STEP (`attach`: inside the namespace,
//! programs loaded, before the first filter goes in).

#[cfg(feature = "fault-injection")]
pub use knobs::{call, calls, init, parse, pause, summary, Rule};
#[cfg(not(feature = "fault-injection"))]
pub use shipped::{call, init, pause, summary};

pub const FAULT_ENV: &str = "DNSREDIR_FAULT";
pub const PAUSE_ENV: &str = "DNSREDIR_PAUSE";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Funnel {
    Bpf = 0,
    Netlink = 1,
    Conntrack = 2,
}

/// The build users get: the same calls as the test build's, with nothing behind them.
#[cfg(not(feature = "fault-injection"))]
mod shipped {
    use super::Funnel;
    use std::io;

    /// Reads nothing: there are no knobs.
    pub fn init() -> Result<(), String> {
        Ok(())
    }

    /// Never fails; inlined, so a funnel's first line compiles to nothing.
    #[inline(always)]
    pub fn call(_funnel: Funnel) -> io::Result<()> {
        Ok(())
    }

    #[inline(always)]
    pub fn pause(_step: &str) {}

    /// Nothing was counted.
    pub fn summary() -> Option<String> {
        None
    }
}

/// The test build's knobs, read from the environment once.
#[cfg(feature = "fault-injection")]
mod knobs {
    use super::{Funnel, FAULT_ENV, PAUSE_ENV};
    use std::io;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::OnceLock;
    use std::time::Duration;

    const FUNNELS: [(&str, Funnel); 3] = [
        ("bpf", Funnel::Bpf),
        ("netlink", Funnel::Netlink),
        ("conntrack", Funnel::Conntrack),
    ];

    /// Calls `first..=last` of `funnel` fail.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Rule {
        pub funnel: Funnel,
        pub first: u32,
        pub last: u32,
    }

    static CALLS: [AtomicU32; 3] = [AtomicU32::new(0), AtomicU32::new(0), AtomicU32::new(0)];
    static RULES: OnceLock<Vec<Rule>> = OnceLock::new();

    /// Parses `DNSREDIR_FAULT`'s value.
    pub fn parse(spec: &str) -> Result<Vec<Rule>, String> {
        let bad = |part: &str| {
            format!("bad {FAULT_ENV} entry {part:?} (want e.g. bpf:7, netlink:3-5, netlink:4-)")
        };
        let mut rules = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, range) = part.split_once(':').ok_or_else(|| bad(part))?;
            let funnel = FUNNELS
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, f)| *f)
                .ok_or_else(|| bad(part))?;
            let number = |s: &str| s.parse::<u32>().ok().filter(|n| *n > 0);
            let (first, last) = match range.split_once('-') {
                None => {
                    let n = number(range).ok_or_else(|| bad(part))?;
                    (n, n)
                }
                Some((a, "")) => (number(a).ok_or_else(|| bad(part))?, u32::MAX),
                Some((a, b)) => (
                    number(a).ok_or_else(|| bad(part))?,
                    number(b).ok_or_else(|| bad(part))?,
                ),
            };
            if last < first {
                return Err(bad(part));
            }
            rules.push(Rule {
                funnel,
                first,
                last,
            });
        }
        Ok(rules)
    }

    fn rules() -> &'static [Rule] {
        RULES.get_or_init(|| {
            std::env::var(FAULT_ENV)
                .ok()
                .and_then(|s| parse(&s).ok())
                .unwrap_or_default()
        })
    }

    /// Reads the knobs now; a malformed `DNSREDIR_FAULT` is an error (main reports it).
    pub fn init() -> Result<(), String> {
        if let Ok(spec) = std::env::var(FAULT_ENV) {
            let parsed = parse(&spec)?;
            let _ = RULES.set(parsed);
        }
        rules();
        Ok(())
    }

    /// Counts one call of `funnel`: `Err(EIO)` when `DNSREDIR_FAULT` says this call fails.
    /// The funnels call this first and return the error as if the kernel had.
    pub fn call(funnel: Funnel) -> io::Result<()> {
        let n = CALLS[funnel as usize].fetch_add(1, Ordering::Relaxed) + 1;
        let rules = rules();
        if !rules.is_empty()
            && rules
                .iter()
                .any(|r| r.funnel == funnel && (r.first..=r.last).contains(&n))
        {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        Ok(())
    }

    /// How many calls of `funnel` this process has made.
    pub fn calls(funnel: Funnel) -> u32 {
        CALLS[funnel as usize].load(Ordering::Relaxed)
    }

    /// The --verbose line with the calls each funnel made.
    pub fn summary() -> Option<String> {
        Some(format!(
            "calls made: bpf {}, netlink {}, conntrack {}",
            calls(Funnel::Bpf),
            calls(Funnel::Netlink),
            calls(Funnel::Conntrack)
        ))
    }

    /// Sleeps at `step` when `DNSREDIR_PAUSE=step:MS` says so.
    pub fn pause(step: &str) {
        static PAUSE: OnceLock<Option<(String, u64)>> = OnceLock::new();
        let pause = PAUSE.get_or_init(|| {
            let spec = std::env::var(PAUSE_ENV).ok()?;
            let (name, ms) = spec.split_once(':')?;
            Some((name.to_string(), ms.parse().ok()?))
        });
        if let Some((name, ms)) = pause {
            if name == step {
                std::thread::sleep(Duration::from_millis(*ms));
            }
        }
    }
}

#[cfg(all(test, feature = "fault-injection"))]
mod tests {
    use super::*;

    #[test]
    fn parses_single_ranges_and_open_ends() {
        assert_eq!(
            parse("bpf:7, netlink:3-5,conntrack:2-").unwrap(),
            vec![
                Rule {
                    funnel: Funnel::Bpf,
                    first: 7,
                    last: 7
                },
                Rule {
                    funnel: Funnel::Netlink,
                    first: 3,
                    last: 5
                },
                Rule {
                    funnel: Funnel::Conntrack,
                    first: 2,
                    last: u32::MAX
                },
            ]
        );
        assert_eq!(parse("").unwrap(), vec![]);
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        for bad in ["bpf", "bpf:0", "tc:1", "bpf:x", "netlink:5-3", "bpf:-2"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
