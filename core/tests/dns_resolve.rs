//! DNS discovery against a real dnsmasq: A/AAAA/SRV answers, live record changes, and
//! failure classification.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use arena_core::config::{DnsSpec, RecordKind};
use arena_core::discovery::dns::{DnsError, DnsResolver, Resolution};
use arena_testkit::Dnsmasq;

const SVC: &str = "match-api.esports.svc.cluster.local";
const SRV_NAME: &str = "_http._tcp.match-api.esports.svc.cluster.local";
/// Upper bound for any single test step, so a broken server cannot hang the suite.
const STEP: Duration = Duration::from_secs(10);

fn spec(name: &str, record: RecordKind, port: Option<u16>, server: SocketAddr) -> DnsSpec {
    DnsSpec {
        name: name.into(),
        port,
        record,
        resolver: Some(server),
        min_refresh: Duration::from_secs(1),
        max_refresh: Duration::from_secs(30),
        timeout: Duration::from_secs(1),
    }
}

fn addrs(list: &[&str]) -> Vec<SocketAddr> {
    let mut v: Vec<SocketAddr> = list.iter().map(|s| s.parse().unwrap()).collect();
    v.sort();
    v
}

async fn bounded<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, fut)
        .await
        .expect("test step exceeded its time bound")
}

async fn resolve(resolver: &DnsResolver, spec: &DnsSpec) -> Result<Resolution, DnsError> {
    bounded(resolver.resolve(spec)).await
}

/// Resolves until the answer equals `want` (the server reloads asynchronously), ~5s max.
async fn resolve_until(resolver: &DnsResolver, spec: &DnsSpec, want: &[SocketAddr]) {
    let mut last = None;
    for _ in 0..50 {
        let got = resolve(resolver, spec).await;
        if matches!(&got, Ok(r) if r.addrs == want) {
            return;
        }
        last = Some(got);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("answer never became {want:?}; last: {last:?}");
}

#[tokio::test]
async fn a_records_follow_server_changes() {
    let dns = Dnsmasq::start(&[(SVC, "127.0.0.11"), (SVC, "127.0.0.12")], &[]).unwrap();
    let spec = spec(SVC, RecordKind::A, Some(9100), dns.addr());
    let resolver = DnsResolver::new(&spec).unwrap();

    let first = resolve(&resolver, &spec).await.unwrap();
    assert_eq!(first.addrs, addrs(&["127.0.0.11:9100", "127.0.0.12:9100"]));
    // dnsmasq serves local data with local-ttl=1.
    assert_eq!(first.ttl, Duration::from_secs(1));

    dns.set_records(&[(SVC, "127.0.0.12"), (SVC, "127.0.0.13")], &[])
        .unwrap();
    resolve_until(&resolver, &spec, &addrs(&["127.0.0.12:9100", "127.0.0.13:9100"])).await;
}

#[tokio::test]
async fn answers_are_not_cached_for_their_ttl() {
    // A long TTL that hickory would honour if its cache were on; the change must still show
    // up on the next refreshes, and the TTL must be reported untouched.
    let dns = Dnsmasq::start_with_extra(&[(SVC, "127.0.0.11")], &[], &["local-ttl=300"]).unwrap();
    let spec = spec(SVC, RecordKind::A, Some(9100), dns.addr());
    let resolver = DnsResolver::new(&spec).unwrap();

    let first = resolve(&resolver, &spec).await.unwrap();
    assert_eq!(first.addrs, addrs(&["127.0.0.11:9100"]));
    assert_eq!(first.ttl, Duration::from_secs(300));

    dns.set_records(&[(SVC, "127.0.0.14")], &[]).unwrap();
    resolve_until(&resolver, &spec, &addrs(&["127.0.0.14:9100"])).await;
}

#[tokio::test]
async fn aaaa_records_resolve_with_port() {
    let dns = Dnsmasq::start(&[(SVC, "fd00::11"), (SVC, "fd00::12"), (SVC, "127.0.0.11")], &[]).unwrap();
    let spec = spec(SVC, RecordKind::Aaaa, Some(9100), dns.addr());
    let resolver = DnsResolver::new(&spec).unwrap();

    let got = resolve(&resolver, &spec).await.unwrap();
    assert_eq!(got.addrs, addrs(&["[fd00::11]:9100", "[fd00::12]:9100"]));
}

#[tokio::test]
async fn nxdomain_and_empty_answers_are_distinct() {
    let dns = Dnsmasq::start(&[(SVC, "127.0.0.11")], &[]).unwrap();

    let unknown = spec("nope.esports.svc.cluster.local", RecordKind::A, Some(9100), dns.addr());
    let resolver = DnsResolver::new(&unknown).unwrap();
    assert_eq!(resolve(&resolver, &unknown).await, Err(DnsError::NxDomain));

    // The name exists, but only with an A record.
    let no_v6 = spec(SVC, RecordKind::Aaaa, Some(9100), dns.addr());
    let resolver = DnsResolver::new(&no_v6).unwrap();
    let err = resolve(&resolver, &no_v6).await.unwrap_err();
    assert_eq!(err, DnsError::NoRecords);
    assert_eq!(err.kind(), "no_records");
}

#[tokio::test]
async fn srv_records_carry_their_ports_and_follow_changes() {
    let pod_a = "10-0-0-1.match-api.esports.svc.cluster.local";
    let pod_b = "10-0-0-2.match-api.esports.svc.cluster.local";
    let pod_c = "10-0-0-3.match-api.esports.svc.cluster.local";
    let dns = Dnsmasq::start(
        &[],
        &[
            (SRV_NAME, pod_a, 9200, "127.0.0.21"),
            (SRV_NAME, pod_b, 9300, "127.0.0.22"),
        ],
    )
    .unwrap();
    let spec = spec(SRV_NAME, RecordKind::Srv, None, dns.addr());
    let resolver = DnsResolver::new(&spec).unwrap();

    let got = resolve(&resolver, &spec).await.unwrap();
    assert_eq!(got.addrs, addrs(&["127.0.0.21:9200", "127.0.0.22:9300"]));
    assert_eq!(got.ttl, Duration::from_secs(1));

    // SRV data changes restart dnsmasq on the same port; the same resolver keeps working.
    dns.set_records(
        &[],
        &[
            (SRV_NAME, pod_b, 9300, "127.0.0.22"),
            (SRV_NAME, pod_c, 9400, "127.0.0.23"),
        ],
    )
    .unwrap();
    resolve_until(&resolver, &spec, &addrs(&["127.0.0.22:9300", "127.0.0.23:9400"])).await;
}

#[tokio::test]
async fn srv_targets_without_glue_are_looked_up() {
    // dnsmasq sends no additional records for a CNAME target, so the resolver must query
    // the target itself (following the CNAME).
    let dns = Dnsmasq::start_with_extra(
        &[],
        &[],
        &[
            "srv-host=_http._tcp.alias.esports.svc.cluster.local,pod-c.alias.test,9500",
            "cname=pod-c.alias.test,pod-c.real.test",
            "host-record=pod-c.real.test,127.0.0.23",
        ],
    )
    .unwrap();
    let spec = spec(
        "_http._tcp.alias.esports.svc.cluster.local",
        RecordKind::Srv,
        None,
        dns.addr(),
    );
    let resolver = DnsResolver::new(&spec).unwrap();

    let got = resolve(&resolver, &spec).await.unwrap();
    assert_eq!(got.addrs, addrs(&["127.0.0.23:9500"]));
}

#[tokio::test]
async fn unknown_srv_name_is_nxdomain() {
    let dns = Dnsmasq::start(&[(SVC, "127.0.0.11")], &[]).unwrap();
    let spec = spec(SRV_NAME, RecordKind::Srv, None, dns.addr());
    let resolver = DnsResolver::new(&spec).unwrap();
    assert_eq!(resolve(&resolver, &spec).await, Err(DnsError::NxDomain));
}

#[tokio::test]
async fn closed_port_is_a_timeout() {
    let port = {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.local_addr().unwrap().port()
    };
    let mut spec = spec(SVC, RecordKind::A, Some(9100), SocketAddr::from(([127, 0, 0, 1], port)));
    spec.timeout = Duration::from_millis(300);
    let resolver = DnsResolver::new(&spec).unwrap();

    let started = std::time::Instant::now();
    let err = resolve(&resolver, &spec).await.unwrap_err();
    eprintln!("closed port: {err:?} ({}) after {:?}", err.kind(), started.elapsed());
    assert!(
        matches!(err, DnsError::Timeout | DnsError::Io(_)),
        "unexpected error: {err:?}"
    );
}
