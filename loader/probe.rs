//! One DNS query to the upstream before anything is attached, from inside the namespace and
//! from the address redirected queries will carry: an upstream that is routable but does not
//! answer DNS (a typo, a stopped resolver) is refused here instead of silently breaking the
//! container's DNS.

use crate::dns::{query, Message, Name, Question, TYPE_NS};
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// How long the upstream has to answer.
pub const TIMEOUT: Duration = Duration::from_secs(1);

/// The upstream did not answer the probe.
#[derive(Debug)]
pub struct NoAnswer {
    pub upstream: SocketAddr,
    pub timeout: Duration,
    /// What the socket said, when it said something (e.g. connection refused: ICMP port
    /// unreachable); `None` for silence until the timeout.
    pub cause: Option<io::Error>,
}

impl fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the upstream {} did not answer a DNS query",
            self.upstream
        )?;
        match &self.cause {
            Some(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                write!(f, " (connection refused: nothing listens on that port)")
            }
            Some(e) => write!(f, " ({e})"),
            None => write!(f, " within {} ms", self.timeout.as_millis()),
        }
    }
}

impl std::error::Error for NoAnswer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// A query for `.` type NS with recursion desired: every resolver can answer it.
pub fn build_query(id: u16) -> Vec<u8> {
    let root_ns = Question {
        name: Name::root(),
        qtype: TYPE_NS,
    };
    query::build(id, &root_ns)
}

/// Whether `msg` is a DNS response to query `id` (any rcode: a refusal is an answer too).
pub fn is_answer(msg: &[u8], id: u16) -> bool {
    Message::parse(msg).is_some_and(|m| m.header.id == id && m.header.is_response())
}

fn random_id() -> u16 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() as u16
}

/// Sends the query from `source`:0 to `upstream` (of the same address family) and waits up to
/// `timeout` for its answer; returns the round-trip time.
pub fn probe(
    source: impl Into<IpAddr>,
    upstream: impl Into<SocketAddr>,
    timeout: Duration,
) -> Result<Duration, NoAnswer> {
    let (source, upstream) = (source.into(), upstream.into());
    let fail = |cause| NoAnswer {
        upstream,
        timeout,
        cause,
    };
    let socket = UdpSocket::bind((source, 0)).map_err(|e| fail(Some(e)))?;
    // Connected: only the upstream's datagrams arrive, and an ICMP error shows as one.
    socket.connect(upstream).map_err(|e| fail(Some(e)))?;
    let id = random_id();
    let start = Instant::now();
    socket.send(&build_query(id)).map_err(|e| fail(Some(e)))?;
    let mut buf = [0u8; 1500];
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Err(fail(None));
        }
        socket
            .set_read_timeout(Some(left))
            .map_err(|e| fail(Some(e)))?;
        match socket.recv(&mut buf) {
            Ok(n) if is_answer(&buf[..n], id) => return Ok(start.elapsed()),
            Ok(_) => continue, // not ours: keep waiting
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(fail(None))
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(fail(Some(e))),
        }
    }
}

/// "0.4 ms", "12 ms".
pub fn format_rtt(rtt: Duration) -> String {
    let ms = rtt.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_is_root_ns() {
        assert_eq!(
            build_query(0xabcd),
            [0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1]
        );
    }

    #[test]
    fn any_response_with_our_id_is_an_answer() {
        let mut reply = build_query(0x1234);
        reply[2] |= 0x80;
        assert!(is_answer(&reply, 0x1234));
        reply[3] = 0x85; // REFUSED is an answer too
        assert!(is_answer(&reply, 0x1234));
        assert!(!is_answer(&reply, 0x1235), "another id");
        assert!(
            !is_answer(&build_query(0x1234), 0x1234),
            "a query, not a response"
        );
        assert!(!is_answer(&reply[..11], 0x1234), "too short");
        assert!(!is_answer(&[], 0x1234));
    }

    #[test]
    fn messages_say_why() {
        let refused = NoAnswer {
            upstream: "10.0.0.53:5353".parse().unwrap(),
            timeout: TIMEOUT,
            cause: Some(io::Error::from_raw_os_error(libc::ECONNREFUSED)),
        };
        assert_eq!(
            refused.to_string(),
            "the upstream 10.0.0.53:5353 did not answer a DNS query (connection refused: nothing listens on that port)"
        );
        let silent = NoAnswer {
            cause: None,
            ..refused
        };
        assert!(silent.to_string().ends_with("within 1000 ms"));
        assert_eq!(format_rtt(Duration::from_micros(420)), "0.4 ms");
        assert_eq!(format_rtt(Duration::from_millis(25)), "25 ms");
    }

    #[test]
    fn ids_vary() {
        let ids: std::collections::HashSet<u16> = (0..16).map(|_| random_id()).collect();
        assert!(ids.len() > 1);
    }
}
