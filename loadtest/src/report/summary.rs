//! The terminal summary of a [`Report`]: a few aligned lines per aspect of the run.

use std::fmt::Write as _;

use super::abuse::{attack_lines, phase_line};
use super::release::{share_buckets, trim};
use super::Report;
use crate::engine::fmt_us;
use crate::scenario::{HttpVersion, Mode};

/// Renders the whole summary, one block after the other.
pub(super) fn render(r: &Report) -> String {
    let mut s = String::new();
    load(&mut s, r);
    outcome(&mut s, r);
    attack(&mut s, r);
    breakdown(&mut s, r);
    release(&mut s, r);
    notes(&mut s, r);
    verdict(&mut s, r);
    s
}

/// What ran against what, and how much of it.
fn load(s: &mut String, r: &Report) {
    let version = match r.http.version {
        HttpVersion::Http1 => "HTTP/1.1",
        HttpVersion::Http2 => "h2c",
    };
    let mode = match r.mode {
        Mode::Open => "open loop",
        Mode::Closed => "closed loop",
    };
    let _ = writeln!(
        s,
        "arena-loadtest: {} ({mode}) against {}  [{version}, {} connections, {} threads]",
        r.name, r.target, r.http.connections, r.threads
    );
    let _ = write!(
        s,
        "  requests   {} in {:.1}s (+{:.1}s drain)   achieved {:.1} rps",
        r.totals.requests,
        r.duration_s,
        (r.elapsed_s - r.duration_s).max(0.0),
        r.achieved_rps
    );
    if r.mode == Mode::Open {
        let _ = write!(
            s,
            "   intended {:.1} rps ({} scheduled)",
            r.intended_rps, r.intended_total
        );
    }
    s.push('\n');
}

/// Errors and latency.
fn outcome(s: &mut String, r: &Report) {
    let t = &r.totals;
    let _ = writeln!(
        s,
        "  errors     {} ({:.3}%)   timeouts {}  transport {}  status {}  dropped {}",
        t.errors,
        r.error_rate * 100.0,
        t.timeouts,
        t.transport_errors,
        t.status_errors,
        t.dropped
    );
    let l = &r.latency_us;
    let _ = writeln!(
        s,
        "  latency    p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  mean {}{}",
        fmt_us(l.p50),
        fmt_us(l.p90),
        fmt_us(l.p99),
        fmt_us(l.p999),
        fmt_us(l.max),
        fmt_us(l.mean.round() as u64),
        if r.mode == Mode::Open {
            "  (from intended send time)"
        } else {
            "  (closed loop: from actual send)"
        }
    );
}

/// The measured traffic without and with the attack, then each attack's connections.
fn attack(s: &mut String, r: &Report) {
    let Some(a) = &r.abuse else { return };
    let _ = writeln!(s, "  baseline   {}", phase_line(&a.baseline));
    let _ = writeln!(s, "  attack     {}", phase_line(&a.attack));
    let _ = writeln!(
        s,
        "  p99        without the attack {}  with it {}  ({})",
        fmt_us(a.baseline.latency_us.p99),
        fmt_us(a.attack.latency_us.p99),
        a.ratio_text()
    );
    for at in &a.attacks {
        let (what, ended) = attack_lines(at);
        let _ = writeln!(s, "  abuse      {what}\n               {ended}");
        for e in &at.counts.samples {
            let _ = writeln!(s, "               e.g. {e}");
        }
    }
    for n in &a.notes {
        let _ = writeln!(s, "  note       {n}");
    }
}

/// Responses by status, backend, route and attempts.
fn breakdown(s: &mut String, r: &Report) {
    let statuses: Vec<String> = r.statuses.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    let _ = writeln!(
        s,
        "  statuses   {}",
        if statuses.is_empty() {
            "none".into()
        } else {
            statuses.join("  ")
        }
    );
    if !r.backends.is_empty() {
        let list: Vec<String> = r
            .backends
            .iter()
            .map(|b| format!("{} {:.1}%", b.backend, b.share * 100.0))
            .collect();
        let _ = writeln!(s, "  backends   {}", list.join("  "));
    }
    for (label, map) in [("routes  ", &r.routes), ("attempts", &r.attempts)] {
        if !map.is_empty() {
            let list: Vec<String> = map.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            let _ = writeln!(s, "  {label}   {}", list.join("  "));
        }
    }
    if let Some(t) = &r.traces {
        let _ = writeln!(
            s,
            "  traces     {} client span{} exported, {} dropped (collector slow, down or queue full)",
            t.exported,
            if t.exported == 1 { "" } else { "s" },
            t.dropped
        );
    }
}

/// Transitions shown in the weight line (the latest ones).
const WEIGHT_LINE_MAX: usize = 12;
/// Stretches of the run in the canary share line.
const SHARE_BUCKETS: usize = 10;

/// Versions that answered, the followed release's weight and rollback, and users' moves.
fn release(s: &mut String, r: &Report) {
    if !r.versions.is_empty() {
        let list: Vec<String> = r
            .versions
            .iter()
            .map(|v| format!("{} {:.1}%", v.version, v.share * 100.0))
            .collect();
        let _ = writeln!(s, "  versions   {}   (x-arena-release)", list.join("  "));
    }
    if let Some(rel) = &r.release {
        let _ = writeln!(
            s,
            "  release    {}: {}; {} polls every {}ms, {} failed",
            rel.name,
            rel.final_text(),
            rel.polls,
            rel.poll_ms,
            rel.failed_polls
        );
        for e in &rel.poll_errors {
            let _ = writeln!(s, "               e.g. {e}");
        }
        let skip = rel.transitions.len().saturating_sub(WEIGHT_LINE_MAX);
        let steps: Vec<String> = rel.transitions[skip..]
            .iter()
            .map(|t| {
                let what = if t.from == t.to {
                    format!("{}%", trim(t.weight))
                } else {
                    format!("{} {}%", t.to.as_str(), trim(t.weight))
                };
                format!("{:.1}s {what}", t.at_s)
            })
            .collect();
        if !steps.is_empty() {
            let _ = writeln!(s, "  weight     {}", steps.join(" → "));
        }
        let shares: Vec<String> = share_buckets(&rel.per_second, SHARE_BUCKETS)
            .iter()
            .map(|(from, to, share)| match share {
                Some(v) => format!("{from}-{to}s {:.1}%", v * 100.0),
                None => format!("{from}-{to}s -"),
            })
            .collect();
        if !shares.is_empty() {
            let _ = writeln!(s, "  canary     {}", shares.join(" | "));
        }
        match &rel.rollback {
            Some(rb) => {
                let _ = writeln!(
                    s,
                    "  rollback   weight {}% → 0 at {:.2}s: {} after `{}` ({})",
                    trim(rb.from_weight),
                    rb.at_s,
                    fmt_us((rb.after_s.max(0.0) * 1e6).round() as u64),
                    rb.fault,
                    if rb.source == "history" {
                        "the gateway's transition time"
                    } else {
                        "first poll at weight 0"
                    }
                );
            }
            None if !r.markers.is_empty() => {
                let _ = writeln!(s, "  rollback   none: the weight did not drop to 0 after a fault");
            }
            None => {}
        }
    }
    if let Some(u) = &r.users {
        let m = &u.summary;
        let _ = writeln!(
            s,
            "  users      {} seen ({}): {} moved stable → canary, {} moved canary → stable; at the end {} on canary, {} on stable{}",
            m.users_seen,
            u.header,
            m.moved_to_canary,
            m.moved_to_stable,
            m.on_canary_at_end,
            m.on_stable_at_end,
            if m.reordered > 0 {
                format!(
                    " ({} answer{} out of send order, not counted as moves)",
                    m.reordered,
                    if m.reordered == 1 { "" } else { "s" }
                )
            } else {
                String::new()
            }
        );
    }
}

/// Error samples and fault markers, when there are any.
fn notes(s: &mut String, r: &Report) {
    if !r.error_samples.is_empty() {
        let _ = writeln!(s, "  error samples:");
        for e in &r.error_samples {
            let _ = writeln!(s, "    - {e}");
        }
    }
    if !r.markers.is_empty() {
        let list: Vec<String> = r
            .markers
            .iter()
            .map(|m| format!("{:.1}s {}", m.at.as_secs_f64(), m.label))
            .collect();
        let _ = writeln!(s, "  markers    {}", list.join("  |  "));
    }
}

/// Schedule lag, validity and thresholds: whether the numbers hold and pass.
fn verdict(s: &mut String, r: &Report) {
    if r.mode == Mode::Open {
        let _ = writeln!(
            s,
            "  sched lag  p99 {}  max {}  ({:.2}% over 10ms)",
            fmt_us(r.schedule_lag_us.p99),
            fmt_us(r.schedule_lag_us.max),
            r.lag_over_10ms * 100.0
        );
    }
    if r.validity.valid {
        let _ = writeln!(s, "  run        VALID");
    } else {
        let _ = writeln!(s, "  run        INVALID");
        for reason in &r.validity.reasons {
            let _ = writeln!(s, "    - {reason}");
        }
    }
    if !r.thresholds.is_empty() {
        let _ = writeln!(s, "  thresholds");
        for t in &r.thresholds {
            let _ = writeln!(
                s,
                "    {}  {:<24} (actual {})",
                if t.pass { "PASS" } else { "FAIL" },
                t.text,
                t.actual_text
            );
        }
    }
}
