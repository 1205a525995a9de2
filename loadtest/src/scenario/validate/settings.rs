//! The load shape of a scenario: `http:` connection settings and `stages:`.

use std::time::Duration;

use arena_core::diag::yaml;
use saphyr::MarkedYamlOwned;

use super::pos_of;
use crate::scenario::file::{HttpFile, StageFile};
use crate::scenario::{Diagnostics, HttpSettings, HttpVersion, Mode, Stage};

/// Nothing sensible runs longer than a day; catches `duration: 5000h` typos.
const MAX_TOTAL_DURATION: Duration = Duration::from_secs(24 * 3600);

/// `http:` over the defaults, each bad value reported at its key.
pub(super) fn http_settings(
    d: &mut Diagnostics<'_>,
    file: Option<(HttpFile, &MarkedYamlOwned)>,
    mode: Mode,
) -> HttpSettings {
    let mut h = HttpSettings::default();
    let Some((f, node)) = file else { return h };
    match f.version {
        None | Some(1) => {}
        Some(2) => h.version = HttpVersion::Http2,
        Some(v) => d.error(
            pos_of(node, "version"),
            format!("unsupported HTTP version {v}"),
            Some("one of: 1 (HTTP/1.1 keep-alive), 2 (h2c, prior knowledge)".into()),
        ),
    }
    if let Some(c) = f.connections {
        if c == 0 || c > 100_000 {
            d.error(
                pos_of(node, "connections"),
                format!("`connections` must be between 1 and 100000, found {c}"),
                None,
            );
        }
        h.connections = c.max(1);
    }
    if let Some(st) = f.streams {
        if st == 0 || st > 10_000 {
            d.error(
                pos_of(node, "streams"),
                format!("`streams` must be between 1 and 10000, found {st}"),
                None,
            );
        } else if st > 1 && h.version == HttpVersion::Http1 {
            d.error(
                pos_of(node, "streams"),
                "`streams` above 1 needs HTTP/2",
                Some("set `version: 2`, or raise `connections` for HTTP/1.1".into()),
            );
        }
        h.streams = st.max(1);
    }
    for (key, value, slot) in [
        ("timeout", f.timeout, &mut h.timeout),
        ("connect_timeout", f.connect_timeout, &mut h.connect_timeout),
    ] {
        if let Some(v) = value {
            if v.0.is_zero() {
                d.error(
                    pos_of(node, key),
                    format!("`{key}` must be above 0"),
                    Some("e.g. `2s`".into()),
                );
            }
            *slot = v.0.max(Duration::from_millis(1));
        }
    }
    if let Some(m) = f.max_in_flight {
        if m == 0 {
            d.error(
                pos_of(node, "max_in_flight"),
                "`max_in_flight` must be at least 1",
                None,
            );
        } else if mode == Mode::Closed {
            d.warn(
                pos_of(node, "max_in_flight"),
                "`max_in_flight` has no effect in closed mode",
                Some("closed loop keeps exactly `connections` requests in flight".into()),
            );
        }
        h.max_in_flight = m.max(1);
    }
    h
}

/// The stages, checked against the mode: open loop needs a rate per stage, closed loop has none.
pub(super) fn stages(d: &mut Diagnostics<'_>, node: Option<&MarkedYamlOwned>, mode: Mode) -> Vec<Stage> {
    let root_pos = yaml::pos(d.root());
    let Some(node) = node else {
        d.error(
            root_pos,
            "missing required key `stages`",
            Some("add e.g. `stages: [{ duration: 10s, rate: 100 }]`".into()),
        );
        return Vec::new();
    };
    let items = yaml::items(node).unwrap_or_default();
    let decoded: Vec<(usize, StageFile)> = d.decode_list(node, "stages");
    if items.is_empty() && yaml::items(node).is_some() {
        d.error(
            yaml::pos(node),
            "`stages` is empty",
            Some("add at least one stage".into()),
        );
    }
    let mut out = Vec::new();
    let mut total = Duration::ZERO;
    for (i, st) in decoded {
        let item = &items[i];
        if st.duration.0.is_zero() {
            d.error(
                pos_of(item, "duration"),
                "a stage needs a duration above 0",
                Some("e.g. `10s`".into()),
            );
        }
        total += st.duration.0;
        match (mode, st.rate) {
            (Mode::Open, None) => d.error(
                yaml::pos(item),
                "an open-loop stage needs a `rate` (requests per second)",
                Some("add e.g. `rate: 200`, or set `mode: closed` for back-to-back load".into()),
            ),
            (Mode::Open, Some(r)) if !r.is_finite() || !(0.0..=10_000_000.0).contains(&r) => d.error(
                pos_of(item, "rate"),
                format!("`rate` must be between 0 and 10000000 requests/s, found {r}"),
                None,
            ),
            (Mode::Closed, Some(_)) => d.error(
                pos_of(item, "rate"),
                "closed-loop stages have no `rate`",
                Some("closed loop sends back-to-back on `http.connections`; use `mode: open` for a rate".into()),
            ),
            _ => {}
        }
        if st.ramp && mode == Mode::Closed {
            d.error(
                pos_of(item, "ramp"),
                "`ramp` needs an open-loop stage with a rate",
                None,
            );
        }
        out.push(Stage {
            duration: st.duration.0,
            rate: st.rate,
            ramp: st.ramp,
        });
    }
    if total > MAX_TOTAL_DURATION {
        d.error(
            yaml::pos(node),
            "stages add up to more than 24h",
            Some("check the durations".into()),
        );
    }
    out
}
