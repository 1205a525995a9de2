//! Property tests of `report`: any `endpoint-load-metrics` value parses or is ignored, never
//! panics, and what parses is a sane utilisation.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::*;

/// Numbers as pods (or broken pods) write them.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<f64>().prop_map(|x| x.to_string()),
        (0.0..2.0f64).prop_map(|x| x.to_string()),
        any::<i64>().prop_map(|x| x.to_string()),
        prop_oneof![
            Just("NaN"),
            Just("inf"),
            Just("-inf"),
            Just("1e309"),
            Just("-0"),
            Just(""),
            Just("0x1"),
            Just("1_0")
        ]
        .prop_map(str::to_string),
        "[-+.eE0-9a-z]{0,8}",
    ]
}

fn pair() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("cpu_utilization".to_string()),
        Just("application_utilization".to_string()),
        Just("named_metrics.inflight".to_string()),
        "[a-z_.]{0,12}",
    ];
    (key, number(), "[ =]{0,2}").prop_map(|(k, v, sep)| format!("{k}{sep}={v}"))
}

proptest! {
    #![proptest_config(crate::props::config(1024))]

    #[test]
    fn any_bytes_parse_or_are_ignored(value in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Some(r) = parse(&value) {
            prop_assert!(r.utilization.is_finite() && (0.0..=4.0).contains(&r.utilization));
        }
    }

    #[test]
    fn text_reports_give_a_sane_utilisation(
        prefix in prop_oneof![Just("TEXT "), Just("TEXT"), Just(" TEXT  "), Just("text "), Just("")],
        pairs in proptest::collection::vec(pair(), 0..6),
        sep in prop_oneof![Just(","), Just(", "), Just(" ,")],
    ) {
        let value = format!("{prefix}{}", pairs.join(sep));
        if let Some(r) = parse(value.as_bytes()) {
            prop_assert!(r.utilization.is_finite() && (0.0..=4.0).contains(&r.utilization), "{value}: {r:?}");
        }
    }

    #[test]
    fn well_formed_reports_round_trip(cpu in 0.0..4.0f64, inflight in any::<u32>()) {
        let value = format!("TEXT cpu_utilization={cpu}, named_metrics.inflight={inflight}");
        let r = parse(value.as_bytes()).unwrap();
        prop_assert_eq!(r.utilization, cpu);
        prop_assert_eq!(r.inflight, Some(inflight));
    }
}
