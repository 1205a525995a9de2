//! Unit tests of `access_log`.
#![allow(clippy::unwrap_used)]
use super::*;

fn spec(sample: f64, slow: Option<u64>, errors: bool) -> AccessLogSpec {
    AccessLogSpec {
        output: LogOutput::Stdout,
        sample,
        slow: slow.map(Duration::from_millis),
        errors,
    }
}

#[test]
fn errors_and_slow_requests_are_always_kept_the_rest_sampled() {
    let fast = Duration::from_millis(3);
    let never = || 0.999_999;
    let always = || 0.0;
    let s = spec(0.0, Some(500), true);
    assert!(wanted(&s, 503, fast, never));
    assert!(wanted(&s, 0, fast, never), "no answer written");
    assert!(wanted(&s, 200, Duration::from_millis(500), never), "slow");
    assert!(!wanted(&s, 200, fast, always), "sample 0 keeps nothing else");
    assert!(!wanted(&s, 404, fast, always), "client errors are not errors here");
    // errors: false drops 5xx unless slow or sampled.
    assert!(!wanted(&spec(0.0, None, false), 502, fast, always));
    // The sampled share.
    let half = spec(0.5, None, true);
    assert!(wanted(&half, 200, fast, || 0.49));
    assert!(!wanted(&half, 200, fast, || 0.5));
    // No draw when nothing is sampled (hot path).
    assert!(!wanted(&spec(0.0, None, true), 200, fast, || panic!("drew")));
}

#[test]
fn lines_are_json_with_the_backend_named() {
    let line = Line {
        ts: "2026-11-22T03:00:00.000Z".into(),
        request_id: "abc",
        client_ip: Some("127.0.0.9".parse().unwrap()),
        method: "GET",
        host: "api.arena.gg",
        path: "/v1/matches?x=\"1\"",
        status: 200,
        duration_ms: 1.5,
        route: Some("matches"),
        cluster: Some("match-api"),
        release: Some("match-api-v2"),
        version: Some("canary"),
        backend: Line::backend(Some("esports-fn"), None),
        attempts: 2,
        error: None,
        detail: None,
    };
    let v: serde_json::Value = serde_json::from_str(&line.to_json()).unwrap();
    assert_eq!(v["backend"], "faas=esports-fn");
    assert_eq!(
        (&v["release"], &v["version"]),
        (&"match-api-v2".into(), &"canary".into())
    );
    assert_eq!(v["path"], "/v1/matches?x=\"1\"");
    assert_eq!(v["client_ip"], "127.0.0.9");
    assert_eq!(
        Line::backend(None, Some("127.0.0.11:9100".parse().unwrap())).as_deref(),
        Some("127.0.0.11:9100")
    );
}

#[test]
fn a_full_queue_drops_and_counts() {
    let dropped = IntCounter::new("t_dropped", "t").unwrap();
    let (tx, rx) = mpsc::sync_channel(1);
    let log = AccessLog {
        tx,
        dropped: dropped.clone(),
        output: LogOutput::Stdout,
    };
    log.write("a".into());
    log.write("b".into());
    assert_eq!(dropped.get(), 1);
    assert!(matches!(rx.try_recv().unwrap(), Msg::Line(l) if l == "a"));
    drop(rx);
    log.write("c".into());
    assert_eq!(dropped.get(), 2, "a stopped writer counts as dropped too");
}

#[test]
fn long_fields_are_clipped_on_a_char_boundary() {
    let long = "é".repeat(MAX_FIELD);
    let c = clip(&long);
    assert!(c.len() <= MAX_FIELD && c.len() >= MAX_FIELD - 1);
    assert_eq!(clip("/v1/matches"), "/v1/matches");
}

#[test]
fn flush_waits_for_queued_lines() {
    let dir = std::env::temp_dir().join(format!("arena-access-flush-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let file = dir.join("a.log");
    let dropped = IntCounter::new("t_dropped2", "t").unwrap();
    let log = AccessLog::start(&LogOutput::File(file.clone()), dropped).unwrap();
    for i in 0..1000 {
        log.write(format!("line {i}"));
    }
    log.flush(Duration::from_secs(10));
    assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), 1000);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Records every write the buffered writer makes to its sink.
struct Writes(std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>);

impl std::io::Write for Writes {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().push(buf.to_vec());
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn the_sink_only_ever_gets_whole_lines() {
    // Two processes append to one file during an upgrade's handover: a write that ended inside
    // a line could be followed by the other process's lines.
    let writes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::sync_channel(QUEUE);
    // Fifteen 4 KiB lines with their newlines, then one whose last character fills the 64 KiB
    // buffer to the byte: a newline written apart from its line would be left for the next
    // write. Then lines of uneven lengths.
    let mut lines: Vec<String> = (0..15).map(|i| format!("{i:04}:{}", "x".repeat(4090))).collect();
    lines.push("y".repeat(4096));
    lines.extend((0..2000).map(|i| format!("{i}:{}", "z".repeat(i % 700))));
    for l in &lines {
        tx.send(Msg::Line(l.clone())).unwrap();
    }
    drop(tx);
    write_lines(rx, Box::new(Writes(std::sync::Arc::clone(&writes))));
    let writes = writes.lock().unwrap();
    assert!(writes.len() > 1, "the buffer was flushed more than once");
    assert!(writes.iter().all(|w| w.ends_with(b"\n")), "a write ended inside a line");
    let all: Vec<u8> = writes.concat();
    assert_eq!(String::from_utf8(all).unwrap(), lines.join("\n") + "\n");
}
