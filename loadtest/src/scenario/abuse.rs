//! The `abuse:` section: connections the tester itself opens to hold the target's client
//! resources (slowloris heads, idle keep-alive crowds, trickled bodies) while the measured
//! traffic runs, each element from `start` to `stop`.

use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How an abusive connection misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AbuseKind {
    /// Sends a request line, then header bytes one at a time; the head never ends.
    SlowHeaders,
    /// Sends one request, reads the answer, then sits idle on the keep-alive connection.
    IdleKeepalive,
    /// Sends a whole head announcing a body, then the body one byte at a time.
    SlowBody,
}

impl AbuseKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AbuseKind::SlowHeaders => "slow_headers",
            AbuseKind::IdleKeepalive => "idle_keepalive",
            AbuseKind::SlowBody => "slow_body",
        }
    }

    /// Whether the kind trickles bytes (and so has a `byte_every`).
    pub fn trickles(self) -> bool {
        self != AbuseKind::IdleKeepalive
    }
}

/// One validated element of `abuse:`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AbuseSpec {
    pub kind: AbuseKind,
    /// Connections held open at once (each one re-opened when the target closes it).
    pub connections: usize,
    /// Pause between two trickled bytes (`None` for `idle_keepalive`).
    #[serde(with = "human_opt")]
    pub byte_every: Option<Duration>,
    /// Source addresses, one per connection in turn; empty: the system picks.
    #[serde(skip)]
    pub sources: Vec<IpAddr>,
    /// `from:` as written (for reports).
    pub from: Option<String>,
    /// Offset from the start of the load.
    #[serde(with = "super::human")]
    pub start: Duration,
    /// Offset from the start of the load; `None`: until the load ends.
    #[serde(with = "human_opt")]
    pub stop: Option<Duration>,
    /// Path of the request (`slow_body`, `idle_keepalive`) or request line (`slow_headers`).
    pub path: String,
    /// Marker text in reports.
    pub label: String,
}

impl AbuseSpec {
    /// `[start, stop)` for a load of `total`, the stop defaulting to (and capped at) the end.
    pub fn span(&self, total: Duration) -> (Duration, Duration) {
        let stop = self.stop.unwrap_or(total).min(total);
        (self.start.min(stop), stop)
    }
}

/// Largest number of addresses a `from:` range may span.
pub const MAX_SOURCES: usize = 65_536;

/// Parses `from:`: an address, a range `A-B` (same family, A ≤ B), or a comma-separated list of
/// those; the error is a message and a hint.
pub fn parse_sources(text: &str) -> Result<Vec<IpAddr>, (String, String)> {
    let hint =
        || "write an address (127.0.0.2), a range (127.0.0.2-127.0.0.9) or a comma-separated list of those".to_string();
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let parse = |s: &str| {
            s.trim()
                .parse::<IpAddr>()
                .map_err(|_| (format!("bad source address `{}`", s.trim()), hint()))
        };
        let (a, b) = (parse(a)?, parse(b)?);
        let range: Vec<IpAddr> = match (a, b) {
            (IpAddr::V4(x), IpAddr::V4(y)) if x <= y => span(u32::from(x).into(), u32::from(y).into(), |n| {
                IpAddr::from(std::net::Ipv4Addr::from(n as u32))
            }),
            (IpAddr::V6(x), IpAddr::V6(y)) if x <= y => span(u128::from(x), u128::from(y), |n| {
                IpAddr::from(std::net::Ipv6Addr::from(n))
            }),
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                return Err((
                    format!("source range `{part}` runs backwards"),
                    "write the lower address first".into(),
                ))
            }
            _ => return Err((format!("source range `{part}` mixes IPv4 and IPv6"), hint())),
        };
        out.extend(range);
        if out.len() > MAX_SOURCES {
            return Err((
                format!("`from` spans more than {MAX_SOURCES} addresses"),
                "a few addresses per per-client cap to exercise are enough".into(),
            ));
        }
    }
    if out.iter().any(|a| a.is_ipv4() != out[0].is_ipv4()) {
        return Err(("`from` mixes IPv4 and IPv6 addresses".into(), hint()));
    }
    Ok(out)
}

/// Addresses `lo..=hi`, at most one more than [`MAX_SOURCES`] (the caller reports the excess).
fn span(lo: u128, hi: u128, make: impl Fn(u128) -> IpAddr) -> Vec<IpAddr> {
    let n = (hi - lo).min(MAX_SOURCES as u128);
    (0..=n).map(|i| make(lo + i)).collect()
}

/// Human durations for optional fields (`null` when absent).
mod human_opt {
    use std::time::Duration;

    use serde::Serializer;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.collect_str(&humantime::format_duration(*d)),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn sources_as_addresses_ranges_and_lists() {
        let v = parse_sources("127.0.0.2-127.0.0.4, 127.0.0.9").unwrap();
        let text: Vec<String> = v.iter().map(ToString::to_string).collect();
        assert_eq!(text, ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.9"]);
        assert_eq!(parse_sources("::1").unwrap().len(), 1);
        assert_eq!(parse_sources("fd00::1-fd00::3").unwrap().len(), 3);
        assert!(parse_sources("127.0.0.9-127.0.0.2")
            .unwrap_err()
            .0
            .contains("backwards"));
        assert!(parse_sources("127.0.0.1-::1").unwrap_err().0.contains("mixes"));
        assert!(parse_sources("127.0.0.1, ::1").unwrap_err().0.contains("mixes"));
        assert!(parse_sources("127.0.0.x").unwrap_err().0.contains("bad source address"));
        assert!(parse_sources("10.0.0.0-10.255.255.255")
            .unwrap_err()
            .0
            .contains("more than"));
        assert!(parse_sources("::-ffff::").is_err());
    }
}
