//! What the binary says to a bad command line: one line in dnsredir's form, exit 2, before
//! anything looks at a namespace (no root needed: none of these get that far).

use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dnsredir"))
        .args(args)
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_bad_command_line_is_one_line_and_exit_2() {
    let cases: &[(&[&str], &str)] = &[
        (&["--pid", "self"], "bad --pid 'self'"),
        (
            &["--pid", "1", "--edns-max", "70000"],
            "bad --edns-max '70000'",
        ),
        (&["--bogus"], "--bogus"),
        (&["--pid"], "--pid"),
        (
            &["--pid", "1", "--upstream", "1.1.1.1", "--edns-max", "100"],
            "below 512",
        ),
        (
            &["--pid", "1", "--status", "--edns-max", "1232"],
            "--status does not take --edns-max",
        ),
        (
            &["--pid", "1", "--status", "--edns-max", "1231"],
            "--status does not take --edns-max",
        ),
        (
            &["--pid", "1", "--detach", "--interface", "eth1"],
            "--detach does not take --interface",
        ),
        (
            &["--pid", "1", "--watch", "--no-probe"],
            "--watch does not take --no-probe",
        ),
        (
            &["--pid", "1", "--detach", "--json"],
            "--json goes with --status or --watch",
        ),
        (
            &[
                "--pid",
                "1",
                "--upstream",
                "1.1.1.1",
                "--resolver",
                "any",
                "--resolver",
                "8.8.8.8",
            ],
            "--resolver any takes every DNS server: give it alone",
        ),
        (&["--metrics", "9353"], "bad --metrics"),
        (
            &["--metrics", "127.0.0.1:9353", "--netns", "/x"],
            "--metrics works on the whole node",
        ),
        (&["--install-cni"], "--install-cni needs --cni-options"),
        (
            &["--cni-options", "o.json"],
            "--cni-options goes with --install-cni",
        ),
    ];
    for (args, says) in cases {
        let (code, out, err) = run(args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(out.is_empty(), "{args:?}: {out}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("dnsredir: error: "), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

#[test]
fn help_goes_to_stdout_with_exit_0() {
    let (code, out, err) = run(&["--help"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("--interface") && out.contains("--edns-max") && out.contains("--metrics"),
        "{out}"
    );
}

/// The binary for minimal images and for every node's CNI directory stays small: at most
/// 1.5 MB (scripts/build-static's, which scripts/test exports; required when CI=true).
#[test]
fn the_static_binary_stays_within_1_5_mb() {
    let Ok(path) = std::env::var("DNSREDIR_STATIC_BIN") else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI builds the static binary: DNSREDIR_STATIC_BIN must be set"
        );
        println!("skipped: DNSREDIR_STATIC_BIN is not set (scripts/build-static makes it)");
        return;
    };
    let size = std::fs::metadata(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .len();
    assert!(size <= 1_500_000, "{path} is {size} bytes, over 1.5 MB");
}
