//! Pods by DNS through the whole gateway, against a real dnsmasq whose records change during
//! the test: scale-out, drain of a pod that left, and a DNS outage that keeps the last good set.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use arena_testkit::free_addr;
use support::dnsmasq::Dnsmasq;
use support::gateway::{Gateway, Pod};
use support::http::{client, get, send, HttpClient};

const SVC: &str = "match-api.esports.svc.cluster.local";

/// Polls `f` until it returns true, for at most `limit`.
async fn eventually<F: Future<Output = bool>>(what: &str, limit: Duration, mut f: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + limit;
    while !f().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts a gateway and waits until its DNS clusters resolved (`/readyz`).
async fn start_ready(body: &str) -> (Gateway, HttpClient) {
    let gw = Gateway::start(body);
    let c = client();
    eventually("readyz", Duration::from_secs(10), || async {
        get(&c, gw.admin, "/readyz", &[]).await.status == 200
    })
    .await;
    (gw, c)
}

async fn clusters(c: &HttpClient, gw: &Gateway) -> serde_json::Value {
    get(c, gw.admin, "/clusters", &[]).await.json()["clusters"][0].clone()
}

fn pods_in(view: &serde_json::Value, state: &str) -> HashSet<String> {
    view["pods"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["state"] == state)
        .map(|p| p["address"].as_str().unwrap().to_string())
        .collect()
}

async fn backends(c: &HttpClient, gw: &Gateway, n: usize) -> HashSet<String> {
    let mut seen = HashSet::new();
    for _ in 0..n {
        let r = get(c, gw.addr, "/v1/matches", &[]).await;
        assert_eq!(r.status, 200, "{}", r.text());
        seen.insert(r.header("x-arena-backend").unwrap().to_string());
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_follow_dns_drain_and_survive_a_dns_outage() {
    let port = free_addr("127.0.0.71").unwrap().port();
    let pod = |i: u8| Pod::start_at(&format!("127.0.0.{i}:{port}"), &["--name", &format!("pod-{i}")]);
    let (p71, _p72, _p73) = (pod(71), pod(72), pod(73));
    let addr = |i: u8| SocketAddr::from(([127, 0, 0, i], port)).to_string();

    let dns = Dnsmasq::start(&[(SVC, "127.0.0.71"), (SVC, "127.0.0.72")], &[]);
    let body = format!(
        "clusters:\n  - name: match-api\n    dns: {{ name: {SVC}, port: {port}, record: a, resolver: \"{}\", min_refresh: 200ms, max_refresh: 1s, timeout: 300ms }}\nroutes:\n  - name: matches\n    match: {{ path_prefix: /v1 }}\n    cluster: match-api\n    timeout: 5s\n",
        dns.addr()
    );
    let (gw, c) = start_ready(&body).await;

    let seen = backends(&c, &gw, 30).await;
    assert!(
        !seen.is_empty() && seen.is_subset(&[addr(71), addr(72)].into()),
        "{seen:?}"
    );
    let view = clusters(&c, &gw).await;
    assert_eq!(view["discovery"]["last_result"], "ok");
    assert_eq!(view["pods"][0]["source"], "dns");

    // Scale down to one pod, then hold a slow request on it while DNS moves to the others.
    dns.set_records(&[(SVC, "127.0.0.71")], &[]);
    eventually("only pod 71 active", Duration::from_secs(10), || async {
        pods_in(&clusters(&c, &gw).await, "healthy") == [addr(71)].into()
    })
    .await;
    p71.set(r#"{"latency_ms": 2500}"#);
    let held = {
        let gw_addr = gw.addr;
        tokio::spawn(async move {
            let c = client();
            send(
                &c,
                http::Method::GET,
                gw_addr,
                "/v1/matches/held/live",
                &[],
                b"",
                Duration::from_secs(10),
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    dns.set_records(&[(SVC, "127.0.0.72"), (SVC, "127.0.0.73")], &[]);
    eventually("pod 71 draining, 72 and 73 active", Duration::from_secs(10), || async {
        let v = clusters(&c, &gw).await;
        pods_in(&v, "draining") == [addr(71)].into() && pods_in(&v, "healthy") == [addr(72), addr(73)].into()
    })
    .await;
    let seen = backends(&c, &gw, 20).await;
    assert!(!seen.contains(&addr(71)), "a draining pod got new requests: {seen:?}");
    let held = held.await.unwrap().unwrap();
    assert_eq!(held.status, 200, "in-flight request on the drained pod must finish");
    assert_eq!(held.header("x-pod"), Some("pod-71"));
    eventually("drained pod removed", Duration::from_secs(5), || async {
        pods_in(&clusters(&c, &gw).await, "draining").is_empty()
    })
    .await;

    // DNS outage: the last good set keeps serving and the state says so.
    drop(dns);
    eventually("stale discovery reported", Duration::from_secs(10), || async {
        let v = clusters(&c, &gw).await;
        v["discovery"]["stale"] == true && v["discovery"]["last_result"] != "ok"
    })
    .await;
    let seen = backends(&c, &gw, 20).await;
    assert!(
        seen.is_subset(&[addr(72), addr(73)].into()) && !seen.is_empty(),
        "{seen:?}"
    );
    let metrics = get(&c, gw.admin, "/metrics", &[]).await.text();
    assert!(
        metrics.contains("arena_discovery_stale{cluster=\"match-api\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("arena_dns_refresh_total{cluster=\"match-api\",result=\"ok\"}"));
    assert!(
        metrics.lines().any(
            |l| l.starts_with("arena_dns_refresh_total{cluster=\"match-api\",result=\"timeout\"}")
                || l.starts_with("arena_dns_refresh_total{cluster=\"match-api\",result=\"io\"}")
        ),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srv_records_give_each_pod_its_port() {
    let a = Pod::start("127.0.0.74", &["--name", "srv-a"]);
    let b = Pod::start("127.0.0.75", &["--name", "srv-b"]);
    let srv = "_http._tcp.stats.esports.svc.cluster.local";
    let dns = Dnsmasq::start(
        &[],
        &[
            (srv, "pod-a.stats.local", a.addr.port(), "127.0.0.74"),
            (srv, "pod-b.stats.local", b.addr.port(), "127.0.0.75"),
        ],
    );
    let body = format!(
        "clusters:\n  - name: stats\n    dns: {{ name: {srv}, record: srv, resolver: \"{}\", min_refresh: 200ms, timeout: 300ms }}\n    lb: round_robin\nroutes:\n  - name: all\n    match: {{}}\n    cluster: stats\n",
        dns.addr()
    );
    let (gw, c) = start_ready(&body).await;
    let seen = backends(&c, &gw, 10).await;
    assert_eq!(seen, [a.addr.to_string(), b.addr.to_string()].into());
}
