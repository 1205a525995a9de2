//! The client connection guard: a stream wrapper that holds an HTTP/1 client to the limits
//! pingora 0.9.1 has no hook for — the whole request head within `header_timeout` (pingora
//! times each read, so one byte per minute holds a connection forever), idle keep-alive within
//! `keepalive_timeout` (pingora waits forever after the first request), and a head no larger
//! than `max_request_header_bytes` *while it is read* (pingora buffers up to 1 MiB first).
//!
//! The guard follows the connection through its phases: `Head` (reading a request head: the
//! bytes are scanned for the blank line that ends it, and counted) → `Serving` (the request
//! path said it parsed the head: pingora's own per-read and per-write timeouts cover the body
//! and the answer) → `Idle` (the request path said the request is done) → `Head` again at the
//! next byte. A head that overruns gets `408`, one that grows too large `431`, written by the
//! guard itself; the guard then reads and discards what the client still sends (a short
//! lingering close, as nginx does, so the answer is not lost to a TCP reset) and ends the
//! stream. An idle connection that overruns is closed quietly.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use async_trait::async_trait;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream, TimingDigest,
    UniqueID, UniqueIDType, ALPN, IO,
};
use prometheus::IntCounterVec;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::caps::Permit;
use crate::config::ClientLimits;

/// How long a refused client's remaining bytes are read and dropped, at most.
const LINGER: Duration = Duration::from_secs(2);
/// How many of them, at most.
const LINGER_BYTES: usize = 256 * 1024;

/// Slack for a timer that fires a hair before its deadline (the wheel counts milliseconds).
const TIMER_SLACK: Duration = Duration::from_millis(1);

/// What the request path and the guard tell each other of one connection (through
/// `session.stream()`).
#[derive(Debug)]
pub struct ConnState {
    heads: AtomicU32,
    done: AtomicU32,
    /// Older than `max_connection_duration` when its current request began: answer with
    /// `connection: close`. Judged by the guard, which reads the clock at that moment anyway.
    retire: AtomicBool,
}

impl ConnState {
    fn new() -> Self {
        ConnState {
            heads: AtomicU32::new(0),
            done: AtomicU32::new(0),
            retire: AtomicBool::new(false),
        }
    }

    /// Whether this connection should close after the current answer (it is too old).
    pub fn retiring(&self) -> bool {
        self.retire.load(Ordering::Relaxed)
    }

    /// A request head was parsed: its body and answer are pingora's to time.
    pub fn head_parsed(&self) {
        self.heads.fetch_add(1, Ordering::Relaxed);
    }

    /// The request is answered: the connection is idle until the next one.
    pub fn request_done(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }
}

/// The guard's view of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Between requests (or before the first byte of a later one).
    Idle,
    /// Reading a request head: `bytes` of it so far, the current line has `content` (bytes
    /// other than CR), a request line `begun` (empty lines before it are allowed, RFC 9112
    /// §2.2).
    Head {
        bytes: usize,
        content: bool,
        begun: bool,
        ended: bool,
    },
    /// The request path has the request.
    Serving,
    /// Writing the guard's own answer (`written` bytes of it so far).
    Refusing {
        status: u16,
        written: usize,
    },
    /// Dropping what the client still sends, until `LINGER` or `LINGER_BYTES`.
    Lingering {
        dropped: usize,
    },
    Closed,
}

/// A client connection under its limits.
#[derive(Debug)]
pub struct ClientStream {
    inner: Stream,
    state: Arc<ConnState>,
    limits: ClientLimits,
    max_head: usize,
    phase: Phase,
    /// HTTP/1 (the guard follows requests) or HTTP/2 (it only holds the slot).
    http1: bool,
    seen_heads: u32,
    seen_done: u32,
    /// When the connection has lived `max_connection_duration` (never, past the clock's range).
    retire_at: Option<Instant>,
    /// The deadline of the current phase, while one applies.
    deadline: Option<Instant>,
    /// Wakes the task at or before `deadline`. Moved only when the deadline comes earlier or
    /// the timer fires early: resetting a tokio timer on every request costs a wheel update,
    /// while a busy connection's deadlines only ever move later.
    timer: Pin<Box<Sleep>>,
    /// The waker the pending timer holds (polling it again with the same one would only
    /// re-register it); none after a reset.
    timer_waker: Option<Waker>,
    answer: &'static [u8],
    /// `arena_client_closed_total{reason}`.
    closed: IntCounterVec,
    _permit: Permit,
}

impl ClientStream {
    /// Guards an HTTP/1 connection (`http1`), or — HTTP/2, framed and timed by pingora's h2
    /// settings — only holds its connection slot.
    pub fn new(
        inner: Stream,
        limits: ClientLimits,
        max_head: usize,
        permit: Permit,
        http1: bool,
        closed: IntCounterVec,
    ) -> Self {
        let now = Instant::now();
        let first = now + limits.header_timeout;
        ClientStream {
            inner,
            state: Arc::new(ConnState::new()),
            limits,
            max_head,
            // The first request's head is due `header_timeout` after the connection opened.
            phase: if http1 {
                Phase::Head {
                    bytes: 0,
                    content: false,
                    begun: false,
                    ended: false,
                }
            } else {
                Phase::Serving
            },
            http1,
            seen_heads: 0,
            seen_done: 0,
            retire_at: now.checked_add(limits.max_connection_duration),
            deadline: http1.then_some(first),
            timer: Box::pin(tokio::time::sleep_until(first)),
            timer_waker: None,
            answer: b"",
            closed,
            _permit: permit,
        }
    }

    /// The state the request path signals through.
    pub fn conn(&self) -> &Arc<ConnState> {
        &self.state
    }

    /// The guard of a pingora stream, when it is one.
    pub fn of(stream: &Stream) -> Option<&ClientStream> {
        let io: &dyn IO = &**stream;
        io.as_any().downcast_ref::<ClientStream>()
    }

    /// Gives the phase a deadline `after` from now; returns now.
    fn arm(&mut self, after: Duration) -> Instant {
        let now = Instant::now();
        let deadline = now + after;
        if self.timer.deadline() > deadline {
            self.timer.as_mut().reset(deadline);
            self.timer_waker = None;
        }
        self.deadline = Some(deadline);
        now
    }

    /// Whether the phase's deadline has passed; if not, the timer will wake the task for it.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(deadline) = self.deadline else {
            return false;
        };
        let waiting = self.timer_waker.as_ref().is_some_and(|w| w.will_wake(cx.waker()));
        if waiting && !self.timer.is_elapsed() {
            return false;
        }
        while self.timer.as_mut().poll(cx).is_ready() {
            if Instant::now() + TIMER_SLACK >= deadline {
                return true;
            }
            // It fired for an earlier deadline of this connection: on to the current one.
            self.timer.as_mut().reset(deadline);
        }
        if !waiting {
            self.timer_waker = Some(cx.waker().clone());
        }
        false
    }

    /// Applies what the request path said since the last poll.
    fn sync(&mut self) {
        if !self.http1 {
            return;
        }
        let heads = self.state.heads.load(Ordering::Relaxed);
        let done = self.state.done.load(Ordering::Relaxed);
        if heads == self.seen_heads && done == self.seen_done {
            return;
        }
        self.seen_heads = heads;
        self.seen_done = done;
        if matches!(
            self.phase,
            Phase::Refusing { .. } | Phase::Lingering { .. } | Phase::Closed
        ) {
            return;
        }
        if heads > done {
            self.phase = Phase::Serving;
            self.deadline = None;
        } else {
            self.phase = Phase::Idle;
            self.arm(self.limits.keepalive_timeout);
        }
    }

    /// Starts refusing the client with `status`: the answer, then a lingering close.
    fn refuse(&mut self, status: u16) {
        let (answer, reason) = match status {
            408 => (REQUEST_TIMEOUT, "header_timeout"),
            _ => (HEADERS_TOO_LARGE, "headers_too_large"),
        };
        self.closed.with_label_values(&[reason]).inc();
        self.answer = answer;
        self.phase = Phase::Refusing { status, written: 0 };
        self.arm(LINGER);
    }

    /// Scans bytes read in the head phase; refuses the client when the head grows too large.
    fn scan(&mut self, bytes: &[u8]) -> Result<(), ()> {
        let Phase::Head {
            bytes: n,
            content,
            begun,
            ended,
        } = &mut self.phase
        else {
            return Ok(());
        };
        if *ended {
            return Ok(());
        }
        // Most reads hold a whole head and nothing after it: when the read ends with a blank
        // line after the request line, the head ends in it (there, or at an earlier blank line:
        // either way the head is complete and within the read).
        if let [rest @ .., b'\n'] = bytes {
            let before = rest.iter().rposition(|&b| b != b'\r');
            let blank = match before {
                None => !*content,
                Some(i) => rest[i] == b'\n',
            };
            if blank && (*begun || bytes.iter().any(|&b| b != b'\r' && b != b'\n')) {
                *ended = true;
                self.deadline = None;
                return Ok(());
            }
        }
        // Line by line (memchr), looking only at the start of each line: a line is blank when
        // it holds nothing but CRs, and `all` stops at a line's first other byte.
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', bytes) {
            let blank = !*content && bytes[start..nl].iter().all(|&b| b == b'\r');
            if blank && *begun {
                // The blank line: the head is complete (what follows is a body or the next
                // request, for pingora to handle).
                *ended = true;
                self.deadline = None;
                return Ok(());
            }
            *begun |= !blank;
            *content = false;
            start = nl + 1;
        }
        if bytes[start..].iter().any(|&b| b != b'\r') {
            *content = true;
            *begun = true;
        }
        *n += bytes.len();
        if *n > self.max_head {
            return Err(());
        }
        Ok(())
    }

    fn poll_refusing(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Phase::Refusing { status, written } = self.phase {
            if written >= self.answer.len() {
                tracing::debug!(status, "client refused by the connection guard");
                let _ = Pin::new(&mut self.inner).poll_flush(cx);
                self.phase = Phase::Lingering { dropped: 0 };
                break;
            }
            match Pin::new(&mut self.inner).poll_write(cx, &self.answer[written..]) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => self.phase = Phase::Closed,
                Poll::Ready(Ok(n)) => {
                    self.phase = Phase::Refusing {
                        status,
                        written: written + n,
                    }
                }
                Poll::Pending if self.expired(cx) => self.phase = Phase::Closed,
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }

    fn poll_lingering(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut scratch = [0u8; 4096];
        while let Phase::Lingering { dropped } = self.phase {
            if dropped >= LINGER_BYTES || self.expired(cx) {
                self.phase = Phase::Closed;
                break;
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    self.phase = Phase::Lingering {
                        dropped: dropped + buf.filled().len(),
                    }
                }
                Poll::Ready(_) => self.phase = Phase::Closed,
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

const REQUEST_TIMEOUT: &[u8] = b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\ncontent-length: 79\r\nconnection: close\r\n\r\n{\"error\":\"request_timeout\",\"message\":\"the request head did not arrive in time\"}";
const HEADERS_TOO_LARGE: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\ncontent-length: 71\r\nconnection: close\r\n\r\n{\"error\":\"headers_too_large\",\"message\":\"request headers are too large\"}";

impl AsyncRead for ClientStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.sync();
        loop {
            match this.phase {
                // The stream ends here: pingora closes the connection.
                Phase::Closed => return Poll::Ready(Ok(())),
                Phase::Refusing { .. } => match this.poll_refusing(cx) {
                    Poll::Ready(_) => continue,
                    Poll::Pending => return Poll::Pending,
                },
                Phase::Lingering { .. } => match this.poll_lingering(cx) {
                    Poll::Ready(_) => continue,
                    Poll::Pending => return Poll::Pending,
                },
                _ => break,
            }
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        match polled {
            // The deadline is judged only when the client has nothing more to give (data that is
            // there is read first, and the head cap bounds a client that is never pending).
            Poll::Pending if this.expired(cx) => match this.phase {
                Phase::Head { begun: true, .. } => {
                    this.refuse(408);
                    return Pin::new(this).poll_read(cx, buf);
                }
                // Idle too long, or no byte of the first request in time: close quietly.
                _ => {
                    this.closed.with_label_values(&["idle"]).inc();
                    this.phase = Phase::Closed;
                    return Poll::Ready(Ok(()));
                }
            },
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                if this.phase == Phase::Idle {
                    // The next request begins: its whole head is due within `header_timeout`.
                    this.phase = Phase::Head {
                        bytes: 0,
                        content: false,
                        begun: false,
                        ended: false,
                    };
                    let now = this.arm(this.limits.header_timeout);
                    if this.retire_at.is_some_and(|at| now >= at) {
                        this.state.retire.store(true, Ordering::Relaxed);
                    }
                }
                if this.scan(&buf.filled()[before..]).is_err() {
                    // Hidden from pingora: the head is refused, not parsed.
                    buf.set_filled(before);
                    this.refuse(431);
                    return Pin::new(this).poll_read(cx, buf);
                }
            }
            _ => {}
        }
        polled
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for ClientStream {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for ClientStream {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for ClientStream {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for ClientStream {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for ClientStream {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for ClientStream {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for ClientStream {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
#[path = "guard_tests.rs"]
mod tests;
