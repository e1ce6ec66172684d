//! Just enough HTTP/1.x for a scraper: one request per connection, one connection at a time,
//! `GET /metrics` (or `HEAD`) answered with the page, anything else with 404 or 405. A client
//! that sends slowly or reads slowly is dropped after [`DEADLINE`], so it holds the next
//! scrape back for at most that long.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// The whole request must arrive within this, and each write of the answer go out within it.
pub const DEADLINE: Duration = Duration::from_secs(5);
/// A scraper's request head is a few hundred bytes.
const HEAD_MAX: usize = 8 << 10;
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /metrics` (`head`: `HEAD /metrics`, the same without the body).
    Metrics {
        head: bool,
    },
    NotFound,
    MethodNotAllowed,
    BadRequest,
}

/// The route of a request head (its first line decides; a query string is ignored).
pub fn route(head: &[u8]) -> Route {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let Ok(line) = std::str::from_utf8(line) else {
        return Route::BadRequest;
    };
    let mut words = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Route::BadRequest;
    };
    if !version.starts_with("HTTP/1.") {
        return Route::BadRequest;
    }
    let path = target.split('?').next().unwrap_or_default();
    match (method, path) {
        ("GET", "/metrics") => Route::Metrics { head: false },
        ("HEAD", "/metrics") => Route::Metrics { head: true },
        ("GET" | "HEAD", _) => Route::NotFound,
        _ => Route::MethodNotAllowed,
    }
}

/// The answer to `route`, with `page` making the body of a metrics request (its error is one
/// line, sent with 500).
pub fn respond(route: Route, page: &mut dyn FnMut() -> Result<String, String>) -> Vec<u8> {
    let (status, content_type, body, head) = match route {
        Route::Metrics { head } => match page() {
            Ok(body) => ("200 OK", CONTENT_TYPE, body, head),
            Err(e) => (
                "500 Internal Server Error",
                "text/plain; charset=utf-8",
                format!("dnsredir: {e}\n"),
                head,
            ),
        },
        Route::NotFound => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "dnsredir serves /metrics only\n".into(),
            false,
        ),
        Route::MethodNotAllowed => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "GET /metrics\n".into(),
            false,
        ),
        Route::BadRequest => (
            "400 Bad Request",
            "text/plain; charset=utf-8",
            "not an HTTP/1 request\n".into(),
            false,
        ),
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n",
        body.len(),
        if route == Route::MethodNotAllowed { "Allow: GET, HEAD\r\n" } else { "" },
    )
    .into_bytes();
    if !head {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

/// Answers connections one after the other, forever. A connection's failure (a client gone,
/// too slow, or a malformed request) is its own: the next one is served.
pub fn forever(
    listener: &TcpListener,
    page: &mut dyn FnMut() -> Result<String, String>,
    note: &mut dyn FnMut(String),
) -> ! {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                let mut failed = None;
                let result = answer(stream, &mut |route| {
                    respond(route, &mut || {
                        page().inspect_err(|e| failed = Some(e.clone()))
                    })
                });
                if let Some(e) = failed {
                    note(format!("a scrape failed: {e}"));
                }
                // A client that went away or was too slow costs nothing but its connection.
                drop(result);
            }
            Err(e) => {
                // Out of descriptors or memory: wait instead of spinning, then serve again.
                note(format!("accepting a metrics connection failed: {e}"));
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Reads one request head from `stream` within [`DEADLINE`] and writes what `reply` makes of it.
fn answer(mut stream: TcpStream, reply: &mut dyn FnMut(Route) -> Vec<u8>) -> io::Result<()> {
    stream.set_write_timeout(Some(DEADLINE))?;
    let head = read_head(&mut stream, Instant::now() + DEADLINE)?;
    stream.write_all(&reply(route(&head)))?;
    stream.flush()?;
    stream.shutdown(std::net::Shutdown::Write)
}

/// The request up to its blank line, or up to [`HEAD_MAX`] bytes; a client that trickles bytes
/// is cut off at `deadline`, however often it sends.
fn read_head(stream: &mut TcpStream, deadline: Instant) -> io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() >= HEAD_MAX {
            break;
        }
    }
    Ok(head)
}

extern "C" fn exit_now(_: libc::c_int) {
    // SAFETY: _exit is async-signal-safe; the server keeps no state to flush.
    unsafe { libc::_exit(0) }
}

/// SIGTERM and SIGINT end the server at once, exit 0. Needed as PID 1 of a container: the
/// kernel drops a signal sent to a PID namespace's init unless it has a handler, so without one
/// a pod's SIGTERM would wait for the kubelet's SIGKILL.
pub fn exit_on_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction with a handler that only calls _exit.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = exit_now as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_routed_by_their_first_line() {
        let r = |s: &str| route(s.as_bytes());
        assert_eq!(
            r("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Metrics { head: false }
        );
        assert_eq!(
            r("GET /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Route::Metrics { head: false }
        );
        assert_eq!(
            r("HEAD /metrics HTTP/1.1\r\n\r\n"),
            Route::Metrics { head: true }
        );
        assert_eq!(r("GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(r("GET /metricsx HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(r("POST /metrics HTTP/1.1\r\n\r\n"), Route::MethodNotAllowed);
        assert_eq!(r("GET /metrics\r\n\r\n"), Route::BadRequest);
        assert_eq!(r("\u{16}\u{3}\u{1} tls"), Route::BadRequest);
        assert_eq!(r(""), Route::BadRequest);
    }

    #[test]
    fn answers_byte_for_byte() {
        let mut page = || Ok::<_, String>("a 1\n".to_string());
        assert_eq!(
            String::from_utf8(respond(Route::Metrics { head: false }, &mut page)).unwrap(),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: 4\r\nConnection: close\r\n\r\na 1\n"
        );
        assert!(
            String::from_utf8(respond(Route::Metrics { head: true }, &mut page))
                .unwrap()
                .ends_with("Content-Length: 4\r\nConnection: close\r\n\r\n")
        );
        let mut failing = || Err::<String, _>("listing the node's BPF programs failed: x".into());
        let out = String::from_utf8(respond(Route::Metrics { head: false }, &mut failing)).unwrap();
        assert!(out.starts_with("HTTP/1.1 500 "), "{out}");
        assert!(out.ends_with("\r\n\r\ndnsredir: listing the node's BPF programs failed: x\n"));
        let out = String::from_utf8(respond(Route::NotFound, &mut page)).unwrap();
        assert!(out.starts_with("HTTP/1.1 404 Not Found\r\n"), "{out}");
        let out = String::from_utf8(respond(Route::MethodNotAllowed, &mut page)).unwrap();
        assert!(out.contains("\r\nAllow: GET, HEAD\r\n"), "{out}");
    }
}
