//! Unit tests of `split`.
#![allow(clippy::unwrap_used)]
use super::*;
use http::HeaderValue;

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

#[test]
fn a_release_splits_by_cohort_and_force_and_spares_users_a_canary_without_pods() {
    let body = |canary: &str| {
        format!(
            "clusters:\n  - {{ name: s, endpoints: [\"127.0.0.11:9100\"], lb: consistent_hash, hash_key: \"header:x-user-id\" }}\n  - {canary}\nroutes:\n  - {{ name: r, match: {{}}, cluster: s }}\nreleases:\n  - {{ name: v2, routes: [r], stable: s, canary: c, weight: 0%, force: {{ canary: {{ headers: {{ x-canary: \"1\" }} }} }} }}\n"
        )
    };
    let ip = Some("10.0.0.1".parse().unwrap());
    let mut forced = http::HeaderMap::new();
    forced.insert("x-canary", HeaderValue::from_static("1"));
    forced.insert("x-user-id", HeaderValue::from_static("u1"));

    let snap = crate::proxy::testing::snapshot(&body("{ name: c, endpoints: [\"127.0.0.12:9100\"] }"));
    let r = crate::proxy::testing::route(&snap, "r");
    let t = target(&r, &forced, ip);
    assert_eq!(t.split.map(|s| s.version), Some(Version::Canary));
    // The canary cluster is p2c: no hash key, though the stable one hashes.
    assert_eq!(t.hash_key, None);
    let t = target(&r, &http::HeaderMap::new(), ip);
    assert_eq!(t.split.map(|s| s.version), Some(Version::Stable), "weight 0%");

    // A canary cluster with no pod yet (DNS never answered): even forced users get stable.
    let snap = crate::proxy::testing::snapshot(&body(
        "{ name: c, dns: { name: c.svc, port: 9100, resolver: \"127.0.0.1:1\" } }",
    ));
    let r = crate::proxy::testing::route(&snap, "r");
    let t = target(&r, &forced, ip);
    assert_eq!(t.split.map(|s| s.version), Some(Version::Stable));
    assert_eq!(t.hash_key.as_deref(), Some(&b"u1"[..]), "stable's own sticky key");
}
