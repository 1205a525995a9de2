//! Scenarios that bring up their own fleet (gateway + pods as real processes) and break it on a
//! timeline: the run must serve through a pod crash, record the fault markers, and `check`
//! must point at fleet/fault mistakes with `file:line:col`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Output};

use arena_testkit::Scratch;
use common::{json_report, loadtest_command, run_args, scratch, text, write};

/// Runs `scenario`, written to `file` in a fresh scratch dir `fleet-{name}`, with the report in
/// that dir too (removed by the caller once it has looked).
fn run_fleet(name: &str, file: &str, scenario: &str) -> (Scratch, Output) {
    let dir = scratch(&format!("fleet-{name}"));
    let file = write(&dir, file, scenario);
    let out = loadtest_command().args(run_args(&file, &dir, &[])).output().unwrap();
    (dir, out)
}

const SCENARIO: &str = r#"name: fleet-crash
mode: open
http: { connections: 16, timeout: 3s }
stages:
  - { duration: 6s, rate: 100 }
requests:
  - { method: GET, path: "/v1/matches/{m}/live" }
vars:
  m: { pick: [a, b] }
fleet:
  pods:
    - { name: pod-1, ip: 127.0.0.151, args: [--latency, 1ms] }
    - { name: pod-2, ip: 127.0.0.152, args: [--latency, 1ms] }
  gateway:
    config: |
      clusters:
        - name: api
          endpoints: ["${pod:pod-1}", "${pod:pod-2}"]
          connect_timeout: 100ms
      routes:
        - name: api
          match: { path_prefix: /v1 }
          cluster: api
          retry: { attempts: 2, on: [connect_failure, reset] }
faults:
  - { at: 2s, pod: pod-2, action: crash, label: "pod-2 crashes" }
  - { at: 4s, pod: pod-2, action: restart }
thresholds: ["errors < 0.1%", "share(127.0.0.151) > 40%"]
"#;

#[test]
fn fleet_survives_a_pod_crash_and_records_markers() {
    let (dir, out) = run_fleet("run", "fleet-crash.yaml", SCENARIO);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(stdout.contains("pod-2 crashes"), "{stdout}");
    assert!(stdout.contains("pod-2 restarts"), "{stdout}");
    let report = json_report(&dir);
    let labels: Vec<String> = report["markers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["label"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(labels, ["pod-2 crashes", "pod-2 restarts"]);
    // Nothing the fleet started outlives the run.
    let left = Command::new("pgrep").args(["-f", "127.0.0.15[12]"]).output().unwrap();
    assert!(
        left.stdout.is_empty(),
        "processes left: {}",
        String::from_utf8_lossy(&left.stdout)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_points_at_fleet_and_fault_mistakes() {
    let dir = scratch("fleet-check");
    let bad = SCENARIO
        .replace("ip: 127.0.0.152", "ip: 10.0.0.2")
        .replace(
            "{ at: 4s, pod: pod-2, action: restart }",
            "{ at: 4s, pod: pod-9, action: restart }",
        )
        .replace("${pod:pod-2}", "${pod:pod-3}");
    let file = write(&dir, "bad.yaml", &bad);
    let out = loadtest_command().arg("check").arg(&file).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("must be a 127.x.y.z address") && err.contains("bad.yaml:13:26"),
        "{err}"
    );
    assert!(err.contains("unknown fleet member `${pod:pod-3}`"), "{err}");
    assert!(
        err.contains("fault names unknown pod `pod-9`") && err.contains("did you mean `pod-1`"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn gateway_restart_fault_brings_it_back() {
    let scenario = SCENARIO
        .replace("name: fleet-crash", "name: fleet-restart")
        .replace("127.0.0.151", "127.0.0.153")
        .replace("127.0.0.152", "127.0.0.154")
        .replace(
            "  - { at: 2s, pod: pod-2, action: crash, label: \"pod-2 crashes\" }\n  - { at: 4s, pod: pod-2, action: restart }\n",
            "  - { at: 2s, action: restart_gateway }\n",
        )
        // A restart drops what is in flight; the run must recover, not be perfect.
        .replace("thresholds: [\"errors < 0.1%\", \"share(127.0.0.153) > 40%\"]", "thresholds: [\"errors < 40%\"]");
    let (dir, out) = run_fleet("restart", "restart.yaml", &scenario);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        stdout.contains("gateway restarts") && !stdout.contains("failed:"),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn gateway_upgrade_fault_serves_every_request() {
    let scenario = SCENARIO
        .replace("name: fleet-crash", "name: fleet-upgrade")
        .replace("127.0.0.151", "127.0.0.156")
        .replace("127.0.0.152", "127.0.0.157")
        .replace(
            "  - { at: 2s, pod: pod-2, action: crash, label: \"pod-2 crashes\" }\n  - { at: 4s, pod: pod-2, action: restart }\n",
            "  - { at: 1s, action: upgrade_gateway }\n  - { at: 3s, action: reload }\n  - { at: 4s, action: upgrade_gateway }\n",
        )
        // Unlike a restart, an upgrade must not lose a single request.
        .replace("thresholds: [\"errors < 0.1%\", \"share(127.0.0.156) > 40%\"]", "thresholds: [\"errors <= 0%\"]");
    assert!(scenario.contains("errors <= 0%") && scenario.contains("upgrade_gateway"));
    let (dir, out) = run_fleet("upgrade", "upgrade.yaml", &scenario);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        stdout.matches("gateway binary upgraded").count() == 2 && !stdout.contains("failed:"),
        "{stdout}"
    );
    let report = json_report(&dir);
    assert_eq!(report["totals"]["errors"], 0, "{report}");
    assert_eq!(report["totals"]["requests"], report["intended_total"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `stop_dns` takes the fleet's DNS server away (the gateway keeps its last good pods and says
/// it is stale) and `start_dns` brings it back on the same address.
#[test]
fn dns_outage_faults_make_discovery_stale_then_fresh() {
    use arena_loadtest::fleet::{http_call, Action, Fleet, FleetHooks};
    let yaml = r#"name: dns-blip
mode: open
stages: [{ duration: 1s, rate: 1 }]
requests: [{ path: /v1/matches }]
fleet:
  pods:
    - { name: pod-1, ip: 127.0.0.155 }
  dns:
    records: { match-api.esports.svc.cluster.local: [pod-1] }
  gateway:
    config: |
      clusters:
        - name: api
          dns: { name: match-api.esports.svc.cluster.local, port: ${pod-port}, record: a, resolver: "${dns}", min_refresh: 200ms, max_refresh: 200ms, timeout: 200ms }
      routes:
        - { name: api, match: { path_prefix: /v1 }, cluster: api }
faults:
  - { at: 0s, action: stop_dns }
  - { at: 1s, action: start_dns }
"#;
    let scenario = arena_loadtest::scenario::load(yaml, "dns-blip.yaml", &FleetHooks).unwrap();
    let faults = scenario.faults.unwrap();
    assert!(matches!(faults[0].action, Action::StopDns), "{faults:?}");
    assert!(matches!(faults[1].action, Action::StartDns), "{faults:?}");
    let mut fleet = Fleet::start(&scenario.fleet.unwrap()).unwrap();
    let admin = fleet.admin().unwrap();
    let target = fleet.target().unwrap();
    let gateway: std::net::SocketAddr = target.trim_start_matches("http://").parse().unwrap();
    let stale = || {
        let (status, body) = http_call(admin, "GET", "/clusters", "", None).unwrap();
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["clusters"][0]["discovery"]["stale"].as_bool().unwrap()
    };
    let wait_for = |want: bool, what: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while stale() != want {
            assert!(std::time::Instant::now() < deadline, "{what}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    assert!(!stale());
    fleet.apply(&faults[0].action).unwrap();
    wait_for(true, "discovery never went stale with DNS down");
    // The last good pod keeps serving.
    assert_eq!(http_call(gateway, "GET", "/v1/matches", "", None).unwrap().0, 200);
    fleet.apply(&faults[1].action).unwrap();
    wait_for(false, "discovery stayed stale after DNS came back");
    assert_eq!(http_call(gateway, "GET", "/v1/matches", "", None).unwrap().0, 200);
}
