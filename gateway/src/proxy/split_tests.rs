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
