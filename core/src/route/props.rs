//! Property tests of `route`: any `Host` header or authority gives a host, never a panic.
#![allow(clippy::unwrap_used)]

use http::{HeaderMap, HeaderValue, Method};
use proptest::prelude::*;

use super::*;
use crate::config::{Match, PathMatch};

fn host_header(raw: &[u8]) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_bytes(raw) {
        h.insert(http::header::HOST, v);
    }
    h
}

/// Text biased towards what a host parser trips on: brackets, colons, digits.
fn hostish() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::collection::vec(
            prop_oneof![Just('['), Just(']'), Just(':'), Just('.'), Just('a'), Just('1')],
            0..12
        )
        .prop_map(|c| c.into_iter().collect()),
        "[ -~]{0,40}",
        ".{0,20}",
    ]
}

proptest! {
    #![proptest_config(crate::props::config(1024))]

    #[test]
    fn any_host_header_gives_a_prefix_of_it(raw in hostish()) {
        let uri: http::Uri = "/x".parse().unwrap();
        let h = host_header(raw.as_bytes());
        let host = host_of(&h, &uri);
        if h.contains_key(http::header::HOST) {
            prop_assert!(raw.starts_with(host), "{raw:?} -> {host:?}");
        } else {
            prop_assert_eq!(host, "");
        }
        // And a route matching on host takes it without a panic.
        let rule = Match { host: Some(raw.to_ascii_lowercase()), path: PathMatch::Any, methods: None, headers: vec![] };
        let view = RequestView { method: &Method::GET, host, path: "/x", headers: &h };
        let _ = rule.matches(&view);
    }

    #[test]
    fn any_header_bytes_are_taken(raw in proptest::collection::vec(any::<u8>(), 0..40)) {
        let uri: http::Uri = "/x".parse().unwrap();
        let _ = host_of(&host_header(&raw), &uri);
    }

    #[test]
    fn ports_are_dropped(name in "[a-z0-9.-]{1,20}", v6 in "[0-9a-f:]{0,20}", port in any::<u16>()) {
        let uri: http::Uri = "/x".parse().unwrap();
        let h = host_header(format!("{name}:{port}").as_bytes());
        prop_assert_eq!(host_of(&h, &uri), name.as_str());
        let bracketed = format!("[{v6}]");
        let h = host_header(format!("{bracketed}:{port}").as_bytes());
        prop_assert_eq!(host_of(&h, &uri), bracketed.as_str());
    }

    #[test]
    fn any_authority_gives_a_host(authority in "[a-z0-9.\\[\\]:]{1,30}") {
        if let Ok(uri) = format!("http://{authority}/x").parse::<http::Uri>() {
            let none = HeaderMap::new();
            let host = host_of(&none, &uri);
            prop_assert!(authority.starts_with(host));
        }
    }
}
