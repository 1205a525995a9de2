//! Unit tests of `admit`.
#![allow(clippy::unwrap_used)]
use super::*;

#[test]
fn header_block_size_counts_names_values_and_request_line() {
    let mut req = RequestHeader::build("GET", b"/v1/matches", None).unwrap();
    let base = header_bytes(&req);
    req.insert_header("x-big", "a".repeat(100)).unwrap();
    assert_eq!(header_bytes(&req), base + "x-big".len() + 100 + 4);
}
