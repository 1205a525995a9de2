//! What Arena's pingora patch (vendor/README.md: `HttpServerApp::process_new_http` returns its
//! future unboxed, so a keep-alive connection reuses one request state machine instead of
//! boxing a new one per request) must keep: every request of a long keep-alive connection runs
//! from a fresh state — its own route, body, status and request id, errors included — on the
//! proxy, on the admin API (pingora's `ServeHttp` path) and on HTTP/2 streams, which still run
//! one task each.

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
