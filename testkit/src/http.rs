//! A blocking HTTP/1.1 call for control and readiness requests: plain HTTP to a loopback
//! address, one fresh connection per call (a server restarted between two calls never sees a
//! stale pooled connection).

use std::net::SocketAddr;
use std::time::Duration;

use ureq::http::{Method, Request};

/// Bound of the connect.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Bound of a whole call, connect to last body byte.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Status and body of an answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        // A 4xx/5xx is an answer to look at, not a transport error.
        .http_status_as_error(false)
        // Loopback only: an HTTP_PROXY of the environment must not capture these calls.
        .proxy(None)
        .max_redirects(0)
        .max_idle_connections(0)
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_global(Some(CALL_TIMEOUT))
        .build()
        .into()
}

/// Sends `method path` with `headers` and `body` (none when empty) to `addr`; `Err` on any
/// transport failure or timeout, `Ok` with whatever status the server answered.
pub fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Reply, String> {
    let url = format!("http://{addr}{path}");
    let what = || format!("{method} {url}");
    let method = Method::from_bytes(method.as_bytes()).map_err(|e| format!("{}: {e}", what()))?;
    let mut req = Request::builder().method(method).uri(&url);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let agent = agent();
    let answer = if body.is_empty() {
        req.body(()).map(|r| agent.run(r))
    } else {
        req.body(body.to_vec()).map(|r| agent.run(r))
    };
    let mut resp = answer
        .map_err(|e| format!("{}: {e}", what()))?
        .map_err(|e| format!("{}: {e}", what()))?;
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .read_to_vec()
        .map_err(|e| format!("{}: reading the body: {e}", what()))?;
    Ok(Reply { status, body })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    use super::*;

    /// A one-request server that echoes the request line, a header and the body.
    #[test]
    fn sends_method_headers_and_body_and_returns_any_status() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut head = Vec::new();
            let mut len = 0;
            loop {
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                if line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
                head.push(line.trim_end().to_string());
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            let echo = format!(
                "{}|{}|{}",
                head[0],
                head.iter().any(|h| h == "x-test: 1"),
                String::from_utf8(body).unwrap()
            );
            let mut s = s;
            write!(
                s,
                "HTTP/1.1 418 I'm a teapot\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{echo}",
                echo.len()
            )
            .unwrap();
        });
        let r = call(addr, "POST", "/x?y=1", &[("x-test", "1")], b"{}").unwrap();
        t.join().unwrap();
        assert_eq!(r.status, 418);
        assert_eq!(r.text(), "POST /x?y=1 HTTP/1.1|true|{}");
        // Nothing listens any more: a transport error naming the call.
        let err = call(addr, "GET", "/", &[], b"").unwrap_err();
        assert!(err.contains(&format!("GET http://{addr}/")), "{err}");
    }
}
