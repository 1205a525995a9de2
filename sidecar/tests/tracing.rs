//! One trace across the mesh: client → gateway → sidecar → app, each hop's span the parent of
//! the next (the gateway's try is the sidecar's server span's parent), both exporting to one
//! real OTLP receiver; a shed answer is kept at a 0 % ratio.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::support::gateway::{Gateway, Pod};
use common::support::http::{client, get};
use common::support::otlp::Receiver;
use common::Sidecar;

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
