//! The command line's node-wide actions: `--metrics`. It takes no container, so it is told
//! apart before a `--pid` or `--netns` is asked for.

use super::{attach_only, Action, Args};
use std::net::SocketAddr;

/// `--metrics`: an action on the whole node, which takes no container and none of a
/// container's options; `None` when it is not asked for.
pub(super) fn node_action(args: &Args) -> Option<Result<Action, String>> {
    let action = match args.metrics {
        None => return None,
        Some(_) => "--metrics",
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
    Some(metrics_addr(args.metrics.as_deref().unwrap_or_default()).map(Action::Metrics))
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
    use argh::FromArgs;

    fn parse(argv: &[&str]) -> Result<Action, String> {
        let args = <Args as FromArgs>::from_args(&["dnsredir"], argv).map_err(|e| e.output)?;
        super::super::action(args)
    }

    fn help() -> String {
        <Args as FromArgs>::from_args(&["dnsredir"], &["--help"])
            .err()
            .map(|e| e.output)
            .unwrap_or_default()
    }

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
        ] {
            let e = parse(argv)
                .err()
                .unwrap_or_else(|| panic!("{argv:?} accepted"));
            assert!(e.contains(says), "{argv:?}: {e}");
        }
        assert!(help().contains("--metrics"));
    }
}
