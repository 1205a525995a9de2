//! A release's rollout state and its transitions: automatic ones from verdicts, an operator's
//! from the admin API, and what survives a reload or a restart ([`reconcile`]).
//!
//! Phases:
//! - `progressing`: verdicts act. A breach rolls back (weight 0, `rolled_back`) or pauses, by
//!   `on_failure`, at once. The step timer starts at the step's first healthy verdict; once
//!   `step_interval` has passed since then and the latest verdict is healthy, the release
//!   moves to the next step, and after the last step (100 %) to `promoted`. Insufficient
//!   verdicts neither advance nor reset the timer (a breach would have acted already), so a
//!   quiet release waits at its step for evidence rather than stepping up blind. A release
//!   whose last step is below 100 %, or that has no steps, holds its weight under analysis
//!   until an operator acts.
//! - `paused`: the weight holds and verdicts are only recorded; an operator decides.
//! - `promoted` (100 %) and `rolled_back` (0 %): final until an operator `set`s a weight or
//!   the release changes (a new fingerprint starts it over).
//!
//! Every transition bumps `generation` (what replicas compare to take the newest state) and is
//! kept in a capped `history`; recording a verdict is not a transition.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::verdict::Verdict;
use crate::config::release::{percent_text, FULL_BP};
use crate::config::ReleaseSpec;

/// Transitions kept in a state's history (the oldest are dropped).
pub const HISTORY: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Progressing,
    Paused,
    Promoted,
    RolledBack,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Progressing => "progressing",
            Phase::Paused => "paused",
            Phase::Promoted => "promoted",
            Phase::RolledBack => "rolled_back",
        }
    }
}

/// The latest verdict and when it was given.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VerdictRecord {
    pub at_ms: u64,
    #[serde(flatten)]
    pub verdict: Verdict,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// Unix time, milliseconds.
    pub at_ms: u64,
    pub from: Phase,
    pub to: Phase,
    /// The weight after the transition.
    pub weight_bp: u16,
    pub reason: String,
}

/// What an operator can ask of a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operator {
    /// Hold this weight (bp): the operator takes over (`paused`).
    SetWeight(u16),
    Pause,
    /// Back to `progressing` from the first step at or above the weight.
    Resume,
    /// 100 % now.
    Promote,
    /// 0 % now, with the operator's reason.
    Rollback(String),
}

/// A release's rollout state: what is persisted (state file, Redis) and shown by the admin API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseState {
    pub phase: Phase,
    pub weight_bp: u16,
    /// Index into the spec's steps (`None`: no steps, or a weight between them).
    pub step: Option<usize>,
    /// Unix ms of the last transition.
    pub step_since_ms: u64,
    /// Unix ms of the first healthy verdict since the last transition: the step timer.
    #[serde(default)]
    pub healthy_since_ms: Option<u64>,
    #[serde(default)]
    pub last_verdict: Option<VerdictRecord>,
    #[serde(default)]
    pub history: Vec<Transition>,
    /// The spec's fingerprint this state belongs to (hex: JSON numbers above 2^53 do not
    /// survive JavaScript or Lua).
    #[serde(serialize_with = "hex_ser", deserialize_with = "hex_de")]
    pub fingerprint: u64,
    pub generation: u64,
}

fn hex_ser<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{v:016x}"))
}

fn hex_de<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let s = String::deserialize(d)?;
    u64::from_str_radix(&s, 16).map_err(|_| serde::de::Error::custom(format!("bad fingerprint `{s}`")))
}

/// Now as unix milliseconds (0 if the clock is before 1970).
pub fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn step_label(spec: &ReleaseSpec, k: usize) -> String {
    format!("step {}/{}", k + 1, spec.steps.len())
}

impl ReleaseState {
    /// The state of a release starting over: at its first step (or `weight`), progressing.
    pub fn fresh(spec: &ReleaseSpec, now_ms: u64, generation: u64, why: &str) -> ReleaseState {
        let weight_bp = spec.start_weight();
        let step = (!spec.steps.is_empty()).then_some(0);
        let at = match step {
            Some(k) => format!(" ({})", step_label(spec, k)),
            None => String::new(),
        };
        ReleaseState {
            phase: Phase::Progressing,
            weight_bp,
            step,
            step_since_ms: now_ms,
            healthy_since_ms: None,
            last_verdict: None,
            history: vec![Transition {
                at_ms: now_ms,
                from: Phase::Progressing,
                to: Phase::Progressing,
                weight_bp,
                reason: format!("{why}: at {}{at}", percent_text(weight_bp)),
            }],
            fingerprint: spec.fingerprint,
            generation,
        }
    }

    /// Whether this state can belong to `spec` (a persisted one may be stale or edited).
    pub fn is_consistent(&self, spec: &ReleaseSpec) -> bool {
        let step_ok = match self.step {
            None => true,
            Some(k) => k < spec.steps.len(),
        };
        let weight_ok = match (self.phase, self.step) {
            _ if self.weight_bp > FULL_BP => false,
            (Phase::Progressing, Some(k)) => spec.steps.get(k) == Some(&self.weight_bp),
            (Phase::Promoted, _) => self.weight_bp == FULL_BP,
            (Phase::RolledBack, _) => self.weight_bp == 0,
            _ => true,
        };
        self.fingerprint == spec.fingerprint && step_ok && weight_ok
    }

    fn transition(
        &mut self,
        to: Phase,
        weight_bp: u16,
        step: Option<usize>,
        reason: String,
        now_ms: u64,
    ) -> Transition {
        let t = Transition {
            at_ms: now_ms,
            from: self.phase,
            to,
            weight_bp,
            reason,
        };
        self.phase = to;
        self.weight_bp = weight_bp;
        self.step = step;
        self.step_since_ms = now_ms;
        self.healthy_since_ms = None;
        self.generation = self.generation.saturating_add(1);
        if self.history.len() >= HISTORY {
            let excess = self.history.len() + 1 - HISTORY;
            self.history.drain(..excess);
        }
        self.history.push(t.clone());
        t
    }

    /// Records `verdict` and makes the automatic transition it calls for, if any.
    pub fn on_verdict(&mut self, spec: &ReleaseSpec, verdict: Verdict, now_ms: u64) -> Option<Transition> {
        self.last_verdict = Some(VerdictRecord { at_ms: now_ms, verdict });
        if self.phase != Phase::Progressing {
            return None;
        }
        match verdict {
            Verdict::Insufficient { .. } => None,
            Verdict::Breach { .. } => Some(match spec.on_failure {
                crate::config::OnFailure::Rollback => self.transition(
                    Phase::RolledBack,
                    0,
                    None,
                    format!("rolled back at {}: {}", percent_text(self.weight_bp), verdict.summary()),
                    now_ms,
                ),
                crate::config::OnFailure::Pause => self.transition(
                    Phase::Paused,
                    self.weight_bp,
                    self.step,
                    format!("paused at {}: {}", percent_text(self.weight_bp), verdict.summary()),
                    now_ms,
                ),
            }),
            Verdict::Healthy { .. } => {
                let since = *self.healthy_since_ms.get_or_insert(now_ms);
                let interval_ms = u64::try_from(spec.step_interval.as_millis()).unwrap_or(u64::MAX);
                if now_ms.saturating_sub(since) < interval_ms {
                    return None;
                }
                let held = humantime::format_duration(spec.step_interval);
                let k = self.step?;
                match spec.steps.get(k + 1) {
                    Some(&next) => Some(self.transition(
                        Phase::Progressing,
                        next,
                        Some(k + 1),
                        format!(
                            "{} at {}: healthy for {held} at {} ({})",
                            step_label(spec, k + 1),
                            percent_text(next),
                            percent_text(self.weight_bp),
                            verdict.summary()
                        ),
                        now_ms,
                    )),
                    None if self.weight_bp == FULL_BP => Some(self.transition(
                        Phase::Promoted,
                        FULL_BP,
                        Some(k),
                        format!("promoted: healthy for {held} at 100% ({})", verdict.summary()),
                        now_ms,
                    )),
                    // The last step is below 100 %: hold there under analysis.
                    None => None,
                }
            }
        }
    }

    /// `set`: hold `weight_bp`; the operator took over.
    pub fn set_weight(&mut self, spec: &ReleaseSpec, weight_bp: u16, now_ms: u64) -> Result<Transition, String> {
        if weight_bp > FULL_BP {
            return Err(format!(
                "weight {}.{:02}% is above 100%",
                weight_bp / 100,
                weight_bp % 100
            ));
        }
        let step = spec.steps.iter().position(|s| *s == weight_bp);
        Ok(self.transition(
            Phase::Paused,
            weight_bp,
            step,
            format!("operator set the weight to {}", percent_text(weight_bp)),
            now_ms,
        ))
    }

    pub fn pause(&mut self, now_ms: u64) -> Result<Transition, String> {
        match self.phase {
            Phase::Progressing => Ok(self.transition(
                Phase::Paused,
                self.weight_bp,
                self.step,
                format!("operator paused at {}", percent_text(self.weight_bp)),
                now_ms,
            )),
            Phase::Paused => Err(format!("already paused at {}", percent_text(self.weight_bp))),
            Phase::Promoted => Err("promoted: nothing to pause; `set` a weight to take over".into()),
            Phase::RolledBack => Err("rolled back: nothing to pause; `set` a weight to take over".into()),
        }
    }

    /// `resume`: progressing again from the first step at or above the weight (the weight
    /// moves up to it); above every step, or without steps, it holds its weight under analysis.
    pub fn resume(&mut self, spec: &ReleaseSpec, now_ms: u64) -> Result<Transition, String> {
        match self.phase {
            Phase::Paused => {}
            Phase::Progressing => return Err(format!("already progressing at {}", percent_text(self.weight_bp))),
            Phase::Promoted => {
                return Err(
                    "promoted: the canary has all traffic; change the release to start again, or `set` a weight".into(),
                )
            }
            Phase::RolledBack => {
                return Err("rolled back: change the release (canary version) to start again, or `set` a weight".into())
            }
        }
        let (weight, step, at) = match spec.steps.iter().position(|s| *s >= self.weight_bp) {
            Some(k) => (spec.steps[k], Some(k), format!(" ({})", step_label(spec, k))),
            None => (self.weight_bp, None, String::new()),
        };
        Ok(self.transition(
            Phase::Progressing,
            weight,
            step,
            format!("operator resumed at {}{at}", percent_text(weight)),
            now_ms,
        ))
    }

    pub fn promote(&mut self, spec: &ReleaseSpec, now_ms: u64) -> Result<Transition, String> {
        if self.phase == Phase::Promoted {
            return Err("already promoted".into());
        }
        let step = spec.steps.iter().position(|s| *s == FULL_BP);
        Ok(self.transition(
            Phase::Promoted,
            FULL_BP,
            step,
            "operator promoted to 100%".into(),
            now_ms,
        ))
    }

    pub fn rollback(&mut self, reason: &str, now_ms: u64) -> Result<Transition, String> {
        if self.phase == Phase::RolledBack {
            return Err("already rolled back".into());
        }
        let why = match reason.trim() {
            "" => format!("operator rolled back from {}", percent_text(self.weight_bp)),
            r => format!("operator rolled back from {}: {r}", percent_text(self.weight_bp)),
        };
        Ok(self.transition(Phase::RolledBack, 0, None, why, now_ms))
    }

    /// An operator's request.
    pub fn apply(&mut self, spec: &ReleaseSpec, op: &Operator, now_ms: u64) -> Result<Transition, String> {
        match op {
            Operator::SetWeight(bp) => self.set_weight(spec, *bp, now_ms),
            Operator::Pause => self.pause(now_ms),
            Operator::Resume => self.resume(spec, now_ms),
            Operator::Promote => self.promote(spec, now_ms),
            Operator::Rollback(reason) => self.rollback(reason, now_ms),
        }
    }
}

/// The state a release runs with after a start or a reload: the persisted one when it belongs
/// to this very rollout (same fingerprint, consistent), else a fresh start — its generation
/// above the persisted one, so replicas take it as the newest. Times in the future (another
/// replica's clock) are brought back to now; the history is capped.
pub fn reconcile(spec: &ReleaseSpec, persisted: Option<ReleaseState>, now_ms: u64) -> ReleaseState {
    let Some(mut p) = persisted else {
        return ReleaseState::fresh(spec, now_ms, 1, "started");
    };
    let next = p.generation.saturating_add(1);
    if p.fingerprint != spec.fingerprint {
        return ReleaseState::fresh(spec, now_ms, next, "release changed, starting over");
    }
    if !p.is_consistent(spec) {
        tracing::warn!(
            release = %spec.name,
            phase = p.phase.as_str(),
            weight_bp = p.weight_bp,
            step = ?p.step,
            "persisted release state does not fit the release; starting over"
        );
        return ReleaseState::fresh(spec, now_ms, next, "persisted state did not fit, starting over");
    }
    p.step_since_ms = p.step_since_ms.min(now_ms);
    p.healthy_since_ms = p.healthy_since_ms.map(|t| t.min(now_ms));
    if p.history.len() > HISTORY {
        let excess = p.history.len() - HISTORY;
        p.history.drain(..excess);
    }
    p
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "machine_props.rs"]
mod props;
