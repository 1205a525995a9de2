//! The outbound side: the app's calls through the sidecar's loopback port reach services with
//! the gateway's engine — DNS (SRV) discovery, live-load balancing, retries around a failing
//! pod, request ids carried, a grey release's forced canary — configured with the gateway's keys.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;

use common::support::dnsmasq::Dnsmasq;
use common::support::gateway::Pod;
use common::support::http::{client, get};
use common::Sidecar;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apps_calls_are_balanced_retried_and_split_through_dns() {
    let app = Pod::start("127.0.0.1", &["--name", "app"]);
    let players = [
        Pod::start("127.0.0.61", &["--name", "p1"]),
        Pod::start("127.0.0.62", &["--name", "p2"]),
        Pod::start("127.0.0.63", &["--name", "broken", "--error-rate", "1.0"]),
    ];
    let canary = Pod::start("127.0.0.64", &["--name", "canary", "--version", "v2"]);
    let srv = "_http._tcp.players.esports.test";
    let dns = Dnsmasq::start(
        &[],
        &[
            (srv, "p1.players.test", players[0].addr.port(), "127.0.0.61"),
            (srv, "p2.players.test", players[1].addr.port(), "127.0.0.62"),
            (srv, "p3.players.test", players[2].addr.port(), "127.0.0.63"),
        ],
    );
    let outbound = arena_testkit::free_addr("127.0.0.1").unwrap();
    let extra = format!(
        "outbound:\n  listen: {outbound}\n  debug_headers: true\n  clusters:\n    - name: players\n      dns: {{ name: {srv}, record: srv, resolver: \"{}\" }}\n      outlier: {{ consecutive_failures: 100 }}\n    - {{ name: players-v2, endpoints: [\"{}\"] }}\n  routes:\n    - {{ name: players, match: {{ path_prefix: /v1 }}, cluster: players, retry: {{ attempts: 3, on: [5xx] }} }}\n  releases:\n    - name: v2\n      routes: [players]\n      stable: players\n      canary: players-v2\n      weight: 0%\n      force:\n        canary: {{ headers: {{ x-canary: \"1\" }} }}\n",
        dns.addr(),
        canary.addr
    );
    let sc = Sidecar::start("127.0.0.1", app.addr, "", &extra);
    arena_testkit::wait::until("outbound listening", std::time::Duration::from_secs(10), || {
        arena_testkit::wait::is_listening(outbound)
    })
    .unwrap();
    // Discovery through the sidecar's admin (the gateway's /clusters).
    arena_testkit::wait::until(
        "three players pods discovered",
        std::time::Duration::from_secs(10),
        || {
            let v: serde_json::Value = serde_json::from_slice(&sc.admin_get("/clusters").body).unwrap_or_default();
            v["clusters"][0]["pods"].as_array().is_some_and(|p| p.len() == 3)
        },
    )
    .unwrap();

    let c = client();
    let mut served = HashSet::new();
    for i in 0..60 {
        let id = format!("call-{i}");
        let r = get(&c, outbound, "/v1/players/7/stats", &[("x-request-id", &id)]).await;
        // The broken pod's 500s are retried on the others: the app sees none.
        assert_eq!(r.status, 200, "call {i}: {}", r.text());
        assert_eq!(r.header("x-request-id"), Some(id.as_str()));
        served.insert(r.header("x-pod").unwrap().to_string());
    }
    assert_eq!(
        served,
        HashSet::from(["p1".to_string(), "p2".to_string()]),
        "{served:?}"
    );
    // A tester forces the canary through the release's header.
    let r = get(&c, outbound, "/v1/players/7/stats", &[("x-canary", "1")]).await;
    assert_eq!((r.status, r.header("x-pod")), (200, Some("canary")));
    assert_eq!(r.header("x-arena-release"), Some("v2=canary"));
    // The gateway's series, beside the sidecar's own.
    let m = sc.admin_get("/metrics").text();
    assert!(
        m.contains("arena_retries_total{cause=\"5xx\",route=\"players\"}"),
        "{m}"
    );
    assert!(m.contains("arena_sidecar_inbound_requests_total"), "{m}");
    let releases: serde_json::Value = serde_json::from_slice(&sc.admin_get("/releases").body).unwrap();
    assert_eq!(releases["releases"][0]["name"], "v2", "{releases}");
}
