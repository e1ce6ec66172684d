//! The plugin's configuration (stdin) and the runtime's parameters (environment) → one
//! [`AttachRequest`], the same the command line makes: the options are parsed by
//! [`crate::options`], so a value the command line refuses is refused here too, naming the key.

use super::error::{code, CniError};
use super::result::brief;
use super::version::{self, Version};
use crate::namespace::dockerd::ResolverPorts;
use crate::options::{self, OptionNames};
use crate::redirect::{AttachRequest, Resolvers};
use crate::settings;
use crate::target::Target;
use serde_json::{Map, Value};
use std::path::PathBuf;

/// The options as a configuration names them, for the parsers' messages.
const KEYS: OptionNames = OptionNames {
    upstream: "\"upstream\"",
    resolver: "\"resolvers\"",
    edns_max: "\"edns_max\"",
    keep: "\"keep\"",
    only: "\"only\"",
    label: "the label",
};

/// dnsredir's own keys.
pub const OPTIONS: [&str; 7] = [
    "upstream",
    "resolvers",
    "keep",
    "only",
    "edns_max",
    "interface",
    "probe",
];

/// Keys the spec and its conventions put in any plugin's configuration, which a runtime may
/// pass on to every plugin of a list.
const WELL_KNOWN: [&str; 12] = [
    "cniVersion",
    "cniVersions",
    "name",
    "type",
    "args",
    "runtimeConfig",
    "prevResult",
    "capabilities",
    "ipMasq",
    "ipam",
    "dns",
    "disableCheck",
];

/// The runtime's parameters: the `CNI_*` environment variables (empty ones count as unset).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    pub command: Option<String>,
    pub container_id: Option<String>,
    pub netns: Option<String>,
    pub ifname: Option<String>,
    pub args: Option<String>,
}

impl Env {
    pub fn from(get: impl Fn(&str) -> Option<String>) -> Env {
        let var = |name: &str| get(name).filter(|v| !v.is_empty());
        Env {
            command: var("CNI_COMMAND"),
            container_id: var("CNI_CONTAINERID"),
            netns: var("CNI_NETNS"),
            ifname: var("CNI_IFNAME"),
            args: var("CNI_ARGS"),
        }
    }

    /// The variables a command needs, checked as libcni's plugins check them: all missing ones
    /// named at once (code 4), then the container id's and interface name's form.
    pub fn require(&self, netns: bool) -> Result<(), CniError> {
        let mut missing = Vec::new();
        for (name, value, needed) in [
            ("CNI_CONTAINERID", &self.container_id, true),
            ("CNI_NETNS", &self.netns, netns),
            ("CNI_IFNAME", &self.ifname, true),
        ] {
            if needed && value.is_none() {
                missing.push(name);
            }
        }
        if !missing.is_empty() {
            return Err(CniError::new(
                code::INVALID_ENVIRONMENT,
                format!(
                    "required environment variables [{}] missing",
                    missing.join(",")
                ),
            ));
        }
        if let Some(id) = &self.container_id {
            if !is_name(id) {
                return Err(CniError::new(code::INVALID_ENVIRONMENT, format!("CNI_CONTAINERID {id:?}: a container id starts with a letter or digit, followed by letters, digits, '_', '.' or '-'")));
            }
        }
        if let Some(ifname) = &self.ifname {
            check_ifname(ifname)
                .map_err(|e| CniError::new(code::INVALID_ENVIRONMENT, format!("CNI_IFNAME {e}")))?;
        }
        Ok(())
    }
}

/// A container id or network name as the spec allows them.
fn is_name(text: &str) -> bool {
    let mut bytes = text.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// A Linux interface name: 1–15 bytes, not "." or "..", no '/', ':' or white space.
fn check_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 15 {
        return Err(format!("{name:?}: an interface name has 1 to 15 bytes"));
    }
    if name == "."
        || name == ".."
        || name.contains(['/', ':'])
        || name.contains(char::is_whitespace)
    {
        return Err(format!(
            "{name:?} is not an interface name (no '/', ':' or white space, not . or ..)"
        ));
    }
    Ok(())
}

/// The configuration on stdin: a JSON object with a version dnsredir speaks and a network name.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    pub version: Version,
    map: Map<String, Value>,
}

/// The version an error object is written in: the configuration's where it can be read and
/// is spoken, else the newest.
pub fn error_version(stdin: &[u8]) -> String {
    serde_json::from_slice::<Value>(stdin)
        .ok()
        .and_then(|v| v.get("cniVersion")?.as_str().map(str::to_string))
        .filter(|v| version::SUPPORTED.contains(&v.as_str()))
        .unwrap_or_else(|| version::NEWEST.to_string())
}

pub fn parse(stdin: &[u8]) -> Result<NetConf, CniError> {
    let value: Value = serde_json::from_slice(stdin).map_err(|e| {
        CniError::new(
            code::DECODING_FAILURE,
            format!("the network configuration on stdin is not JSON: {e}"),
        )
    })?;
    let Value::Object(map) = value else {
        return Err(CniError::new(
            code::DECODING_FAILURE,
            format!(
                "the network configuration is not a JSON object: {}",
                brief(&value)
            ),
        ));
    };
    let version = match map.get("cniVersion") {
        None => version::negotiate(None)?,
        Some(Value::String(v)) => version::negotiate(Some(v))?,
        Some(other) => {
            return Err(CniError::new(
                code::DECODING_FAILURE,
                format!("cniVersion is not a string: {}", brief(other)),
            ))
        }
    };
    match map.get("name") {
        Some(Value::String(name)) if is_name(name) => {}
        Some(Value::String(name)) => return Err(CniError::invalid_config(format!("network name {name:?}: starts with a letter or digit, followed by letters, digits, '_', '.' or '-'"))),
        _ => return Err(CniError::invalid_config("missing network name")),
    }
    Ok(NetConf { version, map })
}

/// dnsredir's options, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub upstream: std::net::SocketAddrV4,
    pub upstream6: Option<std::net::SocketAddrV6>,
    pub resolvers: Resolvers,
    pub rules: crate::redirect::rules::Rules,
    pub edns_max: u16,
    /// The interface, if the configuration names one (else `CNI_IFNAME`).
    pub interface: Option<String>,
    pub probe: bool,
}

impl NetConf {
    pub fn prev_result(&self) -> Option<&Value> {
        self.map.get("prevResult")
    }

    /// dnsredir's keys, each checked; a key neither dnsredir's nor the spec's is refused
    /// (code 2), so that a misspelt option does not go unnoticed.
    pub fn options(&self) -> Result<Options, CniError> {
        for (key, value) in &self.map {
            if !OPTIONS.contains(&key.as_str())
                && !WELL_KNOWN.contains(&key.as_str())
                && !key.starts_with("cni.dev/")
            {
                return Err(CniError::new(
                    code::UNSUPPORTED_FIELD,
                    format!(
                        "unsupported field {key:?}: {}; dnsredir takes {}",
                        brief(value),
                        OPTIONS.join(", ")
                    ),
                ));
            }
        }
        let invalid = CniError::invalid_config;
        let upstream = match self.map.get("upstream") {
            Some(Value::String(one)) => vec![one.clone()],
            Some(list @ Value::Array(_)) => strings(list, "upstream")?,
            Some(other) => {
                return Err(invalid(format!(
                "\"upstream\" must be \"IP[:PORT]\" or a list of them, one per address family: {}",
                brief(other)
            )))
            }
            None => Vec::new(),
        };
        let (upstream, upstream6) = options::upstreams(&upstream, KEYS).map_err(invalid)?;
        let resolvers = resolvers(self.map.get("resolvers"), upstream6.is_some())?;
        let list = |key: &str| match self.map.get(key) {
            Some(v) => strings(v, key),
            None => Ok(Vec::new()),
        };
        let rules = options::rules(&list("keep")?, &list("only")?, KEYS).map_err(invalid)?;
        let edns_max = match self.map.get("edns_max") {
            None => None,
            Some(v) => Some(
                v.as_u64()
                    .and_then(|n| u16::try_from(n).ok())
                    .ok_or_else(|| invalid(format!("\"edns_max\" must be a whole number from 512 to 65535, or 0 to leave queries alone: {}", brief(v))))?,
            ),
        };
        let edns_max = options::edns_max(edns_max, KEYS).map_err(invalid)?;
        let interface = match self.map.get("interface") {
            None => None,
            Some(Value::String(name)) => {
                check_ifname(name).map_err(|e| invalid(format!("\"interface\" {e}")))?;
                Some(name.clone())
            }
            Some(other) => {
                return Err(invalid(format!(
                    "\"interface\" must be an interface name: {}",
                    brief(other)
                )))
            }
        };
        let probe = match self.map.get("probe") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(invalid(format!(
                    "\"probe\" must be true or false: {}",
                    brief(other)
                )))
            }
        };
        Ok(Options {
            upstream,
            upstream6,
            resolvers,
            rules,
            edns_max,
            interface,
            probe,
        })
    }

    /// The interface dnsredir works through: the configuration's `interface` where it is a
    /// name, else `CNI_IFNAME` (DEL, which reads no other option).
    pub fn interface_or(&self, env: &Env) -> String {
        self.map
            .get("interface")
            .and_then(Value::as_str)
            .filter(|name| check_ifname(name).is_ok())
            .map(str::to_string)
            .or_else(|| env.ifname.clone())
            .unwrap_or_default()
    }

    /// The attach the configuration and the runtime's parameters ask for (`env` checked by
    /// [`Env::require`]).
    pub fn request(&self, env: &Env) -> Result<AttachRequest, CniError> {
        let o = self.options()?;
        let netns = env.netns.clone().unwrap_or_default();
        Ok(AttachRequest {
            target: Target::Path(PathBuf::from(netns)),
            interface: o.interface.or_else(|| env.ifname.clone()),
            upstream: Some(o.upstream),
            upstream6: o.upstream6,
            resolvers: o.resolvers,
            dockerd_ports: ResolverPorts::default(),
            // Single-label names are Docker's embedded resolver's business; CNI has none.
            redirect_all: false,
            probe_upstream: o.probe,
            edns_max: o.edns_max,
            rules: o.rules,
            block_refused: false,
            label: self.label(env),
        })
    }

    /// Which pod the attachment is for, kept in its configuration: "namespace/name" from
    /// Kubernetes' arguments (`CNI_ARGS`, then the configuration's `args.cni` and
    /// `runtimeConfig`), else the infrastructure container's id, else the container id.
    pub fn label(&self, env: &Env) -> String {
        let from_env: Vec<(&str, &str)> = env
            .args
            .as_deref()
            .unwrap_or("")
            .split(';')
            .filter_map(|pair| pair.split_once('='))
            .collect();
        let objects = [
            self.map.get("args").and_then(|a| a.get("cni")),
            self.map.get("runtimeConfig"),
        ];
        let arg = |key: &str| -> Option<String> {
            from_env
                .iter()
                .find(|(k, v)| *k == key && !v.is_empty())
                .map(|(_, v)| v.to_string())
                .or_else(|| {
                    objects.iter().flatten().find_map(|o| {
                        o.get(key)?
                            .as_str()
                            .filter(|v| !v.is_empty())
                            .map(str::to_string)
                    })
                })
        };
        let text = match (arg("K8S_POD_NAMESPACE"), arg("K8S_POD_NAME")) {
            (Some(ns), Some(name)) => format!("{ns}/{name}"),
            (None, Some(name)) => name,
            _ => arg("K8S_POD_INFRA_CONTAINER_ID")
                .or_else(|| env.container_id.clone())
                .unwrap_or_default(),
        };
        settings::label(&text)
    }
}

/// A list of strings under `key`.
fn strings(value: &Value, key: &str) -> Result<Vec<String>, CniError> {
    let wrong = || {
        CniError::invalid_config(format!(
            "\"{key}\" must be a list of strings: {}",
            brief(value)
        ))
    };
    value
        .as_array()
        .ok_or_else(wrong)?
        .iter()
        .map(|v| v.as_str().map(str::to_string).ok_or_else(wrong))
        .collect()
}

/// What is wrong with a conflist entry of dnsredir's options (`--install-cni`), as an ADD would
/// read them; `Ok` when nothing.
pub fn check_entry(entry: &Map<String, Value>) -> Result<(), String> {
    let conf = NetConf {
        version: Version::STATUS_AND_GC,
        map: entry.clone(),
    };
    conf.options().map(drop).map_err(|e| e.msg)
}

/// The nameservers to take over: `resolvers` as a list of `IP[:PORT]`, or `"any"`; without
/// it every DNS server (a CNI plugin cannot read the pod's resolv.conf).
pub fn resolvers(given: Option<&Value>, with_upstream6: bool) -> Result<Resolvers, CniError> {
    match given {
        None => Ok(Resolvers::Any),
        Some(Value::String(s)) if s == options::ANY => Ok(Resolvers::Any),
        Some(list @ Value::Array(_)) => {
            let list = strings(list, "resolvers")?;
            if list.is_empty() {
                return Err(CniError::invalid_config(
                    "\"resolvers\" is empty: give resolvers: [\"IP\", ...], or \"any\"",
                ));
            }
            options::resolvers(&list, with_upstream6, KEYS).map_err(CniError::invalid_config)
        }
        Some(other) => Err(CniError::invalid_config(format!(
            "\"resolvers\" must be a list of \"IP[:PORT]\" or \"any\": {}",
            brief(other)
        ))),
    }
}
