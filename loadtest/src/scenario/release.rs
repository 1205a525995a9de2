//! The `release:` section: a grey release of the target gateway to follow while the load runs
//! (its state and weight polled from the admin API) and, with `users:`, the request header
//! whose value identifies a user, so the tester can follow each user's version.

use std::net::SocketAddr;
use std::time::Duration;

use http::HeaderName;
use serde::Serialize;

/// Poll interval unless `poll:` says otherwise (the gateway judges every 100 ms).
pub const DEFAULT_POLL: Duration = Duration::from_millis(100);
/// Bounds of `poll:`.
pub const MIN_POLL: Duration = Duration::from_millis(10);
pub const MAX_POLL: Duration = Duration::from_secs(10);

/// Which header carries the user id, and how many ids there can be (`0..ids`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserIds {
    #[serde(serialize_with = "header_name")]
    pub header: HeaderName,
    /// One more than the largest id the requests can send.
    pub ids: u32,
}

fn header_name<S: serde::Serializer>(h: &HeaderName, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(h.as_str())
}

/// A validated `release:` section.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReleaseWatch {
    /// The release's name in the gateway (`GET /releases/NAME`).
    pub name: String,
    #[serde(with = "super::human")]
    pub poll: Duration,
    pub users: Option<UserIds>,
    /// The gateway's admin address; `None`: the fleet's gateway.
    pub admin: Option<SocketAddr>,
    /// Environment variable holding the admin bearer token; `None`: the fleet's token (or none).
    pub token_env: Option<String>,
}
