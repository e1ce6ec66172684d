//! dnsredir's own programs in the benchmark: an object loaded with the configurations the
//! cases need, and the cases run on it.

use crate::case::Case;
use crate::packet::{
    dns_answer, dns_query, load_with, test_config, Packet, CLIENT, CLIENT_PORT, CONTAINER,
    DOCKERD_UDP, RESOLVER, TC_ACT_UNSPEC, UPSTREAM,
};
use crate::packets::{
    arp_packet, edns_query_packet, https_packet, lo_answer_packet, query_packet, reply_packet, IDS,
    QUERY_NAME, UPSTREAM_PORT,
};
use dnsredir::abi::raw::{addr_raw, port_raw};
use dnsredir::abi::{
    Config, ConfigHeader, WatchControl, CONFIG_MAGIC, CONFIG_SYMBOL, EGRESS_SECTION, EVENTS_MAP,
    FLAG_ANY_RESOLVER, FLAG_NO_COUNTERS, LAYOUT_VERSION, PATH_NAMESERVERS, QUERY_SECTION,
    REPLY_SECTION, RULES_MAP, WATCH_MAP,
};
use dnsredir::bpf::elf::ObjectFile;
use dnsredir::bpf::load::{self, Loaded};
use dnsredir::bpf::ringbuf::RingBuf;
use dnsredir::bpf::sys;
use dnsredir::redirect::rules::{self, Rules};
use std::cell::{Cell, RefCell};
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;

/// `--watch`'s part in the benchmark: holds the flag and empties the ring buffer.
pub struct Watcher {
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

    pub fn after_call(&self) -> Result<(), String> {
        self.ring.borrow_mut().consume(|_| ());
        self.calls.set(self.calls.get() + 1);
        if self.calls.get() % 1024 == 0 {
            self.refresh()?;
        }
        Ok(())
    }
}

pub fn cases<'a>(
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

/// The nameserver the nameservers path takes over in [`egress_cases`].
pub const NAMESERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 53);
/// A server no configuration names, which `--resolver any` takes.
pub const ANY_SERVER: Ipv4Addr = Ipv4Addr::new(1, 1, 1, 1);

/// A query from the container to `server`:53 on eth0 egress.
pub fn egress_query(id: u16, server: Ipv4Addr) -> Vec<u8> {
    named_egress_query(id, server, QUERY_NAME)
}

/// A query for `name` from the container to `server`:53 on eth0 egress.
pub fn named_egress_query(id: u16, server: Ipv4Addr, name: &str) -> Vec<u8> {
    Packet::udp((CONTAINER, CLIENT_PORT), (server, 53), dns_query(id, name)).bytes()
}

/// The nameservers path (`label`): a query to `server` on eth0 egress, its answer on eth0
/// ingress; both continue with TC_ACT_UNSPEC.
pub fn egress_cases<'a>(
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

/// Suffixes like Docker aliases and split-DNS zones, none of which www.example.com is under.
pub fn rule_names(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("svc{i}.zone{}.internal.test", i % 16))
        .collect()
}

pub fn load_with_rules(keep: &[String], only: &[String]) -> Result<Loaded, String> {
    let rules = Rules::new(keep, only)?;
    let config = test_config(UPSTREAM_PORT, rules.kinds().flags());
    let (object, loaded) = load_with(&config)?;
    let map = loaded
        .map(&object, RULES_MAP)
        .ok_or("no rules map".to_string())?;
    let maps = rules::RuleMaps {
        rules: map,
        answers: loaded.map(&object, dnsredir::abi::ANSWERS_MAP),
    };
    rules::fill_new(maps, &rules).map_err(|e| e.to_string())?;
    Ok(loaded)
}

pub fn prog<'a>(l: &'a Loaded, s: &str) -> Result<&'a OwnedFd, String> {
    Ok(&l.program(s).ok_or(format!("no program {s}"))?.fd)
}

/// A program of `l` and its reply program.
pub fn pair<'a>(l: &'a Loaded, s: &str) -> Result<(&'a OwnedFd, &'a OwnedFd), String> {
    Ok((prog(l, s)?, prog(l, REPLY_SECTION)?))
}

/// The nameservers path of [`egress_cases`]: [`NAMESERVER`] taken over on eth0's egress.
pub fn nameservers_config() -> Config {
    let mut config = test_config(UPSTREAM_PORT, 0);
    config.path = PATH_NAMESERVERS;
    config.nameservers[0] = addr_raw(NAMESERVER);
    config.nameserver_ports[0] = port_raw(53);
    config.nameserver_count = 1;
    config
}

/// `--resolver any` of [`egress_cases`]: every server on port 53 taken over on eth0's egress.
pub fn any_resolver_config() -> Config {
    let mut config = test_config(UPSTREAM_PORT, FLAG_ANY_RESOLVER);
    config.path = PATH_NAMESERVERS;
    config
}

/// One dnsredir object (this build's, or another build's with `--other-object`) loaded with
/// the benchmark's configurations: with and without counters, a watcher's, the nameservers
/// path's.
pub struct Build {
    with: Loaded,
    without: Loaded,
    watched: Loaded,
    /// `None` for an object without the event maps.
    watcher: Option<Watcher>,
    nameservers: Loaded,
    /// `None` for an object without `--resolver any`.
    any_resolver: Option<Loaded>,
    /// Its configuration's layout ([`LAYOUT_VERSION`], or [`SAME_CONFIG_LAYOUTS`]' older one).
    pub layout: u32,
}

impl Build {
    pub fn load(bytes: &[u8]) -> Result<Build, String> {
        let load = |config: &Config| load_object(bytes, config);
        let layout = object_layout(bytes)?;
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
            layout,
        })
    }

    /// Its cases (all but the name rules'), each name after `prefix`.
    pub fn cases(&self, prefix: &str) -> Result<Vec<Case<'_>>, String> {
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
    pub fn sizes(&self, label: &str) -> Result<String, String> {
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
            out.push_str(&size_line(l, s, &format!("{label}{config}"))?);
        }
        Ok(out)
    }
}

/// Older layouts whose [`Config`] has this build's bytes (only other maps' layouts changed):
/// another build of one of them runs the cases that need no more than [`Config`] (its own
/// cases; not the rules' nor the decisions', whose map values changed). Layout 9 gave
/// `RuleValue` its decisions and `Counters` four counters; `Config` stayed as it was.
pub const SAME_CONFIG_LAYOUTS: [u32; 2] = [8, 9];

/// The configuration layout of a dnsredir object.
pub fn object_layout(bytes: &[u8]) -> Result<u32, String> {
    let object = ObjectFile::parse(bytes).map_err(|e| format!("parse: {e}"))?;
    match object
        .global(CONFIG_SYMBOL)
        .and_then(ConfigHeader::from_bytes)
    {
        Some(h) if h.magic == CONFIG_MAGIC => Ok(h.layout),
        _ => Err("no dnsredir configuration header".into()),
    }
}

/// A dnsredir object (this build's, or another build's of this layout or one of
/// [`SAME_CONFIG_LAYOUTS`]) with this configuration, its layout number written as the
/// object's, loaded into the kernel.
pub fn load_object(bytes: &[u8], config: &Config) -> Result<(ObjectFile, Loaded), String> {
    let layout = object_layout(bytes)?;
    if layout != LAYOUT_VERSION && !SAME_CONFIG_LAYOUTS.contains(&layout) {
        return Err(format!(
            "configuration layout {layout} (this build's is {LAYOUT_VERSION}; it reads {SAME_CONFIG_LAYOUTS:?} too)"
        ));
    }
    let mut object = ObjectFile::parse(bytes).map_err(|e| format!("parse: {e}"))?;
    let config = Config { layout, ..*config };
    object
        .set_global(CONFIG_SYMBOL, &config.to_bytes())
        .map_err(|e| format!("config: {e}"))?;
    let loaded =
        load::load(&object, &load::Options::sched_cls()).map_err(|e| format!("load: {e}"))?;
    Ok((object, loaded))
}

/// A "# size" line: the translated and JITed sizes of `l`'s program in `section`.
pub fn size_line(l: &Loaded, section: &str, what: &str) -> Result<String, String> {
    let st = sys::prog_stats(prog(l, section)?).map_err(|e| e.to_string())?;
    Ok(format!(
        "# size {section} ({what}): {} insns translated, {} bytes JITed\n",
        st.xlated_len / 8,
        st.jited_len
    ))
}
