//! Request ids: keep a sane one from the client, otherwise mint a unique one cheaply.

use std::sync::atomic::{AtomicU64, Ordering};

use http::HeaderValue;

/// Mints ids as `<process prefix><counter>` in hex: unique per process, no syscall per request.
pub struct RequestIds {
    prefix: u64,
    counter: AtomicU64,
}

impl RequestIds {
    pub fn new() -> Self {
        RequestIds {
            prefix: rand::random::<u64>(),
            counter: AtomicU64::new(0),
        }
    }

    /// The client's `x-request-id` when it is printable and short, else a fresh id.
    pub fn for_request(&self, incoming: Option<&HeaderValue>) -> String {
        if let Some(v) = incoming {
            let b = v.as_bytes();
            if !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_graphic()) {
                if let Ok(s) = v.to_str() {
                    return s.to_string();
                }
            }
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{:016x}{:08x}", self.prefix, n)
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_good_ids_and_replaces_bad_ones() {
        let ids = RequestIds::new();
        assert_eq!(ids.for_request(Some(&HeaderValue::from_static("abc-123"))), "abc-123");
        let bad = HeaderValue::from_static("has space");
        let fresh = ids.for_request(Some(&bad));
        assert_eq!(fresh.len(), 24);
        assert_ne!(ids.for_request(None), ids.for_request(None));
    }
}
