//! Unit tests of `attempt`.
#![allow(clippy::unwrap_used)]
use super::*;

#[test]
fn client_ip_header_values() {
    for ip in ["1.2.3.4", "127.0.0.1", "255.255.255.255", "10.0.100.9", "0.0.0.0"] {
        let v = ip_header_value(ip.parse().unwrap()).unwrap();
        assert_eq!(v, ip);
    }
    assert_eq!(ip_header_value("::1".parse().unwrap()).unwrap(), "::1");
}

use crate::proxy::ctx::{RequestId, Routed};
use crate::proxy::split::Target;
use rand::rngs::SmallRng;
use rand::SeedableRng;

#[test]
fn hedged_requests_lose_hop_by_hop_headers_like_proxied_ones() {
    let mut client = RequestHeader::build("GET", b"/v1/matches", None).unwrap();
    for (k, v) in [
        ("host", "api.arena.gg"),
        ("connection", "keep-alive, x-secret-hop, x-forwarded-for"),
        ("keep-alive", "timeout=5"),
        ("te", "trailers"),
        ("upgrade", "h2c"),
        ("x-secret-hop", "1"),
        ("x-forwarded-for", "10.0.0.1"),
        ("x-tenant", "douyu"),
    ] {
        client.insert_header(k, v).unwrap();
    }
    let id = RequestId {
        value: HeaderValue::from_static("abc"),
        from_client: false,
    };
    let up = upstream_request(&client, &id, Some("1.2.3.4".parse().unwrap())).unwrap();
    for gone in ["connection", "keep-alive", "te", "upgrade", "x-secret-hop"] {
        assert!(up.headers.get(gone).is_none(), "{gone} was forwarded");
    }
    // A `Connection` nomination cannot strip what the gateway must forward.
    assert_eq!(up.headers.get("x-forwarded-for").unwrap(), "10.0.0.1, 1.2.3.4");
    assert_eq!(up.headers.get("x-tenant").unwrap(), "douyu");
    assert_eq!(up.headers.get("host").unwrap(), "api.arena.gg");
    assert_eq!(up.headers.get("x-request-id").unwrap(), "abc");
}

#[tokio::test(start_paused = true)]
async fn tries_go_to_untried_pods_and_only_retries_go_back() {
    let snap = crate::proxy::testing::snapshot(
        "clusters: [{ name: c, endpoints: [\"127.0.0.11:9100\", \"127.0.0.12:9100\"], per_try_timeout: 300ms }]\nroutes: [{ name: r, match: {}, cluster: c, timeout: 1s }]\n",
    );
    let route = crate::proxy::testing::route(&snap, "r");
    let mut routed = Routed::new(route, Target::default(), Instant::now());
    let mut rng = SmallRng::seed_from_u64(5);
    let (a, per_try) = start(&mut routed, false, Instant::now(), &mut rng).unwrap();
    assert_eq!(per_try, Duration::from_millis(300), "the per-try timeout");
    let (b, _) = start(&mut routed, false, Instant::now(), &mut rng).unwrap();
    assert_ne!(a.pod(), b.pod());
    assert_eq!(routed.tries.count, 2);
    assert_eq!(routed.tries.last_pod(), Some(b.pod()));
    assert_eq!(routed.cluster().in_flight(), 2);
    // Every pod tried: a hedge has nowhere to go, a sequential retry may go back.
    assert!(matches!(
        start(&mut routed, false, Instant::now(), &mut rng),
        Err(GatewayError::NoEndpoints { .. })
    ));
    drop((a, b));
    assert_eq!(routed.cluster().in_flight(), 0, "dropped tries release their slots");
    let (c, _) = start(&mut routed, true, Instant::now(), &mut rng).unwrap();
    // Near the deadline the try's timeout shrinks to what is left.
    tokio::time::advance(Duration::from_millis(900)).await;
    drop(c);
    let (_d, per_try) = start(&mut routed, true, Instant::now(), &mut rng).unwrap();
    assert_eq!(per_try, Duration::from_millis(100));
    tokio::time::advance(Duration::from_millis(200)).await;
    assert!(matches!(
        start(&mut routed, true, Instant::now(), &mut rng),
        Err(GatewayError::UpstreamTimeout { .. })
    ));
}
