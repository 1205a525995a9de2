//! Unit tests of `release`: good and bad documents, every error at its `file:line:col`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use crate::config::{cluster, route, ClusterFile, RouteFile, SharedBudget};
use crate::diag::parse_document;

const BASE: &str = "\
clusters:
  - { name: match-api, endpoints: [\"127.0.0.1:1\"] }
  - { name: match-api-v2, endpoints: [\"127.0.0.1:2\"] }
  - { name: players, endpoints: [\"127.0.0.1:3\"] }
routes:
  - { name: matches, match: { path_prefix: /v1/matches }, cluster: match-api }
  - { name: match-live, match: { path_prefix: /v1/live }, cluster: match-api }
  - { name: players, match: { path_prefix: /v1/players }, cluster: players }
";

/// Validates `BASE` + `releases` as the gateway does; returns the specs and every diagnostic
/// as `severity: message @ file:line:col | hint`.
fn check(releases: &str) -> (Vec<ReleaseSpec>, Vec<String>) {
    check_text(&format!("{BASE}{releases}"))
}

fn check_text(text: &str) -> (Vec<ReleaseSpec>, Vec<String>) {
    let root = parse_document(text, "r.yaml").unwrap();
    let mut c = Diagnostics::with_env(&root, "r.yaml", text, &|_| None);
    let entries = yaml::entries(&root).unwrap();
    let node = |key: &str| entries.iter().find(|(k, _, _)| k == key).map(|(_, _, v)| *v);
    let clusters: Vec<(usize, ClusterFile)> = c.decode_list(node("clusters").unwrap(), "clusters");
    let routes: Vec<(usize, RouteFile)> = c.decode_list(node("routes").unwrap(), "routes");
    let items: Vec<(usize, ReleaseFile)> = node("releases").map_or_else(Vec::new, |n| c.decode_list(n, "releases"));
    let clusters = cluster::validate(&mut c, &clusters);
    let refs = route::References {
        clusters: &clusters,
        faas: &[],
        redis: SharedBudget::default(),
        also_used: &[],
    };
    let routes = route::validate(&mut c, &routes, &refs);
    let specs = validate(&mut c, &items, &clusters, &routes, node("redis").is_some());
    let diags = c
        .into_list()
        .into_iter()
        // Whether the canary cluster counts as used is the routes' business, not this test's.
        .filter(|d| !d.message.contains("is not used by any route"))
        .map(|d| {
            let sev = if d.is_error() { "error" } else { "warning" };
            format!("{sev}: {} @ {} | {}", d.message, d.location, d.hint.unwrap_or_default())
        })
        .collect();
    (specs, diags)
}

fn assert_has(diags: &[String], wanted: &str) {
    assert!(
        diags.iter().any(|d| d.contains(wanted)),
        "missing `{wanted}` in:\n{}",
        diags.join("\n")
    );
}

const FULL: &str = "\
releases:
  - name: match-api-v2
    routes: [matches, match-live]
    stable: match-api
    canary: match-api-v2
    sticky: header:x-user-id
    force:
      canary: { headers: { x-canary: \"1\" } }
      stable: { headers: { x-tenant: [douyu, huya] } }
    steps: [1%, 5%, 25%, 50%, 100%]
    step_interval: 30s
    analysis:
      window: 10s
      min_requests: 100
      max_error_rate_delta: 1%
      max_p99_ratio: 1.5
    on_failure: rollback
    retry_on_stable: true
    scope: local
";

#[test]
fn the_documented_release_loads() {
    let (specs, diags) = check(FULL);
    assert!(diags.is_empty(), "{diags:#?}");
    let r = &specs[0];
    assert_eq!(r.name, "match-api-v2");
    assert_eq!(r.routes, ["matches", "match-live"]);
    assert_eq!(r.sticky, StickyKey::Header(HeaderName::from_static("x-user-id")));
    assert_eq!(
        r.force_canary,
        [(HeaderName::from_static("x-canary"), HeaderValue::from_static("1"))]
    );
    assert_eq!(r.force_stable.len(), 2);
    assert_eq!(r.force_stable[1].1, "huya");
    assert_eq!(r.steps, [100, 500, 2500, 5000, 10_000]);
    assert_eq!(r.start_weight(), 100);
    assert_eq!(r.step_interval, Duration::from_secs(30));
    assert_eq!(r.analysis.window, Duration::from_secs(10));
    assert_eq!(r.analysis.min_requests, 100);
    assert!((r.analysis.max_error_rate_delta - 0.01).abs() < 1e-12);
    assert_eq!(r.on_failure, OnFailure::Rollback);
    assert_eq!(r.scope, ReleaseScope::Local);
    // Computed apart from the code (a few lines of Python over the documented encoding): a
    // change here restarts every running release on upgrade.
    assert_eq!(r.fingerprint, 0xbe04_ffff_d88f_f2e9);
    let shown = serde_json::to_value(r).unwrap();
    assert_eq!(shown["steps"], serde_json::json!(["1%", "5%", "25%", "50%", "100%"]));
    assert_eq!(shown["fingerprint"], "be04ffffd88ff2e9");
    assert_eq!(
        shown["force_stable"],
        serde_json::json!([["x-tenant", "douyu"], ["x-tenant", "huya"]])
    );
}

#[test]
fn defaults_fill_a_minimal_release() {
    let (specs, diags) =
        check("releases:\n  - { name: r, routes: [matches], stable: match-api, canary: match-api-v2, weight: 5% }\n");
    assert!(diags.is_empty(), "{diags:#?}");
    let r = &specs[0];
    assert_eq!(r.sticky, StickyKey::ClientIp);
    assert!(r.steps.is_empty());
    assert_eq!((r.initial_weight, r.start_weight()), (500, 500));
    assert_eq!(r.step_interval, def::STEP_INTERVAL);
    assert_eq!(
        r.analysis,
        AnalysisSpec {
            window: def::WINDOW,
            min_requests: def::MIN_REQUESTS,
            max_error_rate_delta: def::MAX_ERROR_RATE_DELTA,
            max_p99_ratio: def::MAX_P99_RATIO,
        }
    );
    assert_eq!(r.on_failure, OnFailure::Rollback);
    assert!(r.retry_on_stable);
    assert_eq!(r.scope, ReleaseScope::Local);
    assert_eq!(r.fingerprint, 0xa59b_d6ca_1968_145a);
    assert!(r.force_canary.is_empty() && r.force_stable.is_empty());
}

#[test]
fn fingerprint_covers_the_rollout_and_nothing_else() {
    let base = fingerprint("s", "c", &["a".into(), "b".into()], &[100, 10_000], 0);
    assert_eq!(
        base,
        fingerprint("s", "c", &["b".into(), "a".into()], &[100, 10_000], 0),
        "route order"
    );
    assert_ne!(
        base,
        fingerprint("s", "c2", &["a".into(), "b".into()], &[100, 10_000], 0)
    );
    assert_ne!(
        base,
        fingerprint("c", "s", &["a".into(), "b".into()], &[100, 10_000], 0)
    );
    assert_ne!(base, fingerprint("s", "c", &["a".into()], &[100, 10_000], 0));
    assert_ne!(
        base,
        fingerprint("s", "c", &["a".into(), "b".into()], &[100, 5000, 10_000], 0)
    );
    // Length prefixes: moving a byte between fields is another rollout.
    assert_ne!(fingerprint("ab", "c", &[], &[], 0), fingerprint("a", "bc", &[], &[], 0));
    // Tuning the analysis does not restart a release.
    let tuned = FULL
        .replace("max_p99_ratio: 1.5", "max_p99_ratio: 3")
        .replace("step_interval: 30s", "step_interval: 1m")
        .replace("window: 10s", "window: 20s")
        .replace("sticky: header:x-user-id", "sticky: cookie:uid");
    let (a, b) = (check(FULL).0, check(&tuned).0);
    assert_eq!(a[0].fingerprint, b[0].fingerprint);
    let (c, _) = check(&FULL.replace("50%, 100%", "60%, 100%"));
    assert_ne!(a[0].fingerprint, c[0].fingerprint);
}

#[test]
fn reports_every_reference_error_at_its_position() {
    let (specs, diags) = check(
        "\
releases:
  - name: a
    routes: [matches, matchez, players]
    stable: match-api
    canary: match-api-v3
  - name: b
    routes: [matches]
    stable: match-api
    canary: match-api
  - { name: c, routes: [match-live], stable: match-ap, canary: match-api-v2 }
",
    );
    assert!(specs.is_empty());
    assert_has(
        &diags,
        "error: release canary `match-api-v3` is not a cluster @ r.yaml:13:13 | did you mean `match-api-v2`? defined clusters: match-api, match-api-v2, players",
    );
    assert_has(
        &diags,
        "error: release `a` references unknown route `matchez` @ r.yaml:11:23 | did you mean `matches`?",
    );
    assert_has(
        &diags,
        "error: route `players` sends to cluster `players`, not to the release's stable cluster `match-api` @ r.yaml:11:32 | a release splits its routes' own cluster: set `stable: players`, or split routes of `match-api`",
    );
    assert_has(
        &diags,
        "error: release `b`: canary `match-api` is also its stable cluster @ r.yaml:17:13",
    );
    assert_has(
        &diags,
        "error: route `matches` is already split by release `a` @ r.yaml:15:14 | a route is in one release at a time (`a` at line 10)",
    );
    assert_has(
        &diags,
        "error: release stable `match-ap` is not a cluster @ r.yaml:18:46 | did you mean `match-api`?",
    );
    // An unknown stable cluster is one error, not one more per route.
    assert!(
        !diags.iter().any(|d| d.contains("stable cluster `match-ap`")),
        "{diags:#?}"
    );
}

#[test]
fn reports_bad_steps_and_weights() {
    let (specs, diags) = check(
        "\
releases:
  - name: a
    routes: [matches]
    stable: match-api
    canary: match-api-v2
    steps: [5%, 0%, 1%, 150%, 2.345%, five, 5, 50%, 50%]
  - name: b
    routes: [match-live]
    stable: match-api
    canary: match-api-v2
    steps: [10%]
    weight: 10%
  - { name: c, routes: [players], stable: players, canary: match-api, weight: 0.5 }
  - { name: d, routes: [], stable: players, canary: match-api, steps: [] }
",
    );
    assert!(specs.is_empty());
    assert_has(&diags, "error: step `0%` sends the canary nothing @ r.yaml:14:17");
    assert_has(
        &diags,
        "error: steps must increase: `1%` comes after `5%` @ r.yaml:14:21",
    );
    assert_has(&diags, "error: step `150%` is above 100% @ r.yaml:14:25");
    assert_has(
        &diags,
        "error: step `2.345%` is finer than 0.01% @ r.yaml:14:31 | weights are kept in basis points",
    );
    assert_has(
        &diags,
        "error: bad step `five` @ r.yaml:14:39 | write a percentage with `%`, e.g. `5%`",
    );
    assert_has(&diags, "error: bad step `5` @ r.yaml:14:45");
    assert_has(
        &diags,
        "error: steps must increase: `50%` comes after `50%` @ r.yaml:14:53",
    );
    assert_has(
        &diags,
        "error: `weight` is the starting weight of a release without `steps` @ r.yaml:20:13",
    );
    assert_has(&diags, "error: bad weight `0.5` @ r.yaml:21:79");
    assert_has(&diags, "error: release `d` splits no route @ r.yaml:22:24");
    assert_has(&diags, "error: steps is empty @ r.yaml:22:71");
}

#[test]
fn reports_bad_analysis_intervals_and_scope() {
    let (specs, diags) = check(
        "\
releases:
  - name: a
    routes: [matches]
    stable: match-api
    canary: match-api-v2
    step_interval: 0s
    scope: cluster
    on_failure: rolback
  - name: b
    routes: [match-live]
    stable: match-api
    canary: match-api-v2
    step_interval: 5s
    analysis: { window: 0s, min_requests: 0, max_error_rate_delta: 0.01, max_p99_ratio: 1 }
  - name: c
    routes: [players]
    stable: players
    canary: match-api
    step_interval: 5s
    analysis: { max_p99_ratio: .nan }
  - name: d
    routes: [players]
    stable: players
    canary: match-api
    step_interval: 5s
",
    );
    assert!(specs.is_empty());
    // A bad enum value fails the item's decoding, so `a`'s other errors wait for the next load.
    assert_has(
        &diags,
        "error: unknown value `rolback` @ r.yaml:16:17 | did you mean `rollback`?",
    );
    assert_has(
        &diags,
        "error: analysis.window must be greater than zero @ r.yaml:22:25",
    );
    assert_has(&diags, "error: analysis.min_requests must be at least 1 @ r.yaml:22:43");
    assert_has(&diags, "error: bad max_error_rate_delta `0.01` @ r.yaml:22:68");
    assert_has(
        &diags,
        "error: analysis.max_p99_ratio must be above 1, not 1 @ r.yaml:22:89",
    );
    assert_has(
        &diags,
        "error: analysis.max_p99_ratio must be above 1, not NaN @ r.yaml:28:32",
    );
    assert_has(
        &diags,
        "warning: step_interval 5s is shorter than analysis.window 10s: a step's verdict still counts traffic from the step before @ r.yaml:33:20",
    );
    assert_has(
        &diags,
        "error: route `players` is already split by release `c` @ r.yaml:30:14",
    );

    let (_, diags) = check(
        "releases:\n  - { name: a, routes: [matches], stable: match-api, canary: match-api-v2, step_interval: 0s, scope: cluster }\n",
    );
    assert_has(&diags, "error: step_interval must be greater than zero @ r.yaml:10:91");
    assert_has(
        &diags,
        "error: release scope `cluster` needs a `redis:` section @ r.yaml:10:102 | add `redis: { url: redis://127.0.0.1:6379, replicas: 3 }`, or use `scope: local`",
    );
}

#[test]
fn cluster_scope_is_fine_with_redis() {
    let text = "redis: { url: \"redis://127.0.0.1:6379\" }\nreleases:\n  - { name: a, routes: [matches], stable: match-api, canary: match-api-v2, scope: cluster }\n";
    let (specs, diags) = check(text);
    assert!(diags.is_empty(), "{diags:#?}");
    assert_eq!(specs[0].scope, ReleaseScope::Cluster);
}

#[test]
fn sticky_and_force_may_not_use_internal_headers() {
    let (specs, diags) = check(
        "\
releases:
  - name: a
    routes: [matches]
    stable: match-api
    canary: match-api-v2
    sticky: header:x-arena-user
    force:
      canary: { headers: { x-arena-canary: \"1\", \"bad header\": x } }
      stable:
        headers:
          x-tenant: []
          x-ok: \"bad\\u0001value\"
  - name: b
    routes: [match-live]
    stable: match-api
    canary: match-api-v2
    sticky: cookie:a;b
  - { name: c, routes: [players], stable: players, canary: match-api, sticky: query:uid }
  - name: a
    routes: [players]
    stable: players
    canary: match-api
",
    );
    assert!(specs.is_empty());
    assert_has(
        &diags,
        "error: sticky cannot use header `x-arena-user`: a client's `x-arena-*` headers are dropped before routing @ r.yaml:14:13 | they are the gateway's own signals; use another header, e.g. `x-user-id`",
    );
    assert_has(
        &diags,
        "error: force.canary cannot use header `x-arena-canary`: a client's `x-arena-*` headers are dropped before routing @ r.yaml:16:28 | they are the gateway's own signals; use another header, e.g. `x-canary: \"1\"`",
    );
    assert_has(&diags, "error: bad header name `bad header` @ r.yaml:16:49");
    assert_has(
        &diags,
        "error: force.stable: header `x-tenant` lists no value @ r.yaml:19:11",
    );
    assert_has(
        &diags,
        "error: force.stable: bad value `bad\u{1}value` for header `x-ok` @ r.yaml:20:11",
    );
    assert_has(
        &diags,
        "error: bad sticky `cookie:a;b` @ r.yaml:25:13 | write `header:NAME`, `cookie:NAME` or `client_ip`",
    );
    assert_has(&diags, "error: bad sticky `query:uid` @ r.yaml:26:79");
    assert_has(
        &diags,
        "error: duplicate name `a` in releases @ r.yaml:27:11 | first defined at line 10",
    );
}

#[test]
fn a_header_forced_both_ways_warns_that_stable_wins() {
    let (specs, diags) = check(
        "releases:\n  - name: a\n    routes: [matches]\n    stable: match-api\n    canary: match-api-v2\n    force: { canary: { headers: { x-t: [a, b] } }, stable: { headers: { X-T: b } } }\n",
    );
    assert_eq!(specs.len(), 1);
    assert_has(
        &diags,
        "warning: `x-t: b` is forced both to the canary and to stable; stable wins @ r.yaml:14:33",
    );
}

#[test]
fn rejected_references_are_not_reported_twice() {
    // The route and the cluster are written but invalid: their own errors say so, and the
    // release is not told they are unknown.
    let (specs, diags) = check_text(
        "\
clusters:
  - { name: match-api, endpoints: [\"127.0.0.1:1\"] }
  - { name: v2, endpoints: [\"pod-b\"] }
routes:
  - { name: broken, match: { path: nope }, cluster: match-api }
releases:
  - { name: a, routes: [broken], stable: match-api, canary: v2 }
",
    );
    assert!(specs.is_empty());
    assert_has(&diags, "error: path `nope` must start with `/`");
    assert_has(&diags, "error: bad endpoint address `pod-b`");
    assert!(
        !diags
            .iter()
            .any(|d| d.contains("unknown route") || d.contains("not a cluster")),
        "{diags:#?}"
    );
}

#[test]
fn percentages_parse_exactly() {
    assert_eq!(parse_percent_bp("1%"), Ok(100));
    assert_eq!(parse_percent_bp(" 0.5 %"), Ok(50));
    assert_eq!(parse_percent_bp("12.34%"), Ok(1234));
    assert_eq!(parse_percent_bp("12.340%"), Ok(1234));
    assert_eq!(parse_percent_bp("0.01%"), Ok(1));
    assert_eq!(parse_percent_bp("0%"), Ok(0));
    assert_eq!(parse_percent_bp("100%"), Ok(10_000));
    assert_eq!(parse_percent_bp("0100.00%"), Ok(10_000));
    assert_eq!(parse_percent_bp("100.01%"), Err(PercentError::Above100));
    assert_eq!(parse_percent_bp("99999999999%"), Err(PercentError::Above100));
    assert_eq!(parse_percent_bp("0.001%"), Err(PercentError::TooFine));
    for bad in [
        "", "%", "5", "0.05", "-1%", "+1%", ".5%", "5.%", "1e2%", "five%", "1 0%", "5%%",
    ] {
        assert_eq!(parse_percent_bp(bad), Err(PercentError::Syntax), "{bad:?}");
    }
    assert_eq!(percent_text(100), "1%");
    assert_eq!(percent_text(50), "0.5%");
    assert_eq!(percent_text(1234), "12.34%");
    assert_eq!(percent_text(1), "0.01%");
    assert_eq!(percent_text(10_000), "100%");
}

#[test]
fn sticky_keys_parse() {
    assert_eq!(parse_sticky("client_ip"), Ok(StickyKey::ClientIp));
    assert_eq!(
        parse_sticky("header:X-User-Id"),
        Ok(StickyKey::Header(HeaderName::from_static("x-user-id")))
    );
    assert_eq!(parse_sticky("cookie: uid "), Ok(StickyKey::Cookie("uid".into())));
    assert_eq!(
        parse_sticky("header:x-arena-user"),
        Err(StickyError::InternalHeader("x-arena-user".into()))
    );
    for bad in ["", "header:", "cookie:", "cookie:a=b", "cookie:a b", "ip", "header:a b"] {
        assert_eq!(parse_sticky(bad), Err(StickyError::Syntax), "{bad:?}");
    }
}
