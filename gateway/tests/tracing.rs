//! Traces against a real OTLP receiver (decoding with the official OpenTelemetry protobuf
//! definitions): a server span per kept request and a client span per try with the right
//! parent links, attributes and error status; at a 0 % ratio every request with a failed try is
//! still kept and no other is; a caller's context is joined; a dead collector changes no answer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::Value;
use support::gateway::{Gateway, Pod};
use support::http::{client, get};
use support::otlp::Receiver;

fn config(receiver_port: u16, ratio: &str, pods: &[&Pod]) -> String {
    let endpoints: Vec<String> = pods.iter().map(|p| format!("\"{}\"", p.addr)).collect();
    format!(
        "tracing:\n  otlp_endpoint: http://127.0.0.1:{receiver_port}\n  sample_ratio: {ratio}\n  always: [error]\n  service_name: arena-test\n  resource: {{ deployment.environment: test }}\nclusters:\n  - name: c\n    endpoints: [{}]\n    lb: round_robin\n    outlier: {{ consecutive_failures: 1000 }}\nroutes:\n  - {{ name: r, match: {{}}, cluster: c, retry: {{ attempts: 2, on: [5xx] }} }}\n",
        endpoints.join(", ")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_tries_are_always_traced_with_a_span_per_try() {
    let receiver = Receiver::start();
    let good = Pod::start("127.0.0.171", &["--name", "good"]);
    let bad = Pod::start("127.0.0.172", &["--name", "bad", "--error-rate", "1.0"]);
    // Ratio 0 %: only what `always: [error]` keeps — every request whose first try failed.
    let gw = Gateway::start(&config(receiver.port, "0%", &[&good, &bad]));
    let c = client();
    let mut retried = HashSet::new();
    for i in 0..40 {
        let id = format!("req-{i}");
        let r = get(&c, gw.addr, "/v1/matches", &[("x-request-id", &id)]).await;
        assert_eq!(r.status, 200, "{}", r.text());
        if r.header("x-arena-attempts") == Some("2") {
            retried.insert(id);
        }
    }
    assert!(
        !retried.is_empty() && retried.len() < 40,
        "round robin over a good and a bad pod: {retried:?}"
    );
    let spans = receiver.settle();
    let servers: Vec<&Value> = spans.iter().filter(|s| s["kind"] == 2).collect();
    let kept: HashSet<String> = servers
        .iter()
        .map(|s| s["attributes"]["arena.request_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kept, retried, "exactly the requests with a failed try are kept");
    let by_id: HashMap<&str, &Value> = spans.iter().map(|s| (s["span_id"].as_str().unwrap(), s)).collect();
    for server in &servers {
        assert_eq!(server["resource"]["service.name"], "arena-test");
        assert_eq!(server["resource"]["deployment.environment"], "test");
        assert_eq!(server["attributes"]["http.route"], "r");
        assert_eq!(server["attributes"]["http.response.status_code"], 200);
        assert_eq!(server["parent_span_id"], "", "a new trace: the server span is the root");
        let tries: Vec<&Value> = spans
            .iter()
            .filter(|s| s["parent_span_id"] == server["span_id"])
            .collect();
        assert_eq!(tries.len(), 2, "{server}");
        for t in &tries {
            assert_eq!(t["kind"], 3, "client spans");
            assert_eq!(t["trace_id"], server["trace_id"]);
            assert!(by_id.contains_key(t["parent_span_id"].as_str().unwrap()));
        }
        let first = tries.iter().find(|t| t["attributes"]["arena.attempt"] == 1).unwrap();
        assert_eq!(first["attributes"]["server.address"], "127.0.0.172");
        assert_eq!(first["attributes"]["http.response.status_code"], 500);
        assert_eq!(first["attributes"]["error.type"], "5xx");
        assert_eq!(first["status"], 2, "STATUS_CODE_ERROR");
        let second = tries.iter().find(|t| t["attributes"]["arena.attempt"] == 2).unwrap();
        assert_eq!(second["attributes"]["arena.retry"], true);
        assert_eq!(second["attributes"]["arena.retry.after"], "5xx");
        assert_eq!(second["attributes"]["server.address"], "127.0.0.171");
        assert_ne!(second["status"], 2);
    }

    // A caller that sampled its trace: joined (same trace, the caller's span as parent).
    let r = get(
        &c,
        gw.addr,
        "/v1/matches",
        &[
            ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            ("x-request-id", "joined"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    let mut joined = None;
    arena_testkit::wait::until("the joined trace", Duration::from_secs(10), || {
        joined = receiver
            .spans()
            .into_iter()
            .find(|s| s["attributes"]["arena.request_id"] == "joined");
        joined.is_some()
    })
    .unwrap();
    let joined = joined.unwrap();
    assert_eq!(joined["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(joined["parent_span_id"], "00f067aa0ba902b7");
    let m = get(&c, gw.admin, "/metrics", &[]).await.text();
    assert!(m.contains("arena_trace_spans_dropped_total 0"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_collector_changes_no_answer_and_spans_are_counted_dropped() {
    let good = Pod::start("127.0.0.173", &["--name", "good"]);
    // Nobody listens there; every request is sampled.
    let dead = arena_testkit::free_addr("127.0.0.1").unwrap().port();
    let gw = Gateway::start(&config(dead, "100%", &[&good]));
    let c = client();
    for _ in 0..30 {
        let r = get(&c, gw.addr, "/v1/matches", &[]).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    arena_testkit::wait::until("spans counted as dropped", Duration::from_secs(20), || {
        arena_testkit::http::call(gw.admin, "GET", "/metrics", &[], b"").is_ok_and(|r| {
            r.text()
                .lines()
                .find_map(|l| l.strip_prefix("arena_trace_spans_dropped_total "))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .is_some_and(|n| n >= 60.0)
        })
    })
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hedged_request_shows_both_tries_and_which_lost() {
    let receiver = Receiver::start();
    let slow = Pod::start("127.0.0.174", &["--name", "slow", "--latency", "400ms"]);
    let fast = Pod::start("127.0.0.175", &["--name", "fast"]);
    let gw = Gateway::start(&format!(
        "tracing:\n  otlp_endpoint: http://127.0.0.1:{}\n  sample_ratio: 100%\nclusters:\n  - {{ name: c, endpoints: [\"{}\", \"{}\"], lb: round_robin }}\nroutes:\n  - {{ name: h, match: {{}}, cluster: c, hedge: {{ after: 30ms, max_extra: 1 }} }}\n",
        receiver.port, slow.addr, fast.addr
    ));
    let c = client();
    // Round robin: one of two requests starts on the slow pod and is hedged onto the fast one.
    for i in 0..2 {
        let r = get(&c, gw.addr, "/v1/matches", &[("x-request-id", &format!("h-{i}"))]).await;
        assert_eq!(r.status, 200);
    }
    let spans = receiver.settle();
    let hedged = spans
        .iter()
        .find(|s| s["kind"] == 3 && s["attributes"]["arena.hedge"] == true)
        .expect("a hedge span");
    assert_eq!(hedged["attributes"]["server.address"], "127.0.0.175");
    let siblings: Vec<&Value> = spans
        .iter()
        .filter(|s| s["parent_span_id"] == hedged["parent_span_id"])
        .collect();
    assert_eq!(siblings.len(), 2, "{siblings:?}");
    let lost = siblings.iter().find(|s| s["span_id"] != hedged["span_id"]).unwrap();
    assert_eq!(lost["attributes"]["server.address"], "127.0.0.174");
    assert_eq!(lost["attributes"]["error.type"], "lost_race");
    assert_eq!(hedged["attributes"]["http.response.status_code"], 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_that_answers_for_dead_pods_has_its_span() {
    let receiver = Receiver::start();
    // The function: a sample pod behind `kind: http` (what matters here is the span).
    let function = Pod::start("127.0.0.176", &["--name", "fn"]);
    let dead = arena_testkit::free_addr("127.0.0.177").unwrap();
    let gw = Gateway::start(&format!(
        "tracing:\n  otlp_endpoint: http://127.0.0.1:{}\n  sample_ratio: 0%\nfaas:\n  - {{ name: esports-fn, kind: http, url: \"http://{}\", timeout: 2s }}\nclusters:\n  - {{ name: c, endpoints: [\"{dead}\"] }}\nroutes:\n  - {{ name: r, match: {{}}, cluster: c, fallback: {{ faas: esports-fn }} }}\n",
        receiver.port, function.addr
    ));
    let c = client();
    let r = get(&c, gw.addr, "/v1/matches", &[("x-request-id", "to-fn")]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let spans = receiver.settle();
    let server = spans
        .iter()
        .find(|s| s["kind"] == 2)
        .expect("the failed try keeps the trace");
    assert_eq!(server["attributes"]["arena.faas.function"], "esports-fn");
    let faas = spans
        .iter()
        .find(|s| s["name"] == "faas")
        .expect("a span for the invocation");
    assert_eq!(faas["parent_span_id"], server["span_id"]);
    assert_eq!(faas["attributes"]["faas.invoked_name"], "esports-fn");
    assert_eq!(faas["attributes"]["http.response.status_code"], 200);
    let tried = spans.iter().find(|s| s["name"] == "try").unwrap();
    assert_eq!(tried["attributes"]["error.type"], "connect_failure");
}
