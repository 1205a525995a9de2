//! The "Over time" charts of the HTML report: latency, throughput, errors, backend shares and
//! (with a grey release) version shares per second, each with the run's fault markers.

use std::collections::BTreeMap;

use crate::engine::{fmt_us, Window};
use crate::report::svg::{Chart, Series, YAxis, PALETTE};
use crate::report::Report;
use crate::scenario::Mode;

/// Backends with a band of their own in the share chart; the rest are pooled as "other".
const MAX_BANDS: usize = 9;

/// Renders every chart, in page order (the share chart only when backends were seen, the
/// abuse chart only with attacks).
pub(super) fn render(s: &mut String, r: &Report) {
    let x_max = r.duration_s.max(r.windows.len() as f64).max(1.0);
    s.push_str(&latency(r, x_max).render());
    s.push_str(&throughput(r, x_max).render());
    s.push_str(&errors(r, x_max).render());
    if let Some(share) = backends(r, x_max) {
        s.push_str(&share.render());
    }
    if let Some(share) = versions(r, x_max) {
        s.push_str(&share.render());
    }
    for chart in super::release::charts(r, x_max) {
        s.push_str(&chart);
    }
    if let Some(abuse) = super::abuse::chart(r, x_max) {
        s.push_str(&abuse);
    }
}

/// A window's point sits in the middle of its second.
pub(super) fn mid(t: u64) -> f64 {
    t as f64 + 0.5
}

/// A solid line of one value per window.
fn series<'w>(
    name: &str,
    color: &str,
    windows: impl IntoIterator<Item = &'w Window>,
    value: impl Fn(&Window) -> f64,
) -> Series {
    Series {
        name: name.into(),
        color: color.into(),
        points: windows.into_iter().map(|w| (mid(w.t), value(w))).collect(),
        dashed: false,
    }
}

fn fmt_latency(v: f64) -> String {
    fmt_us(v.round() as u64)
}

pub(super) fn fmt_count(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 1000.0 {
        format!("{:.1}k", v / 1000.0)
    } else {
        format!("{v:.0}")
    }
}

/// p50, p99 and max per second; seconds without requests have no latency and are left out.
fn latency(r: &Report, x_max: f64) -> Chart<'_> {
    let busy: Vec<&Window> = r.windows.iter().filter(|w| w.requests > 0).collect();
    let line =
        |name: &str, color: &str, f: fn(&Window) -> u64| series(name, color, busy.iter().copied(), |w| f(w) as f64);
    Chart {
        id: "chart-latency",
        title: "Latency per second (p50, p99, max)",
        x_max,
        y: YAxis::Log(fmt_latency),
        series: vec![
            line("p50", PALETTE[0], |w| w.latency.p50),
            line("p99", PALETTE[4], |w| w.latency.p99),
            line("max", PALETTE[1], |w| w.latency.max),
        ],
        markers: &r.markers,
    }
}

/// Achieved requests per second, against the schedule's in open loop.
fn throughput(r: &Report, x_max: f64) -> Chart<'_> {
    let mut lines = vec![series("achieved", PALETTE[0], &r.windows, |w| w.requests as f64)];
    if r.mode == Mode::Open {
        lines.push(Series {
            dashed: true,
            ..series("intended", PALETTE[8], &r.windows, |w| w.intended)
        });
    }
    Chart {
        id: "chart-throughput",
        title: "Throughput (requests per second)",
        x_max,
        y: YAxis::Linear(fmt_count),
        series: lines,
        markers: &r.markers,
    }
}

/// Errors per second, with timeouts, transport errors and drops on their own lines.
fn errors(r: &Report, x_max: f64) -> Chart<'_> {
    let line = |name: &str, color: &str, f: fn(&Window) -> u64| series(name, color, &r.windows, |w| f(w) as f64);
    Chart {
        id: "chart-errors",
        title: "Errors per second",
        x_max,
        y: YAxis::Linear(fmt_count),
        series: vec![
            line("errors", PALETTE[1], |w| w.errors),
            line("timeouts", PALETTE[4], |w| w.timeouts),
            line("transport", PALETTE[3], |w| w.transport_errors),
            line("dropped", PALETTE[8], |w| w.dropped),
        ],
        markers: &r.markers,
    }
}

/// Stacked shares of each second's responses per backend: the biggest backends by name, the
/// rest pooled, and responses without `x-arena-backend` on top.
fn backends(r: &Report, x_max: f64) -> Option<Chart<'_>> {
    if r.backends.is_empty() {
        return None;
    }
    let mut names: Vec<&str> = r.backends.iter().map(|b| b.backend.as_str()).take(MAX_BANDS).collect();
    let pooled = r.backends.len() > MAX_BANDS;
    names.sort_unstable();
    let mut bands = bands(&names, pooled, "no x-arena-backend");
    for w in &r.windows {
        add_shares(&mut bands, &names, pooled, w, &w.backends);
    }
    Some(Chart {
        id: "chart-backends",
        title: "Traffic share per backend (x-arena-backend)",
        x_max,
        y: YAxis::Share,
        series: bands,
        markers: &r.markers,
    })
}

/// Stacked shares of each second's responses per `x-arena-release` value (the version that
/// answered), responses of unsplit routes on top.
fn versions(r: &Report, x_max: f64) -> Option<Chart<'_>> {
    if r.versions.is_empty() {
        return None;
    }
    let mut names: Vec<&str> = r.versions.iter().map(|v| v.version.as_str()).take(MAX_BANDS).collect();
    let pooled = r.versions.len() > MAX_BANDS;
    names.sort_unstable();
    let mut bands = bands(&names, pooled, "no x-arena-release");
    for w in &r.windows {
        add_shares(&mut bands, &names, pooled, w, &w.versions);
    }
    Some(Chart {
        id: "chart-versions",
        title: "Traffic share per version (x-arena-release)",
        x_max,
        y: YAxis::Share,
        series: bands,
        markers: &r.markers,
    })
}

/// Empty bands: one per name, "other" when pooled, then the untagged rest.
fn bands(names: &[&str], pooled: bool, untagged: &str) -> Vec<Series> {
    let band = |name: &str, color: &str| Series {
        name: name.to_string(),
        color: color.into(),
        points: Vec::new(),
        dashed: false,
    };
    let mut bands: Vec<Series> = names
        .iter()
        .enumerate()
        .map(|(i, n)| band(n, PALETTE[i % PALETTE.len()]))
        .collect();
    if pooled {
        bands.push(band("other", "#9ca3af"));
    }
    bands.push(band(untagged, "#e5e7eb"));
    bands
}

/// Adds one window's point to every band (counts of `tags` by name), in % of that second's
/// responses.
fn add_shares(bands: &mut [Series], names: &[&str], pooled: bool, w: &Window, tags: &BTreeMap<String, u64>) {
    let responses: u64 = w.statuses.values().sum();
    let denom = responses.max(1) as f64;
    let x = mid(w.t);
    let mut tagged = 0u64;
    for (i, n) in names.iter().enumerate() {
        let c = tags.get(*n).copied().unwrap_or(0);
        tagged += c;
        bands[i].points.push((x, 100.0 * c as f64 / denom));
    }
    let all: u64 = tags.values().sum();
    if pooled {
        bands[names.len()]
            .points
            .push((x, 100.0 * (all - tagged) as f64 / denom));
    }
    let rest = if responses > 0 {
        100.0 * responses.saturating_sub(all) as f64 / denom
    } else {
        0.0
    };
    if let Some(untagged) = bands.last_mut() {
        untagged.points.push((x, rest));
    }
}
