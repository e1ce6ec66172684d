//! Name rules (`--keep SUFFIX`, `--only SUFFIX`): suffixes parsed and checked, encoded as the
//! query (or egress) program's LPM trie keys ([`RuleKey`]), written into its `RULES` map and read back.
//! Nothing here but [`fill`] and [`read`] touches the kernel.

use crate::abi::{
    RuleKey, RuleValue, MAX_RULES, NAME_BYTES, RULE_KEEP, RULE_KEY_DATA, RULE_KEY_SIZE,
    RULE_LABEL_MARK, RULE_ONLY, RULE_ONLY_UNDER_KEEP,
};
use crate::bpf::sys;
use crate::settings::RuleKinds;
use std::fmt;
use std::io;
use std::os::fd::OwnedFd;

/// A name's longest text form without the trailing dot (RFC 1035 §2.3.4: 255 wire bytes).
pub const MAX_NAME_TEXT: usize = 253;
pub const MAX_LABEL: usize = 63;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// `--keep`: names equal to or under the suffix stay with dockerd (or the nameserver asked).
    Keep,
    /// `--only`: only names equal to or under such suffixes are redirected.
    Only,
    /// An `--only` suffix equal to or under a `--keep` suffix: keep wins, so it keeps.
    OnlyUnderKeep,
}

impl Kind {
    fn raw(self) -> u32 {
        match self {
            Kind::Keep => RULE_KEEP,
            Kind::Only => RULE_ONLY,
            Kind::OnlyUnderKeep => RULE_ONLY_UNDER_KEEP,
        }
    }

    fn from_raw(raw: u32) -> Option<Kind> {
        match raw {
            RULE_KEEP => Some(Kind::Keep),
            RULE_ONLY => Some(Kind::Only),
            RULE_ONLY_UNDER_KEEP => Some(Kind::OnlyUnderKeep),
            _ => None,
        }
    }

    /// As `--status` shows it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Keep => "keep",
            Kind::Only => "only",
            Kind::OnlyUnderKeep => "only (under a keep: keeps)",
        }
    }

    /// As `--status --json` shows it.
    pub fn json_name(self) -> &'static str {
        match self {
            Kind::Keep => "keep",
            Kind::Only => "only",
            Kind::OnlyUnderKeep => "only_under_keep",
        }
    }
}

/// One rule: a suffix in lowercase text form without leading or trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rule {
    pub suffix: String,
    pub kind: Kind,
}

/// The rules of one attachment, `--keep` ones first, each suffix once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    pub rules: Vec<Rule>,
}

impl Rules {
    /// The rule set of `--keep` and `--only` suffixes (already checked with [`parse_suffix`]).
    /// A suffix given with both is a keep; an `--only` suffix under a `--keep` suffix keeps.
    pub fn new(keep: &[String], only: &[String]) -> Result<Rules, String> {
        let mut rules: Vec<Rule> = Vec::new();
        for s in keep {
            if !rules.iter().any(|r| r.suffix == *s) {
                rules.push(Rule {
                    suffix: s.clone(),
                    kind: Kind::Keep,
                });
            }
        }
        for s in only {
            if rules.iter().any(|r| r.suffix == *s) {
                continue;
            }
            let kind = if keep.iter().any(|k| is_under(s, k)) {
                Kind::OnlyUnderKeep
            } else {
                Kind::Only
            };
            rules.push(Rule {
                suffix: s.clone(),
                kind,
            });
        }
        if rules.len() > MAX_RULES as usize {
            return Err(format!(
                "{} rules given; at most {MAX_RULES} --keep and --only suffixes together",
                rules.len()
            ));
        }
        Ok(Rules { rules })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Which kinds of rules are in force: the query program looks the map up only then.
    pub fn kinds(&self) -> RuleKinds {
        RuleKinds {
            keep: self.rules.iter().any(|r| r.kind != Kind::Only),
            only: self
                .rules
                .iter()
                .any(|r| matches!(r.kind, Kind::Only | Kind::OnlyUnderKeep)),
        }
    }
}

impl Rules {
    /// What the rules say about `name` (lowercase dotted text), as the query program decides:
    /// the longest suffix it is equal to or under, or, with `--only` in force and none matching,
    /// that it is outside them. `None` without rules, or with `--keep` alone and none matching.
    pub fn decision(&self, name: &str) -> Option<String> {
        let name = name.to_ascii_lowercase();
        let best = self
            .rules
            .iter()
            .filter(|r| is_under(&name, &r.suffix))
            .max_by_key(|r| r.suffix.len());
        match best {
            Some(r) if r.kind == Kind::Only => Some(format!("only {}", r.suffix)),
            Some(r) => Some(format!("keep {}", r.suffix)),
            None if self.kinds().only => Some("outside --only".to_string()),
            None => None,
        }
    }
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

/// Writes the rules into a freshly loaded `RULES` map.
pub fn fill(map: &OwnedFd, rules: &Rules) -> Result<(), MapError> {
    for rule in &rules.rules {
        let value = RuleValue {
            kind: rule.kind.raw(),
            decision: crate::abi::DECISION_NONE,
            answer: 0,
        };
        sys::map_update(map, &key_of(&rule.suffix).to_bytes(), &value.to_bytes()).map_err(
            |source| MapError {
                action: "fill",
                source,
            },
        )?;
    }
    Ok(())
}

/// The rules in an attached `RULES` map, sorted: keep ones first, then by suffix. Entries this
/// build cannot decode are left out.
pub fn read(map: &OwnedFd) -> Result<Rules, MapError> {
    let err = |action| move |source| MapError { action, source };
    let mut rules = Vec::new();
    for next in sys::map_keys(map, RULE_KEY_SIZE) {
        let next = next.map_err(err("walk"))?;
        let mut value = [0u8; RuleValue::SIZE];
        // An entry removed between the two calls is simply not listed.
        if sys::map_lookup(map, &next, &mut value).is_ok() {
            let suffix = RuleKey::from_bytes(&next).and_then(|k| suffix_of(&k));
            let kind = RuleValue::from_bytes(&value).and_then(|v| Kind::from_raw(v.kind));
            if let (Some(suffix), Some(kind)) = (suffix, kind) {
                rules.push(Rule { suffix, kind });
            }
        }
    }
    rules.sort_by(|a, b| (a.kind, &a.suffix).cmp(&(b.kind, &b.suffix)));
    Ok(Rules { rules })
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
    }

    #[test]
    fn keep_wins_over_only() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let r = Rules::new(
            &s(&["corp.test"]),
            &s(&["corp.test", "a.corp.test", "other.test"]),
        )
        .expect("rules");
        assert_eq!(
            r.rules,
            vec![
                Rule {
                    suffix: "corp.test".into(),
                    kind: Kind::Keep
                },
                Rule {
                    suffix: "a.corp.test".into(),
                    kind: Kind::OnlyUnderKeep
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
                only: true
            }
        );
        assert_eq!(
            Rules::new(&s(&["x"]), &[]).expect("rules").kinds(),
            RuleKinds {
                keep: true,
                only: false
            }
        );
        assert!(is_under("a.corp.test", "corp.test"));
        assert!(!is_under("xcorp.test", "corp.test"));
        let many: Vec<String> = (0..=MAX_RULES).map(|i| format!("n{i}.test")).collect();
        assert!(Rules::new(&many, &[]).is_err());
    }
}
