//! A file of a container, read the way the container's own processes find it: the path and
//! every symbolic link on it resolved inside the container's root, never from dnsredir's.
//!
//! Why: dnsredir runs as root in the host's root. Opened as a plain path,
//! `/proc/PID/root/etc/resolv.conf` has the kernel follow an absolute symlink in the container
//! from the *reader's* root, so the container chooses which host file root reads — or hands it
//! a FIFO that blocks forever, or `/dev/zero`, which never ends. Here the path is resolved by
//! openat2(2) with `RESOLVE_IN_ROOT` from a descriptor of the process's root (`/`, `..` and
//! absolute symlinks stay inside it) and `RESOLVE_NO_MAGICLINKS` (a container has its own
//! /proc, whose `/proc/*/root` and `/proc/*/fd/*` links would lead out again), as O_PATH: the
//! file is found, not opened. It is opened for reading only if it is a regular file, and at
//! most [`MAX_LEN`] bytes of it are read, all within [`READ_TIMEOUT`].

use std::ffi::CString;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::sync::mpsc;
use std::time::Duration;

/// The most of a container's file dnsredir reads: 64 KiB. glibc reads resolv.conf whole,
/// whatever its size, but a real one is a few hundred bytes (at most 3 nameservers, 6 search
/// domains, a few options); anything longer is refused rather than read.
pub const MAX_LEN: usize = 64 * 1024;

/// How long opening and reading may take. A local file takes microseconds; the container's
/// root may be a file system served by a process (FUSE) that never answers.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a container's file was not read.
#[derive(Debug)]
pub enum Refusal {
    /// No openat2(2) (ENOSYS): Linux before 5.6, or a seccomp filter that hides it. Nothing
    /// else resolves a path inside another root.
    KernelTooOld,
    /// `/proc/PID/root` or `/proc/PID/ns/net` cannot be opened (the process is gone, or not ours
    /// to look into).
    Process(io::Error),
    /// The pid now names a process outside the namespace being changed: the one named exited
    /// and its pid was reused, or it moved to another namespace.
    OtherNamespace,
    /// The path does not lead to a file inside the root: missing, a loop, a /proc magic link,
    /// no permission.
    Open(io::Error),
    /// It is a FIFO, a device, a socket or a directory: reading one may block or never end.
    NotRegular(&'static str),
    /// More than [`MAX_LEN`] bytes.
    TooLarge,
    Read(io::Error),
    /// Opening and reading took more than [`READ_TIMEOUT`].
    TimedOut,
    /// The thread that does the reading could not start.
    Thread(io::Error),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::KernelTooOld => write!(
                f,
                "the kernel is too old to read it safely inside the container's root (openat2(2) is missing: Linux 5.6 or newer has it, unless a seccomp filter hides it)"
            ),
            Refusal::Process(e) => write!(f, "cannot look into the process: {e}"),
            Refusal::OtherNamespace => write!(
                f,
                "the process is no longer in the namespace being changed (did it exit?)"
            ),
            Refusal::Open(e) if e.raw_os_error() == Some(libc::ELOOP) => write!(
                f,
                "its symbolic links loop or lead through a /proc magic link ({e})"
            ),
            Refusal::Open(e) => write!(f, "cannot open it inside the container's root: {e}"),
            Refusal::NotRegular(kind) => write!(f, "it is {kind}, not a regular file"),
            Refusal::TooLarge => write!(
                f,
                "it is larger than {} KiB, more than any resolv.conf",
                MAX_LEN / 1024
            ),
            Refusal::Read(e) => write!(f, "reading it failed: {e}"),
            Refusal::TimedOut => write!(
                f,
                "opening and reading it took more than {} s",
                READ_TIMEOUT.as_secs()
            ),
            Refusal::Thread(e) => write!(f, "cannot start a thread to read it: {e}"),
        }
    }
}

impl std::error::Error for Refusal {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Refusal::Process(e) | Refusal::Open(e) | Refusal::Read(e) | Refusal::Thread(e) => {
                Some(e)
            }
            _ => None,
        }
    }
}

/// A process's root directory, held from one descriptor of `/proc/PID`: what is asked of it
/// later is asked of that process, even once its pid is reused (then the kernel answers
/// ENOENT).
pub struct ProcessRoot {
    proc_dir: OwnedFd,
    root: OwnedFd,
}

impl ProcessRoot {
    pub fn open(pid: u32) -> Result<ProcessRoot, Refusal> {
        let proc_dir = File::options()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
            .open(format!("/proc/{pid}"))
            .map_err(Refusal::Process)?;
        let root = openat(proc_dir.as_fd(), "root", libc::O_PATH | libc::O_DIRECTORY)
            .map_err(Refusal::Process)?;
        Ok(ProcessRoot {
            proc_dir: proc_dir.into(),
            root,
        })
    }

    /// (device, inode) of the process's network namespace, to compare with the one entered.
    pub fn net_namespace(&self) -> io::Result<(u64, u64)> {
        let ns = File::from(openat(self.proc_dir.as_fd(), "ns/net", libc::O_PATH)?);
        ns.metadata().map(|m| (m.dev(), m.ino()))
    }

    /// The bytes of `path` (as the container names it: `/etc/resolv.conf`), resolved inside the
    /// process's root, within [`READ_TIMEOUT`].
    pub fn read(&self, path: &str) -> Result<Vec<u8>, Refusal> {
        let root = self.root.try_clone().map_err(Refusal::Process)?;
        let path = path.to_string();
        with_deadline(READ_TIMEOUT, move || read_in_root(root.as_fd(), &path))
    }
}

/// The bytes of `path`, resolved inside the directory `root` as if it were `/`: a regular file
/// of at most [`MAX_LEN`] bytes. Nothing else is even opened for reading: opening a device can
/// act (a watchdog starts counting, a tape rewinds), and a container that may mknod can put
/// one at any path of its root, which dnsredir, outside the container's device cgroup, could
/// open.
pub fn read_in_root(root: BorrowedFd, path: &str) -> Result<Vec<u8>, Refusal> {
    let found = File::from(find_in_root(root, path)?);
    let meta = found.metadata().map_err(Refusal::Read)?;
    if !meta.file_type().is_file() {
        return Err(Refusal::NotRegular(kind(&meta.file_type())));
    }
    // The file found, through its own descriptor: a rename in between changes nothing.
    let mut file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(format!("/proc/self/fd/{}", found.as_raw_fd()))
        .map_err(Refusal::Read)?;
    read_capped(&mut file, MAX_LEN)
}

/// At most `cap` bytes, or [`Refusal::TooLarge`] when there is more: read up to one byte past
/// the cap, whatever size the file claims (a file can grow while it is read, and /proc and
/// sysfs files claim 0 or 4096).
fn read_capped(file: &mut impl Read, cap: usize) -> Result<Vec<u8>, Refusal> {
    let mut bytes = Vec::new();
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    file.take(limit)
        .read_to_end(&mut bytes)
        .map_err(Refusal::Read)?;
    if bytes.len() > cap {
        return Err(Refusal::TooLarge);
    }
    Ok(bytes)
}

/// The file at `path` below `root` taken as the root itself, by openat2(2) with O_PATH: found,
/// not opened (no FIFO waits, no device sees an open); never through a /proc magic link.
fn find_in_root(root: BorrowedFd, path: &str) -> Result<OwnedFd, Refusal> {
    // The kernel's `struct open_how` (linux/openat2.h); libc's cannot be built outside libc.
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    };
    let path = c_path(path).map_err(Refusal::Open)?;
    // SAFETY: a valid directory fd, a NUL-terminated path and an open_how of the size passed,
    // all alive for the call; the kernel only reads them.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::ENOSYS) => Refusal::KernelTooOld,
            _ => Refusal::Open(e),
        });
    }
    // SAFETY: openat2 returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// openat(2) relative to `dir` (for /proc's own entries, which the kernel makes).
fn openat(dir: BorrowedFd, path: &str, flags: libc::c_int) -> io::Result<OwnedFd> {
    let path = c_path(path)?;
    // SAFETY: a valid directory fd and a NUL-terminated path alive for the call.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), path.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `path` as a C string; a leading `/` goes, so that it is relative to the directory given.
fn c_path(path: &str) -> io::Result<CString> {
    CString::new(path.trim_start_matches('/'))
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a path with a NUL byte"))
}

fn kind(t: &std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "an unknown kind of file"
    }
}

/// `work` on a thread of its own, given up after `timeout`: a read stuck in a file system
/// cannot hold dnsredir. The thread is left behind then, and ends with the process.
fn with_deadline<T: Send + 'static>(
    timeout: Duration,
    work: impl FnOnce() -> Result<T, Refusal> + Send + 'static,
) -> Result<T, Refusal> {
    let (done, result) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("dnsredir-read".into())
        .spawn(move || {
            // The receiver is gone only when the deadline passed: nobody wants the result.
            let _ = done.send(work());
        })
        .map_err(Refusal::Thread)?;
    result
        .recv_timeout(timeout)
        .unwrap_or(Err(Refusal::TimedOut))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::path::{Path, PathBuf};

    /// A directory of its own under the system's temporary directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let dir = std::env::temp_dir().join(format!(
                "dnsredir-container-file-{tag}-{}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("etc")).expect("temp dir");
            TempDir(dir)
        }

        fn read(&self, path: &str) -> Result<Vec<u8>, Refusal> {
            read_in_root(dir_fd(&self.0).as_fd(), path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn dir_fd(path: &Path) -> OwnedFd {
        File::options()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
            .open(path)
            .expect("open a directory")
            .into()
    }

    fn mkfifo(path: &Path) {
        let c = CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: a NUL-terminated path alive for the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    }

    #[test]
    fn an_absolute_symlink_is_resolved_inside_the_root() {
        let host = TempDir::new("host");
        let host_file = host.0.join("resolv.conf");
        std::fs::write(&host_file, "nameserver 10.66.0.1\n").expect("host file");
        let root = TempDir::new("root");
        symlink(&host_file, root.0.join("etc/resolv.conf")).expect("symlink");

        // Nothing at that path inside the root: refused, the host's file unread.
        match root.read("/etc/resolv.conf") {
            Err(Refusal::Open(e)) => assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}"),
            other => panic!("{other:?}"),
        }
        // The same path inside the root: that file, not the host's.
        let inside = root.0.join(host_file.strip_prefix("/").expect("absolute"));
        std::fs::create_dir_all(inside.parent().expect("parent")).expect("mkdir");
        std::fs::write(&inside, "nameserver 10.0.0.2\n").expect("in-root file");
        assert_eq!(
            root.read("/etc/resolv.conf").expect("read"),
            b"nameserver 10.0.0.2\n"
        );
    }

    #[test]
    fn dot_dot_stops_at_the_root() {
        let root = TempDir::new("dotdot");
        std::fs::write(root.0.join("resolv.conf"), "nameserver 10.0.0.3\n").expect("file");
        let up: String = "../".repeat(32);
        symlink(format!("{up}resolv.conf"), root.0.join("etc/resolv.conf")).expect("symlink");
        assert_eq!(
            root.read("etc/resolv.conf").expect("read"),
            b"nameserver 10.0.0.3\n"
        );
        // From the host's /, this link would be the host's /etc/passwd.
        symlink(format!("{up}etc/passwd"), root.0.join("etc/escape")).expect("symlink");
        match root.read("etc/escape") {
            Err(Refusal::Open(e)) => assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn magic_links_are_refused() {
        // dnsredir's own /: /proc/self/root is a magic link, the way out of any root.
        match read_in_root(
            dir_fd(Path::new("/")).as_fd(),
            "/proc/self/root/etc/hostname",
        ) {
            Err(Refusal::Open(e)) => assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn only_a_regular_file_is_read() {
        let root = TempDir::new("kinds");
        mkfifo(&root.0.join("etc/resolv.conf"));
        let started = std::time::Instant::now();
        assert!(matches!(
            root.read("/etc/resolv.conf"),
            Err(Refusal::NotRegular("a FIFO"))
        ));
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "no wait on a FIFO"
        );
        // A symlink to one, too.
        symlink("/etc/resolv.conf", root.0.join("etc/link")).expect("symlink");
        assert!(matches!(
            root.read("/etc/link"),
            Err(Refusal::NotRegular("a FIFO"))
        ));
        assert!(matches!(
            root.read("/etc"),
            Err(Refusal::NotRegular("a directory"))
        ));
        // /dev/zero of the host is not there from inside the root.
        symlink("/dev/zero", root.0.join("etc/zero")).expect("symlink");
        assert!(matches!(root.read("/etc/zero"), Err(Refusal::Open(_))));
        // ...and the host's own /dev/zero, read with / as the root, is a device.
        assert!(matches!(
            read_in_root(dir_fd(Path::new("/")).as_fd(), "/dev/zero"),
            Err(Refusal::NotRegular("a character device"))
        ));
    }

    #[test]
    fn at_most_the_cap_is_read() {
        let root = TempDir::new("cap");
        let at_cap = vec![b'#'; MAX_LEN];
        std::fs::write(root.0.join("etc/resolv.conf"), &at_cap).expect("file");
        assert_eq!(root.read("/etc/resolv.conf").expect("read").len(), MAX_LEN);
        std::fs::write(
            root.0.join("etc/resolv.conf"),
            [&at_cap[..], b"\n"].concat(),
        )
        .expect("file");
        assert!(matches!(
            root.read("/etc/resolv.conf"),
            Err(Refusal::TooLarge)
        ));
        // An endless source stops one byte past the cap.
        let mut endless = io::repeat(0);
        assert!(matches!(
            read_capped(&mut endless, 10),
            Err(Refusal::TooLarge)
        ));
        let mut short = io::Cursor::new(b"abc".to_vec());
        assert_eq!(read_capped(&mut short, 3).expect("read"), b"abc");
    }

    #[test]
    fn a_stuck_read_is_given_up() {
        let started = std::time::Instant::now();
        let result: Result<(), Refusal> = with_deadline(Duration::from_millis(50), || {
            std::thread::sleep(Duration::from_secs(5));
            Ok(())
        });
        assert!(matches!(result, Err(Refusal::TimedOut)));
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(
            with_deadline(Duration::from_secs(5), || Ok(7)).expect("in time"),
            7
        );
    }

    #[test]
    fn a_process_root_is_its_root() {
        let me = ProcessRoot::open(std::process::id()).expect("our own root");
        let ours = std::fs::metadata("/proc/self/ns/net").expect("ns");
        assert_eq!(me.net_namespace().expect("ns"), (ours.dev(), ours.ino()));
        let dir = TempDir::new("self");
        let file = dir.0.join("etc/resolv.conf");
        std::fs::write(&file, "nameserver 10.0.0.4\n").expect("file");
        let path = file.to_str().expect("a UTF-8 temp dir");
        assert_eq!(me.read(path).expect("read"), b"nameserver 10.0.0.4\n");
        assert!(matches!(
            ProcessRoot::open(u32::MAX),
            Err(Refusal::Process(_))
        ));
    }
}
