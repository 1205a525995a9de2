//! What Arena's pingora patches (vendor/README.md) must keep.
//!
//! Patch 1 (`HttpServerApp::process_new_http` returns its future unboxed, so a keep-alive
//! connection reuses one request state machine instead of boxing a new one per request): every
//! request of a long keep-alive connection runs from a fresh state — its own route, body,
//! status and request id, errors included — on the proxy, on the admin API (pingora's
//! `ServeHttp` path) and on HTTP/2 streams, which still run one task each.
//!
//! Patch 2 (header maps without the case map): names reach the pod in lowercase and the client
//! in their canonical case (standard names Title-Case, others lowercase), values untouched,
//! repeated headers all there and in order.
//!
//! Patch 3 (hop-by-hop names found in one pass, removed only when present): every standard
//! hop-by-hop header and every header `Connection` nominates is still kept from the pod.
//!
//! Patch 4 (a fast path for a single all-digit `Content-Length`): every form of the header
//! frames a body as before — plain, padded, zero-led, repeated — and ambiguous or bad ones
//! (conflicting, comma-joined, signed, hex) are still refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use support::gateway::{Gateway, Pod};

/// One answer read off a keep-alive connection.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one HTTP/1.1 answer (content-length or chunked) from `r`.
fn read_answer(r: &mut BufReader<TcpStream>) -> Answer {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 "), "status line: {line:?}");
    let status = line[9..12].parse().unwrap();
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').unwrap();
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let mut a = Answer {
        status,
        headers,
        body: String::new(),
    };
    let mut body = Vec::new();
    if a.header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            line.clear();
            r.read_line(&mut line).unwrap();
            let n = usize::from_str_radix(line.trim(), 16).unwrap();
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).unwrap();
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else {
        let n: usize = a.header("content-length").map_or(0, |v| v.parse().unwrap());
        body.resize(n, 0);
        r.read_exact(&mut body).unwrap();
    }
    a.body = String::from_utf8(body).unwrap();
    a
}

fn connect(addr: SocketAddr) -> (TcpStream, BufReader<TcpStream>) {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let r = BufReader::new(s.try_clone().unwrap());
    (s, r)
}

#[test]
fn one_keepalive_connection_runs_every_request_from_a_fresh_state() {
    let pod = Pod::start("127.0.0.61", &["--name", "patch-pod"]);
    let gw = Gateway::start(&format!(
        "clusters:\n  - {{ name: c, endpoints: [\"{}\"] }}\nroutes:\n  - {{ name: matches, match: {{ path_prefix: /v1/matches }}, cluster: c }}\n  - {{ name: verify, match: {{ path_prefix: /v1/verify }}, cluster: c }}\n",
        pod.addr
    ));
    let (mut w, mut r) = connect(gw.addr);
    let mut ids = HashSet::new();
    for i in 0..90usize {
        let a = match i % 3 {
            0 => {
                write!(w, "GET /v1/matches/m{i}/live HTTP/1.1\r\nhost: arena\r\n\r\n").unwrap();
                let a = read_answer(&mut r);
                assert_eq!(a.status, 200, "request {i}: {}", a.body);
                assert!(
                    a.body.contains(&format!("\"match_id\":\"m{i}\"")),
                    "request {i}: {}",
                    a.body
                );
                assert_eq!(a.header("x-arena-route"), Some("matches"));
                a
            }
            1 => {
                let body = "x".repeat(i);
                write!(
                    w,
                    "POST /v1/verify HTTP/1.1\r\nhost: arena\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                )
                .unwrap();
                let a = read_answer(&mut r);
                assert_eq!(a.status, 200, "request {i}: {}", a.body);
                assert!(a.body.contains(&format!("\"bytes\":{i}")), "request {i}: {}", a.body);
                assert_eq!(a.header("x-arena-route"), Some("verify"));
                a
            }
            _ => {
                // No route: the gateway's own error answer, and the connection goes on.
                write!(w, "GET /nowhere/{i} HTTP/1.1\r\nhost: arena\r\n\r\n").unwrap();
                let a = read_answer(&mut r);
                assert_eq!(a.status, 404, "request {i}: {}", a.body);
                assert!(a.body.contains("no_route"), "request {i}: {}", a.body);
                a
            }
        };
        let id = a
            .header("x-request-id")
            .expect("a request id on every answer")
            .to_string();
        assert!(ids.insert(id), "request {i} reused a request id");
        assert_ne!(
            a.header("connection"),
            Some("close"),
            "request {i} closed the connection"
        );
    }
}

#[test]
fn the_admin_api_serves_a_keepalive_connection_request_after_request() {
    let pod = Pod::start("127.0.0.62", &[]);
    let gw = Gateway::start(&format!(
        "clusters:\n  - {{ name: c, endpoints: [\"{}\"] }}\nroutes:\n  - {{ name: r, match: {{}}, cluster: c }}\n",
        pod.addr
    ));
    let (mut w, mut r) = connect(gw.admin);
    for i in 0..30 {
        let path = ["/healthz", "/clusters", "/nothing-here"][i % 3];
        write!(w, "GET {path} HTTP/1.1\r\nhost: admin\r\n\r\n").unwrap();
        let a = read_answer(&mut r);
        match path {
            "/healthz" => assert_eq!(a.status, 200, "{}", a.body),
            "/clusters" => {
                assert_eq!(a.status, 200, "{}", a.body);
                assert!(a.body.contains(&pod.addr.to_string()), "{}", a.body);
            }
            _ => assert_eq!(a.status, 404, "{}", a.body),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_streams_each_run_their_own_request() {
    use http_body_util::{BodyExt, Full};
    let pod = Pod::start("127.0.0.63", &["--name", "h2-patch"]);
    let gw = Gateway::start_with(
        "  h2c: true\n",
        &format!(
            "clusters:\n  - {{ name: c, endpoints: [\"{}\"] }}\nroutes:\n  - {{ name: r, match: {{}}, cluster: c }}\n",
            pod.addr
        ),
    );
    let c: hyper_util::client::legacy::Client<_, Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build_http();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..40 {
        let (c, addr) = (c.clone(), gw.addr);
        set.spawn(async move {
            let req = http::Request::get(format!("http://{addr}/v1/matches/s{i}/live"))
                .body(Full::default())
                .unwrap();
            let resp = c.request(req).await.unwrap();
            assert_eq!(resp.version(), http::Version::HTTP_2);
            assert_eq!(resp.status(), 200);
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            let text = String::from_utf8(body.to_vec()).unwrap();
            assert!(text.contains(&format!("\"match_id\":\"s{i}\"")), "stream {i}: {text}");
        });
    }
    let mut done = 0;
    while let Some(r) = set.join_next().await {
        r.unwrap();
        done += 1;
    }
    assert_eq!(done, 40);
}

/// A pod written by hand: answers every request on its connections with mixed-case headers
/// and a repeated one, and hands each raw request head it read to the test.
fn raw_pod(ip: &str) -> (SocketAddr, std::sync::mpsc::Receiver<String>) {
    let listener = std::net::TcpListener::bind(format!("{ip}:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut w = conn;
                loop {
                    let mut head = String::new();
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        head.push_str(&line);
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let _ = tx.send(head);
                    let body = "ok";
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-TYPE: text/plain\r\nX-Custom-Thing: A\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if w.write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, rx)
}

/// Header lines of a raw head, without the request or status line.
fn lines(head: &str) -> Vec<&str> {
    head.split("\r\n").skip(1).filter(|l| !l.is_empty()).collect()
}

#[test]
fn header_names_travel_in_their_canonical_case_with_every_value_in_order() {
    let (pod, heads) = raw_pod("127.0.0.64");
    let gw = Gateway::start(&format!(
        "clusters:\n  - {{ name: c, endpoints: [\"{pod}\"] }}\nroutes:\n  - {{ name: r, match: {{}}, cluster: c }}\n"
    ));
    let (mut w, mut r) = connect(gw.addr);
    for round in 0..2 {
        write!(
            w,
            "GET /v1/matches HTTP/1.1\r\nhost: arena\r\nuSeR-aGeNt: t/{round}\r\nX-Mixed-Case: v1\r\nx-mixed-CASE: v2\r\nAccept: */*\r\n\r\n"
        )
        .unwrap();
        let mut status = String::new();
        r.read_line(&mut status).unwrap();
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        let mut head = status.clone();
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let mut body = [0u8; 2];
        r.read_exact(&mut body).unwrap();
        assert_eq!(&body, b"ok");
        let got = lines(&head);
        assert!(got.contains(&"Content-Type: text/plain"), "{got:?}");
        assert!(got.contains(&"x-custom-thing: A"), "{got:?}");
        let cookies: Vec<&&str> = got.iter().filter(|l| l.starts_with("Set-Cookie: ")).collect();
        assert_eq!(cookies, [&"Set-Cookie: a=1", &"Set-Cookie: b=2"], "{got:?}");

        let sent = heads.recv_timeout(Duration::from_secs(10)).unwrap();
        let sent = lines(&sent);
        // To the pod: lowercase, as HTTP/2 writes them (and Envoy does for HTTP/1).
        assert!(sent.contains(&format!("user-agent: t/{round}").as_str()), "{sent:?}");
        assert!(sent.contains(&"accept: */*"), "{sent:?}");
        let mixed: Vec<&&str> = sent.iter().filter(|l| l.starts_with("x-mixed-case: ")).collect();
        assert_eq!(mixed, [&"x-mixed-case: v1", &"x-mixed-case: v2"], "{sent:?}");
    }
}

#[test]
fn hop_by_hop_headers_never_reach_the_pod() {
    let (pod, heads) = raw_pod("127.0.0.65");
    let gw = Gateway::start(&format!(
        "clusters:\n  - {{ name: c, endpoints: [\"{pod}\"] }}\nroutes:\n  - {{ name: r, match: {{}}, cluster: c }}\n"
    ));
    let (mut w, mut r) = connect(gw.addr);
    // One request with every standard hop-by-hop header a client can send on a kept-alive
    // connection, one Connection nominates, and one plain request after it.
    write!(
        w,
        "GET /v1/matches HTTP/1.1\r\nhost: arena\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\n\
         Proxy-Connection: keep-alive\r\nProxy-Authorization: Basic eDp4\r\nTE: trailers\r\nTrailer: x-sum\r\n\
         HTTP2-Settings: AAMAAABkAAQAAP__\r\nX-Hop: 1\r\nX-Kept: yes\r\n\r\n"
    )
    .unwrap();
    assert_eq!(read_answer(&mut r).status, 200);
    write!(w, "GET /v1/matches HTTP/1.1\r\nhost: arena\r\nX-Kept: again\r\n\r\n").unwrap();
    assert_eq!(read_answer(&mut r).status, 200);
    for kept in ["yes", "again"] {
        let sent = heads.recv_timeout(Duration::from_secs(10)).unwrap();
        let names: Vec<String> = lines(&sent)
            .iter()
            .map(|l| l.split(':').next().unwrap().to_ascii_lowercase())
            .collect();
        for hop in [
            "connection",
            "keep-alive",
            "proxy-connection",
            "proxy-authorization",
            "te",
            "trailer",
            "http2-settings",
            "x-hop",
        ] {
            assert!(!names.iter().any(|n| n == hop), "{hop} reached the pod: {sent}");
        }
        assert!(sent.contains(&format!("x-kept: {kept}")), "{sent}");
    }
}

#[test]
fn every_content_length_form_frames_the_body_as_before() {
    let pod = Pod::start("127.0.0.66", &[]);
    let gw = Gateway::start(&format!(
        "clusters:\n  - {{ name: c, endpoints: [\"{}\"] }}\nroutes:\n  - {{ name: r, match: {{}}, cluster: c }}\n",
        pod.addr
    ));
    // Accepted: the pod counts exactly three body bytes, and the connection goes on.
    let (mut w, mut r) = connect(gw.addr);
    // (Stock pingora answered every form below the same way; `3, 3` is refused by both.)
    for cl in [
        "content-length: 3",
        "content-length:  3 ",
        "content-length: 03",
        "content-length: 3\r\ncontent-length: 3",
    ] {
        write!(w, "POST /v1/verify HTTP/1.1\r\nhost: arena\r\n{cl}\r\n\r\nabc").unwrap();
        let a = read_answer(&mut r);
        assert_eq!(a.status, 200, "{cl:?}: {}", a.body);
        assert!(a.body.contains("\"bytes\":3"), "{cl:?}: {}", a.body);
    }
    // Refused: ambiguous or not a number (each on its own connection: it is not reusable).
    for cl in [
        "content-length: 3\r\ncontent-length: 4",
        "content-length: 3, 4",
        "content-length: 3, 3",
        "content-length: +3",
        "content-length: 0x3",
    ] {
        let (mut w, mut r) = connect(gw.addr);
        write!(w, "POST /v1/verify HTTP/1.1\r\nhost: arena\r\n{cl}\r\n\r\nabc").unwrap();
        let mut status = String::new();
        let _ = r.read_line(&mut status);
        assert!(
            status.is_empty() || status.starts_with("HTTP/1.1 400"),
            "{cl:?}: {status:?}"
        );
    }
}
