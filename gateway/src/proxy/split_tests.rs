//! Unit tests of `split`.
#![allow(clippy::unwrap_used)]
use super::*;
use http::HeaderValue;

#[test]
fn cookie_values_are_found_among_others() {
    let mut h = http::HeaderMap::new();
    h.append(
        http::header::COOKIE,
        HeaderValue::from_static("theme=dark; session=abc123 ; x=1"),
    );
    h.append(http::header::COOKIE, HeaderValue::from_static("team=t1"));
    assert_eq!(cookie(&h, "session"), Some(&b"abc123"[..]));
    assert_eq!(cookie(&h, "team"), Some(&b"t1"[..]));
    assert_eq!(cookie(&h, "sess"), None);
    assert_eq!(cookie(&http::HeaderMap::new(), "session"), None);
}

#[test]
fn consistent_hash_clusters_get_their_sticky_key() {
    let snap = crate::proxy::testing::snapshot(
        "clusters:\n  - { name: h, endpoints: [\"127.0.0.11:9100\"], lb: consistent_hash, hash_key: \"header:x-user-id\" }\n  - { name: k, endpoints: [\"127.0.0.12:9100\"], lb: consistent_hash, hash_key: \"cookie:session\" }\n  - { name: p, endpoints: [\"127.0.0.13:9100\"] }\nroutes:\n  - { name: h, match: { path_prefix: /h }, cluster: h }\n  - { name: k, match: { path_prefix: /k }, cluster: k }\n  - { name: p, match: {}, cluster: p }\n",
    );
    let mut h = http::HeaderMap::new();
    h.insert("x-user-id", HeaderValue::from_static("faker"));
    h.insert(http::header::COOKIE, HeaderValue::from_static("session=s1"));
    let key = |route: &str| {
        let r = crate::proxy::testing::route(&snap, route);
        target(&r, &h, Some("10.0.0.1".parse().unwrap())).hash_key
    };
    assert_eq!(key("h").as_deref(), Some(&b"faker"[..]));
    assert_eq!(key("k").as_deref(), Some(&b"s1"[..]));
    assert_eq!(key("p"), None, "p2c clusters hash nothing");
}
