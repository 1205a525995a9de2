//! `access_log:` — which requests get a JSON line, and where lines go.

use std::path::PathBuf;

use arena_core::config::defaults::access_log as def;
use arena_core::config::fields::parse_share;
use arena_core::diag::{Diagnostics, Seg};

use super::file::AccessLogFile;
use super::{AccessLogSpec, LogOutput};

pub fn access_log(c: &mut Diagnostics<'_>, a: &AccessLogFile) -> AccessLogSpec {
    let sample = match a.sample.as_deref() {
        None => def::SAMPLE,
        Some(t) => parse_share(t).unwrap_or_else(|| {
            c.error_at(
                &[Seg::Key("access_log"), Seg::Key("sample")],
                format!("bad access_log.sample `{t}`"),
                Some("a share such as `1%` or `0.01` (0 to 100%)".into()),
            );
            def::SAMPLE
        }),
    };
    let output = match a.output.as_deref().map(str::trim) {
        None | Some("stdout") => LogOutput::Stdout,
        Some("stderr") => LogOutput::Stderr,
        Some("") => {
            c.error_at(
                &[Seg::Key("access_log"), Seg::Key("output")],
                "empty access_log.output",
                Some("`stdout`, `stderr` or a file path".into()),
            );
            LogOutput::Stdout
        }
        Some(path) => LogOutput::File(PathBuf::from(path)),
    };
    AccessLogSpec {
        output,
        sample,
        slow: a.slow.map(|d| d.0),
        errors: a.errors.unwrap_or(def::ERRORS),
    }
}
