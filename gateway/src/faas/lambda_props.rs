//! Property tests of `lambda`: any answer a function sends (any bytes, any JSON, any shape of
//! an API Gateway v2 result) maps to a response or an error, never a panic; any request
//! (headers, path, query, body) becomes an event that carries it; any configured function
//! name, region and endpoint give an Invoke URL and a signature or an error.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use proptest::prelude::*;
use serde_json::{json, Map};

use super::*;

/// Any JSON value, small.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|x| json!(x)),
        ".{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(".{0,6}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Header names as functions write them: ordinary, hop-by-hop, in any case, and invalid.
fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(
            &[
                "content-type",
                "X-Ok",
                "set-cookie",
                "connection",
                "Transfer-Encoding",
                "host",
                "content-length",
                "endpoint-load-metrics",
                "x-amz-function-error"
            ][..]
        )
        .prop_map(str::to_string),
        "[a-zA-Z0-9-]{1,10}",
        ".{0,6}",
    ]
}

/// A member of an API Gateway v2 result: the right type mostly, any JSON sometimes.
fn member<S: Strategy<Value = Value> + 'static>(right: S) -> BoxedStrategy<Option<Value>> {
    proptest::option::weighted(0.8, prop_oneof![4 => right.boxed(), 1 => json_value().boxed()]).boxed()
}

/// Answers shaped like an API Gateway v2 result (or like any JSON at all).
fn answer() -> impl Strategy<Value = Value> {
    let status = prop_oneof![
        (100i64..=599).prop_map(|n| json!(n)),
        proptest::sample::select(vec![
            json!(99),
            json!(600),
            json!(-1),
            json!(200.5),
            json!(1e20),
            json!("200")
        ]),
    ];
    let headers = proptest::collection::btree_map(
        header_name(),
        prop_oneof![4 => "[ -~]{0,12}".prop_map(Value::String).boxed(), 1 => json_value().boxed()],
        0..6,
    )
    .prop_map(|m| Value::Object(m.into_iter().collect()));
    let body = prop_oneof![
        ".{0,20}".prop_map(Value::String),
        "[A-Za-z0-9+/=]{0,16}".prop_map(Value::String)
    ];
    let cookies = proptest::collection::vec("[ -~]{0,12}".prop_map(Value::String), 0..4).prop_map(Value::Array);
    let shaped = (
        member(status),
        member(headers),
        member(body),
        member(any::<bool>().prop_map(Value::Bool)),
        member(cookies),
        member(json_value()),
    )
        .prop_map(|(status, headers, body, b64, cookies, multi)| {
            let mut o = Map::new();
            for (k, v) in [
                ("statusCode", status),
                ("headers", headers),
                ("body", body),
                ("isBase64Encoded", b64),
                ("cookies", cookies),
                ("multiValueHeaders", multi),
            ] {
                if let Some(v) = v {
                    o.insert(k.to_string(), v);
                }
            }
            Value::Object(o)
        });
    prop_oneof![4 => shaped.boxed(), 1 => json_value().boxed()]
}

/// A request as the gateway replays it: any method, path and query, headers and body.
fn request() -> impl Strategy<Value = FaasRequest> {
    let method = prop_oneof![
        proptest::sample::select(vec![http::Method::GET, http::Method::POST, http::Method::DELETE]),
        "[A-Z]{1,8}".prop_map(|m| http::Method::from_bytes(m.as_bytes()).unwrap()),
    ];
    let name = prop_oneof![
        proptest::sample::select(&["cookie", "host", "connection", "user-agent", "x-request-id", "x-tag"][..])
            .prop_map(str::to_string),
        "[a-z0-9!#$%&'*+.^_`|~-]{1,10}",
    ];
    let value = prop_oneof![
        "[ -~]{0,16}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..16),
    ];
    let headers = proptest::collection::vec((name, value), 0..8).prop_map(|pairs| {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            if let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_bytes(&v)) {
                h.append(k, v);
            }
        }
        h
    });
    let path = prop_oneof!["/[a-z0-9/%]{0,12}(\\?[a-z0-9=&%+;]{0,16})?", ".{0,20}",];
    let body = prop_oneof![
        ".{0,20}".prop_map(|s| Bytes::from(s.into_bytes())),
        proptest::collection::vec(any::<u8>(), 0..24).prop_map(Bytes::from),
    ];
    (
        method,
        path,
        headers,
        body,
        proptest::option::of(any::<[u8; 16]>()),
        ".{0,10}",
    )
        .prop_map(|(method, path_and_query, headers, body, ip, request_id)| FaasRequest {
            method,
            path_and_query,
            headers,
            body,
            client_ip: ip.map(std::net::IpAddr::from),
            request_id,
        })
}

proptest! {
    #![proptest_config(crate::props::config(1024))]

    #[test]
    fn any_bytes_are_an_answer_or_an_error(payload in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = from_proxy_result(&payload);
    }

    #[test]
    fn any_json_is_an_answer_or_an_error(v in answer()) {
        let payload = serde_json::to_vec(&v).unwrap();
        let Ok(r) = from_proxy_result(&payload) else { return Ok(()) };
        prop_assert!((100..=599).contains(&r.status));
        prop_assert!(r.headers.keys().all(|k| !is_hop_header(k.as_str())));
        if v.get("statusCode").is_none() {
            // Not a result object: the JSON itself is the body of a 200.
            prop_assert_eq!(r.status, 200);
            prop_assert_eq!(&r.body[..], &payload[..]);
        }
    }

    #[test]
    fn well_formed_answers_are_taken_literally(
        status in 100u16..=599,
        headers in proptest::collection::btree_map("x-[a-z]{1,8}", "[!-~]([ -~]{0,8}[!-~])?", 0..4),
        body in proptest::collection::vec(any::<u8>(), 0..32),
        cookies in proptest::collection::vec("[a-z]{1,4}=[a-z0-9]{0,4}", 0..3),
    ) {
        let answer = json!({
            "statusCode": status,
            "headers": headers,
            "body": base64::engine::general_purpose::STANDARD.encode(&body),
            "isBase64Encoded": true,
            "cookies": cookies,
        });
        let r = from_proxy_result(answer.to_string().as_bytes()).unwrap();
        prop_assert_eq!(r.status, status);
        prop_assert_eq!(&r.body[..], &body[..]);
        for (k, v) in &headers {
            prop_assert_eq!(r.headers.get(k).unwrap(), v.as_str());
        }
        let set: Vec<_> = r.headers.get_all(http::header::SET_COOKIE).iter().map(|v| v.to_str().unwrap()).collect();
        prop_assert_eq!(set, cookies.iter().map(String::as_str).collect::<Vec<_>>());
    }

    #[test]
    fn events_carry_any_request(req in request()) {
        let e = event_json(&api_gateway_v2_event(&req)).unwrap();
        let (path, query) = req.path_and_query.split_once('?').unwrap_or((&req.path_and_query, ""));
        prop_assert_eq!(e["rawPath"].as_str(), Some(path));
        prop_assert_eq!(e["rawQueryString"].as_str(), Some(query));
        prop_assert_eq!(e["requestContext"]["http"]["method"].as_str(), Some(req.method.as_str()));
        match std::str::from_utf8(&req.body) {
            _ if req.body.is_empty() => prop_assert!(e.get("body").is_none()),
            Ok(text) => {
                prop_assert_eq!(e["body"].as_str(), Some(text));
                prop_assert_eq!(&e["isBase64Encoded"], &json!(false));
            }
            Err(_) => {
                let decoded = base64::engine::general_purpose::STANDARD.decode(e["body"].as_str().unwrap()).unwrap();
                prop_assert_eq!(&decoded[..], &req.body[..]);
                prop_assert_eq!(&e["isBase64Encoded"], &json!(true));
            }
        }
        if let Some(h) = e.get("headers").and_then(Value::as_object) {
            prop_assert!(h.values().all(Value::is_string));
            prop_assert!(!h.contains_key("connection") && !h.contains_key("cookie"));
        }
        // What goes on the wire.
        let _ = serde_json::to_vec(&e).unwrap();
    }

    #[test]
    fn any_function_gets_a_url_and_a_signature_or_an_error(
        endpoint in prop_oneof![Just("http://127.0.0.1:3002/".to_string()), "https?://.{0,16}"],
        function in ".{0,24}",
        region in prop_oneof![Just("ap-southeast-1".to_string()), ".{0,12}"],
        payload in proptest::collection::vec(any::<u8>(), 0..32),
        secs in 0u64..4_000_000_000,
    ) {
        let url = invoke_url(&endpoint, &function);
        prop_assert!(url.ends_with("/invocations"));
        let creds = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        if let Ok(headers) = sign_invoke(&url, &region, &creds, &payload, UNIX_EPOCH + Duration::from_secs(secs)) {
            prop_assert!(headers.iter().any(|(k, _)| k == "authorization"));
        }
    }
}
