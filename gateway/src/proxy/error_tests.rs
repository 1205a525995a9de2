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

/// The defect: `message` was the detailed text, which names the pod (`pod 127.0.0.1:9100
/// unreachable (...)`), the function and its answer. Now no answer names any of them.
#[test]
fn client_messages_name_no_pod_function_or_cause() {
    let pod = Some("10.1.2.3:9100".parse().unwrap());
    let errors = [
        GatewayError::NoRoute,
        GatewayError::BadRequest("parser: x-secret-cause".into()),
        GatewayError::ClientTimeout,
        GatewayError::NoEndpoints {
            cluster: "match-api".into(),
        },
        GatewayError::Unreachable {
            pod,
            cause: "ConnectRefused x-secret-cause".into(),
        },
        GatewayError::UpstreamTimeout { pod },
        GatewayError::BadStatus { pod, status: 503 },
        GatewayError::CircuitOpen {
            cluster: "match-api".into(),
        },
        GatewayError::RateLimited {
            retry_after: std::time::Duration::from_millis(1500),
            limit: 10,
        },
        GatewayError::FallbackFailed {
            upstream: "pod 10.1.2.3:9100 unreachable".into(),
            faas: "function `verify-fn` failed: invoke API answered 500: x-secret-cause at http://fn.internal/".into(),
        },
        GatewayError::Internal("x-secret-cause".into()),
    ];
    for e in errors {
        let (h, body) = e.render("rid").unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        for leak in [
            "10.1.2.3",
            "9100",
            "match-api",
            "verify-fn",
            "fn.internal",
            "x-secret-cause",
            "503 ",
        ] {
            assert!(!text.contains(leak), "{e:?}: `{leak}` in {text}");
        }
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"], e.code());
        assert_eq!(v["message"], e.public_message().as_ref());
        assert_eq!(h.status.as_u16(), e.status());
        // The detail is still there for logs.
        assert!(!e.to_string().is_empty());
    }
    assert!(GatewayError::Unreachable { pod, cause: "x".into() }
        .to_string()
        .contains("10.1.2.3:9100"));
    // Both failures are still told apart for the client.
    let both = GatewayError::FallbackFailed {
        upstream: String::new(),
        faas: String::new(),
    }
    .public_message();
    assert!(both.contains("pods") && both.contains("function"), "{both}");
    // A client's own limit is worth telling.
    assert_eq!(
        GatewayError::BodyTooLarge { limit: 1024 }.public_message(),
        "request body exceeds 1024 bytes"
    );
}
