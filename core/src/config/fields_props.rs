//! Property tests of the scalar fields every section reads: shares (`parse_share`),
//! durations (`Dur`, capped) and `${env:NAME}` expansion (`expand_env`) take any text without
//! a panic, and what they accept is in range.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use proptest::prelude::*;
use serde::de::IntoDeserializer;

use super::*;
use crate::config::defaults::MAX_DURATION;
use crate::config::Dur;
use crate::diag::yaml;

fn dur_of(text: &str) -> Result<Dur, String> {
    let de: serde::de::value::StrDeserializer<'_, serde::de::value::Error> = text.into_deserializer();
    Dur::deserialize(de).map_err(|e| e.to_string())
}

/// Duration text: numbers of any size with humantime's units, and noise.
fn duration_text() -> impl Strategy<Value = String> {
    let unit = prop_oneof![
        Just("ns"),
        Just("us"),
        Just("ms"),
        Just("s"),
        Just("m"),
        Just("h"),
        Just("d"),
        Just("w"),
        Just("M"),
        Just("y"),
        Just("years"),
        Just(""),
        Just("x"),
    ];
    prop_oneof![
        (any::<u64>(), unit.clone()).prop_map(|(n, u)| format!("{n}{u}")),
        (0u64..1000, unit.clone(), 0u64..1000, unit).prop_map(|(a, u, b, v)| format!("{a}{u} {b}{v}")),
        "[ 0-9a-z.-]{0,16}",
        ".{0,8}",
    ]
}

use serde::Deserialize;

/// `text` as a YAML double-quoted scalar (every character escaped, so any text is a string).
fn quoted(text: &str) -> String {
    let body: String = text.chars().map(|c| format!("\\U{:08x}", u32::from(c))).collect();
    format!("\"{body}\"")
}

proptest! {
    #![proptest_config(crate::props::config(1024))]

    #[test]
    fn shares_are_within_zero_and_one(text in prop_oneof![".{0,12}".boxed(), "[-+0-9.e%a-z ]{0,10}".boxed()]) {
        if let Some(x) = parse_share(&text) {
            prop_assert!((0.0..=1.0).contains(&x), "{text} -> {x}");
        }
    }

    #[test]
    fn written_shares_read_back(x in 0.0..=1.0f64, p in 0u32..=100) {
        prop_assert_eq!(parse_share(&x.to_string()), Some(x));
        let pct = parse_share(&format!("{p}%")).unwrap();
        prop_assert!((pct - f64::from(p) / 100.0).abs() < 1e-12);
    }

    #[test]
    fn durations_parse_within_the_cap_or_are_errors(text in duration_text()) {
        match dur_of(&text) {
            Ok(d) => prop_assert!(d.0 <= MAX_DURATION, "{text} -> {d}"),
            Err(e) => prop_assert!(!e.is_empty()),
        }
        // Through the positioned YAML decoder as well (quoted: any text is a string).
        let root = yaml::parse(&quoted(&text)).unwrap();
        if let Err(e) = yaml::from_node::<Dur>(&root) {
            prop_assert!(e.pos.is_some());
        }
    }

    #[test]
    fn durations_up_to_the_cap_are_kept(secs in 0..=MAX_DURATION.as_secs(), nanos in 0u32..1_000_000_000) {
        let d = Duration::new(secs, nanos).min(MAX_DURATION);
        let text = humantime::format_duration(d).to_string();
        prop_assert_eq!(dur_of(&text).unwrap().0, d);
    }

    #[test]
    fn env_expansion_never_panics(
        text in proptest::collection::vec(prop_oneof![Just("${env:"), Just("}"), Just("$"), Just("{"), Just("A"), Just("é"), Just("${env:}")], 0..12),
        set in proptest::collection::hash_map("[A-Z]{0,2}", ".{0,4}", 0..4),
    ) {
        let text: String = text.concat();
        let _ = expand_env(&text, |n| set.get(n).cloned());
    }

    #[test]
    fn env_references_expand_to_their_values(
        parts in proptest::collection::vec((".{0,6}", proptest::option::of("[A-Z_]{1,6}")), 0..5),
        value in ".{0,6}",
    ) {
        // Literal text (without `${env:`) and references to set variables, in any order.
        let parts: Vec<(String, Option<String>)> =
            parts.into_iter().map(|(lit, var)| (lit.replace("${env:", ""), var)).collect();
        let mut text = String::new();
        let mut want = String::new();
        let mut env = HashMap::new();
        for (lit, var) in &parts {
            text.push_str(lit);
            want.push_str(lit);
            if let Some(v) = var {
                text.push_str(&format!("${{env:{v}}}"));
                want.push_str(&value);
                env.insert(v.clone(), value.clone());
            }
        }
        // A literal ending in `$` followed by `{env:` would be a reference of its own.
        prop_assume!(!text.replace("${env:", "").contains("${env:"));
        prop_assert_eq!(expand_env(&text, |n| env.get(n).cloned()), Ok(want));
    }
}

/// Durations at the cap and just past it, and humantime's own overflow.
#[test]
fn the_duration_cap_is_inclusive() {
    assert_eq!(dur_of("365d").unwrap().0, MAX_DURATION);
    assert!(dur_of("365d 1ns").unwrap_err().contains("longer than 365 days"));
    assert!(dur_of("500000000000y").unwrap_err().contains("longer than 365 days"));
    assert!(dur_of("18446744073709551615s").is_err());
    assert!(dur_of("99999999999999999999s").is_err());
    let root = yaml::parse("\"366d\"").unwrap();
    let e = yaml::from_node::<Dur>(&root).unwrap_err();
    assert!(e.message.contains("longer than 365 days"), "{}", e.message);
    assert!(e.hint.unwrap().contains("at most 365 days"));
}
