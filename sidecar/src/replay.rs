//! `arena-sidecar replay DIR --to http://HOST:PORT`: sends captured requests again, oldest
//! first — method, path, headers (hop-by-hop and redacted ones dropped; `Host` the target's
//! unless `--keep-host`), the captured body — over plain HTTP/1.1, and prints what came back.
//! A replay reproduces the bytes the app got, so it writes the request itself.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::inbound::capture::{self, Record, REDACTED};

/// Headers a replay never copies: per connection, or recomputed.
const SKIPPED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "upgrade",
    "content-length",
    "host",
];

pub struct Options {
    pub dir: PathBuf,
    pub to: String,
    pub id: Option<String>,
    pub timeout: Duration,
    pub keep_host: bool,
}

/// How one replay went.
#[derive(Debug, PartialEq, Eq)]
pub enum Result {
    Status(u16),
    TimedOut,
}

/// `http://host:port` → (socket address, host header).
pub fn target(url: &str) -> std::result::Result<(SocketAddr, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("`{url}`: only http:// targets (a local build of the app)"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(format!("`{url}` has no host"));
    }
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| format!("`{authority}`: {e}"))?
        .next()
        .ok_or_else(|| format!("`{authority}` resolves to nothing"))?;
    Ok((addr, authority.to_string()))
}

/// The request bytes a record replays as.
pub fn request_bytes(r: &Record, host: &str, keep_host: bool) -> Vec<u8> {
    let body = r.body().unwrap_or_default();
    let mut out = Vec::with_capacity(256 + body.len());
    let path = if r.path.starts_with('/') { r.path.as_str() } else { "/" };
    out.extend_from_slice(format!("{} {} HTTP/1.1\r\n", r.method, path).as_bytes());
    let original_host = r.headers.iter().find(|(n, _)| n == "host").and_then(|(_, v)| v.bytes());
    match (keep_host, original_host) {
        (true, Some(h)) => {
            out.extend_from_slice(b"host: ");
            out.extend_from_slice(&h);
            out.extend_from_slice(b"\r\n");
        }
        _ => out.extend_from_slice(format!("host: {host}\r\n").as_bytes()),
    }
    for (name, value) in &r.headers {
        if SKIPPED.contains(&name.as_str()) || *value == capture::Value::Text(REDACTED.into()) {
            continue;
        }
        let Some(v) = value.bytes() else { continue };
        if name.bytes().any(|b| b.is_ascii_whitespace() || b == b':') || v.iter().any(|b| *b == b'\r' || *b == b'\n') {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(&v);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("content-length: {}\r\nconnection: close\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(&body);
    out
}

fn send(addr: SocketAddr, bytes: &[u8], timeout: Duration) -> io::Result<Result> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.write_all(bytes)?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                head.extend_from_slice(&buf[..n]);
                if head.windows(2).any(|w| w == b"\r\n") {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Ok(Result::TimedOut)
            }
            Err(e) => return Err(e),
        }
    }
    let status = head
        .strip_prefix(b"HTTP/1.")
        .and_then(|r| r.get(2..5))
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no HTTP/1 status line in the answer"))?;
    Ok(Result::Status(status))
}

/// Replays the captures of `opts.dir`; prints one line each. Exit code: 0 all sent, 1 a file
/// was unreadable or a request could not be sent.
pub fn run(opts: &Options, out: &mut impl Write) -> u8 {
    let (addr, host) = match target(&opts.to) {
        Ok(t) => t,
        Err(e) => {
            let _ = writeln!(out, "replay: {e}");
            return 2;
        }
    };
    let files = match capture::list(&opts.dir) {
        Ok(f) => f,
        Err(e) => {
            let _ = writeln!(out, "replay: cannot read {}: {e}", opts.dir.display());
            return 1;
        }
    };
    let mut code = 0;
    let mut sent = 0;
    for file in files {
        let record = match read(&file) {
            Ok(r) => r,
            Err(e) => {
                let _ = writeln!(out, "{}: {e}", file.display());
                code = 1;
                continue;
            }
        };
        if opts.id.as_ref().is_some_and(|id| *id != record.id) {
            continue;
        }
        sent += 1;
        let bytes = request_bytes(&record, &host, opts.keep_host);
        let started = Instant::now();
        let line = match send(addr, &bytes, opts.timeout) {
            Ok(Result::Status(s)) => format!("→ {s} in {} ms", started.elapsed().as_millis()),
            Ok(Result::TimedOut) => format!("→ timeout after {} ms", started.elapsed().as_millis()),
            Err(e) => {
                code = 1;
                format!("→ failed: {e}")
            }
        };
        let _ = writeln!(out, "{} {} {} {line}", record.id, record.method, record.path);
    }
    if sent == 0 {
        let _ = writeln!(out, "replay: no capture to send in {}", opts.dir.display());
    }
    code
}

fn read(path: &Path) -> std::result::Result<Record, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let r: Record = serde_json::from_str(&text).map_err(|e| format!("not a capture: {e}"))?;
    if r.v != capture::FORMAT_VERSION {
        return Err(format!(
            "capture format v{} (this replay reads v{})",
            r.v,
            capture::FORMAT_VERSION
        ));
    }
    Ok(r)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::inbound::capture::Value;

    fn record() -> Record {
        Record {
            v: 1,
            id: "r1".into(),
            time_ms: 1,
            reason: "timeout".into(),
            elapsed_ms: 1,
            timeout_ms: 1,
            app: "127.0.0.1:1".into(),
            client: None,
            method: "POST".into(),
            path: "/v1/x?y=1".into(),
            version: "HTTP/1.1".into(),
            headers: vec![
                ("host".into(), Value::Text("api.example".into())),
                ("authorization".into(), Value::Text(REDACTED.into())),
                ("x-request-id".into(), Value::Text("r1".into())),
                ("transfer-encoding".into(), Value::Text("chunked".into())),
                ("x-evil".into(), Value::Text("a\r\nb: c".into())),
            ],
            body_b64: "aGVsbG8=".into(),
            body_bytes_seen: 5,
            body_truncated: false,
        }
    }

    #[test]
    fn the_request_is_rebuilt_without_secrets_or_framing() {
        let text = String::from_utf8(request_bytes(&record(), "127.0.0.1:9", false)).unwrap();
        assert_eq!(
            text,
            "POST /v1/x?y=1 HTTP/1.1\r\nhost: 127.0.0.1:9\r\nx-request-id: r1\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello"
        );
        let kept = String::from_utf8(request_bytes(&record(), "127.0.0.1:9", true)).unwrap();
        assert!(kept.contains("host: api.example\r\n"));
    }

    #[test]
    fn targets() {
        assert_eq!(target("http://127.0.0.1:8080").unwrap().0.port(), 8080);
        assert_eq!(target("http://127.0.0.1/x").unwrap().0.port(), 80);
        assert!(target("https://127.0.0.1").is_err());
        assert!(target("http://").is_err());
    }
}
