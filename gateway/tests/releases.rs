//! Grey releases through the whole gateway, against real pods: the weight split, sticky
//! cohorts while the weight rises, forced headers, a bad canary rolled back on its own with
//! no client error, state across a restart, two gateways agreeing through Redis, the admin
//! API and the `canary` CLI driving every transition, and bad release configs rejected.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use support::gateway::{Gateway, Pod, TOKEN};
use support::http::{client, get, send, HttpClient};
use support::procs::{bin, TempDir};

const AUTH: (&str, &str) = ("authorization", "Bearer test-token");

/// Clusters `api` (stable) and `api-v2` (canary), route `matches`, and a release with `extra`
/// lines (each indented four spaces).
fn body(stable: &Pod, canary: &Pod, extra: &str) -> String {
    format!(
        "clusters:\n  - {{ name: api, endpoints: [\"{}\"] }}\n  - {{ name: api-v2, endpoints: [\"{}\"] }}\nroutes:\n  - {{ name: matches, match: {{ path_prefix: /v1 }}, cluster: api }}\nreleases:\n  - name: v2\n    routes: [matches]\n    stable: api\n    canary: api-v2\n    sticky: header:x-user-id\n{extra}",
        stable.addr, canary.addr
    )
}

/// The version each of `users` lands on (from `x-arena-release`), 64 requests at a time.
async fn versions(c: &HttpClient, gw: &Gateway, users: std::ops::Range<u32>) -> HashMap<u32, String> {
    let mut out = HashMap::new();
    let ids: Vec<u32> = users.collect();
    for chunk in ids.chunks(64) {
        let mut set = tokio::task::JoinSet::new();
        for u in chunk {
            let (c, addr, u) = (c.clone(), gw.addr, *u);
            set.spawn(async move {
                let id = format!("user-{u}");
                let r = get(&c, addr, "/v1/matches", &[("x-user-id", id.as_str())]).await;
                assert_eq!(r.status, 200, "{}", r.text());
                (u, r.header("x-arena-release").unwrap_or("none").to_string())
            });
        }
        while let Some(done) = set.join_next().await {
            let (u, v) = done.unwrap();
            out.insert(u, v);
        }
    }
    out
}

fn canary_share(v: &HashMap<u32, String>) -> f64 {
    let canary = v.values().filter(|x| x.as_str() == "v2=canary").count();
    canary as f64 * 100.0 / v.len() as f64
}

async fn release(c: &HttpClient, gw: &Gateway) -> serde_json::Value {
    get(c, gw.admin, "/releases/v2", &[]).await.json()
}

async fn admin_post(c: &HttpClient, gw: &Gateway, path: &str, body: &str) -> (u16, serde_json::Value) {
    let r = send(
        c,
        http::Method::POST,
        gw.admin,
        path,
        &[AUTH, ("content-type", "application/json")],
        body.as_bytes(),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    (r.status, r.json())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_split_follows_the_weight_and_a_user_never_leaves_the_canary_as_it_grows() {
    let stable = Pod::start("127.0.0.160", &["--name", "stable"]);
    let canary = Pod::start("127.0.0.161", &["--name", "canary", "--version", "v2"]);
    // The split alone: no latency verdict (on a loaded CI box one pod's p99 can pass 1.5× the
    // other's and roll the release back mid-test).
    let gw = Gateway::start(&body(
        &stable,
        &canary,
        "    weight: 10%\n    analysis: { max_p99_ratio: 1000 }\n",
    ));
    let c = client();
    let at10 = versions(&c, &gw, 0..5000).await;
    let share = canary_share(&at10);
    assert!(
        (8.0..=12.0).contains(&share),
        "10% weight gave {share:.2}% canary over 5000 users"
    );
    let (status, _) = admin_post(&c, &gw, "/releases/v2/weight", r#"{"weight": "30%"}"#).await;
    assert_eq!(status, 200);
    let at30 = versions(&c, &gw, 0..5000).await;
    let share = canary_share(&at30);
    assert!((28.0..=32.0).contains(&share), "30% weight gave {share:.2}% canary");
    let moved_back = at10
        .iter()
        .filter(|(u, v)| v.as_str() == "v2=canary" && at30[u] != "v2=canary")
        .count();
    assert_eq!(moved_back, 0, "users on the canary at 10% left it at 30%");
    // The same user asking again gets the same answer (no per-request coin flip).
    let again = versions(&c, &gw, 0..500).await;
    assert!(again.iter().all(|(u, v)| *v == at30[u]));
    // And the canary pod really served them.
    let r = get(
        &c,
        gw.addr,
        "/v1/matches",
        &[("x-user-id", "user-1"), ("x-canary", "1")],
    )
    .await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_headers_win_over_the_cohort() {
    let stable = Pod::start("127.0.0.162", &["--name", "stable"]);
    let canary = Pod::start("127.0.0.163", &["--name", "canary", "--version", "v2"]);
    let extra = "    weight: 0%\n    force:\n      canary: { headers: { x-canary: \"1\" } }\n      stable: { headers: { x-tenant: douyu } }\n";
    let gw = Gateway::start(&body(&stable, &canary, extra));
    let c = client();
    let r = get(&c, gw.addr, "/v1/matches", &[("x-user-id", "u1"), ("x-canary", "1")]).await;
    assert_eq!(r.header("x-arena-release"), Some("v2=canary"));
    assert_eq!(r.header("x-pod-version"), Some("v2"));
    let r = get(&c, gw.addr, "/v1/matches", &[("x-user-id", "u1")]).await;
    assert_eq!(r.header("x-arena-release"), Some("v2=stable"));
    // Never-canary wins over always-canary, and over 100 %.
    let (status, _) = admin_post(&c, &gw, "/releases/v2/promote", "").await;
    assert_eq!(status, 200);
    let r = get(&c, gw.addr, "/v1/matches", &[("x-tenant", "douyu"), ("x-canary", "1")]).await;
    assert_eq!(r.header("x-arena-release"), Some("v2=stable"));
    let r = get(&c, gw.addr, "/v1/matches", &[("x-user-id", "u2")]).await;
    assert_eq!(r.header("x-arena-release"), Some("v2=canary"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_canary_is_rolled_back_on_its_own_and_no_client_sees_its_errors() {
    let stable = Pod::start("127.0.0.164", &["--name", "stable"]);
    let canary = Pod::start("127.0.0.165", &["--name", "canary", "--version", "v2"]);
    let extra = "    steps: [50%, 100%]\n    step_interval: 1h\n    analysis: { window: 10s, min_requests: 50, max_error_rate_delta: 5% }\n";
    let gw = Gateway::start(&body(&stable, &canary, extra));
    let c = client();
    // Healthy first: half the users on the canary, nothing happens.
    let before = versions(&c, &gw, 0..300).await;
    assert!(canary_share(&before) > 30.0);
    assert_eq!(release(&c, &gw).await["state"], "progressing");
    // The canary starts failing 30 % of its requests.
    canary.set(r#"{"error_rate": 0.3}"#);
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut rolled_back = false;
    let mut u = 1000;
    while Instant::now() < deadline && !rolled_back {
        for _ in 0..50 {
            let id = format!("user-{}", u % 300);
            u += 1;
            let r = get(&c, gw.addr, "/v1/matches", &[("x-user-id", id.as_str())]).await;
            *statuses.entry(r.status).or_default() += 1;
        }
        rolled_back = release(&c, &gw).await["state"] == "rolled_back";
    }
    assert!(rolled_back, "never rolled back: {:#}", release(&c, &gw).await);
    assert_eq!(
        statuses.keys().collect::<Vec<_>>(),
        vec![&200],
        "clients saw {statuses:?}"
    );
    let rel = release(&c, &gw).await;
    assert_eq!(rel["weight"], 0.0);
    assert_eq!(rel["last_verdict"]["verdict"], "breach");
    assert_eq!(rel["last_verdict"]["reason"], "error_rate");
    let last = rel["history"].as_array().unwrap().last().unwrap().clone();
    assert!(last["reason"].as_str().unwrap().contains("error rate"), "{last}");
    // Everyone is back on stable, and the metrics say why.
    let after = versions(&c, &gw, 0..300).await;
    assert_eq!(canary_share(&after), 0.0);
    let m = get(&c, gw.admin, "/metrics", &[]).await.text();
    assert!(
        m.contains("arena_release_rollbacks_total{reason=\"error_rate\",release=\"v2\"} 1"),
        "{m}"
    );
    assert!(m.contains("arena_release_weight_percent{release=\"v2\"} 0"), "{m}");
    assert!(
        m.contains("arena_release_phase{phase=\"rolled_back\",release=\"v2\"} 1"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_survives_a_restart() {
    let stable = Pod::start("127.0.0.166", &[]);
    let canary = Pod::start("127.0.0.167", &["--version", "v2"]);
    let dir = TempDir::new("rel-state");
    let file = dir.0.join("releases.json");
    let server = format!("  state_file: {}\n", file.display());
    let text = body(&stable, &canary, "    steps: [5%, 50%, 100%]\n    step_interval: 1h\n");
    let c = client();
    {
        let gw = Gateway::start_with(&server, &text);
        let (status, _) = admin_post(&c, &gw, "/releases/v2/weight", r#"{"weight": "30%"}"#).await;
        assert_eq!(status, 200);
        assert_eq!(release(&c, &gw).await["state"], "paused");
    }
    assert!(file.exists(), "no state file written");
    let gw = Gateway::start_with(&server, &text);
    let rel = release(&c, &gw).await;
    assert_eq!(
        (rel["state"].as_str(), rel["weight"].as_f64()),
        (Some("paused"), Some(30.0)),
        "{rel:#}"
    );
    let reasons: Vec<&str> = rel["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["reason"].as_str())
        .collect();
    assert!(reasons.iter().any(|r| r.contains("30%")), "{reasons:?}");
    // Dropped from the config for a while and put back: it carries on from the file.
    let without = text[..text.find("releases:").unwrap()].to_string();
    gw.write_body(&without);
    wait_for(&c, &gw, |all| all["releases"].as_array().is_some_and(Vec::is_empty)).await;
    gw.write_body(&text);
    wait_for(&c, &gw, |all| {
        all["releases"][0]["weight"] == 30.0 && all["releases"][0]["state"] == "paused"
    })
    .await;
    // A changed rollout (other steps) starts over, as the README says.
    gw.write_body(&body(
        &stable,
        &canary,
        "    steps: [10%, 100%]\n    step_interval: 1h\n",
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rel = release(&c, &gw).await;
        if rel["weight"] == 10.0 && rel["state"] == "progressing" {
            break;
        }
        assert!(Instant::now() < deadline, "reload did not restart the rollout: {rel:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (bounded) until `GET /releases` satisfies `ok`.
async fn wait_for(c: &HttpClient, gw: &Gateway, ok: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let all = get(c, gw.admin, "/releases", &[]).await.json();
        if ok(&all) {
            return;
        }
        assert!(Instant::now() < deadline, "releases never got there: {all:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_sharing_redis_agree_on_the_weight_and_the_rollback() {
    let (_redis, redis_addr) = support::redis::start();
    let stable = Pod::start("127.0.0.168", &[]);
    let canary = Pod::start("127.0.0.169", &["--version", "v2"]);
    let text = format!(
        "redis: {{ url: \"redis://{redis_addr}\", timeout: 100ms }}\n{}",
        body(
            &stable,
            &canary,
            "    steps: [5%, 100%]\n    step_interval: 1h\n    scope: cluster\n"
        )
    );
    let a = Gateway::start(&text);
    let b = Gateway::start(&text);
    let c = client();
    let agree = |want_state: &'static str, want_weight: f64| {
        let c = c.clone();
        let b_admin = b.admin;
        async move {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let rel = get(&c, b_admin, "/releases/v2", &[]).await.json();
                if rel["state"] == want_state && rel["weight"] == want_weight {
                    return;
                }
                assert!(Instant::now() < deadline, "gateway b still shows {rel:#}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let (status, _) = admin_post(&c, &a, "/releases/v2/weight", r#"{"weight": "40%"}"#).await;
    assert_eq!(status, 200);
    agree("paused", 40.0).await;
    let (status, _) = admin_post(&c, &a, "/releases/v2/rollback", r#"{"reason": "bad build"}"#).await;
    assert_eq!(status, 200);
    agree("rolled_back", 0.0).await;
    // b serves the rollback: nobody reaches the canary through it.
    let r = get(&c, b.addr, "/v1/matches", &[("x-user-id", "anyone")]).await;
    assert_eq!(r.header("x-arena-release"), Some("v2=stable"));
}

fn canary_cli(gw: &Gateway, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(bin("arena-gateway"))
        .arg("canary")
        .args(args)
        .args(["--admin", &format!("http://{}", gw.admin)])
        .env("ARENA_ADMIN_TOKEN", TOKEN)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_and_the_admin_api_drive_every_transition() {
    let stable = Pod::start("127.0.0.170", &[]);
    let canary = Pod::start("127.0.0.171", &["--version", "v2"]);
    let gw = Gateway::start(&body(
        &stable,
        &canary,
        "    steps: [5%, 25%, 100%]\n    step_interval: 1h\n",
    ));
    let state = |args: &[&str]| {
        let (ok, out, err) = canary_cli(&gw, args);
        assert!(ok, "canary {args:?}: {err}");
        out
    };
    let status = state(&["status"]);
    assert!(status.contains("v2") && status.contains("progressing"), "{status}");
    state(&["set", "v2", "25%"]);
    let json: serde_json::Value = serde_json::from_str(&state(&["status", "v2", "--json"])).unwrap();
    assert_eq!(
        (json["state"].as_str(), json["weight"].as_f64()),
        (Some("paused"), Some(25.0))
    );
    state(&["resume", "v2"]);
    let json: serde_json::Value = serde_json::from_str(&state(&["status", "v2", "--json"])).unwrap();
    assert_eq!(json["state"], "progressing");
    assert_eq!(json["step"], 2, "resumed at the step of its weight");
    state(&["pause", "v2"]);
    state(&["promote", "v2"]);
    let json: serde_json::Value = serde_json::from_str(&state(&["status", "v2", "--json"])).unwrap();
    assert_eq!(
        (json["state"].as_str(), json["weight"].as_f64()),
        (Some("promoted"), Some(100.0))
    );
    let out = state(&["rollback", "v2", "--reason", "spike in 502s"]);
    assert!(out.contains("rolled_back"), "{out}");
    // Refusals and mistakes are said, with a non-zero exit.
    let (ok, _, err) = canary_cli(&gw, &["resume", "v2"]);
    assert!(!ok && err.contains("rolled back"), "{err}");
    let (ok, _, err) = canary_cli(&gw, &["set", "v2", "150%"]);
    assert!(!ok && err.contains("above 100%"), "{err}");
    let (ok, _, err) = canary_cli(&gw, &["pause", "nope"]);
    assert!(!ok && err.contains("no release `nope`"), "{err}");
    // Without the token, no change.
    let c = client();
    let r = send(
        &c,
        http::Method::POST,
        gw.admin,
        "/releases/v2/promote",
        &[],
        b"",
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(release(&c, &gw).await["state"], "rolled_back");
    // Names may come percent-encoded (the CLI encodes what is not unreserved).
    assert_eq!(get(&c, gw.admin, "/releases/v%32", &[]).await.json()["name"], "v2");
}

#[test]
fn bad_release_configs_are_rejected_with_their_positions() {
    let dir = TempDir::new("rel-bad");
    let path = dir.0.join("gateway.yaml");
    std::fs::write(
        &path,
        "listeners: [{ name: p, address: 127.0.0.1:8080 }]\nclusters:\n  - { name: api, endpoints: [\"127.0.0.1:9\"] }\nroutes:\n  - { name: matches, match: {}, cluster: api }\nreleases:\n  - name: v2\n    routes: [matches, mtaches]\n    stable: api\n    canary: api-v3\n    steps: [5%, 1%, 150%]\n",
    )
    .unwrap();
    let out = std::process::Command::new(bin("arena-gateway"))
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "canary `api-v3` is not a cluster",
        "gateway.yaml:10:13",
        "unknown route `mtaches`",
        "gateway.yaml:8:23",
        "steps must increase",
        "150%",
    ] {
        assert!(err.contains(want), "missing `{want}` in:\n{err}");
    }
}
