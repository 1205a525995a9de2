//! Unit tests of `cohort`.
#![allow(clippy::unwrap_used)]
use super::*;
use crate::release::testing::spec;

fn ip(s: &str) -> Option<IpAddr> {
    s.parse().ok()
}

/// These buckets were computed apart from this code (a few lines of Python over the
/// documented bytes): if one changes, an upgrade would move users between versions mid-rollout.
#[test]
fn buckets_of_known_keys_are_fixed() {
    assert_eq!(bucket("match-api-v2", b"faker"), 7623);
    assert_eq!(bucket("match-api-v2", b"user-42"), 1494);
    assert_eq!(bucket("other", b"faker"), 6916);
    assert_eq!(bucket("match-api-v2", b""), 5560);
    assert_eq!(bucket("match-api-v2", &[203, 0, 113, 7]), 975);
    assert_eq!(bucket("match-api-v2", &[0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2]), 4133);
}

#[test]
fn the_sticky_key_falls_back_to_the_client_address() {
    let mut s = spec("r", &[]);
    s.sticky = StickyKey::Header(HeaderName::from_static("x-user-id"));
    let mut h = HeaderMap::new();
    let addr = ip("203.0.113.7");
    assert_eq!(sticky_key(&s, &h, addr).as_deref(), Some(&[203, 0, 113, 7][..]));
    h.insert("x-user-id", HeaderValue::from_static(""));
    assert_eq!(
        sticky_key(&s, &h, addr).as_deref(),
        Some(&[203, 0, 113, 7][..]),
        "empty = missing"
    );
    h.insert("x-user-id", HeaderValue::from_static("faker"));
    let key = sticky_key(&s, &h, addr).unwrap();
    assert!(
        matches!(key, Cow::Borrowed(b"faker")),
        "a header key is borrowed, not copied"
    );
    assert_eq!(sticky_key(&s, &HeaderMap::new(), None), None);

    s.sticky = StickyKey::Cookie("uid".into());
    h.insert(http::header::COOKIE, HeaderValue::from_static("theme=dark; uid=u1"));
    assert_eq!(sticky_key(&s, &h, addr).as_deref(), Some(&b"u1"[..]));

    // IPv4-mapped is the IPv4 client; IPv6 counts by its /64.
    s.sticky = StickyKey::ClientIp;
    assert_eq!(
        sticky_key(&s, &h, ip("::ffff:203.0.113.7")).as_deref(),
        Some(&[203, 0, 113, 7][..])
    );
    assert_eq!(
        sticky_key(&s, &h, ip("2001:db8:1:2::1")),
        sticky_key(&s, &h, ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd"))
    );
    assert_ne!(
        sticky_key(&s, &h, ip("2001:db8:1:2::1")),
        sticky_key(&s, &h, ip("2001:db8:1:3::1"))
    );
}

#[test]
fn choose_matches_the_bucket_and_the_weight() {
    let mut s = spec("match-api-v2", &[]);
    s.sticky = StickyKey::Header(HeaderName::from_static("x-user-id"));
    let mut h = HeaderMap::new();
    h.insert("x-user-id", HeaderValue::from_static("faker")); // bucket 7623
    let at = |w| choose(&s, w, &h, None);
    assert_eq!(at(7623).version, Version::Stable);
    assert_eq!(
        at(7624),
        Choice {
            version: Version::Canary,
            why: Why::Cohort
        }
    );
    assert_eq!(at(0).version, Version::Stable);
    assert_eq!(at(10_000).version, Version::Canary);
    let none = choose(&s, 5000, &HeaderMap::new(), None);
    assert_eq!(
        none,
        Choice {
            version: Version::Stable,
            why: Why::NoKey
        }
    );
    // The client address decides when the header is missing.
    let by_ip = choose(&s, 976, &HeaderMap::new(), ip("203.0.113.7")); // bucket 975
    assert_eq!(by_ip.version, Version::Canary);
    assert_eq!(
        choose(&s, 975, &HeaderMap::new(), ip("203.0.113.7")).version,
        Version::Stable
    );
}

#[test]
fn force_rules_come_first_and_never_canary_wins() {
    let mut s = spec("r", &[]);
    s.force_canary = vec![(HeaderName::from_static("x-canary"), HeaderValue::from_static("1"))];
    s.force_stable = vec![
        (HeaderName::from_static("x-tenant"), HeaderValue::from_static("douyu")),
        (HeaderName::from_static("x-tenant"), HeaderValue::from_static("huya")),
    ];
    let with = |pairs: &[(&'static str, &'static str)]| {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    };
    let c = |h: &HeaderMap, w| choose(&s, w, h, ip("10.0.0.1"));
    assert_eq!(c(&with(&[("x-canary", "1")]), 0).why, Why::ForcedCanary);
    assert_eq!(c(&with(&[("x-canary", "1")]), 0).version, Version::Canary);
    assert_eq!(c(&with(&[("x-canary", "2")]), 0).why, Why::Cohort);
    assert_eq!(c(&with(&[("x-tenant", "huya")]), 10_000).why, Why::ForcedStable);
    assert_eq!(c(&with(&[("x-tenant", "huya")]), 10_000).version, Version::Stable);
    assert_eq!(
        c(&with(&[("x-tenant", "HUYA")]), 10_000).version,
        Version::Canary,
        "values are exact"
    );
    let both = with(&[("x-canary", "1"), ("x-tenant", "other"), ("x-tenant", "douyu")]);
    assert_eq!(
        c(&both, 10_000).why,
        Why::ForcedStable,
        "any value of a repeated header counts"
    );
}

#[test]
fn the_split_follows_the_weight_over_many_users() {
    let s = spec("match-api-v2", &[]);
    let n = 200_000u32;
    for weight in [1u16, 100, 500, 2500, 5000, 9900] {
        let canary = (0..n)
            .filter(|i| {
                let addr = IpAddr::from((0x0a00_0000u32 + i).to_be_bytes());
                choose(&s, weight, &HeaderMap::new(), Some(addr)).version == Version::Canary
            })
            .count();
        let share = canary as f64 / f64::from(n);
        let want = f64::from(weight) / 10_000.0;
        // Five standard deviations of a binomial share, plus a floor for the tiny weights.
        let tolerance = 5.0 * (want * (1.0 - want) / f64::from(n)).sqrt() + 2e-5;
        assert!(
            (share - want).abs() <= tolerance,
            "weight {weight}: share {share}, want {want}"
        );
    }
}

#[test]
fn two_releases_pick_independent_cohorts() {
    let n = 200_000u32;
    let (mut a, mut b, mut both) = (0u32, 0u32, 0u32);
    for i in 0..n {
        let key = format!("user-{i}");
        let in_a = on_canary(bucket("match-api-v2", key.as_bytes()), 1000);
        let in_b = on_canary(bucket("players-v3", key.as_bytes()), 1000);
        a += u32::from(in_a);
        b += u32::from(in_b);
        both += u32::from(in_a && in_b);
    }
    let (pa, pb, pboth) = (
        f64::from(a) / f64::from(n),
        f64::from(b) / f64::from(n),
        f64::from(both) / f64::from(n),
    );
    // Independent: P(both) = P(a) P(b) = 1 %; one release's users are not the other's.
    let sd = (0.01 * 0.99 / f64::from(n)).sqrt();
    assert!((pboth - pa * pb).abs() < 5.0 * sd, "a {pa} b {pb} both {pboth}");
}

#[test]
fn cookies_are_found_among_others() {
    let mut h = HeaderMap::new();
    h.append(
        http::header::COOKIE,
        HeaderValue::from_static("theme=dark; session=abc123 ; x=1"),
    );
    h.append(http::header::COOKIE, HeaderValue::from_static("team=t1"));
    assert_eq!(cookie(&h, "session"), Some(&b"abc123"[..]));
    assert_eq!(cookie(&h, "team"), Some(&b"t1"[..]));
    assert_eq!(cookie(&h, "sess"), None);
    assert_eq!(cookie(&HeaderMap::new(), "session"), None);
}
