//! `dashboards/`: the Prometheus rules pass `promtool check` and their unit tests, the Grafana
//! dashboard is well formed with valid PromQL, and every `arena_*` metric either one queries is
//! exported by a real gateway — `arena_sidecar_*` ones by a real `arena-sidecar` — (so renaming
//! a metric breaks this test, not a match-day dashboard).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use arena_testkit::free_addr;
use saphyr::{LoadableYamlNode, ScalarOwned, YamlOwned};
use serde_json::Value;

use support::faas::repo_root;
use support::gateway::{Gateway, Pod, TOKEN};
use support::http::{client, get, post, HttpClient};
use support::procs::{Proc, TempDir};

const RULES: &str = "dashboards/arena-rules.yaml";
const RULE_TESTS: &str = "dashboards/tests/arena-rules.test.yaml";
const DASHBOARD: &str = "dashboards/arena-gateway.json";

fn path(rel: &str) -> PathBuf {
    repo_root().join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(path(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// Runs `promtool ARGS` in the repository root, killed if it runs longer than a minute.
fn promtool(args: &[&str]) -> Output {
    // deploy/local/tools-setup.sh extracts it here (the Debian package, not installed).
    let bin = repo_root().join("target/tools/prometheus/usr/bin/promtool");
    assert!(
        bin.is_file(),
        "{} not found: run deploy/local/tools-setup.sh",
        bin.display()
    );
    let mut child = Command::new(&bin)
        .args(args)
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // promtool's output is a few lines: it cannot fill the pipes while we poll.
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn assert_success(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A YAML document as JSON, so both files are walked the same way.
fn yaml(rel: &str) -> Value {
    fn conv(y: &YamlOwned) -> Value {
        match y {
            YamlOwned::Value(ScalarOwned::Null) | YamlOwned::BadValue | YamlOwned::Alias(_) => Value::Null,
            YamlOwned::Value(ScalarOwned::Boolean(b)) => Value::Bool(*b),
            YamlOwned::Value(ScalarOwned::Integer(i)) => Value::from(*i),
            YamlOwned::Value(ScalarOwned::FloatingPoint(f)) => Value::from(f.into_inner()),
            YamlOwned::Value(ScalarOwned::String(s)) | YamlOwned::Representation(s, _, _) => Value::from(s.as_str()),
            YamlOwned::Sequence(items) => Value::Array(items.iter().map(conv).collect()),
            YamlOwned::Mapping(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| {
                        let key = match conv(k) {
                            Value::String(s) => s,
                            other => other.to_string(),
                        };
                        (key, conv(v))
                    })
                    .collect(),
            ),
            YamlOwned::Tagged(_, inner) => conv(inner),
        }
    }
    let docs = YamlOwned::load_from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    assert_eq!(docs.len(), 1, "{rel}: one YAML document expected");
    conv(&docs[0])
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

/// Every rule of the rules file (recording and alerting), in file order.
fn rules() -> Vec<Value> {
    let doc = yaml(RULES);
    let groups = doc["groups"].as_array().expect("rules file: `groups` list");
    groups
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("group without `rules`").clone())
        .collect()
}

/// `arena_*` metric names in PromQL text: a name starts at `arena_` not preceded by a name
/// character; recording-rule names (`arena:...`) are not metric names and are skipped.
fn metric_names(text: &str, out: &mut BTreeSet<String>) {
    let bytes = text.as_bytes();
    let name_char = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
    let mut i = 0;
    while let Some(off) = text[i..].find("arena_") {
        let start = i + off;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        let preceded = start > 0 && name_char(bytes[start - 1]);
        let recording = end < bytes.len() && bytes[end] == b':';
        if !preceded && !recording {
            out.insert(text[start..end].to_string());
        }
        i = end;
    }
}

#[test]
fn metric_names_are_extracted_from_promql() {
    let mut names = BTreeSet::new();
    metric_names(
        "histogram_quantile(0.99, sum by (le) (rate(arena_request_duration_seconds_bucket{route=~\"$route\"}[5m]))) / arena:requests:rate5m + my_arena_x + arena_config_generation",
        &mut names,
    );
    let want: BTreeSet<String> = ["arena_request_duration_seconds_bucket", "arena_config_generation"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(names, want);
}

#[test]
fn rules_pass_promtool_check_and_their_unit_tests() {
    let check = promtool(&["check", "rules", RULES]);
    assert_success("promtool check rules", &check);
    let tests = promtool(&["test", "rules", RULE_TESTS]);
    assert_success("promtool test rules", &tests);
    assert!(
        String::from_utf8_lossy(&tests.stdout).contains("SUCCESS"),
        "{}",
        String::from_utf8_lossy(&tests.stdout)
    );
}

#[test]
fn every_alert_is_labelled_annotated_and_tested_firing_and_quiet() {
    let tests = yaml(RULE_TESTS);
    let cases = tests["tests"].as_array().expect("test file: `tests` list");
    // alertname → (has a case where it fires, has a case where it stays quiet)
    let mut seen: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    let mut valued: BTreeSet<String> = BTreeSet::new();
    for case in cases {
        for t in case["alert_rule_test"].as_array().into_iter().flatten() {
            let e = seen.entry(str_of(t, "alertname").to_string()).or_default();
            let firing = t["exp_alerts"].as_array().is_some_and(|a| !a.is_empty());
            if firing {
                e.0 = true;
            } else {
                e.1 = true;
            }
        }
        for t in case["promql_expr_test"].as_array().into_iter().flatten() {
            valued.insert(str_of(t, "expr").to_string());
        }
    }

    let rules = rules();
    let mut alerts = 0;
    for rule in &rules {
        if let Some(record) = rule["record"].as_str() {
            assert!(
                record.starts_with("arena:"),
                "recording rule `{record}`: use the arena: prefix"
            );
            assert!(
                valued.iter().any(|e| e.starts_with(record)),
                "recording rule `{record}` has no promql_expr_test in {RULE_TESTS}"
            );
            continue;
        }
        let name = str_of(rule, "alert");
        assert!(!name.is_empty(), "rule is neither record nor alert: {rule}");
        alerts += 1;
        let severity = str_of(&rule["labels"], "severity");
        assert!(
            ["warning", "critical"].contains(&severity),
            "alert {name}: severity `{severity}`"
        );
        for key in ["summary", "description"] {
            assert!(
                !str_of(&rule["annotations"], key).trim().is_empty(),
                "alert {name}: no `{key}` annotation"
            );
        }
        let (fires, quiet) = seen.get(name).copied().unwrap_or_default();
        assert!(fires, "alert {name}: no unit test where it fires");
        assert!(quiet, "alert {name}: no unit test where it stays quiet");
    }
    assert!(alerts >= 10, "only {alerts} alerts");
    let readme = read("dashboards/README.md");
    for rule in &rules {
        if let Some(name) = rule["alert"].as_str() {
            assert!(
                readme.contains(name),
                "alert {name} has no runbook line in dashboards/README.md"
            );
        }
    }
}

fn dashboard() -> Value {
    serde_json::from_str(&read(DASHBOARD)).unwrap_or_else(|e| panic!("{DASHBOARD}: {e}"))
}

/// Every panel, rows' nested panels included.
fn panels(dash: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    for p in dash["panels"].as_array().expect("dashboard: `panels` list") {
        all.push(p);
        all.extend(p["panels"].as_array().into_iter().flatten());
    }
    all
}

/// Every PromQL text of the dashboard: panel and annotation `expr`s and the template variables'
/// `label_values(...)` series selectors.
fn dashboard_exprs(dash: &Value) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, x) in map {
                    match (k.as_str(), x) {
                        ("expr", Value::String(s)) => out.push(s.clone()),
                        _ => walk(x, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&dash["panels"], &mut out);
    walk(&dash["annotations"], &mut out);
    for var in dash["templating"]["list"].as_array().into_iter().flatten() {
        if var["type"] == "query" {
            let def = str_of(var, "definition");
            let inner = def
                .strip_prefix("label_values(")
                .and_then(|s| s.rsplit_once(','))
                .map(|(selector, _)| selector.trim());
            out.push(inner.unwrap_or_else(|| panic!("variable query `{def}`")).to_string());
        }
    }
    out
}

#[test]
fn dashboard_is_well_formed_with_valid_promql() {
    let dash = dashboard();
    assert!(!str_of(&dash, "title").is_empty());
    assert!(!str_of(&dash, "uid").is_empty());
    assert!(dash["schemaVersion"].as_u64().unwrap_or(0) >= 36, "schemaVersion");

    let vars = dash["templating"]["list"].as_array().expect("templating.list");
    let var = |name: &str| {
        vars.iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("template variable `{name}` missing"))
    };
    assert_eq!(var("datasource")["type"], "datasource");
    assert_eq!(var("datasource")["query"], "prometheus");
    for name in ["route", "cluster", "sidecar"] {
        let v = var(name);
        assert_eq!(v["type"], "query", "{name}");
        assert_eq!(v["datasource"]["uid"], "${datasource}", "{name}");
        assert!(str_of(v, "definition").starts_with("label_values("), "{name}");
    }
    let var_names: BTreeSet<&str> = vars.iter().filter_map(|v| v["name"].as_str()).collect();

    let all = panels(&dash);
    let mut ids = BTreeSet::new();
    let mut cells: BTreeMap<(u64, u64), &str> = BTreeMap::new();
    let mut queried = 0;
    for p in &all {
        let title = str_of(p, "title");
        let id = p["id"].as_u64().unwrap_or_else(|| panic!("panel `{title}` without id"));
        assert!(ids.insert(id), "panel id {id} used twice (`{title}`)");
        let g = &p["gridPos"];
        let (x, y, w, h) = (
            g["x"].as_u64().unwrap(),
            g["y"].as_u64().unwrap(),
            g["w"].as_u64().unwrap(),
            g["h"].as_u64().unwrap(),
        );
        assert!(w > 0 && h > 0 && x + w <= 24, "panel `{title}` gridPos {g}");
        for cx in x..x + w {
            for cy in y..y + h {
                if let Some(other) = cells.insert((cx, cy), title) {
                    panic!("panels `{other}` and `{title}` overlap");
                }
            }
        }
        if p["type"] == "row" {
            continue;
        }
        assert!(!title.is_empty(), "panel {id} without title");
        assert_eq!(p["datasource"]["type"], "prometheus", "panel `{title}`");
        assert_eq!(p["datasource"]["uid"], "${datasource}", "panel `{title}`");
        let targets = p["targets"].as_array().filter(|t| !t.is_empty());
        let targets = targets.unwrap_or_else(|| panic!("panel `{title}` has no targets"));
        let mut refs = BTreeSet::new();
        for t in targets {
            assert!(
                !str_of(t, "expr").trim().is_empty(),
                "panel `{title}`: target without expr"
            );
            assert!(refs.insert(str_of(t, "refId")), "panel `{title}`: duplicate refId");
            if !t["datasource"].is_null() {
                assert_eq!(t["datasource"], p["datasource"], "panel `{title}`");
            }
        }
        queried += 1;
    }
    assert!(queried >= 20, "only {queried} panels with queries");

    // Every `$variable` is defined (or a Grafana built-in), and every query parses: promtool
    // checks them as recording rules with the variables filled in.
    let exprs = dashboard_exprs(&dash);
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (n, e) in exprs.iter().enumerate() {
        for (i, _) in e.match_indices('$') {
            let name: String = e[i + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            assert!(
                name.starts_with("__") || var_names.contains(name.as_str()),
                "undefined variable `${name}` in `{e}`"
            );
        }
        let filled = e
            .replace("$__rate_interval", "5m")
            .replace("$__interval", "1m")
            .replace("$__range", "1h")
            .replace("$instance", ".*")
            .replace("$sidecar", ".*")
            .replace("$route", ".*")
            .replace("$cluster", ".*");
        rules.push_str(&format!(
            "      - record: dashboard:expr:{n}\n        expr: {}\n",
            serde_json::to_string(&filled).unwrap()
        ));
    }
    let dir = TempDir::new("dash-promql");
    let file = dir.0.join("dashboard-exprs.yaml");
    std::fs::write(&file, &rules).unwrap();
    let out = promtool(&["check", "rules", file.to_str().unwrap()]);
    assert_success(&format!("promtool check rules (dashboard queries)\n{rules}"), &out);
}

/// What a `/metrics` scrape exports: sample names, and family name → type from `# TYPE`.
struct Exported {
    samples: BTreeSet<String>,
    families: BTreeMap<String, String>,
}

impl Exported {
    /// Both scrapes' names (the families of several processes seen as one).
    fn merge(mut self, other: Exported) -> Exported {
        self.samples.extend(other.samples);
        self.families.extend(other.families);
        self
    }

    fn parse(text: &str) -> Exported {
        let mut samples = BTreeSet::new();
        let mut families = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split_whitespace();
                if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                    families.insert(name.to_string(), kind.to_string());
                }
            } else if !line.starts_with('#') && !line.trim().is_empty() {
                let end = line.find(['{', ' ']).unwrap_or(line.len());
                samples.insert(line[..end].to_string());
            }
        }
        Exported { samples, families }
    }

    /// The family a queried name belongs to (`x_bucket` / `x_sum` / `x_count` of histogram `x`).
    fn family_of(&self, name: &str) -> Option<String> {
        if self.families.contains_key(name) {
            return Some(name.to_string());
        }
        ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
            let base = name.strip_suffix(suffix)?;
            (self.families.get(base).map(String::as_str) == Some("histogram")).then(|| base.to_string())
        })
    }

    fn has(&self, name: &str) -> bool {
        self.samples.contains(name) || self.family_of(name).is_some()
    }
}

/// Families the live scrape below cannot produce cheaply. Each must still be registered in
/// gateway/src/metrics.rs under that exact name. Empty today: every family is triggered.
const NOT_TRIGGERED: &[&str] = &[];

/// A gateway config whose traffic makes every metric family appear: plain, hedged,
/// rate-limited and retried routes, a FaaS fallback whose function is down, and a DNS
/// cluster whose name never resolves (`.invalid`, through a resolver that is not there).
fn config(matches: &Pod, live: &[Pod]) -> String {
    let dead = || free_addr("127.0.0.1").unwrap();
    let live_eps: Vec<String> = live.iter().map(|p| format!("\"{}\"", p.addr)).collect();
    format!(
        "faas:
  - name: verify-fn
    kind: http
    url: http://{fn_addr}
    timeout: 2s
clusters:
  - name: match-api
    endpoints: [\"{matches}\"]
  - name: match-api-v2
    endpoints: [\"{matches}\"]
  - name: live-api
    endpoints: [{live}]
  - name: broken
    endpoints: [\"{b1}\", \"{b2}\"]
  - name: player-api
    dns: {{ name: players.arena.invalid, port: 9100, record: a, resolver: \"{resolver}\", timeout: 200ms, min_refresh: 1s, max_refresh: 2s }}
routes:
  - name: live
    match: {{ path_prefix: /v1/matches/m1/live }}
    cluster: live-api
    hedge: {{ after: 20ms, max_extra: 1 }}
  - name: matches
    match: {{ path_prefix: /v1/matches }}
    cluster: match-api
  - name: players
    match: {{ path_prefix: /v1/players }}
    cluster: match-api
    rate_limit: {{ requests_per_second: 1, burst: 1, key: route }}
  - name: verify
    match: {{ path_prefix: /v1/verify }}
    cluster: broken
    timeout: 5s
    retry: {{ attempts: 2, on: [connect_failure] }}
    fallback: {{ faas: verify-fn }}
  - name: stats
    match: {{ path_prefix: /v1/stats }}
    cluster: player-api
releases:
  - {{ name: match-api-v2, routes: [matches], stable: match-api, canary: match-api-v2, weight: 50% }}
",
        fn_addr = dead(),
        matches = matches.addr,
        live = live_eps.join(", "),
        b1 = dead(),
        b2 = dead(),
        resolver = dead(),
    )
}

/// Sidecar families the live sidecars below do not produce cheaply (each must still be
/// registered in sidecar/src/metrics.rs). Empty today: every queried family is triggered.
const SIDECAR_NOT_TRIGGERED: &[&str] = &[];

/// Sidecar families on no dashboard panel on purpose (each registered in sidecar/src/metrics.rs).
const SIDECAR_NOT_SHOWN: &[&str] = &[
    // Registered but never set: it always reads 0 (the value sent is in the load report).
    "arena_sidecar_reported_utilization",
    // Where the CPU reading comes from; the CPU panel has no line without one, /load says why.
    "arena_sidecar_cpu_source",
    // The adaptive limit's inputs (baseline, sample, gradient): /load shows them; the panel
    // shows the limit itself.
    "arena_sidecar_limit_view",
    // The pod port's connection guard and reloads: the gateway's rows show those for the edge;
    // a sidecar only sees the gateway's pooled connections.
    "arena_sidecar_client_connections",
    "arena_sidecar_client_closed_total",
    "arena_sidecar_config_reloads_total",
    "arena_sidecar_cert_reloads_total",
];

async fn scrape(c: &HttpClient, gw: &Gateway) -> String {
    scrape_at(c, gw.admin).await
}

async fn scrape_at(c: &HttpClient, admin: SocketAddr) -> String {
    let r = get(c, admin, "/metrics", &[]).await;
    assert_eq!(r.status, 200);
    r.text()
}

/// A running `arena-sidecar` (the binary beside this test's).
struct Sidecar {
    addr: SocketAddr,
    admin: SocketAddr,
    _proc: Proc,
}

impl Sidecar {
    /// A sidecar on `ip` (a free port) in front of `app`, with extra `inbound:` lines (each
    /// indented two spaces); its config is `dir/NAME.yaml`. Returns once its admin answers.
    fn start(dir: &TempDir, name: &str, ip: &str, app: SocketAddr, inbound_extra: &str) -> Sidecar {
        let addr = free_addr(ip).unwrap();
        let admin = free_addr("127.0.0.1").unwrap();
        let config = dir.0.join(format!("{name}.yaml"));
        std::fs::write(
            &config,
            format!(
                "inbound:\n  listen: {addr}\n  app: {app}\n  app_check: {{ interval: 100ms }}\n{inbound_extra}admin: {{ address: {admin} }}\n"
            ),
        )
        .unwrap();
        let env = [("RUST_LOG", "warn")];
        let proc = arena_testkit::arena::start_sidecar(name, &config, &env).unwrap_or_else(|e| panic!("{e}"));
        let mut proc = Proc(proc);
        let ready = Duration::from_secs(20);
        proc.wait_http_ok(admin, "/healthz", ready)
            .unwrap_or_else(|e| panic!("{e}"));
        proc.wait_listening(addr, ready).unwrap_or_else(|e| panic!("{e}"));
        Sidecar {
            addr,
            admin,
            _proc: proc,
        }
    }
}

/// Two sidecars whose traffic makes every `arena_sidecar_*` family appear; returns their
/// scrapes merged, and the scrape texts (for the failure message). A plaintext one in front
/// of a slow pod (limit 1, queue 1): answered, queued, shed `queue_full` and — the pod stuck —
/// cut at `request_timeout` and captured. One with mTLS on its pod port (certificate expiry,
/// handshake results), sent plaintext once: a refused handshake.
async fn sidecar_scrapes(c: &HttpClient) -> (Exported, String) {
    let dir = TempDir::new("dash-sidecar");
    let pod = Pod::start("127.0.0.134", &["--latency", "300ms"]);
    let captures = dir.0.join("captures");
    let plain = Sidecar::start(
        &dir,
        "sidecar-plain",
        "127.0.0.134",
        pod.addr,
        &format!(
            "  max_concurrency: 1\n  queue: {{ max: 1, timeout: 800ms }}\n  request_timeout: 1s\n  capture: {{ dir: {} }}\n",
            captures.display()
        ),
    );
    let pki = dir.0.join("pki");
    let pki_s = pki.display().to_string();
    support::procs::sidecar_certs(&["init", "--dir", &pki_s]);
    support::procs::sidecar_certs(&[
        "issue",
        "--dir",
        &pki_s,
        "--name",
        "pod",
        "--spiffe-id",
        "spiffe://arena/ns/demo/sa/pod",
    ]);
    let mtls = Sidecar::start(
        &dir,
        "sidecar-mtls",
        "127.0.0.134",
        pod.addr,
        &format!(
            "  tls: {{ ca_file: {p}/ca.pem, cert_file: {p}/pod.pem, key_file: {p}/pod-key.pem }}\n",
            p = pki_s
        ),
    );

    // Ready once its app check has seen the pod's port.
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(c, plain.admin, "/readyz", &[]).await.status != 200 {
        assert!(Instant::now() < deadline, "the sidecar never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(get(c, plain.addr, "/v1/matches", &[]).await.status, 200);
    // Three at once to a 300ms app with one slot and one queue place: one at the app, one
    // queued (then answered), one shed queue_full.
    let (a, b, d) = tokio::join!(
        get(c, plain.addr, "/v1/matches", &[]),
        get(c, plain.addr, "/v1/matches", &[]),
        get(c, plain.addr, "/v1/matches", &[]),
    );
    let mut statuses = [a.status, b.status, d.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 503], "one answered, one queued, one shed");
    // A stuck app: cut at request_timeout (504) and captured.
    pod.set(r#"{"stuck": true}"#);
    assert_eq!(get(c, plain.addr, "/v1/verify", &[]).await.status, 504);
    pod.set(r#"{"stuck": false}"#);

    // Plaintext on the mTLS port: the handshake fails (connections refused, tls_error).
    let port = mtls.addr;
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(port).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(b"GET / HTTP/1.1\r\nhost: pod\r\n\r\n");
        let _ = s.read_to_end(&mut Vec::new());
    })
    .await
    .unwrap();

    // Captures are written off the request path: scrape until everything is there (bounded).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let texts = [scrape_at(c, plain.admin).await, scrape_at(c, mtls.admin).await];
        let written = texts[0]
            .lines()
            .any(|l| l.starts_with("arena_sidecar_captures_total{result=\"written\"} ") && !l.ends_with(" 0"));
        let refused = texts[1]
            .lines()
            .any(|l| l.starts_with("arena_sidecar_client_connections_refused_total{reason=\"tls_error\"}"));
        if (written && refused) || Instant::now() > deadline {
            let exported = Exported::parse(&texts[0]).merge(Exported::parse(&texts[1]));
            return (exported, texts.join("--- (mTLS sidecar)\n"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_and_rules_query_is_exported_by_the_gateway() {
    // Names the dashboard and the rules (and the rule unit tests' input series) query.
    let dash = dashboard();
    let mut dash_names = BTreeSet::new();
    for e in dashboard_exprs(&dash) {
        metric_names(&e, &mut dash_names);
    }
    let mut rule_names = BTreeSet::new();
    for rule in rules() {
        metric_names(str_of(&rule, "expr"), &mut rule_names);
    }
    let mut test_names = BTreeSet::new();
    for case in yaml(RULE_TESTS)["tests"].as_array().into_iter().flatten() {
        for s in case["input_series"].as_array().into_iter().flatten() {
            metric_names(str_of(s, "series"), &mut test_names);
        }
    }
    assert!(dash_names.len() >= 20, "dashboard names: {dash_names:?}");
    let is_sidecar = |n: &String| n.starts_with("arena_sidecar_");
    let all: BTreeSet<String> = dash_names
        .iter()
        .chain(&rule_names)
        .chain(&test_names)
        .cloned()
        .collect();
    // The sidecar's names are checked against sidecars' scrapes, the others against the gateway's.
    let (sidecar_wanted, wanted): (BTreeSet<String>, BTreeSet<String>) = all.into_iter().partition(is_sidecar);
    assert!(sidecar_wanted.len() >= 10, "sidecar names: {sidecar_wanted:?}");

    let matches = Pod::start("127.0.0.131", &["--load-report"]);
    let live = vec![
        Pod::start("127.0.0.132", &["--latency", "300ms"]),
        Pod::start("127.0.0.133", &["--latency", "300ms"]),
    ];
    let gw = Gateway::start(&config(&matches, &live));
    let c = client();

    for _ in 0..3 {
        assert_eq!(get(&c, gw.addr, "/v1/matches", &[]).await.status, 200);
    }
    // Hedged: the first pod has not answered after 20ms, so a second try starts on the other.
    assert_eq!(get(&c, gw.addr, "/v1/matches/m1/live", &[]).await.status, 200);
    // One request per second for the whole route: back-to-back requests get 429 (bounded loop).
    let mut limited = false;
    for _ in 0..20 {
        if get(&c, gw.addr, "/v1/players/p1/stats", &[]).await.status == 429 {
            limited = true;
            break;
        }
    }
    assert!(limited, "the rate-limited route never answered 429");
    // Both pods refuse connections (retried), then the function is down too.
    assert_eq!(get(&c, gw.addr, "/v1/verify", &[]).await.status, 503);
    // No route; and a DNS cluster without pods.
    assert_eq!(get(&c, gw.addr, "/nowhere", &[]).await.status, 404);
    assert_eq!(get(&c, gw.addr, "/v1/stats", &[]).await.status, 503);
    let auth = format!("Bearer {TOKEN}");
    let reload = post(&c, gw.admin, "/reload", &[("authorization", auth.as_str())]).await;
    assert_eq!(reload.status, 200, "{}", reload.text());
    // The release's users went to both versions above; a rollback exports its counters.
    let rollback = post(
        &c,
        gw.admin,
        "/releases/match-api-v2/rollback",
        &[("authorization", auth.as_str())],
    )
    .await;
    assert_eq!(rollback.status, 200, "{}", rollback.text());

    // DNS refreshes run on their own schedule: scrape until everything is there (bounded).
    let deadline = Instant::now() + Duration::from_secs(30);
    let (text, exported) = loop {
        let text = scrape(&c, &gw).await;
        let exported = Exported::parse(&text);
        let done = wanted
            .iter()
            .all(|n| exported.has(n) || NOT_TRIGGERED.contains(&n.as_str()));
        if done || Instant::now() > deadline {
            break (text, exported);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let missing: Vec<&String> = wanted
        .iter()
        .filter(|n| !exported.has(n) && !NOT_TRIGGERED.contains(&n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "queried by {DASHBOARD} / {RULES} / {RULE_TESTS} but not exported: {missing:?}\n--- /metrics:\n{text}"
    );
    let source = read("gateway/src/metrics.rs");
    for name in NOT_TRIGGERED {
        assert!(
            source.contains(&format!("\"{name}\"")),
            "allow-listed `{name}` is not registered in gateway/src/metrics.rs"
        );
    }

    // The other way round: every family the gateway exports has a dashboard panel.
    let shown: BTreeSet<String> = dash_names.iter().filter_map(|n| exported.family_of(n)).collect();
    let unshown: Vec<&String> = exported
        .families
        .keys()
        .filter(|f| f.starts_with("arena_") && !shown.contains(*f))
        .collect();
    assert!(unshown.is_empty(), "exported but on no dashboard panel: {unshown:?}");

    // The same for the sidecar, against real sidecars.
    let (exported, text) = sidecar_scrapes(&c).await;
    let missing: Vec<&String> = sidecar_wanted
        .iter()
        .filter(|n| !exported.has(n) && !SIDECAR_NOT_TRIGGERED.contains(&n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "queried by {DASHBOARD} / {RULES} / {RULE_TESTS} but not exported by arena-sidecar: {missing:?}\n--- /metrics:\n{text}"
    );
    let source = read("sidecar/src/metrics.rs");
    for name in SIDECAR_NOT_TRIGGERED.iter().chain(SIDECAR_NOT_SHOWN) {
        assert!(
            source.contains(&format!("\"{name}\"")),
            "allow-listed `{name}` is not registered in sidecar/src/metrics.rs"
        );
    }
    let shown: BTreeSet<String> = dash_names.iter().filter_map(|n| exported.family_of(n)).collect();
    let unshown: Vec<&String> = exported
        .families
        .keys()
        .filter(|f| f.starts_with("arena_sidecar_") && !shown.contains(*f) && !SIDECAR_NOT_SHOWN.contains(&f.as_str()))
        .collect();
    assert!(
        unshown.is_empty(),
        "exported by arena-sidecar but on no dashboard panel (nor in SIDECAR_NOT_SHOWN): {unshown:?}"
    );
}
