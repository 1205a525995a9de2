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
//!
//! Patch 5 (idle upstream connections parked without a task each, checked when taken, swept
//! at their idle deadline): a released connection is reused; one the pod hung up on while it
//! sat idle is never handed a request (a fresh connection serves it, no retry needed); one idle
//! past the cluster's `idle_timeout` is closed by the gateway; a full pool closes the least
//! recently released connections and keeps serving from the rest.
//!
//! Patch 6 (a `HeaderName` goes into a header map that keeps no case as it is, without being
//! title-cased and parsed back): the headers the gateway adds or replaces — `x-request-id`,
//! `x-forwarded-for`, `traceparent` (a client's `b3` dropped), pingora's `Date` — arrive once,
//! under their names, with their values.

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

/// What the connection-tracking pod saw.
#[derive(Debug, PartialEq)]
enum PodEvent {
    /// Connection number N was opened by the gateway.
    Opened(u32),
    /// The gateway closed connection N (the pod read end-of-file).
    ClosedByGateway(u32),
    /// The pod hung up on its idle connection N, as told.
    HungUp(u32),
}

/// A pod that numbers its connections, answers every request with `x-conn: N` after `delay`,
/// reports what happens to each connection, and hangs up on its idle connections when told
/// (a pod's own keep-alive timeout, on cue).
struct ConnPod {
    addr: SocketAddr,
    events: std::sync::mpsc::Receiver<PodEvent>,
    hang_up: std::sync::Arc<std::sync::atomic::AtomicU32>,
}

impl ConnPod {
    fn start(ip: &str, delay: Duration) -> ConnPod {
        use std::sync::atomic::{AtomicU32, Ordering};
        use std::sync::Arc;
        let listener = std::net::TcpListener::bind(format!("{ip}:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, events) = std::sync::mpsc::channel();
        let hang_up = Arc::new(AtomicU32::new(0));
        let cue = hang_up.clone();
        std::thread::spawn(move || {
            for (n, conn) in (1u32..).zip(listener.incoming().flatten()) {
                let tx = tx.clone();
                let cue = cue.clone();
                let _ = tx.send(PodEvent::Opened(n));
                std::thread::spawn(move || {
                    // short read timeouts: an idle connection looks at the hang-up cue
                    conn.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
                    let mut r = BufReader::new(conn.try_clone().unwrap());
                    let mut w = conn;
                    let seen_cue = cue.load(Ordering::SeqCst);
                    loop {
                        let mut head = String::new();
                        // kept across read timeouts: a timed-out read_line keeps what it read
                        let mut line = String::new();
                        loop {
                            match r.read_line(&mut line) {
                                Ok(0) => {
                                    let _ = tx.send(PodEvent::ClosedByGateway(n));
                                    return;
                                }
                                Ok(_) => {}
                                Err(e)
                                    if matches!(
                                        e.kind(),
                                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                                    ) =>
                                {
                                    if head.is_empty() && line.is_empty() && cue.load(Ordering::SeqCst) != seen_cue {
                                        let _ = w.shutdown(std::net::Shutdown::Both);
                                        let _ = tx.send(PodEvent::HungUp(n));
                                        return;
                                    }
                                }
                                Err(_) => return,
                            }
                            if !line.ends_with('\n') {
                                continue;
                            }
                            head.push_str(&line);
                            line.clear();
                            if head.ends_with("\r\n\r\n") {
                                break;
                            }
                        }
                        std::thread::sleep(delay);
                        let answer = format!("HTTP/1.1 200 OK\r\nx-conn: {n}\r\nContent-Length: 2\r\n\r\nok");
                        if w.write_all(answer.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        ConnPod { addr, events, hang_up }
    }

    /// The next event, waiting at most 10 s (the wait bounds the test, it is not a measurement).
    /// Events until `want` of them matched `pick`, in order of arrival, waiting at most 10 s
    /// for each (the wait bounds the test, it is not a measurement).
    fn wait_for(&self, want: usize, pick: impl Fn(&PodEvent) -> bool) -> Vec<PodEvent> {
        let mut seen = Vec::new();
        while seen.iter().filter(|e| pick(e)).count() < want {
            match self.events.recv_timeout(Duration::from_secs(10)) {
                Ok(e) => seen.push(e),
                Err(_) => panic!("the pod saw nothing more within 10 s; so far: {seen:?}"),
            }
        }
        seen
    }
}

/// One GET on a client connection: status and the pod's `x-conn`.
fn get_on(w: &mut TcpStream, r: &mut BufReader<TcpStream>) -> (u16, Option<u32>) {
    write!(w, "GET /v1/x HTTP/1.1\r\nhost: arena\r\n\r\n").unwrap();
    let a = read_answer(r);
    (a.status, a.header("x-conn").and_then(|v| v.parse().ok()))
}

/// One GET through the gateway on a fresh client connection.
fn get_conn(gw: SocketAddr) -> (u16, Option<u32>) {
    let (mut w, mut r) = connect(gw);
    get_on(&mut w, &mut r)
}

#[test]
fn idle_connections_are_reused_and_one_the_pod_hung_up_on_is_never_handed_a_request() {
    let pod = ConnPod::start("127.0.0.67", Duration::ZERO);
    // no retries: a stale connection handed a request would show as a 502, not be papered over
    let gw = Gateway::start(&format!(
        "clusters:\n  - {{ name: c, endpoints: [\"{}\"] }}\nroutes:\n  - {{ name: r, match: {{}}, cluster: c, retry: {{ attempts: 1 }} }}\n",
        pod.addr
    ));
    // one client connection: its requests run one after another, each after the last one's
    // upstream connection went back to the pool
    let (mut w, mut r) = connect(gw.addr);
    let (status, first) = get_on(&mut w, &mut r);
    assert_eq!(status, 200);
    let first = first.expect("x-conn from the pod");
    for i in 0..20 {
        assert_eq!(
            get_on(&mut w, &mut r),
            (200, Some(first)),
            "request {i} took another connection"
        );
    }
    let mut last = first;
    for round in 0..5 {
        // the pod hangs up on its idle connection and says so
        pod.hang_up.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let seen = pod.wait_for(1, |e| *e == PodEvent::HungUp(last));
        assert!(
            !seen.iter().any(|e| matches!(e, PodEvent::ClosedByGateway(_))),
            "round {round}: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(200)); // the FIN reaches the gateway's reactor
        let (status, conn) = get_on(&mut w, &mut r);
        assert_eq!(
            status, 200,
            "round {round}: a hung-up connection was handed the request"
        );
        let conn = conn.unwrap();
        assert!(
            conn > last,
            "round {round}: served on connection {conn}, not a fresh one after {last}"
        );
        last = conn;
    }
}

#[test]
fn an_idle_connection_is_closed_after_the_clusters_idle_timeout() {
    let pod = ConnPod::start("127.0.0.68", Duration::ZERO);
    let gw = Gateway::start(&format!(
        "clusters:\n  - {{ name: c, endpoints: [\"{}\"], idle_timeout: 300ms }}\nroutes:\n  - {{ name: r, match: {{}}, cluster: c }}\n",
        pod.addr
    ));
    let (status, conn) = get_conn(gw.addr);
    assert_eq!(status, 200);
    let conn = conn.unwrap();
    // nobody uses it: the gateway closes it (the pod never hangs up by itself here)
    let seen = pod.wait_for(1, |e| *e == PodEvent::ClosedByGateway(conn));
    assert!(!seen.iter().any(|e| matches!(e, PodEvent::HungUp(_))), "{seen:?}");
    // and the next request opens a fresh one
    let (status, again) = get_conn(gw.addr);
    assert_eq!(status, 200);
    assert!(again.unwrap() > conn);
}

#[test]
fn a_full_pool_closes_the_least_recently_released_and_serves_from_the_rest() {
    // each answer takes 300 ms, so five requests at once need five connections
    let pod = ConnPod::start("127.0.0.69", Duration::from_millis(300));
    // one idle connection per worker thread, and the test gateways run two: room for two
    let gw = Gateway::start_with(
        "  upstream_keepalive_pool_size: 1\n",
        &format!(
            "clusters:\n  - {{ name: c, endpoints: [\"{}\"] }}\nroutes:\n  - {{ name: r, match: {{}}, cluster: c, timeout: 5s }}\n",
            pod.addr
        ),
    );
    while pod.events.try_recv().is_ok() {}
    let addr = gw.addr;
    let answers: Vec<(u16, Option<u32>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..5).map(|_| s.spawn(move || get_conn(addr))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    let used: HashSet<u32> = answers.iter().filter_map(|(_, c)| *c).collect();
    assert_eq!(used.len(), 5, "five concurrent requests, five connections: {answers:?}");
    // five released into room for two: three closed
    let seen = pod.wait_for(3, |e| matches!(e, PodEvent::ClosedByGateway(_)));
    let closed: HashSet<u32> = seen
        .iter()
        .filter_map(|e| match e {
            PodEvent::ClosedByGateway(n) => Some(*n),
            _ => None,
        })
        .collect();
    let kept: HashSet<u32> = used.difference(&closed).copied().collect();
    assert_eq!(kept.len(), 2, "used {used:?}, closed {closed:?}");
    // the two kept serve what follows, one at a time: no new connection
    for i in 0..6 {
        let (status, conn) = get_conn(gw.addr);
        assert_eq!(status, 200);
        assert!(kept.contains(&conn.unwrap()), "request {i} on {conn:?}, kept {kept:?}");
    }
    assert!(pod.events.try_recv().is_err(), "no connection opened or closed since");
}

/// The head `raw_pod` answered and the client's answer, for one request written raw.
fn exchange(
    w: &mut TcpStream,
    r: &mut BufReader<TcpStream>,
    heads: &std::sync::mpsc::Receiver<String>,
    request: &str,
) -> (Vec<String>, Answer) {
    w.write_all(request.as_bytes()).unwrap();
    let a = read_answer(r);
    let sent = heads.recv_timeout(Duration::from_secs(10)).unwrap();
    (lines(&sent).into_iter().map(str::to_string).collect(), a)
}

#[test]
fn headers_the_gateway_adds_arrive_once_under_their_names() {
    let (pod, heads) = raw_pod("127.0.0.70");
    // tracing on (every request sampled; nothing listens at the collector: spans are dropped)
    let gw = Gateway::start(&format!(
        "clusters:\n  - {{ name: c, endpoints: [\"{pod}\"] }}\nroutes:\n  - {{ name: r, match: {{}}, cluster: c }}\ntracing: {{ otlp_endpoint: \"http://127.0.0.1:9\", sample_ratio: 100% }}\n"
    ));
    let (mut w, mut r) = connect(gw.addr);
    let named = |head: &[String], name: &str| -> Vec<String> {
        head.iter()
            .filter_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_string))
            .collect()
    };
    // a client behind a proxy, continuing a B3 trace, with no request id of its own
    let (sent, answer) = exchange(
        &mut w,
        &mut r,
        &heads,
        "GET /v1/matches HTTP/1.1\r\nhost: arena\r\nX-Forwarded-For: 203.0.113.7\r\nb3: 80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1\r\n\r\n",
    );
    assert_eq!(answer.status, 200);
    let ids = named(&sent, "x-request-id");
    assert_eq!(ids.len(), 1, "{sent:?}");
    assert!(!ids[0].is_empty());
    assert_eq!(named(&sent, "x-forwarded-for"), ["203.0.113.7, 127.0.0.1"], "{sent:?}");
    let tp = named(&sent, "traceparent");
    assert_eq!(tp.len(), 1, "{sent:?}");
    assert!(
        tp[0].starts_with("00-80f198ee56343ba864fe8b2a57d3eff7-"),
        "the B3 trace continues: {tp:?}"
    );
    assert!(tp[0].ends_with("-01") && tp[0].len() == 55, "{tp:?}");
    assert!(
        named(&sent, "b3").is_empty(),
        "the client's b3 names another parent: {sent:?}"
    );
    // the answer: pingora's Date (the pod sent none), the id the pod saw echoed (debug on)
    let dates: Vec<_> = answer.headers.iter().filter(|(k, _)| k == "Date").collect();
    assert_eq!(dates.len(), 1, "{:?}", answer.headers);
    assert_eq!(answer.header("x-request-id"), Some(ids[0].as_str()));

    // the client's own id is forwarded as it is, not doubled
    let (sent, answer) = exchange(
        &mut w,
        &mut r,
        &heads,
        "GET /v1/matches HTTP/1.1\r\nhost: arena\r\nx-request-id: client-1\r\n\r\n",
    );
    assert_eq!(answer.status, 200);
    assert_eq!(named(&sent, "x-request-id"), ["client-1"], "{sent:?}");
    assert_eq!(named(&sent, "x-forwarded-for"), ["127.0.0.1"], "{sent:?}");
    assert_eq!(named(&sent, "traceparent").len(), 1, "{sent:?}");
    assert_eq!(answer.header("x-request-id"), Some("client-1"));
}
