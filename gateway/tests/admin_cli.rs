//! Admin API content and the `check` / `routes` commands, against the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;

use support::gateway::{Gateway, Pod, TOKEN};
use support::http::{client, get, post};
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

/// With `read_token: required` (the default off loopback) every admin call but the probes
/// needs the bearer token — the endpoints of today and any added later.
#[tokio::test]
async fn admin_reads_need_the_token_when_required() {
    let pod = Pod::start("127.0.0.92", &[]);
    let body = format!(
        "clusters:\n  - {{ name: c, endpoints: [\"{}\"] }}\nroutes:\n  - {{ name: all, match: {{}}, cluster: c }}\n",
        pod.addr
    );
    let gw = Gateway::start_admin("  read_token: required\n", &body, &[]);
    let c = client();
    let bearer = format!("Bearer {TOKEN}");
    let good = [("authorization", bearer.as_str())];
    let wrong = [("authorization", "Bearer not-the-token")];
    // Probes stay open.
    assert_eq!(get(&c, gw.admin, "/healthz", &[]).await.status, 200);
    assert_eq!(get(&c, gw.admin, "/readyz", &[]).await.status, 200);
    for path in ["/metrics", "/config", "/clusters", "/releases", "/ui", "/nothing"] {
        for headers in [&[][..], &wrong[..]] {
            let r = get(&c, gw.admin, path, headers).await;
            assert_eq!(r.status, 401, "{path} {headers:?}: {}", r.text());
            assert_eq!(r.header("www-authenticate"), Some("Bearer"), "{path}");
            assert_eq!(r.json()["error"], "unauthorized");
        }
    }
    let m = get(&c, gw.admin, "/metrics", &good).await;
    assert_eq!(m.status, 200);
    assert!(m.text().contains("arena_config_generation 1"), "{}", m.text());
    let cfg = get(&c, gw.admin, "/config", &good).await.json();
    assert_eq!(cfg["config"]["admin"]["read_token"], "required");
    assert_eq!(get(&c, gw.admin, "/clusters", &good).await.status, 200);
    assert_eq!(get(&c, gw.admin, "/nothing", &good).await.status, 404);
    // Mutating calls need it as before.
    assert_eq!(post(&c, gw.admin, "/reload", &[]).await.status, 401);
    assert_eq!(post(&c, gw.admin, "/reload", &good).await.status, 200);
}

/// Nothing `/config`, `/clusters` or `/metrics` answer holds a secret: Redis passwords
/// (`user:pass@` and `:pass@`, written or from `${env:}`), FaaS header values and URL
/// credentials, the admin token — nor does a rejected reload's answer or its diagnostics.
#[tokio::test]
async fn admin_answers_never_show_secrets() {
    let pod = Pod::start("127.0.0.93", &[]);
    let env = [
        ("ARENA_TEST_REDIS_PW", "redis-pw-from-env-S2"),
        ("ARENA_TEST_FN_TOKEN", "fn-token-from-env-S3"),
    ];
    let secrets = [
        "redis-pw-written-S1",
        "redis-pw-from-env-S2",
        "fn-token-from-env-S3",
        "fn-url-pw-S4",
        "redis-pw-rejected-S5",
        TOKEN,
    ];
    let body = |redis_url: &str| {
        format!(
            "redis: {{ url: \"{redis_url}\", replicas: 2 }}\nfaas:\n  - name: f\n    kind: http\n    url: \"http://fn:fn-url-pw-S4@127.0.0.93:1\"\n    headers: {{ authorization: \"Bearer ${{env:ARENA_TEST_FN_TOKEN}}\", x-key: \"${{env:ARENA_TEST_FN_TOKEN}}\" }}\nclusters:\n  - {{ name: c, endpoints: [\"{}\"] }}\nroutes:\n  - name: all\n    match: {{}}\n    cluster: c\n    fallback: {{ faas: f }}\n    rate_limit: {{ requests_per_second: 100, scope: cluster }}\n",
            pod.addr
        )
    };
    let c = client();
    let bearer = format!("Bearer {TOKEN}");
    let auth = [("authorization", bearer.as_str())];
    for url in [
        "redis://arena:redis-pw-written-S1@127.0.0.1:1/0",
        "redis://:${env:ARENA_TEST_REDIS_PW}@127.0.0.1:1",
    ] {
        let gw = Gateway::start_admin("", &body(url), &env);
        // Traffic first, so the metrics and the pod table have something to show.
        assert_eq!(get(&c, gw.addr, "/v1/matches", &[]).await.status, 200);
        let mut answers = Vec::new();
        for path in ["/config", "/clusters", "/metrics"] {
            let r = get(&c, gw.admin, path, &auth).await;
            assert_eq!(r.status, 200, "{path}");
            answers.push((path, r.text()));
        }
        // A reload rejected for a bad Redis URL quotes it, masked.
        gw.write_body(&body("redis://:redis-pw-rejected-S5@[::1"));
        let rejected = post(&c, gw.admin, "/reload", &auth).await;
        assert_eq!(rejected.status, 400, "{}", rejected.text());
        assert!(rejected.text().contains("bad redis url"), "{}", rejected.text());
        answers.push(("POST /reload", rejected.text()));
        answers.push(("/config after", get(&c, gw.admin, "/config", &auth).await.text()));
        for (path, text) in &answers {
            for secret in secrets {
                assert!(!text.contains(secret), "{url}: `{secret}` in {path}:\n{text}");
            }
        }
        let cfg: serde_json::Value = serde_json::from_str(&answers[0].1).unwrap();
        let shown = cfg["config"]["redis"]["url"].as_str().unwrap();
        assert!(shown.contains(":***@127.0.0.1:1"), "{shown}");
        assert_eq!(
            cfg["config"]["faas"][0]["target"]["http"]["url"],
            "http://fn:***@127.0.0.93:1"
        );
        assert_eq!(
            cfg["config"]["faas"][0]["headers"],
            serde_json::json!(["authorization", "x-key"])
        );
    }
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
