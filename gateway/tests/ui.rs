//! The admin web UI in a real browser: a gateway with pods, a function and a release under
//! steady traffic, driven in headless Chromium by `tests/ui/ui.test.mjs` (playwright-core,
//! installed with the browser by `deploy/local/tools-setup.sh`). Every section shows real
//! numbers; a failing pod shows as ejected; a release button without the token fails saying
//! so, and with it a rollback sets the canary to 0 % on the page and in the gateway; with
//! `read_token: required` the page asks for the token before it shows anything. Screenshots
//! go to `target/ui-screenshots/`. Missing Chromium or driver fails the test: CI installs both.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::faas::repo_root;
use support::gateway::{Gateway, Pod, TOKEN};
use support::http::{client, get, HttpClient};
use support::procs::Proc;

const CHROMIUM: &str = "/usr/bin/chromium";

/// The browser, the driver's directory and the screenshot directory; panics (never skips)
/// when the browser or the driver is missing.
fn tools() -> (PathBuf, PathBuf, PathBuf) {
    let root = repo_root();
    let chromium = PathBuf::from(std::env::var("ARENA_CHROMIUM").unwrap_or_else(|_| CHROMIUM.into()));
    let driver = root.join("target/tools/ui");
    assert!(
        chromium.is_file(),
        "{} missing: run deploy/local/tools-setup.sh (Debian package `chromium`)",
        chromium.display()
    );
    assert!(
        driver.join("node_modules/playwright-core/package.json").is_file(),
        "playwright-core missing in {}: run deploy/local/tools-setup.sh",
        driver.display()
    );
    (chromium, driver, root.join("target/ui-screenshots"))
}

/// Steady traffic on both routes (users spread over the release's cohorts) until dropped.
struct Traffic {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Traffic {
    fn start(c: &HttpClient, gw: &Gateway) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let (c, addr, flag) = (c.clone(), gw.addr, Arc::clone(&stop));
        let task = tokio::spawn(async move {
            let mut n: u64 = 0;
            while !flag.load(Ordering::Relaxed) {
                let mut set = tokio::task::JoinSet::new();
                for _ in 0..4 {
                    n += 1;
                    let (c, user) = (c.clone(), format!("user-{}", n % 500));
                    let path = ["/v1/matches", "/v1/live", "/v1/stats"][(n % 3) as usize];
                    set.spawn(async move { get(&c, addr, path, &[("x-user-id", user.as_str())]).await });
                }
                while set.join_next().await.is_some() {}
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Traffic { stop, task }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.abort();
    }
}

/// Runs the browser script in `mode` with `env`, bounded; panics with its output on failure.
fn run_browser(mode: &str, admin: std::net::SocketAddr, env: &[(&str, String)]) -> String {
    let (chromium, driver, shots) = tools();
    let script = repo_root().join("gateway/tests/ui/ui.test.mjs");
    let mut cmd = Command::new("node");
    cmd.arg(&script)
        .env("UI_MODE", mode)
        .env("UI_ADMIN", format!("http://{admin}"))
        .env("UI_TOKEN", TOKEN)
        .env("UI_TOOLS", &driver)
        .env("UI_CHROMIUM", &chromium)
        .env("UI_SHOTS", &shots);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut node = Proc::spawn(&format!("ui-{mode}"), cmd);
    let deadline = Instant::now() + Duration::from_secs(200);
    let status = loop {
        if let Some(s) = node.try_status() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the browser test ran over 200 s:\n{}",
            node.log_tail(80)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = node.log_tail(200);
    assert!(status.success(), "the browser test failed ({status}):\n{out}");
    assert!(out.contains("\"ok\":true"), "no success line:\n{out}");
    out
}

/// Waits until `/ui/state` (with `auth`) shows traffic on every route.
async fn wait_for_traffic(c: &HttpClient, gw: &Gateway, auth: &[(&str, &str)]) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let s = get(c, gw.admin, "/ui/state", auth).await.json();
        let routes = s["routes"].as_array().cloned().unwrap_or_default();
        if !routes.is_empty() && routes.iter().all(|r| r["live"]["rate"].as_f64().unwrap_or(0.0) > 0.0) {
            return;
        }
        assert!(Instant::now() < deadline, "no traffic in /ui/state: {s}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Stable `api` (round robin, so a failing pod keeps getting tries and is ejected after three
/// failures in a row), canary `api-v2`, function `live-fn` (an HTTP function: a sample pod),
/// routes `matches` (released at 20 %, no automatic verdict in the way of the operator's),
/// `live` (falls back to the function, which keeps a warm share) and `stats` (one try, no
/// retry: the failing pod's 500s reach clients until it is ejected, so the page's recent
/// errors have lines whatever the other routes' retries rescue).
fn body(stable: &[&Pod], canary: &Pod, function: &Pod) -> String {
    let eps: Vec<String> = stable.iter().map(|p| format!("\"{}\"", p.addr)).collect();
    format!(
        "clusters:
  - name: api
    endpoints: [{}]
    lb: round_robin
    outlier: {{ consecutive_failures: 3, base_ejection: 60s, max_ejection: 60s }}
  - {{ name: api-v2, endpoints: [\"{}\"] }}
faas:
  - {{ name: live-fn, kind: http, url: \"http://{}\", timeout: 2s, max_concurrency: 32 }}
routes:
  - {{ name: matches, match: {{ path_prefix: /v1/matches }}, cluster: api }}
  - {{ name: stats, match: {{ path_prefix: /v1/stats }}, cluster: api, retry: {{ attempts: 1 }} }}
  - name: live
    match: {{ path_prefix: /v1/live }}
    cluster: api
    fallback: {{ faas: live-fn, warm_share: 20% }}
releases:
  - name: v2
    routes: [matches]
    stable: api
    canary: api-v2
    sticky: header:x-user-id
    weight: 20%
    analysis: {{ window: 10s, min_requests: 10, max_error_rate_delta: 90%, max_p99_ratio: 1000 }}
",
        eps.join(", "),
        canary.addr,
        function.addr
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_live_state_an_ejected_pod_and_rolls_a_release_back_with_the_token() {
    tools();
    let a = Pod::start("127.0.0.180", &["--name", "api-a", "--load-report"]);
    let b = Pod::start("127.0.0.181", &["--name", "api-b", "--load-report"]);
    let fault = Pod::start("127.0.0.182", &["--name", "api-c", "--load-report"]);
    let canary = Pod::start("127.0.0.183", &["--name", "canary", "--version", "v2"]);
    let function = Pod::start("127.0.0.184", &["--name", "live-fn"]);
    let gw = Gateway::start(&body(&[&a, &b, &fault], &canary, &function));
    let c = client();

    // Without a browser first: the page is self-contained and locked down, its state is JSON.
    let page = get(&c, gw.admin, "/ui", &[]).await;
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").unwrap().starts_with("text/html"));
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'sha256-"),
        "{csp}"
    );
    assert!(!page.text().contains("<script src"), "the script is inlined");

    let traffic = Traffic::start(&c, &gw);
    wait_for_traffic(&c, &gw, &[]).await;
    let s = get(&c, gw.admin, "/ui/state", &[]).await.json();
    for key in [
        "routes",
        "clusters",
        "functions",
        "releases",
        "errors",
        "reload",
        "total",
    ] {
        assert!(!s[key].is_null(), "/ui/state lacks {key}: {s}");
    }
    assert_eq!(s["releases"][0]["weight"], 20.0);

    let out = tokio::task::spawn_blocking({
        let env = vec![
            ("UI_FAULT_POD", fault.addr.to_string()),
            ("UI_BAD_CANARY", canary.addr.to_string()),
        ];
        let admin = gw.admin;
        move || run_browser("full", admin, &env)
    })
    .await
    .unwrap();
    drop(traffic);
    println!("{out}");

    // What the page showed is what the gateway holds.
    let r = get(&c, gw.admin, "/releases/v2", &[]).await.json();
    assert_eq!(r["state"], "rolled_back");
    assert_eq!(r["weight"], 0.0);
    let s = get(&c, gw.admin, "/ui/state", &[]).await.json();
    let pods = s["clusters"][0]["pods"].as_array().unwrap();
    let faulted = pods.iter().find(|p| p["address"] == fault.addr.to_string()).unwrap();
    assert_eq!(faulted["state"], "ejected");
    assert!(s["errors"].as_array().is_some_and(|e| !e.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_read_token_required_the_page_asks_for_the_token_before_showing_anything() {
    tools();
    let a = Pod::start("127.0.0.185", &["--name", "api-a"]);
    let b = Pod::start("127.0.0.186", &["--name", "api-b"]);
    let canary = Pod::start("127.0.0.187", &["--name", "canary", "--version", "v2"]);
    let function = Pod::start("127.0.0.188", &["--name", "live-fn"]);
    let gw = Gateway::start_admin("  read_token: required\n", &body(&[&a, &b], &canary, &function), &[]);
    let c = client();
    let auth = ("authorization", "Bearer test-token");

    // A browser's navigation (no token) gets the page's code with the 401, not its data;
    // other clients get the JSON 401 of every read.
    let html = [("accept", "text/html,application/xhtml+xml,*/*;q=0.8")];
    let page = get(&c, gw.admin, "/ui", &html).await;
    assert_eq!(page.status, 401);
    assert_eq!(page.header("www-authenticate"), Some("Bearer"));
    assert!(page.text().contains("<!doctype html>"));
    let tool = get(&c, gw.admin, "/ui", &[]).await;
    assert_eq!(
        (tool.status, tool.json()["error"].clone()),
        (401, "unauthorized".into())
    );
    let state = get(&c, gw.admin, "/ui/state", &[]).await;
    assert_eq!(state.status, 401);
    assert!(!state.text().contains("\"routes\""));
    assert_eq!(get(&c, gw.admin, "/ui/state", &[auth]).await.status, 200);

    let traffic = Traffic::start(&c, &gw);
    wait_for_traffic(&c, &gw, &[auth]).await;
    let admin = gw.admin;
    let out = tokio::task::spawn_blocking(move || run_browser("auth", admin, &[]))
        .await
        .unwrap();
    drop(traffic);
    println!("{out}");
}
