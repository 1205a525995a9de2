//! Unit tests of `request_id`.
#![allow(clippy::unwrap_used)]
use super::*;

#[test]
fn keeps_good_ids_and_replaces_bad_ones() {
    let ids = RequestIds::new();
    assert_eq!(ids.for_request(Some(&HeaderValue::from_static("abc-123"))), "abc-123");
    let bad = HeaderValue::from_static("has space");
    let fresh = ids.for_request(Some(&bad));
    assert_eq!(fresh.len(), 24);
    assert!(fresh.to_str().unwrap().bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(fresh.to_str().unwrap().as_bytes()[..16], ids.prefix_hex);
    assert_eq!(&ids.for_request(None).to_str().unwrap()[16..], "00000001");
    assert_ne!(ids.for_request(None), ids.for_request(None));
}
