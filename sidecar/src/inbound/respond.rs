//! The sidecar's own answers: the shed answer the gateway recognises (`503` +
//! `x-arena-overloaded` + a full load report: "go to another pod, do not eject me") and the
//! error answers, each a JSON body with the request id — never the app's address.

use arena_core::balance::report::{HEADER, OVERLOADED};
use http::HeaderValue;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;
use serde_json::json;

use crate::health::Shed;

fn json_head(status: u16, id: &HeaderValue, body_len: usize) -> Result<ResponseHeader> {
    let mut h = ResponseHeader::build(status, Some(5))?;
    h.insert_header(http::header::CONTENT_TYPE, "application/json")?;
    h.insert_header(http::header::CONTENT_LENGTH, body_len.to_string())?;
    h.insert_header("x-request-id", id.clone())?;
    Ok(h)
}

fn body(value: serde_json::Value) -> bytes::Bytes {
    let mut b = serde_json::to_vec(&value).unwrap_or_default();
    b.push(b'\n');
    b.into()
}

/// Writes the shed answer.
pub async fn shed(session: &mut Session, why: Shed, id: &HeaderValue, load: String) -> Result<()> {
    let b = body(json!({"error": "overloaded", "reason": why.as_str(), "request_id": id.to_str().unwrap_or("")}));
    let mut h = json_head(503, id, b.len())?;
    h.insert_header(OVERLOADED, why.as_str())?;
    h.insert_header(HEADER, load)?;
    session.write_response_header(Box::new(h), false).await?;
    session.write_response_body(Some(b), true).await
}

/// Writes an error answer (504 for a cut request, 502 for a broken app answer, 4xx for the
/// caller's own faults); the connection closes after it.
pub async fn error(session: &mut Session, status: u16, id: &HeaderValue) {
    let code = match status {
        504 => "app_timeout",
        502 => "bad_app_answer",
        408 => "request_timeout",
        400..=499 => "bad_request",
        _ => "internal",
    };
    let b = body(json!({"error": code, "status": status, "request_id": id.to_str().unwrap_or("")}));
    let Ok(h) = json_head(status, id, b.len()) else {
        return;
    };
    session.as_mut().set_keepalive(None);
    if session.write_response_header(Box::new(h), false).await.is_ok() {
        let _ = session.write_response_body(Some(b), true).await;
    }
}
