//! Admin API content and the `check` / `routes` commands, against the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;

use support::gateway::{Gateway, Pod};
use support::http::{client, get};
use support::procs::{bin, TempDir};

#[tokio::test]
async fn admin_exposes_health_metrics_config_and_pods() {
    let pod = Pod::start("127.0.0.91", &["--load-report", "--report-utilization", "0.42"]);
    let body = format!(
        "clusters:\n  - name: match-api\n    endpoints: [\"{}\"]\nroutes:\n  - name: matches\n    match: {{ path_prefix: /v1/matches }}\n    cluster: match-api\n",
        pod.addr
    );
    let gw = Gateway::start(&body);
    let c = client();
    for _ in 0..5 {
        assert_eq!(get(&c, gw.addr, "/v1/matches", &[]).await.status, 200);
    }
    assert_eq!(get(&c, gw.addr, "/nope", &[]).await.status, 404);

    assert_eq!(get(&c, gw.admin, "/healthz", &[]).await.status, 200);
    assert_eq!(get(&c, gw.admin, "/readyz", &[]).await.status, 200);

    let m = get(&c, gw.admin, "/metrics", &[]).await.text();
    for needle in [
        "arena_requests_total{class=\"2xx\",cluster=\"match-api\",route=\"matches\"} 5",
        "arena_request_duration_seconds_bucket{route=\"matches\"",
        "arena_unrouted_requests_total{reason=\"no_route\"} 1",
        "arena_endpoint_in_flight{cluster=\"match-api\"",
        "arena_endpoint_ewma_seconds{cluster=\"match-api\"",
        "arena_endpoint_reported_utilization{cluster=\"match-api\",pod=",
        "arena_cluster_endpoints{cluster=\"match-api\",state=\"healthy\"} 1",
        "arena_config_generation 1",
    ] {
        assert!(m.contains(needle), "missing `{needle}` in:\n{m}");
    }

    let cl = get(&c, gw.admin, "/clusters", &[]).await.json();
    let p = &cl["clusters"][0]["pods"][0];
    assert_eq!(p["address"], pod.addr.to_string());
    assert_eq!(p["state"], "healthy");
    assert_eq!(p["source"], "static");
    assert_eq!(p["requests"], 5);
    assert_eq!(p["in_flight"], 0);
    assert!(p["ewma_ms"].as_f64().unwrap() > 0.0);
    assert!((p["reported_utilization"].as_f64().unwrap() - 0.42).abs() < 1e-9);

    let cfg = get(&c, gw.admin, "/config", &[]).await.json();
    assert_eq!(cfg["generation"], 1);
    assert_eq!(cfg["config"]["routes"][0]["name"], "matches");
    assert_eq!(cfg["config"]["admin"]["token_env"], "ARENA_TEST_ADMIN_TOKEN");
    assert!(
        cfg.to_string().find(support::gateway::TOKEN).is_none(),
        "the token must never be shown"
    );

    assert_eq!(get(&c, gw.admin, "/nothing", &[]).await.status, 404);
}

#[test]
fn check_reports_every_error_with_position_and_exits_non_zero() {
    let dir = TempDir::new("check");
    let bad = dir.0.join("bad.yaml");
    std::fs::write(
        &bad,
        "listeners:\n  - name: public\n    address: 127.0.0.1:8080\nclusters:\n  - name: match-api\n    endpoints: [\"10.0.0.1:9100\"]\n    conect_timeout: 1s\nroutes:\n  - name: matches\n    match: { path_prefix: /v1 }\n    cluster: match-apii\n",
    )
    .unwrap();
    let out = Command::new(bin("arena-gateway"))
        .args(["check", "-c"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml:7:5"), "{err}");
    assert!(err.contains("did you mean `connect_timeout`"), "{err}");
    assert!(err.contains("bad.yaml:11:14"), "{err}");
    assert!(err.contains("did you mean `match-api`"), "{err}");
    assert!(err.contains("2 error(s)"), "{err}");

    let good = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/gateway.yaml");
    let out = Command::new(bin("arena-gateway"))
        .args(["check", "-c"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let out = Command::new(bin("arena-gateway"))
        .args(["routes", "-c"])
        .arg(&good)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.lines().nth(1).unwrap().contains("matches"), "{table}");
    assert!(table.contains("/v1/players*"), "{table}");
}
