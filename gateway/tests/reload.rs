//! Hot reload under traffic: 50 reloads, some invalid, while clients keep sending requests —
//! zero failed requests, rejected files change nothing, and every trigger (admin, SIGHUP, file
//! watch) works.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::gateway::{Gateway, Pod, TOKEN};
use support::http::{client, get, post, send};

fn body(pods: &[String], timeout: &str, lb: &str, extra_route: bool) -> String {
    let mut s = format!(
        "clusters:\n  - name: match-api\n    endpoints: [{}]\n    lb: {lb}\nroutes:\n  - name: matches\n    match: {{ path_prefix: /v1/matches }}\n    cluster: match-api\n    timeout: {timeout}\n",
        pods.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join(", ")
    );
    if extra_route {
        s.push_str("  - name: players\n    match: { path_prefix: /v1/players }\n    cluster: match-api\n");
    }
    s
}

const INVALID: [&str; 3] = [
    // unknown cluster
    "clusters:\n  - name: match-api\n    endpoints: [\"127.0.0.1:1\"]\nroutes:\n  - name: matches\n    match: { path_prefix: /v1/matches }\n    cluster: match-apii\n",
    // YAML syntax error
    "clusters: [\n",
    // unknown key and bad address
    "clusters:\n  - name: match-api\n    endpoints: [\"pod-a\"]\n    lb_policy: p2c\nroutes:\n  - name: matches\n    match: { path_prefix: /v1/matches }\n    cluster: match-api\n",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_reloads_under_load_lose_no_request() {
    let pods: Vec<Pod> = (81..=83)
        .map(|i| Pod::start(&format!("127.0.0.{i}"), &["--latency", "1ms"]))
        .collect();
    let addrs: Vec<String> = pods.iter().map(|p| p.addr.to_string()).collect();
    let gw = Gateway::start(&body(&addrs, "2s", "p2c_ewma", false));

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (stop, ok, failed, addr) = (Arc::clone(&stop), Arc::clone(&ok), Arc::clone(&failed), gw.addr);
        clients.push(tokio::spawn(async move {
            let c = client();
            while !stop.load(Ordering::Relaxed) {
                match send(
                    &c,
                    http::Method::GET,
                    addr,
                    "/v1/matches/m1/live",
                    &[],
                    b"",
                    Duration::from_secs(5),
                )
                .await
                {
                    Ok(r) if r.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    Ok(r) => {
                        eprintln!("failed request: {} {}", r.status, r.text());
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                    Err(e) => {
                        eprintln!("failed request: {e}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }

    let c = client();
    let auth = format!("Bearer {TOKEN}");
    let mut accepted = 0;
    for i in 0..50 {
        let invalid = i % 5 == 4;
        if invalid {
            gw.write_body(INVALID[i % 3]);
        } else {
            // Vary pods, timeouts, balancer and routes; pod 83 comes and goes.
            let set = if i % 2 == 0 { &addrs[..] } else { &addrs[..2] };
            let lb = ["p2c_ewma", "least_inflight", "round_robin"][i % 3];
            gw.write_body(&body(set, if i % 2 == 0 { "2s" } else { "3s" }, lb, i % 3 == 0));
        }
        let r = post(&c, gw.admin, "/reload", &[("authorization", auth.as_str())]).await;
        let j = r.json();
        if invalid {
            assert_eq!(r.status, 400, "{j}");
            assert_eq!(j["result"], "rejected");
            let loc = j["errors"][0]["location"].as_str().unwrap();
            assert!(
                loc.rsplit(':').next().unwrap().parse::<u32>().is_ok(),
                "location without line:col: {loc}"
            );
        } else {
            assert_eq!(r.status, 200, "{j}");
            accepted += 1;
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in clients {
        t.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!("{accepted} reloads accepted, 10 rejected; {ok} requests ok, {failed} failed");
    assert_eq!(failed, 0);
    assert!(ok > 100, "too little traffic during the reloads: {ok}");

    // The last file was invalid: the previous valid one (i = 48) still serves.
    let cfg = get(&c, gw.admin, "/config", &[]).await.json();
    assert_eq!(cfg["reload"]["last_result"], "rejected");
    assert_eq!(cfg["config"]["routes"][0]["timeout"], "2s");
    let metrics = get(&c, gw.admin, "/metrics", &[]).await.text();
    assert!(
        metrics.contains("arena_config_reloads_total{result=\"rejected\",trigger=\"admin\"} 10"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_and_file_watch_reload_and_token_is_required() {
    let pod = Pod::start("127.0.0.84", &[]);
    let addrs = vec![pod.addr.to_string()];
    let gw = Gateway::start(&body(&addrs, "2s", "p2c_ewma", false));
    let c = client();
    let generation = |v: serde_json::Value| v["generation"].as_u64().unwrap();

    // No or wrong token: refused, nothing changes.
    assert_eq!(post(&c, gw.admin, "/reload", &[]).await.status, 401);
    assert_eq!(
        post(&c, gw.admin, "/reload", &[("authorization", "Bearer nope")])
            .await
            .status,
        401
    );
    assert_eq!(generation(get(&c, gw.admin, "/config", &[]).await.json()), 1);

    // File watch: saving a new route makes it live without any signal.
    assert_eq!(get(&c, gw.addr, "/v1/players/1/stats", &[]).await.status, 404);
    gw.write_body(&body(&addrs, "2s", "p2c_ewma", true));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while get(&c, gw.addr, "/v1/players/1/stats", &[]).await.status != 200 {
        assert!(tokio::time::Instant::now() < deadline, "file watch did not reload");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after_watch = generation(get(&c, gw.admin, "/config", &[]).await.json());
    assert_eq!(after_watch, 2);

    // SIGHUP reloads even an unchanged file.
    gw.proc.signal("HUP");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while generation(get(&c, gw.admin, "/config", &[]).await.json()) != 3 {
        assert!(tokio::time::Instant::now() < deadline, "SIGHUP did not reload");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A bad file saved by the watcher is rejected and traffic keeps flowing.
    gw.write_body(INVALID[0]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let cfg = get(&c, gw.admin, "/config", &[]).await.json();
        if cfg["reload"]["last_result"] == "rejected" {
            assert_eq!(generation(cfg), 3);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "watch did not try the bad file");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(get(&c, gw.addr, "/v1/players/1/stats", &[]).await.status, 200);
}

/// Polls `/config` until `done` holds for it (10 s at most).
async fn wait_config(
    c: &support::http::HttpClient,
    gw: &Gateway,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if done(&get(c, gw.admin, "/config", &[]).await.json()) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configmap_symlink_swaps_are_watched_every_time() {
    let pod = Pod::start("127.0.0.85", &[]);
    let addrs = vec![pod.addr.to_string()];
    let gw = Gateway::start_configmap(&body(&addrs, "2s", "p2c_ewma", false));
    let c = client();
    assert_eq!(get(&c, gw.addr, "/v1/players/1/stats", &[]).await.status, 404);

    // First ConfigMap update: the new route goes live.
    gw.update_configmap(2, &body(&addrs, "2s", "p2c_ewma", true));
    wait_config(&c, &gw, "first ConfigMap update not reloaded", |v| v["generation"] == 2).await;
    assert_eq!(get(&c, gw.addr, "/v1/players/1/stats", &[]).await.status, 200);

    // A bad update is rejected once, and unrelated events in the directory do not retry it.
    gw.update_configmap(3, INVALID[0]);
    wait_config(&c, &gw, "bad ConfigMap update not tried", |v| {
        v["reload"]["last_result"] == "rejected"
    })
    .await;
    let checks = |v: &serde_json::Value| v["reload"]["watch_checks"].as_u64().unwrap();
    let before = checks(&get(&c, gw.admin, "/config", &[]).await.json());
    std::fs::write(gw.config.parent().unwrap().join("unrelated"), "x").unwrap();
    wait_config(&c, &gw, "the watch did not look at the unrelated event", |v| {
        checks(v) > before
    })
    .await;
    let metrics = get(&c, gw.admin, "/metrics", &[]).await.text();
    assert!(
        metrics.contains("arena_config_reloads_total{result=\"rejected\",trigger=\"watch\"} 1\n"),
        "{metrics}"
    );

    // Later updates are still seen although the directory first watched is long gone.
    gw.update_configmap(4, &body(&addrs, "2s", "p2c_ewma", false));
    wait_config(&c, &gw, "third ConfigMap update not reloaded", |v| v["generation"] == 3).await;
    assert_eq!(get(&c, gw.addr, "/v1/players/1/stats", &[]).await.status, 404);
    assert_eq!(get(&c, gw.addr, "/v1/matches", &[]).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_behind_a_symlinked_config_are_watched() {
    let pod = Pod::start("127.0.0.86", &[]);
    let addrs = vec![pod.addr.to_string()];
    let gw = Gateway::start_symlinked(&body(&addrs, "2s", "p2c_ewma", false));
    let c = client();
    assert_eq!(get(&c, gw.addr, "/v1/players/1/stats", &[]).await.status, 404);
    // The target is edited in place, in its own directory: no event beside the link.
    gw.write_real(&body(&addrs, "2s", "p2c_ewma", true));
    wait_config(&c, &gw, "edit behind the symlink not reloaded", |v| {
        v["generation"] == 2
    })
    .await;
    assert_eq!(get(&c, gw.addr, "/v1/players/1/stats", &[]).await.status, 200);
}
