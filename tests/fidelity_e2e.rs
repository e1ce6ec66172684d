//! What a user with a real resolver sees through dnsredir, in the Docker emulation with
//! checksum-strict links: Debian's dnsmasq as the upstream; answers too large for one packet
//! (EDNS clamp → TC → TCP); an answer near the MTU restored with valid checksums; fragments
//! from an upstream that ignores the clamp counted; other tools' tc filters after ours still
//! seeing every packet dnsredir passes.

mod support;

use dnsredir::bpf::insn::Insn;
use dnsredir::bpf::sys;
use dnsredir::net::netlink::Netlink;
use dnsredir::net::tc::{self, Hook};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::packet::{csum_fold, l4_checksum, sum_words};
use support::{in_netns, ns_run_timeout, ping, run_dnsredir, DockerLikeNet};

/// Where dnsmasq listens in the upstream namespace (the stand-in DnsServer has port 53).
const DNSMASQ_PORT: u16 = 5353;
/// A TXT record of 12 strings × 250 bytes: 3000 bytes of text, ~3.1 KB of answer.
const BIG: &str = "big.test";
/// 5 × 250 bytes: a ~1.3 KB answer, one packet below the links' MTU of 1500.
const MID: &str = "mid.test";

fn txt_strings(count: usize) -> Vec<String> {
    (0..count)
        .map(|i| ((b'a' + i as u8) as char).to_string().repeat(250))
        .collect()
}

/// dnsmasq in the upstream namespace, UDP and TCP on DNSMASQ_PORT; killed on Drop.
struct Dnsmasq(Child);

impl Dnsmasq {
    fn start(net: &DockerLikeNet) -> Dnsmasq {
        let listen = format!("--listen-address={}", net.up_addr);
        let port = format!("--port={DNSMASQ_PORT}");
        let big = format!("--txt-record={BIG},{}", txt_strings(12).join(","));
        let mid = format!("--txt-record={MID},{}", txt_strings(5).join(","));
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &net.up_ns, "dnsmasq", "--no-daemon"])
            .args(["--no-resolv", "--no-hosts", "--conf-file=/dev/null"])
            .args(["--bind-interfaces", "--user=root", "--pid-file="])
            // Answers as large as the client asks for, so only dnsredir's clamp prevents
            // fragments (Debian's default would cap them itself).
            .arg("--edns-packet-max=4096")
            .args([&listen, &port, &big, &mid])
            .arg(format!("--address=/example.test/{}", net.upstream_answer))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                );
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .expect("dnsmasq runs (scripts/setup installs it)");
        let server = Dnsmasq(child);
        // Ready when it answers.
        let deadline = Instant::now() + Duration::from_secs(10);
        let at = format!("@{}", net.up_addr);
        let p = DNSMASQ_PORT.to_string();
        loop {
            let o = ns_run_timeout(
                &net.up_ns,
                &[
                    "dig",
                    "+short",
                    "+tries=1",
                    "+time=1",
                    "-p",
                    &p,
                    &at,
                    "a.example.test",
                ],
                Duration::from_secs(5),
            )
            .expect("dig runs");
            if o.stdout.trim() == net.upstream_answer.to_string() {
                return server;
            }
            assert!(Instant::now() < deadline, "dnsmasq did not come up: {o:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A container attached (with `extra`) to dnsmasq as its upstream. Bound as `(net, _dnsmasq)`,
/// dnsmasq stops before the topology goes.
fn attached_to_dnsmasq(extra: &[&str]) -> (DockerLikeNet, Dnsmasq) {
    let net = DockerLikeNet::new();
    let dnsmasq = Dnsmasq::start(&net);
    let mut args = net.attach_args();
    let upstream = args.len() - 1;
    args[upstream] = format!("{}:{DNSMASQ_PORT}", net.up_addr);
    args.extend(extra.iter().map(|s| s.to_string()));
    let (code, out, err) = run_dnsredir(&args);
    assert_eq!(code, 0, "dnsredir {args:?}: {out}{err}");
    (net, dnsmasq)
}

/// `dig` in the container for a TXT record through 127.0.0.11: (its whole output, the text of
/// the TXT strings joined).
fn dig_txt(net: &DockerLikeNet, name: &str, bufsize: u16) -> (String, String) {
    let buf = format!("+bufsize={bufsize}");
    let o = ns_run_timeout(
        &net.ctr_ns,
        &[
            "dig",
            "+tries=1",
            "+time=3",
            &buf,
            "@127.0.0.11",
            name,
            "TXT",
        ],
        Duration::from_secs(20),
    )
    .expect("dig runs");
    let text: String = o
        .stdout
        .lines()
        .filter(|l| !l.starts_with(';') && l.contains("TXT"))
        .flat_map(|l| l.split('"').skip(1).step_by(2))
        .collect();
    (o.stdout + &o.stderr, text)
}

fn counter(net: &DockerLikeNet, name: &str) -> u64 {
    net.status_json().1.u64_at(&["counters", name])
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2), dnsmasq"]
fn a_3000_byte_answer_arrives_whole_through_tc_and_tcp() {
    let (net, _dnsmasq) = attached_to_dnsmasq(&[]);

    let (out, text) = dig_txt(&net, BIG, 4096);
    assert!(
        text == txt_strings(12).concat(),
        "not the whole record ({} bytes):\n{out}",
        text.len()
    );
    assert!(
        out.contains("Truncated, retrying in TCP mode"),
        "the clamped UDP answer came back truncated, TCP fetched it:\n{out}"
    );
    assert_eq!(counter(&net, "edns_clamped"), 1);
    assert_eq!(counter(&net, "queries_redirected_tcp"), 1);
    assert_eq!(counter(&net, "replies_fragmented"), 0);
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2), dnsmasq"]
fn a_1300_byte_answer_is_restored_with_valid_checksums() {
    let (net, _dnsmasq) = attached_to_dnsmasq(&["--edns-max", "1400"]);

    let capture = LoCapture::open(&net);
    let (out, text) = dig_txt(&net, MID, 1400);
    assert!(
        text == txt_strings(5).concat(),
        "not the whole record ({} bytes):\n{out}",
        text.len()
    );
    assert!(!out.contains("Truncated"), "one UDP answer:\n{out}");

    // The restored answer as the reply program handed it to lo, checked from scratch.
    let frames = capture.frames(Duration::from_secs(2));
    let answer = frames
        .iter()
        .filter_map(|f| Udp4::parse(f))
        .find(|u| u.src == Ipv4Addr::new(127, 0, 0, 11) && u.payload_len > 1200)
        .unwrap_or_else(|| panic!("no restored answer among {} frames on lo", frames.len()));
    assert!(answer.payload_len < 1400, "{} bytes", answer.payload_len);
    assert_eq!(answer.sport, net.dockerd_udp_port);
    assert!(answer.ip_checksum_ok, "IPv4 header checksum");
    assert!(
        answer.udp_checksum_ok,
        "UDP checksum over the whole datagram"
    );
    assert_eq!(
        counter(&net, "edns_clamped"),
        0,
        "1400 is within --edns-max"
    );
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2), dnsmasq"]
fn fragments_of_an_unclamped_answer_are_counted_and_passed() {
    let (net, _dnsmasq) = attached_to_dnsmasq(&["--edns-max", "0"]);

    let (out, text) = dig_txt(&net, BIG, 4096);
    assert!(text.is_empty(), "fragments reach no socket:\n{out}");
    assert!(counter(&net, "replies_fragmented") >= 1);
    assert_eq!(counter(&net, "edns_clamped"), 0);
    // The flow still answers a normal query afterwards.
    let (out, text) = dig_txt(&net, MID, 4096);
    assert!(!text.is_empty(), "{out}");
}

#[test]
#[ignore = "needs root: network namespaces, bpf(2)"]
fn filters_after_ours_still_see_what_dnsredir_passes() {
    let net = DockerLikeNet::new();
    let counting = in_netns(&net.ctr_ns, || {
        let mut nl = Netlink::open().expect("rtnetlink");
        ["lo", "eth0"].map(|dev| CountingFilter::attach(&mut nl, dev))
    })
    .expect("in the container");

    net.attach(&[]);
    let before = counting.each_ref().map(CountingFilter::count);
    assert_eq!(ping(&net.ctr_ns, net.up_addr, 3), Ok(3));
    assert_eq!(ping(&net.ctr_ns, Ipv4Addr::LOCALHOST, 3), Ok(3));
    let after = counting.each_ref().map(CountingFilter::count);
    // lo ingress: 3 echo requests and 3 replies; eth0 ingress: 3 replies (and maybe ARP).
    assert!(after[0] - before[0] >= 6, "lo: {before:?} → {after:?}");
    assert!(after[1] - before[1] >= 3, "eth0: {before:?} → {after:?}");
    // And DNS is redirected all the same.
    assert_eq!(
        net.dig(
            &net.ctr_ns,
            Ipv4Addr::new(127, 0, 0, 11),
            "x.example.org",
            false
        ),
        Ok(vec![net.upstream_answer])
    );
}

/// Another tool's filter: a direct-action bpf program at tc's default priority that counts
/// every packet it sees in an array map and returns TC_ACT_UNSPEC.
struct CountingFilter {
    map: OwnedFd,
    _prog: OwnedFd,
}

impl CountingFilter {
    fn attach(nl: &mut Netlink, dev: &str) -> CountingFilter {
        let map = sys::map_create("count", 2, 4, 8, 1, 0).expect("array map");
        let insn = |code: u8, dst: u8, src: u8, off: i16, imm: i32| Insn {
            code,
            regs: dst | (src << 4),
            off,
            imm,
        };
        let insns = [
            insn(0x62, 10, 0, -4, 0),             // *(u32 *)(r10 - 4) = 0
            insn(0x18, 1, 1, 0, map.as_raw_fd()), // r1 = map
            insn(0, 0, 0, 0, 0),
            insn(0xbf, 2, 10, 0, 0), // r2 = r10
            insn(0x07, 2, 0, 0, -4), // r2 += -4
            insn(0x85, 0, 0, 0, 1),  // call map_lookup_elem
            insn(0x15, 0, 0, 2, 0),  // if r0 == 0 goto +2
            insn(0xb7, 1, 0, 0, 1),  // r1 = 1
            insn(0xdb, 0, 1, 0, 0),  // lock *(u64 *)(r0 + 0) += r1
            insn(0xb7, 0, 0, 0, -1), // r0 = TC_ACT_UNSPEC
            insn(0x95, 0, 0, 0, 0),  // exit
        ];
        let prog = sys::prog_load("foreign_count", sys::ProgKind::SCHED_CLS, &insns, c"GPL")
            .unwrap_or_else(|e| panic!("counting program: {} {}", e.error, e.log));
        let c = std::ffi::CString::new(dev).expect("name");
        // SAFETY: a NUL-terminated name.
        let ifindex = unsafe { libc::if_nametoindex(c.as_ptr()) };
        let _ = tc::add_clsact(nl, ifindex);
        tc::put_bpf_filter(nl, ifindex, Hook::Ingress, 49152, 1, &prog, "foreign_count")
            .expect("foreign filter attached");
        CountingFilter { map, _prog: prog }
    }

    fn count(&self) -> u64 {
        let mut value = [0u8; 8];
        sys::map_lookup(&self.map, &0u32.to_ne_bytes(), &mut value).expect("lookup");
        u64::from_ne_bytes(value)
    }
}

/// Every frame on the container's lo, from a packet socket opened inside it.
struct LoCapture(OwnedFd);

impl LoCapture {
    fn open(net: &DockerLikeNet) -> LoCapture {
        in_netns(&net.ctr_ns, || {
            let proto = (libc::ETH_P_ALL as u16).to_be() as i32;
            // SAFETY: plain socket(2); the fd is owned below.
            let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, proto) };
            assert!(
                fd >= 0,
                "packet socket: {}",
                std::io::Error::last_os_error()
            );
            // SAFETY: the kernel just gave us this fd.
            let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
            // SAFETY: a zeroed sockaddr_ll with family, protocol and ifindex set.
            let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_protocol = proto as u16;
            addr.sll_ifindex = 1;
            let rc = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    &addr as *const libc::sockaddr_ll as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            assert_eq!(rc, 0, "bind to lo: {}", std::io::Error::last_os_error());
            LoCapture(fd)
        })
        .expect("in the container")
    }

    /// The frames captured so far, reading until nothing came for `quiet`.
    fn frames(&self, quiet: Duration) -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        let mut buf = vec![0u8; 65536];
        loop {
            let mut pfd = libc::pollfd {
                fd: self.0.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(&mut pfd, 1, quiet.as_millis() as i32) } <= 0 {
                return frames;
            }
            // SAFETY: reads into our buffer, at most its length.
            let n =
                unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n <= 0 {
                return frames;
            }
            frames.push(buf[..n as usize].to_vec());
        }
    }
}

/// An Ethernet + IPv4 + UDP frame, with its checksums verified from scratch.
struct Udp4 {
    src: Ipv4Addr,
    sport: u16,
    payload_len: usize,
    ip_checksum_ok: bool,
    udp_checksum_ok: bool,
}

impl Udp4 {
    fn parse(frame: &[u8]) -> Option<Udp4> {
        let ip = frame.get(14..)?;
        if frame.get(12..14)? != [0x08, 0x00] || ip.first()? >> 4 != 4 || *ip.get(9)? != 17 {
            return None;
        }
        let ihl = ((ip[0] & 0x0f) as usize) * 4;
        let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
        let udp = ip.get(ihl..total)?;
        let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
        let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
        let stored = u16::from_be_bytes([udp[6], udp[7]]);
        Some(Udp4 {
            src,
            sport: u16::from_be_bytes([udp[0], udp[1]]),
            payload_len: udp.len() - 8,
            // Summed with the checksum in place, a valid one folds to zero.
            ip_checksum_ok: csum_fold(sum_words(&ip[..ihl])) == 0,
            udp_checksum_ok: stored != 0 && l4_checksum(src, dst, 17, udp) == 0,
        })
    }
}
