//! Command-line / programmatic configuration of an `arena-pod`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

/// Static settings of one simulated esports pod.
///
/// The fault knobs (`latency`, `jitter`, `error_rate`, `stuck`,
/// `report_utilization`) are only the *initial* values: they can be changed
/// at runtime through `POST /_pod/config`.
#[derive(Debug, Clone, Args)]
pub struct PodConfig {
    /// Address to listen on, e.g. `127.0.0.11:9100`; port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,

    /// Pod identity reported in bodies and `x-pod` (default: the bound address).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Version label reported in bodies and `x-pod-version` (for canary tests).
    #[arg(long = "version", value_name = "LABEL", default_value = "v1")]
    pub pod_version: String,

    /// Tokio worker threads (1 = single-threaded runtime).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: u16,

    /// Fixed delay before answering an API request, e.g. `5ms`.
    #[arg(long, value_name = "DUR", default_value = "0s", value_parser = humantime::parse_duration)]
    pub latency: Duration,

    /// Uniformly distributed extra delay in `0..=jitter`.
    #[arg(long, value_name = "DUR", default_value = "0s", value_parser = humantime::parse_duration)]
    pub jitter: Duration,

    /// Fraction (0.0–1.0) of API requests answered with `--fail-status`.
    #[arg(long, value_name = "F", default_value_t = 0.0, value_parser = parse_fraction)]
    pub error_rate: f64,

    /// Accept and read requests but never answer them (dead-loop pod).
    #[arg(long)]
    pub stuck: bool,

    /// Exit the process (code 1) after serving N API responses.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub crash_after: Option<u64>,

    /// Add the ORCA `endpoint-load-metrics` header (TEXT form) to API responses.
    #[arg(long)]
    pub load_report: bool,

    /// In-flight requests that count as 100% utilization in the load report.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub capacity: u32,

    /// Report this fixed utilization (0.0–1.0) instead of the measured one.
    #[arg(long, value_name = "F", value_parser = parse_fraction)]
    pub report_utilization: Option<f64>,

    /// HTTP status used for injected errors.
    #[arg(long, value_name = "CODE", default_value_t = 500, value_parser = parse_status)]
    pub fail_status: u16,

    /// Injected errors are load shedding: 503 with `x-arena-overloaded` and a full load
    /// report, what arena-sidecar answers when its queue is full (the gateway retries
    /// elsewhere without ejecting the pod).
    #[arg(long)]
    pub shed: bool,
}

impl PodConfig {
    /// A healthy pod on `listen` with every knob at its CLI default.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            name: None,
            pod_version: "v1".to_owned(),
            threads: 1,
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            error_rate: 0.0,
            stuck: false,
            crash_after: None,
            load_report: false,
            capacity: 64,
            report_utilization: None,
            fail_status: 500,
            shed: false,
        }
    }
}

/// Parses a fraction in `0.0..=1.0` (error rate, utilization).
pub(crate) fn parse_fraction(s: &str) -> Result<f64, String> {
    let v: f64 = s.trim().parse().map_err(|e| format!("{e}"))?;
    check_fraction(v)
}

/// Rejects NaN and values outside `0.0..=1.0`.
pub(crate) fn check_fraction(v: f64) -> Result<f64, String> {
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not within 0.0..=1.0"))
    }
}

/// Parses an HTTP status code usable in a response (100–999).
fn parse_status(s: &str) -> Result<u16, String> {
    let code: u16 = s.trim().parse().map_err(|e| format!("{e}"))?;
    http::StatusCode::from_u16(code)
        .map(|_| code)
        .map_err(|e| format!("{code}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_are_bounded() {
        assert_eq!(parse_fraction("0.25"), Ok(0.25));
        assert_eq!(parse_fraction("1"), Ok(1.0));
        assert!(parse_fraction("1.5").is_err());
        assert!(parse_fraction("-0.1").is_err());
        assert!(parse_fraction("NaN").is_err());
        assert!(parse_fraction("x").is_err());
    }

    #[test]
    fn status_codes_are_validated() {
        assert_eq!(parse_status("503"), Ok(503));
        assert!(parse_status("42").is_err());
        assert!(parse_status("1000").is_err());
    }
}
