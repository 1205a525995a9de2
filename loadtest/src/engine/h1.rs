//! Minimal HTTP/1.1 keep-alive client for the hot path of the generator.
//!
//! hyper's client costs ~3.5 µs of CPU per request in channels, wakers and header maps, about
//! four times what wrk spends in user space; this client writes pre-encoded request bytes and
//! parses responses in place with `httparse` (content-length, chunked and close-delimited
//! bodies, 1xx, HEAD/204/304), copying only the Arena debug headers. HTTP/2 stays on
//! hyper (see `client`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::client::{tcp, DebugHeaders, Failure};

/// Read buffer size; a response head must fit in it.
const BUF: usize = 64 * 1024;
/// Most response headers parsed.
const MAX_HEADERS: usize = 64;
/// A connection idle longer than this is checked for a server-side close before reuse.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// What an exchange returns.
#[derive(Debug, Default)]
pub struct Response {
    pub status: u16,
    /// Body bytes received.
    pub bytes: u64,
    pub debug: DebugHeaders,
    /// False when the server asked to close (or the body was close-delimited).
    pub keep_alive: bool,
}

enum BodyKind {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// One keep-alive connection with its read buffer.
pub struct RawConn {
    stream: TcpStream,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    last_used: Instant,
}

fn http_err(msg: impl Into<String>) -> Failure {
    Failure::Http(msg.into())
}

fn io_err(e: std::io::Error) -> Failure {
    Failure::Http(e.to_string())
}

impl RawConn {
    pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<RawConn, Failure> {
        Ok(RawConn {
            stream: tcp(addr, timeout).await?,
            buf: vec![0u8; BUF].into_boxed_slice(),
            start: 0,
            end: 0,
            last_used: Instant::now(),
        })
    }

    /// False when the server closed the connection while it sat idle (reconnect instead of
    /// failing a request that was never sent).
    pub fn is_reusable(&mut self) -> bool {
        if self.last_used.elapsed() < IDLE_CHECK {
            return true;
        }
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }

    /// Sends one encoded request and reads the whole response.
    pub async fn exchange(&mut self, request: &[u8], head: bool) -> Result<Response, Failure> {
        self.start = 0;
        self.end = 0;
        self.stream.write_all(request).await.map_err(io_err)?;
        let (mut resp, body) = self.read_head(head).await?;
        resp.bytes = match body {
            BodyKind::None => 0,
            BodyKind::Length(n) => {
                self.skip(n).await?;
                n
            }
            BodyKind::Chunked => self.chunked().await?,
            BodyKind::UntilClose => {
                resp.keep_alive = false;
                self.until_close().await?
            }
        };
        self.last_used = Instant::now();
        Ok(resp)
    }

    /// Reads more bytes into the buffer; 0 means the peer closed.
    async fn fill(&mut self) -> Result<usize, Failure> {
        if self.end == self.buf.len() {
            if self.start == 0 {
                return Err(http_err(format!("response head larger than {BUF} bytes")));
            }
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = self.stream.read(&mut self.buf[self.end..]).await.map_err(io_err)?;
        self.end += n;
        Ok(n)
    }

    async fn fill_or_eof(&mut self, what: &str) -> Result<(), Failure> {
        if self.fill().await? == 0 {
            return Err(http_err(format!("connection closed {what}")));
        }
        Ok(())
    }

    async fn read_head(&mut self, head: bool) -> Result<(Response, BodyKind), Failure> {
        loop {
            if self.end > self.start {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut parsed = httparse::Response::new(&mut headers);
                match parsed.parse(&self.buf[self.start..self.end]) {
                    Ok(httparse::Status::Complete(n)) => {
                        let status = parsed.code.unwrap_or(0);
                        let http10 = parsed.version == Some(0);
                        let out = interpret(status, http10, head, parsed.headers)?;
                        self.start += n;
                        // Interim responses (100 Continue...) precede the real one.
                        if (100..200).contains(&status) && status != 101 {
                            continue;
                        }
                        return Ok(out);
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(e) => return Err(http_err(format!("invalid response: {e}"))),
                }
            }
            self.fill_or_eof("before a response").await?;
        }
    }

    /// Discards `n` body bytes.
    async fn skip(&mut self, mut n: u64) -> Result<(), Failure> {
        loop {
            let avail = (self.end - self.start) as u64;
            if avail >= n {
                self.start += n as usize;
                return Ok(());
            }
            n -= avail;
            self.start = 0;
            self.end = 0;
            self.fill_or_eof("inside a body").await?;
        }
    }

    async fn chunked(&mut self) -> Result<u64, Failure> {
        let mut total = 0u64;
        loop {
            let size = loop {
                match httparse::parse_chunk_size(&self.buf[self.start..self.end]) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        self.start += used;
                        break size;
                    }
                    Ok(httparse::Status::Partial) => self.fill_or_eof("inside a chunked body").await?,
                    Err(_) => return Err(http_err("invalid chunk size")),
                }
            };
            if size == 0 {
                // Trailer lines up to an empty one.
                loop {
                    match self.buf[self.start..self.end].windows(2).position(|w| w == b"\r\n") {
                        Some(0) => {
                            self.start += 2;
                            return Ok(total);
                        }
                        Some(p) => self.start += p + 2,
                        None => self.fill_or_eof("inside chunked trailers").await?,
                    }
                }
            }
            total += size;
            // Chunk data and its CRLF.
            self.skip(size + 2).await?;
        }
    }

    async fn until_close(&mut self) -> Result<u64, Failure> {
        let mut total = (self.end - self.start) as u64;
        loop {
            self.start = 0;
            self.end = 0;
            let n = self.fill().await?;
            if n == 0 {
                return Ok(total);
            }
            total += n as u64;
        }
    }
}

/// Body framing, keep-alive and debug headers of a parsed head.
fn interpret(
    status: u16,
    http10: bool,
    head: bool,
    headers: &[httparse::Header<'_>],
) -> Result<(Response, BodyKind), Failure> {
    let mut resp = Response {
        status,
        keep_alive: !http10,
        ..Response::default()
    };
    let mut length = None;
    let mut chunked = false;
    for h in headers {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let text = std::str::from_utf8(h.value).unwrap_or("").trim();
            length = Some(
                text.parse::<u64>()
                    .map_err(|_| http_err(format!("bad content-length `{text}`")))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = h
                .value
                .rsplit(|b| *b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|b| *b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    resp.keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && http10 {
                    resp.keep_alive = true;
                }
            }
        } else if name.len() > 8 && name[..8].eq_ignore_ascii_case("x-arena-") {
            resp.debug.set(&name[8..], h.value);
        }
    }
    let body = if head || (100..200).contains(&status) || status == 204 || status == 304 {
        BodyKind::None
    } else if chunked {
        BodyKind::Chunked
    } else if let Some(n) = length {
        BodyKind::Length(n)
    } else {
        BodyKind::UntilClose
    };
    Ok((resp, body))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use tokio::net::TcpListener;

    /// Serves canned bytes per request (written in small pieces to exercise partial reads),
    /// reading one request head first.
    async fn server(responses: Vec<&'static [u8]>, close_after: bool) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            for r in responses {
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut buf).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                for piece in r.chunks(7) {
                    s.write_all(piece).await.unwrap();
                    s.flush().await.unwrap();
                    tokio::task::yield_now().await;
                }
            }
            if !close_after {
                let _ = s.read(&mut buf).await;
            }
        });
        addr
    }

    const GET: &[u8] = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n";

    #[tokio::test]
    async fn framing_variants_on_one_connection() {
        let addr = server(
            vec![
                b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-arena-backend: 127.0.0.11:9100\r\n\r\nhello",
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\nX-Arena-Attempts: 2\r\n\r\n4;ext=1\r\nabcd\r\n3\r\nefg\r\n0\r\nx-trailer: t\r\n\r\n",
                b"HTTP/1.1 204 No Content\r\nx-arena-route: matches\r\nX-Arena-Release: match-api-v2=canary\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end",
            ],
            true,
        )
        .await;
        let mut c = RawConn::connect(addr, Duration::from_secs(2)).await.unwrap();
        let r = c.exchange(GET, false).await.unwrap();
        assert_eq!((r.status, r.bytes, r.keep_alive), (200, 5, true));
        assert_eq!(r.debug.backend(), Some(&b"127.0.0.11:9100"[..]));
        let r = c.exchange(GET, false).await.unwrap();
        assert_eq!((r.status, r.bytes), (503, 7));
        assert_eq!(r.debug.attempts(), Some(&b"2"[..]));
        let r = c.exchange(GET, false).await.unwrap();
        assert_eq!((r.status, r.bytes), (204, 0));
        assert_eq!(r.debug.route(), Some(&b"matches"[..]));
        assert_eq!(r.debug.release(), Some(&b"match-api-v2=canary"[..]));
        let r = c.exchange(GET, false).await.unwrap();
        assert_eq!((r.status, r.bytes, r.keep_alive), (200, 13, false));
    }

    #[tokio::test]
    async fn head_requests_and_errors() {
        let addr = server(
            vec![
                b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n",
                b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nshort",
            ],
            true,
        )
        .await;
        let mut c = RawConn::connect(addr, Duration::from_secs(2)).await.unwrap();
        let r = c.exchange(b"HEAD / HTTP/1.1\r\nhost: x\r\n\r\n", true).await.unwrap();
        assert_eq!((r.status, r.bytes), (200, 0));
        let e = c.exchange(GET, false).await.unwrap_err();
        assert!(e.message().contains("closed inside a body"), "{}", e.message());

        let addr = server(vec![b"garbage\r\n\r\n"], true).await;
        let mut c = RawConn::connect(addr, Duration::from_secs(2)).await.unwrap();
        assert!(c
            .exchange(GET, false)
            .await
            .unwrap_err()
            .message()
            .contains("invalid response"));
    }
}
