//! CNI spec versions: which dnsredir speaks and what each allows.
//!
//! 0.3.0 is the first version with chaining (`prevResult`) and the result shape dnsredir passes
//! on; 0.1.0 and 0.2.0 results (`ip4`/`ip6`) predate chained plugins and are not supported.
//! CHECK came with 0.4.0, STATUS and GC with 1.1.0: a configuration of an older version asking
//! for them is refused with code 1, as libcni's own plugins do.

use super::error::{code, CniError};
use std::fmt;

/// What VERSION reports, oldest first.
pub const SUPPORTED: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// The newest of [`SUPPORTED`]: what dnsredir answers in when the runtime named no version it
/// speaks.
pub const NEWEST: &str = "1.1.0";

/// A spec version, as `cniVersion` writes it ("1.0.0").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    pub const CHAINING: Version = Version(0, 3, 0);
    pub const CHECK: Version = Version(0, 4, 0);
    /// 1.0.0 dropped `version` from the entries of `ips`.
    pub const NO_IP_VERSION: Version = Version(1, 0, 0);
    pub const STATUS_AND_GC: Version = Version(1, 1, 0);

    /// "X.Y.Z" with decimal numbers; anything else is `None`.
    pub fn parse(text: &str) -> Option<Version> {
        let mut parts = text.split('.').map(|p| {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                None
            } else {
                p.parse::<u32>().ok()
            }
        });
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(Some(a)), Some(Some(b)), Some(Some(c)), None) => Some(Version(a, b, c)),
            _ => None,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// The configuration's `cniVersion` (none given means 0.1.0, as libcni reads it), accepted
/// if dnsredir speaks it.
pub fn negotiate(given: Option<&str>) -> Result<Version, CniError> {
    let text = given.unwrap_or("0.1.0");
    match Version::parse(text) {
        Some(v) if SUPPORTED.contains(&v.to_string().as_str()) => Ok(v),
        _ => Err(
            CniError::new(code::INCOMPATIBLE_VERSION, "incompatible CNI versions").with_details(
                format!(
                    "config is {text:?}{}, dnsredir supports {}",
                    if given.is_none() {
                        " (no cniVersion)"
                    } else {
                        ""
                    },
                    SUPPORTED.join(", ")
                ),
            ),
        ),
    }
}

/// Refuses a command the configuration's version does not have (`since`: the version that
/// brought it).
pub fn allows(version: Version, command: &str, since: Version) -> Result<(), CniError> {
    if version >= since {
        Ok(())
    } else {
        Err(CniError::new(
            code::INCOMPATIBLE_VERSION,
            format!("config version {version} does not allow {command} (it came with CNI {since})"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_order() {
        assert_eq!(Version::parse("1.0.0"), Some(Version(1, 0, 0)));
        assert_eq!(Version::parse("0.3.1"), Some(Version(0, 3, 1)));
        for bad in [
            "", "1", "1.0", "1.0.0.0", "v1.0.0", "1.0.x", "1..0", "1.0.-1", "+1.0.0",
        ] {
            assert_eq!(Version::parse(bad), None, "{bad}");
        }
        assert!(Version(0, 4, 0) < Version(1, 0, 0));
        assert!(Version(0, 10, 0) > Version(0, 4, 0));
        for v in SUPPORTED {
            assert_eq!(Version::parse(v).map(|p| p.to_string()).as_deref(), Some(v));
        }
        assert_eq!(SUPPORTED.last(), Some(&NEWEST));
    }

    #[test]
    fn negotiation_takes_what_dnsredir_speaks() {
        assert_eq!(negotiate(Some("0.4.0")), Ok(Version(0, 4, 0)));
        assert_eq!(negotiate(Some("1.1.0")), Ok(Version(1, 1, 0)));
        for old in [
            Some("0.2.0"),
            Some("0.1.0"),
            None,
            Some("2.0.0"),
            Some("1.0"),
        ] {
            let e = negotiate(old).unwrap_err();
            assert_eq!(e.code, code::INCOMPATIBLE_VERSION, "{old:?}");
            assert!(
                e.details.contains("0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0"),
                "{e}"
            );
        }
        assert!(negotiate(None)
            .unwrap_err()
            .details
            .contains("no cniVersion"));
    }

    #[test]
    fn commands_come_with_their_versions() {
        let check = |v| allows(v, "CHECK", Version::CHECK);
        assert!(check(Version(0, 4, 0)).is_ok());
        assert!(check(Version(1, 0, 0)).is_ok());
        let e = check(Version(0, 3, 1)).unwrap_err();
        assert_eq!(e.code, 1);
        assert!(e.msg.contains("does not allow CHECK"), "{e}");
        assert!(allows(Version(1, 0, 0), "STATUS", Version::STATUS_AND_GC).is_err());
        assert!(allows(Version(1, 1, 0), "GC", Version::STATUS_AND_GC).is_ok());
    }
}
