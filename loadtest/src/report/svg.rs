//! Hand-made inline SVG charts (lines and stacked areas over time, with fault markers).
//!
//! Output is well-formed XML (every tag closed, text escaped) so the HTML report stays
//! parseable by strict tools and needs no external JavaScript, CSS or fonts.

use std::fmt::Write as _;

use crate::engine::Marker;

const W: f64 = 920.0;
const H: f64 = 280.0;
const LEFT: f64 = 72.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 46.0;
const BOTTOM: f64 = 36.0;

/// Colours for series, cycled.
pub const PALETTE: &[&str] = &[
    "#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777", "#4b5563", "#65a30d",
];

/// Escapes text for XML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// One line (or area band) of a chart: (x seconds, y value) points.
pub struct Series {
    pub name: String,
    pub color: String,
    pub points: Vec<(f64, f64)>,
    pub dashed: bool,
}

/// How the y axis is drawn and labelled.
#[derive(Clone, Copy)]
pub enum YAxis {
    /// Linear from 0, values formatted by the function.
    Linear(fn(f64) -> String),
    /// Log10 scale (for latencies spanning decades).
    Log(fn(f64) -> String),
    /// Stacked shares, 0–100 %.
    Share,
}

pub struct Chart<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub x_max: f64,
    pub y: YAxis,
    pub series: Vec<Series>,
    pub markers: &'a [Marker],
}

impl Chart<'_> {
    fn x(&self, v: f64) -> f64 {
        LEFT + (W - LEFT - RIGHT) * (v / self.x_max.max(1e-9)).clamp(0.0, 1.0)
    }

    /// Renders the chart as an `<svg>` element.
    pub fn render(&self) -> String {
        let mut s = String::with_capacity(16 * 1024);
        let _ = write!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" id="{}" class="chart" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{}">"#,
            esc(self.id),
            esc(self.title)
        );
        let _ = write!(s, r#"<title>{}</title>"#, esc(self.title));
        let _ = write!(
            s,
            r##"<rect x="{LEFT}" y="{TOP}" width="{}" height="{}" fill="#ffffff" stroke="#d1d5db"/>"##,
            W - LEFT - RIGHT,
            H - TOP - BOTTOM
        );
        let _ = write!(
            s,
            r##"<text x="{LEFT}" y="20" font-size="14" font-weight="bold" fill="#111827">{}</text>"##,
            esc(self.title)
        );
        let (lo, hi, step) = self.y_range();
        let ymap = |v: f64| -> f64 {
            let frac = match self.y {
                YAxis::Log(_) => {
                    let v = v.max(lo);
                    (v.log10() - lo.log10()) / (hi.log10() - lo.log10()).max(1e-9)
                }
                _ => (v - lo) / (hi - lo).max(1e-9),
            };
            H - BOTTOM - (H - TOP - BOTTOM) * frac.clamp(0.0, 1.0)
        };
        self.y_ticks(&mut s, (lo, hi, step), &ymap);
        self.x_ticks(&mut s);
        match self.y {
            YAxis::Share => self.areas(&mut s, &ymap),
            _ => self.lines(&mut s, &ymap),
        }
        self.marker_lines(&mut s);
        self.legend(&mut s);
        s.push_str("</svg>");
        s
    }

    /// Axis bounds and (linear) tick step.
    fn y_range(&self) -> (f64, f64, f64) {
        let max = self
            .series
            .iter()
            .flat_map(|se| se.points.iter().map(|p| p.1))
            .fold(0.0f64, f64::max);
        match self.y {
            YAxis::Share => (0.0, 100.0, 25.0),
            YAxis::Linear(_) => {
                // Counts: whole-number ticks.
                let step = nice_ceil(max.max(1.0) / 4.0).max(1.0);
                (0.0, (max / step).ceil().max(1.0) * step, step)
            }
            YAxis::Log(_) => {
                let min = self
                    .series
                    .iter()
                    .flat_map(|se| se.points.iter().map(|p| p.1))
                    .filter(|v| *v > 0.0)
                    .fold(f64::INFINITY, f64::min);
                let lo = if min.is_finite() {
                    10f64.powf(min.log10().floor())
                } else {
                    1.0
                };
                let hi = 10f64.powf(max.max(lo * 10.0).log10().ceil());
                (lo, hi, 10.0)
            }
        }
    }

    fn y_ticks(&self, s: &mut String, (lo, hi, step): (f64, f64, f64), ymap: &dyn Fn(f64) -> f64) {
        let ticks: Vec<f64> = match self.y {
            YAxis::Log(_) => {
                let mut v = lo;
                let mut t = Vec::new();
                while v <= hi * 1.0001 {
                    t.push(v);
                    v *= 10.0;
                }
                t
            }
            _ => {
                let n = ((hi - lo) / step).round() as u32;
                (0..=n).map(|i| lo + step * f64::from(i)).collect()
            }
        };
        for v in ticks {
            let y = ymap(v);
            let label = match self.y {
                YAxis::Linear(f) | YAxis::Log(f) => f(v),
                YAxis::Share => format!("{v:.0}%"),
            };
            let _ = write!(
                s,
                r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#e5e7eb"/><text x="{}" y="{:.1}" font-size="11" text-anchor="end" fill="#4b5563">{}</text>"##,
                W - RIGHT,
                LEFT - 6.0,
                y + 4.0,
                esc(&label)
            );
        }
    }

    fn x_ticks(&self, s: &mut String) {
        let step = nice_step(self.x_max / 8.0).max(1.0);
        let mut v = 0.0;
        while v <= self.x_max + 1e-9 {
            let x = self.x(v);
            let _ = write!(
                s,
                r##"<line x1="{x:.1}" x2="{x:.1}" y1="{}" y2="{}" stroke="#9ca3af"/><text x="{x:.1}" y="{}" font-size="11" text-anchor="middle" fill="#4b5563">{}s</text>"##,
                H - BOTTOM,
                H - BOTTOM + 4.0,
                H - BOTTOM + 16.0,
                v
            );
            v += step;
        }
    }

    fn lines(&self, s: &mut String, ymap: &dyn Fn(f64) -> f64) {
        for se in &self.series {
            if se.points.is_empty() {
                continue;
            }
            let pts: Vec<String> = se
                .points
                .iter()
                .map(|(x, y)| format!("{:.1},{:.1}", self.x(*x), ymap(*y)))
                .collect();
            let dash = if se.dashed { r#" stroke-dasharray="6 4""# } else { "" };
            let _ = write!(
                s,
                r#"<polyline class="series" fill="none" stroke="{}" stroke-width="1.8"{dash} points="{}"><title>{}</title></polyline>"#,
                esc(&se.color),
                pts.join(" "),
                esc(&se.name)
            );
        }
    }

    /// Stacked areas: series values are percentages at the same x positions.
    fn areas(&self, s: &mut String, ymap: &dyn Fn(f64) -> f64) {
        let Some(first) = self.series.first() else { return };
        let xs: Vec<f64> = first.points.iter().map(|p| p.0).collect();
        let mut base = vec![0.0; xs.len()];
        for se in &self.series {
            let top: Vec<f64> = base.iter().zip(&se.points).map(|(b, p)| (b + p.1).min(100.0)).collect();
            let mut pts: Vec<String> = xs
                .iter()
                .zip(&top)
                .map(|(x, y)| format!("{:.1},{:.1}", self.x(*x), ymap(*y)))
                .collect();
            pts.extend(
                xs.iter()
                    .zip(&base)
                    .rev()
                    .map(|(x, y)| format!("{:.1},{:.1}", self.x(*x), ymap(*y))),
            );
            let _ = write!(
                s,
                r#"<polygon class="series" fill="{}" fill-opacity="0.75" stroke="{}" stroke-width="0.5" points="{}"><title>{}</title></polygon>"#,
                esc(&se.color),
                esc(&se.color),
                pts.join(" "),
                esc(&se.name)
            );
            base = top;
        }
    }

    fn marker_lines(&self, s: &mut String) {
        for (i, m) in self.markers.iter().enumerate() {
            let x = self.x(m.at.as_secs_f64());
            // Stagger labels vertically so close markers stay readable.
            let y = TOP + 12.0 + 12.0 * (i % 4) as f64;
            let _ = write!(
                s,
                r##"<g class="marker"><line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{}" stroke="#b91c1c" stroke-width="1.2" stroke-dasharray="4 3"/><text x="{:.1}" y="{y:.1}" font-size="11" fill="#b91c1c">{}</text></g>"##,
                H - BOTTOM,
                x + 3.0,
                esc(&m.label)
            );
        }
    }

    fn legend(&self, s: &mut String) {
        let mut x = LEFT;
        for se in &self.series {
            let _ = write!(
                s,
                r##"<rect x="{x:.1}" y="27" width="12" height="8" fill="{}"/><text x="{:.1}" y="35" font-size="11" fill="#374151">{}</text>"##,
                esc(&se.color),
                x + 16.0,
                esc(&se.name)
            );
            x += 30.0 + 6.5 * se.name.chars().count() as f64;
        }
    }
}

/// Rounds up to 1, 2, 2.5 or 5 × 10^n.
fn nice_ceil(v: f64) -> f64 {
    let exp = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if v <= m * exp {
            return m * exp;
        }
    }
    10.0 * exp
}

fn nice_step(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    nice_ceil(v)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(esc(r#"<a & "b">"#), "&lt;a &amp; &quot;b&quot;&gt;");
    }

    #[test]
    fn nice_numbers() {
        assert_eq!(nice_ceil(7.0), 10.0);
        assert_eq!(nice_ceil(1800.0), 2000.0);
        assert_eq!(nice_ceil(230.0), 250.0);
    }
}
