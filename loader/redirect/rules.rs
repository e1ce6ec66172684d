//! Name rules: routing (`--keep SUFFIX`, `--only SUFFIX`) and decisions (`--allow`, `--block`,
//! `--answer NAME=ADDR`, `--hosts FILE` entries), as the user gave them ([`Rules`]); suffixes
//! parsed and checked, encoded as the programs' LPM trie keys ([`RuleKey`]). How they combine
//! and how they are stored (merged entries, answer records) is [`super::policy`]'s. Nothing here
//! but [`fill`] and [`read`] touches the kernel.

use super::policy::{Plan, Stored};
use crate::abi::{
    AnswerValue, RuleKey, RuleValue, NAME_BYTES, RULE_EXACT_MARK, RULE_KEEP, RULE_KEY_DATA,
    RULE_KEY_SIZE, RULE_LABEL_MARK, RULE_ONLY, RULE_ONLY_UNDER_KEEP,
};
use crate::bpf::sys;
use crate::settings::RuleKinds;
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::os::fd::OwnedFd;

/// A name's longest text form without the trailing dot (RFC 1035 §2.3.4: 255 wire bytes).
pub const MAX_NAME_TEXT: usize = 253;
pub const MAX_LABEL: usize = 63;

/// What one rule does to the names it covers. Routing kinds say where a name goes once it may
/// resolve; decisions say whether it resolves, and how (see the README's table).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// `--keep`: names equal to or under the suffix stay with dockerd (or the nameserver asked).
    Keep,
    /// `--only`: only names equal to or under such suffixes are redirected.
    Only,
    /// An `--only` suffix equal to or under a `--keep` suffix: keep wins, so it keeps.
    OnlyUnderKeep,
    /// `--allow`: names equal to or under the suffix may resolve (an allowlist is in force).
    Allow,
    /// `--block`: NXDOMAIN (or REFUSED) for the suffix and every name under it.
    Block,
    /// `--answer`: the suffix and every name under it answered with these addresses (IPv4
    /// ones first, each family in the order given).
    Answer(Vec<IpAddr>),
    /// A hosts line `0.0.0.0 NAME` or `:: NAME`: NAME exactly is blocked.
    HostsBlock,
    /// Hosts lines `ADDR NAME`: NAME exactly is answered with these addresses.
    HostsAnswer(Vec<IpAddr>),
}

impl Kind {
    pub(super) fn raw(&self) -> u32 {
        match self {
            Kind::Keep => RULE_KEEP,
            Kind::Only => RULE_ONLY,
            Kind::OnlyUnderKeep => RULE_ONLY_UNDER_KEEP,
            _ => 0,
        }
    }

    pub(super) fn from_raw(raw: u32) -> Option<Kind> {
        match raw {
            RULE_KEEP => Some(Kind::Keep),
            RULE_ONLY => Some(Kind::Only),
            RULE_ONLY_UNDER_KEEP => Some(Kind::OnlyUnderKeep),
            _ => None,
        }
    }

    /// `--keep` or `--only`: where a name goes.
    pub fn is_routing(&self) -> bool {
        matches!(self, Kind::Keep | Kind::Only | Kind::OnlyUnderKeep)
    }

    /// A hosts entry: its name exactly, not the names under it.
    pub fn is_exact(&self) -> bool {
        matches!(self, Kind::HostsBlock | Kind::HostsAnswer(_))
    }

    /// The addresses a pinned name is answered with (none for every other kind).
    pub fn addresses(&self) -> &[IpAddr] {
        match self {
            Kind::Answer(a) | Kind::HostsAnswer(a) => a,
            _ => &[],
        }
    }

    /// As `--status` shows it.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Keep => "keep",
            Kind::Only => "only",
            Kind::OnlyUnderKeep => "only (under a keep: keeps)",
            Kind::Allow => "allow",
            Kind::Block => "block",
            Kind::Answer(_) => "answer",
            Kind::HostsBlock => "hosts block",
            Kind::HostsAnswer(_) => "hosts",
        }
    }

    /// As `--status --json` shows it.
    pub fn json_name(&self) -> &'static str {
        match self {
            Kind::Keep => "keep",
            Kind::Only => "only",
            Kind::OnlyUnderKeep => "only_under_keep",
            Kind::Allow => "allow",
            Kind::Block => "block",
            Kind::Answer(_) => "answer",
            Kind::HostsBlock => "hosts_block",
            Kind::HostsAnswer(_) => "hosts_answer",
        }
    }
}

/// One rule: a suffix (for a hosts entry, the exact name) in lowercase text form without
/// leading or trailing dot, and what it does.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rule {
    pub suffix: String,
    pub kind: Kind,
}

/// `keep corp.example`, `answer api.test 10.5.5.5 fd00::5`, `hosts mock.test 10.0.0.7`,
/// `hosts block ads.test`: one line of `--status`.
impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind.name(), self.suffix)?;
        for addr in self.kind.addresses() {
            write!(f, " {addr}")?;
        }
        Ok(())
    }
}

/// The rules of one attachment as the user gave them, sorted by suffix (then kind): each
/// suffix has at most one routing rule and one decision, each hosts name one entry. Every
/// constructor ([`Rules::new`], [`super::policy::build`], [`Stored::rules`]) leaves them so;
/// [`Rules::decision`] relies on it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    pub rules: Vec<Rule>,
}

impl Rules {
    /// The rule set of `--keep` and `--only` suffixes alone (already checked with
    /// [`parse_suffix`]). A suffix given with both is a keep; an `--only` suffix under a
    /// `--keep` suffix keeps. [`super::policy::build`] takes decisions too.
    pub fn new(keep: &[String], only: &[String]) -> Result<Rules, String> {
        super::policy::build(&super::policy::Given {
            keep: keep.to_vec(),
            only: only.to_vec(),
            ..Default::default()
        })
        .map_err(|e| e.to_string())
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// How many rules of each kind, for one line: `2 block, 1 answer, 3 hosts, 1 keep`.
    pub fn describe(&self) -> String {
        let mut counts: Vec<(&str, usize)> = Vec::new();
        for r in &self.rules {
            let name = match r.kind {
                Kind::OnlyUnderKeep => "only",
                Kind::HostsBlock | Kind::HostsAnswer(_) => "hosts",
                ref k => k.name(),
            };
            match counts.iter_mut().find(|(n, _)| *n == name) {
                Some((_, c)) => *c += 1,
                None => counts.push((name, 1)),
            }
        }
        if counts.is_empty() {
            return "no rules".to_string();
        }
        let parts: Vec<String> = counts.iter().map(|(n, c)| format!("{c} {n}")).collect();
        parts.join(", ")
    }

    /// Which kinds of rules are in force: the programs look the map up only then (the block
    /// rcode is the request's, not the rules').
    pub fn kinds(&self) -> RuleKinds {
        let any = |f: fn(&Kind) -> bool| self.rules.iter().any(|r| f(&r.kind));
        RuleKinds {
            keep: any(|k| matches!(k, Kind::Keep | Kind::OnlyUnderKeep)),
            only: any(|k| matches!(k, Kind::Only | Kind::OnlyUnderKeep)),
            decide: any(|k| !k.is_routing()),
            allowlist: any(|k| *k == Kind::Allow),
            block_refused: false,
            key_bytes: self.key_bytes(),
        }
    }

    /// The key bytes a map needs for these rules (0 for none): the longest key, a suffix's
    /// wire bytes without the root (its text and one), a hosts name's one more for the exact
    /// mark, rounded up to a power of two from 32, so that rules changed in place usually fit
    /// the attached map. A trie node holds a whole key: 256-byte keys made a 10^5-name
    /// blocklist take ~100 MB of slab, 32- and 64-byte ones a quarter of that.
    fn key_bytes(&self) -> u16 {
        let longest = self
            .rules
            .iter()
            .map(|r| r.suffix.len() + 1 + usize::from(r.kind.is_exact()))
            .max();
        match longest {
            None => 0,
            Some(n) => n.next_power_of_two().clamp(32, RULE_KEY_DATA) as u16,
        }
    }

    /// The rules whose suffix is `suffix` (at most a routing rule, a decision and a hosts
    /// entry): a binary search, the list being sorted by suffix.
    fn at(&self, suffix: &str) -> &[Rule] {
        let from = self.rules.partition_point(|r| r.suffix.as_str() < suffix);
        let len = self.rules[from..]
            .iter()
            .take_while(|r| r.suffix == suffix)
            .count();
        &self.rules[from..from + len]
    }
}

impl Rules {
    /// What the rules say about `name` (dotted text, any case), as the programs decide, for
    /// `--watch`: the hosts entry for the very name (`hosts mock.test`), else the decision of
    /// the longest suffix it is equal to or under (`block ads.example`, `answer
    /// api.stripe.com`, `allow example.com`, followed by the routing rule where one applies),
    /// else with `--allow` in force `not allowed`, else the routing rule (`keep corp.test`,
    /// `only corp.test`, `outside --only`). `None` where no rule says anything. One lookup per
    /// label of the name.
    pub fn decision(&self, name: &str) -> Option<String> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(r) = self.at(&name).iter().find(|r| r.kind.is_exact()) {
            return Some(format!("hosts {}", r.suffix));
        }
        let (mut decision, mut routing) = (None, None);
        for suffix in suffixes_of(&name) {
            for r in self.at(suffix) {
                if r.kind.is_routing() {
                    routing = routing.or(Some(r));
                } else if !r.kind.is_exact() {
                    decision = decision.or(Some(r));
                }
            }
            if decision.is_some() && routing.is_some() {
                break;
            }
        }
        let kinds = self.kinds();
        let routing = match routing {
            Some(r) if r.kind == Kind::Only => Some(format!("only {}", r.suffix)),
            Some(r) => Some(format!("keep {}", r.suffix)),
            None if kinds.only => Some("outside --only".to_string()),
            None => None,
        };
        match decision {
            Some(d) if d.kind == Kind::Allow => Some(match routing {
                Some(routing) => format!("allow {}; {routing}", d.suffix),
                None => format!("allow {}", d.suffix),
            }),
            Some(d) => Some(format!("{} {}", d.kind.name(), d.suffix)),
            None if kinds.allowlist => Some("not allowed".to_string()),
            None => routing,
        }
    }
}

/// `name` and every suffix above it, longest first: `a.b.c`, `b.c`, `c`.
pub fn suffixes_of(name: &str) -> impl Iterator<Item = &str> {
    let mut next = Some(name);
    std::iter::from_fn(move || {
        let this = next?;
        next = this.split_once('.').map(|(_, rest)| rest);
        Some(this)
    })
}

/// `name` is equal to or under `suffix` (both checked lowercase text forms), by whole labels.
pub fn is_under(name: &str, suffix: &str) -> bool {
    name == suffix
        || name
            .strip_suffix(suffix)
            .is_some_and(|head| head.ends_with('.'))
}

/// The two parts of a SUFFIX with a length rule.
#[derive(Clone, Copy)]
enum Part {
    Name,
    Label,
}

/// A SUFFIX's length rules, in one place: the name and each of its labels are 1 to their
/// most bytes long. `text` is the SUFFIX as given, for the message.
fn check_length(text: &str, part: &str, what: Part) -> Result<(), String> {
    match (what, part.len()) {
        (Part::Name, 0) => Err(format!("{text:?} is no name (the root cannot be a suffix)")),
        (Part::Label, 0) => Err(format!("{text:?} has an empty label")),
        (Part::Name, n) if n > MAX_NAME_TEXT => Err(format!(
            "{text:?} is {n} characters long; a name has at most {MAX_NAME_TEXT}"
        )),
        (Part::Label, n) if n > MAX_LABEL => Err(format!(
            "{text:?} has a label of {n} characters; at most {MAX_LABEL}"
        )),
        _ => Ok(()),
    }
}

/// Checks a SUFFIX as given on the command line and returns its lowercase form without
/// leading or trailing dot. Accepted: labels of 1 to 63 letters, digits, `-` and `_` (Docker's
/// container names and aliases allow `_`), at most 253 characters in all. `*` is refused: it
/// is no wildcard here, since every suffix already covers all names under it.
pub fn parse_suffix(text: &str) -> Result<String, String> {
    let trimmed = text.strip_prefix('.').unwrap_or(text);
    let trimmed = trimmed.strip_suffix('.').unwrap_or(trimmed);
    check_length(text, trimmed, Part::Name)?;
    for label in trimmed.split('.') {
        check_length(text, label, Part::Label)?;
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            let hint = if c == '*' {
                " (no wildcards: a suffix already covers every name under it)"
            } else {
                ""
            };
            return Err(format!(
                "{text:?} has {c:?}; labels are letters, digits, '-' and '_'{hint}"
            ));
        }
    }
    Ok(trimmed.to_ascii_lowercase())
}

/// The LPM trie key of a checked suffix (see [`RuleKey`]): `.` before each label, reversed.
pub fn key_of(suffix: &str) -> RuleKey {
    let mut data = [0u8; RULE_KEY_DATA];
    let mut n = 0;
    for label in suffix.split('.').rev() {
        for b in label.bytes().rev() {
            data[n] = NAME_BYTES[b as usize];
            n += 1;
        }
        data[n] = RULE_LABEL_MARK;
        n += 1;
    }
    RuleKey {
        prefixlen: (n * 8) as u32,
        data,
    }
}

/// The key of a hosts entry's exact name: its suffix key followed by [`RULE_EXACT_MARK`],
/// which only a lookup of that very name (always made with the mark after it) matches.
pub fn exact_key_of(name: &str) -> RuleKey {
    let mut key = key_of(name);
    let n = key.prefixlen as usize / 8;
    key.data[n] = RULE_EXACT_MARK;
    key.prefixlen += 8;
    key
}

/// The name a key stands for, and whether it is an exact (hosts) entry's; `None` for bytes
/// neither [`key_of`] nor [`exact_key_of`] can give.
pub fn name_of(key: &RuleKey) -> Option<(String, bool)> {
    match key.name_bytes().split_last() {
        Some((&RULE_EXACT_MARK, body)) => {
            let mut suffix = *key;
            suffix.prefixlen = (body.len() * 8) as u32;
            Some((suffix_of(&suffix)?, true))
        }
        _ => Some((suffix_of(key)?, false)),
    }
}

/// The suffix a key stands for; `None` for bytes a checked suffix cannot give.
pub fn suffix_of(key: &RuleKey) -> Option<String> {
    let bytes = key.name_bytes();
    let (&last, body) = bytes.split_last()?;
    if last != RULE_LABEL_MARK {
        return None;
    }
    let text: Vec<u8> = body.iter().rev().copied().collect();
    let text = String::from_utf8(text).ok()?;
    parse_suffix(&text).ok().filter(|s| *s == text)
}

#[derive(Debug)]
pub struct MapError {
    pub action: &'static str,
    pub source: io::Error,
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot {} the rules map: {}", self.action, self.source)
    }
}

impl std::error::Error for MapError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// The two maps of an attachment's rules: the `RULES` trie and, where the programs have it,
/// the `ANSWERS` array of pinned names' records.
#[derive(Clone, Copy)]
pub struct RuleMaps<'a> {
    pub rules: &'a OwnedFd,
    pub answers: Option<&'a OwnedFd>,
}

/// Carries out `plan` (made by [`super::policy::plan`] from what the maps hold now): the
/// answers first, into slots no live key uses; then the new and changed keys; then the stale
/// keys go. On fresh maps that is simply filling them; on an attached program's maps it is a
/// rewrite in place, every lookup meanwhile finding an old or a new entry, never a hole.
pub fn fill(maps: RuleMaps, plan: &Plan) -> Result<(), MapError> {
    let err = |action| move |source| MapError { action, source };
    if !plan.answers.is_empty() {
        let answers = maps.answers.ok_or_else(|| MapError {
            action: "write answers into",
            source: io::Error::new(io::ErrorKind::NotFound, "the programs have no ANSWERS map"),
        })?;
        for (slot, value) in &plan.answers {
            sys::map_update(answers, &slot.to_ne_bytes(), &value.to_bytes())
                .map_err(err("write an answer for"))?;
        }
    }
    let size = key_size(maps.rules).map_err(err("size the keys of"))?;
    for (key, value) in &plan.update {
        sys::map_update(maps.rules, &key.to_bytes()[..size], &value.to_bytes())
            .map_err(err("fill"))?;
    }
    for key in &plan.delete {
        match sys::map_delete(maps.rules, &key.to_bytes()[..size]) {
            Err(e) if e.raw_os_error() != Some(libc::ENOENT) => return Err(err("prune")(e)),
            _ => {}
        }
    }
    Ok(())
}

/// [`fill`] for maps just created: all of `rules` written, the answers into the array's first
/// slots (for programs loaded by hand, as the tests do; the attach plans its own).
pub fn fill_new(maps: RuleMaps, rules: &Rules) -> Result<(), MapError> {
    let capacity = match maps.answers {
        Some(a) => {
            sys::map_info(a)
                .map_err(|source| MapError {
                    action: "size the answers of",
                    source,
                })?
                .max_entries
        }
        None => 0,
    };
    let plan = super::policy::plan(&Stored::default(), super::policy::encode(rules), capacity)
        .ok_or_else(|| MapError {
            action: "fit the answers of",
            source: io::Error::other(format!("{capacity} answer slots are too few")),
        })?;
    fill(maps, &plan)
}

/// The key size of a `RULES` map: [`RULE_KEY_SIZE`], or less (see [`Rules::kinds`]).
fn key_size(map: &OwnedFd) -> io::Result<usize> {
    let size = sys::map_info(map)?.key_size as usize;
    Ok(size.clamp(4, RULE_KEY_SIZE))
}

/// What an attached `RULES` map (and its `ANSWERS`) holds: the entries, and the records of
/// every answer slot they use. [`Stored::rules`] turns them back into the user's rules.
/// Entries this build cannot decode are kept as they are (a rewrite deletes them).
pub fn read(maps: RuleMaps) -> Result<Stored, MapError> {
    let err = |action| move |source| MapError { action, source };
    let mut stored = Stored::default();
    let size = key_size(maps.rules).map_err(err("size the keys of"))?;
    for next in sys::map_keys(maps.rules, size) {
        let next = next.map_err(err("walk"))?;
        let mut value = [0u8; RuleValue::SIZE];
        // An entry removed between the two calls is simply not listed.
        if sys::map_lookup(maps.rules, &next, &mut value).is_ok() {
            if let (Some(k), Some(v)) = (RuleKey::from_bytes(&next), RuleValue::from_bytes(&value))
            {
                stored.entries.push((k, v));
            }
        }
    }
    if let Some(answers) = maps.answers {
        for slot in stored.answer_slots() {
            let mut value = [0u8; AnswerValue::SIZE];
            sys::map_lookup(answers, &slot.to_ne_bytes(), &mut value)
                .map_err(err("read the answers of"))?;
            if let Some(v) = AnswerValue::from_bytes(&value) {
                stored.answers.insert(slot, v);
            }
        }
    }
    Ok(stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deciding_rule_is_the_longest_suffix_and_keep_wins() {
        let both = Rules::new(
            &["internal.test".into()],
            &["corp.test".into(), "a.internal.test".into()],
        )
        .expect("rules");
        let d = |n: &str| both.decision(n);
        assert_eq!(
            d("api.internal.test").as_deref(),
            Some("keep internal.test")
        );
        assert_eq!(
            d("x.a.internal.test").as_deref(),
            Some("keep a.internal.test")
        );
        assert_eq!(d("X.Corp.Test").as_deref(), Some("only corp.test"));
        assert_eq!(d("xcorp.test").as_deref(), Some("outside --only"));
        let keep = Rules::new(&["internal.test".into()], &[]).expect("rules");
        assert_eq!(keep.decision("example.com"), None);
        assert_eq!(Rules::default().decision("internal.test"), None);
    }

    #[test]
    fn suffixes_are_checked_and_normalised() {
        assert_eq!(parse_suffix(".Internal.TEST"), Ok("internal.test".into()));
        assert_eq!(parse_suffix("corp.example."), Ok("corp.example".into()));
        assert_eq!(parse_suffix("my_svc-1"), Ok("my_svc-1".into()));
        for bad in ["", ".", "..", "a..b", "a b", "*.corp", "é.test", "a/b"] {
            assert!(parse_suffix(bad).is_err(), "{bad:?}");
        }
        let label63 = "a".repeat(63);
        assert!(parse_suffix(&label63).is_ok());
        assert!(parse_suffix(&"a".repeat(64)).is_err());
        let long = vec!["a".repeat(63); 4].join(".");
        assert_eq!(long.len(), 255);
        assert!(parse_suffix(&long).is_err());
        assert!(parse_suffix(&long[2..]).is_ok(), "253 characters");
        assert!(parse_suffix("*").unwrap_err().contains("wildcard"));
    }

    #[test]
    fn keys_are_reversed_wire_names_with_dots() {
        let k = key_of("api.internal.test");
        assert_eq!(k.name_bytes(), b"tset.lanretni.ipa.");
        assert_eq!(k.prefixlen, 18 * 8);
        assert_eq!(suffix_of(&k), Some("api.internal.test".into()));
        // Whole labels: corp.example's key is a prefix of a.corp.example's, not xcorp's.
        let corp = key_of("corp.example");
        assert!(key_of("a.b.corp.example")
            .name_bytes()
            .starts_with(corp.name_bytes()));
        assert!(!key_of("xcorp.example")
            .name_bytes()
            .starts_with(corp.name_bytes()));
        let bytes = k.to_bytes();
        assert_eq!(RuleKey::from_bytes(&bytes), Some(k));
        // An exact (hosts) key: the same bytes and the mark, one byte longer.
        let e = exact_key_of("api.internal.test");
        assert_eq!(e.name_bytes(), b"tset.lanretni.ipa.$");
        assert_eq!(e.prefixlen, 19 * 8);
        assert_eq!(name_of(&e), Some(("api.internal.test".into(), true)));
        assert_eq!(name_of(&k), Some(("api.internal.test".into(), false)));
        assert!(e.name_bytes().starts_with(k.name_bytes()));
    }

    #[test]
    fn the_rules_map_keys_hold_the_longest_rule_in_a_power_of_two_from_32() {
        use super::super::policy::{build, Given, Hosts, HostsEntry};
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let keys = |g: Given| build(&g).expect("rules").kinds().key_bytes;
        assert_eq!(keys(Given::default()), 0, "no rules");
        assert_eq!(
            keys(Given {
                block: s(&["ads.example"]),
                ..Given::default()
            }),
            32
        );
        // 32 characters are 33 key bytes.
        let long = format!("{}.test", "a".repeat(27));
        assert_eq!(long.len(), 32);
        assert_eq!(
            keys(Given {
                keep: s(&[&long]),
                ..Given::default()
            }),
            64
        );
        // A hosts name: one more byte, the exact mark: 31 characters fit 32 only as a suffix.
        let name = format!("{}.test", "b".repeat(26));
        let hosts = |name: &str| Hosts {
            file: "h".into(),
            entries: vec![HostsEntry {
                line: 1,
                addr: "10.0.0.1".parse().expect("addr"),
                name: name.to_string(),
            }],
        };
        assert_eq!(
            keys(Given {
                block: s(&[&name]),
                ..Given::default()
            }),
            32
        );
        assert_eq!(
            keys(Given {
                hosts: Some(hosts(&name)),
                ..Given::default()
            }),
            64
        );
        let longest = vec!["c".repeat(63); 4].join(".")[2..].to_string();
        assert_eq!(
            keys(Given {
                hosts: Some(hosts(&longest)),
                ..Given::default()
            }),
            256
        );
    }

    #[test]
    fn keep_wins_over_only() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let r = Rules::new(
            &s(&["corp.test"]),
            &s(&["corp.test", "a.corp.test", "other.test"]),
        )
        .expect("rules");
        // Sorted by suffix: the order --status lists them in.
        assert_eq!(
            r.rules,
            vec![
                Rule {
                    suffix: "a.corp.test".into(),
                    kind: Kind::OnlyUnderKeep
                },
                Rule {
                    suffix: "corp.test".into(),
                    kind: Kind::Keep
                },
                Rule {
                    suffix: "other.test".into(),
                    kind: Kind::Only
                },
            ]
        );
        assert_eq!(
            r.kinds(),
            RuleKinds {
                keep: true,
                only: true,
                key_bytes: 32,
                ..RuleKinds::default()
            }
        );
        assert_eq!(
            Rules::new(&s(&["x"]), &[]).expect("rules").kinds(),
            RuleKinds {
                keep: true,
                key_bytes: 32,
                ..RuleKinds::default()
            }
        );
        assert!(is_under("a.corp.test", "corp.test"));
        assert!(!is_under("xcorp.test", "corp.test"));
        let many: Vec<String> = (0..=crate::abi::MAX_RULES)
            .map(|i| format!("n{i}.test"))
            .collect();
        assert!(Rules::new(&many, &[]).is_err());
    }
}
