//! Unit tests of `Release`, on tokio's paused clock.
#![allow(clippy::unwrap_used)]
use super::*;
use crate::release::testing::spec;

const STEPS: [u16; 5] = [100, 500, 2500, 5000, 10_000];
const T0_MS: u64 = 1_700_000_000_000;

/// Drives `r` with `rps` per version for `for_ms`, ticking every 100 ms like the gateway; the
/// canary fails one request in `fail_every` (0: never). Returns the transitions with their
/// time since `start` (ms).
async fn drive(r: &Release, start: Instant, rps: u64, for_ms: u64, fail_every: u64) -> Vec<(u64, Transition)> {
    let gap_us = 1_000_000 / rps;
    let mut out = Vec::new();
    let mut i = 0u64;
    let mut next_tick = Instant::now() + Duration::from_millis(100);
    let end = Instant::now() + Duration::from_millis(for_ms);
    while Instant::now() < end {
        tokio::time::advance(Duration::from_micros(gap_us)).await;
        let now = Instant::now();
        r.record(Version::Stable, now, Duration::from_millis(20), false);
        let failed = fail_every > 0 && i.is_multiple_of(fail_every);
        r.record(Version::Canary, now, Duration::from_millis(21), failed);
        i += 1;
        if now >= next_tick {
            next_tick += Duration::from_millis(100);
            let elapsed = now.duration_since(start).as_millis() as u64;
            if let Some(t) = r.tick(now, T0_MS + elapsed) {
                out.push((elapsed, t));
            }
        }
    }
    out
}

#[tokio::test(start_paused = true)]
async fn a_failing_canary_is_rolled_back_within_the_first_tick_with_enough_data() {
    let start = Instant::now();
    let r = Release::new(spec("match-api-v2", &STEPS), None, start, T0_MS);
    assert_eq!(r.weight_bp(), 100);
    // 500 rps per version, 20 % of the canary's requests fail. min_requests (100) are in the
    // window after 200 ms: the tick at 200 ms rolls back.
    let transitions = drive(&r, start, 500, 1_000, 5).await;
    assert_eq!(transitions.len(), 1, "{transitions:?}");
    let (at, t) = &transitions[0];
    assert_eq!(*at, 200, "rolled back at the first tick with 100 canary requests");
    assert_eq!((t.from, t.to, t.weight_bp), (Phase::Progressing, Phase::RolledBack, 0));
    assert!(
        t.reason.contains("error rate breach: canary 20.00% vs stable 0.00%"),
        "{}",
        t.reason
    );
    assert_eq!(r.weight_bp(), 0);
    let st = r.state();
    assert_eq!((st.phase, st.generation), (Phase::RolledBack, 2));
    assert!(st.last_verdict.unwrap().verdict.is_breach());
    // The request path sees it at once.
    assert_eq!(
        r.choose(&HeaderMap::new(), "10.0.0.1".parse().ok()).version,
        Version::Stable
    );
}

#[tokio::test(start_paused = true)]
async fn a_healthy_canary_walks_every_step_to_promotion() {
    let start = Instant::now();
    let r = Release::new(spec("match-api-v2", &STEPS), None, start, T0_MS);
    let transitions = drive(&r, start, 100, 200_000, 0).await;
    let path: Vec<(Phase, u16)> = transitions.iter().map(|(_, t)| (t.to, t.weight_bp)).collect();
    assert_eq!(
        path,
        [
            (Phase::Progressing, 500),
            (Phase::Progressing, 2500),
            (Phase::Progressing, 5000),
            (Phase::Progressing, 10_000),
            (Phase::Promoted, 10_000),
        ]
    );
    // 100 rps: the first healthy verdict at 1 s (100 canary requests); each later step's
    // timer starts at its first verdict, the tick after the step began.
    let times: Vec<u64> = transitions.iter().map(|(at, _)| *at).collect();
    assert_eq!(times[0], 31_000, "{times:?}");
    for w in times.windows(2) {
        assert_eq!(w[1] - w[0], 30_100, "{times:?}");
    }
    assert_eq!(r.weight_bp(), 10_000);
}

#[tokio::test(start_paused = true)]
async fn operators_and_other_replicas_move_the_weight() {
    let start = Instant::now();
    let s = spec("match-api-v2", &STEPS);
    let r = Release::new(s.clone(), None, start, T0_MS);
    let t = r.apply(Operator::SetWeight(2000), T0_MS + 1).unwrap();
    assert_eq!((t.to, r.weight_bp()), (Phase::Paused, 2000));
    assert_eq!(
        r.apply(Operator::Pause, T0_MS + 2).unwrap_err(),
        "already paused at 20%"
    );
    assert_eq!(r.state().generation, 2);

    // Another replica's newer state is taken; older, equal, foreign or broken ones are not.
    let mut theirs = r.state();
    theirs.rollback("seen on replica b", T0_MS + 3).unwrap();
    assert!(r.adopt(theirs.clone()));
    assert_eq!((r.weight_bp(), r.state().phase), (0, Phase::RolledBack));
    assert!(!r.adopt(theirs.clone()), "same generation");
    let mut foreign = theirs.clone();
    foreign.generation += 5;
    foreign.fingerprint ^= 1;
    assert!(!r.adopt(foreign));
    let mut broken = theirs.clone();
    broken.generation += 5;
    broken.weight_bp = 700; // rolled back at 7 %?
    assert!(!r.adopt(broken));
    // A lost compare-and-set: the store's state wins at an equal generation too.
    let mut other = r.state();
    other.set_weight(&s, 300, T0_MS + 4).unwrap();
    r.apply(Operator::SetWeight(900), T0_MS + 4).unwrap();
    assert!(!r.adopt(other.clone()));
    assert!(r.yield_to(other));
    assert_eq!(r.weight_bp(), 300);
}

#[tokio::test(start_paused = true)]
async fn a_reload_keeps_state_and_windows_unless_the_rollout_changed() {
    let start = Instant::now();
    let s = spec("match-api-v2", &STEPS);
    let r = Release::new(s.clone(), None, start, T0_MS);
    for _ in 0..50 {
        r.record(Version::Canary, start, Duration::from_millis(5), false);
    }
    r.apply(Operator::SetWeight(700), T0_MS).unwrap();
    let mut tuned = s.clone();
    tuned.analysis.max_p99_ratio = 2.0;
    let r2 = r.reload(tuned, start, T0_MS + 10);
    assert_eq!(r2.windows(start).1.requests, 50);
    assert_eq!((r2.weight_bp(), r2.state()), (700, r.state()));
    assert_eq!(r2.spec().analysis.max_p99_ratio, 2.0);
    // In-flight requests of the old one still count in the new one.
    r.record(Version::Canary, start, Duration::from_millis(5), true);
    assert_eq!(r2.windows(start).1.failures, 1);
    // Another window length: fresh windows, same state.
    let mut longer = s.clone();
    longer.analysis.window = Duration::from_secs(30);
    let r3 = r.reload(longer, start, T0_MS + 10);
    assert_eq!(r3.windows(start).1.requests, 0);
    assert_eq!(r3.weight_bp(), 700);
    // Another canary: starts over.
    let r4 = r.reload(spec("match-api-v2", &[1000, 10_000]), start, T0_MS + 10);
    assert_eq!((r4.weight_bp(), r4.state().phase), (1000, Phase::Progressing));
    assert_eq!(r4.state().generation, r.state().generation + 1);
}

#[tokio::test(start_paused = true)]
async fn a_reload_takes_a_newer_shared_state_of_the_new_rollout() {
    let start = Instant::now();
    let old = Release::new(spec("match-api-v2", &STEPS), None, start, T0_MS);
    let v3 = spec("match-api-v2", &[1000, 10_000]);
    // Another replica reloaded first and moved the new rollout on.
    let mut theirs = reconcile(&v3, Some(old.state()), T0_MS + 5);
    theirs.set_weight(&v3, 4000, T0_MS + 6).unwrap();
    let r = old.reload_from(v3.clone(), Some(theirs.clone()), start, T0_MS + 10);
    assert_eq!(r.state(), theirs);
    // A shared state of the old rollout does not hold the new one back.
    let r = old.reload_from(v3, Some(old.state()), start, T0_MS + 10);
    assert_eq!(
        (r.weight_bp(), r.state().generation),
        (1000, old.state().generation + 1)
    );
}
