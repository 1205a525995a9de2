//! `release:`: the grey release to follow — its name, poll interval and admin address, and the
//! user-id header checked against the requests that send it.

use std::net::SocketAddr;

use arena_core::diag::yaml::{self, Seg};
use http::HeaderName;
use saphyr::MarkedYamlOwned;

use super::child;
use crate::release::MAX_USER_IDS;
use crate::scenario::file::ReleaseFile;
use crate::scenario::release::{ReleaseWatch, UserIds, DEFAULT_POLL, MAX_POLL, MIN_POLL};
use crate::scenario::{Diagnostics, RequestSpec, Var, VarGen};

const AT: Seg = Seg::Key("release");

/// The section (kept when it decodes, mistakes reported at their keys); `fleet` says whether
/// the scenario brings a fleet, whose gateway is polled when `admin:` is absent.
pub(super) fn release(
    d: &mut Diagnostics<'_>,
    node: Option<&MarkedYamlOwned>,
    requests: (Option<&MarkedYamlOwned>, &[RequestSpec]),
    vars: &[Var],
    fleet: bool,
) -> Option<ReleaseWatch> {
    let node = node.filter(|n| !yaml::is_null(n))?;
    let f: ReleaseFile = d.decode(node)?;
    if f.name.is_empty() || !f.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        d.error_at(
            &[AT, Seg::Key("name")],
            format!("bad release name `{}`", f.name),
            Some("the name of a release in the gateway's `releases:` (letters, digits, `-`, `_`, `.`)".into()),
        );
    }
    let poll = f.poll.map_or(DEFAULT_POLL, |p| p.0);
    if !(MIN_POLL..=MAX_POLL).contains(&poll) {
        d.error_at(
            &[AT, Seg::Key("poll")],
            format!(
                "`poll` must be between 10ms and 10s, found {}",
                humantime::format_duration(poll)
            ),
            Some("the gateway judges a release every 100ms: `100ms` sees every step".into()),
        );
    }
    let admin = f.admin.as_deref().and_then(|a| match a.parse::<SocketAddr>() {
        Ok(addr) => Some(addr),
        Err(_) => {
            d.error_at(
                &[AT, Seg::Key("admin")],
                format!("`admin` must be an address `ip:port`, found `{a}`"),
                Some("the gateway's admin listener, e.g. `127.0.0.1:9901`".into()),
            );
            None
        }
    });
    if let Some(t) = &f.token_env {
        if t.is_empty() || t.contains(['=', '\0']) {
            d.error_at(
                &[AT, Seg::Key("token_env")],
                format!("bad environment variable name `{t}`"),
                None,
            );
        }
    }
    if f.admin.is_none() && !fleet {
        d.error(
            yaml::pos(node),
            "`release` needs the gateway's admin address",
            Some("add `admin: 127.0.0.1:9901`, or bring a `fleet:` (its gateway is polled)".into()),
        );
    }
    let users = f.users.as_deref().and_then(|h| users(d, h, requests, vars));
    Some(ReleaseWatch {
        name: f.name,
        poll,
        users,
        admin,
        token_env: f.token_env,
    })
}

/// The user-id header: sent by at least one request, each time exactly one `range` variable
/// of ids in `0..MAX_USER_IDS` (they index the tracker's table).
fn users(
    d: &mut Diagnostics<'_>,
    written: &str,
    (node, requests): (Option<&MarkedYamlOwned>, &[RequestSpec]),
    vars: &[Var],
) -> Option<UserIds> {
    let at = [AT, Seg::Key("users")];
    let Ok(header) = HeaderName::from_bytes(written.as_bytes()) else {
        d.error_at(&at, format!("bad header name `{written}`"), None);
        return None;
    };
    let items = node.and_then(yaml::items).unwrap_or_default();
    let mut ids = 0u32;
    let mut senders = 0;
    for (i, r) in requests.iter().enumerate() {
        for (_, t) in r.headers.iter().filter(|(n, _)| *n == header) {
            senders += 1;
            let range = t.single_var().and_then(|v| match vars.get(v)?.generator {
                VarGen::Range(lo, hi) => Some((lo, hi)),
                VarGen::Pick(_) => None,
            });
            match range {
                Some((lo, hi)) if lo >= 0 && hi < i64::from(MAX_USER_IDS) => {
                    ids = ids.max(u32::try_from(hi + 1).unwrap_or(MAX_USER_IDS));
                }
                _ => {
                    // At the header's value when the request list lines up with what was written.
                    let pos = (items.len() == requests.len())
                        .then(|| child(&items[i], "headers").and_then(|h| child(h, header.as_str())))
                        .flatten()
                        .map_or_else(|| yaml::locate(d.root(), &at), yaml::pos);
                    d.error(
                        pos,
                        format!(
                            "header `{header}` of request `{}` must be exactly one `range` variable of user ids",
                            r.name
                        ),
                        Some(format!(
                            "e.g. `{header}: \"{{user_id}}\"` with `user_id: {{ range: [1, 100000] }}` (ids from 0 to {})",
                            MAX_USER_IDS - 1
                        )),
                    );
                }
            }
        }
    }
    if senders == 0 {
        d.error_at(
            &at,
            format!("no request sends header `{header}`"),
            Some(format!(
                "add `headers: {{ {header}: \"{{user_id}}\" }}` to the requests of the split route"
            )),
        );
        return None;
    }
    Some(UserIds { header, ids })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::time::Duration;

    use crate::fleet::FleetHooks;
    use crate::scenario::{load, NoExtensions};

    const BASE: &str = "name: t\ntarget: http://127.0.0.1:8080\nstages: [{ duration: 10s, rate: 10 }]\nrequests:\n  - { path: /v1/matches, headers: { x-user-id: \"{user_id}\" } }\n  - { path: /v1/players }\nvars: { user_id: { range: [1, 2000] }, m: { pick: [a] } }\n";

    fn errors(extra: &str) -> Vec<String> {
        let e = load(&format!("{BASE}{extra}"), "t.yaml", &NoExtensions).unwrap_err();
        e.0.iter()
            .map(|d| {
                format!(
                    "{} @ {} [{}]",
                    d.message,
                    d.location,
                    d.hint.clone().unwrap_or_default()
                )
            })
            .collect()
    }

    fn has(msgs: &[String], what: &str, at: &str) {
        assert!(
            msgs.iter().any(|m| m.contains(what) && m.contains(&format!("@ {at} "))),
            "`{what}` at {at}: {msgs:#?}"
        );
    }

    #[test]
    fn a_release_with_users_and_its_thresholds() {
        let text = format!(
            "{BASE}release: {{ name: match-api-v2, poll: 250ms, users: x-user-id, admin: 127.0.0.1:9901, token_env: ARENA_ADMIN_TOKEN }}\nthresholds: [\"users_moved_back == 0\", \"final_state == promoted\", \"final_weight >= 100%\", \"rollback_after < 2s\", \"share_version(canary) > 0\"]\n"
        );
        let s = load(&text, "t.yaml", &NoExtensions).unwrap();
        let r = s.release.unwrap();
        assert_eq!((r.name.as_str(), r.poll), ("match-api-v2", Duration::from_millis(250)));
        let users = r.users.unwrap();
        assert_eq!((users.header.as_str(), users.ids), ("x-user-id", 2001));
        assert_eq!(r.admin, Some("127.0.0.1:9901".parse().unwrap()));
        assert_eq!(r.token_env.as_deref(), Some("ARENA_ADMIN_TOKEN"));
        assert_eq!(s.thresholds.len(), 5);
        // The defaults: 100 ms polls, no user tracking.
        let s = load(
            &format!("{BASE}release: {{ name: r, admin: 127.0.0.1:9901 }}\n"),
            "t.yaml",
            &NoExtensions,
        )
        .unwrap();
        let r = s.release.unwrap();
        assert_eq!((r.poll, r.users), (Duration::from_millis(100), None));
    }

    #[test]
    fn mistakes_are_reported_at_their_keys() {
        let msgs = errors(
            "release:\n  name: \"bad name\"\n  poll: 1ms\n  admin: localhost\n  users: x-session\n  token_env: \"\"\n  pol: 1s\n",
        );
        has(&msgs, "unknown key `pol`", "t.yaml:14:3");
        let msgs = errors(
            "release:\n  name: \"bad name\"\n  poll: 1ms\n  admin: localhost\n  users: x-session\n  token_env: \"\"\n",
        );
        has(&msgs, "bad release name `bad name`", "t.yaml:9:9");
        has(&msgs, "`poll` must be between 10ms and 10s, found 1ms", "t.yaml:10:9");
        has(
            &msgs,
            "`admin` must be an address `ip:port`, found `localhost`",
            "t.yaml:11:10",
        );
        has(&msgs, "no request sends header `x-session`", "t.yaml:12:10");
        has(&msgs, "bad environment variable name ``", "t.yaml:13:14");
        assert!(
            msgs.iter()
                .any(|m| m.contains("add `headers: { x-session: \"{user_id}\" }`")),
            "{msgs:#?}"
        );
    }

    #[test]
    fn the_user_header_must_be_one_range_of_ids() {
        for (value, var) in [
            ("u-{user_id}", "user_id: { range: [1, 10] }"),
            ("{user_id}", "user_id: { pick: [a, b] }"),
            ("{user_id}", "user_id: { range: [-5, 10] }"),
            ("{user_id}", "user_id: { range: [1, 5000000] }"),
        ] {
            let text = format!(
                "name: t\ntarget: http://127.0.0.1:8080\nstages: [{{ duration: 1s, rate: 1 }}]\nrequests:\n  - {{ path: /a, headers: {{ x-user-id: \"{value}\" }} }}\nvars: {{ {var} }}\nrelease: {{ name: r, users: x-user-id, admin: 127.0.0.1:1 }}\n"
            );
            let e = load(&text, "t.yaml", &NoExtensions).unwrap_err();
            let d =
                e.0.iter()
                    .find(|d| d.message.contains("must be exactly one `range` variable"))
                    .unwrap_or_else(|| panic!("{value} {var}: {e}"));
            assert_eq!(d.location, "t.yaml:5:39", "{value} {var}");
            assert!(d.hint.as_deref().unwrap().contains("ids from 0 to 999999"), "{d:?}");
        }
    }

    #[test]
    fn a_release_needs_an_admin_address_and_thresholds_need_their_sections() {
        let msgs = errors("release: { name: r }\n");
        has(&msgs, "`release` needs the gateway's admin address", "t.yaml:8:10");
        let msgs = errors("thresholds: [\"final_state == promoted\", \"errors < 1%\"]\n");
        has(
            &msgs,
            "threshold `final_state == promoted` needs a `release:` section",
            "t.yaml:8:14",
        );
        let msgs = errors("release: { name: r, admin: 127.0.0.1:1 }\nthresholds: [\"users_moved_back == 0\"]\n");
        has(
            &msgs,
            "threshold `users_moved_back == 0` needs `release.users`",
            "t.yaml:9:14",
        );
        // share_version reads answers only: no release section needed.
        assert!(load(
            &format!("{BASE}thresholds: [\"share_version(canary) < 5%\"]\n"),
            "t.yaml",
            &NoExtensions
        )
        .is_ok());
    }

    #[test]
    fn with_a_fleet_its_gateway_is_polled() {
        let base = BASE.replace("target: http://127.0.0.1:8080\n", "");
        let fleet = "fleet:\n  pods: [{ name: pod-1, ip: 127.0.0.11 }]\n";
        let gateway = "  gateway: { config: \"clusters: []\" }\n";
        let ok = format!("{base}{fleet}{gateway}release: {{ name: r, users: x-user-id }}\n");
        let s = load(&ok, "t.yaml", &FleetHooks).unwrap();
        assert_eq!(s.release.unwrap().admin, None);
        let e = load(&format!("{base}{fleet}release: {{ name: r }}\n"), "t.yaml", &FleetHooks).unwrap_err();
        let d =
            e.0.iter()
                .find(|d| d.message.contains("the fleet has none"))
                .unwrap_or_else(|| panic!("{e}"));
        assert_eq!(d.location, "t.yaml:9:10");
        // An explicit admin address needs no gateway in the fleet.
        assert!(load(
            &format!("{base}{fleet}release: {{ name: r, admin: 127.0.0.1:1 }}\n"),
            "t.yaml",
            &FleetHooks
        )
        .is_ok());
    }
}
