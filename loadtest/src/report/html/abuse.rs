//! The attack part of the HTML report: the measured traffic without and with the attack side
//! by side, one row per attack, and a chart of the abusive connections per second.

use std::fmt::Write as _;

use super::charts::fmt_count;
use crate::engine::fmt_us;
use crate::report::abuse::{AbuseReport, PhaseReport};
use crate::report::svg::{esc, Chart, Series, YAxis, PALETTE};
use crate::report::Report;

/// The section, after the summary (nothing without attacks).
pub(super) fn section(s: &mut String, r: &Report) {
    let Some(a) = &r.abuse else { return };
    s.push_str("<h2>Without and with the attack</h2><table><tr><th>measured traffic</th><th>seconds</th><th>requests</th><th>errors</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>");
    phase_row(s, "baseline (no attack)", &a.baseline);
    phase_row(s, "under attack", &a.attack);
    let _ = write!(
        s,
        r#"</table><p>p99 without the attack <b>{}</b>, with it <b>{}</b>: <b>{}</b></p>"#,
        fmt_us(a.baseline.latency_us.p99),
        fmt_us(a.attack.latency_us.p99),
        esc(&a.ratio_text())
    );
    attacks_table(s, a);
    for n in &a.notes {
        let _ = write!(s, r#"<p class="fail">{}</p>"#, esc(n));
    }
}

fn phase_row(s: &mut String, name: &str, p: &PhaseReport) {
    let l = &p.latency_us;
    let _ = write!(
        s,
        r#"<tr><th>{}</th><td class="num">{}</td><td class="num">{}</td><td class="num">{} ({:.3}%)</td>"#,
        esc(name),
        p.seconds,
        p.requests,
        p.errors,
        p.error_rate * 100.0
    );
    for v in [l.p50, l.p90, l.p99, l.p999, l.max] {
        let _ = write!(s, r#"<td class="num">{}</td>"#, fmt_us(v));
    }
    s.push_str("</tr>");
}

fn attacks_table(s: &mut String, a: &AbuseReport) {
    s.push_str("<table><tr><th>attack</th><th>from – to</th><th>opened</th><th>closed by the target</th><th>answered</th><th>refused (at connect)</th><th>held at the stop</th><th>peak held</th><th>errors</th></tr>");
    for at in &a.attacks {
        let c = &at.counts;
        let answered: Vec<String> = c.answered.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let _ = write!(
            s,
            r#"<tr><td>{}</td><td class="num">{:.1}s – {:.1}s</td><td class="num">{}</td><td class="num">{}</td><td>{}</td><td class="num">{} ({})</td><td class="num">{}</td><td class="num">{} / {}</td><td class="num">{}</td></tr>"#,
            esc(&at.spec.label),
            at.start_s,
            at.stop_s,
            c.opened,
            c.closed,
            esc(&answered.join(" · ")),
            c.refused_all(),
            c.connect_failed,
            c.stopped,
            c.peak_held,
            at.held_target,
            c.errors
        );
    }
    s.push_str("</table>");
}

/// Abusive connections held, opened, closed and refused per second (none without attacks).
pub(super) fn chart(r: &Report, x_max: f64) -> Option<String> {
    let a = r.abuse.as_ref()?;
    let line = |name: &str, color: &str, f: fn(&crate::engine::AbuseWindow) -> u64| Series {
        name: name.into(),
        color: color.into(),
        points: a.windows.iter().map(|w| (w.t as f64 + 0.5, f(w) as f64)).collect(),
        dashed: false,
    };
    let chart = Chart {
        id: "chart-abuse",
        title: "Abusive connections (held; opened, closed by the target, refused per second)",
        x_max,
        y: YAxis::Linear(fmt_count),
        series: vec![
            line("held", PALETTE[1], |w| w.held),
            line("opened", PALETTE[0], |w| w.opened),
            line("closed", PALETTE[4], |w| w.closed),
            line("refused", PALETTE[3], |w| w.refused),
        ],
        markers: &r.markers,
    };
    Some(chart.render())
}
