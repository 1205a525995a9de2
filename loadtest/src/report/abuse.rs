//! The attack part of a report: the measured traffic without and with the attack side by
//! side, and what the abusive connections did.

use std::fmt::Write as _;

use serde::Serialize;

use crate::engine::abuse::FdLimit;
use crate::engine::{fmt_us, AbuseWindow, AttackResult, PhaseStats, Quantiles, RunResult};

/// The measured traffic of one phase.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    pub seconds: u64,
    pub requests: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub latency_us: Quantiles,
}

impl PhaseReport {
    fn of(p: &PhaseStats) -> PhaseReport {
        PhaseReport {
            seconds: p.seconds,
            requests: p.counts.requests,
            errors: p.counts.errors,
            error_rate: p.error_rate(),
            latency_us: Quantiles::of(&p.latency),
        }
    }
}

/// Everything about the run's `abuse:` attacks.
#[derive(Debug, Clone, Serialize)]
pub struct AbuseReport {
    /// Seconds without an attack.
    pub baseline: PhaseReport,
    /// Seconds with one.
    pub attack: PhaseReport,
    /// `attack.latency_us.p99 / baseline.latency_us.p99` (null when a phase had no requests).
    pub p99_ratio: Option<f64>,
    pub attacks: Vec<AttackResult>,
    /// Per second: abusive connections held, opened, closed by the target, refused.
    pub windows: Vec<AbuseWindow>,
    pub fd_limit: Option<FdLimit>,
    pub notes: Vec<String>,
}

impl AbuseReport {
    /// `None` for a run without attacks.
    pub fn new(run: &RunResult) -> Option<AbuseReport> {
        let phases = run.phases.as_ref()?;
        let abuse = run.abuse.clone().unwrap_or_default();
        Some(AbuseReport {
            baseline: PhaseReport::of(&phases.baseline),
            attack: PhaseReport::of(&phases.attack),
            p99_ratio: phases.p99_ratio(),
            attacks: abuse.attacks,
            windows: abuse.windows,
            fd_limit: abuse.fd_limit,
            notes: abuse.notes,
        })
    }

    /// The p99 ratio for humans (`×1.35`, `n/a`).
    pub fn ratio_text(&self) -> String {
        self.p99_ratio.map_or_else(|| "n/a".into(), |r| format!("×{r:.2}"))
    }
}

/// One phase in a line: `p50 2.1ms  p99 4.0ms  errors 0 (0.000%) of 9000  [30s]`.
pub(super) fn phase_line(p: &PhaseReport) -> String {
    if p.requests == 0 {
        return format!("no requests  [{}s]", p.seconds);
    }
    format!(
        "p50 {}  p99 {}  max {}  errors {} ({:.3}%) of {}  [{}s]",
        fmt_us(p.latency_us.p50),
        fmt_us(p.latency_us.p99),
        fmt_us(p.latency_us.max),
        p.errors,
        p.error_rate * 100.0,
        p.requests,
        p.seconds
    )
}

/// One attack in two lines: what it was, then how its connections ended.
pub(super) fn attack_lines(a: &AttackResult) -> (String, String) {
    let c = &a.counts;
    let what = format!("{} ({:.1}s–{:.1}s)", a.spec.label, a.start_s, a.stop_s);
    let mut ended = format!("opened {}  closed by the target {}", c.opened, c.closed);
    let answered: Vec<String> = c.answered.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    if !answered.is_empty() {
        let _ = write!(ended, " (answered {})", answered.join(" "));
    }
    let _ = write!(
        ended,
        "  refused {} ({} at connect)  held at the stop {}  peak held {}/{}",
        c.refused_all(),
        c.connect_failed,
        c.stopped,
        c.peak_held,
        a.held_target
    );
    if c.errors > 0 {
        let _ = write!(ended, "  errors {}", c.errors);
    }
    (what, ended)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::AbuseCounts;
    use crate::scenario::{AbuseKind, AbuseSpec};
    use std::time::Duration;

    #[test]
    fn attack_line_names_every_counter() {
        let a = AttackResult {
            spec: AbuseSpec {
                kind: AbuseKind::SlowHeaders,
                connections: 10,
                byte_every: Some(Duration::from_secs(1)),
                sources: Vec::new(),
                from: None,
                start: Duration::from_secs(2),
                stop: None,
                path: "/".into(),
                label: "slow_headers ×10".into(),
            },
            held_target: 10,
            start_s: 2.0,
            stop_s: 5.0,
            counts: AbuseCounts {
                opened: 30,
                connect_failed: 1,
                refused: 2,
                closed: 18,
                stopped: 10,
                answered: [(408, 18)].into_iter().collect(),
                peak_held: 10,
                ..AbuseCounts::default()
            },
        };
        assert!(a.counts.consistent());
        let (what, line) = attack_lines(&a);
        assert_eq!(what, "slow_headers ×10 (2.0s–5.0s)");
        for part in [
            "opened 30",
            "closed by the target 18",
            "408: 18",
            "refused 3 (1 at connect)",
            "peak held 10/10",
        ] {
            assert!(line.contains(part), "{part}: {line}");
        }
    }
}
