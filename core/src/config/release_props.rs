//! Property tests of the `release` parsers: any text is a percentage, a sticky key or an
//! error, never a panic, and what is written back reads the same.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::*;

/// Text biased towards what a percentage parser trips on.
fn percentish() -> impl Strategy<Value = String> {
    prop_oneof!["[0-9.% +-]{0,8}", "[0-9]{1,4}(\\.[0-9]{0,4})?%", any::<String>(),]
}

proptest! {
    #![proptest_config(crate::props::config(1024))]

    #[test]
    fn any_text_is_a_percentage_or_an_error(text in percentish()) {
        if let Ok(bp) = parse_percent_bp(&text) {
            prop_assert!(bp <= FULL_BP);
            prop_assert!(text.trim().ends_with('%'));
        }
    }

    #[test]
    fn every_basis_point_round_trips(bp in 0..=FULL_BP) {
        prop_assert_eq!(parse_percent_bp(&percent_text(bp)), Ok(bp));
    }

    #[test]
    fn written_percentages_read_exactly(whole in 0u32..=100, hundredths in 0u32..100) {
        let text = format!("{whole}.{hundredths:02}%");
        let bp = whole * 100 + hundredths;
        let want = if bp <= 10_000 { Ok(bp as u16) } else { Err(PercentError::Above100) };
        prop_assert_eq!(parse_percent_bp(&text), want);
    }

    #[test]
    fn any_text_is_a_sticky_key_or_an_error(
        text in prop_oneof![
            "(header:|cookie:|client_ip)[ -~]{0,12}",
            any::<String>(),
        ],
    ) {
        match parse_sticky(&text) {
            Ok(StickyKey::Header(h)) => prop_assert!(!is_internal_header(h.as_str())),
            Ok(StickyKey::Cookie(name)) => {
                prop_assert!(!name.is_empty());
                prop_assert!(!name.contains([';', '=', ' ']));
            }
            Ok(StickyKey::ClientIp) => prop_assert_eq!(text.trim(), "client_ip"),
            Err(_) => {}
        }
    }
}
