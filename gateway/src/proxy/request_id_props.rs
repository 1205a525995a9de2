//! Property tests of `request_id`: any client `x-request-id` is kept when it is sane and
//! replaced by a fresh, unique id otherwise, never a panic.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use proptest::prelude::*;

use super::*;

proptest! {
    #![proptest_config(crate::props::config(1024))]

    #[test]
    fn client_ids_are_kept_or_replaced(
        raw in prop_oneof![
            "[!-~]{1,128}".prop_map(String::into_bytes),
            proptest::collection::vec(any::<u8>(), 0..200),
            "[ -~]{0,140}".prop_map(String::into_bytes),
        ],
    ) {
        let ids = RequestIds::new();
        let Ok(incoming) = HeaderValue::from_bytes(&raw) else { return Ok(()) };
        let id = ids.for_request(Some(&incoming));
        let sane = !raw.is_empty() && raw.len() <= 128 && raw.iter().all(u8::is_ascii_graphic);
        if sane {
            prop_assert_eq!(id, incoming);
        } else {
            prop_assert_eq!(id.len(), 24);
            prop_assert!(id.as_bytes().iter().all(u8::is_ascii_hexdigit));
        }
    }

    #[test]
    fn minted_ids_are_unique(n in 1usize..300) {
        let ids = RequestIds::new();
        let minted: HashSet<HeaderValue> = (0..n).map(|_| ids.for_request(None)).collect();
        prop_assert_eq!(minted.len(), n);
    }
}
