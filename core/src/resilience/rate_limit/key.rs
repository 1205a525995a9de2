//! Rate-limit keys: what a request is counted by, hashed the same way by every build.
//!
//! The hash names a Redis key that all replicas of a `scope: cluster` limit must agree on, so
//! it cannot be std's `DefaultHasher` (its algorithm may change between Rust releases, and
//! `Hash` impls may feed it differently): it is FNV-1a 64 over explicit bytes — a tag byte for
//! the kind of key, then the IPv4 octets, the IPv6 octets cut to the prefix, or the header
//! value. [`REDIS_PREFIX`] carries a version that changes whenever this format does.

use std::net::{IpAddr, Ipv6Addr};

/// Key value for one request: the FNV-1a 64 hash of what it is counted by.
pub type KeyHash = u64;

/// Prefix of every shared bucket's Redis key; the version changes with the key format, so
/// gateways that count differently never share a bucket under different meanings.
pub const REDIS_PREFIX: &str = "arena:rl:v2:";

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64 (Fowler–Noll–Vo, the published offset basis and prime): fixed forever.
#[derive(Debug, Clone, Copy)]
pub struct Fnv1a(u64);

impl Fnv1a {
    pub const fn new() -> Self {
        Fnv1a(FNV_OFFSET_BASIS)
    }

    pub fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
    }

    pub const fn finish(self) -> u64 {
        self.0
    }
}

impl Default for Fnv1a {
    fn default() -> Self {
        Self::new()
    }
}

/// Tag bytes: which kind of key was hashed (part of the format behind [`REDIS_PREFIX`]).
const TAG_NONE: u8 = 0;
const TAG_HEADER: u8 = 1;
const TAG_ROUTE: u8 = 2;
const TAG_V4: u8 = 4;
const TAG_V6: u8 = 6;

/// The client an IP counts as: an IPv4 address (also when IPv4-mapped), or its IPv6 address
/// cut to `ipv6_prefix` bits.
pub fn client_prefix(ip: IpAddr, ipv6_prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u32::from(ipv6_prefix.min(128));
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        },
    }
}

/// The key of a client IP (`None`: the request has no peer address; those share a key).
pub fn of_client(ip: Option<IpAddr>, ipv6_prefix: u8) -> KeyHash {
    let mut h = Fnv1a::new();
    match ip.map(|ip| client_prefix(ip, ipv6_prefix)) {
        Some(IpAddr::V4(v4)) => {
            h.write(&[TAG_V4]);
            h.write(&v4.octets());
        }
        Some(IpAddr::V6(v6)) => {
            h.write(&[TAG_V6]);
            h.write(&v6.octets());
        }
        None => h.write(&[TAG_NONE]),
    }
    h.finish()
}

/// The key of a header value (`None`: the header is absent; those requests share a key).
pub fn of_header(value: Option<&[u8]>) -> KeyHash {
    let mut h = Fnv1a::new();
    match value {
        Some(v) => {
            h.write(&[TAG_HEADER]);
            h.write(v);
        }
        None => h.write(&[TAG_NONE]),
    }
    h.finish()
}

/// The key of `key: route`: one for the whole route.
pub fn of_route() -> KeyHash {
    let mut h = Fnv1a::new();
    h.write(&[TAG_ROUTE]);
    h.finish()
}

/// The Redis key of `route`'s shared bucket for `key`.
pub fn redis_key(route: &str, key: KeyHash) -> String {
    format!("{REDIS_PREFIX}{route}:{key:016x}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn fnv(bytes: &[u8]) -> u64 {
        let mut h = Fnv1a::new();
        h.write(bytes);
        h.finish()
    }

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        assert_eq!(fnv(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv(b"foobar"), 0x8594_4171_f739_67e8);
    }

    /// These strings are what every replica, whatever toolchain built it, asks Redis for
    /// (computed apart from this code, with a few lines of Python over the documented bytes): a
    /// change here splits a shared budget during a rolling upgrade, so it must come with a new
    /// [`REDIS_PREFIX`] version.
    #[test]
    fn redis_keys_of_known_inputs_are_fixed() {
        let v4 = of_client(Some("203.0.113.7".parse().unwrap()), 64);
        assert_eq!(redis_key("verify", v4), "arena:rl:v2:verify:cefa6c9988323d04");
        let v6 = of_client("2001:db8:1:2:aaaa::1".parse().ok(), 64);
        assert_eq!(redis_key("verify", v6), "arena:rl:v2:verify:1bbc28604ca7443e");
        let header = of_header(Some(b"key-123"));
        assert_eq!(redis_key("api", header), "arena:rl:v2:api:cc45a0d771c04856");
        assert_eq!(redis_key("all", of_route()), "arena:rl:v2:all:af63bf4c8601bb45");
        assert_eq!(of_header(None), of_client(None, 64), "absent keys share one bucket");
    }

    #[test]
    fn ipv6_clients_count_by_prefix_ipv4_by_address() {
        let a = |s: &str| s.parse::<IpAddr>().ok();
        // Rotating addresses inside one /64 is one client; the next /64 is another.
        assert_eq!(of_client(a("2001:db8::1"), 64), of_client(a("2001:db8::ffff:2"), 64));
        assert_ne!(of_client(a("2001:db8::1"), 64), of_client(a("2001:db8:0:1::1"), 64));
        assert_ne!(of_client(a("2001:db8::1"), 128), of_client(a("2001:db8::2"), 128));
        assert_eq!(of_client(a("2001:db8:0:1::1"), 48), of_client(a("2001:db8:0:2::1"), 48));
        // An IPv4-mapped address is the IPv4 client.
        assert_eq!(of_client(a("::ffff:192.0.2.1"), 64), of_client(a("192.0.2.1"), 64));
        assert_ne!(of_client(a("192.0.2.1"), 64), of_client(a("192.0.2.2"), 64));
        assert_eq!(
            client_prefix("2001:db8:1:2:3:4:5:6".parse().unwrap(), 64),
            "2001:db8:1:2::".parse::<IpAddr>().unwrap()
        );
    }
}
