//! Grey releases under load against a real gateway: short versions of the bundled
//! `canary-progression` and `bad-canary` scenarios (real pods and gateway on loopback through
//! the fleet). Asserts what happened — the steps walked, the rollback, users never moving back,
//! no client error with `retry_on_stable` — never how fast.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Mutex;
use std::time::Duration;

use common::{json_report, loadtest_command, output_within, run_args, scratch, text, write};

/// A few seconds of load plus the fleet's start and stop: far more than enough, but bounded.
const LIMIT: Duration = Duration::from_secs(90);

/// Two fleets at once would share two cores: one run at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// The fleet and release of both runs; `{steps}`, `{interval}` and the pods' addresses vary.
fn scenario(name: &str, ips: [&str; 4], release: &str, rest: &str) -> String {
    format!(
        r#"name: {name}
mode: open
http: {{ connections: 16, timeout: 3s }}
requests:
  - {{ method: GET, path: "/v1/matches/{{m}}/live", headers: {{ x-user-id: "{{user_id}}" }} }}
vars:
  m: {{ pick: [a, b] }}
  user_id: {{ range: [1, 500] }}
fleet:
  pods:
    - {{ name: stable-1, ip: {}, args: [--latency, 2ms] }}
    - {{ name: stable-2, ip: {}, args: [--latency, 2ms] }}
    - {{ name: canary-1, ip: {}, args: [--version, v2, --latency, 2ms] }}
    - {{ name: canary-2, ip: {}, args: [--version, v2, --latency, 2ms] }}
  gateway:
    config: |
      clusters:
        - {{ name: match-api, endpoints: ["${{pod:stable-1}}", "${{pod:stable-2}}"] }}
        - {{ name: match-api-v2, endpoints: ["${{pod:canary-1}}", "${{pod:canary-2}}"] }}
      routes:
        - {{ name: matches, match: {{ path_prefix: /v1/matches }}, cluster: match-api, timeout: 2s }}
      releases:
        - name: match-api-v2
          routes: [matches]
          stable: match-api
          canary: match-api-v2
          sticky: header:x-user-id
{release}          on_failure: rollback
          retry_on_stable: true
release: {{ name: match-api-v2, poll: 50ms, users: x-user-id }}
{rest}"#,
        ips[0], ips[1], ips[2], ips[3]
    )
}

/// Runs `body` as `file` in a fresh scratch dir; the JSON report, stdout, and the HTML page.
fn run(name: &str, body: &str) -> (serde_json::Value, String, String) {
    let _one = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = scratch(name);
    let file = write(&dir, &format!("{name}.yaml"), body);
    let mut cmd = loadtest_command();
    cmd.args(run_args(&file, &dir, &[]));
    let out = output_within(cmd, LIMIT);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    // Exit 2 only when this busy machine made the generator lag (as in the smoke test).
    let lagged = out.status.code() == Some(2) && stdout.contains("fell behind its schedule");
    assert!(out.status.code() == Some(0) || lagged, "{}", text(&out));
    let report = json_report(&dir);
    let html = std::fs::read_dir(&*dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "html"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (report, stdout, html)
}

fn num(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Answers of `version` of the release in a window.
fn answered(window: &serde_json::Value, version: &str) -> f64 {
    window["versions"]
        .get(format!("match-api-v2={version}"))
        .map_or(0.0, num)
}

#[test]
fn a_healthy_canary_walks_its_steps_and_no_user_moves_back() {
    let body = scenario(
        "canary-short",
        ["127.0.0.181", "127.0.0.182", "127.0.0.183", "127.0.0.184"],
        // A generous p99 ratio: this run is about the steps, not a latency blip of a busy machine.
        "          steps: [10%, 50%, 100%]\n          step_interval: 1s\n          analysis: { window: 1s, min_requests: 5, max_p99_ratio: 10 }\n",
        "stages: [{ duration: 7s, rate: 200 }]\nthresholds: [\"users_moved_back == 0\", \"final_state == promoted\", \"errors <= 0%\"]\n",
    );
    let (report, stdout, html) = run("canary-short", &body);
    let rel = &report["release"];
    assert_eq!(rel["final"]["state"], "promoted", "{rel}");
    assert_eq!(num(&rel["final"]["weight"]), 100.0, "{rel}");
    // The weight only grew, one step after the other.
    let weights: Vec<f64> = rel["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| num(&t["weight"]))
        .collect();
    assert!(weights.windows(2).all(|w| w[0] <= w[1]), "{weights:?}");
    for step in [10.0, 50.0, 100.0] {
        assert!(weights.contains(&step), "step {step} in {weights:?}");
    }
    assert!(
        rel["transitions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["to"] == "promoted"),
        "{rel}"
    );
    assert_eq!(rel["failed_polls"], 0, "{rel}");
    assert!(rel["rollback"].is_null(), "{rel}");

    let users = &report["users"];
    assert_eq!(users["header"], "x-user-id");
    assert_eq!(
        num(&users["moved_to_stable"]),
        0.0,
        "nobody moved canary → stable: {users}"
    );
    assert!(
        num(&users["moved_to_canary"]) > 0.0,
        "the growing weight took users: {users}"
    );
    assert!(num(&users["users_seen"]) > 100.0, "{users}");
    let windows = report["windows"].as_array().unwrap();
    assert!(windows.iter().all(|w| num(&w["moves_to_stable"]) == 0.0));

    // Both versions answered; once promoted, only the canary does.
    assert_eq!(report["totals"]["errors"], 0);
    let versions: Vec<&str> = report["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert!(versions.contains(&"match-api-v2=stable") && versions.contains(&"match-api-v2=canary"));
    let last = windows.iter().rev().find(|w| num(&w["requests"]) > 50.0).unwrap();
    assert_eq!(answered(last, "stable"), 0.0, "after the promotion: {last}");
    assert!(answered(last, "canary") > 0.0, "{last}");

    for line in [
        "  versions   match-api-v2=",
        "  release    match-api-v2: promoted at 100% (step 3/3)",
        "  weight     ",
        "  users      ",
        " 0 moved canary → stable",
    ] {
        assert!(stdout.contains(line), "`{line}` in:\n{stdout}");
    }
    for part in ["chart-versions", "chart-release", "chart-users", "Grey release"] {
        assert!(html.contains(part), "{part} in the HTML page");
    }
}

#[test]
fn a_failing_canary_is_rolled_back_and_clients_see_no_error() {
    let body = scenario(
        "bad-canary-short",
        ["127.0.0.185", "127.0.0.186", "127.0.0.187", "127.0.0.188"],
        "          steps: [20%, 50%, 100%]\n          step_interval: 20s\n          analysis: { window: 1s, min_requests: 5, max_p99_ratio: 3 }\n",
        "stages: [{ duration: 7s, rate: 200 }]\nfaults:\n  - { at: 3s, pod: canary-1, set: { error_rate: 0.2, latency_ms: 40 }, label: canary fails }\n  - { at: 3s, pod: canary-2, set: { error_rate: 0.2, latency_ms: 40 } }\nthresholds: [\"errors <= 0%\", \"final_state == rolled_back\", \"final_weight <= 0%\", \"rollback_after < 60s\"]\n",
    );
    let (report, stdout, html) = run("bad-canary-short", &body);
    let rel = &report["release"];
    assert_eq!(rel["final"]["state"], "rolled_back", "{rel}");
    assert_eq!(num(&rel["final"]["weight"]), 0.0, "{rel}");
    let rb = &rel["rollback"];
    assert_eq!(rb["fault"], "canary fails", "{rel}");
    assert_eq!(num(&rb["from_weight"]), 20.0, "{rel}");
    assert!(num(&rb["after_s"]) >= 0.0, "{rb}");
    assert_eq!(rb["source"], "history", "the gateway's transition was seen: {rb}");
    let to_zero = rel["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["to"] == "rolled_back")
        .unwrap_or_else(|| panic!("no rollback transition: {rel}"));
    assert_eq!(num(&to_zero["weight"]), 0.0);
    assert!(to_zero["reason"].as_str().unwrap().contains("breach"), "{to_zero}");

    // retry_on_stable: every failed canary try was answered by stable.
    assert_eq!(report["totals"]["errors"], 0, "{}", report["error_samples"]);
    assert_eq!(
        report["statuses"].as_object().unwrap().keys().collect::<Vec<_>>(),
        ["200"]
    );
    // The canary's users came back to stable, and after the rollback nobody got the canary.
    let users = &report["users"];
    assert!(num(&users["moved_to_stable"]) > 0.0, "{users}");
    let back = num(&rb["at_s"]).ceil();
    let windows = report["windows"].as_array().unwrap();
    let before: f64 = windows
        .iter()
        .filter(|w| num(&w["t"]) < 3.0)
        .map(|w| answered(w, "canary"))
        .sum();
    assert!(before > 0.0, "the canary served before the fault");
    // Sticky cohorts: before the fault nobody left the canary.
    for w in windows.iter().filter(|w| num(&w["t"]) < 3.0) {
        assert_eq!(num(&w["moves_to_stable"]), 0.0, "before the fault: {w}");
    }
    for w in windows.iter().filter(|w| num(&w["t"]) > back) {
        assert_eq!(answered(w, "canary"), 0.0, "after the rollback: {w}");
    }

    assert!(stdout.contains("  rollback   weight 20% → 0 at "), "{stdout}");
    assert!(stdout.contains("after `canary fails`"), "{stdout}");
    assert!(html.contains("chart-release") && html.contains("rolled_back"));
}

#[test]
fn check_points_at_release_mistakes() {
    let dir = scratch("release-check");
    let bundled = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/bad-canary.yaml");
    let bad = std::fs::read_to_string(bundled)
        .unwrap()
        .replace(
            "release: { name: match-api-v2, poll: 100ms, users: x-user-id }",
            "release: { name: match-api-v2, poll: 20s, users: x-session-id }",
        )
        .replace("\"rollback_after < 2s\"", "\"rollback_after < 2\"");
    let file = write(&dir, "bad.yaml", &bad);
    let out = loadtest_command().arg("check").arg(&file).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let line = |start: &str| 1 + bad.lines().position(|l| l.starts_with(start)).unwrap();
    let (release, threshold) = (line("release:"), line("  - \"rollback_after"));
    for (what, at) in [
        (
            "`poll` must be between 10ms and 10s, found 20s",
            format!("bad.yaml:{release}:38"),
        ),
        (
            "no request sends header `x-session-id`",
            format!("bad.yaml:{release}:50"),
        ),
        ("a latency threshold needs a unit", format!("bad.yaml:{threshold}:24")),
    ] {
        let found = err.split("error: ").any(|b| b.contains(what) && b.contains(&at));
        assert!(found, "`{what}` at {at} in:\n{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
