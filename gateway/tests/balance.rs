//! Live-load balancing with real pods: a pod answering 30× slower gets a small share under
//! `p2c_ewma` and its fair quarter under `round_robin`; `consistent_hash` is sticky.
//! Behaviour only — shares of requests, never timings.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::sync::Arc;

use support::gateway::{Gateway, Pod};
use support::http::{client, get};
use tokio::sync::Mutex;

const REQUESTS: usize = 600;
const WORKERS: usize = 8;

fn pods() -> Vec<Pod> {
    // Fast pods answer in ~2 ms; the slow one in 60 ms (30×).
    let mut v: Vec<Pod> = (61..=63)
        .map(|i| Pod::start(&format!("127.0.0.{i}"), &["--latency", "2ms"]))
        .collect();
    v.push(Pod::start("127.0.0.64", &["--latency", "60ms"]));
    v
}

fn config(pods: &[Pod], lb: &str) -> String {
    let eps: Vec<String> = pods.iter().map(|p| format!("\"{}\"", p.addr)).collect();
    format!(
        "clusters:\n  - name: c\n    endpoints: [{}]\n    lb: {lb}\n    hash_key: header:x-user-id\nroutes:\n  - name: all\n    match: {{}}\n    cluster: c\n",
        eps.join(", ")
    )
    .replace("    hash_key: header:x-user-id\n", if lb == "consistent_hash" { "    hash_key: header:x-user-id\n" } else { "" })
}

/// Sends REQUESTS requests from WORKERS concurrent clients; returns requests per backend.
async fn spread(gw: &Gateway) -> HashMap<String, usize> {
    let counts = Arc::new(Mutex::new(HashMap::new()));
    let mut tasks = Vec::new();
    for _ in 0..WORKERS {
        let counts = Arc::clone(&counts);
        let addr = gw.addr;
        tasks.push(tokio::spawn(async move {
            let c = client();
            for _ in 0..REQUESTS / WORKERS {
                let r = get(&c, addr, "/v1/matches", &[]).await;
                assert_eq!(r.status, 200);
                let backend = r.header("x-arena-backend").unwrap().to_string();
                *counts.lock().await.entry(backend).or_insert(0) += 1;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    Arc::try_unwrap(counts).unwrap().into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2c_ewma_starves_the_slow_pod_round_robin_does_not() {
    let pods = pods();
    let slow = pods[3].addr.to_string();

    let gw = Gateway::start(&config(&pods, "p2c_ewma"));
    let counts = spread(&gw).await;
    let p2c_share = counts.get(&slow).copied().unwrap_or(0) as f64 / REQUESTS as f64;
    drop(gw);

    let gw = Gateway::start(&config(&pods, "round_robin"));
    let counts = spread(&gw).await;
    let rr_share = counts.get(&slow).copied().unwrap_or(0) as f64 / REQUESTS as f64;

    println!(
        "slow pod share: p2c_ewma {:.1}%, round_robin {:.1}%",
        p2c_share * 100.0,
        rr_share * 100.0
    );
    assert!(
        p2c_share < 0.10,
        "p2c_ewma sent {:.1}% to the slow pod",
        p2c_share * 100.0
    );
    assert!(
        (0.20..=0.30).contains(&rr_share),
        "round_robin sent {:.1}% to the slow pod",
        rr_share * 100.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_inflight_also_avoids_the_slow_pod() {
    let pods = pods();
    let slow = pods[3].addr.to_string();
    let gw = Gateway::start(&config(&pods, "least_inflight"));
    let counts = spread(&gw).await;
    let share = counts.get(&slow).copied().unwrap_or(0) as f64 / REQUESTS as f64;
    assert!(
        share < 0.20,
        "least_inflight sent {:.1}% to the slow pod",
        share * 100.0
    );
}

#[tokio::test]
async fn consistent_hash_keeps_a_user_on_one_pod() {
    let pods: Vec<Pod> = (65..=67).map(|i| Pod::start(&format!("127.0.0.{i}"), &[])).collect();
    let gw = Gateway::start(&config(&pods, "consistent_hash"));
    let c = client();
    let mut homes = HashMap::new();
    for user in 0..30 {
        let id = format!("user-{user}");
        let first = get(&c, gw.addr, "/v1/players/1/stats", &[("x-user-id", &id)]).await;
        let home = first.header("x-arena-backend").unwrap().to_string();
        for _ in 0..3 {
            let again = get(&c, gw.addr, "/v1/players/1/stats", &[("x-user-id", &id)]).await;
            assert_eq!(again.header("x-arena-backend"), Some(home.as_str()), "{id} moved");
        }
        *homes.entry(home).or_insert(0) += 1;
    }
    assert_eq!(homes.len(), 3, "users should spread over all pods: {homes:?}");
}
