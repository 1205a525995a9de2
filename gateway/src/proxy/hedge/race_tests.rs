//! Unit tests of `hedge::race`: the race with scripted tries under paused time.
#![allow(clippy::unwrap_used)]
use super::*;
use crate::proxy::classify::classify;
use pingora::{Error, ErrorType};

/// How a scripted try ends, after its delay.
#[derive(Clone, Copy)]
enum End {
    Ok,
    Status(u16),
    Refused,
}

/// A racer whose tries follow a script (one entry per launch, in order).
struct Scripted {
    script: Vec<(u64, End)>,
    launched: Vec<Instant>,
    failed: Vec<usize>,
    hedge_budget: u32,
    retries_left: u32,
}

impl Scripted {
    fn new(script: &[(u64, End)]) -> Self {
        Scripted {
            script: script.to_vec(),
            launched: Vec::new(),
            failed: Vec::new(),
            hedge_budget: u32::MAX,
            retries_left: 0,
        }
    }
}

fn pod(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 11], 9100 + i as u16))
}

impl Racer for Scripted {
    type Session = usize;

    fn launch(&mut self) -> Result<(usize, TryFuture<usize>), GatewayError> {
        let idx = self.launched.len();
        let Some(&(ms, end)) = self.script.get(idx) else {
            return Err(GatewayError::NoEndpoints { cluster: "c".into() });
        };
        self.launched.push(Instant::now());
        Ok((
            idx,
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                match end {
                    End::Ok => Reply::Answer(idx, 200),
                    End::Status(s) => Reply::Answer(idx, s),
                    End::Refused => {
                        let mut e = Error::new(ErrorType::ConnectRefused);
                        e.as_up();
                        Reply::Failed(classify(&e, Some(pod(idx))))
                    }
                }
            }),
        ))
    }

    fn hedge_allowed(&mut self) -> bool {
        let ok = self.hedge_budget > 0;
        self.hedge_budget = self.hedge_budget.saturating_sub(1);
        ok
    }

    fn failed(&mut self, idx: usize, _fault: &Fault) {
        self.failed.push(idx);
    }

    fn may_retry(&mut self, _cause: RetryOn) -> bool {
        let ok = self.retries_left > 0;
        self.retries_left = self.retries_left.saturating_sub(1);
        ok
    }

    fn pod(&self, idx: usize) -> Option<SocketAddr> {
        Some(pod(idx))
    }
}

fn plan(delay_ms: u64, max_extra: u32, deadline_ms: u64) -> Plan {
    Plan {
        delay: Duration::from_millis(delay_ms),
        max_extra,
        deadline: Instant::now() + Duration::from_millis(deadline_ms),
    }
}

fn offsets(r: &Scripted, t0: Instant) -> Vec<u64> {
    r.launched.iter().map(|t| (*t - t0).as_millis() as u64).collect()
}

#[tokio::test(start_paused = true)]
async fn a_stuck_first_try_is_hedged_and_the_hedge_wins() {
    let t0 = Instant::now();
    let mut r = Scripted::new(&[(10_000, End::Ok), (5, End::Ok)]);
    let end = race(&plan(50, 1, 2_000), &mut r).await;
    assert_eq!(end.winner.map(|(i, _)| i), Some(1));
    assert_eq!(end.hedges, 1);
    assert_eq!(offsets(&r, t0), vec![0, 50]);
    assert_eq!((Instant::now() - t0).as_millis(), 55);
}

#[tokio::test(start_paused = true)]
async fn a_fast_answer_is_not_hedged() {
    let t0 = Instant::now();
    let mut r = Scripted::new(&[(5, End::Ok), (5, End::Ok)]);
    let end = race(&plan(50, 1, 2_000), &mut r).await;
    assert_eq!(end.winner.map(|(i, _)| i), Some(0));
    assert_eq!(end.hedges, 0);
    assert_eq!(offsets(&r, t0), vec![0]);
}

#[tokio::test(start_paused = true)]
async fn a_failure_with_nothing_in_flight_is_retried_at_once() {
    let t0 = Instant::now();
    let mut r = Scripted::new(&[(1, End::Refused), (5, End::Ok)]);
    r.retries_left = 1;
    let end = race(&plan(50, 1, 2_000), &mut r).await;
    assert_eq!(end.winner.map(|(i, _)| i), Some(1));
    assert_eq!(r.failed, vec![0], "the failed try is reported to the racer");
    assert_eq!(
        offsets(&r, t0),
        vec![0, 1],
        "retried when it failed, not at the hedge delay"
    );
    assert_eq!(end.hedges, 0);
}

#[tokio::test(start_paused = true)]
async fn without_a_retry_a_failure_ends_the_race_with_its_error() {
    let mut r = Scripted::new(&[(1, End::Refused), (5, End::Ok)]);
    let end = race(&plan(50, 1, 2_000), &mut r).await;
    assert!(end.winner.is_none());
    assert_eq!(r.launched.len(), 1);
    assert!(
        matches!(end.failure, Some(GatewayError::Unreachable { pod: Some(p), .. }) if p == pod(0)),
        "{:?}",
        end.failure
    );
}

#[tokio::test(start_paused = true)]
async fn hedges_stop_at_max_extra_and_the_deadline_ends_the_race() {
    let t0 = Instant::now();
    let mut r = Scripted::new(&[(10_000, End::Ok), (10_000, End::Ok), (10_000, End::Ok)]);
    let end = race(&plan(50, 1, 500), &mut r).await;
    assert!(end.winner.is_none());
    assert_eq!(offsets(&r, t0), vec![0, 50], "one hedge at most");
    assert_eq!(end.failure, Some(GatewayError::UpstreamTimeout { pod: Some(pod(1)) }));
    assert_eq!((Instant::now() - t0).as_millis(), 500);
}

#[tokio::test(start_paused = true)]
async fn a_refused_hedge_is_not_asked_for_again() {
    let t0 = Instant::now();
    let mut r = Scripted::new(&[(300, End::Ok), (5, End::Ok), (5, End::Ok)]);
    r.hedge_budget = 0;
    let end = race(&plan(50, 2, 2_000), &mut r).await;
    assert_eq!(end.winner.map(|(i, _)| i), Some(0), "the first try answers in the end");
    assert_eq!(end.hedges, 0);
    assert_eq!(offsets(&r, t0), vec![0]);
}

#[tokio::test(start_paused = true)]
async fn a_server_error_is_kept_while_a_better_answer_is_awaited() {
    let mut r = Scripted::new(&[(1, End::Status(503)), (5, End::Ok)]);
    r.retries_left = 1;
    let end = race(&plan(50, 1, 2_000), &mut r).await;
    assert_eq!(end.winner.map(|(i, _)| i), Some(1));
    assert_eq!(end.server_error.map(|(i, _)| i), Some(0));

    let mut r = Scripted::new(&[(1, End::Status(503)), (5, End::Ok)]);
    let end = race(&plan(50, 1, 2_000), &mut r).await;
    assert!(end.winner.is_none());
    assert_eq!(end.server_error.map(|(i, _)| i), Some(0));
    assert_eq!(
        end.failure,
        Some(GatewayError::BadStatus {
            pod: Some(pod(0)),
            status: 503
        })
    );
}

#[tokio::test(start_paused = true)]
async fn no_pod_to_start_with() {
    let mut r = Scripted::new(&[]);
    let end = race(&plan(50, 1, 2_000), &mut r).await;
    assert!(end.winner.is_none());
    assert_eq!(end.failure, Some(GatewayError::NoEndpoints { cluster: "c".into() }));
}
