//! The command line's node-wide actions: `--metrics`, `--install-cni`, `--uninstall-cni`. They
//! take no container, so they are told apart before a `--pid` or `--netns` is asked for.

use super::{attach_only, Action, Args};
use crate::install::{self, InstallRequest, UninstallRequest};
use std::net::SocketAddr;
use std::path::PathBuf;

/// `--metrics`, `--install-cni`, `--uninstall-cni`: actions on the whole node, which take no
/// container and none of a container's options; `None` when none of them is asked for.
pub(super) fn node_action(args: &Args) -> Option<Result<Action, String>> {
    let asked: Vec<&str> = [
        ("--metrics", args.metrics.is_some()),
        ("--install-cni", args.install_cni),
        ("--uninstall-cni", args.uninstall_cni),
    ]
    .into_iter()
    .filter_map(|(flag, given)| given.then_some(flag))
    .collect();
    let cni_option = [
        ("--cni-options", args.cni_options.is_some()),
        ("--cni-bin-dir", args.cni_bin_dir.is_some()),
        ("--cni-conf-dir", args.cni_conf_dir.is_some()),
    ]
    .into_iter()
    .find_map(|(flag, given)| given.then_some(flag));
    let action = match asked.as_slice() {
        [] => {
            return cni_option
                .map(|flag| Err(format!("{flag} goes with --install-cni or --uninstall-cni")))
        }
        [action] => *action,
        [first, second, ..] => {
            return Some(Err(format!("{first} and {second} exclude each other")))
        }
    };
    let container = [
        ("--pid", args.pid.is_some()),
        ("--netns", args.netns.is_some()),
        ("--detach", args.detach),
        ("--status", args.status),
        ("--watch", args.watch),
        ("--json", args.json),
    ]
    .into_iter()
    .find_map(|(flag, given)| given.then_some(flag))
    .or_else(|| attach_only(args));
    if let Some(flag) = container {
        return Some(Err(format!(
            "{action} works on the whole node: it does not take {flag}"
        )));
    }
    let dir = |given: &Option<PathBuf>, default: &str| {
        given.clone().unwrap_or_else(|| PathBuf::from(default))
    };
    let bin_dir = dir(&args.cni_bin_dir, install::BIN_DIR);
    let conf_dir = dir(&args.cni_conf_dir, install::CONF_DIR);
    Some(match action {
        "--metrics" => match cni_option {
            Some(flag) => Err(format!("--metrics does not take {flag}")),
            None => metrics_addr(args.metrics.as_deref().unwrap_or_default())
                .map(Action::Metrics),
        },
        "--install-cni" => match &args.cni_options {
            Some(options) => Ok(Action::InstallCni(InstallRequest {
                bin_dir,
                conf_dir,
                options: options.clone(),
            })),
            None => Err("--install-cni needs --cni-options FILE, the plugin's options as one JSON object (e.g. {\"upstream\": \"10.0.0.53\"})".into()),
        },
        _ => match args.cni_options {
            Some(_) => Err("--uninstall-cni does not take --cni-options".into()),
            None => Ok(Action::UninstallCni(UninstallRequest { bin_dir, conf_dir })),
        },
    })
}

/// `--metrics ADDR:PORT`: an address is required (no default: the endpoint has no
/// authentication, so where it listens is the user's choice).
fn metrics_addr(text: &str) -> Result<SocketAddr, String> {
    text.parse().map_err(|_| {
        format!("bad --metrics {text:?}: give ADDR:PORT, e.g. 127.0.0.1:9353, [::1]:9353 or the node's internal address (no default: the endpoint has no authentication)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::cli::tests::{help, parse};

    #[test]
    fn node_actions_take_no_container() {
        match parse(&["--metrics", "127.0.0.1:9353"]) {
            Ok(Action::Metrics(addr)) => assert_eq!(addr, "127.0.0.1:9353".parse().unwrap()),
            _ => panic!("metrics"),
        }
        match parse(&["--metrics", "[::1]:0"]) {
            Ok(Action::Metrics(addr)) => assert_eq!(addr.port(), 0),
            _ => panic!("metrics"),
        }
        match parse(&["--install-cni", "--cni-options", "/o.json"]) {
            Ok(Action::InstallCni(r)) => {
                assert_eq!(r.bin_dir, PathBuf::from("/opt/cni/bin"));
                assert_eq!(r.conf_dir, PathBuf::from("/etc/cni/net.d"));
                assert_eq!(r.options, PathBuf::from("/o.json"));
            }
            _ => panic!("install"),
        }
        match parse(&[
            "--uninstall-cni",
            "--cni-bin-dir",
            "/b",
            "--cni-conf-dir",
            "/c",
        ]) {
            Ok(Action::UninstallCni(r)) => {
                assert_eq!((r.bin_dir, r.conf_dir), ("/b".into(), "/c".into()))
            }
            _ => panic!("uninstall"),
        }
        for (argv, says) in [
            (
                &["--metrics", "9353"][..],
                "bad --metrics \"9353\": give ADDR:PORT",
            ),
            (&["--metrics", "localhost:9353"], "bad --metrics"),
            (
                &["--metrics", "127.0.0.1:1", "--pid", "1"],
                "--metrics works on the whole node: it does not take --pid",
            ),
            (
                &["--metrics", "127.0.0.1:1", "--status"],
                "does not take --status",
            ),
            (
                &["--metrics", "127.0.0.1:1", "--cni-bin-dir", "/b"],
                "--metrics does not take --cni-bin-dir",
            ),
            (
                &["--metrics", "127.0.0.1:1", "--install-cni"],
                "--metrics and --install-cni exclude each other",
            ),
            (&["--install-cni"], "--install-cni needs --cni-options FILE"),
            (
                &[
                    "--install-cni",
                    "--cni-options",
                    "o",
                    "--upstream",
                    "1.1.1.1",
                ],
                "does not take --upstream",
            ),
            (
                &["--uninstall-cni", "--cni-options", "o"],
                "--uninstall-cni does not take --cni-options",
            ),
            (
                &["--pid", "1", "--status", "--cni-conf-dir", "/c"],
                "--cni-conf-dir goes with --install-cni or --uninstall-cni",
            ),
        ] {
            let e = parse(argv)
                .err()
                .unwrap_or_else(|| panic!("{argv:?} accepted"));
            assert!(e.contains(says), "{argv:?}: {e}");
        }
        let help = help();
        for flag in [
            "--metrics",
            "--install-cni",
            "--uninstall-cni",
            "--cni-options",
            "--cni-bin-dir",
            "--cni-conf-dir",
        ] {
            assert!(help.contains(flag), "{flag}: {help}");
        }
    }
}
