//! Unit tests of `proxy` helpers: hash-key extraction and hand-formatted headers.
#![allow(clippy::unwrap_used)]
use super::*;

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
fn client_ip_header_values() {
    for ip in ["1.2.3.4", "127.0.0.1", "255.255.255.255", "10.0.100.9", "0.0.0.0"] {
        let v = ip_header_value(ip.parse().unwrap()).unwrap();
        assert_eq!(v, ip);
    }
    assert_eq!(ip_header_value("::1".parse().unwrap()).unwrap(), "::1");
}

#[test]
fn header_block_size_counts_names_values_and_request_line() {
    let mut req = RequestHeader::build("GET", b"/v1/matches", None).unwrap();
    let base = header_bytes(&req);
    req.insert_header("x-big", "a".repeat(100)).unwrap();
    assert_eq!(header_bytes(&req), base + "x-big".len() + 100 + 4);
}
