//! Decisions (`--block`, `--allow`, `--answer`, `--hosts`) with the routing rules (`--keep`,
//! `--only`): checked and combined into one [`Rules`] ([`build`]), hosts files parsed
//! ([`parse_hosts`]), and stored as the programs read them ([`encode`], [`plan`]): one LPM
//! trie whose longest match for a name is its whole answer, and an array of answer records
//! built exactly as they go on the wire. Pure: [`super::rules::fill`] and
//! [`super::rules::read`] do the kernel's part.
//!
//! How rules combine (README, "Answers from the kernel"):
//! 1. a decision (allow, block, answer, a hosts entry) beats a routing rule (keep, only): a
//!    routing rule only says where a name goes once it is allowed or undecided;
//! 2. between decisions the longest match wins, a hosts entry (its very name) beating every
//!    suffix; two different decisions for one suffix (or one hosts name) are refused;
//! 3. with `--allow` in force, a name no decision covers is refused (the programs' part);
//! 4. routing: the longest routing suffix, `--keep` winning over `--only` as before.
//!
//! Every key's value is merged: `kind` is the routing kind of the longest routing suffix equal
//! to or above the key's name, `decision`/`answer` the key's own decision, else that of the
//! longest decision suffix above it (hosts entries never cover other names). `own` says which
//! of the two are the key's own rule's, so that the rules can be read back exactly.

use super::rules::{exact_key_of, key_of, name_of, suffixes_of, Kind, Rule, Rules};
use crate::abi::{
    AnswerValue, RuleKey, RuleValue, AAAA_RECORD_SIZE, ANSWER_TTL, A_RECORD_SIZE, DECISION_ALLOW,
    DECISION_ANSWER, DECISION_BLOCK, DECISION_NONE, MAX_ANSWER_ADDRS, MAX_RULES, RULE_KEY_SIZE,
    RULE_OWN_DECISION, RULE_OWN_KIND,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The largest hosts file read: a blocklist of a million names is ~30 MB.
pub const MAX_HOSTS_FILE: u64 = 64 << 20;

/// What the user gave, each suffix already checked with [`super::rules::parse_suffix`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Given {
    pub keep: Vec<String>,
    pub only: Vec<String>,
    pub allow: Vec<String>,
    pub block: Vec<String>,
    /// `--answer NAME=ADDR`, in the order given.
    pub answer: Vec<(String, IpAddr)>,
    /// The entries of a `--hosts` file.
    pub hosts: Option<Hosts>,
}

/// A hosts file's entries, one per name of each line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hosts {
    /// The file as given, for messages.
    pub file: String,
    pub entries: Vec<HostsEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostsEntry {
    /// 1-based.
    pub line: usize,
    pub addr: IpAddr,
    pub name: String,
}

/// Why a rule set is refused: one line for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// Two different decisions for one suffix: (`--block`, `--allow`, ...) as given.
    Conflict {
        suffix: String,
        first: &'static str,
        second: &'static str,
    },
    /// More addresses of one family than an answer holds, for `name` (`--answer`, or the
    /// hosts file's line that adds one too many).
    TooManyAddresses {
        name: String,
        family: &'static str,
        at: String,
    },
    /// A hosts name both blocked and pinned.
    HostsConflict {
        name: String,
        file: String,
        blocked: usize,
        pinned: usize,
    },
    /// More keys than the map holds.
    TooManyRules { count: usize },
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::Conflict { suffix, first, second } if first == second => write!(f, "{first} {suffix}: given twice with different meanings"),
            PolicyError::Conflict { suffix, first, second } => write!(
                f,
                "{first} {suffix} and {second} {suffix}: two decisions for one suffix; give one"
            ),
            PolicyError::TooManyAddresses { name, family, at } => write!(
                f,
                "{at}: more than {MAX_ANSWER_ADDRS} {family} addresses for {name}; at most {MAX_ANSWER_ADDRS} of each family per name"
            ),
            PolicyError::HostsConflict { name, file, blocked, pinned } => write!(
                f,
                "{file}:{}: {name} is blocked on line {blocked} (0.0.0.0 or ::) and pinned to an address on line {pinned}; give one",
                blocked.max(pinned)
            ),
            PolicyError::TooManyRules { count } => write!(
                f,
                "{count} rules (one per distinct suffix of --keep, --only, --allow, --block, --answer and per hosts name); the rules map holds at most {MAX_RULES}"
            ),
        }
    }
}

impl std::error::Error for PolicyError {}

/// A decision on one suffix while the rule set is built, with the option that gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Decision {
    Allow,
    Block,
    Answer(Vec<IpAddr>),
}

/// Adds `addr` to a pinned name's addresses (once), refusing a ninth of its family.
fn add_address(
    addrs: &mut Vec<IpAddr>,
    addr: IpAddr,
    name: &str,
    at: impl FnOnce() -> String,
) -> Result<(), PolicyError> {
    if addrs.contains(&addr) {
        return Ok(());
    }
    let family = |a: &IpAddr| a.is_ipv4();
    if addrs.iter().filter(|a| family(a) == family(&addr)).count() >= MAX_ANSWER_ADDRS {
        return Err(PolicyError::TooManyAddresses {
            name: name.to_string(),
            family: if addr.is_ipv4() { "IPv4" } else { "IPv6" },
            at: at(),
        });
    }
    addrs.push(addr);
    Ok(())
}

/// IPv4 addresses first, each family in the order given: how answers hold them.
fn by_family(mut addrs: Vec<IpAddr>) -> Vec<IpAddr> {
    addrs.sort_by_key(|a| a.is_ipv6());
    addrs
}

/// Checks and combines what was given into one rule set (see the module's rules). A suffix
/// given to both `--keep` and `--only` is a keep; an `--only` suffix under a `--keep` suffix
/// keeps. Several `--answer` for one name, and several hosts lines for one name, accumulate.
pub fn build(given: &Given) -> Result<Rules, PolicyError> {
    let mut rules: Vec<Rule> = Vec::new();
    let keep: BTreeSet<&str> = given.keep.iter().map(String::as_str).collect();
    for s in &keep {
        rules.push(Rule {
            suffix: s.to_string(),
            kind: Kind::Keep,
        });
    }
    let only: BTreeSet<&str> = given.only.iter().map(String::as_str).collect();
    for s in only.iter().filter(|s| !keep.contains(*s)) {
        let under_keep = suffixes_of(s).any(|above| keep.contains(above));
        rules.push(Rule {
            suffix: s.to_string(),
            kind: if under_keep {
                Kind::OnlyUnderKeep
            } else {
                Kind::Only
            },
        });
    }
    // Suffix decisions: one per suffix, with the option that gave it first.
    let mut wanted: Vec<(&'static str, &str, Decision)> = Vec::new();
    wanted.extend(
        given
            .allow
            .iter()
            .map(|s| ("--allow", s.as_str(), Decision::Allow)),
    );
    wanted.extend(
        given
            .block
            .iter()
            .map(|s| ("--block", s.as_str(), Decision::Block)),
    );
    let mut answers: BTreeMap<&str, Vec<IpAddr>> = BTreeMap::new();
    for (name, addr) in &given.answer {
        let addrs = answers.entry(name.as_str()).or_default();
        add_address(addrs, *addr, name, || format!("--answer {name}={addr}"))?;
    }
    wanted.extend(
        answers
            .into_iter()
            .map(|(name, addrs)| ("--answer", name, Decision::Answer(by_family(addrs)))),
    );
    let mut decisions: BTreeMap<&str, (Decision, &'static str)> = BTreeMap::new();
    for (flag, suffix, d) in wanted {
        match decisions.get(suffix) {
            Some((before, first)) if *before != d => {
                return Err(PolicyError::Conflict {
                    suffix: suffix.to_string(),
                    first,
                    second: flag,
                })
            }
            Some(_) => {}
            None => {
                decisions.insert(suffix, (d, flag));
            }
        }
    }
    for (suffix, (d, _)) in decisions {
        rules.push(Rule {
            suffix: suffix.to_string(),
            kind: match d {
                Decision::Allow => Kind::Allow,
                Decision::Block => Kind::Block,
                Decision::Answer(a) => Kind::Answer(a),
            },
        });
    }
    if let Some(hosts) = &given.hosts {
        rules.extend(hosts_rules(hosts)?);
    }
    let keys: BTreeSet<(&str, bool)> = rules
        .iter()
        .map(|r| (r.suffix.as_str(), r.kind.is_exact()))
        .collect();
    if keys.len() > MAX_RULES as usize {
        return Err(PolicyError::TooManyRules { count: keys.len() });
    }
    rules.sort();
    Ok(Rules { rules })
}

/// Per hosts name: the first line blocking it, the first line pinning it, its addresses.
type HostsName = (Option<usize>, Option<usize>, Vec<IpAddr>);

/// A hosts file's entries as exact rules: a name's addresses accumulate over its lines;
/// `0.0.0.0` and `::` block it (and may not meet another address for it).
fn hosts_rules(hosts: &Hosts) -> Result<Vec<Rule>, PolicyError> {
    let mut names: BTreeMap<&str, HostsName> = BTreeMap::new();
    for e in &hosts.entries {
        let (blocked, pinned, addrs) = names.entry(e.name.as_str()).or_default();
        if e.addr.is_unspecified() {
            blocked.get_or_insert(e.line);
        } else {
            pinned.get_or_insert(e.line);
            add_address(addrs, e.addr, &e.name, || {
                format!("{}:{}", hosts.file, e.line)
            })?;
        }
        if let (Some(b), Some(p)) = (*blocked, *pinned) {
            return Err(PolicyError::HostsConflict {
                name: e.name.clone(),
                file: hosts.file.clone(),
                blocked: b,
                pinned: p,
            });
        }
    }
    Ok(names
        .into_iter()
        .map(|(name, (_, _, addrs))| Rule {
            suffix: name.to_string(),
            kind: if addrs.is_empty() {
                Kind::HostsBlock
            } else {
                Kind::HostsAnswer(by_family(addrs))
            },
        })
        .collect())
}

/// A bad hosts line: where, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostsError {
    pub file: String,
    /// 1-based; 0 for the file as a whole.
    pub line: usize,
    pub what: String,
}

impl fmt::Display for HostsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            0 => write!(f, "--hosts {}: {}", self.file, self.what),
            n => write!(f, "--hosts {}:{n}: {}", self.file, self.what),
        }
    }
}

impl std::error::Error for HostsError {}

/// Parses `/etc/hosts` syntax: `#` starts a comment (anywhere on a line), blank lines are
/// skipped, every other line is `ADDR NAME [NAME...]` separated by spaces or tabs. An IPv6
/// address may carry a zone (`fe80::1%lo0`, as in public blocklists' headers): DNS has no
/// zones, so it is dropped. Each NAME is checked as a SUFFIX is (whole labels of letters,
/// digits, `-`, `_`; any case; at most 253 characters).
pub fn parse_hosts(file: &str, text: &[u8]) -> Result<Hosts, HostsError> {
    let mut entries = Vec::new();
    for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
        let line = i + 1;
        let bad = |what: String| HostsError {
            file: file.to_string(),
            line,
            what,
        };
        let raw = std::str::from_utf8(raw).map_err(|_| bad("not UTF-8 text".into()))?;
        let content = raw.split('#').next().unwrap_or("");
        let mut words = content.split_ascii_whitespace();
        let Some(addr_text) = words.next() else {
            continue;
        };
        let addr = parse_hosts_addr(addr_text).ok_or_else(|| {
            bad(format!(
                "{addr_text:?} is not an IPv4 or IPv6 address (a line is ADDR NAME [NAME...])"
            ))
        })?;
        let mut any = false;
        for name in words {
            let name = super::rules::parse_suffix(name).map_err(|e| bad(e.to_string()))?;
            entries.push(HostsEntry { line, addr, name });
            any = true;
        }
        if !any {
            return Err(bad(format!("{addr_text} and no name after it")));
        }
    }
    Ok(Hosts {
        file: file.to_string(),
        entries,
    })
}

fn parse_hosts_addr(text: &str) -> Option<IpAddr> {
    if let Ok(a) = text.parse::<IpAddr>() {
        return Some(a);
    }
    let (addr, zone) = text.split_once('%')?;
    (!zone.is_empty())
        .then(|| addr.parse::<Ipv6Addr>().ok())
        .flatten()
        .map(IpAddr::V6)
}

/// The records of a pinned name as the programs put them after the question, with their sums.
pub fn answer_value(addrs: &[IpAddr]) -> AnswerValue {
    let mut value = AnswerValue {
        a_count: 0,
        aaaa_count: 0,
        a_sum: 0,
        aaaa_sum: 0,
        pad0: 0,
        a: [0; A_RECORD_SIZE * MAX_ANSWER_ADDRS],
        aaaa: [0; AAAA_RECORD_SIZE * MAX_ANSWER_ADDRS],
    };
    let ttl = ANSWER_TTL.to_be_bytes();
    for addr in addrs {
        match addr {
            IpAddr::V4(a) if (value.a_count as usize) < MAX_ANSWER_ADDRS => {
                let at = value.a_count as usize * A_RECORD_SIZE;
                let record = &mut value.a[at..at + A_RECORD_SIZE];
                record[..6].copy_from_slice(&[0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01]);
                record[6..10].copy_from_slice(&ttl);
                record[10..12].copy_from_slice(&[0x00, 0x04]);
                record[12..].copy_from_slice(&a.octets());
                value.a_sum += word_sum(record);
                value.a_count += 1;
            }
            IpAddr::V6(a) if (value.aaaa_count as usize) < MAX_ANSWER_ADDRS => {
                let at = value.aaaa_count as usize * AAAA_RECORD_SIZE;
                let record = &mut value.aaaa[at..at + AAAA_RECORD_SIZE];
                record[..6].copy_from_slice(&[0xc0, 0x0c, 0x00, 0x1c, 0x00, 0x01]);
                record[6..10].copy_from_slice(&ttl);
                record[10..12].copy_from_slice(&[0x00, 0x10]);
                record[12..].copy_from_slice(&a.octets());
                value.aaaa_sum += word_sum(record);
                value.aaaa_count += 1;
            }
            _ => {}
        }
    }
    value
}

/// The plain (unfolded) sum of the big-endian 16-bit words of an even-length record.
fn word_sum(bytes: &[u8]) -> u32 {
    bytes
        .chunks_exact(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum()
}

/// The addresses of an answer's records, IPv4 first (what [`answer_value`] was given, in
/// its order).
pub fn answer_addresses(value: &AnswerValue) -> Vec<IpAddr> {
    let a = value
        .a
        .chunks_exact(A_RECORD_SIZE)
        .take((value.a_count as usize).min(MAX_ANSWER_ADDRS))
        .filter_map(|r| <[u8; 4]>::try_from(&r[12..16]).ok())
        .map(|b| IpAddr::V4(Ipv4Addr::from(b)));
    let aaaa = value
        .aaaa
        .chunks_exact(AAAA_RECORD_SIZE)
        .take((value.aaaa_count as usize).min(MAX_ANSWER_ADDRS))
        .filter_map(|r| <[u8; 16]>::try_from(&r[12..28]).ok())
        .map(|b| IpAddr::V6(Ipv6Addr::from(b)));
    a.chain(aaaa).collect()
}

/// The rules as the maps hold them: every key with its merged value (`answer` an index into
/// `answers`), and the distinct answers (identical records are stored once).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Encoded {
    pub entries: Vec<(RuleKey, RuleValue)>,
    pub answers: Vec<AnswerValue>,
}

/// What one suffix has of its own while encoding.
#[derive(Default)]
struct Own {
    routing: Option<u32>,
    /// (DECISION_*, index into the answers).
    decision: Option<(u32, u32)>,
}

/// The maps' contents for `rules` (see the module's comment for the merge).
pub fn encode(rules: &Rules) -> Encoded {
    let mut answers: Vec<AnswerValue> = Vec::new();
    let mut index: HashMap<[u8; AnswerValue::SIZE], u32> = HashMap::new();
    let mut answer_of = |addrs: &[IpAddr]| {
        let value = answer_value(addrs);
        *index.entry(value.to_bytes()).or_insert_with(|| {
            answers.push(value);
            (answers.len() - 1) as u32
        })
    };
    let mut suffixes: BTreeMap<&str, Own> = BTreeMap::new();
    let mut exact: BTreeMap<&str, (u32, u32)> = BTreeMap::new();
    for r in &rules.rules {
        let decision = match &r.kind {
            Kind::Allow => (DECISION_ALLOW, 0),
            Kind::Block | Kind::HostsBlock => (DECISION_BLOCK, 0),
            Kind::Answer(a) | Kind::HostsAnswer(a) => (DECISION_ANSWER, answer_of(a)),
            routing => {
                suffixes.entry(&r.suffix).or_default().routing = Some(routing.raw());
                continue;
            }
        };
        if r.kind.is_exact() {
            exact.insert(&r.suffix, decision);
        } else {
            suffixes.entry(&r.suffix).or_default().decision = Some(decision);
        }
    }
    // The routing kind covering `name` (itself included), and the decision of the longest
    // suffix strictly above it.
    let routing = |name: &str| {
        suffixes_of(name)
            .find_map(|s| suffixes.get(s).and_then(|o| o.routing))
            .unwrap_or(0)
    };
    let inherited = |name: &str| {
        suffixes_of(name)
            .skip(1)
            .find_map(|s| suffixes.get(s).and_then(|o| o.decision))
            .unwrap_or((DECISION_NONE, 0))
    };
    let mut entries = Vec::with_capacity(suffixes.len() + exact.len());
    for (&suffix, own) in &suffixes {
        let (decision, answer) = own.decision.unwrap_or_else(|| inherited(suffix));
        let mut own_bits = 0;
        if own.routing.is_some() {
            own_bits |= RULE_OWN_KIND;
        }
        if own.decision.is_some() {
            own_bits |= RULE_OWN_DECISION;
        }
        entries.push((
            key_of(suffix),
            RuleValue {
                kind: routing(suffix),
                decision,
                answer,
                own: own_bits,
            },
        ));
    }
    for (&name, &(decision, answer)) in &exact {
        entries.push((
            exact_key_of(name),
            RuleValue {
                kind: routing(name),
                decision,
                answer,
                own: RULE_OWN_DECISION,
            },
        ));
    }
    Encoded { entries, answers }
}

/// What an attached `RULES` map and its `ANSWERS` hold ([`super::rules::read`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    pub entries: Vec<(RuleKey, RuleValue)>,
    /// The records of each answer slot an entry uses.
    pub answers: BTreeMap<u32, AnswerValue>,
}

impl Stored {
    /// The answer slots the entries use.
    pub fn answer_slots(&self) -> BTreeSet<u32> {
        self.entries
            .iter()
            .filter(|(_, v)| v.decision == DECISION_ANSWER)
            .map(|(_, v)| v.answer)
            .collect()
    }

    /// The user's rules back from the entries' own words (entries no rule of this build
    /// explains are left out).
    pub fn rules(&self) -> Rules {
        let mut rules = Vec::new();
        for (key, value) in &self.entries {
            let Some((name, exact)) = name_of(key) else {
                continue;
            };
            let addrs = || {
                self.answers
                    .get(&value.answer)
                    .map(answer_addresses)
                    .unwrap_or_default()
            };
            let decision = match value.decision {
                DECISION_ALLOW if !exact => Some(Kind::Allow),
                DECISION_BLOCK if exact => Some(Kind::HostsBlock),
                DECISION_BLOCK => Some(Kind::Block),
                DECISION_ANSWER if exact => Some(Kind::HostsAnswer(addrs())),
                DECISION_ANSWER => Some(Kind::Answer(addrs())),
                _ => None,
            };
            if exact || value.own & RULE_OWN_DECISION != 0 {
                if let Some(kind) = decision {
                    rules.push(Rule {
                        suffix: name.clone(),
                        kind,
                    });
                }
            }
            if !exact && value.own & RULE_OWN_KIND != 0 {
                if let Some(kind) = Kind::from_raw(value.kind) {
                    rules.push(Rule { suffix: name, kind });
                }
            }
        }
        rules.sort();
        Rules { rules }
    }
}

/// The map writes that turn what is stored into what `rules` encode to, in [`super::rules::fill`]'s
/// order: answers into slots, keys updated, keys deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// (slot, records): only slots no stored key uses; an answer already stored whole in a
    /// slot stays there, unwritten.
    pub answers: Vec<(u32, AnswerValue)>,
    /// New keys and keys whose value changes.
    pub update: Vec<(RuleKey, RuleValue)>,
    /// Stored keys the rules no longer have.
    pub delete: Vec<RuleKey>,
}

/// The array's size for `answers` distinct answers: twice as many (at least 1), so that
/// any later rule set with no more distinct answers can be written in place beside the live
/// ones (368 bytes each).
pub fn answers_capacity(answers: usize) -> u32 {
    (2 * answers).clamp(1, 2 * MAX_RULES as usize) as u32
}

/// The writes from `now` to `wanted` ([`encode`]) with an answer array of `capacity` slots;
/// `None` when the new answers do not fit beside the slots live keys use (then the programs
/// are loaded anew).
pub fn plan(now: &Stored, wanted: Encoded, capacity: u32) -> Option<Plan> {
    let live = now.answer_slots();
    let mut taken: BTreeSet<u32> = live.clone();
    let mut free = (0..capacity).filter(|s| !live.contains(s));
    let mut slots = Vec::with_capacity(wanted.answers.len());
    let mut answers = Vec::new();
    for value in &wanted.answers {
        let kept = now
            .answers
            .iter()
            .find(|(slot, v)| *v == value && live.contains(slot))
            .map(|(slot, _)| *slot);
        let slot = match kept {
            Some(slot) => slot,
            None => {
                let slot = free.by_ref().find(|s| !taken.contains(s))?;
                answers.push((slot, *value));
                slot
            }
        };
        taken.insert(slot);
        slots.push(slot);
    }
    let stored: HashMap<[u8; RULE_KEY_SIZE], &RuleValue> =
        now.entries.iter().map(|(k, v)| (k.to_bytes(), v)).collect();
    let mut update = Vec::new();
    let mut keys = BTreeSet::new();
    for (key, mut value) in wanted.entries {
        if value.decision == DECISION_ANSWER {
            value.answer = slots[value.answer as usize];
        }
        let bytes = key.to_bytes();
        if stored.get(&bytes) != Some(&&value) {
            update.push((key, value));
        }
        keys.insert(bytes);
    }
    let delete = now
        .entries
        .iter()
        .filter(|(k, _)| !keys.contains(&k.to_bytes()))
        .map(|(k, _)| *k)
        .collect();
    Some(Plan {
        answers,
        update,
        delete,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{RULE_EXACT_MARK, RULE_KEEP, RULE_ONLY, RULE_ONLY_UNDER_KEEP};

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    /// What the program finds for `name`: the longest entry whose key is a prefix of the
    /// name's key followed by the exact mark (the LPM trie's answer), or none.
    fn lookup(e: &Encoded, name: &str) -> Option<RuleValue> {
        let mut bytes = key_of(name).name_bytes().to_vec();
        bytes.push(RULE_EXACT_MARK);
        e.entries
            .iter()
            .filter(|(k, _)| bytes.starts_with(k.name_bytes()))
            .max_by_key(|(k, _)| k.prefixlen)
            .map(|(_, v)| *v)
    }

    /// (kind, decision) of `name` under `given`.
    fn decided(given: &Given, name: &str) -> (u32, u32) {
        let e = encode(&build(given).expect("rules"));
        lookup(&e, name).map_or((0, DECISION_NONE), |v| (v.kind, v.decision))
    }

    fn hosts(lines: &str) -> Option<Hosts> {
        Some(parse_hosts("h", lines.as_bytes()).expect("hosts"))
    }

    #[test]
    fn a_decision_beats_a_routing_rule_whichever_is_longer() {
        // keep/only against allow/block/answer/hosts, both ways round: the decision stands,
        // the routing kind rides along for the names the decision lets through.
        for (routing, raw) in [("keep", RULE_KEEP), ("only", RULE_ONLY)] {
            let with = |outer: &str, inner: &str, decision: &str| {
                let mut g = Given::default();
                let r = if routing == "keep" {
                    &mut g.keep
                } else {
                    &mut g.only
                };
                r.push(outer.into());
                match decision {
                    "allow" => g.allow.push(inner.into()),
                    "block" => g.block.push(inner.into()),
                    "answer" => g.answer.push((inner.into(), ip("10.0.0.5"))),
                    _ => g.hosts = hosts(&format!("0.0.0.0 {inner}\n")),
                }
                g
            };
            for (decision, d) in [
                ("allow", DECISION_ALLOW),
                ("block", DECISION_BLOCK),
                ("answer", DECISION_ANSWER),
                ("hosts", DECISION_BLOCK),
            ] {
                // The routing suffix above the decision.
                let g = with("corp.test", "a.corp.test", decision);
                assert_eq!(
                    decided(&g, "a.corp.test"),
                    (raw, d),
                    "{routing} > {decision}"
                );
                assert_eq!(decided(&g, "b.corp.test"), (raw, DECISION_NONE));
                // The decision above the routing suffix (hosts: exact, so the same name).
                let inner = if decision == "hosts" {
                    "corp.test"
                } else {
                    "a.corp.test"
                };
                let g = with(inner, "corp.test", decision);
                assert_eq!(decided(&g, inner), (raw, d), "{decision} > {routing}");
                // Same suffix for both.
                let g = with("corp.test", "corp.test", decision);
                assert_eq!(decided(&g, "corp.test"), (raw, d), "{decision} = {routing}");
            }
        }
    }

    #[test]
    fn between_decisions_the_longest_wins_and_one_suffix_takes_one() {
        let kinds = ["allow", "block", "answer"];
        let give = |g: &mut Given, kind: &str, suffix: &str| match kind {
            "allow" => g.allow.push(suffix.into()),
            "block" => g.block.push(suffix.into()),
            _ => g.answer.push((suffix.into(), ip("10.0.0.5"))),
        };
        let raw = |kind: &str| match kind {
            "allow" => DECISION_ALLOW,
            "block" => DECISION_BLOCK,
            _ => DECISION_ANSWER,
        };
        for outer in kinds {
            for inner in kinds {
                let mut g = Given::default();
                give(&mut g, outer, "example.com");
                give(&mut g, inner, "api.example.com");
                let d = |n| decided(&g, n).1;
                assert_eq!(d("x.api.example.com"), raw(inner), "{outer} > {inner}");
                assert_eq!(d("api.example.com"), raw(inner));
                assert_eq!(d("www.example.com"), raw(outer));
                assert_eq!(d("example.org"), DECISION_NONE);
                let mut same = Given::default();
                give(&mut same, outer, "example.com");
                give(&mut same, inner, "example.com");
                match build(&same) {
                    Ok(_) => assert_eq!(outer, inner, "the same decision twice is one"),
                    Err(e) => {
                        assert_ne!(outer, inner);
                        let text = e.to_string();
                        assert!(text.contains(&format!("--{outer} example.com")), "{text}");
                        assert!(text.contains("two decisions for one suffix"), "{text}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_hosts_entry_beats_every_suffix_for_its_name_only() {
        for (flag, d) in [
            ("allow", DECISION_ALLOW),
            ("block", DECISION_BLOCK),
            ("answer", DECISION_ANSWER),
        ] {
            for line in ["10.1.1.1 mock.test", "0.0.0.0 mock.test"] {
                let mut g = Given {
                    hosts: hosts(line),
                    ..Given::default()
                };
                match flag {
                    "allow" => g.allow.push("test".into()),
                    "block" => g.block.push("mock.test".into()),
                    _ => g.answer.push(("test".into(), ip("10.9.9.9"))),
                }
                let hosts_d = if line.starts_with("0.0.0.0") {
                    DECISION_BLOCK
                } else {
                    DECISION_ANSWER
                };
                assert_eq!(decided(&g, "mock.test").1, hosts_d, "{flag} / {line}");
                assert_eq!(
                    decided(&g, "a.mock.test").1,
                    d,
                    "{flag} / {line}: not under it"
                );
                assert_eq!(decided(&g, "MOCK.test").1, hosts_d, "any case");
            }
        }
        // Only a hosts file: names under a hosts name are undecided.
        let g = Given {
            hosts: hosts("0.0.0.0 ads.test"),
            ..Given::default()
        };
        assert_eq!(decided(&g, "x.ads.test").1, DECISION_NONE);
    }

    #[test]
    fn keep_wins_over_only_and_routing_is_inherited_by_decision_keys() {
        let g = Given {
            keep: s(&["corp.test"]),
            only: s(&["a.corp.test", "test"]),
            block: s(&["b.a.corp.test"]),
            allow: s(&["x.test"]),
            ..Given::default()
        };
        assert_eq!(decided(&g, "q.a.corp.test").0, RULE_ONLY_UNDER_KEEP);
        assert_eq!(
            decided(&g, "b.a.corp.test"),
            (RULE_ONLY_UNDER_KEEP, DECISION_BLOCK)
        );
        assert_eq!(decided(&g, "y.x.test"), (RULE_ONLY, DECISION_ALLOW));
        assert_eq!(decided(&g, "corp.test"), (RULE_KEEP, DECISION_NONE));
        // A routing key under an allow inherits the allow.
        let g = Given {
            allow: s(&["example.com"]),
            keep: s(&["in.example.com"]),
            ..Given::default()
        };
        assert_eq!(decided(&g, "a.in.example.com"), (RULE_KEEP, DECISION_ALLOW));
    }

    #[test]
    fn rules_read_back_as_given_even_where_one_repeats_another() {
        let g = Given {
            keep: s(&["corp.test", "a.corp.test"]),
            only: s(&["o.test"]),
            block: s(&["ads.test", "x.ads.test"]),
            allow: s(&["corp.test"]),
            answer: vec![
                ("api.test".into(), ip("fd00::5")),
                ("api.test".into(), ip("10.5.5.5")),
                ("api.test".into(), ip("10.5.5.5")),
                ("b.api.test".into(), ip("10.5.5.5")),
            ],
            hosts: hosts("10.1.1.1 mock.test api.test\n::2 mock.test\n:: gone.test\n"),
        };
        let rules = build(&g).expect("rules");
        let e = encode(&rules);
        // api.test=10.5.5.5,fd00::5 / b.api.test=10.5.5.5 / mock.test / api.test (hosts).
        assert_eq!(e.answers.len(), 4);
        let plan = plan(&Stored::default(), e, 8).expect("fits");
        let stored = Stored {
            entries: plan.update.clone(),
            answers: plan.answers.iter().copied().collect(),
        };
        assert_eq!(stored.rules(), rules);
        let text: Vec<String> = rules.rules.iter().map(|r| r.to_string()).collect();
        assert!(
            text.contains(&"answer api.test 10.5.5.5 fd00::5".to_string()),
            "{text:?}"
        );
        assert!(
            text.contains(&"hosts mock.test 10.1.1.1 ::2".to_string()),
            "{text:?}"
        );
        assert!(
            text.contains(&"hosts block gone.test".to_string()),
            "{text:?}"
        );
        assert!(text.contains(&"keep a.corp.test".to_string()), "{text:?}");
        assert!(text.contains(&"block x.ads.test".to_string()), "{text:?}");
    }

    #[test]
    fn the_watcher_names_the_rule_that_decided() {
        let g = Given {
            keep: s(&["corp.example.com"]),
            allow: s(&["example.com"]),
            block: s(&["ads.example"]),
            answer: vec![("api.stripe.com".into(), ip("10.5.5.5"))],
            hosts: hosts("10.0.0.7 mock.test"),
            ..Given::default()
        };
        let r = build(&g).expect("rules");
        let d = |n: &str| r.decision(n);
        assert_eq!(d("x.ads.example").as_deref(), Some("block ads.example"));
        assert_eq!(
            d("API.stripe.com.").as_deref(),
            Some("answer api.stripe.com")
        );
        assert_eq!(d("mock.test").as_deref(), Some("hosts mock.test"));
        assert_eq!(d("www.example.com").as_deref(), Some("allow example.com"));
        assert_eq!(
            d("a.corp.example.com").as_deref(),
            Some("allow example.com; keep corp.example.com")
        );
        assert_eq!(d("a.mock.test").as_deref(), Some("not allowed"));
        assert_eq!(d("other.org").as_deref(), Some("not allowed"));
        let no_allow = build(&Given {
            block: s(&["ads.example"]),
            only: s(&["corp.test"]),
            ..Given::default()
        })
        .expect("rules");
        assert_eq!(
            no_allow.decision("x.org").as_deref(),
            Some("outside --only")
        );
        assert_eq!(
            no_allow.decision("a.corp.test").as_deref(),
            Some("only corp.test")
        );
    }

    #[test]
    fn hosts_files_are_read_as_etc_hosts() {
        let text = "# a blocklist\n\n127.0.0.1\tlocalhost localhost.localdomain # comment\n0.0.0.0 ads.test\n:: tracker.test\nfe80::1%lo0 localhost\n  10.0.0.7   Mock.Test.  api.mock.test\n";
        let h = parse_hosts("mocks.hosts", text.as_bytes()).expect("hosts");
        let got: Vec<(usize, String, String)> = h
            .entries
            .iter()
            .map(|e| (e.line, e.addr.to_string(), e.name.clone()))
            .collect();
        let want = [
            (3, "127.0.0.1", "localhost"),
            (3, "127.0.0.1", "localhost.localdomain"),
            (4, "0.0.0.0", "ads.test"),
            (5, "::", "tracker.test"),
            (6, "fe80::1", "localhost"),
            (7, "10.0.0.7", "mock.test"),
            (7, "10.0.0.7", "api.mock.test"),
        ];
        let want: Vec<(usize, String, String)> = want
            .iter()
            .map(|(l, a, n)| (*l, a.to_string(), n.to_string()))
            .collect();
        assert_eq!(got, want);
        let rules = build(&Given {
            hosts: Some(h),
            ..Given::default()
        })
        .expect("rules");
        let kind = |n: &str| {
            rules
                .rules
                .iter()
                .find(|r| r.suffix == n)
                .map(|r| r.kind.clone())
        };
        assert_eq!(kind("ads.test"), Some(Kind::HostsBlock));
        assert_eq!(kind("tracker.test"), Some(Kind::HostsBlock));
        assert_eq!(
            kind("localhost"),
            Some(Kind::HostsAnswer(vec![ip("127.0.0.1"), ip("fe80::1")]))
        );
        for (bad, line, says) in [
            (
                "10.0.0.1 ok.test\n10.0.0.300 x.test\n",
                2,
                "\"10.0.0.300\" is not an IPv4 or IPv6 address",
            ),
            ("\n\n10.0.0.1\n", 3, "10.0.0.1 and no name after it"),
            ("10.0.0.1 a..b\n", 1, "empty label"),
            ("10.0.0.1 *.ads.test\n", 1, "no wildcards"),
            ("ads.test 0.0.0.0\n", 1, "\"ads.test\" is not an IPv4"),
            ("10.0.0.1 ok\n\u{ff}\n", 2, "not UTF-8"),
        ] {
            let bytes: Vec<u8> = if bad.contains('\u{ff}') {
                b"10.0.0.1 ok\n\xff\n".to_vec()
            } else {
                bad.as_bytes().to_vec()
            };
            let e = parse_hosts("h.hosts", &bytes).expect_err(bad);
            assert_eq!(e.line, line, "{bad:?}");
            let text = e.to_string();
            assert!(
                text.starts_with(&format!("--hosts h.hosts:{line}: ")),
                "{text}"
            );
            assert!(text.contains(says), "{text}");
            assert!(!text.contains('\n'), "{text}");
        }
        // Blocked and pinned: refused with both lines.
        let e = build(&Given {
            hosts: hosts("0.0.0.0 a.test\n\n10.0.0.1 a.test\n"),
            ..Given::default()
        })
        .expect_err("conflict")
        .to_string();
        assert!(e.starts_with("h:3: a.test is blocked on line 1"), "{e}");
    }

    #[test]
    fn addresses_are_limited_per_family_and_rules_in_all() {
        let mut g = Given::default();
        for i in 0..MAX_ANSWER_ADDRS {
            g.answer.push((
                "a.test".into(),
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, i as u8)),
            ));
            g.answer.push(("a.test".into(), ip(&format!("fd00::{i}"))));
        }
        assert!(build(&g).is_ok(), "8 of each");
        g.answer.push(("a.test".into(), ip("10.0.0.99")));
        let e = build(&g).expect_err("9").to_string();
        assert!(e.contains("more than 8 IPv4 addresses for a.test"), "{e}");
        assert!(e.starts_with("--answer a.test=10.0.0.99"), "{e}");
        let lines: String = (0..=MAX_ANSWER_ADDRS)
            .map(|i| format!("fd00::{i} six.test\n"))
            .collect();
        let e = build(&Given {
            hosts: hosts(&lines),
            ..Given::default()
        })
        .expect_err("9")
        .to_string();
        assert!(
            e.starts_with("h:9: more than 8 IPv6 addresses for six.test"),
            "{e}"
        );
        // The map's limit counts keys: a hosts name beside the same suffix is a key of its own.
        let many: Vec<String> = (0..MAX_RULES).map(|i| format!("n{i}.test")).collect();
        let at_limit = Given {
            block: many.clone(),
            ..Given::default()
        };
        assert_eq!(
            build(&at_limit).expect("at the limit").rules.len(),
            MAX_RULES as usize
        );
        let over = Given {
            block: many,
            hosts: hosts("0.0.0.0 n0.test"),
            ..Given::default()
        };
        let e = build(&over).expect_err("over").to_string();
        assert!(
            e.contains("131073 rules") && e.contains("at most 131072"),
            "{e}"
        );
    }

    /// The records and sums computed from scratch, the way a test of the program would.
    #[test]
    fn answer_records_are_the_wire_bytes_with_their_sums() {
        let addrs = [ip("10.5.5.5"), ip("fd00::5"), ip("192.0.2.255")];
        let v = answer_value(&addrs);
        assert_eq!((v.a_count, v.aaaa_count), (2, 1));
        let mut a = vec![0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 10, 0, 4, 10, 5, 5, 5];
        a.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 10, 0, 4, 192, 0, 2, 255]);
        assert_eq!(&v.a[..32], &a[..]);
        assert!(v.a[32..].iter().all(|&b| b == 0));
        let mut aaaa = vec![0xc0, 0x0c, 0, 0x1c, 0, 1, 0, 0, 0, 10, 0, 16];
        aaaa.extend_from_slice(&"fd00::5".parse::<Ipv6Addr>().unwrap().octets());
        assert_eq!(&v.aaaa[..28], &aaaa[..]);
        assert!(v.aaaa[28..].iter().all(|&b| b == 0));
        let sum = |bytes: &[u8]| -> u32 {
            let mut total = 0u32;
            let mut i = 0;
            while i + 1 < bytes.len() {
                total += (bytes[i] as u32) << 8 | bytes[i + 1] as u32;
                i += 2;
            }
            total
        };
        assert_eq!(v.a_sum, sum(&a));
        assert_eq!(v.aaaa_sum, sum(&aaaa));
        // Little-endian hosts store the counts in host order, the records as they are.
        let bytes = v.to_bytes();
        assert_eq!(&bytes[0..2], &2u16.to_ne_bytes());
        assert_eq!(&bytes[16..32], &a[..16]);
        assert_eq!(AnswerValue::from_bytes(&bytes), Some(v));
        assert_eq!(answer_addresses(&v), vec![addrs[0], addrs[2], addrs[1]]);
        assert_eq!(ANSWER_TTL, 10);
    }

    #[test]
    fn a_rewrite_in_place_writes_answers_to_free_slots_before_keys_point_at_them() {
        let first = build(&Given {
            block: s(&["ads.test", "old.test"]),
            answer: vec![
                ("api.test".into(), ip("10.0.0.1")),
                ("db.test".into(), ip("10.0.0.2")),
            ],
            ..Given::default()
        })
        .expect("rules");
        let capacity = answers_capacity(2);
        assert_eq!(capacity, 4);
        let fresh = plan(&Stored::default(), encode(&first), capacity).expect("fits");
        assert!(fresh.delete.is_empty());
        let stored = Stored {
            entries: fresh.update.clone(),
            answers: fresh.answers.iter().copied().collect(),
        };
        // api.test keeps its answer, db.test gets a new one, old.test goes, new.test comes.
        let second = build(&Given {
            block: s(&["ads.test", "new.test"]),
            answer: vec![
                ("api.test".into(), ip("10.0.0.1")),
                ("db.test".into(), ip("10.0.0.3")),
            ],
            ..Given::default()
        })
        .expect("rules");
        let p = plan(&stored, encode(&second), capacity).expect("fits");
        let live = stored.answer_slots();
        assert_eq!(p.answers.len(), 1, "only the changed answer is written");
        assert!(
            !live.contains(&p.answers[0].0),
            "into a slot no live key uses"
        );
        let names: Vec<String> = p
            .update
            .iter()
            .filter_map(|(k, _)| name_of(k).map(|(n, _)| n))
            .collect();
        assert_eq!(
            names,
            ["db.test", "new.test"],
            "unchanged keys are not rewritten"
        );
        let gone: Vec<String> = p
            .delete
            .iter()
            .filter_map(|k| name_of(k).map(|(n, _)| n))
            .collect();
        assert_eq!(gone, ["old.test"]);
        let after = Stored {
            entries: stored
                .entries
                .iter()
                .filter(|(k, _)| !p.delete.contains(k))
                .map(|(k, v)| {
                    (
                        *k,
                        *p.update.iter().find(|(u, _)| u == k).map_or(v, |(_, n)| n),
                    )
                })
                .chain(
                    p.update
                        .iter()
                        .filter(|(k, _)| !stored.entries.iter().any(|(s, _)| s == k))
                        .copied(),
                )
                .collect(),
            answers: stored
                .answers
                .iter()
                .map(|(k, v)| (*k, *v))
                .chain(p.answers.iter().copied())
                .collect(),
        };
        assert_eq!(after.rules(), second);
        // Three new answers beside two live ones do not fit in four slots.
        let third = build(&Given {
            answer: ["a", "b", "c"]
                .iter()
                .map(|n| (format!("{n}.test"), ip("10.0.0.9")))
                .chain([
                    ("d.test".to_string(), ip("10.0.0.8")),
                    ("e.test".into(), ip("10.0.0.7")),
                ])
                .collect(),
            ..Given::default()
        })
        .expect("rules");
        assert!(plan(&stored, encode(&third), capacity).is_none());
        assert_eq!(answers_capacity(0), 1);
    }
}
