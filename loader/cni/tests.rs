//! The CNI front end without root: configurations, parameters, versions, results and error
//! objects, and CHECK's verdicts on attachments described by hand. Everything here fails or
//! answers before a namespace is touched.

use super::check::{differences, judge};
use super::config::{self, Env};
use super::error::code;
use super::*;
use crate::inspect::{Build, Status};
use crate::net::tc::{Classifier, Filter, Hook};
use crate::redirect::hooks::{Found, HookRef, Ours};
use crate::redirect::rules::Rules;
use crate::redirect::Resolvers;
use crate::settings::{Ipv6Settings, Path, RuleKinds, Settings};
use serde_json::json;

fn env(command: &str) -> Env {
    Env {
        command: Some(command.into()),
        container_id: Some("c0ffee".into()),
        netns: Some("/run/netns/cni-test".into()),
        ifname: Some("eth0".into()),
        args: None,
    }
}

/// A configuration as a conflist's dnsredir entry, with `extra` keys over the minimal one.
fn conf(extra: Value) -> Vec<u8> {
    let mut base = json!({
        "cniVersion": "1.0.0",
        "name": "podnet",
        "type": "dnsredir",
        "upstream": "10.0.0.53",
        "resolvers": ["10.88.0.1"],
    });
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        if v.is_null() {
            base.as_object_mut().unwrap().remove(&k);
        } else {
            base[k] = v;
        }
    }
    base.to_string().into_bytes()
}

fn request(extra: Value) -> Result<AttachRequest, error::CniError> {
    config::parse(&conf(extra))?.request(&env("ADD"))
}

/// The refusal of a configuration: its code and message.
fn refusal(extra: Value) -> (u32, String) {
    match request(extra.clone()) {
        Ok(r) => panic!("{extra} accepted: {r:?}"),
        Err(e) => (e.code, e.msg),
    }
}

#[test]
fn every_option_reaches_the_request() {
    let r = request(json!({
        "upstream": ["10.0.0.53:5353", "[fd00::53]:53"],
        "resolvers": ["10.88.0.1", "10.88.0.2:5300", "fd00:88::1"],
        "keep": ["internal.test"],
        "only": ["corp.example."],
        "edns_max": 4096,
        "interface": "net1",
        "probe": true,
    }))
    .unwrap();
    assert_eq!(r.target, Target::Path("/run/netns/cni-test".into()));
    assert_eq!(r.upstream, Some("10.0.0.53:5353".parse().unwrap()));
    assert_eq!(r.upstream6, Some("[fd00::53]:53".parse().unwrap()));
    let Resolvers::Named(named) = &r.resolvers else {
        panic!("named: {:?}", r.resolvers);
    };
    assert_eq!(
        named.v4,
        vec![
            "10.88.0.1:53".parse().unwrap(),
            "10.88.0.2:5300".parse().unwrap()
        ]
    );
    assert_eq!(named.v6, vec!["[fd00:88::1]:53".parse().unwrap()]);
    assert_eq!(r.rules.rules.len(), 2);
    assert_eq!(r.edns_max, 4096);
    assert_eq!(r.interface.as_deref(), Some("net1"));
    assert!(r.probe_upstream);
    assert!(!r.redirect_all);
    assert_eq!(r.dockerd_ports, Default::default());
}

#[test]
fn defaults_are_cnis() {
    let r = request(json!({})).unwrap();
    assert_eq!(r.interface.as_deref(), Some("eth0"), "CNI_IFNAME");
    assert!(
        !r.probe_upstream,
        "the network may not route yet during ADD"
    );
    assert_eq!(r.edns_max, crate::redirect::EDNS_MAX);
    assert!(r.rules.is_empty());
    assert_eq!(r.upstream6, None);
    assert_eq!(
        r.label, "c0ffee",
        "the container id without Kubernetes' arguments"
    );
}

#[test]
fn bad_values_are_code_7_naming_the_key() {
    for (extra, key) in [
        (json!({"upstream": "not-an-ip"}), "\"upstream\""),
        (json!({"upstream": "127.0.0.1"}), "\"upstream\""),
        (json!({"upstream": 53}), "\"upstream\""),
        (json!({"upstream": ["1.1.1.1", "8.8.8.8"]}), "\"upstream\""),
        (json!({"upstream": ["fd00::53"]}), "\"upstream\""),
        (json!({"upstream": null}), "\"upstream\""),
        (json!({"upstream": [1]}), "\"upstream\""),
        (json!({"resolvers": ["127.0.0.53"]}), "\"resolvers\""),
        (json!({"resolvers": ["fd00::1"]}), "\"resolvers\""),
        (json!({"resolvers": "10.0.0.1"}), "\"resolvers\""),
        (json!({"resolvers": []}), "\"resolvers\""),
        (
            json!({"resolvers": ["1.1.1.1", "1.1.1.2", "1.1.1.3", "1.1.1.4", "1.1.1.5"]}),
            "\"resolvers\"",
        ),
        (json!({"keep": ["a..b"]}), "\"keep\""),
        (json!({"keep": "a.b"}), "\"keep\""),
        (json!({"only": ["*.corp"]}), "\"only\""),
        (json!({"edns_max": 100}), "\"edns_max\""),
        (json!({"edns_max": 70000}), "\"edns_max\""),
        (json!({"edns_max": -1}), "\"edns_max\""),
        (json!({"edns_max": "1232"}), "\"edns_max\""),
        (json!({"edns_max": 1232.5}), "\"edns_max\""),
        (json!({"interface": "eth0:1"}), "\"interface\""),
        (
            json!({"interface": "a-very-long-interface"}),
            "\"interface\"",
        ),
        (json!({"interface": 1}), "\"interface\""),
        (json!({"probe": "yes"}), "\"probe\""),
    ] {
        let (code, msg) = refusal(extra.clone());
        assert_eq!(code, code::INVALID_CONFIG, "{extra}: {msg}");
        assert!(msg.contains(key), "{extra}: {msg}");
        assert!(!msg.contains("--"), "{extra}: a flag in {msg}");
    }
}

#[test]
fn edns_max_follows_the_command_lines_rule() {
    for (n, ok) in [
        (0, true),
        (511, false),
        (512, true),
        (65535, true),
        (1, false),
    ] {
        assert_eq!(request(json!({"edns_max": n})).is_ok(), ok, "{n}");
    }
    assert!(refusal(json!({"edns_max": 511})).1.contains("below 512"));
}

#[test]
fn unknown_keys_are_code_2_naming_key_and_value() {
    for key in [
        "dockerd_port",
        "dockerd_tcp_port",
        "redirect_all",
        "upstreams",
    ] {
        let (code, msg) = refusal(json!({ key: 5353 }));
        assert_eq!(code, code::UNSUPPORTED_FIELD, "{msg}");
        assert!(msg.contains(key) && msg.contains("5353"), "{msg}");
    }
    // What runtimes and conventions put in every plugin's configuration is accepted.
    assert!(request(json!({
        "runtimeConfig": {"portMappings": []},
        "args": {"cni": {}},
        "capabilities": {"portMappings": true},
        "prevResult": {"cniVersion": "1.0.0"},
        "cni.dev/valid-attachments": [],
    }))
    .is_ok());
}

#[test]
fn resolvers_any_and_none_take_every_server() {
    // "any", and no resolvers at all (`null` drops the key): a CNI plugin cannot read the
    // pod's resolv.conf.
    for extra in [json!({"resolvers": "any"}), json!({"resolvers": null})] {
        let r = request(extra.clone()).unwrap_or_else(|e| panic!("{extra}: {}", e.msg));
        assert_eq!(r.resolvers, Resolvers::Any, "{extra}");
    }
    let (code, msg) = refusal(json!({"resolvers": []}));
    assert_eq!(code, code::INVALID_CONFIG);
    assert!(msg.contains("or \"any\""), "{msg}");
    let (code, msg) = refusal(json!({"resolvers": 7}));
    assert_eq!(code, code::INVALID_CONFIG);
    assert!(msg.contains("\"resolvers\" must be a list"), "{msg}");
}

#[test]
fn the_configuration_itself_is_checked_as_libcni_does() {
    let parse = |text: &str| config::parse(text.as_bytes()).map(|_| ()).unwrap_err();
    assert_eq!(parse("{").code, code::DECODING_FAILURE);
    assert_eq!(parse("[]").code, code::DECODING_FAILURE);
    assert_eq!(
        parse(r#"{"cniVersion": 1, "name": "n"}"#).code,
        code::DECODING_FAILURE
    );
    assert_eq!(parse(r#"{"name": "n"}"#).code, code::INCOMPATIBLE_VERSION);
    assert_eq!(
        parse(r#"{"cniVersion": "0.2.0", "name": "n"}"#).code,
        code::INCOMPATIBLE_VERSION
    );
    assert_eq!(
        parse(r#"{"cniVersion": "1.0.0"}"#).msg,
        "missing network name"
    );
    assert_eq!(
        parse(r#"{"cniVersion": "1.0.0", "name": "-x"}"#).code,
        code::INVALID_CONFIG
    );
}

#[test]
fn the_label_names_the_pod() {
    let label = |args: Option<&str>, extra: Value| {
        let e = Env {
            args: args.map(String::from),
            ..env("ADD")
        };
        config::parse(&conf(extra)).unwrap().label(&e)
    };
    let k8s = "IgnoreUnknown=1;K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=coredns-7;K8S_POD_INFRA_CONTAINER_ID=abc";
    assert_eq!(label(Some(k8s), json!({})), "kube-system/coredns-7");
    assert_eq!(
        label(Some("K8S_POD_INFRA_CONTAINER_ID=abc"), json!({})),
        "abc"
    );
    assert_eq!(label(Some("K8S_POD_NAME=web"), json!({})), "web");
    assert_eq!(label(Some("IgnoreUnknown=1"), json!({})), "c0ffee");
    assert_eq!(
        label(
            None,
            json!({"args": {"cni": {"K8S_POD_NAMESPACE": "a", "K8S_POD_NAME": "b"}}})
        ),
        "a/b"
    );
    assert_eq!(
        label(
            None,
            json!({"runtimeConfig": {"K8S_POD_NAMESPACE": "n", "K8S_POD_NAME": "p"}})
        ),
        "n/p"
    );
    let long = format!("K8S_POD_NAMESPACE=ns;K8S_POD_NAME={}", "x".repeat(100));
    assert_eq!(
        label(Some(&long), json!({})).len(),
        crate::abi::LABEL_MAX,
        "cut to fit"
    );
}

#[test]
fn parameters_are_checked_before_the_configuration() {
    let e = |env: Env, stdin: &[u8]| run(&env, stdin).stdout.unwrap();
    let missing = e(
        Env {
            netns: None,
            ifname: None,
            ..env("ADD")
        },
        &conf(json!({})),
    );
    assert_eq!(missing["code"], code::INVALID_ENVIRONMENT);
    assert_eq!(
        missing["msg"],
        "required environment variables [CNI_NETNS,CNI_IFNAME] missing"
    );
    let bad_id = e(
        Env {
            container_id: Some("/etc".into()),
            ..env("CHECK")
        },
        &conf(json!({})),
    );
    assert_eq!(bad_id["code"], code::INVALID_ENVIRONMENT);
    let none = e(Env::default(), b"{}");
    assert_eq!(
        none["msg"],
        "required environment variables [CNI_COMMAND] missing"
    );
    let unknown = e(env("FROB"), &conf(json!({})));
    assert_eq!(unknown["code"], code::INVALID_ENVIRONMENT);
    assert!(unknown["msg"].as_str().unwrap().contains("FROB"));
    // Empty variables are unset ones, as a runtime's "" is.
    let from = Env::from(|n| (n == "CNI_COMMAND").then(String::new));
    assert_eq!(from.command, None);
}

#[test]
fn version_answers_in_the_version_asked() {
    let out = run(&env("VERSION"), br#"{"cniVersion": "0.4.0"}"#);
    assert!(!out.failed);
    assert_eq!(
        out.stdout,
        Some(
            json!({"cniVersion": "0.4.0", "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]})
        )
    );
    for stdin in [&b""[..], b"{}", br#"{"cniVersion": "9.9.9"}"#] {
        let out = run(&env("VERSION"), stdin);
        assert_eq!(out.stdout.unwrap()["cniVersion"], "1.1.0");
    }
}

#[test]
fn errors_are_objects_in_the_configurations_version_and_fail() {
    let out = run(
        &env("ADD"),
        &conf(json!({"cniVersion": "0.4.0", "upstream": "x"})),
    );
    assert!(out.failed);
    let e = out.stdout.unwrap();
    assert_eq!(e["cniVersion"], "0.4.0");
    assert_eq!(e["code"], code::INVALID_CONFIG);
    assert!(e["msg"].as_str().unwrap().starts_with("bad \"upstream\""));
    assert!(e["details"].is_string());
    let mut keys: Vec<&String> = e.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["cniVersion", "code", "details", "msg"]);
    // A version dnsredir does not speak: the error in the newest it does.
    let old = run(&env("ADD"), &conf(json!({"cniVersion": "0.2.0"})))
        .stdout
        .unwrap();
    assert_eq!(
        (old["code"].as_u64(), old["cniVersion"].as_str()),
        (Some(1), Some("1.1.0"))
    );
}

#[test]
fn commands_newer_than_the_configuration_are_refused() {
    let code_of = |command: &str, version: &str| {
        let out = run(&env(command), &conf(json!({"cniVersion": version})));
        out.stdout.and_then(|v| v["code"].as_u64())
    };
    assert_eq!(code_of("CHECK", "0.3.1"), Some(1));
    assert_eq!(code_of("STATUS", "1.0.0"), Some(1));
    assert_eq!(code_of("GC", "0.4.0"), Some(1));
    let gc = run(&env("GC"), &conf(json!({"cniVersion": "1.1.0"})));
    assert_eq!((gc.failed, gc.stdout), (false, None), "nothing to collect");
}

#[test]
fn del_without_a_namespace_succeeds_and_ignores_the_options() {
    let no_netns = Env {
        netns: None,
        ..env("DEL")
    };
    let out = run(&no_netns, &conf(json!({"upstream": "garbage", "bogus": 1})));
    assert_eq!((out.failed, out.stdout), (false, None));
    assert!(
        run(&no_netns, b"{").failed,
        "but the configuration must be JSON"
    );
}

#[test]
fn add_refuses_a_prev_result_it_cannot_hand_on_before_attaching() {
    // No root and a namespace that does not exist: only a refusal before the attach gets
    // this error rather than the attach's.
    let out = run(&env("ADD"), &conf(json!({"prevResult": {"ips": "x"}})));
    assert_eq!(out.stdout.unwrap()["code"], code::DECODING_FAILURE);
}

fn settings() -> Settings {
    Settings {
        path: Path::Nameservers {
            any: false,
            nameservers: vec!["10.88.0.1:53".parse().unwrap()],
            ipv6: None,
        },
        ifindex: 3,
        lo_ifindex: 1,
        source: "10.88.0.5".parse().unwrap(),
        upstream: "10.0.0.53:53".parse().unwrap(),
        edns_max: 1232,
        rules: RuleKinds::default(),
        label: "c0ffee".into(),
    }
}

#[test]
fn check_finds_each_difference() {
    let r = request(json!({})).unwrap();
    let same = |s: &Settings| differences(&r, s, Some("eth0"), Some(&Rules::default()));
    assert_eq!(same(&settings()), Vec::<String>::new());
    let relabelled = Settings {
        label: "other".into(),
        ..settings()
    };
    assert!(
        same(&relabelled).is_empty(),
        "the label is not the configuration's"
    );
    let cases: Vec<(Settings, &str)> = vec![
        (
            Settings {
                upstream: "10.0.0.54:53".parse().unwrap(),
                ..settings()
            },
            "the upstream is 10.0.0.54:53",
        ),
        (
            Settings {
                edns_max: 0,
                ..settings()
            },
            "edns_max is 0",
        ),
        (
            Settings {
                path: Path::Nameservers {
                    any: false,
                    nameservers: vec!["10.88.0.9:53".parse().unwrap()],
                    ipv6: None,
                },
                ..settings()
            },
            "the nameservers taken over is [10.88.0.9:53]",
        ),
        (
            Settings {
                path: Path::Nameservers {
                    any: false,
                    nameservers: vec!["10.88.0.1:53".parse().unwrap()],
                    ipv6: Some(Ipv6Settings {
                        upstream: "[fd00::53]:53".parse().unwrap(),
                        source: "fd00::5".parse().unwrap(),
                        nameservers: vec![],
                    }),
                },
                ..settings()
            },
            "the IPv6 upstream is [fd00::53]:53, the configuration says none",
        ),
    ];
    for (s, says) in cases {
        let d = same(&s);
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(d[0].starts_with(says), "{d:?}");
    }
    let elsewhere = differences(&r, &settings(), Some("eth1"), Some(&Rules::default()));
    assert_eq!(
        elsewhere,
        ["the interface is eth1, the configuration says eth0"]
    );
    let keep = Rules::new(&["internal.test".into()], &[]).unwrap();
    let ruled = differences(&r, &settings(), Some("eth0"), Some(&keep));
    assert_eq!(
        ruled,
        ["the name rules is [keep internal.test], the configuration says []"]
    );
}

fn filter(ifname: &str, ifindex: u32, hook: Hook) -> Ours {
    Ours {
        at: HookRef::new(ifname, ifindex, hook),
        filter: Filter {
            prio: 1,
            protocol: 3,
            handle: 1,
            classifier: Classifier::Bpf {
                name: Some("dnsredir_reply".into()),
                prog_id: Some(7),
            },
        },
    }
}

fn attached(build: Build) -> Status {
    Status {
        found: Found {
            clsact: vec![3],
            filters: vec![
                filter("eth0", 3, Hook::Ingress),
                filter("eth0", 3, Hook::Egress),
            ],
        },
        settings: Some(settings()),
        maps: crate::inspect::maps::Read {
            build: Some(build),
            rules: Some(Rules::default()),
            ..Default::default()
        },
        ..Status::default()
    }
}

#[test]
fn check_verdicts() {
    let r = request(json!({})).unwrap();
    assert_eq!(judge(&r, &attached(Build::This)), Ok(()));
    assert_eq!(
        judge(&r, &Status::default()).unwrap_err().code,
        code::NOT_ATTACHED
    );
    let mut half = attached(Build::This);
    half.found.filters.pop();
    let e = judge(&r, &half).unwrap_err();
    assert_eq!(e.code, code::NOT_ATTACHED);
    assert!(e.msg.contains("half attached"), "{e}");
    for build in [
        Build::SameLayout { build_id: 1 },
        Build::OtherLayout {
            layout: 6,
            build_id: 2,
        },
        Build::Unknown,
    ] {
        let e = judge(
            &r,
            &Status {
                settings: None,
                ..attached(build)
            },
        )
        .unwrap_err();
        assert_eq!(e.code, code::OTHER_BUILD, "{e}");
        assert!(e.msg.contains("another dnsredir build"), "{e}");
    }
    let stale = Status {
        stale: Some("the interface it worked through is gone".into()),
        ..attached(Build::This)
    };
    assert_eq!(
        judge(&r, &stale).unwrap_err().code,
        code::ATTACHED_OTHERWISE
    );
    let otherwise = request(json!({"upstream": "10.0.0.99"})).unwrap();
    let e = judge(&otherwise, &attached(Build::This)).unwrap_err();
    assert_eq!(e.code, code::ATTACHED_OTHERWISE);
    assert!(e.msg.contains("10.0.0.99"), "{e}");
}
