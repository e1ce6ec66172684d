//! A stand-in authoritative DNS server and a stub-resolver-like client, std + libc only.
//! Both run inside a named network namespace (a thread that `setns(CLONE_NEWNET)`s).

use super::netns::{enter_netns, in_netns};
use std::collections::{BTreeMap, HashMap};
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const TYPE_A: u16 = 1;
const POLL: Duration = Duration::from_millis(50);

// ---------------------------------------------------------------------------------------------
// Wire format
// ---------------------------------------------------------------------------------------------

/// A query with RD set and one question (class IN).
pub fn build_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut m = Vec::with_capacity(64);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // QD=1 AN=0 NS=0 AR=0
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    m
}

/// The first question of a message: (lower-case name without trailing dot, qtype, offset after it).
pub fn parse_question(msg: &[u8]) -> Option<(String, u16, usize)> {
    let (qtype, end) = question_end(msg)?;
    let mut labels = Vec::new();
    let mut i = 12;
    while i < end - 5 {
        let len = msg[i] as usize;
        labels.push(String::from_utf8_lossy(&msg[i + 1..i + 1 + len]).to_ascii_lowercase());
        i += 1 + len;
    }
    Some((labels.join("."), qtype, end))
}

/// The first question's qtype and the offset after it, without decoding the name (no allocation).
fn question_end(msg: &[u8]) -> Option<(u16, usize)> {
    if msg.len() < 12 || u16::from_be_bytes([msg[4], msg[5]]) == 0 {
        return None;
    }
    let mut i = 12;
    loop {
        let len = *msg.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        if len & 0xC0 != 0 {
            return None; // no compression in a question we accept
        }
        i += len;
    }
    let qtype = u16::from_be_bytes([*msg.get(i)?, *msg.get(i + 1)?]);
    msg.get(i + 3)?;
    Some((qtype, i + 4))
}

fn skip_name(msg: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let len = *msg.get(i)? as usize;
        if len == 0 {
            return Some(i + 1);
        }
        if len & 0xC0 == 0xC0 {
            msg.get(i + 1)?;
            return Some(i + 2);
        }
        i += 1 + len;
    }
}

/// What a client learns from a reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub id: u16,
    pub rcode: u8,
    pub authoritative: bool,
    pub question: Option<(String, u16)>,
    pub a: Vec<Ipv4Addr>,
    pub answer_count: u16,
}

pub fn parse_reply(msg: &[u8]) -> Result<Reply, String> {
    if msg.len() < 12 {
        return Err(format!("reply too short ({} bytes)", msg.len()));
    }
    if msg[2] & 0x80 == 0 {
        return Err("QR bit not set in reply".into());
    }
    let qd = u16::from_be_bytes([msg[4], msg[5]]);
    let an = u16::from_be_bytes([msg[6], msg[7]]);
    let question = parse_question(msg).map(|(n, t, _)| (n, t));
    let mut i = 12;
    for _ in 0..qd {
        i = skip_name(msg, i).ok_or("truncated question")? + 4;
    }
    let mut a = Vec::new();
    for _ in 0..an {
        i = skip_name(msg, i).ok_or("truncated answer name")?;
        let h = msg.get(i..i + 10).ok_or("truncated answer header")?;
        let rtype = u16::from_be_bytes([h[0], h[1]]);
        let rdlen = u16::from_be_bytes([h[8], h[9]]) as usize;
        let rdata = msg.get(i + 10..i + 10 + rdlen).ok_or("truncated rdata")?;
        if rtype == TYPE_A && rdlen == 4 {
            a.push(Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3]));
        }
        i += 10 + rdlen;
    }
    Ok(Reply {
        id: u16::from_be_bytes([msg[0], msg[1]]),
        rcode: msg[3] & 0x0F,
        authoritative: msg[2] & 0x04 != 0,
        question,
        a,
        answer_count: an,
    })
}

/// The server's answer to `query`: A → one record (TTL 0) with the address for that name (or the
/// default), other types → NOERROR without answers. `None` for something that is not a query.
pub fn build_answer(
    query: &[u8],
    default: Ipv4Addr,
    names: &HashMap<String, Ipv4Addr>,
) -> Option<Vec<u8>> {
    let mut r = Vec::with_capacity(query.len() + 16);
    write_answer(query, &mut r, || {
        parse_question(query)
            .and_then(|(name, ..)| names.get(&name).copied())
            .unwrap_or(default)
    })?;
    Some(r)
}

/// [`build_answer`] into a reused buffer, for servers that must not allocate per query (the
/// benchmark's upstream): `address` is asked for the A record's address, only for A queries.
pub fn write_answer(
    query: &[u8],
    out: &mut Vec<u8>,
    address: impl FnOnce() -> Ipv4Addr,
) -> Option<()> {
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return None;
    }
    let (qtype, end) = question_end(query)?;
    out.clear();
    out.extend_from_slice(&query[0..2]);
    out.push(0x80 | (query[2] & 0x79) | 0x04); // QR, opcode + RD copied, AA
    out.push(0x80); // RA, rcode 0
    out.extend_from_slice(&[0, 1]);
    out.extend_from_slice(&[0, (qtype == TYPE_A) as u8, 0, 0, 0, 0]);
    out.extend_from_slice(&query[12..end]);
    if qtype == TYPE_A {
        out.extend_from_slice(&[0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4]);
        out.extend_from_slice(&address().octets());
    }
    Some(())
}

pub fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        return t.as_nanos() as u64 ^ ((std::process::id() as u64) << 32);
    }
    u64::from_ne_bytes(b)
}

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

struct Shared {
    stop: AtomicBool,
    udp_queries: AtomicU64,
    tcp_queries: AtomicU64,
    answer: Ipv4Addr,
    names: HashMap<String, Ipv4Addr>,
    conns: Mutex<Vec<JoinHandle<()>>>,
}

/// A stand-in authoritative server. Stops (and joins its threads) on Drop.
pub struct DnsServer {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    pub udp_addr: Option<SocketAddr>,
    pub tcp_addr: Option<SocketAddr>,
}

/// Configuration for [`DnsServer`]; `DnsServerBuilder::new(ns, answer).udp(a).tcp(b).name("c2", ip).start()`.
pub struct DnsServerBuilder {
    ns: String,
    answer: Ipv4Addr,
    udp: Option<SocketAddr>,
    tcp: Option<SocketAddr>,
    names: HashMap<String, Ipv4Addr>,
}

impl DnsServerBuilder {
    pub fn new(ns: &str, answer: Ipv4Addr) -> Self {
        DnsServerBuilder {
            ns: ns.to_string(),
            answer,
            udp: None,
            tcp: None,
            names: HashMap::new(),
        }
    }
    pub fn udp(mut self, addr: SocketAddr) -> Self {
        self.udp = Some(addr);
        self
    }
    pub fn tcp(mut self, addr: SocketAddr) -> Self {
        self.tcp = Some(addr);
        self
    }
    /// `name` (case-insensitive, no trailing dot) gets `addr` instead of the default answer.
    pub fn name(mut self, name: &str, addr: Ipv4Addr) -> Self {
        self.names
            .insert(name.trim_end_matches('.').to_ascii_lowercase(), addr);
        self
    }
    pub fn start(self) -> Result<DnsServer, String> {
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            udp_queries: AtomicU64::new(0),
            tcp_queries: AtomicU64::new(0),
            answer: self.answer,
            names: self.names,
            conns: Mutex::new(Vec::new()),
        });
        let mut server = DnsServer {
            shared,
            threads: Vec::new(),
            udp_addr: None,
            tcp_addr: None,
        };
        if let Some(addr) = self.udp {
            server.udp_addr = Some(server.spawn_bound(&self.ns, "UDP", addr, |addr| {
                let sock = UdpSocket::bind(addr)?;
                let _ = sock.set_read_timeout(Some(POLL));
                Ok((sock.local_addr()?, move |sh| serve_udp(sock, sh)))
            })?);
        }
        if let Some(addr) = self.tcp {
            server.tcp_addr = Some(server.spawn_bound(&self.ns, "TCP", addr, |addr| {
                let l = TcpListener::bind(addr)?;
                Ok((l.local_addr()?, move |sh| serve_tcp(l, sh)))
            })?);
        }
        Ok(server)
    }
}

impl DnsServer {
    /// Starts a server thread (joined on Drop): it enters `ns`, binds with `bind` (which gives
    /// the socket's address and what serves it), reports the address or why it could not bind,
    /// then serves.
    fn spawn_bound<S: FnOnce(Arc<Shared>)>(
        &mut self,
        ns: &str,
        proto: &str,
        addr: SocketAddr,
        bind: impl FnOnce(SocketAddr) -> std::io::Result<(SocketAddr, S)> + Send + 'static,
    ) -> Result<SocketAddr, String> {
        let (tx, rx) = mpsc::channel();
        let why = format!("DNS server: {proto} bind {addr} in {ns}");
        let (ns, sh) = (ns.to_string(), self.shared.clone());
        self.threads.push(std::thread::spawn(move || {
            match enter_netns(&ns).and_then(|_| bind(addr).map_err(|e| e.to_string())) {
                Ok((local, serve)) => {
                    let _ = tx.send(Ok(local));
                    serve(sh);
                }
                Err(e) => {
                    let _ = tx.send(Err(format!("{why}: {e}")));
                }
            }
        }));
        rx.recv().map_err(|e| e.to_string())?
    }

    /// The address it answers for every name it has no special answer for.
    pub fn answer(&self) -> Ipv4Addr {
        self.shared.answer
    }

    /// Queries received over UDP and TCP (every message that parsed as a query).
    pub fn queries(&self) -> u64 {
        self.udp_queries() + self.tcp_queries()
    }
    pub fn udp_queries(&self) -> u64 {
        self.shared.udp_queries.load(Ordering::SeqCst)
    }
    pub fn tcp_queries(&self) -> u64 {
        self.shared.tcp_queries.load(Ordering::SeqCst)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let conns: Vec<_> = self
            .shared
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        for t in conns {
            let _ = t.join();
        }
    }
}

fn serve_udp(sock: UdpSocket, sh: Arc<Shared>) {
    let mut buf = [0u8; 4096];
    while !sh.stop.load(Ordering::SeqCst) {
        match sock.recv_from(&mut buf) {
            Ok((n, peer)) => {
                if let Some(r) = build_answer(&buf[..n], sh.answer, &sh.names) {
                    sh.udp_queries.fetch_add(1, Ordering::SeqCst);
                    let _ = sock.send_to(&r, peer);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => std::thread::sleep(POLL), // e.g. ECONNREFUSED from an ICMP error: keep serving
        }
    }
}

fn serve_tcp(l: TcpListener, sh: Arc<Shared>) {
    let _ = l.set_nonblocking(true);
    while !sh.stop.load(Ordering::SeqCst) {
        let mut pfd = libc::pollfd {
            fd: l.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        unsafe { libc::poll(&mut pfd, 1, POLL.as_millis() as i32) };
        if let Ok((s, _)) = l.accept() {
            let sh2 = sh.clone();
            let t = std::thread::spawn(move || serve_tcp_conn(s, sh2));
            let mut conns = sh.conns.lock().unwrap_or_else(|e| e.into_inner());
            conns.retain(|h| !h.is_finished());
            conns.push(t);
        }
    }
}

fn serve_tcp_conn(mut s: TcpStream, sh: Arc<Shared>) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(POLL));
    let mut pending = Vec::new();
    let mut buf = [0u8; 4096];
    while !sh.stop.load(Ordering::SeqCst) {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(_) => return,
        }
        while pending.len() >= 2 {
            let len = u16::from_be_bytes([pending[0], pending[1]]) as usize;
            if pending.len() < 2 + len {
                break;
            }
            let msg: Vec<u8> = pending.drain(..2 + len).skip(2).collect();
            if let Some(r) = build_answer(&msg, sh.answer, &sh.names) {
                sh.tcp_queries.fetch_add(1, Ordering::SeqCst);
                let mut out = (r.len() as u16).to_be_bytes().to_vec();
                out.extend_from_slice(&r);
                if s.write_all(&out).is_err() {
                    return;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------------

/// One query from inside `ns`, like a stub resolver: UDP on a connect()ed socket (the kernel then
/// accepts datagrams only from `server`), or TCP with a 2-byte length prefix. The reply must carry
/// our id and our question; replies with another id are ignored until the timeout.
pub fn query(
    ns: &str,
    server: SocketAddr,
    name: &str,
    qtype: u16,
    tcp: bool,
    timeout: Duration,
) -> Result<Reply, String> {
    let name = name.to_string();
    in_netns(ns, move || {
        let id = random_u64() as u16;
        let q = build_query(id, &name, qtype);
        let reply = if tcp {
            tcp_exchange(server, &q, timeout)?
        } else {
            udp_exchange(server, &q, id, timeout)?
        };
        let r = parse_reply(&reply)?;
        if r.id != id {
            return Err(format!("reply id {} != query id {id}", r.id));
        }
        let want = name.trim_end_matches('.').to_ascii_lowercase();
        match &r.question {
            Some((n, t)) if *n == want && *t == qtype => Ok(r),
            other => Err(format!(
                "reply question {other:?} does not match ({want:?}, {qtype})"
            )),
        }
    })?
}

/// The A records of `name` from `server` (see [`query`]); an error for a timeout, a bad reply
/// or an rcode other than NOERROR.
pub fn query_a(
    ns: &str,
    server: SocketAddr,
    name: &str,
    tcp: bool,
    timeout: Duration,
) -> Result<Vec<Ipv4Addr>, String> {
    let r = query(ns, server, name, TYPE_A, tcp, timeout)?;
    if r.rcode != 0 {
        return Err(format!("rcode {} for {name}", r.rcode));
    }
    Ok(r.a)
}

fn udp_exchange(
    server: SocketAddr,
    q: &[u8],
    id: u16,
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    let sock = UdpSocket::bind("0.0.0.0:0").map_err(|e| format!("bind: {e}"))?;
    sock.connect(server)
        .map_err(|e| format!("connect {server}: {e}"))?;
    sock.send(q).map_err(|e| format!("send to {server}: {e}"))?;
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("UDP query to {server}: timeout after {timeout:?}"));
        }
        sock.set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        match sock.recv(&mut buf) {
            Ok(n) if n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id => {
                return Ok(buf[..n].to_vec())
            }
            Ok(_) => continue, // another id: a stub resolver ignores it
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(format!("UDP query to {server}: timeout after {timeout:?}"))
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("UDP query to {server}: {e}")),
        }
    }
}

fn tcp_exchange(server: SocketAddr, q: &[u8], timeout: Duration) -> Result<Vec<u8>, String> {
    let mut s = TcpStream::connect_timeout(&server, timeout)
        .map_err(|e| format!("TCP connect {server}: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let mut out = (q.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(q);
    s.write_all(&out)
        .map_err(|e| format!("TCP send to {server}: {e}"))?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len)
        .map_err(|e| format!("TCP reply length from {server}: {e}"))?;
    let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut msg)
        .map_err(|e| format!("TCP reply from {server}: {e}"))?;
    Ok(msg)
}

/// Outcome of [`query_many`].
#[derive(Clone, Debug, Default)]
pub struct ManyResult {
    pub sent: usize,
    /// Replies with the right id and question.
    pub answered: usize,
    /// How many answers carried each first A address (`None`: answered without an A record).
    pub by_addr: BTreeMap<Option<Ipv4Addr>, usize>,
    /// Per-socket problems (send errors, bad replies); unanswered sockets are `sent - answered`.
    pub errors: Vec<String>,
}

impl ManyResult {
    /// How many answers carried `addr` as first A record.
    pub fn count(&self, addr: Ipv4Addr) -> usize {
        self.by_addr.get(&Some(addr)).copied().unwrap_or(0)
    }
}

/// `concurrency` UDP A queries at once from as many connect()ed sockets inside `ns`, names taken
/// round-robin from `names`; waits up to `timeout` for all replies.
pub fn query_many(
    ns: &str,
    server: SocketAddr,
    names: &[&str],
    concurrency: usize,
    timeout: Duration,
) -> Result<ManyResult, String> {
    assert!(!names.is_empty());
    let names: Vec<String> = names
        .iter()
        .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
        .collect();
    in_netns(ns, move || {
        let mut res = ManyResult::default();
        let mut socks = Vec::with_capacity(concurrency);
        for i in 0..concurrency {
            let sock = UdpSocket::bind("0.0.0.0:0").map_err(|e| format!("bind: {e}"))?;
            sock.connect(server).map_err(|e| format!("connect: {e}"))?;
            sock.set_nonblocking(true).map_err(|e| e.to_string())?;
            let id = random_u64() as u16;
            socks.push((sock, id, &names[i % names.len()], false));
        }
        for (sock, id, name, _) in &socks {
            match sock.send(&build_query(*id, name, TYPE_A)) {
                Ok(_) => res.sent += 1,
                Err(e) => res.errors.push(format!("send: {e}")),
            }
        }
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        while res.answered + res.errors.len() < concurrency {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let mut pfds: Vec<libc::pollfd> = socks
                .iter()
                .map(|(s, _, _, done)| libc::pollfd {
                    fd: if *done { -1 } else { s.as_raw_fd() },
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect();
            let n = unsafe {
                libc::poll(
                    pfds.as_mut_ptr(),
                    pfds.len() as libc::nfds_t,
                    left.as_millis().max(1) as i32,
                )
            };
            if n <= 0 {
                continue;
            }
            for (k, pfd) in pfds.iter().enumerate() {
                if pfd.revents == 0 {
                    continue;
                }
                let (sock, id, name, done) = &mut socks[k];
                loop {
                    match sock.recv(&mut buf) {
                        Ok(len) => match parse_reply(&buf[..len]) {
                            Ok(r)
                                if r.id == *id
                                    && r.question.as_ref().map(|(n, _)| n == *name)
                                        == Some(true) =>
                            {
                                res.answered += 1;
                                *res.by_addr.entry(r.a.first().copied()).or_default() += 1;
                                *done = true;
                                break;
                            }
                            Ok(_) => continue,
                            Err(e) => {
                                res.errors.push(e);
                                *done = true;
                                break;
                            }
                        },
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => {
                            res.errors.push(format!("recv: {e}"));
                            *done = true;
                            break;
                        }
                    }
                }
            }
        }
        Ok(res)
    })?
}
