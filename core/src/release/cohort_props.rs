//! Property tests of `cohort`: buckets are in range and monotone in the weight, and any
//! `Cookie` headers give the named cookie's value or none, never a panic.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::*;

fn cookie_headers(values: &[Vec<u8>]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for v in values {
        if let Ok(v) = HeaderValue::from_bytes(v) {
            h.append(http::header::COOKIE, v);
        }
    }
    h
}

/// Header bytes biased towards what a cookie parser trips on.
fn cookie_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(
            proptest::sample::select(&[b';', b'=', b' ', b'\t', b'a', b's', 0x80, 0xff][..]),
            0..16
        ),
        proptest::collection::vec(any::<u8>(), 0..24),
    ]
}

proptest! {
    #![proptest_config(crate::props::config(1024))]

    /// Raising the weight only adds users to the canary: nobody flips back to stable.
    #[test]
    fn the_canary_only_grows_with_the_weight(
        release in "[a-z0-9-]{0,12}",
        key in proptest::collection::vec(any::<u8>(), 0..32),
        w1 in 0u16..=10_000,
        w2 in 0u16..=10_000,
    ) {
        let (lo, hi) = (w1.min(w2), w1.max(w2));
        let b = bucket(&release, &key);
        prop_assert!(b < BUCKETS);
        if on_canary(b, lo) {
            prop_assert!(on_canary(b, hi));
        }
        let mut s = crate::release::testing::spec(&release, &[]);
        s.sticky = StickyKey::Header(HeaderName::from_static("x-user-id"));
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_bytes(&key) {
            h.insert("x-user-id", v);
            if choose(&s, lo, &h, None).version == Version::Canary {
                prop_assert_eq!(choose(&s, hi, &h, None).version, Version::Canary);
            }
        }
    }

    #[test]
    fn any_cookie_header_is_read_without_a_panic(
        values in proptest::collection::vec(cookie_bytes(), 0..4),
        name in prop_oneof![Just("s".to_string()), Just("".to_string()), ".{0,4}"],
    ) {
        let h = cookie_headers(&values);
        if let Some(v) = cookie(&h, &name) {
            prop_assert!(!v.contains(&b';'));
            prop_assert_eq!(v.trim_ascii(), v);
        }
    }

    #[test]
    fn the_first_cookie_of_a_name_is_found(
        pairs in proptest::collection::vec(("[a-z]{1,4}", "[a-z0-9=]{0,6}"), 1..6),
        spaces in "[ \t]{0,2}",
        pick in any::<usize>(),
    ) {
        let text: Vec<String> = pairs.iter().map(|(k, v)| format!("{spaces}{k}{spaces}={spaces}{v}{spaces}")).collect();
        let h = cookie_headers(&[text.join(";").into_bytes()]);
        let name = &pairs[pick % pairs.len()].0;
        let first = pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_bytes());
        prop_assert_eq!(cookie(&h, name), first);
    }
}
