//! `dnsredir --metrics` for the tests: the server run on an ephemeral port of 127.0.0.1 (the
//! port it prints on stderr), pages fetched over plain TCP and read into samples, and small
//! namespaces to attach to (a veth with an address, nothing behind it: `--no-probe`).

use super::docker::dnsredir_bin;
use super::netns::{run, Netns};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `dnsredir --metrics 127.0.0.1:0`, killed on Drop.
pub struct MetricsServer {
    child: Child,
    pub addr: SocketAddr,
}

impl MetricsServer {
    pub fn start() -> MetricsServer {
        let mut child = Command::new(dnsredir_bin())
            .args(["--metrics", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dnsredir --metrics starts");
        let stderr = child.stderr.take().expect("stderr piped");
        let mut line = String::new();
        let _ = BufReader::new(stderr).read_line(&mut line);
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("no address in dnsredir --metrics's first line: {line:?}")
            });
        MetricsServer { child, addr }
    }

    /// `GET path`: (status code, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(self.addr).expect("connects");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        write!(stream, "GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.addr).expect("request");
        let mut text = String::new();
        stream.read_to_string(&mut text).expect("response");
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let code = head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no status in {head:?}"));
        (code, body.to_string())
    }

    /// `GET /metrics`, which must succeed.
    pub fn scrape(&self) -> Page {
        let (code, body) = self.get("/metrics");
        assert_eq!(code, 200, "{body}");
        Page::parse(&body)
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A page of the text format: its samples by series (`name{labels}` as written) and its text.
pub struct Page {
    pub text: String,
    pub samples: BTreeMap<String, f64>,
}

impl Page {
    pub fn parse(text: &str) -> Page {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| {
                let (series, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("{l:?}"));
                let value = value.parse().unwrap_or_else(|_| panic!("value of {l:?}"));
                (series.to_string(), value)
            })
            .collect();
        Page {
            text: text.to_string(),
            samples,
        }
    }

    /// The samples of metric `name` whose labels include `label="<label>"`.
    pub fn of(&self, name: &str, label: &str) -> Vec<(&str, f64)> {
        let wanted = format!("label=\"{label}\"");
        self.samples
            .iter()
            .filter(|(s, _)| {
                s.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{'))
                    && s.contains(&wanted)
            })
            .map(|(s, v)| (s.as_str(), *v))
            .collect()
    }

    /// The one sample of `name` for the attachment labelled `label`.
    pub fn value(&self, name: &str, label: &str) -> f64 {
        match self.of(name, label).as_slice() {
            [(_, v)] => *v,
            other => panic!("{name} for label {label:?}: {other:?} in\n{}", self.text),
        }
    }
}

/// A namespace with eth0 (a veth whose peer stays in it) at 10.77.0.2/24: enough for an attach
/// with `--resolver 10.77.0.1 --upstream 10.77.0.53 --no-probe`.
pub fn small_namespace(tag: &str) -> Netns {
    let ns = Netns::new(tag).expect("netns");
    let n = ns.name.as_str();
    for cmd in [
        "link add eth0 type veth peer name peer0",
        "addr add 10.77.0.2/24 dev eth0",
        "link set eth0 up",
        "link set peer0 up",
    ] {
        let mut argv = vec!["ip", "-n", n];
        argv.extend(cmd.split(' '));
        run(&argv).unwrap_or_else(|e| panic!("{e}"));
    }
    ns
}

/// The attach [`small_namespace`] is made for.
pub const SMALL_ATTACH: [&str; 5] = [
    "--resolver",
    "10.77.0.1",
    "--upstream",
    "10.77.0.53",
    "--no-probe",
];
