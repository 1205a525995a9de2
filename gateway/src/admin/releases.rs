//! `/releases`: every release's state and live comparison, and operators' controls —
//! `POST /releases/NAME/{weight,pause,resume,promote,rollback}` (the token is checked by the
//! caller). Plain functions over the gateway state, so tests need no socket.

use arena_core::config::release::{parse_percent_bp, percent_text};
use arena_core::release::{Operator, Release};
use http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::rollout::ApplyError;
use crate::state::Gateway;

/// The JSON view of one release: its rollout state and the two versions' windows now.
pub fn view(release: &Release) -> Value {
    let spec = release.spec();
    let state = release.state();
    let (stable, canary) = release.windows(tokio::time::Instant::now());
    json!({
        "name": spec.name,
        "state": state.phase.as_str(),
        "weight": f64::from(state.weight_bp) / 100.0,
        "weight_text": percent_text(state.weight_bp),
        "step": state.step.map(|s| s + 1),
        "steps": spec.steps.iter().map(|bp| percent_text(*bp)).collect::<Vec<_>>(),
        "routes": spec.routes,
        "stable": spec.stable,
        "canary": spec.canary,
        "scope": spec.scope,
        "on_failure": spec.on_failure,
        "analysis": spec.analysis,
        "window": { "stable": stable, "canary": canary },
        "last_verdict": state.last_verdict,
        "history": state.history,
        "generation": state.generation,
    })
}

/// The operator request `action` on a release, with the request body (`weight` takes
/// `{"weight": "25%"}` or `?weight=25%`; `rollback` an optional `{"reason": "..."}`).
pub fn operator(action: &str, query: Option<&str>, body: &[u8]) -> Result<Operator, String> {
    let field = |name: &str| -> Option<String> {
        let from_body = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| match v.get(name)? {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(format!("{n}%")),
                _ => None,
            });
        from_body.or_else(|| {
            form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        })
    };
    match action {
        "weight" => {
            let text = field("weight").ok_or("give the weight: {\"weight\": \"25%\"} or ?weight=25%")?;
            let bp = parse_percent_bp(text.trim()).map_err(|e| format!("weight `{text}`: {e}"))?;
            Ok(Operator::SetWeight(bp))
        }
        "pause" => Ok(Operator::Pause),
        "resume" => Ok(Operator::Resume),
        "promote" => Ok(Operator::Promote),
        "rollback" => Ok(Operator::Rollback(
            field("reason").unwrap_or_else(|| "rolled back by an operator".into()),
        )),
        other => Err(format!(
            "unknown action `{other}`: weight, pause, resume, promote, rollback"
        )),
    }
}

/// Routes `/releases...`; `None` when `path` is not one of them.
pub fn handle(
    gw: &Gateway,
    method: &Method,
    path: &str,
    query: Option<&str>,
    body: &[u8],
) -> Option<(StatusCode, Value)> {
    let rest = path.strip_prefix("/releases")?;
    // Segments percent-decoded: a client may encode any byte of a name.
    let decoded: Vec<String> = rest
        .split('/')
        .filter(|p| !p.is_empty())
        .map(|p| percent_encoding::percent_decode_str(p).decode_utf8_lossy().into_owned())
        .collect();
    let parts: Vec<&str> = decoded.iter().map(String::as_str).collect();
    let snap = gw.snapshot();
    let unknown = |name: &str| {
        let names: Vec<&str> = snap.releases.iter().map(|r| r.name()).collect();
        (
            StatusCode::NOT_FOUND,
            json!({"error": "unknown_release", "message": format!("no release `{name}`"), "releases": names}),
        )
    };
    Some(match (method, parts.as_slice()) {
        (&Method::GET, []) => (
            StatusCode::OK,
            json!({"releases": snap.releases.iter().map(|r| view(r)).collect::<Vec<_>>()}),
        ),
        (&Method::GET, [name]) => match snap.release(name) {
            Some(r) => (StatusCode::OK, view(r)),
            None => unknown(name),
        },
        (&Method::POST, [name, action]) => {
            let op = match operator(action, query, body) {
                Ok(op) => op,
                Err(message) => {
                    return Some((
                        StatusCode::BAD_REQUEST,
                        json!({"error": "bad_request", "message": message}),
                    ))
                }
            };
            match gw.rollouts.apply(gw, name, op) {
                Ok(t) => match snap.release(name) {
                    Some(r) => (
                        StatusCode::OK,
                        json!({"result": "ok", "transition": t, "release": view(r)}),
                    ),
                    None => unknown(name),
                },
                Err(ApplyError::Unknown) => unknown(name),
                Err(ApplyError::Refused(message)) => (
                    StatusCode::CONFLICT,
                    json!({"error": "refused", "message": message, "release": snap.release(name).map(|r| view(r))}),
                ),
            }
        }
        (_, [] | [_] | [_, _]) => (
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"error": "method_not_allowed", "message": "GET /releases, GET /releases/NAME, POST /releases/NAME/{weight,pause,resume,promote,rollback}"}),
        ),
        _ => (StatusCode::NOT_FOUND, json!({"error": "not_found"})),
    })
}
