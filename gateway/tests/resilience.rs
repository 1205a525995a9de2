//! Resilience against real misbehaving pods: a stuck (dead-looping) pod, pods that all fail,
//! rate limits (local and shared through a real Redis), and the circuit breaker.
//! Assertions are about outcomes (status codes, counts, which pod), never about speed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arena_testkit::free_addr;
use support::gateway::{Gateway, Pod};
use support::http::{client, get, send};

/// The `/clusters` entry of `pod` (first cluster).
async fn pod_view(c: &support::http::HttpClient, gw: &Gateway, pod: &Pod) -> serde_json::Value {
    let view = get(c, gw.admin, "/clusters", &[]).await.json();
    let pods = view["clusters"][0]["pods"].as_array().unwrap().clone();
    pods.into_iter().find(|p| p["address"] == pod.addr.to_string()).unwrap()
}

fn endpoints(pods: &[&Pod]) -> String {
    pods.iter()
        .map(|p| format!("\"{}\"", p.addr))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Sends `n` GETs from `workers` concurrent clients; returns (status → count, backend → count).
async fn load(
    addr: std::net::SocketAddr,
    path: &str,
    n: usize,
    workers: usize,
) -> (HashMap<u16, usize>, HashMap<String, usize>) {
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let path = path.to_string();
        tasks.push(tokio::spawn(async move {
            let c = client();
            let mut statuses = HashMap::new();
            let mut backends = HashMap::new();
            for _ in 0..n / workers {
                let r = send(&c, http::Method::GET, addr, &path, &[], b"", Duration::from_secs(10))
                    .await
                    .unwrap();
                *statuses.entry(r.status).or_insert(0) += 1;
                let b = r.header("x-arena-backend").unwrap_or("-").to_string();
                *backends.entry(b).or_insert(0) += 1;
            }
            (statuses, backends)
        }));
    }
    let mut statuses = HashMap::new();
    let mut backends = HashMap::new();
    for t in tasks {
        let (s, b) = t.await.unwrap();
        for (k, v) in s {
            *statuses.entry(k).or_insert(0) += v;
        }
        for (k, v) in b {
            *backends.entry(k).or_insert(0) += v;
        }
    }
    (statuses, backends)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_pod_costs_no_errors_and_gets_ejected() {
    let good: Vec<Pod> = (101..=103)
        .map(|i| Pod::start(&format!("127.0.0.{i}"), &["--latency", "1ms"]))
        .collect();
    let stuck = Pod::start("127.0.0.104", &["--stuck"]);
    let refs: Vec<&Pod> = good.iter().chain([&stuck]).collect();
    let body = format!(
        "clusters:\n  - name: battle\n    endpoints: [{}]\n    lb: round_robin\n    per_try_timeout: 300ms\n    outlier: {{ consecutive_failures: 3, base_ejection: 30s, max_ejection: 60s, max_ejected_percent: 50 }}\nroutes:\n  - name: live\n    match: {{ path_prefix: /v1/matches }}\n    cluster: battle\n    timeout: 3s\n    retry: {{ attempts: 2, on: [timeout, connect_failure, reset] }}\n",
        endpoints(&refs)
    );
    let gw = Gateway::start(&body);
    // Round robin keeps sending the stuck pod its share until it is ejected: each of those
    // tries times out and moves to another pod.
    let (statuses, backends) = load(gw.addr, "/v1/matches/m1/live", 200, 8).await;
    assert_eq!(
        statuses.get(&200),
        Some(&200),
        "every request must succeed: {statuses:?}"
    );
    assert!(
        !backends.contains_key(&stuck.addr.to_string()),
        "the stuck pod never answers: {backends:?}"
    );

    let c = client();
    let pod = pod_view(&c, &gw, &stuck).await;
    assert_eq!(pod["state"], "ejected", "{pod}");
    assert!(pod["health"]["ejections"].as_u64().unwrap() >= 1);
    // After ejection the stuck pod is not tried any more: no further retries needed.
    let before = get(&c, gw.admin, "/metrics", &[]).await.text();
    let retries = |m: &str| -> u64 {
        m.lines()
            .filter(|l| l.starts_with("arena_retries_total{cause=\"timeout\",route=\"live\"}"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    let (statuses, _) = load(gw.addr, "/v1/matches/m1/live", 100, 4).await;
    assert_eq!(statuses.get(&200), Some(&100));
    let after = get(&c, gw.admin, "/metrics", &[]).await.text();
    assert_eq!(
        retries(&before),
        retries(&after),
        "no timeouts once the stuck pod is ejected"
    );
    assert!(
        after.contains(&format!(
            "arena_endpoint_ejected{{cluster=\"battle\",pod=\"{}\",state=\"healthy\"}} 1",
            stuck.addr
        )),
        "{after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_budget_caps_retries_when_every_pod_fails() {
    let pods: Vec<Pod> = (105..=107)
        .map(|i| Pod::start(&format!("127.0.0.{i}"), &["--error-rate", "1.0"]))
        .collect();
    let refs: Vec<&Pod> = pods.iter().collect();
    let body = format!(
        "clusters:\n  - name: broken\n    endpoints: [{}]\n    outlier: {{ consecutive_failures: 1000 }}\nroutes:\n  - name: verify\n    match: {{}}\n    cluster: broken\n    retry: {{ attempts: 3, on: [5xx], budget_percent: 20, min_per_second: 1, backoff: 1ms }}\n",
        endpoints(&refs)
    );
    let gw = Gateway::start(&body);
    let c = client();
    let mut tries = 0usize;
    for _ in 0..200 {
        let r = get(&c, gw.addr, "/v1/matches", &[]).await;
        assert_eq!(
            r.status, 500,
            "the pods' own error passes through once retries are spent"
        );
        tries += r.header("x-arena-attempts").unwrap().parse::<usize>().unwrap();
    }
    let retries = tries - 200;
    // Budget: 20% of 200 requests + 1/s over the 10 s window = at most 50 retries,
    // where an unbounded policy would have made 400.
    println!("retries with budget: {retries}");
    assert!(retries <= 50, "{retries} retries exceed the budget");
    assert!(retries >= 30, "the budget should still allow retries: {retries}");
    let m = get(&c, gw.admin, "/metrics", &[]).await.text();
    assert!(
        m.contains("arena_retries_total{cause=\"budget_exhausted\",route=\"verify\"}"),
        "{m}"
    );
}

/// Sends at `rps` for `secs` seconds on a fixed schedule; returns (admitted, limited).
async fn steady(
    addr: std::net::SocketAddr,
    rps: u64,
    secs: u64,
    headers: &'static [(&'static str, &'static str)],
) -> (usize, usize) {
    let ok = Arc::new(AtomicUsize::new(0));
    let limited = Arc::new(AtomicUsize::new(0));
    let c = client();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rps));
    let mut tasks = Vec::new();
    for _ in 0..rps * secs {
        tick.tick().await;
        let (ok, limited, c) = (Arc::clone(&ok), Arc::clone(&limited), c.clone());
        tasks.push(tokio::spawn(async move {
            let r = send(
                &c,
                http::Method::GET,
                addr,
                "/v1/matches",
                headers,
                b"",
                Duration::from_secs(5),
            )
            .await
            .unwrap();
            match r.status {
                200 => ok.fetch_add(1, Ordering::Relaxed),
                429 => {
                    assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
                    assert!(r.header("ratelimit-limit").is_some());
                    assert_eq!(r.json()["error"], "rate_limited");
                    limited.fetch_add(1, Ordering::Relaxed)
                }
                s => panic!("unexpected status {s}"),
            };
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    (ok.load(Ordering::Relaxed), limited.load(Ordering::Relaxed))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_rate_limit_admits_the_configured_rate() {
    let pod = Pod::start("127.0.0.108", &[]);
    let body = format!(
        "clusters:\n  - name: c\n    endpoints: [\"{}\"]\nroutes:\n  - name: matches\n    match: {{}}\n    cluster: c\n    rate_limit: {{ requests_per_second: 40, burst: 10, key: header:x-api-key }}\n",
        pod.addr
    );
    let gw = Gateway::start(&body);
    // Twice the allowed rate for 10 s from one key: ~40/s admitted (+ the burst).
    let (ok, limited) = steady(gw.addr, 80, 10, &[("x-api-key", "team-a")]).await;
    println!("admitted {ok}, limited {limited}");
    let expected = 40.0 * 10.0 + 10.0;
    assert!(
        (ok as f64 - expected).abs() <= expected * 0.10,
        "admitted {ok}, expected ~{expected}"
    );
    // Another key has its own budget.
    let c = client();
    assert_eq!(
        get(&c, gw.addr, "/v1/matches", &[("x-api-key", "team-b")]).await.status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuit_breaker_fails_fast_beyond_max_in_flight() {
    // Slow enough that the six concurrent requests overlap even on a loaded machine.
    let pod = Pod::start("127.0.0.109", &["--latency", "2s"]);
    let body = format!(
        "clusters:\n  - name: slow\n    endpoints: [\"{}\"]\n    max_in_flight: 2\nroutes:\n  - name: all\n    match: {{}}\n    cluster: slow\n",
        pod.addr
    );
    let gw = Gateway::start(&body);
    let (statuses, _) = load(gw.addr, "/v1/matches", 6, 6).await;
    assert_eq!(statuses.get(&200), Some(&2), "{statuses:?}");
    assert_eq!(statuses.get(&503), Some(&4), "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_rate_limit_is_shared_through_redis_and_survives_its_loss() {
    let (mut redis, redis_addr) = support::redis::start();
    let pod = Pod::start("127.0.0.110", &[]);
    let body = format!(
        "redis: {{ url: \"redis://{redis_addr}\", timeout: 100ms, replicas: 2 }}\nclusters:\n  - name: c\n    endpoints: [\"{}\"]\nroutes:\n  - name: matches\n    match: {{}}\n    cluster: c\n    rate_limit: {{ requests_per_second: 30, burst: 5, key: route, scope: cluster }}\n",
        pod.addr
    );
    let a = Gateway::start(&body);
    let b = Gateway::start(&body);
    // 40/s into each gateway for 5 s: 400 requests against one shared budget of 30/s.
    let (ra, rb) = tokio::join!(steady(a.addr, 40, 5, &[]), steady(b.addr, 40, 5, &[]));
    let admitted = ra.0 + rb.0;
    println!("shared limit admitted {admitted} (a {}, b {})", ra.0, rb.0);
    let expected = 30.0 * 5.0 + 5.0;
    assert!(
        (admitted as f64 - expected).abs() <= expected * 0.15,
        "admitted {admitted}, expected ~{expected}"
    );
    assert!(ra.0 > 0 && rb.0 > 0);

    // Redis dies: no errors, each gateway keeps limiting locally at its share of the rate
    // (1 / redis.replicas: together, the rate — not twice it).
    redis.kill();
    let (ra, rb) = tokio::join!(steady(a.addr, 40, 5, &[]), steady(b.addr, 40, 5, &[]));
    println!("without redis admitted a {} b {}", ra.0, rb.0);
    for (ok, _) in [ra, rb] {
        let local = 15.0 * 5.0 + 3.0;
        assert!(
            (ok as f64 - local).abs() <= local * 0.25,
            "local fallback admitted {ok}, expected ~{local}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hedging_hides_a_stuck_pod_and_gets_it_ejected() {
    let good: Vec<Pod> = (111..=112)
        .map(|i| Pod::start(&format!("127.0.0.{i}"), &["--latency", "1ms"]))
        .collect();
    let stuck = Pod::start("127.0.0.113", &["--stuck"]);
    let refs: Vec<&Pod> = good.iter().chain([&stuck]).collect();
    let body = format!(
        "clusters:\n  - name: live\n    endpoints: [{}]\n    lb: round_robin\n    per_try_timeout: 5s\n    outlier: {{ consecutive_failures: 3, base_ejection: 30s }}\nroutes:\n  - name: live\n    match: {{ path_prefix: /v1/matches }}\n    cluster: live\n    timeout: 6s\n    hedge: {{ after: 30ms, max_extra: 1 }}\n",
        endpoints(&refs)
    );
    let gw = Gateway::start(&body);
    // No retry policy and a per-try timeout far beyond the test: only hedging can save the
    // requests that land on the stuck pod.
    let (statuses, backends) = load(gw.addr, "/v1/matches/m1/live", 60, 3).await;
    assert_eq!(statuses.get(&200), Some(&60), "{statuses:?}");
    assert!(!backends.contains_key(&stuck.addr.to_string()));
    let c = client();
    let m = get(&c, gw.admin, "/metrics", &[]).await.text();
    assert!(m.contains("arena_hedges_total{result=\"won\",route=\"live\"}"), "{m}");
    let pod = pod_view(&c, &gw, &stuck).await;
    assert_eq!(
        pod["state"], "ejected",
        "lost hedge races count against the stuck pod: {pod}"
    );
}

/// Script calls Redis has served (`EVALSHA` + `EVAL`), from `INFO commandstats`.
fn redis_script_calls(addr: std::net::SocketAddr) -> u64 {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"INFO commandstats\r\n").unwrap();
    let mut r = BufReader::new(s);
    let mut header = String::new();
    r.read_line(&mut header).unwrap();
    let len: usize = header.trim().trim_start_matches('$').parse().unwrap();
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    String::from_utf8(body)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| l.split(&[':', ','][..]).find_map(|kv| kv.strip_prefix("calls=")))
        .map(|n| n.parse::<u64>().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_rate_limit_leases_tokens_in_batches() {
    let (_redis, redis_addr) = support::redis::start();
    let pod = Pod::start("127.0.0.113", &[]);
    let body = format!(
        "redis: {{ url: \"redis://{redis_addr}\", timeout: 100ms, replicas: 2 }}\nclusters:\n  - name: c\n    endpoints: [\"{}\"]\nroutes:\n  - name: matches\n    match: {{}}\n    cluster: c\n    rate_limit: {{ requests_per_second: 100, burst: 20, batch: 10, key: route, scope: cluster }}\n",
        pod.addr
    );
    let a = Gateway::start(&body);
    let b = Gateway::start(&body);
    // 100/s into each gateway for 4 s: 800 requests against one shared budget of 100/s.
    let (ra, rb) = tokio::join!(steady(a.addr, 100, 4, &[]), steady(b.addr, 100, 4, &[]));
    let admitted = ra.0 + rb.0;
    let calls = redis_script_calls(redis_addr);
    println!(
        "batched shared limit admitted {admitted} (a {}, b {}) with {calls} Redis calls",
        ra.0, rb.0
    );
    // Leases never admit more than the shared budget; unspent leased tokens may leave it a
    // little under.
    let expected = 100.0 * 4.0 + 20.0;
    assert!(
        admitted as f64 <= expected * 1.05 && admitted as f64 >= expected * 0.8,
        "admitted {admitted}, expected ~{expected}"
    );
    // Replicas share it fairly (equal demand → roughly equal shares), not first-come-first-served.
    for ok in [ra.0, rb.0] {
        assert!(ok * 4 >= admitted, "unfair split: a {} b {}", ra.0, rb.0);
    }
    // One call per token would be ≥ 800 (every request, admitted or not); leases take ten at a
    // time and a refused key waits for the next batch without asking.
    assert!(
        calls * 4 <= admitted as u64,
        "{calls} Redis calls for {admitted} admitted requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_uploads_are_the_clients_fault_not_the_pods() {
    use std::io::Write;
    let pod = Pod::start("127.0.0.114", &[]);
    let body = format!(
        "clusters:\n  - name: c\n    endpoints: [\"{}\"]\n    outlier: {{ consecutive_failures: 3, base_ejection: 30s }}\nroutes:\n  - name: verify\n    match: {{ path_prefix: /v1/verify }}\n    cluster: c\n",
        pod.addr
    );
    let gw = Gateway::start(&body);
    // Each client announces 100 000 bytes, sends 10 and hangs up: four times the ejection
    // threshold of failures, if the gateway blamed the pod for them.
    for _ in 0..12 {
        let mut s = std::net::TcpStream::connect(gw.addr).unwrap();
        write!(
            s,
            "POST /v1/verify HTTP/1.1\r\nhost: arena\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{{\"kills\":1"
        )
        .unwrap();
        s.flush().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        drop(s);
    }
    let c = client();
    let view = pod_view(&c, &gw, &pod).await;
    assert_eq!(view["state"], "healthy", "{view}");
    assert_eq!(view["failures"], 0, "{view}");
    assert_eq!(view["health"]["consecutive_failures"], 0, "{view}");
    let r = send(
        &c,
        http::Method::POST,
        gw.addr,
        "/v1/verify",
        &[("content-type", "application/json")],
        b"{\"kills\":3}",
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_uploads_and_slow_bodies_cost_no_pod_no_retry_no_function() {
    let pod = Pod::start("127.0.0.115", &[]);
    let dead = free_addr("127.0.0.1").unwrap();
    // Every protection that could be fooled into acting: retries of POSTs, a function to replay
    // on, an outlier detector three failures from ejecting the only pod.
    let body = format!(
        "faas: [{{ name: f, kind: http, url: \"http://{dead}\" }}]\nclusters:\n  - name: c\n    endpoints: [\"{}\"]\n    outlier: {{ consecutive_failures: 3, base_ejection: 30s }}\nroutes:\n  - name: verify\n    match: {{ path_prefix: /v1/verify }}\n    cluster: c\n    retry: {{ attempts: 3, on: [connect_failure, reset, timeout, 5xx], non_idempotent: true }}\n    fallback: {{ faas: f }}\n",
        pod.addr
    );
    let gw = Gateway::start_with("  client: { body_timeout: 1s, header_timeout: 30s }\n", &body);
    let addr = gw.addr;
    let closed = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let head = |len: usize| {
            format!("POST /v1/verify HTTP/1.1\r\nhost: arena\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n\r\n{{\"kills\":1")
        };
        // 200 uploads announce 100 000 bytes, send 10 and hang up.
        for _ in 0..200 {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(head(100_000).as_bytes()).unwrap();
            drop(s);
        }
        // 200 more send 10 of 1000 bytes and then nothing: cut by body_timeout.
        let mut slow: Vec<std::net::TcpStream> = (0..200)
            .map(|_| {
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                s.write_all(head(1000).as_bytes()).unwrap();
                s
            })
            .collect();
        slow.iter_mut()
            .map(|s| {
                let mut buf = [0u8; 1024];
                let mut answer = Vec::new();
                loop {
                    match s.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => answer.extend_from_slice(&buf[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                        Err(_) => return false,
                    }
                }
                // Told it stalled (408), not that it sent garbage, when the answer got out.
                answer.starts_with(b"HTTP/1.1 408") || answer.is_empty()
            })
            .filter(|cut| *cut)
            .count()
    })
    .await
    .unwrap();
    assert_eq!(closed, 200, "every slow body was cut, with a 408 when answered");
    let c = client();
    // The uploads' last requests may still be finishing: wait until nothing is in flight.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let view = loop {
        let v = pod_view(&c, &gw, &pod).await;
        if v["in_flight"] == 0 || std::time::Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(view["state"], "healthy", "{view}");
    assert_eq!(view["failures"], 0, "{view}");
    assert_eq!(view["health"]["ejections"], 0, "{view}");
    let m = get(&c, gw.admin, "/metrics", &[]).await.text();
    assert!(
        !m.contains("arena_retries_total{"),
        "no retry was spent on a client's fault:\n{m}"
    );
    assert!(
        !m.contains("arena_faas_requests_total{"),
        "no function was called:\n{m}"
    );
    // And the pod still serves.
    let r = send(
        &c,
        http::Method::POST,
        gw.addr,
        "/v1/verify",
        &[("content-type", "application/json")],
        b"{\"kills\":3}",
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_trickling_its_answer_is_cut_at_the_deadline_and_blamed() {
    use std::io::{Read, Write};
    // A pod that answers at once, then sends its body one byte every 200 ms: every read is
    // quick, the answer as a whole never is.
    let listener = std::net::TcpListener::bind("127.0.0.116:0").unwrap();
    let pod_addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut conn = conn;
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf);
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n");
                for _ in 0..1000 {
                    std::thread::sleep(Duration::from_millis(200));
                    if conn.write_all(b"x").is_err() {
                        return;
                    }
                }
            });
        }
    });
    let body = format!(
        "clusters:\n  - name: c\n    endpoints: [\"{pod_addr}\"]\n    per_try_timeout: 1s\nroutes:\n  - name: all\n    match: {{}}\n    cluster: c\n    timeout: 1500ms\n"
    );
    let gw = Gateway::start(&body);
    let addr = gw.addr;
    let got = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(b"GET /v1/matches HTTP/1.1\r\nhost: arena\r\n\r\n").unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) => return (true, out),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => return (e.kind() != std::io::ErrorKind::WouldBlock, out),
            }
        }
    })
    .await
    .unwrap();
    let (closed, out) = got;
    let text = String::from_utf8_lossy(&out);
    let body_bytes = text.split_once("\r\n\r\n").map_or(0, |(_, b)| b.len());
    println!("a trickling pod's answer was cut after {body_bytes} of 1000 body bytes");
    assert!(closed, "the client was not left hanging");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(body_bytes < 1000, "the answer was cut, not completed: {body_bytes}");
    let c = client();
    let v = get(&c, gw.admin, "/clusters", &[]).await.json();
    assert_eq!(
        v["clusters"][0]["pods"][0]["failures"], 1,
        "the trickle is the pod's fault: {v}"
    );
}

/// A pod that sheds load (a sidecar's full queue: 503 + `x-arena-overloaded`) is not broken:
/// its requests go on to another pod — POSTs too, they never ran — nothing reaches the client,
/// and the pod is not ejected however often it sheds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shedding_pod_is_skipped_not_ejected_and_clients_see_no_error() {
    let full = Pod::start("127.0.0.118", &["--shed", "--error-rate", "1.0", "--name", "full"]);
    let ok = Pod::start("127.0.0.119", &["--name", "ok"]);
    // No retry policy at all, and an outlier detector two failures from ejecting.
    let body = format!(
        "clusters:\n  - name: c\n    endpoints: [{}]\n    lb: round_robin\n    outlier: {{ consecutive_failures: 2, base_ejection: 30s }}\nroutes:\n  - {{ name: r, match: {{}}, cluster: c }}\n",
        endpoints(&[&full, &ok])
    );
    let gw = Gateway::start(&body);
    let c = client();
    for i in 0..40 {
        let r = if i % 2 == 0 {
            get(&c, gw.addr, "/v1/matches", &[]).await
        } else {
            send(
                &c,
                http::Method::POST,
                gw.addr,
                "/v1/verify",
                &[("content-type", "application/json")],
                b"{\"kills\":1}",
                Duration::from_secs(10),
            )
            .await
            .unwrap()
        };
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        assert_eq!(r.header("x-pod"), Some("ok"));
        assert_eq!(r.header("x-arena-overloaded"), None);
    }
    let view = pod_view(&c, &gw, &full).await;
    assert_eq!(view["state"], "healthy", "{view}");
    assert_eq!(view["health"]["consecutive_failures"], 0, "{view}");
    let m = get(&c, gw.admin, "/metrics", &[]).await.text();
    assert!(
        m.contains("arena_retries_total{cause=\"overloaded\",route=\"r\"}"),
        "{m}"
    );

    // The same on a hedged route (its tries race on their own connections).
    let gw = Gateway::start(&format!(
        "clusters:\n  - name: c\n    endpoints: [{}]\n    lb: round_robin\n    outlier: {{ consecutive_failures: 2, base_ejection: 30s }}\nroutes:\n  - {{ name: r, match: {{}}, cluster: c, hedge: {{ after: 200ms, max_extra: 1 }} }}\n",
        endpoints(&[&full, &ok])
    ));
    for i in 0..20 {
        let r = get(&c, gw.addr, "/v1/matches", &[]).await;
        assert_eq!((r.status, r.header("x-pod")), (200, Some("ok")), "hedged request {i}");
    }
    let view = pod_view(&c, &gw, &full).await;
    assert_eq!(view["state"], "healthy", "hedged: {view}");

    // Every pod full: the client gets the 503, without the internal header.
    let gw = Gateway::start(&format!(
        "clusters:\n  - {{ name: c, endpoints: [{}] }}\nroutes:\n  - {{ name: r, match: {{}}, cluster: c }}\n",
        endpoints(&[&full])
    ));
    let r = get(&c, gw.addr, "/v1/matches", &[]).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("x-arena-overloaded"), None);
}
