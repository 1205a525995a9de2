//! Unit tests of `route`.
#![allow(clippy::unwrap_used)]
use super::*;
use http::{HeaderName, HeaderValue};

fn m(host: Option<&str>, path: PathMatch, methods: Option<Vec<Method>>, headers: Vec<(&'static str, &str)>) -> Match {
    Match {
        host: host.map(str::to_string),
        path,
        methods,
        headers: headers
            .into_iter()
            .map(|(k, v)| (HeaderName::from_static(k), v.to_string()))
            .collect(),
    }
}

fn req<'a>(method: &'a Method, host: &'a str, path: &'a str, headers: &'a HeaderMap) -> RequestView<'a> {
    RequestView {
        method,
        host,
        path,
        headers,
    }
}

#[test]
fn matches_all_parts() {
    let rule = m(
        Some("api.arena.gg"),
        PathMatch::Prefix("/v1/matches".into()),
        Some(vec![Method::GET]),
        vec![("x-tenant", "douyu")],
    );
    let mut h = HeaderMap::new();
    h.insert("x-tenant", HeaderValue::from_static("douyu"));
    let empty = HeaderMap::new();
    assert!(rule.matches(&req(&Method::GET, "api.arena.gg", "/v1/matches/7/live", &h)));
    assert!(rule.matches(&req(&Method::GET, "API.ARENA.GG", "/v1/matches", &h)));
    assert!(!rule.matches(&req(&Method::GET, "api.arena.gg", "/v1/matchesX", &h)));
    assert!(!rule.matches(&req(&Method::POST, "api.arena.gg", "/v1/matches", &h)));
    assert!(!rule.matches(&req(&Method::GET, "other.gg", "/v1/matches", &h)));
    assert!(!rule.matches(&req(&Method::GET, "api.arena.gg", "/v1/matches", &empty)));
}

#[test]
fn exact_and_any() {
    let h = HeaderMap::new();
    let exact = m(None, PathMatch::Exact("/healthz".into()), None, vec![]);
    assert!(exact.matches(&req(&Method::GET, "", "/healthz", &h)));
    assert!(!exact.matches(&req(&Method::GET, "", "/healthz/x", &h)));
    assert!(m(None, PathMatch::Any, None, vec![]).matches(&req(&Method::DELETE, "x", "/anything", &h)));
}

#[test]
fn host_parsing() {
    let mut h = HeaderMap::new();
    let uri: http::Uri = "/x".parse().unwrap();
    assert_eq!(host_of(&h, &uri), "");
    h.insert(http::header::HOST, HeaderValue::from_static("api.arena.gg:8080"));
    assert_eq!(host_of(&h, &uri), "api.arena.gg");
    h.insert(http::header::HOST, HeaderValue::from_static("[::1]:8080"));
    assert_eq!(host_of(&h, &uri), "[::1]");
    let h = HeaderMap::new();
    let uri: http::Uri = "http://a.b:1/x".parse().unwrap();
    assert_eq!(host_of(&h, &uri), "a.b");
}

/// Issue 10: `Host: [x` (an IPv6 bracket never closed) sliced past the end of the header.
#[test]
fn unclosed_ipv6_bracket_is_a_host_not_a_panic() {
    let uri: http::Uri = "/x".parse().unwrap();
    for raw in ["[x", "[", "[::1", "[::1:8080", "[]", "[]:1", "[:"] {
        let mut h = HeaderMap::new();
        h.insert(http::header::HOST, HeaderValue::from_str(raw).unwrap());
        let host = host_of(&h, &uri);
        assert!(raw.starts_with(host), "{raw} -> {host}");
    }
    let mut h = HeaderMap::new();
    h.insert(http::header::HOST, HeaderValue::from_static("[x"));
    assert_eq!(host_of(&h, &uri), "[x", "kept whole: it matches no route's host");
    h.insert(http::header::HOST, HeaderValue::from_static("[]:1"));
    assert_eq!(host_of(&h, &uri), "[]");
}
