//! One attack's connections: each slot connects (from its source address), misbehaves the
//! attack's way until the target closes it or the attack stops, and connects again.

use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::time::{sleep_until, timeout, Instant};

use super::{Live, REFUSED_WITHIN};
use crate::engine::StopHandle;
use crate::scenario::{AbuseKind, AbuseSpec, BaseUrl};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The first connections of an attack are spread over this (a burst, not one instant).
const RAMP: Duration = Duration::from_secs(1);
/// Pause before a refused slot tries again, doubling up to the maximum.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// How often the attack looks at the run's stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);
/// Body a `slow_body` head announces (below the gateway's default body cap).
const SLOW_BODY_BYTES: usize = 65_536;

/// One attack: what its connections send, and its live counters.
pub(super) struct AttackCtx {
    kind: AbuseKind,
    addr: SocketAddr,
    sources: Vec<IpAddr>,
    /// Written at once after the connect.
    burst: Vec<u8>,
    /// Then one byte of this pattern (cycled) every `every`, up to `limit` bytes.
    pattern: &'static [u8],
    every: Duration,
    limit: usize,
    first_at: Instant,
    pub(super) live: Live,
}

impl AttackCtx {
    pub(super) fn new(spec: &AbuseSpec, target: &BaseUrl, addr: SocketAddr, first_at: Instant) -> Self {
        let (path, host) = (format!("{}{}", target.prefix, spec.path), &target.authority);
        let (burst, pattern, limit) = match spec.kind {
            // Complete header lines, never the blank line that ends the head.
            AbuseKind::SlowHeaders => (
                format!("GET {path} HTTP/1.1\r\nhost: {host}\r\n"),
                &b"x-slow: 1\r\n"[..],
                usize::MAX,
            ),
            AbuseKind::SlowBody => (
                format!(
                    "POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/octet-stream\r\ncontent-length: {SLOW_BODY_BYTES}\r\n\r\n"
                ),
                &b"a"[..],
                SLOW_BODY_BYTES,
            ),
            AbuseKind::IdleKeepalive => (format!("GET {path} HTTP/1.1\r\nhost: {host}\r\n\r\n"), &b""[..], 0),
        };
        AttackCtx {
            kind: spec.kind,
            addr,
            sources: spec.sources.clone(),
            burst: burst.into_bytes(),
            pattern,
            every: spec.byte_every.unwrap_or(Duration::MAX),
            limit,
            first_at,
            live: Live::default(),
        }
    }
}

/// Opens `n` slots, holds them until `stop_at` (or the run's stop), then closes them all.
pub(super) async fn open_all(
    ctx: &Arc<AttackCtx>,
    n: usize,
    rx: watch::Receiver<bool>,
    tx: &watch::Sender<bool>,
    run_stop: &StopHandle,
    stop_at: Instant,
) {
    let slots: Vec<_> = (0..n)
        .map(|i| {
            let first = ctx.first_at + RAMP.mul_f64(i as f64 / n as f64);
            let source = (!ctx.sources.is_empty()).then(|| ctx.sources[i % ctx.sources.len()]);
            tokio::spawn(slot(Arc::clone(ctx), source, first, rx.clone()))
        })
        .collect();
    while Instant::now() < stop_at && !run_stop.is_stopped() {
        sleep_until(stop_at.min(Instant::now() + STOP_POLL)).await;
    }
    let _ = tx.send(true);
    for s in slots {
        let _ = s.await;
    }
}

/// How one connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Refused,
    Closed,
    Stopped,
    Error,
}

/// One slot: connect, hold, count, again, until the attack stops.
async fn slot(ctx: Arc<AttackCtx>, source: Option<IpAddr>, first: Instant, mut stop: watch::Receiver<bool>) {
    let live = &ctx.live;
    let mut backoff = BACKOFF_MIN;
    let mut at = first;
    loop {
        if pause_until(at, &mut stop).await {
            return;
        }
        let conn = tokio::select! {
            c = connect(ctx.addr, source) => c,
            _ = stopped(&mut stop) => return,
        };
        let end = match conn {
            Err(e) => {
                live.connect_failed.fetch_add(1, Ordering::Relaxed);
                live.sample(format!(
                    "connect{}: {e}",
                    source.map_or(String::new(), |s| format!(" from {s}"))
                ));
                End::Refused
            }
            Ok(stream) => {
                live.opened.fetch_add(1, Ordering::Relaxed);
                let end = hold(&ctx, stream, &mut stop).await;
                let counter = match end {
                    End::Refused => &live.refused,
                    End::Closed => &live.closed,
                    End::Stopped => &live.stopped,
                    End::Error => &live.errors,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                end
            }
        };
        match end {
            End::Stopped => return,
            // What the attack is about: a closed connection comes straight back.
            End::Closed => {
                backoff = BACKOFF_MIN;
                at = Instant::now();
            }
            End::Refused | End::Error => {
                at = Instant::now() + backoff;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// Sleeps until `at`; true when the attack stopped meanwhile.
async fn pause_until(at: Instant, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = sleep_until(at) => false,
        _ = stopped(stop) => true,
    }
}

/// Resolves once the attack is stopped (the guard `wait_for` gives is not kept: not `Send`).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// A connection to `addr`, from `source` when given (without reserving a port at bind time).
async fn connect(addr: SocketAddr, source: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let attempt = async {
        let Some(ip) = source else {
            return TcpStream::connect(addr).await;
        };
        let sock = if ip.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        super::fd::bind_without_port(&sock);
        sock.bind(SocketAddr::new(ip, 0))?;
        sock.connect(addr).await
    };
    let stream = timeout(CONNECT_TIMEOUT, attempt)
        .await
        .map_err(|_| std::io::Error::new(ErrorKind::TimedOut, "connect timed out"))??;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Counts a connection as held (in [`Live::held`]) while it lives, from its first answer or once
/// it outlived [`REFUSED_WITHIN`]: one the target refuses at accept is never held, so the peak
/// shows what the target let in, not the refusals in flight.
struct Held<'a> {
    live: &'a Live,
    counted: bool,
}

impl Held<'_> {
    fn count(&mut self) {
        if !self.counted {
            self.counted = true;
            self.live.held.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if self.counted {
            self.live.held.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Misbehaves on one connection until the target closes it or the attack stops.
async fn hold(ctx: &AttackCtx, mut stream: TcpStream, stop: &mut watch::Receiver<bool>) -> End {
    let opened = Instant::now();
    let mut held = Held {
        live: &ctx.live,
        counted: false,
    };
    let mut first = FirstAnswer::default();
    let (mut rd, mut wr) = stream.split();
    if let Err(e) = wr.write_all(&ctx.burst).await {
        return io_end(ctx, &e, opened, &first);
    }
    let (mut sent, mut next) = (0usize, opened + ctx.every.min(Duration::from_secs(86_400)));
    let mut buf = [0u8; 512];
    loop {
        let trickling = sent < ctx.limit && !ctx.pattern.is_empty();
        tokio::select! {
            r = rd.read(&mut buf) => match r {
                Ok(0) => return peer_closed(opened, &first),
                Ok(n) => {
                    if let Some(status) = first.feed(&buf[..n]) {
                        held.count();
                        ctx.live.answered(status);
                        if trickling {
                            // Answered (a 408): stop sending, so the target's lingering
                            // close ends at once; its close is what gets counted.
                            sent = ctx.limit;
                            let _ = wr.shutdown().await;
                        }
                    }
                }
                Err(e) => return io_end(ctx, &e, opened, &first),
            },
            _ = sleep_until(next), if trickling => {
                let byte = ctx.pattern[sent % ctx.pattern.len()];
                if let Err(e) = wr.write_all(&[byte]).await {
                    return io_end(ctx, &e, opened, &first);
                }
                sent += 1;
                next += ctx.every;
            }
            _ = sleep_until(opened + REFUSED_WITHIN), if !held.counted => held.count(),
            _ = stopped(stop) => return End::Stopped,
        }
    }
}

/// The target closed the connection: refused when unanswered and right after the connect.
fn peer_closed(opened: Instant, first: &FirstAnswer) -> End {
    if first.status.is_none() && opened.elapsed() < REFUSED_WITHIN {
        End::Refused
    } else {
        End::Closed
    }
}

/// A read or write failed: a reset or broken pipe is the target closing, anything else ours.
fn io_end(ctx: &AttackCtx, e: &std::io::Error, opened: Instant, first: &FirstAnswer) -> End {
    match e.kind() {
        ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted => peer_closed(opened, first),
        _ => {
            ctx.live.sample(format!("{}: {e}", ctx.kind.as_str()));
            End::Error
        }
    }
}

/// The status of the first answer on a connection, from its first bytes (`HTTP/1.1 408`).
#[derive(Default)]
struct FirstAnswer {
    head: [u8; 12],
    len: usize,
    status: Option<u16>,
}

impl FirstAnswer {
    /// Takes more bytes; the status once, when the status line's code has arrived.
    fn feed(&mut self, bytes: &[u8]) -> Option<u16> {
        if self.len == self.head.len() {
            return None;
        }
        let take = bytes.len().min(self.head.len() - self.len);
        self.head[self.len..self.len + take].copy_from_slice(&bytes[..take]);
        self.len += take;
        if self.len < self.head.len() {
            return None;
        }
        let code = std::str::from_utf8(&self.head[9..12]).ok().and_then(|c| c.parse().ok());
        // Not HTTP at all still counts as an answer (status 0).
        let status = if self.head.starts_with(b"HTTP/1.") {
            code.unwrap_or(0)
        } else {
            0
        };
        self.status = Some(status);
        Some(status)
    }
}

#[cfg(test)]
mod tests {
    use super::FirstAnswer;

    #[test]
    fn first_answer_status_arrives_in_pieces() {
        let mut a = FirstAnswer::default();
        assert_eq!(a.feed(b"HTTP/1.1 4"), None);
        assert_eq!(a.feed(b"08 Request Timeout\r\n"), Some(408));
        assert_eq!(a.feed(b"HTTP/1.1 200 OK"), None, "only the first answer counts");
        let mut b = FirstAnswer::default();
        assert_eq!(b.feed(b"garbage-garbage"), Some(0));
    }
}
