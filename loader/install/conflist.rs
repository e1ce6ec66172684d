//! dnsredir's entry in a CNI network configuration list, as plain JSON edits: appended to the
//! `plugins` of the list (after the network plugin and whatever else is chained, as Istio's
//! and Multus's installers do), its options replaced in place when it is there already, and
//! taken out again. Which file a runtime reads is decided here too. Nothing touches the disk.

use serde_json::{Map, Value};

/// The plugin's `type`: the file name a runtime executes from its CNI bin directory.
pub const PLUGIN_TYPE: &str = "dnsredir";

/// What [`insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    /// An entry was there with other options (or twice): one entry, the new options.
    Replaced,
    /// The entry was there with these very options.
    Unchanged,
}

/// The entry for `options`, a JSON object of the plugin's options (without `type`, or with
/// `"type": "dnsredir"`).
pub fn entry(options: Value) -> Result<Map<String, Value>, String> {
    let Value::Object(options) = options else {
        return Err("it is not a JSON object of the plugin's options".into());
    };
    match options.get("type") {
        None => {}
        Some(Value::String(t)) if t == PLUGIN_TYPE => {}
        Some(other) => {
            return Err(format!(
                "its \"type\" is {other}: leave it out (the entry's type is \"{PLUGIN_TYPE}\")"
            ))
        }
    }
    let mut entry = Map::new();
    entry.insert("type".into(), Value::String(PLUGIN_TYPE.into()));
    entry.extend(options.into_iter().filter(|(k, _)| k != "type"));
    Ok(entry)
}

/// The `plugins` list of a conflist, or what is wrong with it.
fn plugins(conflist: &mut Value) -> Result<&mut Vec<Value>, String> {
    let Value::Object(list) = conflist else {
        return Err("it is not a JSON object".into());
    };
    match list.get_mut("plugins") {
        Some(Value::Array(plugins)) => {
            if let Some(i) = plugins.iter().position(|p| !p.is_object()) {
                return Err(format!(
                    "plugin {} of its \"plugins\" is not an object",
                    i + 1
                ));
            }
            Ok(plugins)
        }
        Some(_) => Err("its \"plugins\" is not a list".into()),
        None => Err("it has no \"plugins\" list (a single-plugin .conf is not a conflist)".into()),
    }
}

fn is_ours(plugin: &Value) -> bool {
    plugin.get("type").and_then(Value::as_str) == Some(PLUGIN_TYPE)
}

/// Puts `entry` into the conflist: appended, or in place of dnsredir's entries there (the
/// first keeps its place, others go), so installing twice leaves one entry.
pub fn insert(conflist: &mut Value, entry: &Map<String, Value>) -> Result<Change, String> {
    let plugins = plugins(conflist)?;
    let entry = Value::Object(entry.clone());
    let ours: Vec<usize> = (0..plugins.len())
        .filter(|&i| is_ours(&plugins[i]))
        .collect();
    match ours.as_slice() {
        [] => {
            plugins.push(entry);
            Ok(Change::Added)
        }
        [only] if plugins[*only] == entry => Ok(Change::Unchanged),
        [first, ..] => {
            plugins[*first] = entry;
            let first = *first;
            let mut i = 0;
            plugins.retain(|p| {
                let keep = i == first || !is_ours(p);
                i += 1;
                keep
            });
            Ok(Change::Replaced)
        }
    }
}

/// Takes dnsredir's entries out of the conflist: how many there were.
pub fn remove(conflist: &mut Value) -> Result<usize, String> {
    let plugins = plugins(conflist)?;
    let before = plugins.len();
    plugins.retain(|p| !is_ours(p));
    Ok(before - plugins.len())
}

/// The plugins' types in chain order, for messages ("calico, bandwidth, dnsredir").
pub fn chain(conflist: &Value) -> String {
    let types: Vec<&str> = conflist
        .get("plugins")
        .and_then(Value::as_array)
        .map(|p| {
            p.iter()
                .map(|p| p.get("type").and_then(Value::as_str).unwrap_or("?"))
                .collect()
        })
        .unwrap_or_default();
    types.join(", ")
}

/// The file extensions a runtime reads network configurations from (libcni's `ConfFiles`, as
/// containerd and CRI-O call it): `.conflist` files are lists, the others single plugins.
pub const CONFIG_EXTENSIONS: [&str; 3] = ["conf", "conflist", "json"];

/// Which file of a CNI conf directory to edit, from its file names: runtimes load the first
/// configuration in lexical order, so that one must be a conflist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    Conflist(String),
    /// The first configuration is a single-plugin file: a conflist after it is not loaded.
    NotAList {
        first: String,
        conflist: Option<String>,
    },
    /// No configuration at all.
    None,
}

pub fn pick(names: &[String]) -> Pick {
    let mut configs: Vec<&String> = names
        .iter()
        .filter(|n| {
            n.rsplit_once('.')
                .is_some_and(|(stem, ext)| !stem.is_empty() && CONFIG_EXTENSIONS.contains(&ext))
        })
        .collect();
    configs.sort();
    let Some(first) = configs.first() else {
        return Pick::None;
    };
    if first.ends_with(".conflist") {
        return Pick::Conflist(first.to_string());
    }
    Pick::NotAList {
        first: first.to_string(),
        conflist: configs
            .iter()
            .find(|n| n.ends_with(".conflist"))
            .map(|n| n.to_string()),
    }
}

/// The file's text as written back: two-space indents and a final newline, as the network
/// plugins' installers write theirs.
pub fn to_text(conflist: &Value) -> String {
    let mut text = serde_json::to_string_pretty(conflist).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_first_configuration_in_lexical_order_is_the_one() {
        assert_eq!(
            pick(&names(&[
                "87-podman.conflist",
                "10-calico.conflist",
                "calico-kubeconfig"
            ])),
            Pick::Conflist("10-calico.conflist".into())
        );
        assert_eq!(
            pick(&names(&["10-flannel.conflist", "05-cilium.conf", ".x.tmp"])),
            Pick::NotAList {
                first: "05-cilium.conf".into(),
                conflist: Some("10-flannel.conflist".into())
            }
        );
        assert_eq!(pick(&names(&["README", ".conflist", "a.tmp"])), Pick::None);
        assert_eq!(pick(&[]), Pick::None);
    }

    #[test]
    fn options_become_one_entry_of_type_dnsredir() {
        let e = entry(json!({"upstream": "10.0.0.53", "keep": ["cluster.local"]})).unwrap();
        assert_eq!(
            Value::Object(e),
            json!({"type": "dnsredir", "upstream": "10.0.0.53", "keep": ["cluster.local"]})
        );
        assert!(entry(json!({"type": "dnsredir"})).is_ok());
        assert!(entry(json!({"type": "bridge"}))
            .unwrap_err()
            .contains("\"bridge\""));
        assert!(entry(json!(["upstream"]))
            .unwrap_err()
            .contains("not a JSON object"));
    }

    #[test]
    fn inserting_twice_leaves_one_entry_with_the_new_options() {
        let mut list = json!({"cniVersion": "0.3.1", "name": "k8s-pod-network",
            "plugins": [{"type": "calico"}, {"type": "portmap"}]});
        let original = list.clone();
        let a = entry(json!({"upstream": "10.0.0.53"})).unwrap();
        let b = entry(json!({"upstream": "10.0.0.54"})).unwrap();
        assert_eq!(insert(&mut list, &a), Ok(Change::Added));
        assert_eq!(chain(&list), "calico, portmap, dnsredir");
        assert_eq!(insert(&mut list, &a), Ok(Change::Unchanged));
        assert_eq!(insert(&mut list, &b), Ok(Change::Replaced));
        assert_eq!(list["plugins"][2]["upstream"], "10.0.0.54");
        assert_eq!(chain(&list), "calico, portmap, dnsredir");
        assert_eq!(remove(&mut list), Ok(1));
        assert_eq!(list, original);
        assert_eq!(remove(&mut list), Ok(0));
    }

    #[test]
    fn duplicate_entries_are_folded_into_the_first() {
        let mut list = json!({"plugins": [{"type": "dnsredir", "upstream": "1"},
            {"type": "bridge"}, {"type": "dnsredir", "upstream": "2"}]});
        let e = entry(json!({"upstream": "3"})).unwrap();
        assert_eq!(insert(&mut list, &e), Ok(Change::Replaced));
        assert_eq!(
            list,
            json!({"plugins": [{"type": "dnsredir", "upstream": "3"}, {"type": "bridge"}]})
        );
    }

    #[test]
    fn what_is_not_a_conflist_is_said() {
        let e = entry(json!({})).unwrap();
        for (text, says) in [
            (json!([1]), "not a JSON object"),
            (json!({"type": "bridge"}), "no \"plugins\" list"),
            (json!({"plugins": {}}), "not a list"),
            (json!({"plugins": [{"type": "a"}, 3]}), "plugin 2 "),
        ] {
            let mut list = text.clone();
            let err = insert(&mut list, &e).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
            assert_eq!(list, text, "untouched");
        }
    }
}
