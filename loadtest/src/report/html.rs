//! The self-contained HTML report: summary, thresholds, inline SVG charts, tables.
//!
//! Written as polyglot XHTML (every element closed, text escaped) so it parses as XML too;
//! no scripts, stylesheets or fonts are loaded from anywhere.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::svg::{esc, Chart, Series, YAxis, PALETTE};
use super::Report;
use crate::engine::fmt_us;
use crate::scenario::Mode;

const STYLE: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;\
max-width:960px;color:#111827;background:#f9fafb}h1{margin-bottom:4px}h2{margin-top:32px;border-bottom:1px solid \
#e5e7eb;padding-bottom:4px}table{border-collapse:collapse;margin:8px 0;font-size:14px}td,th{border:1px solid \
#e5e7eb;padding:4px 10px;text-align:left}th{background:#f3f4f6}td.num{text-align:right;font-variant-numeric:\
tabular-nums}.pass{color:#15803d;font-weight:bold}.fail{color:#b91c1c;font-weight:bold}.verdict{font-size:18px;\
padding:8px 12px;border-radius:6px;display:inline-block}.valid{background:#dcfce7}.invalid{background:#fee2e2}\
svg.chart{display:block;margin:12px 0;background:#fff;border:1px solid #e5e7eb;border-radius:6px;max-width:100%;\
height:auto}.muted{color:#6b7280}";

fn row(s: &mut String, cells: &[&str]) {
    s.push_str("<tr>");
    for (i, c) in cells.iter().enumerate() {
        if i == 0 {
            let _ = write!(s, "<th>{}</th>", esc(c));
        } else {
            let _ = write!(s, "<td>{}</td>", esc(c));
        }
    }
    s.push_str("</tr>");
}

fn counts_table(s: &mut String, title: &str, head: &str, map: &BTreeMap<String, u64>) {
    if map.is_empty() {
        return;
    }
    let total: u64 = map.values().sum();
    let _ = write!(
        s,
        "<h2>{}</h2><table><tr><th>{}</th><th>requests</th><th>share</th></tr>",
        esc(title),
        esc(head)
    );
    for (k, v) in map {
        let _ = write!(
            s,
            r#"<tr><td>{}</td><td class="num">{v}</td><td class="num">{:.2}%</td></tr>"#,
            esc(k),
            100.0 * *v as f64 / total.max(1) as f64
        );
    }
    s.push_str("</table>");
}

/// Renders the report page.
pub fn render(r: &Report) -> String {
    let mut s = String::with_capacity(64 * 1024);
    s.push_str(
        "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\"><head><meta charset=\"utf-8\"/>",
    );
    let _ = write!(
        s,
        "<title>arena-loadtest: {} ({})</title>",
        esc(&r.name),
        esc(&r.started_at)
    );
    let _ = write!(s, "<style>{STYLE}</style></head><body>");
    let _ = write!(s, "<h1>{}</h1>", esc(&r.name));
    if let Some(d) = &r.description {
        let _ = write!(s, "<p>{}</p>", esc(d));
    }
    let _ = write!(
        s,
        r#"<p class="muted">{} · {} · started {} · scenario {}</p>"#,
        esc(&r.target),
        match r.mode {
            Mode::Open => "open loop",
            Mode::Closed => "closed loop",
        },
        esc(&r.started_at),
        esc(&r.scenario_file)
    );
    verdict(&mut s, r);
    summary_table(&mut s, r);
    thresholds_table(&mut s, r);
    s.push_str("<h2>Over time</h2>");
    charts(&mut s, r);
    if !r.backends.is_empty() {
        s.push_str("<h2>Backends</h2><table><tr><th>backend</th><th>responses</th><th>share</th></tr>");
        for b in &r.backends {
            let _ = write!(
                s,
                r#"<tr><td>{}</td><td class="num">{}</td><td class="num">{:.2}%</td></tr>"#,
                esc(&b.backend),
                b.responses,
                b.share * 100.0
            );
        }
        s.push_str("</table>");
    }
    counts_table(&mut s, "Statuses", "status", &r.statuses);
    counts_table(&mut s, "Requests by name", "request", &r.requests_by_name);
    counts_table(&mut s, "Routes (x-arena-route)", "route", &r.routes);
    counts_table(&mut s, "Attempts (x-arena-attempts)", "attempts", &r.attempts);
    if !r.markers.is_empty() {
        s.push_str("<h2>Fault markers</h2><table><tr><th>at</th><th>label</th></tr>");
        for m in &r.markers {
            let _ = write!(
                s,
                r#"<tr><td class="num">{:.2}s</td><td>{}</td></tr>"#,
                m.at.as_secs_f64(),
                esc(&m.label)
            );
        }
        s.push_str("</table>");
    }
    if !r.error_samples.is_empty() {
        s.push_str("<h2>Error samples</h2><ul>");
        for e in &r.error_samples {
            let _ = write!(s, "<li><code>{}</code></li>", esc(e));
        }
        s.push_str("</ul>");
    }
    windows_table(&mut s, r);
    s.push_str("</body></html>\n");
    s
}

fn verdict(s: &mut String, r: &Report) {
    let thresholds = if r.thresholds.is_empty() {
        String::new()
    } else if r.passed() {
        " · all thresholds passed".to_string()
    } else {
        format!(
            " · {} of {} thresholds failed",
            r.thresholds.iter().filter(|t| !t.pass).count(),
            r.thresholds.len()
        )
    };
    if r.validity.valid {
        let _ = write!(s, r#"<p class="verdict valid">VALID run{}</p>"#, esc(&thresholds));
    } else {
        let _ = write!(
            s,
            r#"<p class="verdict invalid">INVALID run{}</p><ul>"#,
            esc(&thresholds)
        );
        for reason in &r.validity.reasons {
            let _ = write!(s, "<li>{}</li>", esc(reason));
        }
        s.push_str("</ul>");
    }
}

fn summary_table(s: &mut String, r: &Report) {
    let t = &r.totals;
    let l = &r.latency_us;
    s.push_str("<h2>Summary</h2><table>");
    row(s, &["requests", &format!("{} completed, {} sent", t.requests, t.sent)]);
    let mut rate = format!("{:.1} rps achieved", r.achieved_rps);
    if r.mode == Mode::Open {
        let _ = write!(
            rate,
            " / {:.1} rps intended ({} scheduled)",
            r.intended_rps, r.intended_total
        );
    }
    row(s, &["throughput", &rate]);
    row(
        s,
        &[
            "duration",
            &format!("{:.1}s load, {:.1}s until the last answer", r.duration_s, r.elapsed_s),
        ],
    );
    row(
        s,
        &[
            "errors",
            &format!(
                "{} ({:.3}%): {} timeouts, {} transport, {} by status; {} dropped",
                t.errors,
                r.error_rate * 100.0,
                t.timeouts,
                t.transport_errors,
                t.status_errors,
                t.dropped
            ),
        ],
    );
    for (name, v) in [
        ("latency p50", l.p50),
        ("latency p90", l.p90),
        ("latency p99", l.p99),
        ("latency p99.9", l.p999),
        ("latency max", l.max),
    ] {
        row(s, &[name, &fmt_us(v)]);
    }
    row(s, &["latency mean", &fmt_us(l.mean.round() as u64)]);
    if r.mode == Mode::Open {
        row(
            s,
            &[
                "schedule lag",
                &format!(
                    "p99 {} · max {} · {:.2}% over 10ms",
                    fmt_us(r.schedule_lag_us.p99),
                    fmt_us(r.schedule_lag_us.max),
                    r.lag_over_10ms * 100.0
                ),
            ],
        );
    }
    row(
        s,
        &[
            "connections",
            &format!(
                "{} × {} stream(s), {} thread(s), timeout {}",
                r.http.connections,
                r.http.streams,
                r.threads,
                humantime::format_duration(r.http.timeout)
            ),
        ],
    );
    s.push_str("</table>");
}

fn thresholds_table(s: &mut String, r: &Report) {
    if r.thresholds.is_empty() {
        return;
    }
    s.push_str("<h2>Thresholds</h2><table><tr><th>threshold</th><th>actual</th><th>result</th></tr>");
    for t in &r.thresholds {
        let (class, word) = if t.pass { ("pass", "PASS") } else { ("fail", "FAIL") };
        let _ = write!(
            s,
            r#"<tr><td><code>{}</code></td><td class="num">{}</td><td class="{class}">{word}</td></tr>"#,
            esc(&t.text),
            esc(&t.actual_text)
        );
    }
    s.push_str("</table>");
}

fn fmt_latency(v: f64) -> String {
    fmt_us(v.round() as u64)
}

fn fmt_count(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 1000.0 {
        format!("{:.1}k", v / 1000.0)
    } else {
        format!("{v:.0}")
    }
}

fn charts(s: &mut String, r: &Report) {
    let x_max = r.duration_s.max(r.windows.len() as f64).max(1.0);
    let mid = |t: u64| t as f64 + 0.5;
    let busy: Vec<_> = r.windows.iter().filter(|w| w.requests > 0).collect();
    let lat = |name: &str, color: &str, f: fn(&crate::engine::Window) -> u64| Series {
        name: name.into(),
        color: color.into(),
        points: busy.iter().map(|w| (mid(w.t), f(w) as f64)).collect(),
        dashed: false,
    };
    let latency = Chart {
        id: "chart-latency",
        title: "Latency per second (p50, p99, max)",
        x_max,
        y: YAxis::Log(fmt_latency),
        series: vec![
            lat("p50", PALETTE[0], |w| w.latency.p50),
            lat("p99", PALETTE[4], |w| w.latency.p99),
            lat("max", PALETTE[1], |w| w.latency.max),
        ],
        markers: &r.markers,
    };
    s.push_str(&latency.render());

    let mut tput = vec![Series {
        name: "achieved".into(),
        color: PALETTE[0].into(),
        points: r.windows.iter().map(|w| (mid(w.t), w.requests as f64)).collect(),
        dashed: false,
    }];
    if r.mode == Mode::Open {
        tput.push(Series {
            name: "intended".into(),
            color: PALETTE[8].into(),
            points: r.windows.iter().map(|w| (mid(w.t), w.intended)).collect(),
            dashed: true,
        });
    }
    let throughput = Chart {
        id: "chart-throughput",
        title: "Throughput (requests per second)",
        x_max,
        y: YAxis::Linear(fmt_count),
        series: tput,
        markers: &r.markers,
    };
    s.push_str(&throughput.render());

    let err = |name: &str, color: &str, f: fn(&crate::engine::Window) -> u64| Series {
        name: name.into(),
        color: color.into(),
        points: r.windows.iter().map(|w| (mid(w.t), f(w) as f64)).collect(),
        dashed: false,
    };
    let errors = Chart {
        id: "chart-errors",
        title: "Errors per second",
        x_max,
        y: YAxis::Linear(fmt_count),
        series: vec![
            err("errors", PALETTE[1], |w| w.errors),
            err("timeouts", PALETTE[4], |w| w.timeouts),
            err("transport", PALETTE[3], |w| w.transport_errors),
            err("dropped", PALETTE[8], |w| w.dropped),
        ],
        markers: &r.markers,
    };
    s.push_str(&errors.render());

    // Backend shares: the biggest backends by name, the rest pooled.
    const MAX_BANDS: usize = 9;
    let mut names: Vec<&str> = r.backends.iter().map(|b| b.backend.as_str()).take(MAX_BANDS).collect();
    let pooled = r.backends.len() > MAX_BANDS;
    names.sort_unstable();
    let mut bands: Vec<Series> = names
        .iter()
        .enumerate()
        .map(|(i, n)| Series {
            name: (*n).to_string(),
            color: PALETTE[i % PALETTE.len()].into(),
            points: Vec::new(),
            dashed: false,
        })
        .collect();
    if pooled {
        bands.push(Series {
            name: "other".into(),
            color: "#9ca3af".into(),
            points: Vec::new(),
            dashed: false,
        });
    }
    let untagged = Series {
        name: "no x-arena-backend".into(),
        color: "#e5e7eb".into(),
        points: Vec::new(),
        dashed: false,
    };
    if !bands.is_empty() {
        bands.push(untagged);
        for w in &r.windows {
            let responses: u64 = w.statuses.values().sum();
            let denom = responses.max(1) as f64;
            let x = mid(w.t);
            let mut tagged = 0u64;
            for (i, n) in names.iter().enumerate() {
                let c = w.backends.get(*n).copied().unwrap_or(0);
                tagged += c;
                bands[i].points.push((x, 100.0 * c as f64 / denom));
            }
            let all: u64 = w.backends.values().sum();
            if pooled {
                let idx = names.len();
                bands[idx].points.push((x, 100.0 * (all - tagged) as f64 / denom));
            }
            let last = bands.len() - 1;
            let rest = if responses > 0 {
                100.0 * responses.saturating_sub(all) as f64 / denom
            } else {
                0.0
            };
            bands[last].points.push((x, rest));
        }
        let share = Chart {
            id: "chart-backends",
            title: "Traffic share per backend (x-arena-backend)",
            x_max,
            y: YAxis::Share,
            series: bands,
            markers: &r.markers,
        };
        s.push_str(&share.render());
    }
}

fn windows_table(s: &mut String, r: &Report) {
    s.push_str("<h2>Per second</h2><details><summary>show all windows</summary><table><tr><th>t</th><th>intended</th><th>requests</th><th>errors</th><th>p50</th><th>p99</th><th>max</th><th>lag max</th></tr>");
    for w in &r.windows {
        let _ = write!(
            s,
            r#"<tr><td class="num">{}s</td><td class="num">{:.0}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td></tr>"#,
            w.t,
            w.intended,
            w.requests,
            w.errors,
            fmt_us(w.latency.p50),
            fmt_us(w.latency.p99),
            fmt_us(w.latency.max),
            fmt_us(w.lag_max_us)
        );
    }
    s.push_str("</table></details>");
}
