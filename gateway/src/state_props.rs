//! Property tests of `config load → Snapshot::build → the request path`: any document the
//! loader accepts builds a snapshot, and requests on it (paused time: picks, tries, answers,
//! failures, retries, hedges, fallback, rate limits, pods joining) never panic. The named
//! tests below are the cases these properties (and the issue) found.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use arena_core::balance::{report, Origin};
use arena_core::resilience::rate_limit::Decision;
use http::{HeaderMap, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::{Error, ErrorType};
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use tokio::time::Instant;

use super::Snapshot;
use crate::config::RetryOn;
use crate::metrics::Metrics;
use crate::proxy::classify::{classify, Fault};
use crate::proxy::ctx::{Routed, Try};
use crate::proxy::error::GatewayError;
use crate::proxy::hedge::{self, Plan, Racer, Reply, TryFuture};
use crate::proxy::retry::{self, TryState, Verdict};
use crate::proxy::{admit, attempt, fallback, split};
use crate::route::Route;

// ------------------------------------------------------------------------------ the script

/// How one try ends.
#[derive(Debug, Clone)]
enum End {
    /// The pod answers `status`, maybe with a load report, after `ms`.
    Answer {
        status: u16,
        report: Option<String>,
        ms: u64,
    },
    /// The try fails with `kind` after `ms`.
    Fail { kind: ErrorType, ms: u64 },
}

/// One request of the script.
#[derive(Debug, Clone)]
struct Req {
    route: usize,
    method: &'static str,
    host: String,
    cookie: String,
    user: String,
    ip: Option<IpAddr>,
    tries: Vec<End>,
    /// Time passing after the request (ejections expiring, reports going stale).
    idle_ms: u64,
}

#[derive(Debug, Clone)]
struct Script {
    seed: u64,
    requests: Vec<Req>,
}

/// Longest single step of paused time: far past any ejection or TTL worth testing, far from
/// the clock's limits.
const MAX_STEP: Duration = Duration::from_secs(86_400);

fn step(d: Duration) -> Duration {
    d.min(MAX_STEP)
}

// ------------------------------------------------------------------------------ the harness

/// Loads `text`; when the loader accepts it, the snapshot must build and serve the script.
/// Returns whether the document was accepted.
fn run(text: &str, script: &Script) -> bool {
    let loaded = match crate::config::load_str(text, "props.yaml") {
        Ok(l) => l,
        Err(errors) => {
            for e in errors.errors() {
                assert!(e.pos.is_some(), "an error without a position: {e}\n{text}");
            }
            return false;
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    // What `arena-gateway routes` prints and the admin API's `/config` shows.
    let _ = crate::table::render(&loaded.config);
    serde_json::to_string(&loaded.config).unwrap();
    rt.block_on(async {
        let metrics = Metrics::new().unwrap();
        let config = loaded.config;
        let snap = Snapshot::build(config.clone(), None, &metrics, 1)
            .unwrap_or_else(|e| panic!("a config the loader accepts must build: {e}\n{text}"));
        serve(&snap, script).await;
        // A reload of the same text keeps the live state and serves again.
        let again = Snapshot::build(config, Some(&snap), &metrics, 2)
            .unwrap_or_else(|e| panic!("a reload of an accepted config must build: {e}\n{text}"));
        serve(&again, script).await;
        for c in &again.clusters {
            // A pod joins after the others served (DNS refresh): it is seeded from its peers.
            let mut addrs: Vec<SocketAddr> = c.endpoints().active.iter().map(|e| e.addr).collect();
            addrs.push(SocketAddr::from(([127, 0, 0, 99], 9100)));
            c.replace_endpoints(&addrs, Origin::Dns, None);
            let _ = c.view();
            let _ = c.pick(None, |_| true, &mut SmallRng::seed_from_u64(script.seed));
        }
    });
    true
}

async fn serve(snap: &Snapshot, script: &Script) {
    let routes: Vec<Arc<Route>> = snap.routes.iter().cloned().collect();
    let mut rng = SmallRng::seed_from_u64(script.seed);
    for req in &script.requests {
        let head = request_head(req);
        let _ = admit::find_route(snap, &head);
        if routes.is_empty() {
            continue;
        }
        let route = Arc::clone(&routes[req.route % routes.len()]);
        serve_one(&route, &head, req, &mut rng).await;
        tokio::time::advance(step(Duration::from_millis(req.idle_ms))).await;
        let _ = route.cluster.view();
        let _ = route.cluster.all_busier_than(0.5);
    }
}

fn request_head(req: &Req) -> RequestHeader {
    let mut head = RequestHeader::build(req.method, b"/v1/matches/7?x=1", None).unwrap();
    for (k, v) in [("host", &req.host), ("cookie", &req.cookie), ("x-user-id", &req.user)] {
        if let Ok(v) = HeaderValue::from_str(v) {
            head.insert_header(k, v).unwrap();
        }
    }
    head
}

async fn serve_one(route: &Arc<Route>, head: &RequestHeader, req: &Req, rng: &mut SmallRng) {
    let headers: &HeaderMap = &head.headers;
    let target = split::target(route, headers, req.ip);
    let mut routed = Routed::new(Arc::clone(route), target, Instant::now());
    if let Some(limit) = &route.limit {
        if let Decision::Deny { retry_after } = limit.check_local(limit.key(req.ip, headers)) {
            let limit = limit.spec.requests_per_second;
            GatewayError::RateLimited { retry_after, limit }.render("rid").unwrap();
        }
    }
    let _ = fallback::divert(route, routed.cluster(), rng);
    let idempotent = head.method.is_idempotent();
    if let Some(plan) = hedge::plan(route, idempotent, true, routed.deadline) {
        race(&mut routed, &plan, req, rng).await;
        return;
    }
    for end in &req.tries {
        let spec = route.spec.retry.as_ref();
        let pause = retry::pause(spec, routed.tries.count, routed.remaining(Instant::now()), rng);
        tokio::time::advance(step(pause)).await;
        let Ok((t, per_try)) = attempt::start(&mut routed, true, Instant::now(), rng) else {
            break;
        };
        let _ = attempt::peer(&routed.cluster().spec, t.pod(), per_try, true, routed.peer_tls());
        let Some(cause) = finish(&routed, t, end).await else {
            break;
        };
        let state = TryState {
            attempts: routed.tries.count,
            idempotent,
            replayable: true,
            response_started: false,
            remaining: routed.remaining(Instant::now()),
        };
        let _ = fallback::after_retries(route);
        if retry::decide(&routed, cause, &state) != Verdict::Retry {
            break;
        }
    }
}

fn fault(kind: &ErrorType, pod: SocketAddr) -> Fault {
    let mut e = Error::new(kind.clone());
    e.as_up();
    classify(&e, Some(pod))
}

/// Ends try `t` as `end` says; the retry trigger when another try may follow.
async fn finish(routed: &Routed, t: Try, end: &End) -> Option<RetryOn> {
    match end {
        End::Answer { status, report, ms } => {
            tokio::time::advance(step(Duration::from_millis(*ms))).await;
            let mut resp = ResponseHeader::build(*status, None).unwrap();
            if let Some(r) = report {
                let _ = resp.insert_header(report::HEADER, r.as_str());
            }
            let (_, failed, _open) = attempt::answered(routed, Some(t), &mut resp);
            failed
        }
        End::Fail { kind, ms } => {
            tokio::time::advance(step(Duration::from_millis(*ms))).await;
            let f = fault(kind, t.pod());
            f.error.render("rid").unwrap();
            attempt::failed(routed, t, &f);
            let _ = fallback::reason_after(&f.error);
            f.retry_on
        }
    }
}

/// A racer like the gateway's, with scripted pods: tries started by the try engine, ended by
/// the script, retries decided by `retry`.
struct Scripted<'a> {
    routed: &'a mut Routed,
    ends: Vec<End>,
    open: Vec<Option<Try>>,
    rng: SmallRng,
}

impl Racer for Scripted<'_> {
    type Session = ();

    fn launch(&mut self) -> Result<(usize, TryFuture<()>), GatewayError> {
        let (t, per_try) = attempt::start(self.routed, false, Instant::now(), &mut self.rng)?;
        let idx = self.open.len();
        let pod = t.pod();
        let end = self.ends.get(idx).cloned().unwrap_or(End::Answer {
            status: 200,
            report: None,
            ms: 1,
        });
        self.open.push(Some(t));
        Ok((
            idx,
            Box::pin(async move {
                match end {
                    End::Answer { status, ms, .. } => {
                        tokio::time::sleep(Duration::from_millis(ms).min(per_try)).await;
                        Reply::Answer((), status)
                    }
                    End::Fail { kind, ms } => {
                        tokio::time::sleep(Duration::from_millis(ms).min(per_try)).await;
                        Reply::Failed(fault(&kind, pod))
                    }
                }
            }),
        ))
    }

    fn hedge_allowed(&mut self) -> bool {
        self.routed.route.budget.as_ref().is_none_or(|b| b.try_retry())
    }

    fn failed(&mut self, idx: usize, fault: &Fault) {
        if let Some(t) = self.open.get_mut(idx).and_then(Option::take) {
            attempt::failed(self.routed, t, fault);
        }
    }

    fn may_retry(&mut self, cause: RetryOn) -> bool {
        let state = TryState {
            attempts: self.routed.tries.count,
            idempotent: true,
            replayable: true,
            response_started: false,
            remaining: self.routed.remaining(Instant::now()),
        };
        retry::decide(self.routed, cause, &state) == Verdict::Retry
    }

    fn pod(&self, idx: usize) -> Option<SocketAddr> {
        self.open.get(idx).and_then(Option::as_ref).map(Try::pod)
    }
}

async fn race(routed: &mut Routed, plan: &Plan, req: &Req, rng: &mut SmallRng) {
    let route = Arc::clone(&routed.route);
    let _ = hedge::hedge_delay(&route.spec.hedge.unwrap(), &route);
    let mut racer = Scripted {
        routed,
        ends: req.tries.clone(),
        open: Vec::new(),
        rng: SmallRng::from_rng(rng),
    };
    let end = hedge::race(plan, &mut racer).await;
    let winner = end
        .winner
        .as_ref()
        .map(|(i, _)| *i)
        .or(end.server_error.as_ref().map(|(i, _)| *i));
    for (i, t) in racer.open.iter_mut().enumerate() {
        let Some(t) = t.take() else { continue };
        if Some(i) == winner {
            let status = if end.winner.is_some() { 200 } else { 503 };
            let mut resp = ResponseHeader::build(status, None).unwrap();
            attempt::answered(racer.routed, Some(t), &mut resp);
        } else {
            attempt::lost_to_a_faster_pod(racer.routed, t);
        }
    }
}

// ------------------------------------------------------------------------------ documents

/// A YAML node, written in flow style (`{k: v}`, `[a, b]`) so nesting needs no indentation.
#[derive(Debug, Clone)]
enum Node {
    Map(Vec<(String, Node)>),
    Seq(Vec<Node>),
    /// A scalar as written: numbers, `.nan`, `true`, `~`, bare words.
    Plain(String),
    /// A string, double-quoted with escapes (any text).
    Str(String),
}

impl Node {
    fn emit(&self, out: &mut String) {
        match self {
            Node::Map(entries) => {
                out.push('{');
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(&quote(k));
                    out.push_str(": ");
                    v.emit(out);
                }
                out.push('}');
            }
            Node::Seq(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    v.emit(out);
                }
                out.push(']');
            }
            Node::Plain(s) => out.push_str(s),
            Node::Str(s) => out.push_str(&quote(s)),
        }
    }

    /// Sets `key` of a mapping (added, or replacing the generated one).
    fn set(mut self, key: &str, value: Node) -> Node {
        if let Node::Map(entries) = &mut self {
            entries.retain(|(k, _)| k != key);
            entries.push((key.to_string(), value));
        }
        self
    }
}

/// JSON string escapes are YAML double-quoted escapes too.
fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

type Strat = BoxedStrategy<Node>;

/// `valid` values; when `noisy`, also `invalid` ones and text matching `noise`.
fn one_of(
    valid: &'static [&'static str],
    invalid: &'static [&'static str],
    noise: Option<&'static str>,
    noisy: bool,
    make: fn(String) -> Node,
) -> Strat {
    let good = proptest::sample::select(valid)
        .prop_map(move |s| make(s.to_string()))
        .boxed();
    if !noisy {
        return good;
    }
    let mut options = vec![(6, good)];
    if !invalid.is_empty() {
        options.push((
            1,
            proptest::sample::select(invalid)
                .prop_map(move |s| make(s.to_string()))
                .boxed(),
        ));
    }
    if let Some(re) = noise {
        options.push((1, re.prop_map(make).boxed()));
    }
    proptest::strategy::Union::new_weighted(options).boxed()
}

fn text(valid: &'static [&'static str], invalid: &'static [&'static str], noise: &'static str, noisy: bool) -> Strat {
    one_of(valid, invalid, Some(noise), noisy, Node::Str)
}

fn word(valid: &'static [&'static str], invalid: &'static [&'static str], noisy: bool) -> Strat {
    one_of(valid, invalid, None, noisy, Node::Plain)
}

/// Any node at all: what a value of the wrong shape looks like.
fn junk() -> Strat {
    let leaf = prop_oneof![
        ".{0,6}".prop_map(Node::Str),
        word(
            &["0", "-1", "1.5", ".nan", "true", "~", "x", "18446744073709551616"],
            &[],
            false
        ),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Node::Seq),
            proptest::collection::vec(("[a-z_]{1,8}", inner), 0..3).prop_map(Node::Map),
        ]
    })
    .boxed()
}

/// A mapping of `keys`, each present with its probability; when `noisy`, a value may have
/// any shape and an unknown key may appear.
fn map(noisy: bool, keys: Vec<(&'static str, f64, Strat)>) -> Strat {
    let entries: Vec<BoxedStrategy<Option<(String, Node)>>> = keys
        .into_iter()
        .map(|(k, p, s)| {
            let s = if noisy {
                prop_oneof![20 => s, 1 => junk()].boxed()
            } else {
                s
            };
            proptest::option::weighted(p, s.prop_map(move |v| (k.to_string(), v))).boxed()
        })
        .collect();
    let stray = if noisy {
        proptest::option::weighted(0.05, ("[a-z_]{1,10}", junk())).boxed()
    } else {
        Just(None).boxed()
    };
    (entries, stray)
        .prop_map(|(entries, stray)| Node::Map(entries.into_iter().flatten().chain(stray).collect()))
        .boxed()
}

fn list(item: Strat, max: usize) -> Strat {
    proptest::collection::vec(item, 0..=max).prop_map(Node::Seq).boxed()
}

/// Durations from nothing to far past the cap (rarely: one is enough to reject a document);
/// when `noisy`, also text that is not one.
fn dur(noisy: bool) -> Strat {
    let huge = proptest::sample::select(
        &[
            "366d",
            "1y",
            "100000000y",
            "500000000000y",
            "584542046090y",
            "18446744073709551615s",
            "365d 1ns",
        ][..],
    )
    .prop_map(|s| Node::Str(s.to_string()));
    let valid = prop_oneof![
        30 => proptest::sample::select(
            &["0s", "1ns", "999ns", "1us", "1ms", "10ms", "250ms", "1s", "5s", "1m", "1h", "1d", "365d", "364d 23h 59m 59s 999ms"][..]
        )
        .prop_map(|s| Node::Str(s.to_string())),
        20 => (1u64..5_000).prop_map(|n| Node::Str(format!("{n}ms"))),
        1 => huge.clone(),
    ];
    if !noisy {
        return valid.boxed();
    }
    prop_oneof![
        5 => valid,
        1 => huge,
        1 => (any::<u64>(), proptest::sample::select(&["ns", "ms", "s", "m", "h", "d", "y"][..]))
            .prop_map(|(n, u)| Node::Str(format!("{n}{u}"))),
        1 => "[0-9a-z ]{0,6}".prop_map(Node::Str),
        1 => word(&["5", "0", "-1", "1.5"], &[], false),
    ]
    .boxed()
}

/// A duration below the defaults it is compared with (`base_ejection` ≤ 60 s `max_ejection`,
/// `min_refresh` ≤ 30 s `max_refresh`); when `noisy`, any.
fn short_dur(noisy: bool) -> Strat {
    if noisy {
        return dur(true);
    }
    prop_oneof![
        (0u64..30_000).prop_map(|n| Node::Str(format!("{n}ms"))),
        proptest::sample::select(&["1ns", "1s", "30s"][..]).prop_map(|s| Node::Str(s.to_string())),
    ]
    .boxed()
}

/// Whole numbers in `lo..=hi` and at its bounds; when `noisy`, also just outside them and at
/// the limits of the integer types.
fn int(lo: u64, hi: u64, noisy: bool) -> Strat {
    let valid = prop_oneof![
        2 => (lo..=hi).prop_map(|n| Node::Plain(n.to_string())),
        1 => proptest::sample::select(vec![lo, hi, lo.saturating_add(1).min(hi)]).prop_map(|n| Node::Plain(n.to_string())),
    ];
    if !noisy {
        return valid.boxed();
    }
    prop_oneof![
        4 => valid,
        1 => proptest::sample::select(vec![
            lo.wrapping_sub(1).to_string(),
            hi.saturating_add(1).to_string(),
            "4294967295".into(),
            "4294967296".into(),
            "18446744073709551615".into(),
            "-1".into(),
            "1.5".into(),
        ])
        .prop_map(Node::Plain),
    ]
    .boxed()
}

/// Numbers in `lo..=hi` and at its bounds; when `noisy`, also outside them, NaN and infinities.
fn float(lo: f64, hi: f64, noisy: bool) -> Strat {
    let valid = prop_oneof![
        2 => (lo..=hi).prop_map(|x| Node::Plain(format!("{x:.4}"))),
        1 => proptest::sample::select(vec![lo, hi]).prop_map(|x| Node::Plain(format!("{x:?}"))),
    ];
    if !noisy {
        return valid.boxed();
    }
    prop_oneof![
        4 => valid,
        1 => word(&["-1", ".nan", ".inf", "-.inf", "1e308", "-0.0", "1001"], &[], false),
    ]
    .boxed()
}

fn share(noisy: bool) -> Strat {
    text(
        &["0", "1%", "0.01", "50%", "100%", "1", "0.5 %"],
        &["150%", "-1", "NaN", "%", "inf"],
        "[0-9.%]{0,5}",
        noisy,
    )
}

fn boolean(noisy: bool) -> Strat {
    word(&["true", "false"], &["yes", "1", "~"], noisy)
}

/// Cluster names: the ones a clean document defines, and others.
fn cluster_ref(noisy: bool) -> Strat {
    prop_oneof![
        12 => Just(Node::Str("a".into())),
        2 => Just(Node::Str("b".into())),
        1 => text(&["c"], &["", "d", " a"], ".{0,6}", noisy),
    ]
    .boxed()
}

fn endpoint(noisy: bool) -> Strat {
    text(
        &[
            "127.0.0.11:9100",
            "127.0.0.12:9100",
            "127.0.0.13:9100",
            "[::1]:9100",
            "10.0.0.1:0",
            " 127.0.0.14:65535 ",
        ],
        &["pod:9100", "127.0.0.1", "[::1", "1.2.3.4:65536"],
        "[0-9.:\\[\\]a-f]{0,20}",
        noisy,
    )
}

fn dns(noisy: bool) -> Strat {
    let record = prop_oneof![
        // SRV needs no port; A/AAAA do.
        (
            word(&["srv"], &[], false),
            proptest::option::weighted(0.3, int(0, 65535, noisy))
        )
            .boxed(),
        (
            word(&["a", "aaaa"], &["mx", "A"], noisy),
            proptest::option::weighted(0.95, int(0, 65535, noisy))
        )
            .boxed(),
    ];
    (
        map(
            noisy,
            vec![
                (
                    "name",
                    0.98,
                    text(
                        &["pods.svc.cluster.local", "a.b", "x"],
                        &["", " ", "a..b", "é.svc"],
                        ".{0,20}",
                        noisy,
                    ),
                ),
                (
                    "resolver",
                    0.6,
                    text(&["127.0.0.1:1", "[::1]:53"], &["dns:53", "127.0.0.1"], ".{0,10}", noisy),
                ),
                ("min_refresh", 0.3, short_dur(noisy)),
                ("max_refresh", 0.3, dur(noisy)),
                ("timeout", 0.3, dur(noisy)),
            ],
        ),
        record,
    )
        .prop_map(|(m, (record, port))| {
            let m = m.set("record", record);
            match port {
                Some(p) => m.set("port", p),
                None => m,
            }
        })
        .boxed()
}

fn cluster(noisy: bool) -> Strat {
    let lb = prop_oneof![
        3 => Just(None),
        1 => Just(Some((Node::Plain("consistent_hash".into()), true))),
        2 => word(&["p2c_ewma", "least_inflight", "round_robin"], &["random", "P2C"], noisy).prop_map(|w| Some((w, false))),
    ];
    let hash_key = text(
        &["header:x-user-id", "cookie:session", "client_ip", "header: X-User-Id "],
        &["header:", "cookie: ", "ip", "header:a b"],
        ".{0,10}",
        noisy,
    );
    let source = prop_oneof![
        3 => proptest::collection::vec(endpoint(noisy), 1..=3).prop_map(|e| ("endpoints", Node::Seq(e))).boxed(),
        1 => dns(noisy).prop_map(|d| ("dns", d)).boxed(),
    ];
    let body = map(
        noisy,
        vec![
            ("connect_timeout", 0.2, dur(noisy)),
            ("idle_timeout", 0.2, dur(noisy)),
            ("per_try_timeout", 0.3, dur(noisy)),
            ("max_in_flight", 0.2, int(1, 10_000, noisy)),
            (
                "load",
                0.4,
                map(
                    noisy,
                    vec![
                        ("decay", 0.5, dur(noisy)),
                        ("default_rtt", 0.6, dur(noisy)),
                        ("report_ttl", 0.4, dur(noisy)),
                        ("error_penalty", 0.3, float(1.0, 1000.0, noisy)),
                    ],
                ),
            ),
            (
                "outlier",
                0.4,
                map(
                    noisy,
                    vec![
                        ("consecutive_failures", 0.7, int(0, 10, noisy)),
                        ("base_ejection", 0.5, short_dur(noisy)),
                        ("max_ejection", 0.3, dur(noisy)),
                        ("max_ejected_percent", 0.5, int(0, 100, noisy)),
                    ],
                ),
            ),
        ],
    );
    (
        body,
        source,
        lb,
        proptest::option::weighted(0.3, hash_key.clone()),
        hash_key,
    )
        .prop_map(|(body, (key, source), lb, stray_key, key_for_hash)| {
            let mut c = body.set(key, source);
            match lb {
                Some((lb, true)) => c = c.set("lb", lb).set("hash_key", key_for_hash),
                Some((lb, false)) => c = c.set("lb", lb),
                None => {}
            }
            if let Some(k) = stray_key {
                // Ignored (a warning) unless the cluster hashes.
                c = c.set("hash_key", k);
            }
            c
        })
        .boxed()
}

fn route(noisy: bool) -> Strat {
    let matcher = map(
        noisy,
        vec![
            (
                "host",
                0.4,
                text(
                    &["api.arena.gg", "API.arena.gg", "[::1]", "[x", "a:1", "é.gg"],
                    &["", "a/b", " "],
                    ".{0,12}",
                    noisy,
                ),
            ),
            (
                "path_prefix",
                0.4,
                text(&["/", "/v1", "/v1/matches", "/v1/"], &["v1", ""], "/.{0,10}", noisy),
            ),
            (
                "methods",
                0.3,
                list(
                    text(
                        &["GET", "post", " HEAD ", "OPTIONS"],
                        &["BREW", "", "CONNECT"],
                        "[A-Za-z]{0,6}",
                        noisy,
                    ),
                    3,
                ),
            ),
            (
                "headers",
                0.2,
                map(
                    noisy,
                    vec![
                        ("x-tenant", 0.6, text(&["douyu", ""], &[], ".{0,6}", noisy)),
                        ("X-Region", 0.3, text(&["sea"], &[], ".{0,3}", noisy)),
                    ],
                ),
            ),
        ],
    );
    let retry = map(
        noisy,
        vec![
            (
                "on",
                0.5,
                list(
                    word(
                        &["connect_failure", "reset", "timeout", "5xx"],
                        &["4xx", "Timeout"],
                        noisy,
                    ),
                    4,
                ),
            ),
            ("budget_percent", 0.3, float(0.0, 100.0, noisy)),
            ("min_per_second", 0.3, int(0, 4_294_967_295, noisy)),
            ("backoff", 0.5, dur(noisy)),
            ("non_idempotent", 0.3, boolean(noisy)),
        ],
    )
    .prop_flat_map(move |m| int(1, 10, noisy).prop_map(move |a| m.clone().set("attempts", a)))
    .boxed();
    let after = prop_oneof![
        2 => dur(noisy),
        1 => text(&["p95", "p50", "p99.9", "p0.001"], &["p0", "p100", "pnan", "p", "p-1"], "p[0-9.]{0,4}", noisy),
    ];
    let hedge = map(
        noisy,
        vec![("after", 0.97, after.boxed()), ("max_extra", 0.5, int(0, 5, noisy))],
    );
    let rate_limit = map(
        noisy,
        vec![
            ("requests_per_second", 0.98, int(1, 4_294_967_295, noisy)),
            ("burst", 0.5, int(1, 4_294_967_295, noisy)),
            (
                "key",
                0.4,
                text(
                    &["client_ip", "route", "header:x-user-id"],
                    &["header:", "cookie:x"],
                    ".{0,8}",
                    noisy,
                ),
            ),
            ("scope", 0.3, word(&["local"], &["cluster", "global"], noisy)),
            ("max_keys", 0.3, int(0, 1_000_000, noisy)),
            ("local_share", 0.3, float(0.000_001, 1.0, noisy)),
        ],
    );
    let fallback = map(
        noisy,
        vec![
            ("faas", 0.98, text(&["f"], &["g", ""], ".{0,4}", noisy)),
            (
                "on",
                0.3,
                list(
                    word(
                        &["retries_exhausted", "no_healthy_pods", "circuit_open"],
                        &["always"],
                        noisy,
                    ),
                    3,
                ),
            ),
            ("spillover_above_load", 0.4, float(0.0, 4.0, noisy)),
            ("warm_share", 0.4, share(noisy)),
        ],
    );
    map(
        noisy,
        vec![
            ("match", 0.7, matcher),
            ("cluster", 0.98, cluster_ref(noisy)),
            ("timeout", 0.4, dur(noisy)),
            ("retry", 0.4, retry),
            ("hedge", 0.3, hedge),
            ("rate_limit", 0.3, rate_limit),
            ("fallback", 0.15, fallback),
            ("replay_buffer_bytes", 0.2, int(0, 65_536, noisy)),
        ],
    )
}

fn function(noisy: bool) -> Strat {
    let http = map(
        noisy,
        vec![(
            "url",
            0.98,
            text(
                &["http://127.0.0.1:1", "https://fn.example/", "http://[::1]:8/x"],
                &["ftp://x", ""],
                "https?://.{0,10}",
                noisy,
            ),
        )],
    )
    .prop_map(|m| m.set("kind", Node::Plain("http".into())));
    let lambda = map(
        noisy,
        vec![
            (
                "function",
                0.98,
                text(&["verify", "arn:aws:lambda:x:1:function:f/é 1"], &[], ".{0,10}", noisy),
            ),
            ("region", 0.98, text(&["ap-southeast-1", "é"], &[], ".{0,6}", noisy)),
            (
                "endpoint",
                0.5,
                text(
                    &["http://127.0.0.1:3002/", "https://lambda.example"],
                    &["lambda"],
                    ".{0,6}",
                    noisy,
                ),
            ),
        ],
    )
    .prop_map(|m| m.set("kind", Node::Plain("aws_lambda".into())));
    let common = map(
        noisy,
        vec![
            ("timeout", 0.3, dur(noisy)),
            ("max_concurrency", 0.3, int(1, 4_294_967_295, noisy)),
            (
                "headers",
                0.2,
                map(
                    noisy,
                    vec![(
                        "x-api-key",
                        0.8,
                        text(
                            &["k", ""],
                            &["${env:ARENA_PROPS_UNSET}", "${env:", "a\nb"],
                            ".{0,6}",
                            noisy,
                        ),
                    )],
                ),
            ),
        ],
    );
    (prop_oneof![3 => http, 1 => lambda], common)
        .prop_map(|(target, common)| {
            let Node::Map(extra) = common else { return target };
            extra.into_iter().fold(target, |m, (k, v)| m.set(&k, v))
        })
        .boxed()
}

/// A list of up to `max` items named `names[i]` (unique, so references resolve), or — when
/// `noisy` — any names.
fn named(item: Strat, names: &'static [&'static str], max: usize, noisy: bool) -> Strat {
    let name = text(&["a", "r1", "f"], &["", " "], ".{0,8}", true);
    proptest::collection::vec((item, name), usize::from(!noisy)..=max)
        .prop_map(move |items| {
            Node::Seq(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, (item, name))| item.set("name", if noisy { name } else { Node::Str(names[i].into()) }))
                    .collect(),
            )
        })
        .boxed()
}

fn sections(noisy: bool) -> Strat {
    map(
        noisy,
        vec![
            ("clusters", 0.98, named(cluster(noisy), &["a", "b", "c"], 3, noisy)),
            ("routes", 0.95, named(route(noisy), &["r1", "r2", "r3"], 3, noisy)),
            ("faas", 0.6, named(function(noisy), &["f", "g"], 2, noisy)),
            (
                "redis",
                0.15,
                map(
                    noisy,
                    vec![
                        (
                            "url",
                            0.98,
                            text(
                                &["redis://127.0.0.1:6379", "redis://:pw@h:6380/2", "unix:///tmp/r.sock"],
                                &[
                                    "rediss://h:6380/0",
                                    "redis://[::1",
                                    "redis://h:port",
                                    "redis+unix://",
                                    "redis://",
                                    "http://h",
                                ],
                                "redis://.{0,10}",
                                noisy,
                            ),
                        ),
                        ("timeout", 0.4, dur(noisy)),
                    ],
                ),
            ),
            (
                "server",
                0.2,
                map(
                    noisy,
                    vec![
                        ("threads", 0.3, int(1, 4, noisy)),
                        ("work_stealing", 0.2, boolean(noisy)),
                        ("upstream_keepalive_pool_size", 0.2, int(1, 1 << 20, noisy)),
                        ("drain_delay", 0.3, dur(noisy)),
                        ("grace_period", 0.3, dur(noisy)),
                        ("graceful_shutdown_timeout", 0.3, dur(noisy)),
                        ("max_request_header_bytes", 0.3, int(0, 1 << 20, noisy)),
                        ("max_request_body_bytes", 0.3, int(0, 1 << 30, noisy)),
                        ("watch_debounce", 0.3, dur(noisy)),
                        ("h2c", 0.2, boolean(noisy)),
                    ],
                ),
            ),
            (
                "access_log",
                0.2,
                map(
                    noisy,
                    vec![
                        (
                            "output",
                            0.3,
                            text(&["stdout", "stderr"], &["", " "], "std[a-z]{0,3}", noisy),
                        ),
                        ("sample", 0.4, share(noisy)),
                        ("slow", 0.4, dur(noisy)),
                        ("errors", 0.3, boolean(noisy)),
                    ],
                ),
            ),
            ("debug_headers", 0.1, boolean(noisy)),
        ],
    )
}

/// Whole documents: one valid listener (so most get past it) and every other section maybe;
/// mostly clean ones (valid shapes, values at their bounds: most load), some noisy ones (any
/// value, wrong shapes, unknown keys: most are rejected, and must be rejected well).
fn document() -> BoxedStrategy<String> {
    prop_oneof![3 => sections(false), 1 => sections(true)]
        .prop_map(|n| {
            let mut out = String::from(LISTENER);
            match n {
                Node::Map(entries) => {
                    for (k, v) in entries {
                        out.push_str(&quote(&k));
                        out.push_str(": ");
                        v.emit(&mut out);
                        out.push('\n');
                    }
                }
                other => other.emit(&mut out),
            }
            out
        })
        .boxed()
}

fn end() -> BoxedStrategy<End> {
    let report = proptest::option::weighted(
        0.5,
        prop_oneof![
            (0.0..5.0f64, 0u32..100).prop_map(|(u, n)| format!("TEXT cpu_utilization={u}, named_metrics.inflight={n}")),
            "[ -~]{0,30}",
        ],
    );
    let kind = proptest::sample::select(vec![
        ErrorType::ConnectRefused,
        ErrorType::ConnectTimedout,
        ErrorType::ReadTimedout,
        ErrorType::ConnectionClosed,
        ErrorType::InvalidHTTPHeader,
        ErrorType::HTTPStatus(502),
        ErrorType::InternalError,
    ]);
    prop_oneof![
        3 => (prop_oneof![Just(200u16), Just(204), Just(404), Just(500), Just(503), 100u16..600], report, 0u64..2_000)
            .prop_map(|(status, report, ms)| End::Answer { status, report, ms }),
        2 => (kind, prop_oneof![0u64..2_000, Just(86_400_000)]).prop_map(|(kind, ms)| End::Fail { kind, ms }),
    ]
    .boxed()
}

fn requests() -> BoxedStrategy<Script> {
    let req = (
        any::<usize>(),
        proptest::sample::select(&["GET", "POST", "HEAD", "PUT"][..]),
        prop_oneof![
            Just("api.arena.gg".to_string()),
            Just("[x".to_string()),
            "[a-z.:\\[\\]0-9]{0,12}"
        ],
        prop_oneof![Just("session=s1".to_string()), "[ -~]{0,12}"],
        "[ -~]{0,8}",
        proptest::option::of(any::<[u8; 4]>().prop_map(IpAddr::from)),
        proptest::collection::vec(end(), 1..4),
        prop_oneof![0u64..100, Just(61_000), Just(86_400_000)],
    )
        .prop_map(|(route, method, host, cookie, user, ip, tries, idle_ms)| Req {
            route,
            method,
            host,
            cookie,
            user,
            ip,
            tries,
            idle_ms,
        });
    (any::<u64>(), proptest::collection::vec(req, 1..8))
        .prop_map(|(seed, requests)| Script { seed, requests })
        .boxed()
}

/// Text made of YAML's syntax and the document's words, with runs of nesting deep enough to
/// have overflowed the parser's stack: the loader answers, never panics.
fn yaml_soup() -> impl Strategy<Value = String> {
    let words = [
        "[",
        "]",
        "{",
        "}",
        ": ",
        ":",
        "- ",
        ", ",
        " ",
        "  ",
        "\n",
        "\t",
        "\"",
        "'",
        "#",
        "&a ",
        "*a",
        "!!str ",
        "!!binary ",
        "? ",
        "|\n",
        ">-\n",
        "---\n",
        "...\n",
        "%YAML 1.2\n",
        "<<: ",
        "~",
        ".nan",
        "0x1F",
        "1e999",
        "listeners",
        "clusters",
        "routes",
        "name",
        "endpoints",
        "127.0.0.1:8080",
        "timeout",
        "5s",
        "é",
        "\u{feff}",
        "\u{0}",
    ];
    let tokens: Vec<String> = words.iter().map(|w| w.to_string()).collect();
    let soup = proptest::collection::vec(proptest::sample::select(tokens), 0..40).prop_map(|t| t.concat());
    // Nesting of each kind, 0 to 2000 levels deep, before the soup.
    let nesting = (0usize..4, 0usize..2000).prop_map(|(kind, depth)| match kind {
        0 => format!("clusters:\n{}", "- ".repeat(depth)),
        1 => "[".repeat(depth),
        2 => "{a: ".repeat(depth),
        _ => (0..depth).map(|i| format!("{}k:\n", " ".repeat(i))).collect(),
    });
    (nesting, soup).prop_map(|(n, t)| n + &t)
}

proptest! {
    #![proptest_config(crate::props::config(CONFIG_CASES))]

    #[test]
    fn any_text_is_loaded_or_rejected(text in yaml_soup()) {
        if let Err(errors) = crate::config::load_str(&text, "t.yaml") {
            prop_assert!(errors.errors().next().is_some());
        }
    }

    #[test]
    fn accepted_configs_build_and_serve(text in document(), script in requests()) {
        run(&text, &script);
    }
}

/// Documents per run: each is loaded, built twice and served under paused time.
const CONFIG_CASES: u32 = 1024;

// ------------------------------------------------------------------------------ regressions

fn script(tries: Vec<End>) -> Script {
    Script {
        seed: 7,
        requests: (0..3)
            .map(|i| Req {
                route: 0,
                method: "GET",
                host: "api.arena.gg".into(),
                cookie: "session=s1".into(),
                user: "u1".into(),
                ip: Some(IpAddr::from([10, 0, 0, i])),
                tries: tries.clone(),
                idle_ms: 10,
            })
            .collect(),
    }
}

fn ok() -> End {
    End::Answer {
        status: 200,
        report: Some("TEXT cpu_utilization=0.5".into()),
        ms: 5,
    }
}

fn refused() -> End {
    End::Fail {
        kind: ErrorType::ConnectRefused,
        ms: 1,
    }
}

const LISTENER: &str = "listeners: [{ name: p, address: 127.0.0.1:8080 }]\n";

fn doc(body: &str) -> String {
    format!("{LISTENER}{body}")
}

/// Issue 10: `load.default_rtt: 0s` made `Endpoint::seed` clamp with min > max once a pod
/// joined a cluster whose pods had served.
#[test]
fn zero_default_rtt_seeds_joining_pods() {
    let text = doc("clusters: [{ name: c, endpoints: [\"127.0.0.11:9100\"], load: { default_rtt: 0s } }]\nroutes: [{ name: r, cluster: c }]\n");
    assert!(run(&text, &script(vec![ok()])));
}

/// Issue 10: a route timeout past what `Instant` can add overflowed when a request started.
#[test]
fn absurd_route_timeout_is_rejected_not_a_panic() {
    let text = doc("clusters: [{ name: c, endpoints: [\"127.0.0.11:9100\"] }]\nroutes: [{ name: r, cluster: c, timeout: 500000000000y }]\n");
    assert!(!run(&text, &script(vec![ok()])));
}

/// An ejection time past what `Instant` can add overflowed at the first ejection.
#[test]
fn absurd_ejection_times_are_rejected_not_a_panic() {
    let text = doc("clusters: [{ name: c, endpoints: [\"127.0.0.11:9100\", \"127.0.0.12:9100\"], outlier: { consecutive_failures: 1, base_ejection: 500000000000y, max_ejection: 500000000000y, max_ejected_percent: 100 } }]\nroutes: [{ name: r, cluster: c }]\n");
    assert!(!run(&text, &script(vec![refused(), refused(), refused()])));
}

/// A hedge delay past what `Instant` can add overflowed when the race armed its timer.
#[test]
fn absurd_hedge_delay_is_rejected_not_a_panic() {
    let text = doc("clusters: [{ name: c, endpoints: [\"127.0.0.11:9100\", \"127.0.0.12:9100\"] }]\nroutes: [{ name: r, cluster: c, hedge: { after: 500000000000y } }]\n");
    assert!(!run(&text, &script(vec![ok()])));
}

/// A retry backoff near `Duration::MAX` overflowed the jitter's `mul_f64` on the first retry.
#[test]
fn absurd_retry_backoff_is_rejected_not_a_panic() {
    let text = doc("clusters: [{ name: c, endpoints: [\"127.0.0.11:9100\", \"127.0.0.12:9100\"] }]\nroutes: [{ name: r, cluster: c, retry: { attempts: 3, backoff: 18446744073709551615s } }]\n");
    assert!(!run(&text, &script(vec![refused(), refused(), ok()])));
}

/// Every duration key rejects more than 365 days at the value, with the cap in the hint; 365
/// days itself is accepted.
#[test]
fn durations_over_the_cap_are_positioned_errors_with_a_hint() {
    let keys = [
        "clusters: [{ name: c, endpoints: [\"127.0.0.11:9100\"], connect_timeout: D }]",
        "clusters: [{ name: c, endpoints: [\"127.0.0.11:9100\"], idle_timeout: D }]",
        "clusters: [{ name: c, endpoints: [\"127.0.0.11:9100\"], per_try_timeout: D }]",
        "clusters: [{ name: c, endpoints: [\"127.0.0.11:9100\"], load: { decay: D } }]",
        "clusters: [{ name: c, endpoints: [\"127.0.0.11:9100\"], load: { default_rtt: D } }]",
        "clusters: [{ name: c, endpoints: [\"127.0.0.11:9100\"], load: { report_ttl: D } }]",
        "clusters: [{ name: c, endpoints: [\"127.0.0.11:9100\"], outlier: { base_ejection: 1s, max_ejection: D } }]",
        "clusters: [{ name: c, dns: { name: c.svc, port: 1, min_refresh: D, max_refresh: D } }]",
        "clusters: [{ name: c, dns: { name: c.svc, port: 1, max_refresh: D } }]",
        "clusters: [{ name: c, dns: { name: c.svc, port: 1, timeout: D } }]",
        "routes: [{ name: r, cluster: c, timeout: D }]",
        "routes: [{ name: r, cluster: c, retry: { attempts: 2, backoff: D } }]",
        "routes: [{ name: r, cluster: c, hedge: { after: D } }]",
        "faas: [{ name: f, kind: http, url: \"http://127.0.0.1:1\", timeout: D }]",
        "redis: { url: \"redis://127.0.0.1:6379\", timeout: D }",
        "server: { drain_delay: D }",
        "server: { grace_period: D }",
        "server: { graceful_shutdown_timeout: D }",
        "server: { watch_debounce: D }",
        "access_log: { slow: D }",
    ];
    let base = "clusters: [{ name: c, endpoints: [\"127.0.0.11:9100\"] }]\nroutes: [{ name: r, cluster: c }]\n";
    for key in keys {
        // The section under test replaces the base's own section of that name.
        let section = key.split(':').next().unwrap();
        let rest: String = base
            .lines()
            .filter(|l| !l.starts_with(section))
            .map(|l| format!("{l}\n"))
            .collect();
        let accepted = doc(&format!("{rest}{}\n", key.replace('D', "365d")));
        assert!(crate::config::load_str(&accepted, "t.yaml").is_ok(), "{accepted}");
        let text = doc(&format!("{rest}{}\n", key.replace('D', "366d")));
        let errors = crate::config::load_str(&text, "t.yaml").unwrap_err();
        let e = errors
            .errors()
            .find(|e| e.message.contains("longer than 365 days"))
            .unwrap_or_else(|| panic!("{key}: {errors}"));
        assert!(e.hint.as_deref().unwrap().contains("at most 365 days"), "{e}");
        let line = text.lines().position(|l| l.contains("366d")).unwrap() + 1;
        let col = text.lines().nth(line - 1).unwrap().find("366d").unwrap() + 1;
        assert_eq!(e.location, format!("t.yaml:{line}:{col}"), "{key}");
    }
}

/// `dns.timeout: 0s` passed the check, then the resolver refused it: the cluster never
/// resolved.
#[test]
fn zero_dns_timeout_is_rejected() {
    let text =
        doc("clusters: [{ name: c, dns: { name: c.svc, port: 1, timeout: 0s } }]\nroutes: [{ name: r, cluster: c }]\n");
    let errors = crate::config::load_str(&text, "t.yaml").unwrap_err();
    assert!(errors.errors().any(|e| e.message.contains("dns.timeout")), "{errors}");
}

/// Found by `accepted_configs_build_and_serve`: the check took any URL with a Redis scheme, so
/// `rediss://` (TLS is not built in) and malformed URLs passed it and then failed to build.
#[test]
fn redis_urls_the_client_refuses_are_rejected_at_load() {
    let base = "clusters: [{ name: c, endpoints: [\"127.0.0.11:9100\"] }]\nroutes: [{ name: r, cluster: c }]\n";
    for url in [
        "rediss://h:6380/0",
        "redis://",
        "redis://h:port",
        "redis://[::1",
        "redis://h/db",
    ] {
        let text = doc(&format!("{base}redis: {{ url: \"{url}\" }}\n"));
        let errors = crate::config::load_str(&text, "t.yaml").unwrap_err();
        let e = errors.errors().next().unwrap();
        assert!(e.message.contains("bad redis url"), "{url}: {e}");
        assert!(e.location.starts_with("t.yaml:4:"), "{url}: {e}");
        assert!(e.hint.is_some());
    }
    for url in [
        "redis://127.0.0.1:6379",
        "redis://:secret@h:6380/2",
        "unix:///tmp/redis.sock",
    ] {
        let text = doc(&format!("{base}redis: {{ url: \"{url}\" }}\n"));
        assert!(run(&text, &script(vec![ok()])), "{url}");
    }
}

/// `server.upstream_keepalive_pool_size` sizes two connection pools up front: 2^40 aborted the
/// process at start (allocation failure), after the check had accepted it; so did thread
/// counts no machine can start.
#[test]
fn server_sizes_past_their_caps_are_rejected() {
    for (key, value) in [
        ("upstream_keepalive_pool_size", "1099511627776"),
        ("upstream_keepalive_pool_size", "1048577"),
        ("threads", "1025"),
        ("threads", "1000000"),
    ] {
        let text = doc(&format!("server: {{ {key}: {value} }}\n"));
        let errors = crate::config::load_str(&text, "t.yaml").unwrap_err();
        let e = errors.errors().next().unwrap();
        assert!(e.message.contains(key) && e.hint.is_some(), "{key}: {e}");
        assert!(e.location.starts_with("t.yaml:2:"), "{e}");
    }
    let text = doc("server: { upstream_keepalive_pool_size: 1048576, threads: 1024 }\n");
    assert!(crate::config::load_str(&text, "t.yaml").is_ok());
}

/// Found while probing the loader with odd text (`any_text_is_loaded_or_rejected` finds it
/// too): YAML's block nesting (`- - - …`) had no limit and the parser loads nested nodes
/// recursively, so about a thousand levels overflowed a 2 MiB thread stack — the size of the
/// threads a reload runs on: the process aborted (a stack overflow is no panic a test can
/// catch). Deep nesting is now a positioned error.
#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let load = |text: String| {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || crate::config::load_str(&text, "t.yaml"))
            .unwrap()
            .join()
            .unwrap()
    };
    for depth in [65, 1_000, 100_000] {
        for text in [
            format!("clusters:\n{}", "- ".repeat(depth)),
            format!("clusters: {}{}", "[".repeat(depth), "]".repeat(depth)),
            format!("clusters: {}{}", "{a: ".repeat(depth), "}".repeat(depth)),
        ] {
            let errors = load(text).unwrap_err();
            let e = errors.errors().next().unwrap();
            // Past 255 flow levels the scanner's own limit may speak first.
            let deep = e.message.contains("nested deeper than 64") || e.message.contains("recursion limit");
            assert!(deep, "{e}");
            assert!(e.location.starts_with("t.yaml:"), "{e}");
        }
    }
    // 64 levels (the document itself is the first) still load as YAML.
    let text = format!("{LISTENER}x: {}{}", "[".repeat(63), "]".repeat(63));
    let errors = load(text).unwrap_err();
    assert!(
        errors.errors().all(|e| e.message.contains("unknown top-level key")),
        "{errors}"
    );
}
