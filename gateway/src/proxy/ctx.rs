//! The per-request context, by phase: what every request has from the start ([`RequestCtx`]),
//! what exists once a route matched ([`Routed`]: route, target, deadline, body, tries) and how
//! the request ended ([`Outcome`]). A stage that needs a route takes a `Routed`; there is no
//! "cannot be None here".

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use arena_core::balance::InFlight;
use arena_core::cluster::Cluster;
use arena_core::release::Version;
use http::HeaderValue;
use smallvec::SmallVec;
use tokio::time::Instant;

use super::error::GatewayError;
use super::split::Target;
use crate::config::RetryOn;
use crate::route::Route;
use crate::state::Snapshot;

/// Per-request state shared across the proxy phases.
pub struct RequestCtx {
    pub started: Instant,
    pub id: RequestId,
    pub client_ip: Option<IpAddr>,
    /// The configuration this request runs under, start to end (a reload does not change it).
    pub snapshot: Arc<Snapshot>,
    /// Set by the admit stage once a route matched.
    pub routed: Option<Routed>,
    pub outcome: Outcome,
    /// The request's trace, when tracing is on (boxed: most requests of a traced gateway
    /// carry one, an untraced gateway pays one pointer).
    pub trace: Option<Box<super::trace::RequestTrace>>,
}

impl RequestCtx {
    pub fn new(snapshot: Arc<Snapshot>) -> Self {
        RequestCtx {
            started: Instant::now(),
            id: RequestId {
                value: HeaderValue::from_static(""),
                from_client: false,
            },
            client_ip: None,
            snapshot,
            routed: None,
            outcome: Outcome::default(),
            trace: None,
        }
    }

    /// The request id as text (ids are checked to be visible ASCII).
    pub fn rid(&self) -> &str {
        self.id.value.to_str().unwrap_or_default()
    }

    /// The route's name, once routed.
    pub fn route_name(&self) -> Option<&str> {
        self.routed.as_ref().map(|r| r.route.spec.name.as_str())
    }

    /// Pods tried so far.
    pub fn attempts(&self) -> u32 {
        self.routed.as_ref().map_or(0, |r| r.tries.count)
    }

    /// The pod tried last (or, hedged, the one that answered).
    pub fn last_pod(&self) -> Option<SocketAddr> {
        self.routed.as_ref().and_then(|r| r.tries.last_pod())
    }

    /// The route's release and the version that answered, for a split request.
    pub fn release_version(&self) -> Option<(&str, Version)> {
        let r = self.routed.as_ref()?;
        Some((r.route.release.as_ref()?.release.name(), r.served_version()?))
    }

    /// Whether answers carry the `x-arena-*` debug headers.
    pub fn debug(&self) -> bool {
        self.snapshot.config.debug_headers
    }
}

/// `x-request-id`: the client's when it sent a sane one, else minted; kept as a header value
/// and cloned (a refcount) wherever it is needed.
pub struct RequestId {
    pub value: HeaderValue,
    /// The client sent this id itself (so the answer echoes it).
    pub from_client: bool,
}

/// A request that matched a route.
pub struct Routed {
    pub route: Arc<Route>,
    /// Where the split stage sends it.
    pub target: Target,
    /// The route's total deadline: every try and backoff fits before it.
    pub deadline: Instant,
    pub body: BodyState,
    pub tries: Tries,
}

impl Routed {
    pub fn new(route: Arc<Route>, target: Target, started: Instant) -> Self {
        Routed {
            deadline: started + route.spec.timeout,
            route,
            target,
            body: BodyState::default(),
            tries: Tries::default(),
        }
    }

    /// The version the request was split to (`None`: the route has no release).
    pub fn version(&self) -> Option<Version> {
        self.target.split.map(|s| s.version)
    }

    /// The version try number `index` (from 0) goes to: the split's — except that with
    /// `retry_on_stable` every try after a canary's first goes to stable (a retry follows a
    /// failure, so a failed canary try is retried on a stable pod).
    pub fn version_of_try(&self, index: u32) -> Option<Version> {
        let v = self.version()?;
        let on_stable = v == Version::Canary
            && index > 0
            && self
                .route
                .release
                .as_ref()
                .is_some_and(|r| r.release.spec().retry_on_stable);
        Some(if on_stable { Version::Stable } else { v })
    }

    /// The version the next try goes to.
    pub fn try_version(&self) -> Option<Version> {
        self.version_of_try(self.tries.count)
    }

    /// The version of the try that answered (or was tried last).
    pub fn served_version(&self) -> Option<Version> {
        self.version_of_try(self.tries.last)
    }

    /// The cluster the next try goes to.
    pub fn cluster(&self) -> &Arc<Cluster> {
        self.cluster_of(self.try_version())
    }

    /// TLS to the pods of the cluster the try in progress goes to.
    pub fn peer_tls(&self) -> Option<&super::peer_tls::PeerTls> {
        match (self.try_version(), &self.route.release) {
            (Some(Version::Canary), Some(r)) => r.canary_tls.as_deref(),
            _ => self.route.tls.as_deref(),
        }
    }

    /// The cluster serving `version` of this route (its own for stable or no release).
    pub fn cluster_of(&self, version: Option<Version>) -> &Arc<Cluster> {
        match (version, &self.route.release) {
            (Some(Version::Canary), Some(r)) => &r.canary,
            _ => &self.route.cluster,
        }
    }

    /// Time left before the deadline.
    pub fn remaining(&self, now: Instant) -> Duration {
        self.deadline.saturating_duration_since(now)
    }
}

/// What is known about the request body.
#[derive(Debug, Clone, Copy)]
pub struct BodyState {
    /// Bytes read so far.
    pub bytes: usize,
    /// The request has no body (no write timeout needed, hedging possible).
    pub empty: bool,
    /// The body did not fit the replay buffer: no retry, no fallback replay.
    pub too_big_to_replay: bool,
}

impl Default for BodyState {
    fn default() -> Self {
        BodyState {
            bytes: 0,
            empty: true,
            too_big_to_replay: false,
        }
    }
}

/// The tries of a request: how many, on which pods, and (through pingora's proxy loop) the
/// one in flight — hedged requests keep their tries in flight in the hedge stage. Kept small:
/// the context moves with every request future.
#[derive(Default)]
pub struct Tries {
    pub count: u32,
    /// Index in `tried` of the pod that answered, or else was tried last.
    pub last: u32,
    /// Pods tried so far, in order (inline: no allocation for the usual one to three tries).
    pub tried: SmallVec<[SocketAddr; 2]>,
    pub current: Option<Try>,
}

impl Tries {
    /// The pod that answered, or else was tried last.
    pub fn last_pod(&self) -> Option<SocketAddr> {
        self.tried.get(self.last as usize).copied()
    }
}

/// A try in flight: the in-flight slot it holds on its pod (dropping it releases the slot
/// unrecorded). Started and ended only by the try engine (`attempt`).
#[derive(Debug)]
pub struct Try {
    pub(super) slot: InFlight,
    /// The release version whose cluster this try went to.
    pub(super) version: Option<Version>,
}

impl Try {
    pub fn started(&self) -> Instant {
        self.slot.started()
    }

    pub fn pod(&self) -> SocketAddr {
        self.slot.endpoint().addr
    }
}

/// How the request ended, for the answer, the metrics and the access log.
#[derive(Default)]
pub struct Outcome {
    /// Boxed: rare, and the context moves with every request future.
    pub error: Option<Box<GatewayError>>,
    /// Name of the function that answered, when one did.
    pub served_by: Option<Box<str>>,
    /// The answer is written from pingora's failure path, after which pingora closes the
    /// client connection whatever we say: tell the client so it does not reuse it.
    pub closing: bool,
    /// How the last try failed (a replay on the function must know whether the pod saw it).
    pub last_cause: Option<RetryOn>,
}
