//! The inbound side with real processes: pass-through with load reports, the app's start,
//! the concurrency limit and its shed answers, a stuck app cut, captured, unreadied, unlived
//! and replayed, and `check`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::support::gateway::Pod;
use common::support::http::{client, get, send};
use common::{orca, Sidecar};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_through_with_a_load_report_and_the_request_id() {
    let pod = Pod::start("127.0.0.1", &["--name", "a"]);
    let sc = Sidecar::start("127.0.0.1", pod.addr, "  max_concurrency: 8\n", "");
    sc.wait_ready(200);
    let c = client();
    let r = get(&c, sc.addr, "/v1/matches", &[("x-request-id", "trace-1")]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-pod"), Some("a"));
    let report = r.header("endpoint-load-metrics").expect("load report").to_string();
    // The pod sends no report of its own: this one is the sidecar's (nothing else in flight).
    assert_eq!(orca(&report, "named_metrics.limit"), Some(8.0), "{report}");
    assert_eq!(orca(&report, "application_utilization"), Some(0.0), "{report}");
    assert_eq!(orca(&report, "named_metrics.inflight"), Some(0.0), "{report}");
    assert_eq!(orca(&report, "named_metrics.queued"), Some(0.0), "{report}");
    // The id reached the app: the pod echoes what it got.
    assert_eq!(r.header("x-request-id"), Some("trace-1"));
    // Counted when the request ends, just after its answer went out.
    arena_testkit::wait::until("the request counted", Duration::from_secs(10), || {
        sc.metric("arena_sidecar_inbound_requests_total{outcome=\"ok\"}") == 1.0
    })
    .unwrap();

    // An app that reports keeps its own numbers, merged.
    let reporting = Pod::start("127.0.0.1", &["--load-report", "--report-utilization", "0.7"]);
    let sc2 = Sidecar::start("127.0.0.1", reporting.addr, "  max_concurrency: 100\n", "");
    sc2.wait_ready(200);
    let r = get(&c, sc2.addr, "/v1/matches", &[]).await;
    let report = r.header("endpoint-load-metrics").unwrap().to_string();
    assert!(orca(&report, "application_utilization").unwrap() >= 0.7, "{report}");
    assert_eq!(orca(&report, "named_metrics.limit"), Some(100.0), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_the_app_answers_requests_shed_as_starting() {
    let port = arena_testkit::free_addr("127.0.0.1").unwrap();
    let sc = Sidecar::start("127.0.0.1", port, "", "");
    let c = client();
    let r = get(&c, sc.addr, "/v1/matches", &[]).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("x-arena-overloaded"), Some("starting"));
    assert!(orca(r.header("endpoint-load-metrics").unwrap(), "application_utilization").unwrap() >= 1.0);
    assert_eq!(r.json()["reason"], "starting");
    assert_eq!(sc.admin_get("/readyz").status, 503);
    assert_eq!(sc.admin_get("/livez").status, 200, "a starting app is not dead");
    // The app comes up on its port: ready within a check.
    let pod = Pod::start_at(&port.to_string(), &[]);
    sc.wait_ready(200);
    assert_eq!(get(&c, sc.addr, "/v1/matches", &[]).await.status, 200);
    // It goes away: the sidecar sheds (never ran: the gateway may go elsewhere).
    drop(pod);
    let r = get(&c, sc.addr, "/v1/matches", &[]).await;
    assert_eq!(r.status, 503);
    assert!(
        matches!(r.header("x-arena-overloaded"), Some("app_unavailable" | "starting")),
        "{:?}",
        r.headers
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limit_holds_and_sheds_beyond_the_queue() {
    let pod = Pod::start("127.0.0.1", &["--latency", "1500ms"]);
    let sc = Sidecar::start(
        "127.0.0.1",
        pod.addr,
        "  max_concurrency: 2\n  queue: { max: 1, timeout: 200ms }\n  request_timeout: 5s\n",
        "",
    );
    sc.wait_ready(200);
    let c = client();
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let (c, addr) = (c.clone(), sc.addr);
            tokio::spawn(async move {
                send(
                    &c,
                    http::Method::GET,
                    addr,
                    "/v1/matches",
                    &[],
                    b"",
                    Duration::from_secs(10),
                )
                .await
                .unwrap()
            })
        })
        .collect();
    // While they run, the app never holds more than the limit.
    let mut peak = 0;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let stats = get(&c, pod.addr, "/_pod/stats", &[]).await.json();
        peak = peak.max(stats["in_flight"].as_u64().unwrap());
    }
    let mut ok = 0;
    let mut reasons = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            200 => ok += 1,
            503 => reasons.push(r.header("x-arena-overloaded").unwrap().to_string()),
            s => panic!("unexpected {s}: {}", r.text()),
        }
    }
    assert_eq!(ok, 2, "two slots: {reasons:?}");
    assert!(peak <= 2, "the app held {peak}");
    reasons.sort();
    // One waited its 200 ms in the queue; the others found the queue full.
    assert_eq!(reasons, ["queue_full", "queue_full", "queue_full", "queue_timeout"]);
    assert_eq!(
        sc.metric("arena_sidecar_inbound_shed_total{reason=\"queue_full\"}"),
        3.0
    );
    assert_eq!(sc.load()["limit"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_app_is_cut_captured_unreadied_restarted_and_replayed() {
    let pod = Pod::start("127.0.0.1", &["--name", "stuck"]);
    let scratch = common::support::procs::TempDir::new("captures");
    let captures = scratch.0.file("captures");
    let extra = format!(
        "  request_timeout: 300ms\n  queue: {{ timeout: 50ms }}\n  stuck_after: 3\n  liveness_grace: 1s\n  capture: {{ dir: {}, max_files: 2, max_body_bytes: 8 }}\n",
        captures.display()
    );
    let sc = Sidecar::start("127.0.0.1", pod.addr, &extra, "");
    sc.wait_ready(200);
    pod.set(r#"{"stuck": true}"#);
    let c = client();
    for i in 0..3 {
        let body = format!("{{\"match\":{i},\"payload\":\"0123456789\"}}");
        let r = send(
            &c,
            http::Method::POST,
            sc.addr,
            &format!("/v1/verify?n={i}"),
            &[
                ("authorization", "Bearer secret-token"),
                ("x-request-id", &format!("req-{i}")),
            ],
            body.as_bytes(),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert_eq!(r.status, 504, "request {i}: {}", r.text());
        assert_eq!(r.json()["error"], "app_timeout");
        assert!(
            !r.text().contains("127.0.0.1"),
            "the app's address stays inside: {}",
            r.text()
        );
    }
    // Unready and reported full once stuck; the other requests shed while one probe waits.
    sc.wait_ready(503);
    assert_eq!(sc.load()["state"], "stuck");
    // The ring keeps the newest two captures.
    // The writer works behind the requests: wait for the last one's file, and the ring's trim.
    let captured = || -> Vec<std::path::PathBuf> {
        let mut files: Vec<_> = std::fs::read_dir(&captures)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    };
    arena_testkit::wait::until("two captures, the last req-2", Duration::from_secs(10), || {
        let files = captured();
        files.len() == 2 && files[1].display().to_string().contains("req-2")
    })
    .unwrap();
    let files = captured();
    let newest: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&files[1]).unwrap()).unwrap();
    assert_eq!(newest["id"], "req-2");
    assert_eq!(newest["method"], "POST");
    assert_eq!(newest["path"], "/v1/verify?n=2");
    assert_eq!(newest["body_b64"], "eyJtYXRjaCI="); // the first 8 bytes: {"match"
    assert_eq!(newest["body_truncated"], true);
    let headers = newest["headers"].to_string();
    assert!(
        headers.contains("<redacted>") && !headers.contains("secret-token"),
        "{headers}"
    );
    assert!(
        files[0].display().to_string().contains("req-1"),
        "oldest kept is req-1: {files:?}"
    );

    // Stuck past the grace: /livez fails (the kubelet restarts the app container).
    arena_testkit::wait::until("livez 503", Duration::from_secs(10), || {
        sc.admin_get("/livez").status == 503
    })
    .unwrap();
    // "Restarted": the app answers again; the next request (the probe) gets through.
    pod.set(r#"{"stuck": false}"#);
    let r = get(&c, sc.addr, "/v1/matches", &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    sc.wait_ready(200);
    assert_eq!(sc.admin_get("/livez").status, 200);
    assert_eq!(sc.metric("arena_sidecar_timeouts_total"), 3.0);

    // Replay sends the two captures to the app.
    let before = get(&c, pod.addr, "/_pod/stats", &[]).await.json()["requests"]
        .as_u64()
        .unwrap();
    let out = std::process::Command::new(arena_testkit::bin("arena-sidecar").unwrap())
        .arg("replay")
        .arg(&captures)
        .args(["--to", &format!("http://{}", pod.addr)])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("req-1 POST /v1/verify?n=1 → 200"), "{stdout}");
    assert!(stdout.contains("req-2 POST /v1/verify?n=2 → 200"), "{stdout}");
    let after = get(&c, pod.addr, "/_pod/stats", &[]).await.json()["requests"]
        .as_u64()
        .unwrap();
    assert_eq!(after - before, 2);
}

#[test]
fn check_reports_every_problem_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "inbound:\n  listen: 127.0.0.1:9100\n  app: 127.0.0.1:8080\n  max_concurency: 4\nservr: {}\n",
    )
    .unwrap();
    let out = std::process::Command::new(arena_testkit::bin("arena-sidecar").unwrap())
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("bad.yaml:4:3"), "{err}");
    assert!(err.contains("max_concurrency"), "a hint with the right key: {err}");
    assert!(
        err.contains("bad.yaml:5:1") && err.contains("did you mean `server`"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_applies_good_changes_and_rejects_bad_ones() {
    let pod = Pod::start("127.0.0.1", &[]);
    let sc = Sidecar::start("127.0.0.1", pod.addr, "  max_concurrency: 4\n", "");
    sc.wait_ready(200);
    assert_eq!(sc.load()["limit"], 4);
    let text = std::fs::read_to_string(&sc.config).unwrap();
    // A good change, picked up by the file watch.
    std::fs::write(&sc.config, text.replace("max_concurrency: 4", "max_concurrency: 9")).unwrap();
    arena_testkit::wait::until("the new limit", Duration::from_secs(10), || sc.load()["limit"] == 9).unwrap();
    // A bad one (SIGHUP): rejected, counted, the running config stays.
    std::fs::write(&sc.config, text.replace("max_concurrency: 4", "max_concurrency: -1")).unwrap();
    sc.proc.signal("HUP");
    arena_testkit::wait::until("the rejection counted", Duration::from_secs(10), || {
        sc.admin_get("/metrics")
            .text()
            .contains("arena_sidecar_config_reloads_total{result=\"rejected\"")
    })
    .unwrap();
    assert_eq!(sc.load()["limit"], 9);
    let c = client();
    assert_eq!(get(&c, sc.addr, "/v1/matches", &[]).await.status, 200);
}
