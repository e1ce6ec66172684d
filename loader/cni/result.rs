//! The result of an ADD: dnsredir creates no interface, address or route, so it hands on the
//! `prevResult` of the plugins before it, in the version the runtime asked.
//!
//! Between 0.3.x/0.4.0 and 1.x the result differs in one place: the entries of `ips` lost
//! their `version` ("4"/"6"), which is then derived from `address` going down, as libcni
//! converts. Everything else is handed on as it came, fields dnsredir does not know included
//! (an older runtime ignores a 1.1 `mtu`; dropping it would change what a newer one reads).

use super::error::{code, CniError};
use super::version::Version;
use serde_json::{Map, Value};

/// What ADD prints: `prev` (the configuration's `prevResult`, if any) as a result of version
/// `to`. Without one (dnsredir first in a chain, which it should not be) the result is empty.
pub fn pass_on(prev: Option<&Value>, to: Version) -> Result<Value, CniError> {
    let mut result = match prev {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(other) => {
            return Err(CniError::new(
                code::DECODING_FAILURE,
                format!("prevResult is not a JSON object: {}", brief(other)),
            ))
        }
    };
    if let Some(from) = result.get("cniVersion") {
        let from = from.as_str().and_then(Version::parse).ok_or_else(|| {
            CniError::new(
                code::DECODING_FAILURE,
                format!("prevResult's cniVersion is not a version: {}", brief(from)),
            )
        })?;
        if from < Version::CHAINING {
            return Err(CniError::new(
                code::INCOMPATIBLE_VERSION,
                format!("prevResult is a CNI {from} result (ip4/ip6), which dnsredir cannot hand on; chained plugins need 0.3.0 or later"),
            ));
        }
    }
    result.insert("cniVersion".into(), Value::String(to.to_string()));
    if let Some(ips) = result.get_mut("ips") {
        let Value::Array(ips) = ips else {
            return Err(CniError::new(
                code::DECODING_FAILURE,
                format!("prevResult's ips is not a list: {}", brief(ips)),
            ));
        };
        for ip in ips.iter_mut() {
            let Value::Object(ip) = ip else {
                return Err(CniError::new(
                    code::DECODING_FAILURE,
                    format!(
                        "an entry of prevResult's ips is not an object: {}",
                        brief(ip)
                    ),
                ));
            };
            if to >= Version::NO_IP_VERSION {
                ip.remove("version");
            } else if !ip.contains_key("version") {
                let family = ip_family(ip.get("address")).ok_or_else(|| {
                    CniError::new(
                        code::DECODING_FAILURE,
                        format!(
                            "an entry of prevResult's ips has no address in CIDR notation: {}",
                            brief(&Value::Object(ip.clone()))
                        ),
                    )
                })?;
                ip.insert("version".into(), Value::String(family.into()));
            }
        }
    }
    Ok(Value::Object(result))
}

/// "4" or "6" for an address in CIDR notation, as 0.3.x/0.4.0 `ips` entries say it.
fn ip_family(address: Option<&Value>) -> Option<&'static str> {
    let text = address?.as_str()?;
    let ip = text.split_once('/').map_or(text, |(ip, _)| ip);
    match ip.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(_) => Some("4"),
        std::net::IpAddr::V6(_) => Some("6"),
    }
}

/// A value as an error message shows it: its JSON, cut.
pub fn brief(v: &Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(80) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The result the bridge plugin gives for one container: interfaces on both sides, an
    /// address on each family, routes and DNS.
    fn bridge_result(version: &str) -> Value {
        let mut ips = json!([
            {"version": "4", "address": "10.88.0.5/16", "gateway": "10.88.0.1", "interface": 2},
            {"version": "6", "address": "fd00:88::5/64", "gateway": "fd00:88::1", "interface": 2}
        ]);
        if Version::parse(version) >= Some(Version::NO_IP_VERSION) {
            for ip in ips.as_array_mut().unwrap() {
                ip.as_object_mut().unwrap().remove("version");
            }
        }
        json!({
            "cniVersion": version,
            "interfaces": [
                {"name": "cni-podman0", "mac": "de:ad:be:ef:00:01"},
                {"name": "veth1234", "mac": "de:ad:be:ef:00:02"},
                {"name": "eth0", "mac": "de:ad:be:ef:00:03", "sandbox": "/run/netns/cni-1"}
            ],
            "ips": ips,
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0", "gw": "fd00:88::1"}],
            "dns": {"nameservers": ["10.88.0.1"], "domain": "dns.podman", "search": ["dns.podman"], "options": ["ndots:1"]}
        })
    }

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    #[test]
    fn a_result_goes_on_unchanged_in_its_own_version() {
        for version in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
            let prev = bridge_result(version);
            assert_eq!(
                pass_on(Some(&prev), v(version)),
                Ok(prev.clone()),
                "{version}"
            );
            // Through text and back, as the runtime reads it.
            let text = pass_on(Some(&prev), v(version)).unwrap().to_string();
            assert_eq!(serde_json::from_str::<Value>(&text).ok(), Some(prev));
        }
    }

    #[test]
    fn a_result_changes_shape_across_1_0_0_and_nothing_else() {
        let down = pass_on(Some(&bridge_result("1.0.0")), v("0.4.0")).unwrap();
        assert_eq!(down, bridge_result("0.4.0"));
        let up = pass_on(Some(&bridge_result("0.4.0")), v("1.0.0")).unwrap();
        assert_eq!(up, bridge_result("1.0.0"));
        let across = pass_on(Some(&bridge_result("0.3.1")), v("1.1.0")).unwrap();
        assert_eq!(across, bridge_result("1.1.0"));
    }

    #[test]
    fn fields_dnsredir_does_not_know_go_on() {
        let mut prev = bridge_result("1.1.0");
        prev["interfaces"][2]["mtu"] = json!(1500);
        prev["routes"][0]["priority"] = json!(10);
        prev["x-vendor"] = json!({"k": [1, 2]});
        let out = pass_on(Some(&prev), v("0.4.0")).unwrap();
        assert_eq!(out["interfaces"][2]["mtu"], 1500);
        assert_eq!(out["routes"][0]["priority"], 10);
        assert_eq!(out["x-vendor"], json!({"k": [1, 2]}));
        assert_eq!(out["ips"][1]["version"], "6");
    }

    #[test]
    fn no_prev_result_is_an_empty_result() {
        assert_eq!(
            pass_on(None, v("0.4.0")),
            Ok(json!({"cniVersion": "0.4.0"}))
        );
        // A result without cniVersion takes the configuration's.
        let bare = json!({"ips": [{"address": "10.0.0.2/24"}]});
        assert_eq!(
            pass_on(Some(&bare), v("0.3.1")),
            Ok(json!({"cniVersion": "0.3.1", "ips": [{"address": "10.0.0.2/24", "version": "4"}]}))
        );
    }

    #[test]
    fn results_that_cannot_go_on_are_refused_with_what_is_wrong() {
        let refused = |prev: Value| pass_on(Some(&prev), v("0.4.0")).unwrap_err();
        assert_eq!(refused(json!("x")).code, code::DECODING_FAILURE);
        assert_eq!(refused(json!({"ips": {}})).code, code::DECODING_FAILURE);
        assert_eq!(refused(json!({"ips": [7]})).code, code::DECODING_FAILURE);
        assert!(refused(json!({"ips": [{"address": "nope"}]}))
            .msg
            .contains("CIDR"));
        let old = refused(json!({"cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.2/24"}}));
        assert_eq!(old.code, code::INCOMPATIBLE_VERSION);
        assert!(old.msg.contains("0.2.0"), "{old}");
        assert_eq!(
            refused(json!({"cniVersion": 4})).code,
            code::DECODING_FAILURE
        );
    }
}
