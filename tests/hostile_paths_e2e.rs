//! A container's resolv.conf cannot steer dnsredir. dnsredir runs as root and reads
//! `/etc/resolv.conf` of the `--pid` process; here that process is chrooted into a directory of
//! the test (its "container root") inside the CNI-style container namespace, and its
//! resolv.conf is hostile: a symlink out of the root to a host file, a FIFO, /dev/zero, a file
//! larger than any resolv.conf. Whatever it is, dnsredir takes over only a nameserver named
//! inside the root, or refuses in one line (exit 1, nothing attached), within seconds and
//! within a memory limit. And a `--netns` path is opened only if it is a namespace file.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod support;
use support::cni::Cni;
use support::netns::{ns_identity, ns_run, Netns};
use support::{dnsredir_bin, has_clsact};

/// What a refusal may take: it waits on nothing but dnsredir's look for Docker's resolver first
/// (under a second).
const QUICK: Duration = Duration::from_secs(5);
/// Killed after this: a hang fails the test instead of holding it.
const KILL_AFTER: Duration = Duration::from_secs(20);
/// RLIMIT_AS of dnsredir: a read without an end dies of it instead of taking the host's memory.
const MEMORY_LIMIT: u64 = 512 << 20;
/// dnsredir's cap (loader/namespace/container_file.rs).
const MAX_LEN: usize = 64 * 1024;

/// A directory tree of the test, removed on drop: `root/` is the container's root, `host/` holds
/// the host's files outside it.
struct Tree(PathBuf);

impl Tree {
    fn new() -> Tree {
        let dir = std::env::temp_dir().join(format!(
            "dnsredir-hostile-{}-{}",
            std::process::id(),
            support::netns::next_id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["root/etc", "root/dev", "host"] {
            std::fs::create_dir_all(dir.join(sub)).expect("mkdir");
        }
        Tree(dir)
    }

    fn root(&self) -> PathBuf {
        self.0.join("root")
    }

    /// `/etc/resolv.conf` of the container, as the host names it.
    fn resolv_conf(&self) -> PathBuf {
        self.root().join("etc/resolv.conf")
    }

    /// A host path (absolute) as the container's root holds it.
    fn in_root(&self, host_path: &Path) -> PathBuf {
        let inside = self
            .root()
            .join(host_path.strip_prefix("/").expect("an absolute path"));
        std::fs::create_dir_all(inside.parent().expect("a parent")).expect("mkdir");
        inside
    }

    /// Makes the container's resolv.conf a symlink to `target`.
    fn link_resolv_conf(&self, target: &Path) {
        let _ = std::fs::remove_file(self.resolv_conf());
        symlink(target, self.resolv_conf()).expect("symlink");
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn c_path(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).expect("a path without NUL")
}

fn mkfifo(path: &Path) {
    // SAFETY: a NUL-terminated path alive for the call.
    assert_eq!(
        unsafe { libc::mkfifo(c_path(path).as_ptr(), 0o644) },
        0,
        "mkfifo {path:?}"
    );
}

/// A process in `ctr`'s network namespace whose root is `root`: a forked copy of the test that
/// enters the namespace, chroots and waits for SIGKILL (on drop).
struct Chrooted {
    pid: libc::pid_t,
}

impl Chrooted {
    fn start(ctr: &Netns, root: &Path) -> Chrooted {
        let ns = File::open(ctr.path()).expect("open the namespace");
        let root_c = c_path(root);
        // SAFETY: the child runs only async-signal-safe calls (setns, chroot, chdir, pause,
        // _exit) on data prepared before the fork, and never returns.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            unsafe {
                if libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) != 0
                    || libc::chroot(root_c.as_ptr()) != 0
                    || libc::chdir(c"/".as_ptr()) != 0
                {
                    libc::_exit(1);
                }
                loop {
                    libc::pause();
                }
            }
        }
        let p = Chrooted { pid };
        let (want_ns, want_root) = (ns_identity(&ctr.path()), std::fs::metadata(root).ok());
        let deadline = Instant::now() + QUICK;
        loop {
            let ns_now = ns_identity(&format!("/proc/{pid}/ns/net"));
            let root_now = std::fs::metadata(format!("/proc/{pid}/root")).ok();
            let same_root = match (&root_now, &want_root) {
                (Some(a), Some(b)) => {
                    use std::os::unix::fs::MetadataExt;
                    (a.dev(), a.ino()) == (b.dev(), b.ino())
                }
                _ => false,
            };
            if ns_now == want_ns && same_root {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "the chrooted process did not settle"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn pid(&self) -> String {
        self.pid.to_string()
    }
}

impl Drop for Chrooted {
    fn drop(&mut self) {
        // SAFETY: our own child; signalling and reaping it touch no memory of ours.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
        }
    }
}

/// dnsredir's outcome: exit code (-1: killed by a signal), stdout, stderr, how long it took.
struct Run {
    code: i32,
    out: String,
    err: String,
    took: Duration,
}

/// Runs dnsredir under [`MEMORY_LIMIT`], killed after [`KILL_AFTER`] (then the test fails).
fn dnsredir(args: &[&str]) -> Run {
    let started = Instant::now();
    let mut cmd = Command::new(dnsredir_bin());
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe and touches only the limit passed.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: MEMORY_LIMIT,
                rlim_max: MEMORY_LIMIT,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().expect("spawn dnsredir");
    let pid = child.id() as libc::pid_t;
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    let output = match finished.recv_timeout(KILL_AFTER) {
        Ok(output) => output.expect("wait for dnsredir"),
        Err(_) => {
            // SAFETY: our child, not reaped yet (its waiting thread is still in wait).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let output = finished.recv().expect("the waiting thread");
            panic!(
                "dnsredir {args:?} hung: killed after {KILL_AFTER:?}; stderr: {}",
                String::from_utf8_lossy(&output.map(|o| o.stderr).unwrap_or_default())
            );
        }
    };
    Run {
        code: output.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&output.stdout).into_owned(),
        err: String::from_utf8_lossy(&output.stderr).into_owned(),
        took: started.elapsed(),
    }
}

fn attach(net: &Cni, p: &Chrooted) -> Run {
    dnsredir(&["--pid", &p.pid(), "--upstream", &net.up.ip().to_string()])
}

/// Nothing of dnsredir's in the container namespace: no filter, no clsact qdisc, `--status`
/// says not attached.
fn assert_nothing_attached(net: &Cni, p: &Chrooted) {
    for dev in ["eth0", "lo"] {
        assert!(!has_clsact(&net.ctr.name, dev), "a clsact qdisc on {dev}");
    }
    let status = dnsredir(&["--pid", &p.pid(), "--status"]);
    assert_eq!(status.code, 3, "--status: {}{}", status.out, status.err);
    assert!(status.out.contains("not attached"), "{}", status.out);
}

/// dnsredir refused quickly in one line that names the container's file, the pid and
/// `--resolver`, and says `problem`; nothing attached.
fn assert_refused(net: &Cni, p: &Chrooted, run: &Run, problem: &str) {
    let Run {
        code,
        out,
        err,
        took,
    } = run;
    assert_eq!(*code, 1, "stdout: {out}\nstderr: {err}");
    assert!(out.is_empty(), "{out}");
    let pid = p.pid();
    assert_eq!(
        err.trim_end(),
        format!(
            "dnsredir: error: cannot read the container's /etc/resolv.conf (pid {pid}): {problem}; nothing attached; name the nameservers to take over with --resolver IP[:PORT] instead"
        )
    );
    assert!(*took < QUICK, "took {took:?}");
    assert_nothing_attached(net, p);
}

fn egress_filters(net: &Cni) -> usize {
    ns_run(
        &net.ctr.name,
        &["tc", "filter", "show", "dev", "eth0", "egress"],
    )
    .unwrap_or_default()
    .lines()
    .filter(|l| l.contains("dnsredir"))
    .count()
}

#[test]
#[ignore = "needs root: network namespaces, chroot, bpf(2)"]
fn a_symlink_out_of_the_root_is_followed_inside_it_never_to_the_hosts_file() {
    let net = Cni::new();
    let tree = Tree::new();
    let host_file = tree.0.join("host/resolv.conf");
    std::fs::write(&host_file, "nameserver 10.66.0.1\n").expect("host file");
    tree.link_resolv_conf(&host_file);
    let p = Chrooted::start(&net.ctr, &tree.root());

    // The path of the host's file does not exist inside the root.
    let run = attach(&net, &p);
    assert_refused(
        &net,
        &p,
        &run,
        "cannot open it inside the container's root: No such file or directory (os error 2)",
    );
    assert!(!run.err.contains("10.66.0.1"), "{}", run.err);

    // The same path inside the root: that file counts, the host's does not.
    let ns = net.ns;
    std::fs::write(
        tree.in_root(&host_file),
        format!("nameserver {}\n", ns.ip()),
    )
    .expect("in-root file");
    let run = attach(&net, &p);
    assert_eq!(run.code, 0, "stdout: {}\nstderr: {}", run.out, run.err);
    assert!(
        run.out.contains(&format!("the nameservers {ns}")),
        "{}",
        run.out
    );
    assert!(!run.out.contains("10.66.0.1"), "{}", run.out);
    assert_eq!(egress_filters(&net), 1);
    let status = dnsredir(&["--pid", &p.pid(), "--status", "--json"]);
    assert_eq!(status.code, 0, "{}{}", status.out, status.err);
    assert!(
        status.out.contains(&format!("\"nameservers\":[\"{ns}\"]")),
        "{}",
        status.out
    );
    net.assert_answers(
        ns,
        net.upstream.answer(),
        "the in-root nameserver is taken over",
    );
    let detach = dnsredir(&["--pid", &p.pid(), "--detach"]);
    assert_eq!(detach.code, 0, "{}{}", detach.out, detach.err);
    assert_nothing_attached(&net, &p);
}

#[test]
#[ignore = "needs root: network namespaces, chroot, bpf(2)"]
fn a_fifo_is_refused_at_once_never_waited_on() {
    let net = Cni::new();
    let tree = Tree::new();
    mkfifo(&tree.resolv_conf());
    let p = Chrooted::start(&net.ctr, &tree.root());
    let run = attach(&net, &p);
    assert_refused(&net, &p, &run, "it is a FIFO, not a regular file");

    // A symlink to a FIFO: there is one at that path on the host and inside the root.
    let host_fifo = tree.0.join("host/fifo");
    mkfifo(&host_fifo);
    mkfifo(&tree.in_root(&host_fifo));
    tree.link_resolv_conf(&host_fifo);
    let run = attach(&net, &p);
    assert_refused(&net, &p, &run, "it is a FIFO, not a regular file");
}

#[test]
#[ignore = "needs root: network namespaces, chroot, mknod, bpf(2)"]
fn dev_zero_and_a_file_past_the_cap_are_refused_within_bounded_memory() {
    let net = Cni::new();
    let tree = Tree::new();
    tree.link_resolv_conf(Path::new("/dev/zero"));
    let p = Chrooted::start(&net.ctr, &tree.root());

    // The host's /dev/zero is not in the root.
    let run = attach(&net, &p);
    assert_refused(
        &net,
        &p,
        &run,
        "cannot open it inside the container's root: No such file or directory (os error 2)",
    );

    // The root's own /dev/zero: a device, never opened (whether or not its file system is
    // mounted nodev).
    let zero = c_path(&tree.root().join("dev/zero"));
    // SAFETY: a NUL-terminated path alive for the call.
    let made = unsafe { libc::mknod(zero.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 5)) };
    assert_eq!(made, 0, "mknod: {}", std::io::Error::last_os_error());
    let run = attach(&net, &p);
    assert_refused(
        &net,
        &p,
        &run,
        "it is a character device, not a regular file",
    );

    // A regular file one byte past the cap, its nameserver line first.
    let mut text = format!("nameserver {}\n", net.ns.ip()).into_bytes();
    text.resize(MAX_LEN + 1, b'#');
    std::fs::remove_file(tree.resolv_conf()).expect("rm");
    std::fs::write(tree.resolv_conf(), &text).expect("large file");
    let run = attach(&net, &p);
    assert_refused(
        &net,
        &p,
        &run,
        "it is larger than 64 KiB, more than any resolv.conf",
    );
    // At the cap, it is read.
    text.truncate(MAX_LEN);
    std::fs::write(tree.resolv_conf(), &text).expect("file at the cap");
    let run = attach(&net, &p);
    assert_eq!(run.code, 0, "stdout: {}\nstderr: {}", run.out, run.err);
    let detach = dnsredir(&["--pid", &p.pid(), "--detach"]);
    assert_eq!(detach.code, 0, "{}{}", detach.out, detach.err);
    assert_eq!(egress_filters(&net), 0);
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn a_netns_path_to_anything_but_a_namespace_is_refused_without_opening_it() {
    let net = Cni::new();
    let tree = Tree::new();
    let fifo = tree.0.join("host/fifo");
    mkfifo(&fifo);
    let link = tree.0.join("host/link");
    symlink(&fifo, &link).expect("symlink");
    let file = tree.0.join("host/file");
    std::fs::write(&file, "nameserver 10.66.0.1\n").expect("file");
    for path in [&fifo, &link, &file, Path::new("/dev/zero")] {
        let path = path.to_str().expect("a UTF-8 path");
        let run = dnsredir(&["--netns", path, "--status"]);
        assert_eq!(run.code, 1, "{path}: {}{}", run.out, run.err);
        assert_eq!(
            run.err.trim_end(),
            format!("dnsredir: error: cannot open network namespace {path}: not a namespace file; pass /proc/PID/ns/net or /var/run/netns/NAME")
        );
        assert!(run.took < QUICK, "{path}: took {:?}", run.took);
    }
    // A symlink to a namespace is followed: the operator's path names what it names.
    let to_ns = tree.0.join("host/ns");
    symlink(net.ctr.path(), &to_ns).expect("symlink");
    let run = dnsredir(&["--netns", to_ns.to_str().expect("UTF-8"), "--status"]);
    assert_eq!(run.code, 3, "{}{}", run.out, run.err);
    assert!(run.out.contains("not attached"), "{}", run.out);
}
