//! Grey releases seen from the load tester: which version answered each request
//! (`x-arena-release`), how each user moved between versions ([`users`]), the release's state
//! and weight polled from the gateway's admin API ([`poll`]), and the rollback they add up to.

pub mod header;
pub mod poll;
pub mod users;

use std::collections::BTreeMap;

use serde::Serialize;

pub use header::Version;
pub use poll::{PollTarget, ReleasePoller, ReleaseTimeline, Sample, SeenTransition};
pub use users::{Move, UserSummary, UserTracker, MAX_USER_IDS};

use crate::engine::Marker;

/// Fraction of `versions` (responses per `x-arena-release` value) that version `wanted`
/// answered (a whole value `NAME=VERSION` or only `VERSION`); NaN when there are none.
pub fn version_share(versions: &BTreeMap<String, u64>, wanted: &str) -> f64 {
    let all: u64 = versions.values().sum();
    if all == 0 {
        return f64::NAN;
    }
    let hits: u64 = versions
        .iter()
        .filter(|(k, _)| header::matches(k, wanted))
        .map(|(_, v)| v)
        .sum();
    hits as f64 / all as f64
}

/// The canary's weight reaching 0 after a fault.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rollback {
    /// When the weight reached 0, seconds since the start of the load.
    pub at_s: f64,
    /// The weight (percent) it dropped from.
    pub from_weight: f64,
    /// The fault it is timed from: the last marker at or before the drop.
    pub fault: String,
    pub fault_at_s: f64,
    /// `at_s - fault_at_s`.
    pub after_s: f64,
    /// `history`: the gateway's own transition time; `poll`: the first poll that saw weight 0
    /// (late by up to one poll interval).
    pub source: &'static str,
    /// The gateway's reason, when the history had the transition.
    pub reason: Option<String>,
}

/// The first drop of the weight to 0 at or after the first marker, timed from the last marker
/// before it; `None` when the weight never dropped to 0 after a fault.
pub fn rollback(tl: &ReleaseTimeline, markers: &[Marker]) -> Option<Rollback> {
    let first_fault = markers.iter().map(|m| m.at.as_secs_f64()).fold(f64::INFINITY, f64::min);
    if !first_fault.is_finite() {
        return None;
    }
    let from_history = tl.transitions.iter().enumerate().find_map(|(i, t)| {
        let before = match i {
            0 => tl.weight_before(t.at_s)?,
            _ => tl.transitions[i - 1].weight,
        };
        (t.weight == 0.0 && before > 0.0 && t.at_s >= first_fault)
            .then(|| (t.at_s, before, "history", Some(t.reason.clone())))
    });
    let from_polls = || {
        tl.samples.windows(2).find_map(|w| {
            (w[1].weight == 0.0 && w[0].weight > 0.0 && w[1].t_s >= first_fault).then_some((
                w[1].t_s,
                w[0].weight,
                "poll",
                None,
            ))
        })
    };
    let (at_s, from_weight, source, reason) = from_history.or_else(from_polls)?;
    // Of several markers at the same time (one fault per canary pod) the first names it.
    let fault =
        markers
            .iter()
            .filter(|m| m.at.as_secs_f64() <= at_s)
            .fold(None, |best: Option<&Marker>, m| match best {
                Some(b) if b.at >= m.at => Some(b),
                _ => Some(m),
            })?;
    let fault_at_s = fault.at.as_secs_f64();
    Some(Rollback {
        at_s,
        from_weight,
        fault: fault.label.clone(),
        fault_at_s,
        after_s: at_s - fault_at_s,
        source,
        reason,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::time::Duration;

    use arena_core::release::Phase;

    use super::*;
    use crate::release::poll::{parse_view, View};

    fn view(state: Phase, weight: f64, history: Vec<(u64, Phase, Phase, f64, String)>) -> View {
        let mut v = parse_view(r#"{"state":"progressing","weight":1}"#).unwrap();
        v.state = state;
        v.weight = weight;
        v.history = history;
        v
    }

    fn marker(at_s: f64, label: &str) -> Marker {
        Marker {
            at: Duration::from_secs_f64(at_s),
            label: label.into(),
        }
    }

    #[test]
    fn timed_from_the_gateways_transition_and_the_last_fault_before_it() {
        let (p, rb) = (Phase::Progressing, Phase::RolledBack);
        let h = vec![
            (1_000, p, p, 1.0, "start".into()),
            (11_000, p, p, 25.0, "step 3".into()),
        ];
        let mut tl = ReleaseTimeline::default();
        tl.record(1.0, view(p, 25.0, h.clone()), 0);
        let mut h2 = h;
        h2.push((15_400, p, rb, 0.0, "error rate breach".into()));
        tl.record(15.5, view(rb, 0.0, h2), 0);
        let markers = [
            marker(2.0, "unrelated"),
            marker(15.0, "canary fails"),
            marker(15.0, "canary-2: {}"),
            marker(16.0, "after"),
        ];
        let r = rollback(&tl, &markers).unwrap();
        assert_eq!(
            (r.source, r.fault.as_str(), r.from_weight),
            ("history", "canary fails", 25.0)
        );
        assert!((r.after_s - 0.4).abs() < 1e-9, "{r:?}");
        assert_eq!(r.reason.as_deref(), Some("error rate breach"));
    }

    #[test]
    fn falls_back_to_polls_and_needs_a_fault_and_a_drop() {
        let (p, rb) = (Phase::Progressing, Phase::RolledBack);
        let mut tl = ReleaseTimeline::default();
        tl.record(9.9, view(p, 5.0, Vec::new()), 0);
        tl.record(10.6, view(rb, 0.0, Vec::new()), 0);
        let r = rollback(&tl, &[marker(10.0, "f")]).unwrap();
        assert_eq!(r.source, "poll");
        assert!((r.after_s - 0.6).abs() < 1e-9);
        assert_eq!(rollback(&tl, &[]), None, "no fault: nothing to time from");
        assert_eq!(
            rollback(&tl, &[marker(11.0, "late")]),
            None,
            "the drop came before the fault"
        );
        let mut flat = ReleaseTimeline::default();
        flat.record(1.0, view(p, 0.0, Vec::new()), 0);
        flat.record(2.0, view(p, 0.0, Vec::new()), 0);
        assert_eq!(
            rollback(&flat, &[marker(0.5, "f")]),
            None,
            "weight 0 all along is no rollback"
        );
    }
}
