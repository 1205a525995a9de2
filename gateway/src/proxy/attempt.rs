//! The try engine: one try of a request on one pod, the same for pingora's proxy loop and for
//! hedged tries — pick the pod and take its in-flight slot ([`start`]), build the peer with the
//! try's timeouts ([`peer`]), the request headers the pod gets ([`forwarding_headers`],
//! [`upstream_request`]), and record how it ended ([`answered`], [`failed`]): latency, the
//! pod's load report, outlier state.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use arena_core::balance::report;
use http::{HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::Result;
use rand::Rng;
use tokio::time::Instant;

use super::classify::Fault;
use super::ctx::{RequestId, Routed, Try};
use super::error::GatewayError;
use super::peer_tls::PeerTls;
use super::X_REQUEST_ID;
use crate::config::{ClusterSpec, RetryOn};

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Starts the next try of `routed`: the circuit and the deadline allow it, a pod is picked
/// (one not tried yet; with `revisit`, a tried one when all were — a sequential retry may go
/// back, a hedge never races a pod against itself) and its slot taken. Returns the try and
/// its timeout (the per-try timeout, never past the route's deadline).
pub fn start<R: Rng>(
    routed: &mut Routed,
    revisit: bool,
    now: Instant,
    rng: &mut R,
) -> Result<(Try, Duration), GatewayError> {
    let remaining = routed.remaining(now);
    if remaining.is_zero() {
        return Err(GatewayError::UpstreamTimeout {
            pod: routed.tries.last_pod(),
        });
    }
    let version = routed.try_version();
    let cluster = routed.cluster_of(version);
    if cluster.circuit_open() {
        return Err(GatewayError::CircuitOpen {
            cluster: cluster.name().to_string(),
        });
    }
    let tried = &routed.tries.tried;
    let key = routed.target.hash_key.as_deref();
    let picked = cluster.pick(key, |e| !tried.contains(&e.addr), rng).or_else(|| {
        (revisit && !tried.is_empty())
            .then(|| cluster.pick(key, |_| true, rng))
            .flatten()
    });
    let Some(endpoint) = picked else {
        return Err(GatewayError::NoEndpoints {
            cluster: cluster.name().to_string(),
        });
    };
    // The breaker's slot is taken with the try (a compare-and-swap): the check above only
    // spares the pick when the cluster is plainly full.
    let Some(slot) = cluster.try_start_at(&endpoint, now) else {
        return Err(GatewayError::CircuitOpen {
            cluster: cluster.name().to_string(),
        });
    };
    let per_try = cluster.spec.per_try_timeout.map_or(remaining, |p| p.min(remaining));
    let tries = &mut routed.tries;
    tries.count += 1;
    tries.last = tries.tried.len() as u32;
    tries.tried.push(endpoint.addr);
    Ok((Try { slot, version }, per_try))
}

/// The pingora peer of a try, with its timeouts. Each timeout is a timer armed on every read
/// or write, so only those that matter are set: no write timeout for a bodyless request.
pub fn peer(spec: &ClusterSpec, pod: SocketAddr, per_try: Duration, bodyless: bool, tls: Option<&PeerTls>) -> HttpPeer {
    let mut peer = match tls {
        // Never an empty SNI with TLS: pingora would then skip verification altogether.
        Some(t) => {
            let mut p = HttpPeer::new(pod, true, t.server_name.clone());
            t.apply(&mut p);
            p
        }
        None => HttpPeer::new(pod, false, String::new()),
    };
    let opts = &mut peer.options;
    opts.connection_timeout = Some(spec.connect_timeout.min(per_try));
    opts.total_connection_timeout = Some(spec.connect_timeout.min(per_try));
    opts.read_timeout = Some(per_try);
    if !bodyless {
        opts.write_timeout = Some(per_try);
    }
    opts.idle_timeout = spec.idle_timeout;
    // Header names in their canonical case, one header map per answer (vendor/README.md,
    // patch 2): HTTP/1.1 names are case-insensitive, and Envoy normalises them too.
    opts.normalize_header_case = true;
    peer
}

/// The pod's answer head arrived in `resp`: its load report is taken off the header
/// (internal: never passed to clients) and the try recorded — a 5xx ends it as the pod's
/// failure; anything else feeds the balancer (latency to the answer, the report, the route's
/// hedge percentile) and the try goes on until the body ends (returned: the caller keeps it,
/// so a reset mid-body still counts against the pod). An answer marked `x-arena-overloaded`
/// (the pod shed the request unprocessed) ends the try as busy, not failed. Returns the status,
/// how the try failed if it did (`Status5xx` or `Overloaded`), and the open try.
pub fn answered(routed: &Routed, t: Option<Try>, resp: &mut ResponseHeader) -> (u16, Option<RetryOn>, Option<Try>) {
    let load = match resp.headers.get(&report::HEADER_NAME) {
        Some(v) => {
            let r = report::parse(v.as_bytes());
            resp.remove_header(&report::HEADER_NAME);
            r
        }
        None => None,
    };
    let status = resp.status.as_u16();
    // Only a 503 can be a shed answer: a good answer pays no extra header lookup.
    let shed = status == 503 && resp.remove_header(&report::OVERLOADED_NAME).is_some();
    let failed = shed || resp.status.is_server_error();
    let cause = match (shed, failed) {
        (true, _) => Some(RetryOn::Overloaded),
        (false, true) => Some(RetryOn::Status5xx),
        _ => None,
    };
    let Some(mut t) = t else {
        return (status, cause, None);
    };
    if shed {
        // Full, not broken: busy for the balancer, health untouched, no analysis sample.
        shed_try(routed, t, load);
        return (status, cause, None);
    }
    let cluster = routed.cluster_of(t.version);
    release_outcome(routed, &t, failed);
    if failed {
        cluster.finish(t.slot, false, load);
        return (status, cause, None);
    }
    if let Some(w) = &routed.route.latency {
        w.record(t.started().elapsed());
    }
    cluster.answered(&mut t.slot, load);
    (status, None, Some(t))
}

/// The pod shed try `t` unprocessed (a hedged try's `x-arena-overloaded` answer): busy, not
/// failed, no analysis sample.
pub fn shed_try(routed: &Routed, t: Try, load: Option<report::LoadReport>) {
    routed.cluster_of(t.version).shed(t.slot, load);
}

/// The try ended with `fault`: the pod's failure when it is to blame, else (the client went
/// away, the gateway failed) only its slot is released.
pub fn failed(routed: &Routed, t: Try, fault: &Fault) {
    if fault.counts_against_pod() {
        release_outcome(routed, &t, true);
        routed.cluster_of(t.version).finish(t.slot, false, None);
    }
}

/// A try that was still waiting when another one won a hedged race: it was slower than a
/// whole request elsewhere, which is how a stuck pod gets ejected even though hedging hides it.
pub fn lost_to_a_faster_pod(routed: &Routed, t: Try) {
    release_outcome(routed, &t, true);
    routed.cluster_of(t.version).finish(t.slot, false, None);
}

/// Feeds the release's analysis window of the try's version: every try counts, so a canary
/// failure hidden from the client by a retry on stable is still the canary's.
fn release_outcome(routed: &Routed, t: &Try, failed: bool) {
    if let (Some(r), Some(v)) = (&routed.route.release, t.version) {
        let now = Instant::now();
        r.release
            .record(v, now, now.saturating_duration_since(t.started()), failed);
    }
}

/// Adds the headers the gateway sets on every request to a pod: the request id (unless it is
/// the client's own, already in the copied request) and the client in `x-forwarded-for`.
pub fn forwarding_headers(upstream: &mut RequestHeader, id: &RequestId, client_ip: Option<IpAddr>) -> Result<()> {
    // `HeaderName` constants: the requests the gateway forwards keep no header case (pingora
    // patch 2), so the name goes into the map as is (patch 6) — a `&str` name would be parsed
    // and, not being a standard one, allocated again on every request.
    if !id.from_client {
        upstream.insert_header(&X_REQUEST_ID, id.value.clone())?;
    }
    if let Some(ip) = client_ip {
        let xff = match upstream.headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
            Some(prev) => HeaderValue::from_str(&format!("{prev}, {ip}")).ok(),
            None => ip_header_value(ip),
        };
        if let Some(xff) = xff {
            upstream.insert_header(&X_FORWARDED_FOR, xff)?;
        }
    }
    Ok(())
}

/// The request a try sends when the gateway drives it itself (hedged tries): the client's
/// request as HTTP/1.1 with a `Host`, hop-by-hop headers removed as pingora's proxy loop does
/// for its own tries (RFC 9110 §7.6.1, and whatever `Connection` nominates), plus the
/// forwarding headers.
pub fn upstream_request(client: &RequestHeader, id: &RequestId, client_ip: Option<IpAddr>) -> Result<RequestHeader> {
    let mut req = client.clone();
    req.set_version(http::Version::HTTP_11);
    strip_hop_by_hop(&mut req);
    if !req.headers.contains_key(http::header::HOST) {
        if let Some(a) = req.uri.authority().map(|a| a.as_str().to_string()) {
            req.insert_header(http::header::HOST, a)?;
        }
    }
    forwarding_headers(&mut req, id, client_ip)?;
    Ok(req)
}

/// Headers meaningful for one connection only; never forwarded.
const HOP_BY_HOP: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "http2-settings",
];

/// Names a forwarding proxy must keep even if `Connection` nominates them.
const PROTECTED: [&str; 4] = ["host", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto"];

fn strip_hop_by_hop(req: &mut RequestHeader) {
    let nominated: Vec<HeaderName> = req
        .headers
        .get_all(http::header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .filter_map(|t| HeaderName::from_bytes(t).ok())
        .filter(|n| !PROTECTED.contains(&n.as_str()))
        .take(16)
        .collect();
    for name in &nominated {
        req.remove_header(name);
    }
    for name in HOP_BY_HOP {
        req.remove_header(name);
    }
}

/// Decimal text of every octet, built at compile time: an IPv4 address is four copies.
const OCTETS: [([u8; 3], u8); 256] = {
    let mut t = [([0u8; 3], 0u8); 256];
    let mut i = 0;
    while i < 256 {
        let o = i as u8;
        t[i] = if o >= 100 {
            ([b'0' + o / 100, b'0' + (o / 10) % 10, b'0' + o % 10], 3)
        } else if o >= 10 {
            ([b'0' + o / 10, b'0' + o % 10, 0], 2)
        } else {
            ([b'0' + o, 0, 0], 1)
        };
        i += 1;
    }
    t
};

/// The client's IP as a header value; IPv4 (the common case, hot path) from the octet table.
pub fn ip_header_value(ip: IpAddr) -> Option<HeaderValue> {
    match ip {
        IpAddr::V4(v4) => {
            let mut buf = [0u8; 15];
            let mut n = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf[n] = b'.';
                    n += 1;
                }
                let (digits, len) = &OCTETS[octet as usize];
                let len = *len as usize;
                buf[n..n + len].copy_from_slice(&digits[..len]);
                n += len;
            }
            HeaderValue::from_bytes(&buf[..n]).ok()
        }
        IpAddr::V6(_) => HeaderValue::from_str(&ip.to_string()).ok(),
    }
}

#[cfg(test)]
#[path = "attempt_tests.rs"]
mod tests;
