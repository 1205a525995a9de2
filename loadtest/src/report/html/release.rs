//! The grey-release part of the HTML report: the followed release's final state, rollback and
//! users' moves, its transitions, and charts of the polled weight against the canary's measured
//! share and of users moving between the versions.

use std::fmt::Write as _;

use super::charts::{fmt_count, mid};
use super::row;
use crate::engine::fmt_us;
use crate::report::release::trim;
use crate::report::svg::{esc, Chart, Series, YAxis, PALETTE};
use crate::report::Report;

/// The section, after the summary (nothing without `release:`).
pub(super) fn section(s: &mut String, r: &Report) {
    let Some(rel) = &r.release else { return };
    let _ = write!(s, "<h2>Grey release <code>{}</code></h2><table>", esc(&rel.name));
    row(s, &["final", &rel.final_text()]);
    row(s, &["steps", &rel.steps.join(" → ")]);
    row(
        s,
        &[
            "polls",
            &format!(
                "{} every {}ms, {} failed{}",
                rel.polls,
                rel.poll_ms,
                rel.failed_polls,
                rel.poll_errors
                    .first()
                    .map_or(String::new(), |e| format!(" (e.g. {e})"))
            ),
        ],
    );
    let rollback = match &rel.rollback {
        Some(rb) => format!(
            "weight {}% → 0 at {:.2}s, {} after `{}` ({})",
            trim(rb.from_weight),
            rb.at_s,
            fmt_us((rb.after_s.max(0.0) * 1e6).round() as u64),
            rb.fault,
            if rb.source == "history" {
                "the gateway's transition time"
            } else {
                "first poll at weight 0"
            }
        ),
        None => "none after a fault".into(),
    };
    row(s, &["rollback", &rollback]);
    if let Some(u) = &r.users {
        let m = &u.summary;
        row(
            s,
            &[
                "users",
                &format!(
                    "{} seen ({}): {} moved stable → canary, {} moved canary → stable; at the end {} on canary, {} on stable; {} answers out of send order",
                    m.users_seen,
                    u.header,
                    m.moved_to_canary,
                    m.moved_to_stable,
                    m.on_canary_at_end,
                    m.on_stable_at_end,
                    m.reordered
                ),
            ],
        );
    }
    s.push_str("</table>");
    if !rel.transitions.is_empty() {
        s.push_str("<table><tr><th>at</th><th>transition</th><th>weight</th><th>reason</th></tr>");
        for t in &rel.transitions {
            let _ = write!(
                s,
                r#"<tr><td class="num">{:.2}s</td><td>{} → {}</td><td class="num">{}%</td><td>{}</td></tr>"#,
                t.at_s,
                t.from.as_str(),
                t.to.as_str(),
                trim(t.weight),
                esc(&t.reason)
            );
        }
        s.push_str("</table>");
    }
}

fn fmt_percent(v: f64) -> String {
    format!("{v:.0}%")
}

/// The release's charts: weight vs canary share, and (with users) moves per second.
pub(super) fn charts(r: &Report, x_max: f64) -> Vec<String> {
    let Some(rel) = &r.release else { return Vec::new() };
    // The weight holds between polls: draw it as steps.
    let mut weight = Vec::new();
    for s in &rel.timeline {
        if let Some(&(_, prev)) = weight.last() {
            weight.push((s.t_s, prev));
        }
        weight.push((s.t_s, s.weight));
    }
    let share = rel
        .per_second
        .iter()
        .filter_map(|p| Some((mid(p.t), p.canary_share? * 100.0)))
        .collect();
    let mut out = vec![Chart {
        id: "chart-release",
        title: "Canary weight (polled) and the canary's share of answers (measured)",
        x_max,
        y: YAxis::Linear(fmt_percent),
        series: vec![
            Series {
                name: "weight".into(),
                color: PALETTE[3].into(),
                points: weight,
                dashed: true,
            },
            Series {
                name: "canary share".into(),
                color: PALETTE[1].into(),
                points: share,
                dashed: false,
            },
        ],
        markers: &r.markers,
    }
    .render()];
    if r.users.is_some() {
        let line = |name: &str, color: &str, f: fn(&crate::engine::Window) -> u64| Series {
            name: name.into(),
            color: color.into(),
            points: r.windows.iter().map(|w| (mid(w.t), f(w) as f64)).collect(),
            dashed: false,
        };
        out.push(
            Chart {
                id: "chart-users",
                title: "Users moving between versions per second",
                x_max,
                y: YAxis::Linear(fmt_count),
                series: vec![
                    line("stable → canary", PALETTE[2], |w| w.moves_to_canary),
                    line("canary → stable", PALETTE[1], |w| w.moves_to_stable),
                ],
                markers: &r.markers,
            }
            .render(),
        );
    }
    out
}
