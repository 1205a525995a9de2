//! Bounded waits for something to come up, each failing with a message that says what never
//! happened and after how long.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// Pause between two probes.
pub const POLL: Duration = Duration::from_millis(50);
/// Bound of one probe (a connect, a DNS round trip).
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(200);

/// Polls `ready` until it holds or `timeout` passes; returns how long it took. `what` names
/// the awaited event in the error (`timed out after 5s waiting for {what}`).
pub fn until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) -> Result<Duration, String> {
    let start = Instant::now();
    loop {
        if ready() {
            return Ok(start.elapsed());
        }
        if start.elapsed() >= timeout {
            return Err(format!("timed out after {timeout:?} waiting for {what}"));
        }
        std::thread::sleep(POLL);
    }
}

/// A TCP connect to `addr` succeeds now.
pub fn is_listening(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, PROBE_TIMEOUT).is_ok()
}

/// A Unix socket listens at `path` now (Linux: read from `/proc/net/unix`, never by
/// connecting — a gateway waiting for an upgrade takes the first connection as the transfer).
pub fn is_unix_listening(path: &Path) -> bool {
    // `__SO_ACCEPTCON` in the flags column: the socket listens.
    const ACCEPTING: u32 = 1 << 16;
    let want = path.to_string_lossy();
    let Ok(table) = std::fs::read("/proc/net/unix") else {
        return false;
    };
    String::from_utf8_lossy(&table).lines().skip(1).any(|line| {
        let listening = line
            .split_whitespace()
            .nth(3)
            .and_then(|f| u32::from_str_radix(f, 16).ok())
            .is_some_and(|f| f & ACCEPTING != 0);
        listening && line.strip_suffix(want.as_ref()).is_some_and(|rest| rest.ends_with(' '))
    })
}

/// `GET http://addr{path}` answers 200 now.
pub fn is_http_ok(addr: SocketAddr, path: &str) -> bool {
    crate::http::call(addr, "GET", path, &[], b"").is_ok_and(|r| r.status == 200)
}

/// Waits until a TCP connect to `addr` succeeds.
pub fn listening(addr: SocketAddr, timeout: Duration) -> Result<Duration, String> {
    until(&format!("something listening on {addr}"), timeout, || {
        is_listening(addr)
    })
}

/// Waits until a TCP connect to `addr` fails (a stopped server let go of its port).
pub fn not_listening(addr: SocketAddr, timeout: Duration) -> Result<Duration, String> {
    until(&format!("{addr} to stop listening"), timeout, || !is_listening(addr))
}

/// Waits until `GET http://addr{path}` answers 200.
pub fn http_ok(addr: SocketAddr, path: &str, timeout: Duration) -> Result<Duration, String> {
    until(&format!("GET http://{addr}{path} to answer 200"), timeout, || {
        is_http_ok(addr, path)
    })
}

/// Waits until a Unix socket listens at `path`.
pub fn unix_listening(path: &Path, timeout: Duration) -> Result<Duration, String> {
    until(
        &format!("a Unix socket listening at {}", path.display()),
        timeout,
        || is_unix_listening(path),
    )
}

/// Waits until a DNS server on `addr` answers a query.
pub fn dns(addr: SocketAddr, timeout: Duration) -> Result<Duration, String> {
    until(&format!("a DNS answer from {addr}"), timeout, || {
        crate::dns::answers(addr, PROBE_TIMEOUT)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_unix_listener_is_seen_until_it_closes() {
        let dir = crate::Scratch::new("unix-listening").unwrap();
        let path = dir.file("s.sock");
        assert!(!is_unix_listening(&path));
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        unix_listening(&path, Duration::from_secs(5)).unwrap();
        drop(listener);
        // The file stays; the socket is gone.
        assert!(path.exists() && !is_unix_listening(&path));
    }
}
