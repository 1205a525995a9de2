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
    let e = api_gateway_v2_event(&req);
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
