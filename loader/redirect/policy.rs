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
    AnswerValue, RuleKey, RuleValue, AAAA_RECORD_SIZE, ANSWER_TTL, A_RECORD_SIZE,
    DECISION_ALLOW, DECISION_ANSWER, DECISION_BLOCK, DECISION_NONE, MAX_ANSWER_ADDRS, MAX_RULES,
    RULE_KEY_SIZE, RULE_OWN_DECISION, RULE_OWN_KIND,
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
    wanted.extend(given.allow.iter().map(|s| ("--allow", s.as_str(), Decision::Allow)));
    wanted.extend(given.block.iter().map(|s| ("--block", s.as_str(), Decision::Block)));
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

/// A hosts file's entries as exact rules: a name's addresses accumulate over its lines;
/// `0.0.0.0` and `::` block it (and may not meet another address for it).
fn hosts_rules(hosts: &Hosts) -> Result<Vec<Rule>, PolicyError> {
    // Per name: the first line blocking it, the first line pinning it, its addresses.
    let mut names: BTreeMap<&str, (Option<usize>, Option<usize>, Vec<IpAddr>)> = BTreeMap::new();
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
