//! The admin web UI: `GET /ui`, one page whose script and styles are compiled into the binary
//! (nothing fetched from anywhere else), and `GET /ui/state`, the JSON it polls — routes' rates,
//! error rates and latency with five minutes of history, pods, functions, releases, the last
//! reload and the last error lines — also usable by scripts.

use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use http::{Response, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::live::{self, RouteWindow, Tick};
use crate::metrics::RouteTotals;
use crate::state::{Gateway, Snapshot};

const HTML: &str = include_str!("ui/index.html");
const CSS: &str = include_str!("ui/app.css");
const JS: &str = include_str!("ui/app.js");

/// Samples the live numbers span (about five seconds).
const LIVE_TICKS: usize = 5;
/// Samples per history point (two seconds), for up to [`live::KEEP`] samples (five minutes).
const SPARK_STEP: usize = 2;

/// The page with its styles and script inlined, and the Content-Security-Policy that lets only
/// that script run (by its hash): data shown by the page — paths from the access log, for one —
/// can never become code.
struct Page {
    html: String,
    csp: String,
}

fn page() -> &'static Page {
    static PAGE: OnceLock<Page> = OnceLock::new();
    PAGE.get_or_init(|| {
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(JS.as_bytes()));
        Page {
            html: HTML
                .replacen("<!--ARENA:CSS-->", &format!("<style>{CSS}</style>"), 1)
                .replacen("<!--ARENA:JS-->", &format!("<script>{JS}</script>"), 1),
            csp: format!(
                "default-src 'none'; script-src 'sha256-{hash}'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
            ),
        }
    })
}

/// The page. `status` is 401 when reads need the token and the browser's navigation carried
/// none: the page then holds no data and asks for the token, which its polls send.
pub fn page_response(status: StatusCode) -> Response<Vec<u8>> {
    let p = page();
    let mut b = Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(http::header::CACHE_CONTROL, "no-store")
        .header(http::header::CONTENT_SECURITY_POLICY, p.csp.as_str())
        .header(http::header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(http::header::REFERRER_POLICY, "no-referrer");
    if status == StatusCode::UNAUTHORIZED {
        b = b.header(http::header::WWW_AUTHENTICATE, "Bearer");
    }
    b.body(p.html.as_bytes().to_vec())
        .unwrap_or_else(|_| Response::new(Vec::new()))
}

/// `/ui/state`: compact (it is polled every second), never cached.
pub fn state_response(gw: &Gateway) -> Response<Vec<u8>> {
    let body = serde_json::to_vec(&state(gw)).unwrap_or_default();
    Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::CACHE_CONTROL, "no-store")
        .body(body)
        .unwrap_or_else(|_| Response::new(Vec::new()))
}

/// History points: pairs of samples [`SPARK_STEP`] apart, oldest first, ending at the last.
fn spark_pairs(ticks: &[Arc<Tick>]) -> Vec<(&Tick, &Tick)> {
    let mut ends: Vec<usize> = (0..ticks.len()).rev().step_by(SPARK_STEP).collect();
    ends.reverse();
    ends.windows(2).map(|w| (&*ticks[w[0]], &*ticks[w[1]])).collect()
}

fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

fn opt(v: Option<f64>, digits: i32) -> Value {
    v.filter(|x| x.is_finite())
        .map_or(Value::Null, |x| json!(round(x, digits)))
}

fn window_json(w: Option<&RouteWindow>) -> Value {
    match w {
        Some(w) => json!({
            "requests": w.requests,
            "rate": round(w.rate, 2),
            "error_rate": opt(w.error_rate, 5),
            "p50_ms": opt(w.p50_ms, 3),
            "p99_ms": opt(w.p99_ms, 3),
        }),
        None => {
            json!({"requests": 0, "rate": Value::Null, "error_rate": Value::Null, "p50_ms": Value::Null, "p99_ms": Value::Null})
        }
    }
}

/// A route's history: time, rate, error rate, p50 and p99 per point.
fn route_spark(pairs: &[(&Tick, &Tick)], route: &str) -> Value {
    let mut t = Vec::new();
    let (mut rate, mut err, mut p50, mut p99) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (a, b) in pairs {
        let w = live::route_window(a, b, route);
        t.push(json!(b.unix_ms));
        rate.push(w.as_ref().map_or(Value::Null, |w| json!(round(w.rate, 2))));
        err.push(opt(w.as_ref().and_then(|w| w.error_rate), 5));
        p50.push(opt(w.as_ref().and_then(|w| w.p50_ms), 3));
        p99.push(opt(w.as_ref().and_then(|w| w.p99_ms), 3));
    }
    json!({"t": t, "rate": rate, "error_rate": err, "p50_ms": p50, "p99_ms": p99})
}

/// Every route's counts of a sample summed (the gateway as a whole).
fn all_routes(t: &Tick) -> RouteTotals {
    let mut sum = RouteTotals::default();
    for r in &t.routes {
        live::merge(&mut sum, &r.totals);
    }
    sum
}

/// The whole picture `/ui` shows, as of now.
pub fn state(gw: &Gateway) -> Value {
    let snap = gw.snapshot();
    let mut ticks = gw.live.ticks();
    // A fresh sample ends every window: the numbers are as of this call, not the last second.
    ticks.push(Arc::new(Tick::take(&snap, &gw.metrics)));
    let last = ticks.len() - 1;
    let (base, now) = (
        Arc::clone(&ticks[last.saturating_sub(LIVE_TICKS)]),
        Arc::clone(&ticks[last]),
    );
    let secs = live::seconds(&base, &now);
    let pairs = spark_pairs(&ticks);
    let route_windows: Vec<(String, Option<RouteWindow>)> = snap
        .routes
        .iter()
        .map(|r| (r.spec.name.clone(), live::route_window(&base, &now, &r.spec.name)))
        .collect();
    let total = live::totals_window(&all_routes(&base), &all_routes(&now), secs);
    let total_spark = {
        let (mut rate, mut err, mut p99) = (Vec::new(), Vec::new(), Vec::new());
        for (a, b) in &pairs {
            let w = live::totals_window(&all_routes(a), &all_routes(b), live::seconds(a, b));
            rate.push(json!(round(w.rate, 2)));
            err.push(opt(w.error_rate, 5));
            p99.push(opt(w.p99_ms, 3));
        }
        json!({"rate": rate, "error_rate": err, "p99_ms": p99})
    };
    let routes: Vec<Value> = snap
        .routes
        .iter()
        .zip(&route_windows)
        .map(|(r, (_, w))| {
            json!({
                "name": r.spec.name,
                "cluster": r.spec.cluster,
                "release": r.release.as_ref().map(|rel| rel.release.name()),
                "fallback": r.fallback.as_ref().map(|f| f.name()),
                "live": window_json(w.as_ref()),
                "spark": route_spark(&pairs, &r.spec.name),
            })
        })
        .collect();
    let reload = gw.reload_status();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "now_ms": now.unix_ms,
        "window_s": round(secs, 2),
        "spark_step_s": SPARK_STEP as f64 * live::EVERY.as_secs_f64(),
        "generation": snap.generation,
        "reload": {
            "generation": reload.generation,
            "last_trigger": reload.last_trigger,
            "last_result": reload.last_result,
            "last_success_unix_s": gw.metrics.last_reload_success.get(),
            "diagnostics": reload.diagnostics,
            "watch_checks": reload.watch_checks,
        },
        "auth": {
            "reads_need_token": snap.config.admin.reads_need_token(),
            "token_configured": snap.config.admin.token.is_some(),
        },
        "draining": gw.is_draining(),
        "total": {"live": window_json(Some(&total)), "spark": total_spark},
        "routes": routes,
        "clusters": clusters(&snap, &base, &now, secs),
        "functions": functions(&snap, &base, &now, secs, &route_windows, &pairs),
        "releases": releases(&snap, &pairs),
        "errors": gw.live.recent_errors().iter().filter_map(|l| serde_json::from_str::<Value>(l).ok()).collect::<Vec<_>>(),
    })
}

/// Each cluster's pods as `/clusters` shows them, with their rate and share of the cluster's
/// requests over the live window.
fn clusters(snap: &Snapshot, base: &Tick, now: &Tick, secs: f64) -> Vec<Value> {
    snap.clusters
        .iter()
        .map(|c| {
            let view = c.view();
            let deltas: Vec<Option<(u64, u64)>> = view
                .pods
                .iter()
                .map(|p| {
                    let (a, b) = (base.pod(c.name(), p.address)?, now.pod(c.name(), p.address)?);
                    Some((
                        b.requests.saturating_sub(a.requests),
                        b.failures.saturating_sub(a.failures),
                    ))
                })
                .collect();
            let sum: u64 = deltas.iter().flatten().map(|(r, _)| r).sum();
            let pods: Vec<Value> = view
                .pods
                .iter()
                .zip(&deltas)
                .map(|(p, d)| {
                    let mut v = serde_json::to_value(p).unwrap_or(Value::Null);
                    if let Value::Object(m) = &mut v {
                        let (req, fail) = d.unwrap_or((0, 0));
                        m.insert("rate".into(), json!(round(req as f64 / secs, 2)));
                        m.insert(
                            "share".into(),
                            if sum > 0 {
                                json!(round(req as f64 / sum as f64, 4))
                            } else {
                                Value::Null
                            },
                        );
                        m.insert(
                            "failure_rate".into(),
                            if req > 0 {
                                json!(round(fail as f64 / req as f64, 4))
                            } else {
                                Value::Null
                            },
                        );
                    }
                    v
                })
                .collect();
            let count = |s: &str| view.pods.iter().filter(|p| p.state == s).count();
            json!({
                "name": view.name,
                "lb": view.lb,
                "discovery": view.discovery,
                "rate": round(sum as f64 / secs, 2),
                "healthy": count("healthy"),
                "ejected": count("ejected"),
                "draining": count("draining"),
                "pods": pods,
            })
        })
        .collect()
}

/// Each function: in flight against its limit, invocations, errors and refusals over the live
/// window, and its share of the requests of the routes that fall back to it.
fn functions(
    snap: &Snapshot,
    base: &Tick,
    now: &Tick,
    secs: f64,
    routes: &[(String, Option<RouteWindow>)],
    pairs: &[(&Tick, &Tick)],
) -> Vec<Value> {
    snap.functions
        .iter()
        .map(|f| {
            let name = f.name();
            let (a, b) = (base.function(name).unwrap_or_default(), now.function(name).unwrap_or_default());
            let calls = b.calls.saturating_sub(a.calls);
            let errors = b.errors.saturating_sub(a.errors);
            let saturated = b.saturated.saturating_sub(a.saturated);
            let served_routes: Vec<&str> = snap
                .routes
                .iter()
                .filter(|r| r.fallback.as_ref().is_some_and(|x| x.name() == name))
                .map(|r| r.spec.name.as_str())
                .collect();
            let route_requests: u64 = routes
                .iter()
                .filter(|(n, _)| served_routes.contains(&n.as_str()))
                .filter_map(|(_, w)| w.as_ref().map(|w| w.requests))
                .sum();
            let max = f.spec.max_concurrency.max(1);
            let spark: Vec<Value> = pairs
                .iter()
                .map(|(x, y)| {
                    let (cx, cy) = (x.function(name).unwrap_or_default(), y.function(name).unwrap_or_default());
                    json!(round(cy.calls.saturating_sub(cx.calls) as f64 / live::seconds(x, y), 2))
                })
                .collect();
            json!({
                "name": name,
                "kind": match f.spec.target {
                    crate::config::FaasTarget::Http { .. } => "http",
                    crate::config::FaasTarget::AwsLambda { .. } => "aws_lambda",
                },
                "routes": served_routes,
                "in_flight": f.in_flight(),
                "max_concurrency": f.spec.max_concurrency,
                "saturation": round(f.in_flight() as f64 / f64::from(max), 4),
                "rate": round(calls as f64 / secs, 2),
                "share": if route_requests > 0 { json!(round((calls as f64 / route_requests as f64).min(1.0), 4)) } else { Value::Null },
                "error_rate": if calls > 0 { json!(round(errors as f64 / calls as f64, 4)) } else { Value::Null },
                "errors_rate": round(errors as f64 / secs, 2),
                "saturated_rate": round(saturated as f64 / secs, 2),
                "total": {"calls": b.calls, "errors": b.errors, "saturated": b.saturated},
                "spark": {"rate": spark},
            })
        })
        .collect()
}

/// Each release as `/releases` shows it, with the history of its weight and of both versions'
/// error rate and p99.
fn releases(snap: &Snapshot, pairs: &[(&Tick, &Tick)]) -> Vec<Value> {
    snap.releases
        .iter()
        .map(|r| {
            let mut v = super::releases::view(r);
            let points: Vec<_> = pairs.iter().filter_map(|(_, b)| b.release(r.name())).collect();
            let series = |f: &dyn Fn(&live::ReleaseSample) -> Value| points.iter().map(|p| f(p)).collect::<Vec<_>>();
            let ms = |d: std::time::Duration| json!(round(d.as_secs_f64() * 1000.0, 3));
            let spark = json!({
                "weight": series(&|p| json!(p.weight)),
                "stable_error_rate": series(&|p| json!(round(p.stable.error_rate, 5))),
                "canary_error_rate": series(&|p| json!(round(p.canary.error_rate, 5))),
                "stable_p99_ms": series(&|p| ms(p.stable.p99)),
                "canary_p99_ms": series(&|p| ms(p.canary.p99)),
            });
            if let Value::Object(m) = &mut v {
                m.insert("spark".into(), spark);
            }
            v
        })
        .collect()
}

#[cfg(test)]
#[path = "ui_tests.rs"]
mod tests;
