//! Unit tests of `error`.
#![allow(clippy::unwrap_used)]
use super::*;

#[test]
fn statuses_and_json_body() {
    let e = GatewayError::NoRoute;
    let (h, body) = e.render("abc123").unwrap();
    assert_eq!(h.status.as_u16(), 404);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"], "no_route");
    assert_eq!(v["request_id"], "abc123");
    assert_eq!(h.headers.get("x-request-id").unwrap(), "abc123");
    assert_eq!(GatewayError::HeadersTooLarge { limit: 1 }.status(), 431);
    assert_eq!(GatewayError::NoEndpoints { cluster: "c".into() }.status(), 503);
}
