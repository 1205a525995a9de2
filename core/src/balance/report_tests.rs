//! Unit tests of `report`.
#![allow(clippy::unwrap_used)]
use super::*;

#[test]
fn parses_text_form() {
    let r = parse(b"TEXT cpu_utilization=0.42, application_utilization=0.5, named_metrics.inflight=3").unwrap();
    assert_eq!(r.utilization, 0.5);
    assert_eq!(r.inflight, Some(3));
}

#[test]
fn cpu_when_no_application_utilization() {
    let r = parse(b"TEXT cpu_utilization=0.8").unwrap();
    assert_eq!(r.utilization, 0.8);
    assert_eq!(r.inflight, None);
    let r = parse(b"TEXT application_utilization=0, cpu_utilization=0.3").unwrap();
    assert_eq!(r.utilization, 0.3);
}

#[test]
fn rejects_garbage() {
    assert!(parse(b"JSON {\"cpu_utilization\":0.4}").is_none());
    assert!(parse(b"TEXT named_metrics.inflight=3").is_none());
    assert!(parse(b"TEXT cpu_utilization=-1").is_none());
    assert!(parse(b"TEXT cpu_utilization=NaN").is_none());
    assert!(parse(&[0xff, 0xfe]).is_none());
    assert_eq!(parse(b"TEXT cpu_utilization=99").unwrap().utilization, 4.0);
}
