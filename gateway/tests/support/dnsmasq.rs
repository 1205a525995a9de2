//! A real dnsmasq on loopback for DNS discovery integration tests: a panicking layer over
//! `arena_testkit::Dnsmasq` (hosts re-read on SIGHUP, SRV changes restart on the same port).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

pub use arena_testkit::Srv;

/// A running dnsmasq serving the given records on `127.0.0.1:<port>`; killed on drop.
pub struct Dnsmasq(pub arena_testkit::Dnsmasq);

impl Dnsmasq {
    /// Starts dnsmasq with A/AAAA `hosts` as `(name, ip)` and SRV records.
    pub fn start(hosts: &[(&str, &str)], srv: &[Srv<'_>]) -> Dnsmasq {
        Self::start_with_extra(hosts, srv, &[])
    }

    /// Like [`Dnsmasq::start`], plus raw dnsmasq config lines (e.g. `cname=...`).
    pub fn start_with_extra(hosts: &[(&str, &str)], srv: &[Srv<'_>], extra: &[&str]) -> Dnsmasq {
        Dnsmasq(arena_testkit::Dnsmasq::start_with_extra(hosts, srv, extra).unwrap_or_else(|e| panic!("{e}")))
    }

    /// The server address to point a resolver at.
    pub fn addr(&self) -> SocketAddr {
        self.0.addr()
    }

    /// Replaces all records (see `arena_testkit::Dnsmasq::set_records`); callers poll until the
    /// new data shows up.
    pub fn set_records(&self, hosts: &[(&str, &str)], srv: &[Srv<'_>]) {
        self.0.set_records(hosts, srv).unwrap_or_else(|e| panic!("{e}"));
    }
}
