//! Following a release on the gateway's admin API while the load runs: `GET /releases/NAME`
//! every `poll` on a thread of its own, kept as a timeline of state and weight, plus the
//! transitions the gateway recorded (timed by the gateway itself, so not rounded to the poll).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use arena_core::release::Phase;
use serde::Serialize;
use serde_json::Value;

use crate::engine::{Observer, RunContext};

/// Longest sleep between two looks at the stop flag (the poll interval may be longer).
const STOP_CHECK: Duration = Duration::from_millis(50);
/// A sample is kept when something changed, and at least this often otherwise.
const KEEP_EVERY_S: f64 = 1.0;
/// Transitions kept from the gateway's history (it keeps the last 50 itself).
const MAX_TRANSITIONS: usize = 1000;
/// Distinct poll error messages kept for the report.
const MAX_ERRORS: usize = 5;

/// Where and what to poll.
#[derive(Debug, Clone)]
pub struct PollTarget {
    pub admin: SocketAddr,
    /// Bearer token for admin reads, if the gateway needs one.
    pub token: Option<String>,
    pub name: String,
    pub every: Duration,
}

/// The release as one poll saw it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample {
    /// Seconds since the start of the load (negative: polled before it).
    pub t_s: f64,
    pub state: Phase,
    /// Percent of the split traffic sent to the canary.
    pub weight: f64,
    /// 1-based step, `None` once off the steps (operator weight, rolled back).
    pub step: Option<u64>,
}

/// A transition from the gateway's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeenTransition {
    /// Seconds since the start of the load, from the gateway's own timestamp.
    pub at_s: f64,
    pub from: Phase,
    pub to: Phase,
    /// Weight after the transition, percent.
    pub weight: f64,
    pub reason: String,
    #[serde(skip)]
    at_ms: u64,
}

/// Everything the poller saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReleaseTimeline {
    pub name: String,
    pub poll_ms: u64,
    pub polls: u64,
    pub failed: u64,
    pub errors: Vec<String>,
    /// The release's steps, as the gateway lists them (`1%`, `5%`...).
    pub steps: Vec<String>,
    /// Samples where something changed, and one per second otherwise.
    pub samples: Vec<Sample>,
    pub transitions: Vec<SeenTransition>,
    /// The last successful poll (after the load ended).
    pub last: Option<Sample>,
}

/// One parsed answer of `GET /releases/NAME`.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub state: Phase,
    pub weight: f64,
    pub step: Option<u64>,
    pub steps: Vec<String>,
    /// `(at_ms, from, to, weight percent, reason)` of the history.
    pub history: Vec<(u64, Phase, Phase, f64, String)>,
}

/// Parses the admin API's view of a release (only the fields the tester uses).
pub fn parse_view(body: &str) -> Result<View, String> {
    let v: Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    let phase = |v: &Value| serde_json::from_value::<Phase>(v.clone()).ok();
    let state = phase(&v["state"]).ok_or_else(|| format!("no valid `state` in {}", short(body)))?;
    let weight = v["weight"]
        .as_f64()
        .ok_or_else(|| format!("no `weight` in {}", short(body)))?;
    let steps = v["steps"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
        .unwrap_or_default();
    let history = v["history"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| {
                    Some((
                        t["at_ms"].as_u64()?,
                        phase(&t["from"])?,
                        phase(&t["to"])?,
                        t["weight_bp"].as_f64()? / 100.0,
                        t["reason"].as_str().unwrap_or_default().to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(View {
        state,
        weight,
        step: v["step"].as_u64(),
        steps,
        history,
    })
}

fn short(body: &str) -> String {
    let one_line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    one_line.chars().take(120).collect()
}

impl ReleaseTimeline {
    fn new(t: &PollTarget) -> ReleaseTimeline {
        ReleaseTimeline {
            name: t.name.clone(),
            poll_ms: u64::try_from(t.every.as_millis()).unwrap_or(u64::MAX),
            ..ReleaseTimeline::default()
        }
    }

    /// Adds one successful poll at `t_s`; `unix_ms_at_start` maps the gateway's timestamps.
    pub fn record(&mut self, t_s: f64, view: View, unix_ms_at_start: u64) {
        self.polls += 1;
        let sample = Sample {
            t_s,
            state: view.state,
            weight: view.weight,
            step: view.step,
        };
        let keep = match self.samples.last() {
            None => true,
            Some(p) => {
                (p.state, p.weight, p.step) != (sample.state, sample.weight, sample.step)
                    || sample.t_s - p.t_s >= KEEP_EVERY_S
            }
        };
        if keep {
            self.samples.push(sample);
        }
        self.last = Some(sample);
        self.steps = view.steps;
        for (at_ms, from, to, weight, reason) in view.history {
            let seen = self
                .transitions
                .iter()
                .rev()
                .any(|t| t.at_ms == at_ms && t.to == to && t.weight == weight);
            if seen || self.transitions.len() >= MAX_TRANSITIONS {
                continue;
            }
            let at_s = (at_ms as f64 - unix_ms_at_start as f64) / 1000.0;
            self.transitions.push(SeenTransition {
                at_s,
                from,
                to,
                weight,
                reason,
                at_ms,
            });
        }
        self.transitions.sort_by_key(|t| t.at_ms);
    }

    /// Counts a failed poll, keeping a few distinct messages.
    pub fn failure(&mut self, message: String) {
        self.polls += 1;
        self.failed += 1;
        if self.errors.len() < MAX_ERRORS && !self.errors.contains(&message) {
            self.errors.push(message);
        }
    }

    /// Weight (percent) known just before `at_s`: the latest sample or transition before it.
    pub fn weight_before(&self, at_s: f64) -> Option<f64> {
        let from_samples = self
            .samples
            .iter()
            .rev()
            .find(|s| s.t_s < at_s)
            .map(|s| (s.t_s, s.weight));
        let from_history = self
            .transitions
            .iter()
            .rev()
            .find(|t| t.at_s < at_s)
            .map(|t| (t.at_s, t.weight));
        match (from_samples, from_history) {
            (Some(a), Some(b)) => Some(if a.0 >= b.0 { a.1 } else { b.1 }),
            (a, b) => a.or(b).map(|x| x.1),
        }
    }
}

/// One `GET /releases/NAME`.
fn fetch(t: &PollTarget) -> Result<View, String> {
    let (status, body) =
        crate::fleet::http_call(t.admin, "GET", &format!("/releases/{}", t.name), "", t.token.as_deref())?;
    match status {
        200 => parse_view(&body),
        404 => Err(format!("the gateway has no release `{}`: {}", t.name, short(&body))),
        401 => Err("the admin API wants a token (set `release.token_env`)".into()),
        other => Err(format!("admin answered {other}: {}", short(&body))),
    }
}

/// Signed seconds from `start` to `now`.
fn offset(start: Instant, now: Instant) -> f64 {
    if now >= start {
        (now - start).as_secs_f64()
    } else {
        -(start - now).as_secs_f64()
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Polls from the run's start until told to stop, then once more (the final state).
fn poll_loop(target: PollTarget, start: Instant, unix_ms_at_start: u64, stop: Arc<AtomicBool>) -> ReleaseTimeline {
    let mut tl = ReleaseTimeline::new(&target);
    let mut next = Instant::now();
    loop {
        let last_round = stop.load(Ordering::Relaxed);
        let t_s = offset(start, Instant::now());
        match fetch(&target) {
            Ok(view) => tl.record(t_s, view, unix_ms_at_start),
            Err(e) => tl.failure(e),
        }
        if last_round {
            return tl;
        }
        // A fixed rate; a slow answer skips the polls it overran rather than bunching them.
        next += target.every;
        let now = Instant::now();
        if next < now {
            next = now;
        }
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now >= next {
                break;
            }
            std::thread::sleep((next - now).min(STOP_CHECK));
        }
    }
}

/// The observer that runs the poll thread for the length of the run.
pub struct ReleasePoller {
    target: PollTarget,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<ReleaseTimeline>>,
    timeline: Option<ReleaseTimeline>,
}

impl ReleasePoller {
    pub fn new(target: PollTarget) -> ReleasePoller {
        ReleasePoller {
            target,
            stop: Arc::new(AtomicBool::new(false)),
            handle: None,
            timeline: None,
        }
    }

    /// What was seen (after the run finished); a note instead when the thread was lost.
    pub fn into_timeline(mut self) -> ReleaseTimeline {
        self.finish();
        self.timeline.take().unwrap_or_else(|| {
            let mut tl = ReleaseTimeline::new(&self.target);
            tl.failure("the release poller never ran or panicked".into());
            tl
        })
    }

    fn finish(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            self.timeline = h.join().ok();
        }
    }
}

impl Observer for ReleasePoller {
    fn on_start(&mut self, ctx: &RunContext) {
        let (now, wall) = (Instant::now(), SystemTime::now());
        // The gateway stamps transitions with its wall clock (same host): map them to offsets.
        let unix_ms_at_start = unix_ms(wall + ctx.start.saturating_duration_since(now));
        let (target, start, stop) = (self.target.clone(), ctx.start, Arc::clone(&self.stop));
        let spawned = std::thread::Builder::new()
            .name("release-poll".into())
            .spawn(move || poll_loop(target, start, unix_ms_at_start, stop));
        match spawned {
            Ok(h) => self.handle = Some(h),
            Err(e) => eprintln!("arena-loadtest: cannot start the release poller: {e}"),
        }
    }

    fn on_finish(&mut self, _ctx: &RunContext) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const VIEW: &str = r#"{"name":"r","state":"progressing","weight":5.0,"weight_text":"5%","step":2,
        "steps":["1%","5%","100%"],"window":{},"last_verdict":null,"generation":3,
        "history":[{"at_ms":1000,"from":"progressing","to":"progressing","weight_bp":100,"reason":"started"},
                   {"at_ms":5000,"from":"progressing","to":"progressing","weight_bp":500,"reason":"step 2"}]}"#;

    #[test]
    fn parses_the_admin_view() {
        let v = parse_view(VIEW).unwrap();
        assert_eq!((v.state, v.weight, v.step), (Phase::Progressing, 5.0, Some(2)));
        assert_eq!(v.steps, ["1%", "5%", "100%"]);
        assert_eq!(v.history.len(), 2);
        assert_eq!(v.history[1].3, 5.0);
        let rolled = parse_view(r#"{"state":"rolled_back","weight":0,"step":null}"#).unwrap();
        assert_eq!((rolled.state, rolled.step), (Phase::RolledBack, None));
        assert!(parse_view(r#"{"state":"exploded","weight":1}"#)
            .unwrap_err()
            .contains("state"));
        assert!(parse_view(r#"{"state":"paused"}"#).unwrap_err().contains("weight"));
        assert!(parse_view("<html>").is_err());
    }

    #[test]
    fn keeps_changes_and_one_sample_a_second_and_merges_history() {
        let target = PollTarget {
            admin: "127.0.0.1:1".parse().unwrap(),
            token: None,
            name: "r".into(),
            every: Duration::from_millis(100),
        };
        let mut tl = ReleaseTimeline::new(&target);
        let v = parse_view(VIEW).unwrap();
        for i in 0..25 {
            tl.record(f64::from(i) * 0.1, v.clone(), 0);
        }
        // Unchanged for 2.4 s: the first sample, then one a second.
        let kept: Vec<f64> = tl.samples.iter().map(|s| s.t_s).collect();
        assert_eq!(kept.len(), 3, "{kept:?}");
        let mut v2 = v.clone();
        v2.weight = 0.0;
        v2.state = Phase::RolledBack;
        v2.history
            .push((7500, Phase::Progressing, Phase::RolledBack, 0.0, "breach".into()));
        tl.record(8.0, v2, 0);
        assert_eq!(tl.samples.last().unwrap().weight, 0.0);
        assert_eq!(tl.transitions.len(), 3, "history merged without duplicates");
        assert_eq!(tl.transitions[2].at_s, 7.5);
        assert_eq!(tl.polls, 26);
        assert_eq!(tl.weight_before(7.5), Some(5.0));
        tl.failure("x".into());
        tl.failure("x".into());
        assert_eq!((tl.failed, tl.errors.len()), (2, 1));
    }
}
