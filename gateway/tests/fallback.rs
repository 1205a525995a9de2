//! FaaS failover through the whole gateway, against real function runtimes (Google's
//! functions-framework for `kind: http`, serverless-offline's Lambda Invoke API for
//! `kind: aws_lambda`): pods die, pods are full, warm-keeping, and the function failing too.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::faas::{HttpFunction, LambdaEmulator};
use support::gateway::{Gateway, Pod};
use support::http::{client, get, send, HttpClient, Reply};

fn config(pods: &[&Pod], function: &str, route_extra: &str) -> String {
    let eps = pods
        .iter()
        .map(|p| format!("\"{}\"", p.addr))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "faas:\n{function}clusters:\n  - name: battle\n    endpoints: [{eps}]\n    per_try_timeout: 500ms\nroutes:\n  - name: verify\n    match: {{ path_prefix: /v1 }}\n    cluster: battle\n    timeout: 5s\n    retry: {{ attempts: 2, on: [connect_failure, reset, timeout, 5xx] }}\n{route_extra}"
    )
}

fn http_fn(f: &HttpFunction) -> String {
    format!(
        "  - {{ name: verify-fn, kind: http, url: \"{}\", timeout: 5s }}\n",
        f.url()
    )
}

async fn post_verify(c: &HttpClient, gw: &Gateway, body: &str) -> Reply {
    send(
        c,
        http::Method::POST,
        gw.addr,
        "/v1/verify",
        &[("content-type", "application/json")],
        body.as_bytes(),
        Duration::from_secs(10),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_pods_down_every_request_is_served_by_the_function() {
    let f = HttpFunction::start();
    let mut a = Pod::start("127.0.0.121", &["--name", "pod-a"]);
    let mut b = Pod::start("127.0.0.122", &["--name", "pod-b"]);
    let body = config(&[&a, &b], &http_fn(&f), "    fallback: { faas: verify-fn }\n");
    let gw = Gateway::start(&body);
    let c = client();
    let r = get(&c, gw.addr, "/v1/matches", &[]).await;
    assert_eq!(r.status, 200);
    assert!(r.header("x-pod").is_some(), "pods serve while they are up");

    a.proc.kill();
    b.proc.kill();
    for i in 0..30 {
        let r = if i % 2 == 0 {
            get(&c, gw.addr, "/v1/matches/lol-1/live", &[("x-request-id", "final-1")]).await
        } else {
            post_verify(&c, &gw, r#"{"match":"lol-1","kills":12}"#).await
        };
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        assert_eq!(r.header("x-arena-backend"), Some("faas=verify-fn"));
        assert_eq!(r.header("x-served-by"), Some("faas-http"));
        if i % 2 == 0 {
            assert_eq!(r.header("x-request-id"), Some("final-1"));
        } else {
            // The body was replayed intact.
            assert_eq!(r.json()["bytes"], r#"{"match":"lol-1","kills":12}"#.len());
        }
    }
    let m = get(&c, gw.admin, "/metrics", &[]).await.text();
    assert!(m.contains("arena_faas_requests_total{function=\"verify-fn\""), "{m}");
    assert!(m.contains("result=\"ok\""), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_down_too_gives_503_naming_both_failures() {
    let mut f = HttpFunction::start();
    let mut a = Pod::start("127.0.0.123", &[]);
    let dir = support::procs::TempDir::new("fallback-failed");
    let log = dir.0.join("access.log");
    let body = format!(
        "access_log: {{ output: \"{}\" }}\n{}",
        log.display(),
        config(&[&a], &http_fn(&f), "    fallback: { faas: verify-fn }\n")
    );
    let gw = Gateway::start(&body);
    a.proc.kill();
    f.kill();
    let c = client();
    let r = get(&c, gw.addr, "/v1/matches", &[("x-request-id", "doom-1")]).await;
    assert_eq!(r.status, 503, "{}", r.text());
    let j = r.json();
    assert_eq!(j["error"], "fallback_failed");
    assert_eq!(j["request_id"], "doom-1");
    // The client is told both failed — the pods and the function — without where or why.
    let msg = j["message"].as_str().unwrap();
    assert!(msg.contains("pods") && msg.contains("function"), "{msg}");
    let text = r.text();
    for secret in [a.addr.ip().to_string(), f.url(), "verify-fn".to_string()] {
        assert!(!text.contains(&secret), "`{secret}` in {text}");
    }
    // Both causes, with the pod and the function named, are in the access log.
    let detail = access_detail(&log, "doom-1").await;
    assert!(
        detail.contains(&a.addr.to_string()) && detail.contains("verify-fn"),
        "{detail}"
    );
}

/// The `detail` of the access-log line of request `id` in `file` (10 s at most).
async fn access_detail(file: &std::path::Path, id: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let line = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|l| l["request_id"] == id);
        if let Some(l) = line {
            return l["detail"].as_str().unwrap_or_default().to_string();
        }
        assert!(tokio::time::Instant::now() < deadline, "no line for {id}:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_pods_spill_to_the_function_and_warm_share_keeps_it_warm() {
    let f = HttpFunction::start();
    // Pods that report they are at 95% utilisation: a burst the autoscaler has not caught up with.
    let busy = Pod::start("127.0.0.124", &["--load-report", "--report-utilization", "0.95"]);
    let body = config(
        &[&busy],
        &http_fn(&f),
        "    fallback: { faas: verify-fn, spillover_above_load: 0.9 }\n",
    );
    let gw = Gateway::start(&body);
    let c = client();
    let mut faas = 0;
    for _ in 0..20 {
        let r = get(&c, gw.addr, "/v1/matches", &[]).await;
        assert_eq!(r.status, 200);
        faas += usize::from(r.header("x-arena-backend") == Some("faas=verify-fn"));
    }
    // The first answer carries the report; after that every request spills over.
    assert!(faas >= 18, "spillover share {faas}/20");
    drop(gw);

    let idle = Pod::start("127.0.0.125", &["--load-report", "--report-utilization", "0.2"]);
    let body = config(
        &[&idle],
        &http_fn(&f),
        "    fallback: { faas: verify-fn, spillover_above_load: 0.9, warm_share: 10% }\n",
    );
    let gw = Gateway::start(&body);
    let mut faas = 0;
    for _ in 0..300 {
        let r = get(&c, gw.addr, "/v1/matches", &[]).await;
        assert_eq!(r.status, 200);
        faas += usize::from(r.header("x-arena-backend") == Some("faas=verify-fn"));
    }
    assert!((10..=60).contains(&faas), "warm share {faas}/300 for 10%");
    let m = get(&c, gw.admin, "/metrics", &[]).await.text();
    assert!(m.contains("reason=\"warm\""), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_lambda_fallback_through_the_invoke_api() {
    let lambda = LambdaEmulator::start();
    let pod = Pod::start("127.0.0.126", &["--error-rate", "1.0"]);
    let function = format!(
        "  - {{ name: verify-lambda, kind: aws_lambda, function: arena-faas-dev-verify, region: ap-southeast-1, endpoint: \"{}\", timeout: 10s }}\n",
        lambda.endpoint
    );
    // A POST the pod ran (and answered 500 to) is replayed only because the route opts in.
    let body = config(&[&pod], &function, "    fallback: { faas: verify-lambda }\n")
        .replace("5xx] }", "5xx], non_idempotent: true }");
    // Dummy credentials for the gateway process only: the emulator accepts any signature.
    let gw = Gateway::start_with_env(
        &body,
        &[
            ("AWS_ACCESS_KEY_ID", "AKIDARENATEST"),
            ("AWS_SECRET_ACCESS_KEY", "arena-test-secret"),
        ],
    );
    let c = client();
    // The pod answers 500 to everything: after the retry the Lambda function serves.
    let r = post_verify(&c, &gw, r#"{"match":"dota-ti25-gf","kills":7}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-arena-backend"), Some("faas=verify-lambda"));
    assert_eq!(r.header("x-served-by"), Some("faas-lambda"));
    let j = r.json();
    assert_eq!(j["verified"], true);
    assert_eq!(j["method"], "POST");
    assert_eq!(j["path"], "/v1/verify");
    assert_eq!(j["bytes"], r#"{"match":"dota-ti25-gf","kills":7}"#.len());
}
