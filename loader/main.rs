//! Runs one action and exits with a code scripts can rely on; every error is one line.

use dnsredir::bpf::embedded;
use dnsredir::cli::{self, Action, Args, EXIT_ERROR, EXIT_NOT_ATTACHED, EXIT_USAGE};
use dnsredir::cni;
use dnsredir::error::Error;
use dnsredir::fault;
use dnsredir::inspect;
use dnsredir::install::{self, conflist::Change};
use dnsredir::metrics;
use dnsredir::redirect;
use dnsredir::report::attach::summary;
use dnsredir::report::status as report;
use dnsredir::watcher::{self, Ended};
use std::process::ExitCode;

fn run(action: Action, verbose: bool) -> Result<u8, Error> {
    let mut log = |line: String| {
        if verbose {
            eprintln!("dnsredir: {line}");
        }
    };
    match action {
        Action::Version => {
            println!(
                "dnsredir {} (git {}, bpf object fnv1a64 {:016x})",
                env!("CARGO_PKG_VERSION"),
                env!("DNSREDIR_GIT_REVISION"),
                embedded::object_hash()
            );
            Ok(0)
        }
        Action::Attach(request) => {
            let attached = redirect::attach(&request, &mut log)?;
            for line in attached
                .left_with_dockerd
                .iter()
                .chain(&attached.ipv6_not_redirected)
            {
                eprintln!("dnsredir: {line}");
            }
            if attached.rules_updated_in_place {
                println!(
                    "dnsredir: rules updated in place on {} ({}): same programs, no flow lost",
                    request.target,
                    request.rules.describe()
                );
            } else if request.upstream.is_none() {
                println!(
                    "dnsredir: attached to {}: names decided in the kernel ({}; see --status), other DNS goes where it was going (no --upstream), taken on {}",
                    request.target,
                    request.rules.describe(),
                    match attached.settings.path {
                        dnsredir::settings::Path::EmbeddedResolver { .. } => "lo".to_string(),
                        _ => format!("{}'s egress", attached.interface),
                    }
                );
            } else {
                println!("{}", summary(&request, &attached));
            }
            Ok(0)
        }
        Action::Detach { target } => {
            let removed = redirect::detach(&target, &mut log)?;
            if removed == 0 {
                println!("dnsredir: not attached to {target}; nothing to remove");
            } else {
                println!("dnsredir: detached from {target} ({removed} filters removed)");
            }
            Ok(0)
        }
        Action::Status { target, json } => {
            let s = inspect::status(&target)?;
            if json {
                println!("{}", report::render_json(&s));
            } else {
                print!("{}", report::render_text(&s));
            }
            Ok(if s.attached() { 0 } else { EXIT_NOT_ATTACHED })
        }
        Action::Metrics(addr) => {
            let mut note = |line: String| eprintln!("dnsredir: {line}");
            metrics::run(addr, &mut note)
        }
        Action::InstallCni(request) => {
            let done =
                install::install(&request, cni::config::check_entry).map_err(Error::Install)?;
            let what = match done.change {
                Change::Added => "added dnsredir to",
                Change::Replaced => "replaced dnsredir's options in",
                Change::Unchanged => "dnsredir was already, with these options, in",
            };
            println!(
                "dnsredir: installed {}; {what} {} (plugins: {})",
                done.binary.display(),
                done.conflist.display(),
                done.chain
            );
            Ok(0)
        }
        Action::UninstallCni(request) => {
            let done = install::uninstall(&request).map_err(Error::Install)?;
            let mut said = Vec::new();
            for (path, chain) in &done.conflists {
                said.push(format!(
                    "took dnsredir out of {} (plugins: {chain})",
                    path.display()
                ));
            }
            if let Some(binary) = &done.binary {
                said.push(format!("removed {}", binary.display()));
            }
            if said.is_empty() {
                said.push(format!(
                    "nothing to remove (no dnsredir entry in {}, no {})",
                    request.conf_dir.display(),
                    request
                        .bin_dir
                        .join(install::conflist::PLUGIN_TYPE)
                        .display()
                ));
            }
            println!("dnsredir: {}", said.join("; "));
            Ok(0)
        }
        Action::Watch(request) => {
            let mut out = std::io::stdout().lock();
            let mut note = |line: String| eprintln!("dnsredir: {line}");
            match watcher::run(&request, &mut out, &mut note)? {
                Ended::Stopped => Ok(0),
                Ended::Refused(line) | Ended::Lost(line) => {
                    eprintln!("dnsredir: {line}");
                    Ok(EXIT_NOT_ATTACHED)
                }
            }
        }
    }
}

/// argh's own parse error as one line in dnsredir's form: "Error parsing option '--pid' with
/// value 'self': ..." becomes "bad --pid 'self': ...; run dnsredir --help for usage".
fn usage_error(argh: &str) -> String {
    let text = argh.split_whitespace().collect::<Vec<_>>().join(" ");
    let text = match text.strip_prefix("Error parsing option ") {
        Some(rest) => match rest.split_once(" with value ") {
            Some((flag, value)) => format!("bad {} {value}", flag.trim_matches('\'')),
            None => rest.to_string(),
        },
        None => text,
    };
    format!(
        "{}; run dnsredir --help for usage",
        text.trim_end_matches('.')
    )
}

fn main() -> ExitCode {
    // A CNI runtime runs its plugins with the command in the environment and no arguments.
    if std::env::var_os("CNI_COMMAND").is_some() {
        return cni::main();
    }
    let argv: Vec<String> = std::env::args().collect();
    let command = argv
        .first()
        .map_or("dnsredir", |c| c.rsplit('/').next().unwrap_or(c));
    let rest: Vec<&str> = argv.iter().skip(1).map(String::as_str).collect();
    let args = match <Args as argh::FromArgs>::from_args(&[command], &rest) {
        Ok(args) => args,
        Err(early) => {
            return match early.status {
                Ok(()) => {
                    print!("{}", early.output);
                    ExitCode::SUCCESS
                }
                Err(()) => {
                    eprintln!("dnsredir: error: {}", usage_error(&early.output));
                    ExitCode::from(EXIT_USAGE)
                }
            };
        }
    };
    let verbose = args.verbose;
    let action = match cli::action(args) {
        Ok(a) => a,
        Err(message) => {
            eprintln!("dnsredir: error: {message}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if let Err(message) = fault::init() {
        eprintln!("dnsredir: error: {message}");
        return ExitCode::from(EXIT_USAGE);
    }
    let result = run(action, verbose);
    if verbose {
        if let Some(calls) = fault::summary() {
            eprintln!("dnsredir: {calls}");
        }
    }
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("dnsredir: error: {}", e.one_line());
            if let Some(details) = e.details() {
                eprintln!("verifier log:\n{details}");
            }
            ExitCode::from(EXIT_ERROR)
        }
    }
}
