//! The tester's own abusive connections against a real gateway with tight client limits: a
//! short slowloris run (trickled heads, an idle keep-alive crowd over one client's cap, a body
//! trickled past the body timeout) must leave the good traffic without errors, count how the
//! gateway ended every abusive connection, and report the p99 without and with the attack.
//! Counts and the presence of figures only, never timings.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{json_report, loadtest_command, output_within, run_args, scratch, text, write};

/// A 7 s load plus the fleet's start and stop: far more than enough, but bounded.
const LIMIT: Duration = Duration::from_secs(90);

const SCENARIO: &str = r#"name: slowloris-short
mode: open
http: { connections: 8, timeout: 3s }
stages:
  - { duration: 7s, rate: 50 }
requests:
  - { method: GET, path: "/v1/matches/{m}/live" }
vars:
  m: { pick: [a, b] }
fleet:
  pods:
    - { name: pod-1, ip: 127.0.0.171, args: [--latency, 1ms] }
  gateway:
    config: |
      server:
        client: { header_timeout: 1s, keepalive_timeout: 1s, body_timeout: 1s, max_connections_per_ip: 20 }
      clusters:
        - { name: api, endpoints: ["${pod:pod-1}"] }
      routes:
        - { name: api, match: { path_prefix: /v1 }, cluster: api }
abuse:
  - { kind: slow_headers, connections: 30, byte_every: 200ms, from: 127.0.0.172-127.0.0.173, start: 2s, stop: 5s }
  - { kind: idle_keepalive, connections: 30, from: 127.0.0.174, path: /v1/matches, start: 2s, stop: 5s, label: idle crowd }
  - { kind: slow_body, connections: 5, byte_every: 2s, from: 127.0.0.175, path: /v1/verify, start: 2s, stop: 5s }
thresholds: ["errors <= 0%", "attack_errors <= 0%", "abuse_408 > 0", "abuse_refused > 0"]
"#;

fn num(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// Every opened connection ended exactly one way, and the counts fit the attack.
fn consistent(a: &serde_json::Value) {
    let c = &a["counts"];
    let ended = num(&c["refused"]) + num(&c["closed"]) + num(&c["stopped"]) + num(&c["errors"]);
    assert_eq!(num(&c["opened"]), ended, "{a}");
    assert!(num(&c["peak_held"]) <= num(&a["held_target"]), "{a}");
    assert!(num(&c["stopped"]) <= num(&a["held_target"]), "{a}");
    let answered: u64 = c["answered"].as_object().unwrap().values().map(num).sum();
    assert!(answered <= num(&c["opened"]), "{a}");
}

#[test]
fn a_short_slowloris_is_counted_and_reported_beside_the_baseline() {
    let dir = scratch("abuse");
    let file = write(&dir, "slowloris-short.yaml", SCENARIO);
    let mut cmd = loadtest_command();
    cmd.args(run_args(&file, &dir, &[]));
    let out = output_within(cmd, LIMIT);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // As for the smoke test: exit 2 only when this busy machine made the generator lag.
    let lagged = out.status.code() == Some(2) && stdout.contains("fell behind its schedule");
    assert!(out.status.code() == Some(0) || lagged, "{}", text(&out));
    let report = json_report(&dir);
    assert_eq!(report["totals"]["errors"], 0, "{}", text(&out));
    assert_eq!(report["totals"]["requests"], report["intended_total"]);

    let abuse = &report["abuse"];
    for phase in ["baseline", "attack"] {
        let p = &abuse[phase];
        assert!(num(&p["requests"]) > 0 && num(&p["seconds"]) > 0, "{phase}: {p}");
        assert!(num(&p["latency_us"]["p99"]) > 0, "{phase}: {p}");
        assert_eq!(p["errors"], 0, "{phase}: {p}");
    }
    let phases = num(&abuse["baseline"]["requests"]) + num(&abuse["attack"]["requests"]);
    assert_eq!(
        phases,
        num(&report["totals"]["requests"]),
        "the phases split every request"
    );
    assert!(abuse["p99_ratio"].as_f64().is_some_and(|r| r > 0.0), "{abuse}");

    let (slow, idle, body) = (&abuse["attacks"][0], &abuse["attacks"][1], &abuse["attacks"][2]);
    assert_eq!(
        (slow["kind"].as_str(), idle["kind"].as_str()),
        (Some("slow_headers"), Some("idle_keepalive"))
    );
    consistent(slow);
    consistent(idle);
    consistent(body);
    // The header timeout cut trickled heads with a 408, and they came back.
    let answered_408 = num(&slow["counts"]["answered"]["408"]);
    assert!(
        answered_408 > 0 && num(&slow["counts"]["closed"]) >= answered_408,
        "{slow}"
    );
    assert!(
        num(&slow["counts"]["opened"]) > 30,
        "re-opened after the gateway closed them: {slow}"
    );
    // 30 from one address over a cap of 20: refused; the held ones got their answer, then closed.
    let refused = num(&idle["counts"]["refused"]) + num(&idle["counts"]["connect_failed"]);
    assert!(refused > 0, "{idle}");
    assert!(
        num(&idle["counts"]["answered"]["200"]) > 0 && num(&idle["counts"]["closed"]) > 0,
        "{idle}"
    );
    assert!(
        num(&idle["counts"]["peak_held"]) <= 20,
        "the per-client cap held: {idle}"
    );
    // A body trickled slower than the body timeout: the gateway answers (an error) and closes.
    let body_errors: u64 = body["counts"]["answered"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(status, _)| status.starts_with('4'))
        .map(|(_, n)| num(n))
        .sum();
    assert!(body_errors > 0 && num(&body["counts"]["closed"]) > 0, "{body}");
    assert!(
        abuse["windows"]
            .as_array()
            .is_some_and(|w| w.iter().any(|w| num(&w["held"]) > 0)),
        "{abuse}"
    );

    // Both p99s side by side in the summary and the HTML page; the attacks are markers.
    for line in [
        "  baseline   p50 ",
        "  attack     p50 ",
        "  p99        without the attack ",
        "  abuse      idle crowd",
    ] {
        assert!(stdout.contains(line), "`{line}` in:\n{stdout}");
    }
    let labels: Vec<&str> = report["markers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["label"].as_str())
        .collect();
    assert!(
        labels.contains(&"idle crowd") && labels.contains(&"idle crowd ends"),
        "{labels:?}"
    );
    let html = std::fs::read_dir(&*dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "html"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .unwrap();
    assert!(
        html.contains("Without and with the attack") && html.contains("chart-abuse"),
        "HTML section"
    );
    assert!(html.contains("baseline (no attack)") && html.contains("under attack"));
    // Nothing the fleet started outlives the run: no pod of this build on the scenario's
    // address (other checkouts may run the same tests), nobody left on the gateway's port.
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_arena-loadtest"))
        .parent()
        .unwrap();
    let pods = format!("{}/arena-pod --listen 127.0.0.171", bin_dir.display());
    let left = std::process::Command::new("pgrep")
        .args(["-f", &pods])
        .output()
        .unwrap();
    assert!(
        left.stdout.is_empty(),
        "pods left: {}",
        String::from_utf8_lossy(&left.stdout)
    );
    let gateway = report["target"].as_str().unwrap().trim_start_matches("http://");
    let gateway: std::net::SocketAddr = gateway.trim_end_matches('/').parse().unwrap();
    assert!(
        std::net::TcpStream::connect_timeout(&gateway, Duration::from_secs(1)).is_err(),
        "the gateway still listens on {gateway}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_points_at_abuse_mistakes() {
    let dir = scratch("abuse-check");
    let bad = SCENARIO
        .replace(
            "kind: slow_headers, connections: 30",
            "kind: slow_headers, connections: 0",
        )
        .replace("from: 127.0.0.174,", "from: 127.0.0.174-127.0.0.170,")
        .replace(
            "path: /v1/matches, start: 2s",
            "path: /v1/matches, byte_every: 1s, start: 2s",
        );
    let file = write(&dir, "bad.yaml", &bad);
    let out = loadtest_command().arg("check").arg(&file).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for (what, at) in [
        ("`connections` must be between 1 and 100000", "bad.yaml:22:40"),
        ("runs backwards", "bad.yaml:23:52"),
        ("`byte_every` applies to slow_headers and slow_body", "bad.yaml:23:108"),
    ] {
        let found = err.split("error: ").any(|b| b.contains(what) && b.contains(at));
        assert!(found, "`{what}` at {at} in:\n{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
