//! The gateway's FaaS invokers against real runtimes: an HTTP function on the Functions Framework and the
//! Lambda Invoke API of serverless-offline (install both with `deploy/local/faas-setup.sh`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use arena_gateway::config::{FaasSpec, FaasTarget};
use arena_gateway::faas::{FaasError, FaasRequest, FaasResponse, Function};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use serde_json::Value;

use support::faas::{HttpFunction, LambdaEmulator, LAMBDA_FUNCTION};

fn spec(name: &str, target: FaasTarget, timeout: Duration, max_concurrency: u32) -> FaasSpec {
    FaasSpec {
        name: name.to_string(),
        target,
        timeout,
        max_concurrency,
        headers: vec![(http::HeaderName::from_static("x-arena-fallback"), "1".to_string())],
    }
}

fn request(method: Method, path_and_query: &str, body: &[u8], request_id: &str) -> FaasRequest {
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("api.arena.gg"));
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert("user-agent", HeaderValue::from_static("arena-test"));
    FaasRequest {
        method,
        path_and_query: path_and_query.to_string(),
        headers,
        body: Bytes::copy_from_slice(body),
        client_ip: Some([127, 0, 0, 1].into()),
        request_id: request_id.to_string(),
    }
}

fn header<'a>(r: &'a FaasResponse, name: &str) -> &'a str {
    r.headers
        .get(name)
        .unwrap_or_else(|| panic!("no `{name}` header in {:?}", r.headers))
        .to_str()
        .unwrap()
}

fn json(r: &FaasResponse) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&r.body)))
}

/// Checks the answer of `POST /v1/verify` with `body` from the function `served_by`.
fn assert_verified(r: &FaasResponse, served_by: &str, body_len: usize, request_id: &str) {
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(header(r, "x-served-by"), served_by);
    assert_eq!(header(r, "x-request-id"), request_id);
    assert!(header(r, "content-type").starts_with("application/json"));
    let v = json(r);
    assert_eq!(v["verified"], true, "{v}");
    assert_eq!(v["bytes"], body_len, "{v}");
    assert_eq!(v["served_by"], served_by, "{v}");
    assert_eq!(v["path"], "/v1/verify", "{v}");
    assert_eq!(v["method"], "POST", "{v}");
}

const BODY: &[u8] = br#"{"match":7,"kills":3,"player":"faker"}"#;

/// A Lambda function with dummy credentials (the emulator accepts any signature, AWS would
/// check it), passed in rather than set in the process environment other test threads read.
fn lambda_function(spec: FaasSpec) -> Function {
    Function::with_env(spec, |name| match name {
        "AWS_ACCESS_KEY_ID" => Some("AKIDARENATEST".to_string()),
        "AWS_SECRET_ACCESS_KEY" => Some("arena-test-secret-key".to_string()),
        _ => None,
    })
    .unwrap()
}

#[tokio::test]
async fn http_function_answers_like_the_api() {
    let f = HttpFunction::start();
    eprintln!("functions-framework ready in {:?}", f.started_in);
    let func = Function::new(spec(
        "verify-http",
        FaasTarget::Http { url: f.url() },
        Duration::from_secs(10),
        4,
    ))
    .unwrap();

    let r = func
        .invoke(&request(Method::POST, "/v1/verify", BODY, "rid-http-1"))
        .await
        .unwrap();
    assert_verified(&r, "faas-http", BODY.len(), "rid-http-1");

    let r = func
        .invoke(&request(Method::GET, "/v1/matches/42?live=1", b"", "rid-http-2"))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(header(&r, "x-served-by"), "faas-http");
    assert_eq!(header(&r, "x-request-id"), "rid-http-2");
    let v = json(&r);
    assert_eq!(v["path"], "/v1/matches/42");
    assert_eq!(v["query"]["live"], "1");

    let r = func
        .invoke(&request(Method::GET, "/v1/players/faker", b"", "rid-http-3"))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(json(&r)["path"], "/v1/players/faker");

    // A 404 of the function is an answer to relay, not an invoker error.
    let r = func
        .invoke(&request(Method::GET, "/v2/unknown", b"", "rid-http-4"))
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(header(&r, "x-served-by"), "faas-http");
    assert_eq!(json(&r)["path"], "/v2/unknown");

    // A function that raises: the runtime's 500 is relayed as the function's answer too.
    let r = func
        .invoke(&request(Method::GET, "/_fn/raise", b"", "rid-http-5"))
        .await
        .unwrap();
    assert_eq!(r.status, 500);
    assert_eq!(func.in_flight(), 0);
}

#[tokio::test]
async fn http_function_down_is_a_transport_error() {
    let mut f = HttpFunction::start();
    let func = Function::new(spec(
        "verify-http",
        FaasTarget::Http { url: f.url() },
        Duration::from_secs(5),
        2,
    ))
    .unwrap();
    // Up: answers, and leaves a pooled keep-alive connection behind.
    let r = func
        .invoke(&request(Method::POST, "/v1/verify", BODY, "rid-up"))
        .await
        .unwrap();
    assert_verified(&r, "faas-http", BODY.len(), "rid-up");

    f.kill();
    let started = Instant::now();
    for i in 0..3 {
        let err = func
            .invoke(&request(Method::POST, "/v1/verify", BODY, &format!("rid-down-{i}")))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, FaasError::Transport { name, .. } if name == "verify-http"),
            "try {i}: {err:?}"
        );
        assert_eq!(err.kind(), "transport");
    }
    // Refused connections fail fast, well within the function's timeout.
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert_eq!(func.in_flight(), 0);
}

#[tokio::test]
async fn http_function_concurrency_limit_and_timeout() {
    let f = HttpFunction::start();
    let func = Function::new(spec(
        "verify-http",
        FaasTarget::Http { url: f.url() },
        Duration::from_secs(10),
        1,
    ))
    .unwrap();
    // The first call takes the only permit on its first poll and holds it for 800 ms in the
    // function; the second is polled after it and must fail fast instead of queueing.
    let slow = request(Method::POST, "/v1/verify?sleep_ms=800", BODY, "rid-slow");
    let fast = request(Method::POST, "/v1/verify", BODY, "rid-fast");
    let started = Instant::now();
    let (a, b) = tokio::join!(func.invoke(&slow), async {
        let r = func.invoke(&fast).await;
        (r, started.elapsed())
    });
    let a = a.unwrap();
    assert_eq!(a.status, 200);
    assert_eq!(json(&a)["slept_ms"], 800);
    let (b, b_took) = b;
    assert_eq!(b.unwrap_err(), FaasError::Saturated("verify-http".into()));
    assert!(
        b_took < Duration::from_millis(500),
        "saturation must not wait: {b_took:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(800));
    // The permit is back once the slow call finished.
    assert_eq!(func.in_flight(), 0);
    let r = func.invoke(&fast).await.unwrap();
    assert_verified(&r, "faas-http", BODY.len(), "rid-fast");

    // A function slower than its timeout: Timeout, and the permit is released.
    let short = Function::new(spec(
        "verify-http-short",
        FaasTarget::Http { url: f.url() },
        Duration::from_millis(300),
        1,
    ))
    .unwrap();
    let started = Instant::now();
    let err = short
        .invoke(&request(Method::POST, "/v1/verify?sleep_ms=3000", BODY, "rid-late"))
        .await
        .unwrap_err();
    assert_eq!(err, FaasError::Timeout("verify-http-short".into()));
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert_eq!(short.in_flight(), 0);
}

#[tokio::test]
async fn lambda_invoke_api_on_serverless_offline() {
    let mut emu = LambdaEmulator::start();
    eprintln!(
        "serverless offline ready (first invocation answered) in {:?}",
        emu.started_in
    );
    let target = |function: &str| FaasTarget::AwsLambda {
        function: function.to_string(),
        region: "ap-southeast-1".to_string(),
        endpoint: Some(emu.endpoint.clone()),
    };
    let func = lambda_function(spec(
        "verify-lambda",
        target(LAMBDA_FUNCTION),
        Duration::from_secs(15),
        4,
    ));

    let r = func
        .invoke(&request(Method::POST, "/v1/verify", BODY, "rid-lambda-1"))
        .await
        .unwrap();
    assert_verified(&r, "faas-lambda", BODY.len(), "rid-lambda-1");

    // A body that is not UTF-8 travels base64-encoded (isBase64Encoded) and is counted decoded.
    let binary: Vec<u8> = (0..=255u8).rev().collect();
    let r = func
        .invoke(&request(Method::POST, "/v1/verify", &binary, "rid-lambda-2"))
        .await
        .unwrap();
    assert_verified(&r, "faas-lambda", binary.len(), "rid-lambda-2");

    let r = func
        .invoke(&request(
            Method::GET,
            "/v1/players/faker?season=14",
            b"",
            "rid-lambda-3",
        ))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(header(&r, "x-served-by"), "faas-lambda");
    assert_eq!(header(&r, "x-request-id"), "rid-lambda-3");
    let v = json(&r);
    assert_eq!(v["path"], "/v1/players/faker");
    assert_eq!(v["method"], "GET");
    assert_eq!(v["query"]["season"], "14");

    let r = func
        .invoke(&request(Method::GET, "/v2/unknown", b"", "rid-lambda-4"))
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(header(&r, "x-served-by"), "faas-lambda");

    // Two at once within the limit both succeed.
    let (ra, rb) = (
        request(Method::POST, "/v1/verify", BODY, "rid-par-a"),
        request(Method::POST, "/v1/verify", BODY, "rid-par-b"),
    );
    let (a, b) = tokio::join!(func.invoke(&ra), func.invoke(&rb));
    assert_verified(&a.unwrap(), "faas-lambda", BODY.len(), "rid-par-a");
    assert_verified(&b.unwrap(), "faas-lambda", BODY.len(), "rid-par-b");

    // A handler that throws: the Invoke API answers 200 with X-Amz-Function-Error: Unhandled.
    let err = func
        .invoke(&request(Method::GET, "/_fn/throw", b"", "rid-lambda-throw"))
        .await
        .unwrap_err();
    match &err {
        FaasError::Function { name, cause } => {
            assert_eq!(name, "verify-lambda");
            assert!(cause.starts_with("Unhandled"), "{cause}");
            assert!(cause.contains("rid-lambda-throw"), "{cause}");
        }
        other => panic!("expected a function error, got {other:?}"),
    }
    assert_eq!(err.kind(), "function_error");

    // The Invoke API's ResourceNotFoundException (404) is a function error.
    let missing = lambda_function(spec(
        "missing-lambda",
        target("arena-faas-dev-missing"),
        Duration::from_secs(10),
        1,
    ));
    let err = missing
        .invoke(&request(Method::POST, "/v1/verify", BODY, "rid-missing"))
        .await
        .unwrap_err();
    match &err {
        FaasError::Function { name, cause } => {
            assert_eq!(name, "missing-lambda");
            assert!(cause.contains("404"), "{cause}");
        }
        other => panic!("expected a function error, got {other:?}"),
    }

    // The emulator goes down: transport error.
    emu.stop();
    let err = func
        .invoke(&request(Method::POST, "/v1/verify", BODY, "rid-lambda-down"))
        .await
        .unwrap_err();
    assert!(matches!(err, FaasError::Transport { .. }), "{err:?}");
}
