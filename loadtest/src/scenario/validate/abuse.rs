//! `abuse:`: the tester's own abusive connections, each element checked at its keys.

use std::time::Duration;

use arena_core::diag::yaml::{self, Seg};
use saphyr::MarkedYamlOwned;

use crate::scenario::abuse::{parse_sources, AbuseSpec};
use crate::scenario::file::AbuseFile;
use crate::scenario::Diagnostics;

/// Most abusive connections of one element (and, summed, of the whole section: ×2).
const MAX_CONNECTIONS: usize = 100_000;
/// Trickling slower than this holds nothing a timeout of the target would not already cut.
const MAX_BYTE_EVERY: Duration = Duration::from_secs(3600);
/// Pause between two trickled bytes unless `byte_every` says otherwise.
const DEFAULT_BYTE_EVERY: Duration = Duration::from_secs(1);

/// The elements; one with a mistake is reported and left out. `total` is the load's duration.
pub(super) fn abuse(d: &mut Diagnostics<'_>, node: Option<&MarkedYamlOwned>, total: Duration) -> Vec<AbuseSpec> {
    let Some(node) = node.filter(|n| !yaml::is_null(n)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, f) in d.decode_list::<AbuseFile>(node, "abuse") {
        let at = |key: &'static str| [Seg::Key("abuse"), Seg::Index(i), Seg::Key(key)];
        let errors_before = d.list().iter().filter(|x| x.is_error()).count();
        if f.connections == 0 || f.connections > MAX_CONNECTIONS {
            d.error_at(
                &at("connections"),
                format!(
                    "`connections` must be between 1 and {MAX_CONNECTIONS}, found {}",
                    f.connections
                ),
                None,
            );
        }
        let byte_every = byte_every(d, &f, &at("byte_every"));
        let sources = match f.from.as_deref().map(parse_sources) {
            None => Vec::new(),
            Some(Ok(v)) => v,
            Some(Err((message, hint))) => {
                d.error_at(&at("from"), message, Some(hint));
                Vec::new()
            }
        };
        let path = f.path.clone().unwrap_or_else(|| "/".into());
        if !path.starts_with('/') || path.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
            d.error_at(
                &at("path"),
                format!("bad path `{path}`"),
                Some("an absolute path without spaces, e.g. `/v1/matches`".into()),
            );
        }
        let start = f.start.map_or(Duration::ZERO, |s| s.0);
        let stop = f.stop.map(|s| s.0);
        span(d, i, start, stop, total);
        if d.list().iter().filter(|x| x.is_error()).count() > errors_before {
            continue;
        }
        let label = f.label.clone().unwrap_or_else(|| {
            format!(
                "{} ×{}{}",
                f.kind.as_str(),
                f.connections,
                f.from.as_ref().map_or(String::new(), |s| format!(" from {s}"))
            )
        });
        out.push(AbuseSpec {
            kind: f.kind,
            connections: f.connections,
            byte_every,
            sources,
            from: f.from,
            start,
            stop,
            path,
            label,
        });
    }
    let sum: usize = out.iter().map(|a| a.connections).sum();
    if sum > 2 * MAX_CONNECTIONS {
        d.error(
            yaml::pos(node),
            format!(
                "`abuse` holds {sum} connections in all, more than {}",
                2 * MAX_CONNECTIONS
            ),
            None,
        );
    }
    out
}

/// The trickle pause of a slow kind (default 1 s); `idle_keepalive` has none.
fn byte_every(d: &mut Diagnostics<'_>, f: &AbuseFile, at: &[Seg]) -> Option<Duration> {
    match (f.kind.trickles(), f.byte_every) {
        (false, None) => None,
        (false, Some(_)) => {
            d.error_at(
                at,
                "`byte_every` applies to slow_headers and slow_body",
                Some("an idle keep-alive connection sends nothing after its one request".into()),
            );
            None
        }
        (true, None) => Some(DEFAULT_BYTE_EVERY),
        (true, Some(b)) if b.0.is_zero() || b.0 > MAX_BYTE_EVERY => {
            d.error_at(
                at,
                "`byte_every` must be above 0 and at most 1h",
                Some("e.g. `1s`: below the target's header or body timeout, so the connection stays busy".into()),
            );
            None
        }
        (true, Some(b)) => Some(b.0),
    }
}

/// `start` before `stop`, and both within the load (`total`).
fn span(d: &mut Diagnostics<'_>, i: usize, start: Duration, stop: Option<Duration>, total: Duration) {
    let at = |key: &'static str| [Seg::Key("abuse"), Seg::Index(i), Seg::Key(key)];
    if let Some(stop) = stop {
        if stop <= start {
            d.error_at(
                &at("stop"),
                format!("`stop` ({stop:?}) must come after `start` ({start:?})"),
                None,
            );
            return;
        }
        if stop > total {
            d.warn_at(
                &at("stop"),
                format!(
                    "the attack would stop at {stop:?}, after the end of the load ({total:?}): it stops with the load"
                ),
                None,
            );
        }
    }
    if start >= total && !total.is_zero() {
        d.warn_at(
            &at("start"),
            format!("the attack starts at {start:?}, at or after the end of the load ({total:?}): it never runs"),
            None,
        );
    }
}

/// Whether the attacks leave some of `[0, total)` free: a baseline to compare with.
pub(super) fn leaves_a_baseline(abuse: &[AbuseSpec], total: Duration) -> bool {
    let mut spans: Vec<(Duration, Duration)> = abuse.iter().map(|a| a.span(total)).collect();
    spans.sort();
    let mut covered = Duration::ZERO;
    for (start, stop) in spans {
        if start > covered {
            return true;
        }
        covered = covered.max(stop);
    }
    covered < total
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::time::Duration;

    use crate::scenario::{load, AbuseKind, NoExtensions};

    const BASE: &str =
        "name: t\ntarget: http://127.0.0.1:8080\nstages: [{ duration: 10s, rate: 10 }]\nrequests: [{ path: /x }]\n";

    fn errors(abuse: &str) -> Vec<String> {
        let e = load(&format!("{BASE}{abuse}"), "t.yaml", &NoExtensions).unwrap_err();
        e.0.iter().map(|d| format!("{} @ {}", d.message, d.location)).collect()
    }

    #[test]
    fn elements_decode_with_defaults() {
        let text = format!(
            "{BASE}abuse:\n  - {{ kind: slow_headers, connections: 10, from: 127.0.0.2-127.0.0.3, start: 2s, stop: 5s }}\n  - {{ kind: idle_keepalive, connections: 5, path: /v1/matches }}\n"
        );
        let s = load(&text, "t.yaml", &NoExtensions).unwrap();
        assert_eq!(s.abuse.len(), 2);
        let (a, b) = (&s.abuse[0], &s.abuse[1]);
        assert_eq!(
            (a.kind, a.sources.len(), a.byte_every.unwrap().as_secs()),
            (AbuseKind::SlowHeaders, 2, 1)
        );
        assert_eq!(a.label, "slow_headers ×10 from 127.0.0.2-127.0.0.3");
        assert_eq!((b.byte_every, b.stop, b.path.as_str()), (None, None, "/v1/matches"));
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    }

    #[test]
    fn mistakes_are_reported_at_their_keys() {
        let msgs = errors(
            "abuse:\n  - { kind: slow_heders, connections: 1 }\n  - { kind: idle_keepalive, connections: 0, byte_every: 1s }\n  - { kind: slow_body, connections: 1, from: 127.0.0.9-127.0.0.2, start: 5s, stop: 2s }\n  - { kind: slow_body, connections: 1, conections: 2 }\n",
        );
        for (what, at) in [
            ("unknown value `slow_heders`", "t.yaml:6:13"),
            ("`connections` must be between", "t.yaml:7:42"),
            ("`byte_every` applies to", "t.yaml:7:57"),
            ("runs backwards", "t.yaml:8:46"),
            ("must come after `start`", "t.yaml:8:84"),
            ("unknown key `conections`", "t.yaml:9:40"),
        ] {
            assert!(
                msgs.iter().any(|m| m.contains(what) && m.ends_with(at)),
                "`{what}` at {at}: {msgs:?}"
            );
        }
    }

    #[test]
    fn attack_thresholds_need_an_attack_and_a_baseline() {
        let msgs = errors("thresholds: [\"attack_p99 < 1s\"]\n");
        assert!(
            msgs.iter()
                .any(|m| m.contains("needs an `abuse:` section") && m.ends_with("t.yaml:5:14")),
            "{msgs:?}"
        );
        let msgs = errors("abuse: [{ kind: idle_keepalive, connections: 1 }]\nthresholds: [\"p99_ratio < 2\"]\n");
        assert!(
            msgs.iter().any(|m| m.contains("no second without an attack")),
            "{msgs:?}"
        );
        let ok = format!("{BASE}abuse: [{{ kind: idle_keepalive, connections: 1, start: 5s }}]\nthresholds: [\"p99_ratio < 2\", \"abuse_408 >= 0\"]\n");
        assert!(load(&ok, "t.yaml", &NoExtensions).is_ok());
    }

    #[test]
    fn hints_and_warnings() {
        let e = load(
            &format!("{BASE}abuse:\n  - {{ kind: slow_headers, connections: 1, from: 127.0.0.x, path: nope }}\n"),
            "t.yaml",
            &NoExtensions,
        )
        .unwrap_err();
        let from =
            e.0.iter()
                .find(|d| d.message.contains("bad source address `127.0.0.x`"))
                .unwrap();
        assert!(
            from.hint.as_deref().unwrap().contains("a range (127.0.0.2-127.0.0.9)"),
            "{from:?}"
        );
        let path = e.0.iter().find(|d| d.message.contains("bad path `nope`")).unwrap();
        assert_eq!(path.location, "t.yaml:6:66");
        let msgs = errors("abuse: { kind: slow_headers }\n");
        assert!(msgs.iter().any(|m| m.ends_with("t.yaml:5:8")), "{msgs:?}");
        let msgs = errors("abuse:\n  - { kind: slow_body, connections: 1, byte_every: 0s }\n");
        assert!(msgs.iter().any(|m| m.contains("above 0 and at most 1h")), "{msgs:?}");

        // Times past the end of the load are warnings: the attack stops with the load.
        let text = format!("{BASE}abuse:\n  - {{ kind: idle_keepalive, connections: 1, start: 5s, stop: 20s }}\n  - {{ kind: idle_keepalive, connections: 1, start: 10s }}\n");
        let s = load(&text, "t.yaml", &NoExtensions).unwrap();
        let warnings: Vec<&str> = s.warnings.iter().map(|w| w.message.as_str()).collect();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("after the end of the load"), "{warnings:?}");
        assert!(warnings[1].contains("it never runs"), "{warnings:?}");
        assert_eq!(
            s.abuse[0].span(s.duration()),
            (Duration::from_secs(5), Duration::from_secs(10))
        );
    }
}
