//! Unit tests of `lambda`.
#![allow(clippy::unwrap_used)]
use super::*;
use std::time::Duration;

#[test]
fn event_carries_the_request() {
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("api.arena.gg"));
    headers.insert("cookie", HeaderValue::from_static("a=1; b=2"));
    headers.insert("x-api-key", HeaderValue::from_static("k"));
    let req = FaasRequest {
        method: http::Method::POST,
        path_and_query: "/v1/verify?match=7&x&name=a%20b&tag=1&tag=2".into(),
        headers,
        body: Bytes::from_static(b"{\"kills\":3}"),
        client_ip: Some([10, 0, 0, 1].into()),
        request_id: "r-1".into(),
    };
    let e = event_json(&api_gateway_v2_event(&req)).unwrap();
    assert_eq!(e["version"], "2.0");
    assert_eq!(e["rawPath"], "/v1/verify");
    assert_eq!(e["rawQueryString"], "match=7&x&name=a%20b&tag=1&tag=2");
    assert_eq!(e["queryStringParameters"]["match"], "7");
    assert_eq!(e["queryStringParameters"]["name"], "a b");
    assert_eq!(e["queryStringParameters"]["tag"], "1,2");
    assert_eq!(e["requestContext"]["http"]["method"], "POST");
    assert_eq!(e["requestContext"]["http"]["sourceIp"], "10.0.0.1");
    assert_eq!(e["requestContext"]["domainName"], "api.arena.gg");
    assert_eq!(e["headers"]["x-api-key"], "k");
    assert_eq!(e["cookies"][1], "b=2");
    assert_eq!(e["body"], "{\"kills\":3}");
    assert_eq!(e["isBase64Encoded"], false);
}

/// The JSON carries exactly the members of an HTTP API event, none of the crate's Custom
/// Authorizer v1 or unset ones.
#[test]
fn event_has_only_http_api_members() {
    let mut headers = HeaderMap::new();
    headers.insert("user-agent", HeaderValue::from_static("arena-test"));
    headers.append("x-tag", HeaderValue::from_static("a"));
    headers.append("x-tag", HeaderValue::from_static("b"));
    let req = FaasRequest {
        method: http::Method::GET,
        path_and_query: "/v1/matches".into(),
        headers,
        body: Bytes::new(),
        client_ip: None,
        request_id: "r-2".into(),
    };
    let e = event_json(&api_gateway_v2_event(&req)).unwrap();
    let keys = |v: &Value| {
        let mut k: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(
        keys(&e),
        [
            "headers",
            "isBase64Encoded",
            "rawPath",
            "rawQueryString",
            "requestContext",
            "routeKey",
            "version"
        ]
    );
    assert_eq!(
        keys(&e["requestContext"]),
        [
            "accountId",
            "apiId",
            "domainName",
            "http",
            "requestId",
            "routeKey",
            "stage",
            "timeEpoch"
        ]
    );
    assert_eq!(
        keys(&e["requestContext"]["http"]),
        ["method", "path", "protocol", "sourceIp", "userAgent"]
    );
    assert_eq!(e["requestContext"]["http"]["method"], "GET");
    assert_eq!(e["requestContext"]["http"]["sourceIp"], "");
    assert_eq!(e["requestContext"]["domainName"], "arena");
    assert_eq!(e["headers"]["x-tag"], "a,b");
    assert_eq!(e["headers"]["x-request-id"], "r-2");
    assert!(e["requestContext"]["timeEpoch"].as_i64().unwrap() > 0);
}

#[test]
fn invoke_url_encodes_names_and_arns() {
    assert_eq!(
        invoke_url("http://127.0.0.1:3002/", "arena-faas-dev_verify.v1~"),
        "http://127.0.0.1:3002/2015-03-31/functions/arena-faas-dev_verify.v1~/invocations"
    );
    assert_eq!(
        invoke_url(
            "https://lambda.ap-southeast-1.amazonaws.com",
            "arn:aws:lambda:ap-southeast-1:123456789012:function:verify/é 1"
        ),
        "https://lambda.ap-southeast-1.amazonaws.com/2015-03-31/functions/\
         arn%3Aaws%3Alambda%3Aap-southeast-1%3A123456789012%3Afunction%3Averify%2F%C3%A9%201/invocations"
    );
}

#[test]
fn maps_proxy_results() {
    let r = from_proxy_result(br#"{"statusCode":201,"headers":{"content-type":"application/json","x-n":5},"body":"{\"ok\":true}","cookies":["s=1"]}"#).unwrap();
    assert_eq!(r.status, 201);
    assert_eq!(r.headers.get("x-n").unwrap(), "5");
    assert_eq!(r.headers.get("set-cookie").unwrap(), "s=1");
    assert_eq!(&r.body[..], b"{\"ok\":true}");
    let r = from_proxy_result(br#"{"statusCode":200,"body":"aGk=","isBase64Encoded":true}"#).unwrap();
    assert_eq!(&r.body[..], b"hi");
    let r = from_proxy_result(br#"{"verified":true}"#).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(&r.body[..], br#"{"verified":true}"#);
    assert!(from_proxy_result(b"not json").is_err());
    assert!(from_proxy_result(br#"{"statusCode":99}"#).is_err());
}

/// Header names in any case and values of any JSON type are taken as API Gateway takes them; a
/// member of the wrong type makes the result malformed, which API Gateway rejects too.
#[test]
fn proxy_results_like_api_gateway() {
    let r = from_proxy_result(br#"{"statusCode":200,"headers":{"X-Ok":true,"Connection":"close"}}"#).unwrap();
    assert_eq!(r.headers.get("x-ok").unwrap(), "true");
    assert!(r.headers.get("connection").is_none());
    assert!(r.body.is_empty());
    assert!(from_proxy_result(br#"{"statusCode":200,"body":{"a":1}}"#).is_err());
    assert!(from_proxy_result(br#"{"statusCode":200,"cookies":[1]}"#).is_err());
}

/// AWS's published SigV4 example (IAM docs, "Examples of the complete Signature Version 4
/// signing process"): same key, date and request give the documented signature.
#[test]
fn signature_matches_aws_published_example() {
    let creds = Credentials::new(
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        None,
        None,
        "test",
    );
    // 20150830T123600Z, the date of AWS's test suite.
    let at = UNIX_EPOCH + Duration::from_secs(1_440_938_160);
    let identity = creds.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("service")
        .time(at)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let headers = [("host", "example.amazonaws.com")];
    let signable = SignableRequest::new(
        "GET",
        "https://example.amazonaws.com/",
        headers.iter().copied(),
        SignableBody::Bytes(b""),
    )
    .unwrap();
    let (instructions, signature) = sign(signable, &params).unwrap().into_parts();
    // get-vanilla from the aws-sig-v4-test-suite.
    assert_eq!(
        signature,
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    );
    let auth = instructions
        .headers()
        .find(|(k, _)| *k == "authorization")
        .unwrap()
        .1
        .to_string();
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request"),
        "{auth}"
    );
}

/// A function answering more header names than an `http::HeaderMap` holds (24 577 and up fit
/// in the 8 MiB read limit) panicked in the result's deserializer; so did as many
/// `multiValueHeaders`, which payload format 2.0 does not have at all.
#[test]
fn answers_with_too_many_headers_are_errors_not_panics() {
    for member in ["headers", "multiValueHeaders"] {
        let headers: Vec<String> = (0..30_000).map(|i| format!("\"x-h{i}\":[\"v\"]")).collect();
        let body = format!("{{\"statusCode\":200,\"{member}\":{{{}}}}}", headers.join(","));
        let r = from_proxy_result(body.as_bytes());
        if member == "headers" {
            assert!(r.unwrap_err().contains("headers"));
        } else {
            assert_eq!(
                r.unwrap().headers.len(),
                0,
                "multiValueHeaders are not API Gateway v2's"
            );
        }
    }
    let cookies: Vec<String> = (0..30_000).map(|i| format!("\"c{i}=1\"")).collect();
    let body = format!("{{\"statusCode\":200,\"cookies\":[{}]}}", cookies.join(","));
    assert!(from_proxy_result(body.as_bytes()).unwrap_err().contains("cookies"));
}
