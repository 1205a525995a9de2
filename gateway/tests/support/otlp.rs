//! A real OTLP/HTTP receiver for trace tests: `gateway/tests/otlp/receiver.py`, decoding with
//! the official OpenTelemetry protobuf definitions, one JSON line per span.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::procs::{Proc, TempDir};

/// The receiver process and the file its spans go to.
pub struct Receiver {
    pub port: u16,
    out: std::path::PathBuf,
    _proc: Proc,
    _dir: TempDir,
}

impl Receiver {
    pub fn start() -> Receiver {
        let python = arena_testkit::repo_root().join("target/tools/venv/bin/python");
        assert!(
            python.exists(),
            "{} missing: run deploy/local/tools-setup.sh",
            python.display()
        );
        let dir = TempDir::new("otlp");
        let out = dir.0.file("spans.jsonl");
        let port = arena_testkit::free_addr("127.0.0.1").unwrap().port();
        let mut cmd = Command::new(python);
        cmd.arg(arena_testkit::repo_root().join("gateway/tests/otlp/receiver.py"))
            .arg(port.to_string())
            .arg(&out);
        let (proc, _) = Proc::spawn_until("otlp receiver", cmd, "listening", Duration::from_secs(20));
        Receiver {
            port,
            out,
            _proc: proc,
            _dir: dir,
        }
    }

    pub fn spans(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Waits until spans stop arriving (the exporter flushes every second) and returns them.
    pub fn settle(&self) -> Vec<Value> {
        let mut last = usize::MAX;
        let mut spans = Vec::new();
        arena_testkit::wait::until("spans to settle", Duration::from_secs(20), || {
            spans = self.spans();
            let steady = spans.len() == last && !spans.is_empty();
            last = spans.len();
            if !steady {
                std::thread::sleep(Duration::from_millis(1500));
            }
            steady
        })
        .unwrap();
        spans
    }
}
