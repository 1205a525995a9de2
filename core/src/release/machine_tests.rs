//! Unit tests of `machine`: every transition, on fixed unix-ms times.
#![allow(clippy::unwrap_used)]
use super::*;
use crate::config::OnFailure;
use crate::release::testing::spec;
use crate::release::verdict::{BreachReason, Observed};

const STEPS: [u16; 5] = [100, 500, 2500, 5000, 10_000];
const T0: u64 = 1_700_000_000_000;
const INTERVAL: u64 = 30_000;

fn healthy() -> Verdict {
    Verdict::Healthy {
        observed: Observed::default(),
    }
}

fn insufficient() -> Verdict {
    Verdict::Insufficient {
        observed: Observed::default(),
        min_requests: 100,
    }
}

fn breach() -> Verdict {
    Verdict::Breach {
        reason: BreachReason::ErrorRate,
        limit: 0.01,
        observed: Observed {
            canary_requests: 100,
            canary_error_rate: 0.2,
            ..Observed::default()
        },
    }
}

#[test]
fn a_fresh_release_starts_at_its_first_step_or_its_weight() {
    let s = spec("r", &STEPS);
    let st = reconcile(&s, None, T0);
    assert_eq!(
        (st.phase, st.weight_bp, st.step, st.generation),
        (Phase::Progressing, 100, Some(0), 1)
    );
    assert_eq!(st.fingerprint, s.fingerprint);
    assert_eq!(st.history.len(), 1);
    assert_eq!(st.history[0].reason, "started: at 1% (step 1/5)");
    let mut manual = spec("m", &[]);
    manual.initial_weight = 250;
    let st = reconcile(&manual, None, T0);
    assert_eq!((st.phase, st.weight_bp, st.step), (Phase::Progressing, 250, None));
    assert_eq!(st.history[0].reason, "started: at 2.5%");
}

#[test]
fn healthy_steps_advance_after_the_interval_then_promote() {
    let s = spec("r", &STEPS);
    let mut st = reconcile(&s, None, T0);
    // No data yet: the timer has not started.
    assert_eq!(st.on_verdict(&s, insufficient(), T0 + 60_000), None);
    assert_eq!(st.healthy_since_ms, None);
    let mut t = T0 + 60_000;
    for (k, want) in STEPS.iter().enumerate().skip(1) {
        assert_eq!(
            st.on_verdict(&s, healthy(), t),
            None,
            "the timer starts at the first healthy verdict"
        );
        assert_eq!(
            st.on_verdict(&s, insufficient(), t + INTERVAL),
            None,
            "no step on a verdict without data"
        );
        assert_eq!(st.on_verdict(&s, healthy(), t + INTERVAL - 1), None);
        let tr = st.on_verdict(&s, healthy(), t + INTERVAL).unwrap();
        assert_eq!(
            (tr.from, tr.to, tr.weight_bp),
            (Phase::Progressing, Phase::Progressing, *want)
        );
        assert_eq!(
            (st.step, st.weight_bp, st.step_since_ms),
            (Some(k), *want, t + INTERVAL)
        );
        t += INTERVAL + 1_000;
    }
    assert!(
        st.history
            .last()
            .unwrap()
            .reason
            .starts_with("step 5/5 at 100%: healthy for 30s at 50%"),
        "{:?}",
        st.history
    );
    st.on_verdict(&s, healthy(), t);
    let tr = st.on_verdict(&s, healthy(), t + INTERVAL).unwrap();
    assert_eq!((tr.to, tr.weight_bp), (Phase::Promoted, 10_000));
    assert!(
        tr.reason.starts_with("promoted: healthy for 30s at 100%"),
        "{}",
        tr.reason
    );
    assert_eq!(st.generation, 1 + 5);
    // Final: verdicts are only recorded.
    assert_eq!(st.on_verdict(&s, breach(), t + 2 * INTERVAL), None);
    assert_eq!(st.phase, Phase::Promoted);
    assert!(st.last_verdict.unwrap().verdict.is_breach());
}

#[test]
fn a_breach_rolls_back_at_once() {
    let s = spec("r", &STEPS);
    let mut st = reconcile(&s, None, T0);
    st.on_verdict(&s, healthy(), T0 + 1_000);
    let tr = st.on_verdict(&s, breach(), T0 + 1_100).unwrap();
    assert_eq!(
        (tr.from, tr.to, tr.weight_bp),
        (Phase::Progressing, Phase::RolledBack, 0)
    );
    assert!(
        tr.reason
            .starts_with("rolled back at 1%: error rate breach: canary 20.00%"),
        "{}",
        tr.reason
    );
    assert_eq!(
        (st.phase, st.weight_bp, st.step, st.generation),
        (Phase::RolledBack, 0, None, 2)
    );
    assert_eq!(
        st.on_verdict(&s, healthy(), T0 + 100_000),
        None,
        "rolled back stays rolled back"
    );
}

#[test]
fn a_breach_pauses_when_told_to() {
    let mut s = spec("r", &STEPS);
    s.on_failure = OnFailure::Pause;
    let mut st = reconcile(&s, None, T0);
    st.on_verdict(&s, healthy(), T0);
    st.on_verdict(&s, healthy(), T0 + INTERVAL); // → 5 %
    let tr = st.on_verdict(&s, breach(), T0 + INTERVAL + 100).unwrap();
    assert_eq!((tr.to, tr.weight_bp), (Phase::Paused, 500));
    assert_eq!(st.step, Some(1));
    // Paused: verdicts do not move it.
    assert_eq!(st.on_verdict(&s, healthy(), T0 + 10 * INTERVAL), None);
    assert_eq!(st.on_verdict(&s, breach(), T0 + 10 * INTERVAL), None);
    // Resuming re-verifies the step it paused at.
    let tr = st.resume(&s, T0 + 11 * INTERVAL).unwrap();
    assert_eq!((tr.to, tr.weight_bp, st.step), (Phase::Progressing, 500, Some(1)));
    assert_eq!(tr.reason, "operator resumed at 5% (step 2/5)");
}

#[test]
fn releases_without_a_last_full_step_hold_under_analysis() {
    let s = spec("r", &[100, 2500]);
    let mut st = reconcile(&s, None, T0);
    st.on_verdict(&s, healthy(), T0);
    st.on_verdict(&s, healthy(), T0 + INTERVAL).unwrap();
    st.on_verdict(&s, healthy(), T0 + INTERVAL + 1);
    assert_eq!(st.on_verdict(&s, healthy(), T0 + 100 * INTERVAL), None);
    assert_eq!((st.phase, st.weight_bp), (Phase::Progressing, 2500));
    assert_eq!(
        st.on_verdict(&s, breach(), T0 + 101 * INTERVAL).unwrap().to,
        Phase::RolledBack
    );

    let manual = spec("m", &[]);
    let mut st = reconcile(&manual, None, T0);
    st.set_weight(&manual, 300, T0).unwrap();
    st.resume(&manual, T0).unwrap();
    st.on_verdict(&manual, healthy(), T0);
    assert_eq!(st.on_verdict(&manual, healthy(), T0 + 100 * INTERVAL), None);
    assert_eq!((st.phase, st.weight_bp, st.step), (Phase::Progressing, 300, None));
    assert_eq!(
        st.on_verdict(&manual, breach(), T0 + 101 * INTERVAL).unwrap().to,
        Phase::RolledBack
    );
}

#[test]
fn operators_take_over() {
    let s = spec("r", &STEPS);
    let mut st = reconcile(&s, None, T0);
    let tr = st.set_weight(&s, 1000, T0 + 1).unwrap();
    assert_eq!(
        (tr.from, tr.to, tr.weight_bp, st.step),
        (Phase::Progressing, Phase::Paused, 1000, None)
    );
    assert_eq!(tr.reason, "operator set the weight to 10%");
    assert_eq!(
        st.set_weight(&s, 10_001, T0).unwrap_err(),
        "weight 100.01% is above 100%"
    );
    assert_eq!(st.pause(T0).unwrap_err(), "already paused at 10%");
    // Between steps: resume goes up to the next one.
    let tr = st.resume(&s, T0 + 2).unwrap();
    assert_eq!((tr.to, tr.weight_bp, st.step), (Phase::Progressing, 2500, Some(2)));
    assert_eq!(st.resume(&s, T0).unwrap_err(), "already progressing at 25%");
    let tr = st.pause(T0 + 3).unwrap();
    assert_eq!((tr.to, tr.weight_bp), (Phase::Paused, 2500));
    assert_eq!(tr.reason, "operator paused at 25%");
    let tr = st.promote(&s, T0 + 4).unwrap();
    assert_eq!((tr.to, tr.weight_bp, st.step), (Phase::Promoted, 10_000, Some(4)));
    assert_eq!(st.promote(&s, T0).unwrap_err(), "already promoted");
    assert!(st
        .resume(&s, T0)
        .unwrap_err()
        .starts_with("promoted: the canary has all traffic"));
    assert!(st.pause(T0).unwrap_err().starts_with("promoted: nothing to pause"));
    let tr = st.rollback("  bad build ", T0 + 5).unwrap();
    assert_eq!((tr.from, tr.to, tr.weight_bp), (Phase::Promoted, Phase::RolledBack, 0));
    assert_eq!(tr.reason, "operator rolled back from 100%: bad build");
    assert_eq!(st.rollback("", T0).unwrap_err(), "already rolled back");
    assert_eq!(
        st.resume(&s, T0).unwrap_err(),
        "rolled back: change the release (canary version) to start again, or `set` a weight"
    );
    assert!(st.pause(T0).unwrap_err().starts_with("rolled back: nothing to pause"));
    // `set` is the way out of a rollback; above the last step resume holds the weight.
    st.apply(&s, &Operator::SetWeight(500), T0 + 6).unwrap();
    assert_eq!(st.step, Some(1));
    st.apply(&s, &Operator::Rollback(String::new()), T0 + 7).unwrap();
    assert_eq!(st.history.last().unwrap().reason, "operator rolled back from 5%");
    assert_eq!(st.generation, 1 + 7);
    let manual = spec("m", &[]);
    let mut st = reconcile(&manual, None, T0);
    st.apply(&manual, &Operator::Pause, T0).unwrap();
    let tr = st.apply(&manual, &Operator::Resume, T0).unwrap();
    assert_eq!(
        (tr.weight_bp, st.step, tr.reason.as_str()),
        (0, None, "operator resumed at 0%")
    );
}

#[test]
fn history_is_capped_and_every_change_bumps_the_generation() {
    let s = spec("r", &STEPS);
    let mut st = reconcile(&s, None, T0);
    for i in 0..(HISTORY as u64 + 20) {
        st.set_weight(&s, (i % 100) as u16, T0 + i).unwrap();
    }
    assert_eq!(st.history.len(), HISTORY);
    assert_eq!(st.history.last().unwrap().at_ms, T0 + HISTORY as u64 + 19);
    assert_eq!(st.generation, 1 + HISTORY as u64 + 20);
    // A verdict alone is not a change.
    st.on_verdict(&s, healthy(), T0 + 1_000_000);
    assert_eq!(st.generation, 1 + HISTORY as u64 + 20);
}

#[test]
fn reload_keeps_a_rollout_with_the_same_fingerprint_and_restarts_a_changed_one() {
    let s = spec("r", &STEPS);
    let mut st = reconcile(&s, None, T0);
    st.on_verdict(&s, healthy(), T0);
    st.on_verdict(&s, healthy(), T0 + INTERVAL).unwrap();
    st.on_verdict(&s, healthy(), T0 + INTERVAL + 5);
    // Tuned thresholds: same fingerprint, the state (and the step timer) carries over.
    let mut tuned = s.clone();
    tuned.analysis.max_p99_ratio = 3.0;
    let kept = reconcile(&tuned, Some(st.clone()), T0 + INTERVAL + 10);
    assert_eq!(kept, st);
    // A new canary: starts over, newer than what was persisted.
    let v3 = spec("r", &[100, 1000, 10_000]);
    let fresh = reconcile(&v3, Some(st.clone()), T0 + INTERVAL + 10);
    assert_eq!(
        (fresh.phase, fresh.weight_bp, fresh.step),
        (Phase::Progressing, 100, Some(0))
    );
    assert_eq!(fresh.generation, st.generation + 1);
    assert_eq!(fresh.fingerprint, v3.fingerprint);
    assert_eq!(
        fresh.history[0].reason,
        "release changed, starting over: at 1% (step 1/3)"
    );
    // Another replica's clock ahead of ours: its times are brought back to now.
    let mut ahead = st.clone();
    ahead.step_since_ms = T0 + 10 * INTERVAL;
    ahead.healthy_since_ms = Some(T0 + 10 * INTERVAL);
    let fixed = reconcile(&s, Some(ahead), T0 + INTERVAL + 10);
    assert_eq!(fixed.step_since_ms, T0 + INTERVAL + 10);
    assert_eq!(fixed.healthy_since_ms, Some(T0 + INTERVAL + 10));
}

#[test]
fn a_state_that_does_not_fit_starts_over() {
    let s = spec("r", &STEPS);
    let good = reconcile(&s, None, T0);
    let broken: [fn(&mut ReleaseState); 5] = [
        |st| st.weight_bp = 10_001,
        |st| st.step = Some(5),
        |st| st.weight_bp = 300, // progressing at step 0 must be 1 %
        |st| st.phase = Phase::Promoted,
        |st| {
            st.phase = Phase::RolledBack;
            st.step = None;
        },
    ];
    for (i, f) in broken.iter().enumerate() {
        let mut st = good.clone();
        st.generation = 41;
        f(&mut st);
        let r = reconcile(&s, Some(st), T0 + 5);
        assert_eq!(
            (r.weight_bp, r.step, r.phase),
            (100, Some(0), Phase::Progressing),
            "case {i}"
        );
        assert_eq!(r.generation, 42, "case {i}");
        assert!(
            r.history[0].reason.starts_with("persisted state did not fit"),
            "case {i}"
        );
    }
    let mut long = good.clone();
    long.history = vec![good.history[0].clone(); 200];
    long.history[199].at_ms = 7;
    let r = reconcile(&s, Some(long), T0);
    assert_eq!(r.history.len(), HISTORY);
    assert_eq!(r.history[HISTORY - 1].at_ms, 7);
}

#[test]
fn the_state_serializes_as_documented() {
    let s = spec("r", &STEPS);
    let mut st = reconcile(&s, None, T0);
    st.on_verdict(&s, breach(), T0 + 1);
    let json = serde_json::to_value(&st).unwrap();
    assert_eq!(json["phase"], "rolled_back");
    assert_eq!(json["weight_bp"], 0);
    assert_eq!(json["step"], serde_json::Value::Null);
    assert_eq!(json["fingerprint"], format!("{:016x}", s.fingerprint));
    assert_eq!(json["generation"], 2);
    assert_eq!(json["last_verdict"]["verdict"], "breach");
    assert_eq!(json["last_verdict"]["reason"], "error_rate");
    assert_eq!(json["last_verdict"]["at_ms"], T0 + 1);
    assert_eq!(json["history"][1]["from"], "progressing");
    assert_eq!(json["history"][1]["to"], "rolled_back");
    let back: ReleaseState = serde_json::from_value(json).unwrap();
    assert_eq!(back, st);
    // Older files without the optional fields still load.
    let minimal = format!(
        r#"{{"phase":"paused","weight_bp":700,"step":null,"step_since_ms":5,"fingerprint":"{:016x}","generation":9}}"#,
        s.fingerprint
    );
    let st: ReleaseState = serde_json::from_str(&minimal).unwrap();
    assert_eq!(reconcile(&s, Some(st.clone()), T0), st);
    assert!(serde_json::from_str::<ReleaseState>(&minimal.replace("paused", "Paused")).is_err());
    assert_eq!(
        serde_json::to_value(Operator::SetWeight(500)).unwrap(),
        serde_json::json!({ "set_weight": 500 })
    );
}
