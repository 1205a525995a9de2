//! Connection plumbing shared by both protocols, and the HTTP/2 client (hyper, h2c with prior
//! knowledge). HTTP/1.1 uses the leaner client in `h1`.
//!
//! An HTTP/2 connection is shared by several lanes (streams), so its connection future runs
//! as its own task; lanes hold clones of its `SendRequest`.

use std::net::SocketAddr;
use std::time::Duration;

use http::Request;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use super::mix::Body;

/// Why an exchange failed.
#[derive(Debug)]
pub enum Failure {
    /// The connection could not be (re)established.
    Connect(String),
    /// The connection broke, or the peer spoke bad HTTP.
    Http(String),
}

impl Failure {
    pub fn message(&self) -> String {
        match self {
            Failure::Connect(m) => format!("connect: {m}"),
            Failure::Http(m) => m.clone(),
        }
    }
}

/// A finished exchange.
#[derive(Debug, Default)]
pub struct Answer {
    pub status: u16,
    /// Body bytes received.
    pub bytes: u64,
    pub debug: DebugHeaders,
}

/// Longest debug header value kept (longer ones are cut; pod addresses and function names are
/// far shorter).
const DEBUG_VALUE_MAX: usize = 126;

/// One copied header value, inline (no allocation on the request path).
#[derive(Clone, Copy)]
struct Value {
    len: u8,
    data: [u8; DEBUG_VALUE_MAX],
}

impl Default for Value {
    fn default() -> Self {
        Value {
            len: 0,
            data: [0; DEBUG_VALUE_MAX],
        }
    }
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.data[..usize::from(self.len)]))
    }
}

/// Copies of the Arena debug headers of one response (`x-arena-backend`, `-route`,
/// `-attempts`, `-release`).
#[derive(Debug, Default)]
pub struct DebugHeaders {
    present: u8,
    backend: Value,
    route: Value,
    attempts: Value,
    release: Value,
}

impl DebugHeaders {
    const BACKEND: u8 = 1;
    const ROUTE: u8 = 2;
    const ATTEMPTS: u8 = 4;
    const RELEASE: u8 = 8;

    /// Keeps `value` if `suffix` (the name after `x-arena-`) is one of ours.
    pub fn set(&mut self, suffix: &str, value: &[u8]) {
        let (bit, slot) = if suffix.eq_ignore_ascii_case("backend") {
            (Self::BACKEND, &mut self.backend)
        } else if suffix.eq_ignore_ascii_case("route") {
            (Self::ROUTE, &mut self.route)
        } else if suffix.eq_ignore_ascii_case("attempts") {
            (Self::ATTEMPTS, &mut self.attempts)
        } else if suffix.eq_ignore_ascii_case("release") {
            (Self::RELEASE, &mut self.release)
        } else {
            return;
        };
        let n = value.len().min(DEBUG_VALUE_MAX);
        slot.data[..n].copy_from_slice(&value[..n]);
        slot.len = n as u8;
        self.present |= bit;
    }

    /// From a hyper header map (HTTP/2 path).
    pub fn from_map(h: &http::HeaderMap) -> DebugHeaders {
        let mut d = DebugHeaders::default();
        for name in ["backend", "route", "attempts", "release"] {
            if let Some(v) = h.get(format!("x-arena-{name}").as_str()) {
                d.set(name, v.as_bytes());
            }
        }
        d
    }

    fn get<'a>(&self, bit: u8, v: &'a Value) -> Option<&'a [u8]> {
        (self.present & bit != 0).then(|| &v.data[..usize::from(v.len)])
    }

    pub fn backend(&self) -> Option<&[u8]> {
        self.get(Self::BACKEND, &self.backend)
    }

    pub fn route(&self) -> Option<&[u8]> {
        self.get(Self::ROUTE, &self.route)
    }

    pub fn attempts(&self) -> Option<&[u8]> {
        self.get(Self::ATTEMPTS, &self.attempts)
    }

    /// `x-arena-release: NAME=VERSION` (see [`crate::release::header`]).
    pub fn release(&self) -> Option<&[u8]> {
        self.get(Self::RELEASE, &self.release)
    }
}

pub(crate) async fn tcp(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, Failure> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(Failure::Connect(e.to_string())),
        Err(_) => return Err(Failure::Connect(format!("timed out after {timeout:?}"))),
    };
    // Small requests: never let Nagle hold one back.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Reads the whole body (discarding it), counting bytes.
async fn drain(body: &mut Incoming) -> Result<u64, hyper::Error> {
    let mut bytes = 0u64;
    while let Some(frame) = body.frame().await {
        if let Some(d) = frame?.data_ref() {
            bytes += d.len() as u64;
        }
    }
    Ok(bytes)
}

/// One shared HTTP/2 connection; its driver runs as a separate task.
pub async fn connect_h2(addr: SocketAddr, timeout: Duration) -> Result<http2::SendRequest<Body>, Failure> {
    let stream = tcp(addr, timeout).await?;
    let handshake = http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(1 << 20)
        .initial_connection_window_size(4 << 20)
        .handshake(TokioIo::new(stream));
    let (sender, conn) = match tokio::time::timeout(timeout, handshake).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => return Err(Failure::Connect(format!("h2 handshake: {e}"))),
        Err(_) => return Err(Failure::Connect("h2 handshake timed out".into())),
    };
    tokio::spawn(async move {
        // Ends when the peer closes or every sender is dropped; errors surface on requests.
        let _ = conn.await;
    });
    Ok(sender)
}

/// Sends one request on an HTTP/2 connection and reads the whole response.
pub async fn exchange_h2(sender: &mut http2::SendRequest<Body>, req: Request<Body>) -> Result<Answer, Failure> {
    sender.ready().await.map_err(|e| Failure::Http(e.to_string()))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| Failure::Http(e.to_string()))?;
    let (head, mut body) = resp.into_parts();
    let bytes = drain(&mut body).await.map_err(|e| Failure::Http(e.to_string()))?;
    Ok(Answer {
        status: head.status.as_u16(),
        bytes,
        debug: DebugHeaders::from_map(&head.headers),
    })
}
