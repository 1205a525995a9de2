//! Property tests of `dns`: any SRV answer (records and glue of any kind, names, ports and
//! TTLs) gives a pod set or `NoRecords`, never a panic, and every pod comes from the answer.
#![allow(clippy::unwrap_used)]

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_resolver::proto::rr::rdata::{A, AAAA, CNAME, SRV, TXT};
use proptest::prelude::*;

use super::*;

/// A few names, so targets, glue and answers refer to each other; the root means "no service".
fn name() -> impl Strategy<Value = Name> {
    prop_oneof![
        Just("pod-0.svc.cluster.local."),
        Just("pod-1.svc.cluster.local."),
        Just("POD-1.svc.cluster.local."),
        Just("other.example."),
        Just("."),
    ]
    .prop_map(|n| Name::from_ascii(n).unwrap())
}

fn rdata() -> impl Strategy<Value = RData> {
    prop_oneof![
        4 => (any::<u16>(), any::<u16>(), any::<u16>(), name()).prop_map(|(p, w, port, t)| RData::SRV(SRV::new(p, w, port, t))),
        2 => any::<u32>().prop_map(|ip| RData::A(A(Ipv4Addr::from(ip)))),
        2 => any::<u128>().prop_map(|ip| RData::AAAA(AAAA(Ipv6Addr::from(ip)))),
        1 => name().prop_map(|n| RData::CNAME(CNAME(n))),
        1 => ".{0,8}".prop_map(|t| RData::TXT(TXT::new(vec![t]))),
    ]
}

fn records() -> impl Strategy<Value = Vec<Record>> {
    proptest::collection::vec(
        (name(), any::<u32>(), rdata()).prop_map(|(n, ttl, d)| Record::from_rdata(n, ttl, d)),
        0..8,
    )
}

proptest! {
    #![proptest_config(crate::props::config(1024))]

    #[test]
    fn any_srv_answer_gives_pods_from_it(answers in records(), additionals in records()) {
        let Ok(srv) = srv_answer(&answers, &additionals) else {
            // Only an answer naming no pod is refused.
            prop_assert!(!answers.iter().any(|r| matches!(&r.data, RData::SRV(s) if !s.target.is_root())));
            return Ok(());
        };
        prop_assert!(!srv.targets.is_empty());
        prop_assert!(srv.targets.keys().all(|t| !t.is_root()));
        prop_assert!(answers.iter().all(|r| srv.ttl <= r.ttl));
        prop_assert!(srv.ips.keys().all(|t| srv.targets.contains_key(t)));
        let addrs = srv_addrs(&srv.targets, &srv.ips);
        for a in &addrs {
            let from_answer = srv.targets.iter().any(|(t, ports)| {
                ports.contains(&a.port()) && srv.ips.get(t).is_some_and(|ips| ips.contains(&a.ip()))
            });
            prop_assert!(from_answer, "{a} is not in the answer");
        }
        match finish(addrs, srv.ttl) {
            Ok(r) => {
                prop_assert!(!r.addrs.is_empty());
                prop_assert!(r.addrs.windows(2).all(|w| w[0] < w[1]), "sorted, no duplicates");
                prop_assert_eq!(r.ttl, Duration::from_secs(u64::from(srv.ttl)));
            }
            Err(e) => prop_assert_eq!(e, DnsError::NoRecords),
        }
    }
}

/// A target whose glue came along needs no query; one without does (it stays out of `ips`).
#[test]
fn glue_is_used_and_its_ttl_counts() {
    let t0 = Name::from_ascii("pod-0.svc.").unwrap();
    let t1 = Name::from_ascii("pod-1.svc.").unwrap();
    let answers = [
        Record::from_rdata(
            Name::from_ascii("svc.").unwrap(),
            30,
            RData::SRV(SRV::new(0, 0, 9100, t0.clone())),
        ),
        Record::from_rdata(
            Name::from_ascii("svc.").unwrap(),
            30,
            RData::SRV(SRV::new(0, 0, 9101, t1.clone())),
        ),
        Record::from_rdata(
            Name::from_ascii("svc.").unwrap(),
            30,
            RData::SRV(SRV::new(0, 0, 1, Name::root())),
        ),
    ];
    let glue = [Record::from_rdata(
        t0.clone(),
        5,
        RData::A(A(Ipv4Addr::new(10, 0, 0, 1))),
    )];
    let srv = srv_answer(&answers, &glue).unwrap();
    assert_eq!(srv.ttl, 5);
    assert!(!srv.ips.contains_key(&t1), "pod-1 is looked up");
    assert_eq!(
        srv_addrs(&srv.targets, &srv.ips),
        vec!["10.0.0.1:9100".parse().unwrap()]
    );
    assert_eq!(srv_answer(&answers[2..], &glue), Err(DnsError::NoRecords));
}
