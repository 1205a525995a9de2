//! Unit tests of `dns`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn spec(min: u64, max: u64) -> DnsSpec {
    DnsSpec {
        name: "match-api.esports.svc.cluster.local".into(),
        port: Some(9100),
        record: RecordKind::A,
        resolver: Some("127.0.0.1:53".parse().unwrap()),
        min_refresh: Duration::from_secs(min),
        max_refresh: Duration::from_secs(max),
        timeout: Duration::from_secs(1),
    }
}

#[test]
fn refresh_uses_ttl_within_bounds() {
    let s = spec(5, 60);
    assert_eq!(next_refresh(&s, Ok(Duration::from_secs(30))), Duration::from_secs(30));
}

#[test]
fn refresh_clamps_short_ttl_up() {
    let s = spec(5, 60);
    assert_eq!(next_refresh(&s, Ok(Duration::ZERO)), Duration::from_secs(5));
    assert_eq!(next_refresh(&s, Ok(Duration::from_secs(1))), Duration::from_secs(5));
}

#[test]
fn refresh_clamps_long_ttl_down() {
    let s = spec(5, 60);
    assert_eq!(
        next_refresh(&s, Ok(Duration::from_secs(86_400))),
        Duration::from_secs(60)
    );
}

#[test]
fn refresh_after_failure_is_min() {
    let s = spec(5, 60);
    assert_eq!(next_refresh(&s, Err(())), Duration::from_secs(5));
}

#[test]
fn refresh_with_inverted_bounds_does_not_panic() {
    let s = spec(60, 5);
    assert_eq!(next_refresh(&s, Ok(Duration::from_secs(30))), Duration::from_secs(5));
}

#[test]
fn kinds_are_stable_labels() {
    let all = [
        (DnsError::Timeout, "timeout"),
        (DnsError::NxDomain, "nxdomain"),
        (DnsError::NoRecords, "no_records"),
        (DnsError::ServFail("SERVFAIL".into()), "servfail"),
        (DnsError::Io("x".into()), "io"),
        (DnsError::Config("x".into()), "config"),
    ];
    for (err, kind) in all {
        assert_eq!(err.kind(), kind);
        assert!(!err.to_string().is_empty());
    }
}

#[test]
fn classifies_hickory_errors() {
    use hickory_resolver::net::NoRecords;
    use hickory_resolver::proto::op::Query;

    let nx = NoRecords::new(Query::new(), ResponseCode::NXDomain);
    assert_eq!(classify(NetError::from(nx)), DnsError::NxDomain);
    let empty = NoRecords::new(Query::new(), ResponseCode::NoError);
    assert_eq!(classify(NetError::from(empty)), DnsError::NoRecords);
    assert_eq!(classify(NetError::Timeout), DnsError::Timeout);
    assert_eq!(
        classify(NetError::Dns(ProtoDnsError::ResponseCode(ResponseCode::ServFail))),
        DnsError::ServFail("SERVFAIL".into())
    );
}

#[test]
fn finish_sorts_dedups_and_rejects_empty() {
    let a: SocketAddr = "127.0.0.12:1".parse().unwrap();
    let b: SocketAddr = "127.0.0.11:1".parse().unwrap();
    let r = finish(vec![a, b, a], 7).unwrap();
    assert_eq!(r.addrs, vec![b, a]);
    assert_eq!(r.ttl, Duration::from_secs(7));
    assert_eq!(finish(vec![], 7), Err(DnsError::NoRecords));
}

#[test]
fn zero_timeout_is_a_config_error() {
    let mut s = spec(5, 60);
    s.timeout = Duration::ZERO;
    assert!(matches!(DnsResolver::new(&s), Err(DnsError::Config(_))));
}

#[tokio::test]
async fn a_record_needs_a_port() {
    let mut s = spec(5, 60);
    s.port = None;
    let resolver = DnsResolver::new(&s).unwrap();
    assert!(matches!(resolver.resolve(&s).await, Err(DnsError::Config(_))));
}
