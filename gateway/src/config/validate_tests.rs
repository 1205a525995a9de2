//! Unit tests of `validate`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use crate::config::*;
use http::HeaderName;
use std::time::Duration;

const GOOD: &str = "\
listeners:
  - name: public
    address: 127.0.0.1:8080
admin:
  address: 127.0.0.1:9901
clusters:
  - name: match-api
    endpoints: [\"127.0.0.11:9100\", \"127.0.0.12:9100\"]
    connect_timeout: 250ms
  - name: players
    dns: { name: players.esports.svc.cluster.local, port: 9100, record: a, resolver: 127.0.0.1:5353 }
    lb: consistent_hash
    hash_key: header:x-user-id
routes:
  - name: matches
    match: { host: api.arena.gg, path_prefix: /v1/matches, methods: [GET], headers: { x-tenant: douyu } }
    cluster: match-api
    timeout: 2s
  - name: players
    match: { path_prefix: /v1/players }
    cluster: players
";

#[test]
fn good_config_loads() {
    let loaded = load(GOOD, "t.yaml").unwrap();
    let cfg = loaded.config;
    assert_eq!(cfg.clusters.len(), 2);
    assert_eq!(cfg.routes[0].timeout, Duration::from_secs(2));
    assert_eq!(cfg.routes[0].matcher.path, PathMatch::Prefix("/v1/matches".into()));
    assert_eq!(
        cfg.clusters[1].hash_key,
        Some(HashKey::Header(HeaderName::from_static("x-user-id")))
    );
    assert!(matches!(cfg.clusters[1].source, Source::Dns(ref d) if d.port == Some(9100)));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert!(cfg.server.work_stealing, "tokio's work-stealing scheduler by default");
    let per_thread = load(&format!("{GOOD}server: {{ work_stealing: false }}\n"), "t.yaml").unwrap();
    assert!(!per_thread.config.server.work_stealing);
}

#[test]
fn reports_all_errors_with_positions_and_hints() {
    let text = "\
listeners:
  - name: public
    address: 127.0.0.1:80800
clusters:
  - name: a
    endpoints: [\"127.0.0.1:9100\", \"pod-b:9100\"]
  - name: a
    endpoints: [\"127.0.0.1:9101\"]
    conect_timeout: 1s
routes:
  - name: r1
    match: { path_prefix: /v1 }
    cluster: b
  - name: r2
    match: { path_prefix: /v1 }
    cluster: a
    timeout: soon
";
    let errs = load(text, "bad.yaml").unwrap_err();
    let msgs: Vec<String> = errs
        .0
        .iter()
        .map(|d| format!("{} @ {} | {:?}", d.message, d.location, d.hint))
        .collect();
    let all = msgs.join("\n");
    assert!(
        all.contains("bad listener address `127.0.0.1:80800` @ bad.yaml:3:14"),
        "{all}"
    );
    assert!(
        all.contains("bad endpoint address `pod-b:9100` @ bad.yaml:6:35"),
        "{all}"
    );
    assert!(all.contains("unknown key `conect_timeout` @ bad.yaml:9:5"), "{all}");
    assert!(all.contains("did you mean `connect_timeout`"), "{all}");
    assert!(all.contains("references unknown cluster `b` @ bad.yaml:13:14"), "{all}");
    assert!(all.contains("bad duration `soon`"), "{all}");
    assert!(errs.errors().count() >= 5, "{all}");
}

#[test]
fn duplicate_names_and_shadowed_routes() {
    let text = "\
listeners: [{ name: p, address: 127.0.0.1:8080 }]
clusters:
  - { name: c, endpoints: [\"127.0.0.1:1\"] }
routes:
  - { name: all, match: { path_prefix: /v1 }, cluster: c }
  - { name: narrow, match: { path_prefix: /v1/matches, methods: [GET] }, cluster: c }
  - { name: all, match: { path: /x }, cluster: c }
";
    let errs = load(text, "d.yaml").unwrap_err();
    let all = errs.to_string();
    assert!(all.contains("duplicate name `all` in routes"), "{all}");
    assert!(
        all.contains("route `narrow` is shadowed by earlier route `all`"),
        "{all}"
    );
    assert!(all.contains("warning"), "{all}");
}

#[test]
fn shadowing_is_only_a_warning() {
    let text = "\
listeners: [{ name: p, address: 127.0.0.1:8080 }]
clusters: [{ name: c, endpoints: [\"127.0.0.1:1\"] }]
routes:
  - { name: all, match: {}, cluster: c }
  - { name: later, match: { host: a.b }, cluster: c }
";
    let loaded = load(text, "w.yaml").unwrap();
    assert_eq!(loaded.warnings.len(), 1);
    assert!(loaded.warnings[0].message.contains("shadowed"));
}

#[test]
fn unknown_top_level_key_and_syntax_errors() {
    let errs = load("listener: []\n", "x.yaml").unwrap_err();
    assert!(errs.to_string().contains("did you mean `listeners`"), "{errs}");
    let errs = load("listeners: [\n", "x.yaml").unwrap_err();
    assert!(errs.to_string().contains("YAML syntax error"), "{errs}");
}

#[test]
fn resilience_keys_are_checked() {
    let text = "\
listeners: [{ name: p, address: 127.0.0.1:8080 }]
faas:
  - { name: verify-fn, kind: http, url: http://127.0.0.1:8095 }
  - { name: lam, kind: aws_lambda, function: verify }
clusters:
  - { name: c, endpoints: [\"127.0.0.1:1\"], outlier: { max_ejected_percent: 150 } }
routes:
  - name: r
    match: {}
    cluster: c
    fallback: { faas: verify-fnn, warm_share: 200% }
    rate_limit: { requests_per_second: 10, burst: 5, batch: 6, scope: cluster, key: cookie:x }
    hedge: { after: soon }
    retry: { attempts: 0 }
";
    let all = load(text, "r.yaml").unwrap_err().to_string();
    for needle in [
        "fallback names unknown function `verify-fnn`",
        "did you mean `verify-fn`",
        "r.yaml:11:23",
        "bad warm_share",
        "needs a `redis:` section",
        "bad rate_limit.key",
        "bad hedge.after `soon`",
        "retry.attempts must be 1..10",
        "kind `aws_lambda` needs `function` and `region`",
        "max_ejected_percent must be 0..100",
        "batch 6 is larger than burst 5",
    ] {
        assert!(all.contains(needle), "missing `{needle}` in:\n{all}");
    }
}

#[test]
fn resilience_defaults_and_env_headers() {
    let env = |name: &str| (name == "ARENA_TEST_FN_TOKEN").then(|| "s3cret".to_string());
    let text = "\
listeners: [{ name: p, address: 127.0.0.1:8080 }]
faas: [{ name: f, kind: http, url: \"http://127.0.0.1:8095/\", headers: { authorization: \"Bearer ${env:ARENA_TEST_FN_TOKEN}\" } }]
clusters: [{ name: c, endpoints: [\"127.0.0.1:1\"], per_try_timeout: 800ms }]
routes:
  - { name: r, match: {}, cluster: c, retry: { attempts: 2 }, hedge: { after: p95 }, fallback: { faas: f, warm_share: 1% } }
";
    let cfg = load_with_env(text, "ok.yaml", &env).unwrap().config;
    let r = &cfg.routes[0];
    assert_eq!(
        r.retry.as_ref().unwrap().on,
        vec![RetryOn::ConnectFailure, RetryOn::Reset, RetryOn::Timeout]
    );
    assert_eq!(r.hedge.unwrap().after, HedgeAfter::Percentile(0.95));
    assert_eq!(r.fallback.as_ref().unwrap().warm_share, 0.01);
    assert_eq!(r.fallback.as_ref().unwrap().on.len(), 3);
    assert_eq!(cfg.faas[0].headers[0].1, "Bearer s3cret");
    assert_eq!(
        cfg.faas[0].target,
        FaasTarget::Http {
            url: "http://127.0.0.1:8095".into()
        }
    );
    assert_eq!(cfg.clusters[0].per_try_timeout, Some(Duration::from_millis(800)));
    assert_eq!(cfg.clusters[0].outlier.consecutive_failures, 5);
    let missing = text.replace("ARENA_TEST_FN_TOKEN", "ARENA_TEST_UNSET_VAR");
    assert!(load_with_env(&missing, "x.yaml", &env)
        .unwrap_err()
        .to_string()
        .contains("`ARENA_TEST_UNSET_VAR` is unset"));
}

#[test]
fn dns_needs_port_unless_srv_and_hash_needs_key() {
    let text = "\
listeners: [{ name: p, address: 127.0.0.1:8080 }]
clusters:
  - { name: a, dns: { name: a.svc, record: aaaa } }
  - { name: b, dns: { name: b.svc, record: srv }, lb: consistent_hash }
routes:
  - { name: a, match: { path_prefix: /a }, cluster: a }
  - { name: b, match: { path_prefix: /b }, cluster: b }
";
    let all = load(text, "x.yaml").unwrap_err().to_string();
    assert!(all.contains("set `dns.port`"), "{all}");
    assert!(all.contains("consistent_hash needs a `hash_key`"), "{all}");
}

#[test]
fn rate_limit_batch_defaults_to_a_percent_of_the_rate_within_burst() {
    let text = |rl: &str| {
        format!(
            "listeners: [{{ name: p, address: 127.0.0.1:8080 }}]\nredis: {{ url: redis://127.0.0.1:6379, replicas: 2 }}\nclusters: [{{ name: c, endpoints: [\"127.0.0.1:1\"] }}]\nroutes:\n  - {{ name: r, match: {{}}, cluster: c, rate_limit: {rl} }}\n"
        )
    };
    let batch = |rl: &str| {
        load(&text(rl), "b.yaml").unwrap().config.routes[0]
            .rate_limit
            .as_ref()
            .unwrap()
            .batch
    };
    assert_eq!(batch("{ requests_per_second: 5000, scope: cluster }"), 50);
    assert_eq!(batch("{ requests_per_second: 5000, burst: 20, scope: cluster }"), 20);
    assert_eq!(batch("{ requests_per_second: 30, scope: cluster }"), 1);
    assert_eq!(batch("{ requests_per_second: 30, batch: 7, scope: cluster }"), 7);
    let zero = load(&text("{ requests_per_second: 30, batch: 0, scope: cluster }"), "b.yaml").unwrap_err();
    assert!(zero.to_string().contains("batch must be at least 1"), "{zero}");
    let local = load(&text("{ requests_per_second: 30, batch: 3 }"), "b.yaml").unwrap();
    assert!(
        local
            .warnings
            .iter()
            .any(|w| w.to_string().contains("batch has no effect")),
        "{:?}",
        local.warnings
    );
}

#[test]
fn upgrade_sock_defaults_to_the_runtime_directory_and_must_be_absolute() {
    let text = |server: &str| format!("listeners: [{{ name: p, address: 127.0.0.1:8080 }}]\n{server}");
    let sock = |server: &str, env: &dyn Fn(&str) -> Option<String>| {
        load_with_env(&text(server), "u.yaml", env)
            .unwrap()
            .config
            .server
            .upgrade_sock
    };
    let no_env = |_: &str| None;
    assert_eq!(
        sock("", &no_env),
        std::path::Path::new("/run/arena-gateway/upgrade.sock")
    );
    // systemd's RuntimeDirectory= (its first entry); a relative value is not a runtime directory.
    let systemd = |n: &str| (n == "RUNTIME_DIRECTORY").then(|| "/run/arena:/run/other".to_string());
    assert_eq!(sock("", &systemd), std::path::Path::new("/run/arena/upgrade.sock"));
    let relative = |n: &str| (n == "RUNTIME_DIRECTORY").then(|| "run".to_string());
    assert_eq!(
        sock("", &relative),
        std::path::Path::new("/run/arena-gateway/upgrade.sock")
    );
    assert_eq!(
        sock("server: { upgrade_sock: /tmp/gw/up.sock }", &systemd),
        std::path::Path::new("/tmp/gw/up.sock")
    );

    let errs = |server: &str| {
        let e = load(&text(server), "u.yaml").unwrap_err();
        e.0.iter()
            .map(|d| format!("{} @ {} | {:?}", d.message, d.location, d.hint))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let relative = errs("server:\n  upgrade_sock: run/up.sock\n");
    assert!(
        relative.contains("`run/up.sock` is not an absolute path @ u.yaml:3:17"),
        "{relative}"
    );
    assert!(relative.contains("must name the same file"), "{relative}");
    let long = errs(&format!("server:\n  upgrade_sock: /{}\n", "d".repeat(120)));
    assert!(long.contains("holds at most 107 @ u.yaml:3:17"), "{long}");
    assert!(errs("server:\n  upgrade_sock: \"\"\n").contains("empty server.upgrade_sock"));
}

#[test]
fn state_file_defaults_to_the_state_directory_else_memory_and_must_be_absolute() {
    let text = |server: &str| format!("listeners: [{{ name: p, address: 127.0.0.1:8080 }}]\n{server}");
    let file = |server: &str, env: &dyn Fn(&str) -> Option<String>| {
        load_with_env(&text(server), "s.yaml", env)
            .unwrap()
            .config
            .server
            .state_file
    };
    assert_eq!(file("", &|_| None), None, "no state directory: memory only");
    let systemd = |n: &str| (n == "STATE_DIRECTORY").then(|| "/var/lib/arena:/var/lib/x".to_string());
    assert_eq!(
        file("", &systemd).as_deref(),
        Some(std::path::Path::new("/var/lib/arena/releases.json"))
    );
    assert_eq!(
        file("server: { state_file: /srv/r.json }", &systemd).as_deref(),
        Some(std::path::Path::new("/srv/r.json"))
    );
    let e = load(&text("server:\n  state_file: r.json\n"), "s.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`r.json` is not an absolute path") && e.contains("s.yaml:3:15"),
        "{e}"
    );
}

/// Positioned diagnostics of `text` (errors when it is rejected, else warnings).
fn diags(text: &str) -> String {
    let list = match load(text, "l.yaml") {
        Ok(l) => l.warnings,
        Err(e) => e.0,
    };
    list.iter()
        .map(|d| format!("{} @ {} | {:?}", d.message, d.location, d.hint))
        .collect::<Vec<_>>()
        .join("\n")
}

fn limited(redis: &str, rl: &str) -> String {
    format!(
        "listeners: [{{ name: p, address: 127.0.0.1:8080 }}]\n{redis}clusters: [{{ name: c, endpoints: [\"127.0.0.1:1\"] }}]\nroutes:\n  - name: r\n    match: {{}}\n    cluster: c\n    rate_limit: {rl}\n"
    )
}

/// The defect: `local_share` defaulted to 1, so N replicas admitted N times the rate while
/// Redis was down. Now it is `1 / redis.replicas`, and a cluster limit needs one or the other.
#[test]
fn cluster_limits_share_the_rate_among_replicas_while_redis_is_down() {
    let share = |redis: &str, rl: &str| {
        load(&limited(redis, rl), "l.yaml").unwrap().config.routes[0]
            .rate_limit
            .as_ref()
            .unwrap()
            .local_share
    };
    let redis = |replicas: &str| format!("redis: {{ url: redis://127.0.0.1:6379{replicas} }}\n");
    let cluster = "{ requests_per_second: 900, scope: cluster }";
    assert_eq!(share(&redis(", replicas: 3"), cluster), 1.0 / 3.0);
    assert_eq!(share(&redis(", replicas: 1"), cluster), 1.0);
    assert_eq!(
        share(
            &redis(""),
            "{ requests_per_second: 900, scope: cluster, local_share: 0.25 }"
        ),
        0.25,
        "written"
    );
    assert_eq!(share("", "{ requests_per_second: 900 }"), 1.0, "scope local: unused");

    let missing = diags(&limited(&redis(""), cluster));
    assert!(
        missing.contains("rate_limit scope `cluster` needs `redis.replicas` (or `local_share`) @ l.yaml:8:52"),
        "{missing}"
    );
    assert!(missing.contains("each admits 1/N"), "{missing}");
    let zero = diags(&limited(&redis(", replicas: 0"), cluster));
    assert!(
        zero.contains("replicas must be 1..10000, not 0 @ l.yaml:2:49"),
        "{zero}"
    );
    let over = diags(&limited(
        &redis(", replicas: 4"),
        "{ requests_per_second: 900, scope: cluster, local_share: 0.5 }",
    ));
    assert!(
        over.contains("with redis.replicas 4, local_share 0.5 admits 2.00× the rate while Redis is down"),
        "{over}"
    );
    assert!(over.contains("for 1/4 (0.2500)"), "{over}");
}

#[test]
fn ipv6_clients_are_keyed_by_a_64_prefix_by_default() {
    let prefix = |rl: &str| {
        load(&limited("", rl), "l.yaml").unwrap().config.routes[0]
            .rate_limit
            .as_ref()
            .unwrap()
            .ipv6_prefix
    };
    assert_eq!(prefix("{ requests_per_second: 9 }"), 64);
    assert_eq!(prefix("{ requests_per_second: 9, ipv6_prefix: 56 }"), 56);
    let bad = diags(&limited("", "{ requests_per_second: 9, ipv6_prefix: 129 }"));
    assert!(
        bad.contains("ipv6_prefix must be 1..128, not 129 @ l.yaml:7:56"),
        "{bad}"
    );
    assert!(bad.contains("64 (one customer's network)"), "{bad}");
    let unused = diags(&limited("", "{ requests_per_second: 9, key: route, ipv6_prefix: 48 }"));
    assert!(
        unused.contains("ipv6_prefix has no effect unless `key: client_ip`"),
        "{unused}"
    );
}

/// A Redis password, written or from `${env:}`, never reaches a message or `/config`.
#[test]
fn redis_urls_take_env_and_are_shown_masked() {
    let env = |n: &str| (n == "ARENA_TEST_REDIS_PASSWORD").then(|| "redis-pw-s3cret".to_string());
    let text = limited(
        "redis: { url: \"redis://:${env:ARENA_TEST_REDIS_PASSWORD}@127.0.0.1:6379/0\", replicas: 2 }\n",
        "{ requests_per_second: 9, scope: cluster }",
    );
    let cfg = load_with_env(&text, "l.yaml", &env).unwrap().config;
    let redis = cfg.redis.as_ref().unwrap();
    assert_eq!(redis.url.expose(), "redis://:redis-pw-s3cret@127.0.0.1:6379/0");
    let shown = serde_json::to_string(&cfg).unwrap();
    assert!(shown.contains("redis://:***@127.0.0.1:6379/0"), "{shown}");
    assert!(!shown.contains("s3cret") && !format!("{cfg:?}").contains("s3cret"));
    // A URL the client rejects is quoted masked.
    let bad = diags(&limited(
        "redis: { url: \"redis://:hunter2@[::1\" }\n",
        "{ requests_per_second: 9 }",
    ));
    assert!(bad.contains("bad redis url `redis://:***@[::1`"), "{bad}");
    assert!(!bad.contains("hunter2"), "{bad}");
}

/// A client's `x-arena-*` headers are dropped before routing: a route, a hash key or a rate
/// limit keyed on one could never see it, so each is an error at its position.
#[test]
fn nothing_may_match_or_key_on_internal_headers() {
    let text = "\
listeners: [{ name: p, address: 127.0.0.1:8080 }]
clusters:
  - { name: c, endpoints: [\"127.0.0.1:1\"], lb: consistent_hash, hash_key: \"header:x-arena-user\" }
routes:
  - name: r
    match: { headers: { X-Arena-Backend: \"10.0.0.1:80\" } }
    cluster: c
    rate_limit: { requests_per_second: 9, key: \"header:x-arena-key\" }
";
    let all = diags(text);
    for needle in [
        "hash_key cannot use header `x-arena-user`: a client's `x-arena-*` headers are dropped before routing @ l.yaml:3:75",
        "a route match cannot use header `x-arena-backend`",
        "@ l.yaml:6:23",
        "rate_limit.key cannot use header `x-arena-key`",
        "@ l.yaml:8:48",
        "the gateway's own signals",
    ] {
        assert!(all.contains(needle), "missing `{needle}` in:\n{all}");
    }
}

fn admin_of(admin: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Loaded, ConfigErrors> {
    load_with_env(
        &format!("listeners: [{{ name: p, address: 127.0.0.1:8080 }}]\nadmin: {admin}\n"),
        "a.yaml",
        env,
    )
}

/// Admin reads need the token by default beyond loopback; a config that would leave them
/// needing a token nobody has is rejected at its position.
#[test]
fn admin_reads_need_the_token_beyond_loopback_by_default() {
    let env = |n: &str| (n == "ARENA_TEST_ADMIN").then(|| "s3cret".to_string());
    let read = |admin: &str| admin_of(admin, &env).unwrap().config.admin.read_token;
    assert_eq!(read("{ address: 127.0.0.1:9901 }"), ReadToken::Optional);
    assert_eq!(read("{ address: \"[::1]:9901\" }"), ReadToken::Optional);
    assert_eq!(
        read("{ address: 0.0.0.0:9901, token_env: ARENA_TEST_ADMIN }"),
        ReadToken::Required
    );
    assert_eq!(
        read("{ address: \"[::]:9901\", token_env: ARENA_TEST_ADMIN }"),
        ReadToken::Required
    );
    assert_eq!(
        read("{ address: 127.0.0.1:9901, token_env: ARENA_TEST_ADMIN, read_token: required }"),
        ReadToken::Required
    );
    let open = admin_of(
        "{ address: 0.0.0.0:9901, token_env: ARENA_TEST_ADMIN, read_token: optional }",
        &env,
    )
    .unwrap();
    assert_eq!(open.config.admin.read_token, ReadToken::Optional);
    assert!(
        open.warnings
            .iter()
            .any(|w| w.to_string().contains("reads (/metrics, /config, /clusters) are open")),
        "{:?}",
        open.warnings
    );
    let token = admin_of("{ address: 0.0.0.0:9901, token_env: ARENA_TEST_ADMIN }", &env)
        .unwrap()
        .config;
    assert_eq!(token.admin.token.as_ref().map(|t| t.expose()), Some("s3cret"));
    assert!(!format!("{:?}{}", token.admin, serde_json::to_string(&token).unwrap()).contains("s3cret"));

    let errs = |admin: &str| {
        admin_of(admin, &env)
            .unwrap_err()
            .0
            .iter()
            .map(|d| format!("{} @ {} | {:?}", d.message, d.location, d.hint))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let beyond = errs("{ address: 0.0.0.0:9901 }");
    assert!(
        beyond.contains("admin reads need the bearer token (0.0.0.0:9901 is beyond loopback), but no `admin.token_env` is set @ a.yaml:2:19"),
        "{beyond}"
    );
    assert!(beyond.contains("or `read_token: optional`"), "{beyond}");
    let explicit = errs("{ address: 127.0.0.1:9901, read_token: required }");
    assert!(
        explicit.contains("(`read_token: required`)") && explicit.contains("@ a.yaml:2:47"),
        "{explicit}"
    );
    let unset = errs("{ address: 0.0.0.0:9901, token_env: ARENA_TEST_UNSET }");
    assert!(
        unset.contains(
            "environment variable `ARENA_TEST_UNSET` is unset or empty, and admin reads need the token @ a.yaml:2:44"
        ),
        "{unset}"
    );
    let bad = errs("{ address: 0.0.0.0:9901, read_token: sometimes }");
    assert!(
        bad.contains("unknown value `sometimes` @ a.yaml:2:45") && bad.contains("required, optional"),
        "{bad}"
    );
}

#[test]
fn cluster_tls_needs_one_identity_and_a_whole_client_pair() {
    let with = |tls: &str| {
        let text = format!(
            "listeners: [{{ name: public, address: 127.0.0.1:8080 }}]\nclusters:\n  - name: c\n    endpoints: [\"127.0.0.11:9100\"]\n    tls: {{ {tls} }}\nroutes: [{{ name: r, match: {{}}, cluster: c }}]\n"
        );
        load(&text, "t.yaml").map_err(|e| e.0.iter().map(|d| d.to_string()).collect::<Vec<_>>())
    };
    for (tls, says) in [
        (
            "ca_file: /nope/ca.pem, server_name: pod.local",
            "cannot read /nope/ca.pem",
        ),
        ("ca_file: /nope/ca.pem", "exactly one of `server_name` and `spiffe_id`"),
        (
            "ca_file: /nope/ca.pem, server_name: a, spiffe_id: \"spiffe://arena/ns/a/sa/b\"",
            "exactly one of",
        ),
        (
            "ca_file: /nope/ca.pem, cert_file: /c.pem, server_name: a",
            "`cert_file` and `key_file` together",
        ),
        (
            "ca_file: /nope/ca.pem, spiffe_id: \"spiffe://arena/x\"",
            "has no DNS form",
        ),
        (
            "ca_file: /nope/ca.pem, spiffe_id: \"http://arena/x\"",
            "is not a SPIFFE ID",
        ),
        ("ca_file: /nope/ca.pem, server_name: \"bad name\"", "is not a DNS name"),
        ("ca_file: /nope/ca.pem, server_name: a, verify: false", "verify"),
    ] {
        let errors = with(tls).expect_err(tls);
        assert!(
            errors.iter().any(|e| e.contains(says) && e.contains("t.yaml:")),
            "{tls}: {errors:#?}"
        );
    }
}

#[test]
fn tracing_is_validated_with_positions_and_defaults() {
    let with = |t: &str| {
        load(
            &format!("listeners: [{{ name: public, address: 127.0.0.1:8080 }}]\ntracing: {{ {t} }}\n"),
            "t.yaml",
        )
    };
    let ok = with("otlp_endpoint: \"http://collector:4318/\"")
        .unwrap()
        .config
        .tracing
        .unwrap();
    assert_eq!(ok.otlp_endpoint, "http://collector:4318");
    assert_eq!(ok.sample_ratio, 0.01);
    assert!(ok.keep_errors);
    assert_eq!(ok.keep_slow, Some(Duration::from_millis(250)));
    assert_eq!(ok.service_name, "arena-gateway");
    let none = with("otlp_endpoint: \"http://c:4318\", always: []")
        .unwrap()
        .config
        .tracing
        .unwrap();
    assert!(!none.keep_errors && none.keep_slow.is_none());
    for (t, says) in [
        ("otlp_endpoint: collector:4318", "is not an http(s) URL"),
        (
            "otlp_endpoint: \"http://c:4318\", protocol: grpc",
            "`grpc` is not built",
        ),
        (
            "otlp_endpoint: \"http://c:4318\", sample_ratio: lots",
            "bad tracing.sample_ratio",
        ),
        (
            "otlp_endpoint: \"http://c:4318\", always: [errors]",
            "unknown `always` entry `errors`",
        ),
        ("otlp_endpoint: \"http://c:4318\", exporter: jaeger", "exporter"),
    ] {
        let errors: Vec<String> = with(t).unwrap_err().0.iter().map(|d| d.to_string()).collect();
        assert!(
            errors.iter().any(|e| e.contains(says) && e.contains("t.yaml:2:")),
            "{t}: {errors:#?}"
        );
    }
}
