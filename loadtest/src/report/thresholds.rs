//! Threshold evaluation against a finished run.

use std::collections::BTreeMap;

use serde::Serialize;

use hdrhistogram::Histogram;

use crate::engine::{fmt_us, AbuseCounts, AbuseResult, Marker, Phases, RunResult};
use crate::release::{self, ReleaseTimeline, UserSummary};
use crate::scenario::threshold::{state_code, state_of_code};
use crate::scenario::{AbuseCount, LatencyStat, Metric, Phase, PhaseStat, Threshold, UserMove};

/// Outcome of one threshold.
#[derive(Debug, Clone, Serialize)]
pub struct ThresholdResult {
    /// As written in the scenario.
    pub text: String,
    /// Measured value in the threshold's normalised unit (µs, fraction, requests/s).
    pub actual: f64,
    pub limit: f64,
    /// The measured value for humans (`3.1ms`, `0.02%`, `998.1`).
    pub actual_text: String,
    pub pass: bool,
}

/// Measured value of a metric in normalised units; NaN (a failed threshold) when a phase it
/// reads had no requests, the run had no attack, or the release was never seen (no answer
/// with `x-arena-release`, no successful poll, no rollback after a fault).
pub fn measure(metric: &Metric, run: &RunResult) -> f64 {
    match metric {
        Metric::Latency(stat) => latency(&run.latency, *stat).unwrap_or(0.0),
        Metric::Errors => run.error_rate(),
        Metric::Rps => run.rps(),
        Metric::FaasShare => run.backend_share("faas="),
        Metric::Share(prefix) => run.backend_share(prefix),
        Metric::Phase(..) | Metric::P99Ratio | Metric::Abuse(_) => {
            attack_metric(metric, run.phases.as_ref(), run.abuse.as_ref())
        }
        Metric::ShareVersion(_)
        | Metric::UsersMoved(_)
        | Metric::RollbackAfter
        | Metric::FinalWeight
        | Metric::FinalState => release_metric(
            metric,
            Seen {
                versions: &run.versions,
                users: run.users.as_ref(),
                release: run.release.as_ref(),
                markers: &run.markers,
            },
        ),
    }
}

/// What a run saw of a grey release.
struct Seen<'a> {
    versions: &'a BTreeMap<String, u64>,
    users: Option<&'a UserSummary>,
    release: Option<&'a ReleaseTimeline>,
    markers: &'a [Marker],
}

/// The metrics of a grey release: answers per version, users' moves, the polled timeline.
fn release_metric(metric: &Metric, seen: Seen<'_>) -> f64 {
    let last = seen.release.and_then(|tl| tl.last);
    match metric {
        Metric::ShareVersion(v) => release::version_share(seen.versions, v),
        Metric::UsersMoved(way) => seen.users.map_or(f64::NAN, |u| match way {
            UserMove::ToStable => u.moved_to_stable as f64,
            UserMove::ToCanary => u.moved_to_canary as f64,
        }),
        Metric::RollbackAfter => seen
            .release
            .and_then(|tl| release::rollback(tl, seen.markers))
            .map_or(f64::NAN, |r| r.after_s * 1e6),
        Metric::FinalWeight => last.map_or(f64::NAN, |s| s.weight / 100.0),
        Metric::FinalState => last.map_or(f64::NAN, |s| state_code(s.state)),
        // The other metrics are `measure`'s own.
        _ => f64::NAN,
    }
}

/// The metrics of an `abuse:` run, from its phases and its attacks' counts.
fn attack_metric(metric: &Metric, phases: Option<&Phases>, abuse: Option<&AbuseResult>) -> f64 {
    match metric {
        Metric::Phase(phase, stat) => {
            let Some(p) = phases else { return f64::NAN };
            let p = match phase {
                Phase::Baseline => &p.baseline,
                Phase::Attack => &p.attack,
            };
            match stat {
                _ if p.counts.requests == 0 => f64::NAN,
                PhaseStat::Latency(l) => latency(&p.latency, *l).unwrap_or(f64::NAN),
                PhaseStat::Errors => p.error_rate(),
            }
        }
        Metric::P99Ratio => phases.and_then(Phases::p99_ratio).unwrap_or(f64::NAN),
        Metric::Abuse(count) => {
            let Some(a) = abuse else { return f64::NAN };
            a.attacks.iter().map(|a| abuse_count(&a.counts, *count)).sum::<u64>() as f64
        }
        // The whole run's metrics are `measure`'s own.
        _ => f64::NAN,
    }
}

fn latency(h: &Histogram<u64>, stat: LatencyStat) -> Option<f64> {
    if h.is_empty() {
        return None;
    }
    Some(match stat {
        LatencyStat::Quantile(q) => h.value_at_quantile(q) as f64,
        LatencyStat::Max => h.max() as f64,
        LatencyStat::Mean => h.mean(),
    })
}

fn abuse_count(c: &AbuseCounts, count: AbuseCount) -> u64 {
    match count {
        AbuseCount::Opened => c.opened,
        AbuseCount::Closed => c.closed,
        AbuseCount::Refused => c.refused_all(),
        AbuseCount::Answered(status) => c.answered.get(&status).copied().unwrap_or(0),
        AbuseCount::Held => c.peak_held,
    }
}

/// Formats a normalised value of `metric` for humans.
pub fn human(metric: &Metric, v: f64) -> String {
    match metric {
        _ if v.is_nan() => "n/a".into(),
        Metric::Latency(_) | Metric::Phase(_, PhaseStat::Latency(_)) | Metric::RollbackAfter => {
            fmt_us(v.round() as u64)
        }
        Metric::Errors
        | Metric::FaasShare
        | Metric::Share(_)
        | Metric::Phase(_, PhaseStat::Errors)
        | Metric::ShareVersion(_)
        | Metric::FinalWeight => format!("{:.3}%", v * 100.0),
        Metric::Rps => format!("{v:.1}"),
        Metric::P99Ratio => format!("×{v:.2}"),
        Metric::Abuse(_) | Metric::UsersMoved(_) => format!("{v:.0}"),
        Metric::FinalState => state_of_code(v).map_or_else(|| format!("{v}"), |p| p.as_str().to_string()),
    }
}

/// Evaluates every threshold.
pub fn evaluate(thresholds: &[Threshold], run: &RunResult) -> Vec<ThresholdResult> {
    thresholds
        .iter()
        .map(|t| {
            let actual = measure(&t.metric, run);
            ThresholdResult {
                text: t.text.clone(),
                actual,
                limit: t.value,
                actual_text: human(&t.metric, actual),
                pass: t.op.holds(actual, t.value),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::time::Duration;

    use super::*;
    use crate::engine::stats::histogram;
    use crate::engine::{AttackResult, Counts, PhaseStats};
    use crate::scenario::{threshold, AbuseKind, AbuseSpec};

    fn phase(latencies_us: &[u64], errors: u64) -> PhaseStats {
        let mut latency = histogram().unwrap();
        for &v in latencies_us {
            latency.record(v).unwrap();
        }
        PhaseStats {
            seconds: 1,
            counts: Counts {
                requests: latencies_us.len() as u64,
                errors,
                ..Counts::default()
            },
            latency,
        }
    }

    fn attack(counts: AbuseCounts) -> AttackResult {
        AttackResult {
            spec: AbuseSpec {
                kind: AbuseKind::IdleKeepalive,
                connections: 10,
                byte_every: None,
                sources: Vec::new(),
                from: None,
                start: Duration::from_secs(1),
                stop: None,
                path: "/".into(),
                label: "idle".into(),
            },
            held_target: 10,
            start_s: 1.0,
            stop_s: 2.0,
            counts,
        }
    }

    fn value(text: &str, phases: Option<&Phases>, abuse: Option<&AbuseResult>) -> f64 {
        attack_metric(&threshold::parse(text).unwrap().metric, phases, abuse)
    }

    #[test]
    fn phase_metrics_read_their_phase() {
        let phases = Phases {
            baseline: phase(&[1000; 100], 0),
            attack: phase(&[4000; 100], 5),
        };
        let p = Some(&phases);
        let near = |v: f64, want: f64| (v - want).abs() / want < 0.01;
        assert!(near(value("baseline_p99 < 1s", p, None), 1000.0));
        assert!(near(value("attack_p99 < 1s", p, None), 4000.0));
        assert!(near(value("attack_max < 1s", p, None), 4000.0));
        assert_eq!(value("attack_errors < 1%", p, None), 0.05);
        assert_eq!(value("baseline_errors < 1%", p, None), 0.0);
        assert!(near(value("p99_ratio < 2", p, None), 4.0));
    }

    #[test]
    fn a_missing_phase_or_attack_measures_nan_and_fails_either_way() {
        let phases = Phases {
            baseline: phase(&[], 0),
            attack: phase(&[2000], 0),
        };
        assert!(value("baseline_p99 < 1s", Some(&phases), None).is_nan());
        assert!(value("baseline_errors <= 0%", Some(&phases), None).is_nan());
        assert!(value("p99_ratio < 2", Some(&phases), None).is_nan());
        assert!(value("attack_p99 < 1s", None, None).is_nan());
        assert!(value("abuse_408 >= 0", None, None).is_nan());
        for text in ["p99_ratio < 2", "p99_ratio > 2"] {
            let t = threshold::parse(text).unwrap();
            assert!(!t.op.holds(f64::NAN, t.value), "{text}");
        }
        assert_eq!(human(&Metric::P99Ratio, f64::NAN), "n/a");
        assert_eq!(human(&Metric::P99Ratio, 1.5), "×1.50");
    }

    fn release_value(text: &str, seen: Seen<'_>) -> f64 {
        release_metric(&threshold::parse(text).unwrap().metric, seen)
    }

    fn holds(text: &str, actual: f64) -> bool {
        let t = threshold::parse(text).unwrap();
        t.op.holds(actual, t.value)
    }

    #[test]
    fn release_metrics_read_versions_users_and_the_timeline() {
        use crate::release::poll::parse_view;

        let versions: BTreeMap<String, u64> = [("r=canary".to_string(), 30), ("r=stable".to_string(), 70)].into();
        let users = UserSummary {
            users_seen: 10,
            moved_to_canary: 4,
            moved_to_stable: 1,
            ..UserSummary::default()
        };
        let mut tl = ReleaseTimeline::default();
        let up = r#"{"state":"progressing","weight":25,"step":3,"history":[{"at_ms":2000,"from":"progressing","to":"progressing","weight_bp":2500,"reason":"step 3"}]}"#;
        let down = r#"{"state":"rolled_back","weight":0,"history":[{"at_ms":2000,"from":"progressing","to":"progressing","weight_bp":2500,"reason":"step 3"},{"at_ms":5300,"from":"progressing","to":"rolled_back","weight_bp":0,"reason":"breach"}]}"#;
        tl.record(4.0, parse_view(up).unwrap(), 0);
        tl.record(5.4, parse_view(down).unwrap(), 0);
        let markers = [Marker {
            at: Duration::from_secs(5),
            label: "canary fails".into(),
        }];
        let seen = || Seen {
            versions: &versions,
            users: Some(&users),
            release: Some(&tl),
            markers: &markers,
        };
        assert_eq!(release_value("share_version(canary) > 0", seen()), 0.3);
        assert_eq!(release_value("share_version(r=stable) > 0", seen()), 0.7);
        assert_eq!(release_value("users_moved_back == 0", seen()), 1.0);
        assert!(!holds("users_moved_back == 0", 1.0), "a user moved back fails it");
        assert!(holds("users_moved_back == 0", 0.0));
        assert_eq!(release_value("users_moved_forward > 0", seen()), 4.0);
        let after = release_value("rollback_after < 2s", seen());
        assert!((after - 300_000.0).abs() < 1.0, "{after}");
        assert!(holds("rollback_after < 2s", after));
        assert!(!holds("rollback_after < 200ms", after));
        assert_eq!(release_value("final_weight <= 0%", seen()), 0.0);
        let state = release_value("final_state == rolled_back", seen());
        assert!(holds("final_state == rolled_back", state));
        assert!(!holds("final_state == promoted", state));
        assert_eq!(human(&Metric::FinalState, state), "rolled_back");
        assert_eq!(human(&Metric::RollbackAfter, after), "300.0ms");

        // Nothing seen: every release metric is NaN and fails whatever its comparison.
        let empty = BTreeMap::new();
        let none = || Seen {
            versions: &empty,
            users: None,
            release: None,
            markers: &[],
        };
        for text in [
            "share_version(canary) >= 0%",
            "users_moved_back == 0",
            "rollback_after < 60s",
            "final_weight >= 0%",
            "final_state == promoted",
        ] {
            let v = release_value(text, none());
            assert!(v.is_nan() && !holds(text, v), "{text}: {v}");
        }
        // A release polled but never rolled back after the fault: no rollback_after.
        let mut steady = ReleaseTimeline::default();
        steady.record(1.0, parse_view(up).unwrap(), 0);
        steady.record(9.0, parse_view(up).unwrap(), 0);
        let v = release_value(
            "rollback_after < 60s",
            Seen {
                release: Some(&steady),
                ..seen()
            },
        );
        assert!(v.is_nan());
    }

    #[test]
    fn abuse_counts_sum_over_the_attacks() {
        let a = AbuseCounts {
            opened: 10,
            refused: 2,
            connect_failed: 3,
            closed: 4,
            stopped: 4,
            peak_held: 6,
            answered: [(408, 4)].into_iter().collect(),
            ..AbuseCounts::default()
        };
        let b = AbuseCounts {
            opened: 5,
            closed: 5,
            peak_held: 5,
            answered: [(200, 5)].into_iter().collect(),
            ..AbuseCounts::default()
        };
        let abuse = AbuseResult {
            attacks: vec![attack(a), attack(b)],
            ..AbuseResult::default()
        };
        let r = Some(&abuse);
        assert_eq!(value("abuse_opened > 0", None, r), 15.0);
        assert_eq!(value("abuse_refused > 0", None, r), 5.0);
        assert_eq!(value("abuse_closed > 0", None, r), 9.0);
        assert_eq!(value("abuse_408 > 0", None, r), 4.0);
        assert_eq!(value("abuse_200 > 0", None, r), 5.0);
        assert_eq!(value("abuse_431 > 0", None, r), 0.0);
        assert_eq!(value("abuse_held > 0", None, r), 11.0);
    }
}
