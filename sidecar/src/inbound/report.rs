//! The load report on every answer: `endpoint-load-metrics` (ORCA TEXT) from what the sidecar
//! measures — in-flight and queued against the limit, the app's CPU, whether it is stuck —
//! merged with the app's own report, so an app that reports keeps its numbers and one that
//! does not still gets balanced on real load.
//!
//! `application_utilization` = max(the app's, (in-flight + queued) / limit, CPU, 1 when stuck),
//! at most 4 (the gateway's cap); `cpu_utilization` = the app's when it sent one, else the
//! measured one; `named_metrics.inflight` = the larger count. The app's other pairs follow
//! verbatim when they are well-formed, up to 16 pairs.

use std::fmt::Write as _;

/// Pairs of the app's report kept beyond the ones merged.
const MAX_EXTRA_PAIRS: usize = 16;
/// Longest app report read.
const MAX_APP_REPORT: usize = 1024;

/// What the sidecar knows at the answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Own {
    pub in_flight: usize,
    pub queued: usize,
    pub limit: usize,
    /// Measured CPU use of the app against its allowance, when measurable.
    pub cpu: Option<f64>,
    /// Stuck, or shedding: the report reads at least 1.
    pub full: bool,
}

/// The app's report, as far as it is read.
#[derive(Debug, Default, PartialEq)]
struct AppReport<'a> {
    application: Option<f64>,
    cpu: Option<f64>,
    inflight: Option<f64>,
    extra: Vec<(&'a str, &'a str)>,
}

fn number(v: &str) -> Option<f64> {
    v.parse::<f64>().ok().filter(|x| x.is_finite() && *x >= 0.0)
}

fn well_formed_key(k: &str) -> bool {
    !k.is_empty() && k.len() <= 64 && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

fn parse_app(value: &[u8]) -> AppReport<'_> {
    let mut r = AppReport::default();
    if value.len() > MAX_APP_REPORT {
        return r;
    }
    let Some(body) = std::str::from_utf8(value)
        .ok()
        .and_then(|t| t.trim().strip_prefix("TEXT"))
    else {
        return r;
    };
    for pair in body.split(',') {
        let Some((k, v)) = pair.trim().split_once('=') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        match k {
            "application_utilization" => r.application = number(v),
            "cpu_utilization" => r.cpu = number(v),
            "named_metrics.inflight" => r.inflight = number(v),
            // Ours: the sidecar writes these itself.
            "named_metrics.limit" | "named_metrics.queued" => {}
            _ if well_formed_key(k) && number(v).is_some() && r.extra.len() < MAX_EXTRA_PAIRS => r.extra.push((k, v)),
            _ => {}
        }
    }
    r
}

/// Writes `v` (finite, ≥ 0) with four decimals. By hand: float formatting was the largest
/// single cost the sidecar added to a request (callgrind: ~7000 instructions per report).
fn push_fixed4(out: &mut String, v: f64) {
    let scaled = (v * 10_000.0).round();
    let n = if scaled.is_finite() && scaled > 0.0 {
        scaled as u64
    } else {
        0
    };
    let _ = write!(out, "{}.{:04}", n / 10_000, n % 10_000);
}

/// The header value for an answer whose app report (if any) is `app`.
pub fn render(own: Own, app: Option<&[u8]>) -> String {
    render_with_utilization(own, app).0
}

/// [`render`], and the `application_utilization` it reports.
pub fn render_with_utilization(own: Own, app: Option<&[u8]>) -> (String, f64) {
    let app = app.map(parse_app).unwrap_or_default();
    let limit = own.limit.max(1) as f64;
    let demand = (own.in_flight + own.queued) as f64 / limit;
    let mut u = demand.max(own.cpu.unwrap_or(0.0)).max(app.application.unwrap_or(0.0));
    if own.full {
        u = u.max(1.0);
    }
    let u = u.min(4.0);
    let inflight = (own.in_flight as f64).max(app.inflight.unwrap_or(0.0));
    let mut out = String::with_capacity(160);
    out.push_str("TEXT application_utilization=");
    push_fixed4(&mut out, u);
    if let Some(cpu) = app.cpu.or(own.cpu) {
        out.push_str(", cpu_utilization=");
        push_fixed4(&mut out, cpu.min(64.0));
    }
    let inflight = if inflight.is_finite() {
        inflight.round().min(1e12) as u64
    } else {
        0
    };
    let _ = write!(
        out,
        ", named_metrics.inflight={inflight}, named_metrics.limit={}, named_metrics.queued={}",
        own.limit, own.queued
    );
    for (k, v) in app.extra {
        let _ = write!(out, ", {k}={v}");
    }
    (out, u)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use arena_core::balance::report::parse;
    use proptest::prelude::*;

    fn own(in_flight: usize, queued: usize, limit: usize, cpu: Option<f64>) -> Own {
        Own {
            in_flight,
            queued,
            limit,
            cpu,
            full: false,
        }
    }

    #[test]
    fn measured_load_without_an_app_report() {
        let v = render(own(4, 4, 16, Some(0.2)), None);
        assert_eq!(
            v,
            "TEXT application_utilization=0.5000, cpu_utilization=0.2000, named_metrics.inflight=4, \
             named_metrics.limit=16, named_metrics.queued=4"
        );
        let r = parse(v.as_bytes()).unwrap();
        assert_eq!(r.utilization, 0.5);
        assert_eq!(r.inflight, Some(4));
    }

    #[test]
    fn cpu_heavier_than_demand_wins_and_unknown_cpu_is_left_out() {
        let v = render(own(1, 0, 100, Some(0.9)), None);
        assert_eq!(parse(v.as_bytes()).unwrap().utilization, 0.9);
        let v = render(own(1, 0, 100, None), None);
        assert!(!v.contains("cpu_utilization"), "{v}");
    }

    #[test]
    fn the_apps_report_is_merged_not_lost() {
        let app = b"TEXT cpu_utilization=0.7, application_utilization=0.95, named_metrics.inflight=9, \
                    named_metrics.limit=3, rps_fractional=12.5, bad key=1, mem_utilization=0.3";
        let v = render(own(2, 0, 16, Some(0.1)), Some(app));
        assert!(v.starts_with("TEXT application_utilization=0.9500, cpu_utilization=0.7000, named_metrics.inflight=9, named_metrics.limit=16"), "{v}");
        assert!(v.ends_with(", rps_fractional=12.5, mem_utilization=0.3"), "{v}");
        assert!(!v.contains("bad key"));
    }

    #[test]
    fn stuck_reads_full_and_overload_is_capped() {
        assert_eq!(
            parse(
                render(
                    Own {
                        full: true,
                        ..own(0, 0, 16, None)
                    },
                    None
                )
                .as_bytes()
            )
            .unwrap()
            .utilization,
            1.0
        );
        assert_eq!(
            parse(render(own(500, 500, 1, None), None).as_bytes())
                .unwrap()
                .utilization,
            4.0
        );
        // A limit of 0 (never configured, but never divide by it).
        assert!(render(own(1, 0, 0, None), None).contains("application_utilization=1.0000"));
    }

    #[test]
    fn fixed_point_numbers() {
        for (v, text) in [
            (0.0, "0.0000"),
            (0.5, "0.5000"),
            (1.23456, "1.2346"),
            (4.0, "4.0000"),
            (0.00004, "0.0000"),
            (63.99999, "64.0000"),
        ] {
            let mut s = String::new();
            push_fixed4(&mut s, v);
            assert_eq!(s, text);
        }
    }

    proptest! {
        /// Whatever the app sends, the result is a report the gateway reads, within bounds.
        #[test]
        fn any_app_header_gives_a_readable_report(app in proptest::collection::vec(any::<u8>(), 0..300),
                                                  text in "TEXT [a-z_.]{0,20}=[0-9eE.+-]{0,8}(, [a-z_.]{1,12}=[-0-9.a-z]{0,6}){0,20}",
                                                  i in 0usize..10_000, q in 0usize..1000, l in 0usize..10_000) {
            for a in [&app[..], text.as_bytes()] {
                let v = render(own(i, q, l, Some(0.5)), Some(a));
                let r = parse(v.as_bytes());
                prop_assert!(r.is_some(), "{v}");
                let u = r.unwrap().utilization;
                prop_assert!((0.0..=4.0).contains(&u));
                prop_assert!(v.len() < 2048);
            }
        }
    }
}
