//! Network namespaces: entering one from a thread, running commands in one, RAII namespaces,
//! a TCP echo server, unique names.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Prefix of every namespace this harness creates: `drt<pid>x<counter><role>`.
pub const NS_PREFIX: &str = "drt";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A number unique within this process (1, 2, ...).
pub fn next_id() -> u32 {
    COUNTER.fetch_add(1, Ordering::SeqCst) + 1
}

/// `/var/run/netns/NAME` for a name, or the argument itself when it is already a path.
pub fn netns_path(ns: &str) -> String {
    if ns.starts_with('/') {
        ns.to_string()
    } else {
        format!("/var/run/netns/{ns}")
    }
}

/// Moves the calling thread into network namespace `ns` (a name or a path).
pub fn enter_netns(ns: &str) -> Result<(), String> {
    let path = netns_path(ns);
    let f = std::fs::File::open(&path).map_err(|e| format!("open {path}: {e}"))?;
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(format!("setns {path}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Runs `f` on a fresh thread that has entered `ns`; a panic in `f` is re-raised here.
pub fn in_netns<T: Send, F: FnOnce() -> T + Send>(ns: &str, f: F) -> Result<T, String> {
    std::thread::scope(|s| {
        let h = s.spawn(|| -> Result<T, String> {
            enter_netns(ns)?;
            Ok(f())
        });
        match h.join() {
            Ok(r) => r,
            Err(p) => std::panic::resume_unwind(p),
        }
    })
}

/// Output of a command.
#[derive(Clone, Debug)]
pub struct CmdOutput {
    /// Exit code; -1 when killed by a signal (or by the timeout).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `argv` with a timeout (killed after it), capturing stdout and stderr.
pub fn run_timeout(argv: &[&str], timeout: Duration) -> Result<CmdOutput, String> {
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn {argv:?}: {e}"))?;
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let to = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let te = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let st = child.wait().map_err(|e| e.to_string())?;
                let _ = (to.join(), te.join());
                return Err(format!("{argv:?} did not finish within {timeout:?} ({st})"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("wait {argv:?}: {e}")),
        }
    };
    Ok(CmdOutput {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&to.join().unwrap_or_default()).into_owned(),
        stderr: String::from_utf8_lossy(&te.join().unwrap_or_default()).into_owned(),
    })
}

/// Runs `argv` (30 s timeout); Ok(stdout) when it exits 0, otherwise Err with its stderr.
pub fn run(argv: &[&str]) -> Result<String, String> {
    let o = run_timeout(argv, Duration::from_secs(30))?;
    if o.code != 0 {
        return Err(format!(
            "{} exited {}: {}{}",
            argv.join(" "),
            o.code,
            o.stderr.trim(),
            o.stdout.trim()
        ));
    }
    Ok(o.stdout)
}

/// `ip netns exec NS argv...` (see [`run`]).
pub fn ns_run(ns: &str, argv: &[&str]) -> Result<String, String> {
    let mut full = vec!["ip", "netns", "exec", ns];
    full.extend_from_slice(argv);
    run(&full)
}

/// `ip netns exec NS argv...` with a timeout, whatever the exit code.
pub fn ns_run_timeout(ns: &str, argv: &[&str], timeout: Duration) -> Result<CmdOutput, String> {
    let mut full = vec!["ip", "netns", "exec", ns];
    full.extend_from_slice(argv);
    run_timeout(&full, timeout)
}

/// (device, inode) of a namespace file, to compare namespaces.
pub fn ns_identity(path: &str) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The ifindex of `dev` in `ns` (from `ip -o link show`).
pub fn ifindex(ns: &str, dev: &str) -> Result<u32, String> {
    let out = run(&["ip", "-n", ns, "-o", "link", "show", "dev", dev])?;
    out.split(':')
        .next()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| format!("no ifindex in {out:?}"))
}

/// Deletes namespaces `drt<pid>x...` left behind by test processes that no longer exist
/// (e.g. killed with SIGKILL, so no Drop ran). Never touches other names or live processes' ones.
pub fn cleanup_stale_namespaces() {
    let Ok(list) = run(&["ip", "netns", "list"]) else {
        return;
    };
    for line in list.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix(NS_PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('x').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = run(&["ip", "netns", "del", name]);
        }
    }
}

/// For the tests marked `#[ignore = "needs root: ..."]`: they run only when asked for with
/// `cargo test -- --include-ignored` (as `scripts/test` does, as root). Asked for without root,
/// the test fails here with a clear message instead of passing without having run.
pub fn require_root() {
    if unsafe { libc::geteuid() } != 0 {
        panic!(
            "this test needs root (bpf(2), network namespaces, tc, iptables): run the ignored tests \
             as root (scripts/test does), or leave out --include-ignored to skip them"
        );
    }
}

/// A network namespace deleted on Drop. `name` is unique: `drt<pid>x<n><tag>`.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Creates a namespace with `lo` up, for a test that needs root ([`require_root`] first).
    pub fn new(tag: &str) -> Result<Netns, String> {
        require_root();
        let name = format!("{NS_PREFIX}{}x{}{tag}", std::process::id(), next_id());
        run(&["ip", "netns", "add", &name])?;
        let ns = Netns { name };
        run(&["ip", "-n", &ns.name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn path(&self) -> String {
        netns_path(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = run(&["ip", "netns", "del", &self.name]) {
            eprintln!("cleanup: {e}");
        }
    }
}

/// A TCP echo server inside a namespace (any number of connections); stops on Drop.
pub struct TcpEcho {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    pub addr: SocketAddr,
}

impl TcpEcho {
    pub fn start(ns: &str, addr: SocketAddr) -> Result<TcpEcho, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let (ns, st) = (ns.to_string(), stop.clone());
        let thread = std::thread::spawn(move || {
            let l = match enter_netns(&ns)
                .and_then(|_| TcpListener::bind(addr).map_err(|e| e.to_string()))
            {
                Ok(l) => l,
                Err(e) => return tx.send(Err(format!("echo bind {addr}: {e}"))).unwrap_or(()),
            };
            let _ = l.set_nonblocking(true);
            let _ = tx.send(Ok(l.local_addr().unwrap()));
            let mut conns: Vec<JoinHandle<()>> = Vec::new();
            while !st.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((mut s, _)) => {
                        let st2 = st.clone();
                        conns.push(std::thread::spawn(move || {
                            let _ = s.set_nonblocking(false);
                            let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
                            let mut buf = [0u8; 4096];
                            while !st2.load(Ordering::SeqCst) {
                                match s.read(&mut buf) {
                                    Ok(0) => return,
                                    Ok(n) => {
                                        if s.write_all(&buf[..n]).is_err() {
                                            return;
                                        }
                                    }
                                    Err(e)
                                        if matches!(
                                            e.kind(),
                                            ErrorKind::WouldBlock | ErrorKind::TimedOut
                                        ) => {}
                                    Err(_) => return,
                                }
                            }
                        }));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
            for c in conns {
                let _ = c.join();
            }
        });
        let addr = rx.recv().map_err(|e| e.to_string())??;
        Ok(TcpEcho {
            stop,
            thread: Some(thread),
            addr,
        })
    }
}

impl Drop for TcpEcho {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Connects from inside `ns` to `addr`, sends `payload`, returns what came back (same length).
pub fn tcp_echo_roundtrip(
    ns: &str,
    addr: SocketAddr,
    payload: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    in_netns(ns, || {
        let mut s = TcpStream::connect_timeout(&addr, timeout)
            .map_err(|e| format!("connect {addr}: {e}"))?;
        s.set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        s.write_all(payload).map_err(|e| format!("send: {e}"))?;
        let mut back = vec![0u8; payload.len()];
        s.read_exact(&mut back)
            .map_err(|e| format!("read echo from {addr}: {e}"))?;
        Ok(back)
    })?
}

/// `ping -c COUNT ADDR` inside `ns` (busybox's ping when there is no `ping` on PATH);
/// the number of replies received, or Err with its output when it could not run.
pub fn ping(ns: &str, addr: std::net::Ipv4Addr, count: u32) -> Result<u32, String> {
    let (a, c) = (addr.to_string(), count.to_string());
    let have_ping = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("ping").exists()))
        .unwrap_or(false);
    let mut argv = if have_ping {
        vec!["ping"]
    } else {
        vec!["busybox", "ping"]
    };
    argv.extend(["-c", &c, "-w", "6", &a]);
    let o = ns_run_timeout(ns, &argv, Duration::from_secs(15))?;
    // "N packets transmitted, M (packets) received"
    let text = o.stdout.clone() + &o.stderr;
    text.split(',')
        .find(|p| p.contains("received"))
        .and_then(|p| p.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("{argv:?} exited {}: {}", o.code, text.trim()))
}
