//! Unit tests of `admit`.
#![allow(clippy::unwrap_used)]
use super::*;

#[test]
fn header_block_size_counts_names_values_and_request_line() {
    let mut req = RequestHeader::build("GET", b"/v1/matches", None).unwrap();
    let base = header_bytes(&req);
    req.insert_header("x-big", "a".repeat(100)).unwrap();
    assert_eq!(header_bytes(&req), base + "x-big".len() + 100 + 4);
}

#[test]
fn head_and_body_limits() {
    assert!(check_head(100, 100).is_ok());
    assert_eq!(check_head(101, 100), Err(GatewayError::HeadersTooLarge { limit: 100 }));
    let b = body(Some(0), 1000, 10).unwrap();
    assert!(b.empty && !b.too_big_to_replay);
    assert!(
        body(None, 1000, 10).is_ok_and(|b| !b.empty),
        "chunked: not known to be empty"
    );
    assert!(body(Some(11), 1000, 10).unwrap().too_big_to_replay);
    assert_eq!(
        body(Some(1001), 1000, 10).unwrap_err(),
        GatewayError::BodyTooLarge { limit: 1000 }
    );
    // Chunks count even when the declared length lied or was absent.
    let mut b = body(None, 20, 10).unwrap();
    body_chunk(&mut b, 8, 20, 10).unwrap();
    assert!(!b.too_big_to_replay);
    body_chunk(&mut b, 8, 20, 10).unwrap();
    assert!(b.too_big_to_replay);
    assert_eq!(
        body_chunk(&mut b, 8, 20, 10),
        Err(GatewayError::BodyTooLarge { limit: 20 })
    );
}

#[test]
fn first_matching_route_in_file_order() {
    let snap = crate::proxy::testing::snapshot(
        "clusters: [{ name: c, endpoints: [\"127.0.0.11:9100\"], max_in_flight: 1 }]\nroutes:\n  - { name: live, match: { path_prefix: /v1/matches, host: api.arena.gg }, cluster: c }\n  - { name: all, match: {}, cluster: c }\n",
    );
    let req = |host: &str, path: &str| {
        let mut r = RequestHeader::build("GET", path.as_bytes(), None).unwrap();
        r.insert_header("host", host).unwrap();
        r
    };
    let name = |r: &RequestHeader| find_route(&snap, r).map(|r| r.spec.name.clone());
    assert_eq!(name(&req("api.arena.gg:443", "/v1/matches/7")).as_deref(), Some("live"));
    assert_eq!(name(&req("other", "/v1/matches/7")).as_deref(), Some("all"));
    let route = find_route(&snap, &req("x", "/")).unwrap();
    assert!(circuit(&route.cluster).is_ok());
    let held = route.cluster.start(&route.cluster.endpoints().active[0].clone());
    assert!(matches!(circuit(&route.cluster), Err(GatewayError::CircuitOpen { .. })));
    drop(held);
}

#[test]
fn client_internal_headers_are_dropped_and_the_rest_kept() {
    let mut req = RequestHeader::build("GET", b"/", None).unwrap();
    req.insert_header("X-Arena-Backend", "10.0.0.1:80").unwrap();
    req.append_header("x-arena-route", "a").unwrap();
    req.append_header("x-arena-route", "b").unwrap();
    req.insert_header("x-tenant", "douyu").unwrap();
    req.insert_header("x-arenas", "not ours").unwrap();
    internal_headers(&mut req);
    let mut names: Vec<&str> = req.headers.keys().map(|k| k.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["x-arenas", "x-tenant"]);
    let mut wire = Vec::new();
    req.header_to_h1_wire(&mut wire);
    assert!(!String::from_utf8_lossy(&wire).to_lowercase().contains("x-arena-"));
}
