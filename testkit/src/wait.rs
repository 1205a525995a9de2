//! Bounded waits for something to come up, each failing with a message that says what never
//! happened and after how long.

use std::net::{SocketAddr, TcpStream};
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

/// Waits until a DNS server on `addr` answers a query.
pub fn dns(addr: SocketAddr, timeout: Duration) -> Result<Duration, String> {
    until(&format!("a DNS answer from {addr}"), timeout, || {
        crate::dns::answers(addr, PROBE_TIMEOUT)
    })
}
