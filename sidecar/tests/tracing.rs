//! One trace across the mesh: client → gateway → sidecar → app, each hop's span the parent of
//! the next (the gateway's try is the sidecar's server span's parent), all exporting to one
//! real OTLP receiver; with `arena-loadtest` as the client its spans are the roots and the
//! gateway and the sidecar follow its sampled flag; at a 0 % ratio the load tester and the
//! gateway both keep exactly the failed requests; a shed answer is kept at a 0 % ratio.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use common::support::gateway::{Gateway, Pod};
use common::support::http::{client, get};
use common::support::otlp::Receiver;
use common::support::procs::{bin, TempDir};
use common::Sidecar;
use serde_json::Value;

/// Runs `arena-loadtest` (one thread) for one second at 40 requests/s against `target` with
/// `tracing` (the section's lines), and returns its JSON report.
fn load(dir: &Path, target: std::net::SocketAddr, tracing: &str) -> Value {
    let scenario = dir.join("traced.yaml");
    std::fs::write(
        &scenario,
        format!(
            "name: traced\ntarget: http://{target}\nmode: open\nhttp: {{ connections: 2, timeout: 5s }}\n\
             stages: [{{ duration: 1s, rate: 40 }}]\nrequests: [{{ name: matches, path: /v1/matches }}]\n{tracing}"
        ),
    )
    .unwrap();
    let out = Command::new(bin("arena-loadtest"))
        .arg("run")
        .arg(&scenario)
        .args(["--quiet", "--threads", "1", "--out"])
        .arg(dir)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .unwrap_or_else(|| panic!("no JSON report ({:?}):\n{said}", out.status));
    serde_json::from_slice(&std::fs::read(report).unwrap()).unwrap()
}

fn service<'a>(spans: &'a [Value], name: &str, kind: i64) -> Vec<&'a Value> {
    spans
        .iter()
        .filter(|s| s["resource"]["service.name"] == name && s["kind"] == kind)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_testers_requests_are_the_roots_of_traces_through_the_gateway_and_the_sidecar() {
    let receiver = Receiver::start();
    let app = Pod::start("127.0.0.1", &["--name", "app"]);
    // The proxies record no new trace of their own (0 %): what is exported is what the load
    // tester sampled (100 %), followed through its `traceparent`.
    let quiet = format!(
        "tracing:\n  otlp_endpoint: http://127.0.0.1:{}\n  sample_ratio: 0%\n",
        receiver.port
    );
    let sc = Sidecar::start("127.0.0.83", app.addr, "  max_concurrency: 8\n", &quiet);
    sc.wait_ready(200);
    let gw = Gateway::start(&format!(
        "{quiet}clusters:\n  - {{ name: c, endpoints: [\"{}\"] }}\nroutes:\n  - {{ name: r, match: {{}}, cluster: c }}\n",
        sc.addr
    ));
    let dir = TempDir::new("lt-traced");
    let tracing = format!(
        "tracing:\n  otlp_endpoint: http://127.0.0.1:{}\n  sample_ratio: 100%\n  resource: {{ deployment.environment: test }}\n",
        receiver.port
    );
    let addr = gw.addr;
    let dir_path = dir.0.path().to_path_buf();
    let report = tokio::task::spawn_blocking(move || load(&dir_path, addr, &tracing))
        .await
        .unwrap();
    let requests = report["totals"]["requests"].as_u64().unwrap();
    assert_eq!(report["statuses"]["200"].as_u64(), Some(requests), "{report}");
    assert!(requests >= 30, "{report}");
    let spans = receiver.settle();
    let clients = service(&spans, "arena-loadtest", 3);
    assert_eq!(clients.len() as u64, requests, "a client span per request");
    assert_eq!(
        report["traces"]["exported"].as_u64(),
        Some(requests),
        "{}",
        report["traces"]
    );
    assert_eq!(report["traces"]["dropped"], 0);
    let servers: HashMap<&str, &Value> = service(&spans, "arena-gateway", 2)
        .into_iter()
        .map(|s| (s["parent_span_id"].as_str().unwrap(), s))
        .collect();
    let tries: HashMap<&str, &Value> = service(&spans, "arena-gateway", 3)
        .into_iter()
        .map(|s| (s["parent_span_id"].as_str().unwrap(), s))
        .collect();
    let sidecars: HashMap<&str, &Value> = service(&spans, "arena-sidecar", 2)
        .into_iter()
        .map(|s| (s["parent_span_id"].as_str().unwrap(), s))
        .collect();
    for client in &clients {
        assert_eq!(
            client["parent_span_id"], "",
            "the load tester starts the trace: {client}"
        );
        assert_eq!(client["name"], "matches");
        assert_eq!(client["status"], 0, "unset: it succeeded");
        assert_eq!(client["attributes"]["http.response.status_code"], 200);
        assert_eq!(client["attributes"]["arena.loadtest.scenario"], "traced");
        assert_eq!(client["resource"]["deployment.environment"], "test");
        let trace = &client["trace_id"];
        let server = servers[client["span_id"].as_str().unwrap()];
        let hop = tries[server["span_id"].as_str().unwrap()];
        let inbound = sidecars[hop["span_id"].as_str().unwrap()];
        for s in [server, hop, inbound] {
            assert_eq!(&s["trace_id"], trace, "one trace from the client to the app: {s}");
        }
    }
    assert_eq!(servers.len(), clients.len(), "nothing traced the client did not sample");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_a_zero_ratio_the_load_tester_and_the_gateway_keep_exactly_the_failed_requests() {
    let receiver = Receiver::start();
    let good = Pod::start("127.0.0.84", &["--name", "good"]);
    let bad = Pod::start("127.0.0.85", &["--name", "bad", "--error-rate", "1.0"]);
    let zero = format!(
        "tracing:\n  otlp_endpoint: http://127.0.0.1:{}\n  sample_ratio: 0%\n  always: [error]\n",
        receiver.port
    );
    // One try, round robin, no ejection: every other request answers 500 to the client.
    let gw = Gateway::start(&format!(
        "{zero}clusters:\n  - {{ name: c, endpoints: [\"{}\", \"{}\"], lb: round_robin, outlier: {{ consecutive_failures: 1000 }} }}\n\
         routes:\n  - {{ name: r, match: {{}}, cluster: c, retry: {{ attempts: 1 }} }}\n",
        good.addr, bad.addr
    ));
    let dir = TempDir::new("lt-errors");
    let (addr, dir_path) = (gw.addr, dir.0.path().to_path_buf());
    let report = tokio::task::spawn_blocking(move || load(&dir_path, addr, &zero))
        .await
        .unwrap();
    let failed = report["statuses"]["500"].as_u64().unwrap_or(0);
    let ok = report["statuses"]["200"].as_u64().unwrap_or(0);
    assert!(failed > 0 && ok > 0, "{}", report["statuses"]);
    let spans = receiver.settle();
    let clients = service(&spans, "arena-loadtest", 3);
    assert_eq!(
        clients.len() as u64,
        failed,
        "exactly the failed requests: {clients:#?}"
    );
    let servers: HashMap<&str, &Value> = service(&spans, "arena-gateway", 2)
        .into_iter()
        .map(|s| (s["parent_span_id"].as_str().unwrap(), s))
        .collect();
    assert_eq!(servers.len() as u64, failed, "the gateway keeps the same ones");
    for client in &clients {
        assert_eq!(client["status"], 2, "an error span: {client}");
        assert_eq!(client["attributes"]["http.response.status_code"], 500);
        assert_eq!(client["attributes"]["error.type"], "status");
        let server = servers[client["span_id"].as_str().unwrap()];
        assert_eq!(server["trace_id"], client["trace_id"]);
        assert_eq!(server["attributes"]["http.response.status_code"], 500);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_runs_from_the_gateway_through_the_sidecar_to_the_app() {
    let receiver = Receiver::start();
    let app = Pod::start("127.0.0.1", &["--name", "app"]);
    let tracing = format!(
        "tracing:\n  otlp_endpoint: http://127.0.0.1:{}\n  sample_ratio: 100%\n",
        receiver.port
    );
    let sc = Sidecar::start("127.0.0.81", app.addr, "  max_concurrency: 8\n", &tracing);
    sc.wait_ready(200);
    let gw = Gateway::start(&format!(
        "{tracing}clusters:\n  - {{ name: c, endpoints: [\"{}\"] }}\nroutes:\n  - {{ name: r, match: {{}}, cluster: c }}\n",
        sc.addr
    ));
    let c = client();
    let r = get(&c, gw.addr, "/v1/matches", &[("x-request-id", "through")]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let spans = receiver.settle();
    let of = |service: &str, kind: i64| -> Vec<&serde_json::Value> {
        spans
            .iter()
            .filter(|s| s["resource"]["service.name"] == service && s["kind"] == kind)
            .collect()
    };
    let (gw_server, gw_try) = (of("arena-gateway", 2), of("arena-gateway", 3));
    let (sc_server, sc_try) = (of("arena-sidecar", 2), of("arena-sidecar", 3));
    assert_eq!(
        (gw_server.len(), gw_try.len(), sc_server.len(), sc_try.len()),
        (1, 1, 1, 1),
        "{spans:#?}"
    );
    let trace_id = &gw_server[0]["trace_id"];
    for s in [gw_try[0], sc_server[0], sc_try[0]] {
        assert_eq!(&s["trace_id"], trace_id, "one trace: {s}");
    }
    assert_eq!(gw_try[0]["parent_span_id"], gw_server[0]["span_id"]);
    assert_eq!(
        sc_server[0]["parent_span_id"], gw_try[0]["span_id"],
        "the gateway's try is the sidecar's parent"
    );
    assert_eq!(sc_try[0]["parent_span_id"], sc_server[0]["span_id"]);
    assert_eq!(sc_try[0]["attributes"]["server.address"], "127.0.0.1");
    assert_eq!(sc_try[0]["attributes"]["http.response.status_code"], 200);
    assert_eq!(sc_server[0]["attributes"]["arena.request_id"], "through");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shed_is_kept_whatever_the_ratio() {
    let receiver = Receiver::start();
    let port = arena_testkit::free_addr("127.0.0.1").unwrap();
    // No app on that port: every request is shed `starting`.
    let tracing = format!(
        "tracing:\n  otlp_endpoint: http://127.0.0.1:{}\n  sample_ratio: 0%\n",
        receiver.port
    );
    let sc = Sidecar::start("127.0.0.82", port, "", &tracing);
    let c = client();
    let r = get(&c, sc.addr, "/v1/matches", &[("x-request-id", "shed-1")]).await;
    assert_eq!(r.status, 503);
    let spans = receiver.settle();
    assert_eq!(spans.len(), 1, "{spans:#?}");
    assert_eq!(spans[0]["attributes"]["arena.request_id"], "shed-1");
    assert_eq!(spans[0]["attributes"]["error.type"], "starting");
    assert_eq!(spans[0]["status"], 2);
}
