//! Unit tests of `caps`.
#![allow(clippy::unwrap_used)]
use super::*;

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

#[test]
fn total_and_per_client_caps_hold_and_free_on_drop() {
    let caps = Caps::new();
    let a: Vec<_> = (0..2).map(|_| caps.admit(ip("10.0.0.1"), 3, 2).unwrap()).collect();
    assert_eq!(caps.admit(ip("10.0.0.1"), 3, 2).unwrap_err(), Refused::PerClient);
    let b = caps.admit(ip("10.0.0.2"), 3, 2).unwrap();
    assert_eq!(caps.admit(ip("10.0.0.3"), 3, 2).unwrap_err(), Refused::Total);
    assert_eq!(caps.open(), 3);
    drop(b);
    assert!(caps.admit(ip("10.0.0.3"), 3, 2).is_ok(), "a freed slot is free again");
    drop(a);
    assert_eq!(caps.open(), 0);
    assert_eq!(caps.open_from("10.0.0.1".parse().unwrap()), 0);
    assert!(caps.per_client.is_empty(), "no entry outlives its last connection");
}

#[test]
fn an_ipv6_host_is_its_slash_64() {
    let caps = Caps::new();
    let _a = caps.admit(ip("2001:db8:1:2::1"), 10, 1).unwrap();
    assert_eq!(
        caps.admit(ip("2001:db8:1:2:ffff::9"), 10, 1).unwrap_err(),
        Refused::PerClient,
        "same /64"
    );
    assert!(caps.admit(ip("2001:db8:1:3::1"), 10, 1).is_ok(), "another /64");
    assert_eq!(
        client_key("::ffff:10.1.2.3".parse().unwrap()),
        "10.1.2.3".parse::<IpAddr>().unwrap()
    );
}
