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
