//! Connection caps: how many client connections may be open at once, in all and per client
//! (an IPv4 address, or an IPv6 /64 — one host's addresses). A slot is taken at accept and
//! given back when the connection's [`Permit`] drops; over a cap, the connection is refused.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use prometheus::IntGauge;

/// Open connections, in all and per client.
#[derive(Debug, Default)]
pub struct Caps {
    total: AtomicU32,
    per_client: DashMap<IpAddr, u32>,
    /// `arena_client_connections`, when exported.
    gauge: Option<IntGauge>,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Total,
    PerClient,
}

impl Refused {
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::Total => "max_connections",
            Refused::PerClient => "max_connections_per_ip",
        }
    }
}

/// The client a connection counts against: its IPv4 address, or its IPv6 /64.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut o = v6.octets();
                o[8..].fill(0);
                IpAddr::V6(o.into())
            }
        },
        v4 => v4,
    }
}

impl Caps {
    pub fn new() -> Arc<Self> {
        Arc::new(Caps::default())
    }

    /// Caps whose open count is also kept in `gauge`.
    pub fn exported(gauge: IntGauge) -> Arc<Self> {
        Arc::new(Caps {
            gauge: Some(gauge),
            ..Caps::default()
        })
    }

    /// Takes a slot for a connection from `ip` (`None`: no peer address, counted in the total
    /// only), or says which cap it is over.
    pub fn admit(self: &Arc<Self>, ip: Option<IpAddr>, max_total: u32, max_per_client: u32) -> Result<Permit, Refused> {
        if self.total.fetch_add(1, Ordering::Relaxed) >= max_total {
            self.total.fetch_sub(1, Ordering::Relaxed);
            return Err(Refused::Total);
        }
        let client = ip.map(client_key);
        if let Some(key) = client {
            let mut n = self.per_client.entry(key).or_insert(0);
            if *n >= max_per_client {
                drop(n);
                self.total.fetch_sub(1, Ordering::Relaxed);
                return Err(Refused::PerClient);
            }
            *n += 1;
        }
        if let Some(g) = &self.gauge {
            g.inc();
        }
        Ok(Permit {
            caps: Arc::clone(self),
            client,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> u32 {
        self.total.load(Ordering::Relaxed)
    }

    /// Connections open now from the client `ip` counts as.
    pub fn open_from(&self, ip: IpAddr) -> u32 {
        self.per_client.get(&client_key(ip)).map_or(0, |n| *n)
    }
}

/// One open connection's slot.
#[derive(Debug)]
pub struct Permit {
    caps: Arc<Caps>,
    client: Option<IpAddr>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.caps.total.fetch_sub(1, Ordering::Relaxed);
        if let Some(g) = &self.caps.gauge {
            g.dec();
        }
        if let Some(key) = self.client {
            // Remove the entry with its last connection: a scan of one-off clients must not
            // grow the map.
            self.caps.per_client.remove_if_mut(&key, |_, n| {
                *n = n.saturating_sub(1);
                *n == 0
            });
        }
    }
}

#[cfg(test)]
#[path = "caps_tests.rs"]
mod tests;
