//! Request ids: keep a sane one from the client, otherwise mint a unique one cheaply.

use std::sync::atomic::{AtomicU64, Ordering};

use http::HeaderValue;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Mints ids as `<process prefix><counter>` in hex: unique per process, no syscall per request.
pub struct RequestIds {
    /// A random per-process prefix in hex, written once: only the counter is formatted per request.
    prefix_hex: [u8; 16],
    counter: AtomicU64,
}

impl RequestIds {
    pub fn new() -> Self {
        let prefix = rand::random::<u64>();
        let mut prefix_hex = [0u8; 16];
        for (i, b) in prefix_hex.iter_mut().enumerate() {
            *b = HEX[((prefix >> (60 - 4 * i)) & 0xf) as usize];
        }
        RequestIds {
            prefix_hex,
            counter: AtomicU64::new(0),
        }
    }

    /// The client's `x-request-id` when it is printable and short, else a fresh id. The value
    /// is built once and cloned (a refcount) into the upstream request and the response.
    pub fn for_request(&self, incoming: Option<&HeaderValue>) -> HeaderValue {
        if let Some(v) = incoming {
            let b = v.as_bytes();
            if !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_graphic()) {
                return v.clone();
            }
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        // Hand-rolled hex: `format!` costs more than the rest of the id's life.
        let mut buf = [0u8; 24];
        buf[..16].copy_from_slice(&self.prefix_hex);
        for (i, b) in buf[16..].iter_mut().enumerate() {
            *b = HEX[((n >> (28 - 4 * i)) & 0xf) as usize];
        }
        HeaderValue::from_bytes(&buf).unwrap_or_else(|_| HeaderValue::from_static("0"))
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
#[path = "request_id_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "request_id_props.rs"]
mod props;
