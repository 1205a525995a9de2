//! The self-contained HTML report: summary, thresholds, inline SVG charts, tables.
//!
//! Written as polyglot XHTML (every element closed, text escaped) so it parses as XML too;
//! no scripts, stylesheets or fonts are loaded from anywhere.

mod abuse;
mod charts;
mod release;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::svg::esc;
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
    head(&mut s, r);
    verdict(&mut s, r);
    summary_table(&mut s, r);
    abuse::section(&mut s, r);
    release::section(&mut s, r);
    thresholds_table(&mut s, r);
    s.push_str("<h2>Over time</h2>");
    charts::render(&mut s, r);
    backends_table(&mut s, r);
    versions_table(&mut s, r);
    counts_table(&mut s, "Statuses", "status", &r.statuses);
    counts_table(&mut s, "Requests by name", "request", &r.requests_by_name);
    counts_table(&mut s, "Routes (x-arena-route)", "route", &r.routes);
    counts_table(&mut s, "Attempts (x-arena-attempts)", "attempts", &r.attempts);
    markers_table(&mut s, r);
    error_samples(&mut s, r);
    windows_table(&mut s, r);
    s.push_str("</body></html>\n");
    s
}

/// Document head with the inline style, the title and the line saying what ran.
fn head(s: &mut String, r: &Report) {
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
}

fn backends_table(s: &mut String, r: &Report) {
    if r.backends.is_empty() {
        return;
    }
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

fn versions_table(s: &mut String, r: &Report) {
    if r.versions.is_empty() {
        return;
    }
    s.push_str("<h2>Versions (x-arena-release)</h2><table><tr><th>version</th><th>responses</th><th>share</th></tr>");
    for v in &r.versions {
        let _ = write!(
            s,
            r#"<tr><td>{}</td><td class="num">{}</td><td class="num">{:.2}%</td></tr>"#,
            esc(&v.version),
            v.responses,
            v.share * 100.0
        );
    }
    s.push_str("</table>");
}

fn markers_table(s: &mut String, r: &Report) {
    if r.markers.is_empty() {
        return;
    }
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

fn error_samples(s: &mut String, r: &Report) {
    if r.error_samples.is_empty() {
        return;
    }
    s.push_str("<h2>Error samples</h2><ul>");
    for e in &r.error_samples {
        let _ = write!(s, "<li><code>{}</code></li>", esc(e));
    }
    s.push_str("</ul>");
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
