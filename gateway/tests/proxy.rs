//! End-to-end proxy behaviour against real processes: routing, headers a client sees, and the
//! error answers (404/431/413/502/503) with their JSON bodies.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use arena_testkit::free_addr;
use support::gateway::{Gateway, Pod};
use support::http::{client, get, send};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn two_routes(pods: &[&Pod]) -> String {
    let eps: Vec<String> = pods.iter().map(|p| format!("\"{}\"", p.addr)).collect();
    format!(
        "clusters:\n  - name: match-api\n    endpoints: [{}]\n    connect_timeout: 250ms\nroutes:\n  - name: matches\n    match: {{ path_prefix: /v1/matches, methods: [GET] }}\n    cluster: match-api\n    timeout: 2s\n  - name: tenant-players\n    match: {{ host: api.arena.gg, path_prefix: /v1/players, headers: {{ x-tenant: douyu }} }}\n    cluster: match-api\n",
        eps.join(", ")
    )
}

#[tokio::test]
async fn routes_requests_and_adds_debug_headers_and_request_ids() {
    let pod = Pod::start("127.0.0.51", &["--name", "pod-a"]);
    let gw = Gateway::start(&two_routes(&[&pod]));
    let c = client();

    let r = get(
        &c,
        gw.addr,
        "/v1/matches/lol-1/live",
        &[("x-request-id", "match-day-1")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-pod"), Some("pod-a"));
    assert_eq!(r.header("x-arena-backend"), Some(pod.addr.to_string().as_str()));
    assert_eq!(r.header("x-arena-route"), Some("matches"));
    assert_eq!(r.header("x-arena-attempts"), Some("1"));
    assert_eq!(r.header("x-request-id"), Some("match-day-1"));
    assert!(
        r.header("endpoint-load-metrics").is_none(),
        "pod load must not leak to clients"
    );
    assert_eq!(r.json()["pod"], "pod-a");

    // A generated id when the client sends none.
    let r = get(&c, gw.addr, "/v1/matches", &[]).await;
    assert_eq!(r.status, 200);
    assert!(r.header("x-request-id").is_some_and(|id| id.len() >= 16));

    // Host + header match; wrong method on the first route falls through to 404.
    let r = get(
        &c,
        gw.addr,
        "/v1/players/7/stats",
        &[("host", "api.arena.gg"), ("x-tenant", "douyu")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-arena-route"), Some("tenant-players"));
    let r = get(
        &c,
        gw.addr,
        "/v1/players/7/stats",
        &[("host", "api.arena.gg"), ("x-tenant", "huya")],
    )
    .await;
    assert_eq!(r.status, 404);
    let r = send(
        &c,
        http::Method::POST,
        gw.addr,
        "/v1/matches",
        &[],
        b"{}",
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 404);
}

/// A hand-written pod on `ip` that answers every request with the head it received, as JSON
/// `{"head": "..."}` (lowercased).
async fn echo_pod(ip: &str) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind(format!("{ip}:0")).await.unwrap();
    let pod_addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                let head = String::from_utf8_lossy(&got).to_lowercase();
                let body = serde_json::json!({ "head": head }).to_string();
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    pod_addr
}

#[tokio::test]
async fn request_id_and_forwarded_for_reach_the_pod() {
    let pod_addr = echo_pod("127.0.0.52").await;
    let body = format!("clusters:\n  - name: echo\n    endpoints: [\"{pod_addr}\"]\nroutes:\n  - name: all\n    match: {{}}\n    cluster: echo\n");
    let gw = Gateway::start(&body);
    let c = client();
    let r = get(&c, gw.addr, "/v1/matches", &[("x-request-id", "abc-42")]).await;
    assert_eq!(r.status, 200);
    let head = r.json()["head"].as_str().unwrap().to_string();
    assert!(head.contains("x-request-id: abc-42"), "{head}");
    assert!(head.contains("x-forwarded-for: 127.0.0.1"), "{head}");
    let r = get(&c, gw.addr, "/x", &[]).await;
    let head = r.json()["head"].as_str().unwrap().to_string();
    assert!(
        head.contains(&format!("x-request-id: {}", r.header("x-request-id").unwrap())),
        "{head}"
    );
}

/// `x-arena-*` headers are the gateway's own signals: a client's are dropped before routing,
/// so none reaches a pod (nor a hedged try, nor a function) and none can be faked.
#[tokio::test]
async fn client_sent_internal_headers_are_stripped_and_bad_request_ids_replaced() {
    let pod_addr = echo_pod("127.0.0.59").await;
    let body = format!(
        "clusters:\n  - name: echo\n    endpoints: [\"{pod_addr}\"]\nroutes:\n  - name: hedged\n    match: {{ path_prefix: /hedged }}\n    cluster: echo\n    hedge: {{ after: 1s }}\n  - name: all\n    match: {{}}\n    cluster: echo\n"
    );
    let gw = Gateway::start(&body);
    let c = client();
    let faked = [
        ("x-arena-backend", "10.9.9.9:80"),
        ("X-Arena-Route", "admin"),
        ("x-arena-attempts", "0"),
        ("x-arena-anything", "1"),
        ("x-tenant", "douyu"),
    ];
    for path in ["/v1/matches", "/hedged/x"] {
        let r = get(&c, gw.addr, path, &faked).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let head = r.json()["head"].as_str().unwrap().to_string();
        assert!(
            !head.contains("x-arena-"),
            "{path}: internal headers reached the pod:\n{head}"
        );
        assert!(head.contains("x-tenant: douyu"), "{path}: other headers pass:\n{head}");
        // The gateway's own debug headers on the answer are its own, not the client's.
        assert_eq!(r.header("x-arena-backend"), Some(pod_addr.to_string().as_str()));
    }

    // A client's request id is kept only when well formed: printable ASCII, at most 128 bytes.
    for bad in ["has space", &"x".repeat(129)] {
        let r = get(&c, gw.addr, "/v1/matches", &[("x-request-id", bad)]).await;
        assert_eq!(r.status, 200);
        let id = r.header("x-request-id").unwrap().to_string();
        assert_ne!(id, *bad);
        assert!(id.len() == 24 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        let head = r.json()["head"].as_str().unwrap().to_string();
        assert!(head.contains(&format!("x-request-id: {id}\r\n")), "{head}");
        assert!(!head.contains(&bad.to_lowercase()), "{head}");
    }
    let good = "x".repeat(128);
    let r = get(&c, gw.addr, "/v1/matches", &[("x-request-id", good.as_str())]).await;
    assert_eq!(r.header("x-request-id"), Some(good.as_str()));
}

#[tokio::test]
async fn client_errors_get_json_answers() {
    let pod = Pod::start("127.0.0.53", &[]);
    let gw = Gateway::start(&two_routes(&[&pod]));
    let c = client();

    let r = get(&c, gw.addr, "/nowhere", &[("x-request-id", "lost-1")]).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"], "no_route");
    assert_eq!(r.json()["request_id"], "lost-1");
    assert_eq!(r.header("content-type"), Some("application/json"));

    let big = "a".repeat(40 * 1024);
    let r = get(&c, gw.addr, "/v1/matches", &[("x-big", big.as_str())]).await;
    assert_eq!(r.status, 431);
    assert_eq!(r.json()["error"], "headers_too_large");

    let body = vec![b'x'; 1024 * 1024 + 10];
    let c2 = client();
    let r = send(
        &c2,
        http::Method::GET,
        gw.addr,
        "/v1/matches",
        &[],
        &body,
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"], "body_too_large");
}

#[tokio::test]
async fn unreachable_pods_fail_over_or_answer_502() {
    let live = Pod::start("127.0.0.54", &["--name", "live"]);
    // An address where nothing listens: a port taken and released.
    let dead = free_addr("127.0.0.55").unwrap();
    let dir = support::procs::TempDir::new("unreachable");
    let log = dir.0.join("access.log");
    let body = format!(
        "access_log: {{ output: \"{}\" }}\nclusters:\n  - name: mixed\n    endpoints: [\"{dead}\", \"{}\"]\n    lb: round_robin\n  - name: gone\n    endpoints: [\"{dead}\"]\nroutes:\n  - name: mixed\n    match: {{ path_prefix: /v1/matches }}\n    cluster: mixed\n  - name: gone\n    match: {{ path_prefix: /v1/players }}\n    cluster: gone\n",
        log.display(),
        live.addr
    );
    let gw = Gateway::start(&body);
    let c = client();
    // Round robin alternates onto the dead pod; the connect failure moves to the live one.
    for _ in 0..6 {
        let r = get(&c, gw.addr, "/v1/matches", &[]).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-pod"), Some("live"));
    }
    let r = get(&c, gw.addr, "/v1/players/1/stats", &[("x-request-id", "p-1")]).await;
    assert_eq!(r.status, 502, "{}", r.text());
    let j = r.json();
    assert_eq!(j["error"], "upstream_unreachable");
    assert_eq!(j["request_id"], "p-1");
    // The client learns what failed, not where: no pod address, no pingora cause.
    let msg = j["message"].as_str().unwrap();
    assert_eq!(msg, "the upstream could not be reached");
    assert!(!r.text().contains(&dead.ip().to_string()), "{}", r.text());
    // The detail is in the access log, for the operator.
    let lines = access_lines(&log, 1).await;
    let l = lines.iter().find(|l| l["request_id"] == "p-1").unwrap();
    assert_eq!(l["error"], "upstream_unreachable");
    let detail = l["detail"].as_str().unwrap();
    assert!(detail.contains(&dead.to_string()), "{detail}");
}

#[tokio::test]
async fn dns_cluster_without_answer_is_503_and_not_ready() {
    let pod = Pod::start("127.0.0.56", &[]);
    // A resolver address where nothing answers: the cluster never resolves.
    let resolver = free_addr("127.0.0.1").unwrap();
    let body = format!(
        "clusters:\n  - name: ok\n    endpoints: [\"{}\"]\n  - name: nodns\n    dns: {{ name: nowhere.svc.cluster.local, port: 9100, resolver: \"{resolver}\", timeout: 200ms }}\nroutes:\n  - name: ok\n    match: {{ path_prefix: /v1/matches }}\n    cluster: ok\n  - name: nodns\n    match: {{ path_prefix: /v1/players }}\n    cluster: nodns\n",
        pod.addr
    );
    let gw = Gateway::start(&body);
    let c = client();
    let r = get(&c, gw.addr, "/v1/players/1/stats", &[]).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["error"], "no_healthy_pods");
    let r = get(&c, gw.admin, "/readyz", &[]).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["waiting_for_discovery"][0], "nodns");
    assert_eq!(get(&c, gw.addr, "/v1/matches", &[]).await.status, 200);
}

#[tokio::test]
async fn h2c_clients_are_served_when_enabled() {
    use http_body_util::{BodyExt, Full};
    let pod = Pod::start("127.0.0.57", &["--name", "h2-pod"]);
    let gw = Gateway::start_with("  h2c: true\n", &two_routes(&[&pod]));
    let c: hyper_util::client::legacy::Client<_, Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build_http();
    for _ in 0..3 {
        let req = http::Request::get(format!("http://{}/v1/matches", gw.addr))
            .body(Full::default())
            .unwrap();
        let resp = c.request(req).await.unwrap();
        assert_eq!(resp.version(), http::Version::HTTP_2);
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-pod"], "h2-pod");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(body.starts_with(b"{"));
    }
}

/// The access-log lines in `file` once there are `n` of them (10 s at most).
async fn access_lines(file: &std::path::Path, n: usize) -> Vec<serde_json::Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {n} lines:\n{text}",
            lines.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn access_log_keeps_errors_always_and_samples_the_rest() {
    let pod = Pod::start("127.0.0.56", &[]);
    let dir = support::procs::TempDir::new("access-log");
    let file = dir.0.join("access.log");
    let body = |sample: &str| {
        format!(
            "access_log: {{ output: \"{}\", sample: \"{sample}\", slow: 10s }}\nclusters:\n  - {{ name: ok, endpoints: [\"{}\"] }}\n  - {{ name: gone, endpoints: [\"127.0.0.57:1\"] }}\nroutes:\n  - {{ name: matches, match: {{ path_prefix: /v1/matches }}, cluster: ok }}\n  - {{ name: down, match: {{ path_prefix: /down }}, cluster: gone }}\n",
            file.display(),
            pod.addr
        )
    };
    let gw = Gateway::start(&body("0%"));
    let c = client();
    for _ in 0..5 {
        assert_eq!(get(&c, gw.addr, "/v1/matches", &[]).await.status, 200);
    }
    assert_eq!(get(&c, gw.addr, "/nope", &[]).await.status, 404);
    let failed = get(&c, gw.addr, "/down/x?y=1", &[("x-request-id", "final-42")]).await;
    assert_eq!(failed.status, 502);

    // Only the 5xx is kept.
    let lines = access_lines(&file, 1).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    let l = &lines[0];
    assert_eq!(l["request_id"], "final-42");
    assert_eq!(l["status"], 502);
    assert_eq!(l["error"], "upstream_unreachable");
    assert_eq!(l["route"], "down");
    assert_eq!(l["cluster"], "gone");
    assert_eq!(l["method"], "GET");
    assert_eq!(l["path"], "/down/x?y=1");
    assert_eq!(l["backend"], "127.0.0.57:1");
    assert_eq!(l["client_ip"], "127.0.0.1");
    assert!(l["attempts"].as_u64().unwrap() >= 1, "{l}");

    // A reload to sample everything: every request is kept, with its pod.
    gw.write_body(&body("100%"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while get(&c, gw.admin, "/config", &[]).await.json()["generation"] != 2 {
        assert!(tokio::time::Instant::now() < deadline, "reload not applied");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ok = get(&c, gw.addr, "/v1/matches", &[]).await;
    assert_eq!(ok.status, 200);
    let lines = access_lines(&file, 2).await;
    let l = &lines[1];
    assert_eq!(l["request_id"], ok.header("x-request-id").unwrap());
    assert_eq!(l["status"], 200);
    assert_eq!(l["backend"], pod.addr.to_string());
    assert_eq!(l["route"], "matches");
    assert!(l["error"].is_null());
    let metrics = get(&c, gw.admin, "/metrics", &[]).await.text();
    assert!(metrics.contains("arena_access_log_dropped_total 0"), "{metrics}");
}

#[tokio::test]
async fn sigterm_drains_readiness_fails_connections_close_then_exit() {
    let pod = Pod::start("127.0.0.58", &[]);
    let mut gw = Gateway::start_with(
        "  drain_delay: 3s\n  grace_period: 1s\n  graceful_shutdown_timeout: 1s\n",
        &format!(
            "clusters:\n  - {{ name: ok, endpoints: [\"{}\"] }}\nroutes:\n  - {{ name: all, match: {{}}, cluster: ok }}\n",
            pod.addr
        ),
    );
    let c = client();
    assert_eq!(get(&c, gw.admin, "/readyz", &[]).await.status, 200);
    // A keep-alive answer before the signal does not close.
    let (head, closed) = raw_get(gw.addr).await;
    assert!(!head.to_ascii_lowercase().contains("connection: close"), "{head}");
    assert!(!closed);

    gw.proc.signal("TERM");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let r = get(&c, gw.admin, "/readyz", &[]).await;
        if r.status == 503 {
            assert_eq!(r.json()["draining"], true);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "/readyz still {}", r.status);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Still accepting while draining, but every answer closes its connection.
    let (head, closed) = raw_get(gw.addr).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_ascii_lowercase().contains("connection: close"), "{head}");
    assert!(closed, "the gateway kept the connection open while draining");
    // Then it stops by itself.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !gw.proc.exited() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gateway did not exit after draining"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One keep-alive `GET /v1/matches` on a fresh connection: the answer's head, and whether the
/// gateway closed the connection after it.
async fn raw_get(addr: std::net::SocketAddr) -> (String, bool) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /v1/matches HTTP/1.1\r\nHost: arena\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    // Read the head and the body (content-length framed).
    let (head, body_len) = loop {
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed before an answer");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            break (head, end + 4 + len);
        }
    };
    while buf.len() < body_len {
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0);
        buf.extend_from_slice(&chunk[..n]);
    }
    // Closed = EOF within a short wait; open = still waiting for the next request.
    let closed = matches!(
        tokio::time::timeout(Duration::from_millis(500), s.read(&mut chunk)).await,
        Ok(Ok(0)) | Ok(Err(_))
    );
    (head, closed)
}
