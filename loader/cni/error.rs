//! CNI error objects: what a runtime reads on stdout when the plugin exits non-zero, and shows
//! its user (libcni joins `msg` and `details` with "; ").

use crate::error::Error;
use serde_json::{json, Value};
use std::fmt;

/// The spec's well-known codes (1–99 are reserved to them) and dnsredir's own (100+).
pub mod code {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const UNSUPPORTED_FIELD: u32 = 2;
    pub const INVALID_ENVIRONMENT: u32 = 4;
    pub const IO_FAILURE: u32 = 5;
    pub const DECODING_FAILURE: u32 = 6;
    pub const INVALID_CONFIG: u32 = 7;
    /// STATUS (1.1): the plugin cannot service ADD requests.
    pub const NOT_AVAILABLE: u32 = 50;
    /// ADD: the attach was refused or failed; nothing of it is left in the namespace.
    pub const ATTACH_FAILED: u32 = 100;
    /// DEL: dnsredir's filters could not be removed from a namespace that exists.
    pub const DETACH_FAILED: u32 = 101;
    /// CHECK: dnsredir's filters are not (all) in the namespace.
    pub const NOT_ATTACHED: u32 = 102;
    /// CHECK: attached, but not as the configuration says.
    pub const ATTACHED_OTHERWISE: u32 = 103;
    /// CHECK: attached by another dnsredir build, whose configuration this one does not judge.
    pub const OTHER_BUILD: u32 = 104;
    /// CHECK: what is attached could not be read.
    pub const INSPECT_FAILED: u32 = 105;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>) -> CniError {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> CniError {
        self.details = details.into();
        self
    }

    pub fn invalid_config(msg: impl Into<String>) -> CniError {
        CniError::new(code::INVALID_CONFIG, msg)
    }

    /// A failure of the library under a CNI command: its message as `msg`; what to do and the
    /// verifier's log, if any, as `details`, in the words of a CNI configuration.
    pub fn from_error(code: u32, e: &Error) -> CniError {
        let advice = e.advice().map(|a| in_config_words(&a));
        let details = [advice.as_deref(), e.details()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("\n");
        CniError::new(code, in_config_words(&e.to_string())).with_details(details)
    }

    /// The error object, in the protocol version in use.
    pub fn to_json(&self, cni_version: &str) -> Value {
        json!({
            "cniVersion": cni_version,
            "code": self.code,
            "msg": self.msg,
            "details": self.details,
        })
    }
}

impl fmt::Display for CniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (CNI error {})", self.msg, self.code)?;
        if !self.details.is_empty() {
            write!(f, "; {}", self.details)?;
        }
        Ok(())
    }
}

/// The library's messages and advice name command-line flags; a CNI user writes configuration
/// keys. One table, so that a flag the library starts to mention is one line here.
const FLAG_TO_KEY: [(&str, &str); 6] = [
    (
        "pass --no-probe to attach anyway",
        "set \"probe\": false to attach anyway",
    ),
    ("--no-probe", "\"probe\": false"),
    ("--upstream", "\"upstream\""),
    ("--resolver IP[:PORT]", "\"resolvers\": [\"IP[:PORT]\"]"),
    ("--resolver", "\"resolvers\""),
    ("--interface", "\"interface\""),
];

fn in_config_words(text: &str) -> String {
    FLAG_TO_KEY
        .iter()
        .fold(text.to_string(), |t, (flag, key)| t.replace(flag, key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::NoAnswer;

    #[test]
    fn the_error_object_has_the_four_keys_of_the_spec() {
        let e = CniError::invalid_config("bad \"upstream\": x").with_details("more");
        let v = e.to_json("0.4.0");
        assert_eq!(
            v,
            json!({"cniVersion": "0.4.0", "code": 7, "msg": "bad \"upstream\": x", "details": "more"})
        );
        assert_eq!(v.as_object().map(|o| o.len()), Some(4));
        assert_eq!(
            CniError::new(code::ATTACH_FAILED, "m").to_json("1.0.0")["details"],
            ""
        );
    }

    #[test]
    fn library_errors_speak_of_configuration_keys() {
        let e = Error::Upstream("10.0.0.2 is the container's own address".into());
        let c = CniError::from_error(code::ATTACH_FAILED, &e);
        assert_eq!(c.code, 100);
        assert_eq!(
            c.msg,
            "bad \"upstream\": 10.0.0.2 is the container's own address"
        );
        let probe = Error::Probe(NoAnswer {
            upstream: "10.0.0.53:53".parse().unwrap(),
            timeout: std::time::Duration::from_secs(1),
            cause: None,
        });
        let c = CniError::from_error(code::ATTACH_FAILED, &probe);
        assert!(c.details.contains("\"probe\": false"), "{c}");
        assert!(!c.details.contains("--"), "{c}");
    }
}
