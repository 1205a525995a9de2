//! Property tests of `machine`: any bytes read as a persisted state are a state or an error,
//! never a panic, and whatever state is read, [`reconcile`] makes one that fits the release and
//! every transition keeps it fitting.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::*;
use crate::release::testing::spec;
use crate::release::verdict::{BreachReason, Observed};

fn phase() -> impl Strategy<Value = Phase> {
    prop_oneof![
        Just(Phase::Progressing),
        Just(Phase::Paused),
        Just(Phase::Promoted),
        Just(Phase::RolledBack)
    ]
}

fn state(fingerprint: u64) -> impl Strategy<Value = ReleaseState> {
    (
        phase(),
        any::<u16>(),
        proptest::option::of(0usize..8),
        any::<u64>(),
        proptest::option::of(any::<u64>()),
        0usize..80,
        prop_oneof![Just(fingerprint), any::<u64>()],
        any::<u64>(),
    )
        .prop_map(
            |(phase, weight_bp, step, since, healthy, history, fingerprint, generation)| ReleaseState {
                phase,
                weight_bp,
                step,
                step_since_ms: since,
                healthy_since_ms: healthy,
                last_verdict: None,
                history: (0..history)
                    .map(|i| Transition {
                        at_ms: i as u64,
                        from: Phase::Paused,
                        to: Phase::Paused,
                        weight_bp: 0,
                        reason: String::new(),
                    })
                    .collect(),
                fingerprint,
                generation,
            },
        )
}

fn verdict() -> impl Strategy<Value = Verdict> {
    prop_oneof![
        Just(Verdict::Healthy {
            observed: Observed::default()
        }),
        Just(Verdict::Insufficient {
            observed: Observed::default(),
            min_requests: 100
        }),
        Just(Verdict::Breach {
            reason: BreachReason::Latency,
            limit: 1.5,
            observed: Observed::default()
        }),
    ]
}

fn op() -> impl Strategy<Value = Operator> {
    prop_oneof![
        (0u16..=10_500).prop_map(Operator::SetWeight),
        Just(Operator::Pause),
        Just(Operator::Resume),
        Just(Operator::Promote),
        ".{0,8}".prop_map(Operator::Rollback),
    ]
}

proptest! {
    #![proptest_config(crate::props::config(512))]

    #[test]
    fn any_bytes_load_as_a_state_or_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let s = spec("r", &[100, 500, 10_000]);
        if let Ok(st) = serde_json::from_slice::<ReleaseState>(&bytes) {
            prop_assert!(reconcile(&s, Some(st), 1_000).is_consistent(&s));
        }
    }

    #[test]
    fn mangled_json_of_a_state_never_panics(
        st in state(0),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut json = serde_json::to_vec(&st).unwrap();
        let i = flip.index(json.len());
        json[i] = byte;
        json.truncate(cut.index(json.len() + 1));
        let _ = serde_json::from_slice::<ReleaseState>(&json);
    }

    #[test]
    fn reconcile_and_every_transition_keep_the_state_fitting(
        st in state(spec("r", &[100, 500, 10_000]).fingerprint),
        steps in prop_oneof![Just(vec![100u16, 500, 10_000]), Just(vec![]), Just(vec![2500u16])],
        events in proptest::collection::vec(prop_oneof![verdict().prop_map(Ok), op().prop_map(Err)], 0..24),
        now in 0u64..1 << 50,
    ) {
        let s = spec("r", &steps);
        let mut st = reconcile(&s, Some(st), now);
        prop_assert!(st.is_consistent(&s));
        prop_assert!(st.history.len() <= HISTORY);
        prop_assert!(st.step_since_ms <= now);
        for (i, e) in events.into_iter().enumerate() {
            let t = now + i as u64 * 31_000;
            let before = st.generation;
            let changed = match e {
                Ok(v) => st.on_verdict(&s, v, t).is_some(),
                Err(op) => st.apply(&s, &op, t).is_ok(),
            };
            prop_assert!(st.is_consistent(&s), "{st:?}");
            prop_assert!(st.history.len() <= HISTORY);
            prop_assert_eq!(st.generation, if changed { before.saturating_add(1) } else { before });
        }
    }
}
