//! Runtime control plane under `/_pod/`: health, stats and live fault knobs.
//!
//! These requests bypass every fault knob so a stuck or failing pod can still
//! be inspected and repaired by the load tester's fault timeline.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{Map, Value};

use super::server::{json_response, PodBody};
use super::state::{KnobSettings, PodState};

/// Config bodies are tiny; anything bigger is a client bug.
const MAX_CONFIG_BODY: usize = 64 * 1024;

/// Answers a `/_pod/...` request.
pub(crate) async fn handle(state: &PodState, req: Request<Incoming>) -> Response<PodBody> {
    let endpoint = match req.uri().path() {
        "/_pod/healthz" => "healthz",
        "/_pod/stats" => "stats",
        "/_pod/config" => "config",
        _ => "",
    };
    match (endpoint, req.method()) {
        ("healthz", &Method::GET) => json_response(StatusCode::OK, state.bodies.healthz.clone()),
        ("stats", &Method::GET) => json_response(StatusCode::OK, stats_body(state)),
        ("config", &Method::GET) => json_response(StatusCode::OK, settings_body(state, state.knobs.snapshot())),
        ("config", &Method::POST) => update_config(state, req.into_body()).await,
        ("healthz" | "stats" | "config", _) => {
            json_response(StatusCode::METHOD_NOT_ALLOWED, state.bodies.method_not_allowed.clone())
        }
        _ => json_response(StatusCode::NOT_FOUND, state.bodies.not_found.clone()),
    }
}

fn stats_body(state: &PodState) -> Bytes {
    let c = &state.counters;
    Bytes::from(state.id.object(&format!(
        r#""requests":{},"in_flight":{},"errors_injected":{},"served":{}"#,
        c.requests.load(Ordering::Relaxed),
        c.in_flight.load(Ordering::Relaxed),
        c.errors_injected.load(Ordering::Relaxed),
        c.served.load(Ordering::Relaxed),
    )))
}

fn settings_body(state: &PodState, s: KnobSettings) -> Bytes {
    let mut map = Map::new();
    map.insert("latency_ms".into(), ms(s.latency).into());
    map.insert("jitter_ms".into(), ms(s.jitter).into());
    map.insert("error_rate".into(), s.error_rate.into());
    map.insert("stuck".into(), s.stuck.into());
    map.insert("report_utilization".into(), s.report_utilization.into());
    map.insert("pod".into(), state.id.name.clone().into());
    map.insert("version".into(), state.id.version.clone().into());
    // Serializing a map of plain values cannot fail; fall back to `{}` anyway.
    Bytes::from(serde_json::to_vec(&Value::Object(map)).unwrap_or_else(|_| b"{}".to_vec()))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn update_config(state: &PodState, body: Incoming) -> Response<PodBody> {
    let bad_request = |msg: String| {
        let body = state.id.object(&format!(
            r#""error":{},"status":400"#,
            serde_json::to_string(&msg).unwrap_or_else(|_| "\"bad request\"".into())
        ));
        json_response(StatusCode::BAD_REQUEST, Bytes::from(body))
    };
    let bytes = match Limited::new(body, MAX_CONFIG_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return bad_request(format!("reading body: {e}")),
    };
    let patch: Map<String, Value> = match serde_json::from_slice(&bytes) {
        Ok(p) => p,
        Err(e) => return bad_request(format!("expected a JSON object: {e}")),
    };

    // Serialize concurrent updates so one patch cannot undo another.
    let _guard = state.config_lock.lock().await;
    let settings = match apply_patch(state.knobs.snapshot(), &patch) {
        Ok(s) => s,
        Err(msg) => return bad_request(msg),
    };
    state.knobs.apply(settings);
    json_response(StatusCode::OK, settings_body(state, settings))
}

/// Validates every field of `patch` before anything is applied.
fn apply_patch(mut s: KnobSettings, patch: &Map<String, Value>) -> Result<KnobSettings, String> {
    for (key, value) in patch {
        match key.as_str() {
            "latency_ms" => s.latency = duration_ms(key, value)?,
            "jitter_ms" => s.jitter = duration_ms(key, value)?,
            "error_rate" => s.error_rate = fraction(key, value)?,
            "stuck" => {
                s.stuck = value.as_bool().ok_or_else(|| format!("{key} must be a boolean"))?;
            }
            "report_utilization" => {
                s.report_utilization = if value.is_null() {
                    None
                } else {
                    Some(fraction(key, value)?)
                };
            }
            other => return Err(format!("unknown field {other:?}")),
        }
    }
    Ok(s)
}

fn duration_ms(key: &str, value: &Value) -> Result<Duration, String> {
    value
        .as_f64()
        .filter(|ms| *ms >= 0.0)
        .and_then(|ms| Duration::try_from_secs_f64(ms / 1000.0).ok())
        .ok_or_else(|| format!("{key} must be a non-negative number of milliseconds"))
}

fn fraction(key: &str, value: &Value) -> Result<f64, String> {
    value
        .as_f64()
        .filter(|f| (0.0..=1.0).contains(f))
        .ok_or_else(|| format!("{key} must be a number within 0.0..=1.0"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn base() -> KnobSettings {
        KnobSettings {
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            error_rate: 0.0,
            stuck: true,
            report_utilization: Some(0.3),
        }
    }

    fn patch(json: &str) -> Result<KnobSettings, String> {
        apply_patch(base(), &serde_json::from_str(json).unwrap())
    }

    #[test]
    fn patches_only_given_fields() {
        let s = patch(r#"{"latency_ms":2.5,"stuck":false,"report_utilization":null}"#).unwrap();
        assert_eq!(s.latency, Duration::from_micros(2500));
        assert!(!s.stuck);
        assert_eq!(s.report_utilization, None);
        assert_eq!(s.error_rate, 0.0);
        assert_eq!(patch("{}").unwrap(), base());
    }

    #[test]
    fn rejects_bad_values() {
        assert!(patch(r#"{"error_rate":1.5}"#).is_err());
        assert!(patch(r#"{"latency_ms":-1}"#).is_err());
        assert!(patch(r#"{"latency_ms":1e300}"#).is_err());
        assert!(patch(r#"{"stuck":"yes"}"#).is_err());
        assert!(patch(r#"{"latncy_ms":1}"#).is_err());
    }
}
