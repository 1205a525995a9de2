//! Trace context on the wire: W3C `traceparent` (version 00; later versions read as 00 allows)
//! and Zipkin's B3 single header (`b3: {trace}-{span}[-{sampled}[-{parent}]]`) in, `traceparent`
//! out. Pure parsing: a malformed header is ignored (a new trace starts), never an error.

/// A 16-byte trace id (never all zero).
pub type TraceId = u128;
/// An 8-byte span id (never zero).
pub type SpanId = u64;

/// The caller's context: the trace to join and the span that is the parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parent {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// The caller recorded its side (`sampled` flag).
    pub sampled: bool,
}

fn hex_u128(s: &str) -> Option<u128> {
    (s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())).then(|| u128::from_str_radix(s, 16).ok())?
}

fn hex_u64(s: &str) -> Option<u64> {
    (s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit())).then(|| u64::from_str_radix(s, 16).ok())?
}

/// Parses a `traceparent` value (W3C Trace Context §3.2).
pub fn parse_traceparent(value: &[u8]) -> Option<Parent> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let mut parts = text.split('-');
    let version = parts.next()?;
    let trace = parts.next()?;
    let span = parts.next()?;
    let flags = parts.next()?;
    if version.len() != 2 || !version.bytes().all(|b| b.is_ascii_hexdigit()) || version.eq_ignore_ascii_case("ff") {
        return None;
    }
    // Version 00 has exactly four fields; a later version may append more, which we ignore.
    if version == "00" && parts.next().is_some() {
        return None;
    }
    if version.bytes().any(|b| b.is_ascii_uppercase())
        || [trace, span, flags]
            .iter()
            .any(|p| p.bytes().any(|b| b.is_ascii_uppercase()))
    {
        return None;
    }
    let trace_id = hex_u128(trace).filter(|t| *t != 0)?;
    let span_id = hex_u64(span).filter(|s| *s != 0)?;
    if flags.len() != 2 {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some(Parent {
        trace_id,
        span_id,
        sampled: flags & 1 == 1,
    })
}

/// Parses a B3 single header. A 64-bit trace id is widened (left-padded with zeros); `d`
/// (debug) counts as sampled; a header that only says `0`/`1`/`d` carries no ids: `None`.
pub fn parse_b3(value: &[u8]) -> Option<Parent> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let mut parts = text.split('-');
    let trace = parts.next()?;
    let span = parts.next()?;
    let sampled = match parts.next() {
        None => true,
        Some("1" | "d") => true,
        Some("0") => false,
        Some(_) => return None,
    };
    if let Some(parent) = parts.next() {
        hex_u64(&parent.to_ascii_lowercase())?;
    }
    if parts.next().is_some() {
        return None;
    }
    let trace = trace.to_ascii_lowercase();
    let trace_id = match trace.len() {
        16 => hex_u64(&trace).map(u128::from),
        32 => hex_u128(&trace),
        _ => None,
    }
    .filter(|t| *t != 0)?;
    let span_id = hex_u64(&span.to_ascii_lowercase()).filter(|s| *s != 0)?;
    Some(Parent {
        trace_id,
        span_id,
        sampled,
    })
}

/// The `traceparent` value for a request sent as span `span_id` of `trace_id`.
pub fn traceparent(trace_id: TraceId, span_id: SpanId, sampled: bool) -> String {
    traceparent_bytes(trace_id, span_id, sampled)
        .iter()
        .map(|&b| char::from(b))
        .collect()
}

/// [`traceparent`] as its 55 ASCII bytes, written without the formatting machinery: every
/// request a traced gateway forwards carries one, sampled or not.
pub fn traceparent_bytes(trace_id: TraceId, span_id: SpanId, sampled: bool) -> [u8; 55] {
    let mut b = *b"00-00000000000000000000000000000000-0000000000000000-00";
    // a byte at a time, both digits from one table: a quarter of the work of a digit at a time
    for (i, byte) in trace_id.to_be_bytes().into_iter().enumerate() {
        b[3 + 2 * i..5 + 2 * i].copy_from_slice(&HEX_PAIRS[usize::from(byte)]);
    }
    for (i, byte) in span_id.to_be_bytes().into_iter().enumerate() {
        b[36 + 2 * i..38 + 2 * i].copy_from_slice(&HEX_PAIRS[usize::from(byte)]);
    }
    b[54] = if sampled { b'1' } else { b'0' };
    b
}

/// Every byte's two lowercase hex digits.
static HEX_PAIRS: [[u8; 2]; 256] = {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [HEX[i >> 4], HEX[i & 0xf]];
        i += 1;
    }
    t
};

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn w3c_examples() {
        let p = parse_traceparent(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(p.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(p.span_id, 0x00f067aa0ba902b7);
        assert!(p.sampled);
        assert!(
            !parse_traceparent(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
                .unwrap()
                .sampled
        );
        for bad in [
            &b"00-00000000000000000000000000000000-00f067aa0ba902b7-01"[..],
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            b"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            b"",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        // A later version may carry more fields.
        assert!(parse_traceparent(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz").is_some());
    }

    #[test]
    fn b3_examples() {
        let p = parse_b3(b"80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90").unwrap();
        assert_eq!(p.trace_id, 0x80f198ee56343ba864fe8b2a57d3eff7);
        assert_eq!(p.span_id, 0xe457b5a2e4d86bd1);
        assert!(p.sampled);
        let short = parse_b3(b"64fe8b2a57d3eff7-e457b5a2e4d86bd1-0").unwrap();
        assert_eq!(short.trace_id, 0x64fe8b2a57d3eff7);
        assert!(!short.sampled);
        assert!(parse_b3(b"64fe8b2a57d3eff7-e457b5a2e4d86bd1-d").unwrap().sampled);
        for bad in [
            &b"0"[..],
            b"1",
            b"d",
            b"abc-def",
            b"64fe8b2a57d3eff7-e457b5a2e4d86bd1-2",
            b"",
        ] {
            assert_eq!(parse_b3(bad), None);
        }
    }

    #[test]
    fn traceparent_round_trips() {
        let v = traceparent(0x4bf92f3577b34da6a3ce929d0e0e4736, 0xf067aa0ba902b7, true);
        assert_eq!(v, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        assert_eq!(parse_traceparent(v.as_bytes()).unwrap().span_id, 0xf067aa0ba902b7);
    }

    proptest! {
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80),
                               text in "[0-9a-fA-F-]{0,70}") {
            let _ = parse_traceparent(&bytes);
            let _ = parse_b3(&bytes);
            let _ = parse_traceparent(text.as_bytes());
            let _ = parse_b3(text.as_bytes());
        }

        #[test]
        fn what_we_send_we_read(trace in 1u128.., span in 1u64.., sampled in any::<bool>()) {
            let text = traceparent(trace, span, sampled);
            prop_assert_eq!(&text, &format!("00-{trace:032x}-{span:016x}-{:02x}", u8::from(sampled)));
            let p = parse_traceparent(text.as_bytes()).unwrap();
            prop_assert_eq!(p, Parent { trace_id: trace, span_id: span, sampled });
        }
    }
}
