//! Unit tests of `guard`: a client on one end of an in-memory pipe, the guard on the other,
//! time paused — the guard's reads stand in for pingora's.
#![allow(clippy::unwrap_used)]
use super::*;
use crate::listener::caps::Caps;
use prometheus::Opts;
use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};

fn limits() -> ClientLimits {
    ClientLimits {
        header_timeout: Duration::from_secs(10),
        keepalive_timeout: Duration::from_secs(60),
        body_timeout: Duration::from_secs(30),
        send_timeout: Duration::from_secs(30),
        max_requests_per_connection: 100,
        max_connection_duration: Duration::from_secs(3600),
        max_connections: 10,
        max_connections_per_ip: 10,
        tls_handshake_timeout: Duration::from_secs(10),
        h2_max_concurrent_streams: 100,
        h2_idle_timeout: Duration::from_secs(300),
    }
}

fn closed() -> IntCounterVec {
    IntCounterVec::new(Opts::new("closed", "test"), &["reason"]).unwrap()
}

/// (client end, guarded server end, its close counter)
fn pair(max_head: usize) -> (DuplexStream, ClientStream, IntCounterVec) {
    pair_with(limits(), max_head)
}

fn pair_with(limits: ClientLimits, max_head: usize) -> (DuplexStream, ClientStream, IntCounterVec) {
    let (client, server) = duplex(1 << 20);
    let permit = Caps::new().admit(None, 10, 10).unwrap();
    let counter = closed();
    let guard = ClientStream::new(Box::new(server), limits, max_head, permit, true, counter.clone());
    (client, guard, counter)
}

/// One whole request on `client`, read by the guard and answered.
async fn request(client: &mut DuplexStream, guard: &mut ClientStream) {
    client.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
    read(guard).await;
    guard.conn().head_parsed();
    guard.conn().request_done();
}

/// What the guard hands on for one read.
async fn read(guard: &mut ClientStream) -> Vec<u8> {
    let mut buf = vec![0u8; 64 * 1024];
    let n = guard.read(&mut buf).await.unwrap();
    buf.truncate(n);
    buf
}

async fn answer(client: &mut DuplexStream) -> String {
    let mut out = Vec::new();
    let _ = client.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(start_paused = true)]
async fn a_head_trickled_past_the_deadline_gets_408_and_the_stream_ends() {
    let (mut client, mut guard, counter) = pair(32 * 1024);
    client.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n").await.unwrap();
    assert_eq!(read(&mut guard).await, b"GET / HTTP/1.1\r\nHost: a\r\n");
    // One more byte every few seconds: each read is quick, the head as a whole is not.
    for _ in 0..3 {
        tokio::time::advance(Duration::from_secs(3)).await;
        client.write_all(b"X").await.unwrap();
        assert_eq!(read(&mut guard).await, b"X");
    }
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(read(&mut guard).await.is_empty(), "the stream ends for pingora");
    drop(guard);
    let got = answer(&mut client).await;
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    assert!(got.contains("connection: close"));
    assert_eq!(counter.with_label_values(&["header_timeout"]).get(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_head_larger_than_the_limit_gets_431_before_it_is_buffered() {
    let (mut client, mut guard, counter) = pair(1024);
    let line = format!("x-pad: {}\r\n", "a".repeat(200));
    let mut handed = 0;
    client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    handed += read(&mut guard).await.len();
    for _ in 0..10 {
        client.write_all(line.as_bytes()).await.unwrap();
        handed += read(&mut guard).await.len();
    }
    assert!(handed <= 1024, "pingora saw {handed} bytes of an oversized head");
    drop(guard);
    let got = answer(&mut client).await;
    assert!(got.starts_with("HTTP/1.1 431"), "{got}");
    assert_eq!(counter.with_label_values(&["headers_too_large"]).get(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_complete_head_ends_the_deadline_and_a_big_body_is_not_a_big_head() {
    let (mut client, mut guard, _) = pair(1024);
    let mut req = b"POST /v1/verify HTTP/1.1\r\nHost: a\r\nContent-Length: 8000\r\n\r\n".to_vec();
    req.extend(std::iter::repeat_n(b'z', 8000));
    client.write_all(&req).await.unwrap();
    let mut got = 0;
    while got < req.len() {
        got += read(&mut guard).await.len();
    }
    guard.conn().head_parsed();
    // The body and the answer are pingora's to time: the guard's deadline is gone.
    tokio::time::advance(Duration::from_secs(600)).await;
    client.write_all(b"more").await.unwrap();
    assert_eq!(read(&mut guard).await, b"more");
}

#[tokio::test(start_paused = true)]
async fn an_idle_keepalive_connection_closes_quietly_and_the_next_head_gets_its_own_deadline() {
    let (mut client, mut guard, counter) = pair(32 * 1024);
    client.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
    read(&mut guard).await;
    guard.conn().head_parsed();
    guard.conn().request_done();
    // A second request after 50 s of idleness is fine, and is due 10 s after its first byte.
    tokio::time::advance(Duration::from_secs(50)).await;
    client.write_all(b"GET /2 HTTP/1.1\r\n").await.unwrap();
    assert_eq!(read(&mut guard).await, b"GET /2 HTTP/1.1\r\n");
    client.write_all(b"Host: a\r\n\r\n").await.unwrap();
    read(&mut guard).await;
    guard.conn().head_parsed();
    guard.conn().request_done();
    // Then idle past keepalive_timeout: the stream ends without an answer.
    tokio::time::advance(Duration::from_secs(61)).await;
    assert!(read(&mut guard).await.is_empty());
    drop(guard);
    assert_eq!(answer(&mut client).await, "");
    assert_eq!(counter.with_label_values(&["idle"]).get(), 1);
}

#[tokio::test(start_paused = true)]
async fn no_byte_of_a_first_request_in_time_closes_quietly() {
    let (mut client, mut guard, _) = pair(32 * 1024);
    tokio::time::advance(Duration::from_secs(11)).await;
    assert!(read(&mut guard).await.is_empty());
    drop(guard);
    assert_eq!(answer(&mut client).await, "");
}

#[tokio::test(start_paused = true)]
async fn http2_connections_only_hold_their_slot() {
    let (mut client, server) = duplex(1 << 16);
    let caps = Caps::new();
    let permit = caps.admit(None, 10, 10).unwrap();
    let mut guard = ClientStream::new(Box::new(server), limits(), 16, permit, false, closed());
    tokio::time::advance(Duration::from_secs(600)).await;
    client.write_all(&[0u8; 100]).await.unwrap();
    assert_eq!(read(&mut guard).await.len(), 100, "no head rules on h2 frames");
    assert_eq!(caps.open(), 1);
    drop(guard);
    assert_eq!(caps.open(), 0, "the slot is freed with the connection");
}

#[tokio::test(start_paused = true)]
async fn a_busy_connection_is_timed_from_its_last_request_not_from_an_earlier_one() {
    // The guard leaves its timer at an earlier (sooner) deadline while later ones pile up: when
    // it fires, the connection must not be closed for a deadline that has moved on.
    let (mut client, mut guard, counter) = pair(32 * 1024);
    for _ in 0..40 {
        request(&mut client, &mut guard).await;
        tokio::time::advance(Duration::from_secs(7)).await;
    }
    request(&mut client, &mut guard).await;
    let last = Instant::now();
    // Nothing more: paused time runs to the guard's next deadline, which is keepalive_timeout
    // after the last request, although 41 header and keep-alive deadlines came before it.
    assert!(read(&mut guard).await.is_empty());
    let idle = last.elapsed();
    assert!(
        idle >= Duration::from_secs(60) && idle < Duration::from_secs(61),
        "closed after {idle:?} idle"
    );
    assert_eq!(counter.with_label_values(&["idle"]).get(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_connection_past_its_max_duration_retires_at_its_next_request() {
    let mut l = limits();
    l.max_connection_duration = Duration::from_secs(100);
    let (mut client, mut guard, _) = pair_with(l, 32 * 1024);
    for i in 0..4 {
        request(&mut client, &mut guard).await;
        assert!(!guard.conn().retiring(), "request {i} at {}s", i * 30);
        tokio::time::advance(Duration::from_secs(30)).await;
    }
    request(&mut client, &mut guard).await;
    assert!(
        guard.conn().retiring(),
        "the request begun at 120 s answers `connection: close`"
    );
}

/// The head scan as it was written first, byte by byte: where the head ends (the index of the
/// LF of its blank line), if it does.
fn head_end(bytes: &[u8]) -> Option<usize> {
    let (mut line, mut begun) = (0usize, false);
    for (i, b) in bytes.iter().enumerate() {
        match b {
            b'\n' if line == 0 && begun => return Some(i),
            b'\n' => line = 0,
            b'\r' => {}
            _ => {
                line += 1;
                begun = true;
            }
        }
    }
    None
}

fn head_bytes() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    prop_oneof![
        proptest::collection::vec(proptest::sample::select(&[b'\r', b'\n', b'G', b' ', b':'][..]), 0..64),
        proptest::collection::vec(any::<u8>(), 0..64),
    ]
}

proptest::proptest! {
    #![proptest_config(crate::props::config(1024))]

    /// However the bytes are split into reads, the scan finds that the head ended exactly when
    /// the byte-by-byte scan does, and refuses a head exactly when it outgrows the cap first.
    #[test]
    fn the_head_scan_finds_the_end_wherever_the_reads_split_it(
        bytes in head_bytes(),
        cuts in proptest::collection::vec(0usize..64, 0..6),
        max_head in 0usize..80,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let _in_rt = rt.enter();
        let (_client, mut guard, _) = pair(max_head);
        let mut cuts: Vec<usize> = cuts.into_iter().filter(|&c| c <= bytes.len()).collect();
        cuts.push(0);
        cuts.push(bytes.len());
        cuts.sort_unstable();
        let want = head_end(&bytes);
        let mut refused_at = None;
        for w in cuts.windows(2) {
            if guard.scan(&bytes[w[0]..w[1]]).is_err() {
                refused_at = Some(w[1]);
                break;
            }
        }
        match (guard.phase, want) {
            (Phase::Head { ended: true, .. }, Some(_)) => proptest::prop_assert!(refused_at.is_none()),
            (Phase::Head { ended: false, bytes: n, .. }, want) => {
                // Not ended: either no blank line, or the cap was hit before the read holding it.
                match refused_at {
                    Some(at) => {
                        proptest::prop_assert_eq!(n, at);
                        proptest::prop_assert!(n > max_head);
                        proptest::prop_assert!(want.is_none_or(|end| end >= at));
                    }
                    None => {
                        proptest::prop_assert!(want.is_none());
                        proptest::prop_assert!(n == bytes.len() && n <= max_head);
                    }
                }
            }
            (phase, want) => proptest::prop_assert!(false, "{phase:?} vs {want:?}"),
        }
    }
}
