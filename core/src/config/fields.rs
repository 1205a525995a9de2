//! Checks every section uses: socket addresses, unique names, shares, references to names
//! declared elsewhere in the file, `${env:NAME}` expansion.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::str::FromStr;

use saphyr::MarkedYamlOwned;

use crate::diag::{yaml, Diagnostics, Seg};

/// Prefix of the gateway's own headers (debug answers, internal signals): a client's are
/// dropped before routing, so nothing may be keyed or matched on them.
pub const INTERNAL_HEADER_PREFIX: &str = "x-arena-";

/// Whether `name` (lowercase, as `http` keeps header names) is one of the gateway's own.
pub fn is_internal_header(name: &str) -> bool {
    name.len() > INTERNAL_HEADER_PREFIX.len() && name.starts_with(INTERNAL_HEADER_PREFIX)
}

/// The error of a key or match on an internal header (see [`INTERNAL_HEADER_PREFIX`]).
pub fn internal_header_error(c: &mut Diagnostics<'_>, path: &[Seg], name: &str, what: &str) {
    c.error_at(
        path,
        format!("{what} cannot use header `{name}`: a client's `{INTERNAL_HEADER_PREFIX}*` headers are dropped before routing"),
        Some("they are the gateway's own signals; use another header".into()),
    );
}

/// `base` followed by `keys` (paths into the document for positions).
pub fn path(base: &[Seg], keys: &[&'static str]) -> Vec<Seg> {
    let mut p = base.to_vec();
    p.extend(keys.iter().map(|k| Seg::Key(k)));
    p
}

/// An `ip:port` (names are not resolved here).
pub fn parse_addr(c: &mut Diagnostics<'_>, path: &[Seg], text: &str, what: &str) -> Option<SocketAddr> {
    match SocketAddr::from_str(text.trim()) {
        Ok(a) => Some(a),
        Err(_) => {
            c.error_at(
                path,
                format!("bad {what} address `{text}`"),
                Some(
                    "write an IP and a port, e.g. `127.0.0.1:8080` or `[::1]:8080` (names are not resolved here)"
                        .into(),
                ),
            );
            None
        }
    }
}

/// Names of a list section must be non-empty and unique; reports at each offender.
pub fn check_unique<'n>(c: &mut Diagnostics<'_>, section: &'static str, names: impl Iterator<Item = (usize, &'n str)>) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, name) in names {
        let at = [Seg::Key(section), Seg::Index(i), Seg::Key("name")];
        if name.trim().is_empty() {
            c.error_at(&at, "name must not be empty", None);
        } else if let Some(first) = seen.get(name) {
            let first_line = yaml::locate(c.root(), &[Seg::Key(section), Seg::Index(*first)]).line;
            c.error_at(
                &at,
                format!("duplicate name `{name}` in {section}"),
                Some(format!("first defined at line {first_line}; names must be unique")),
            );
        } else {
            seen.insert(name, i);
        }
    }
}

/// `name` of every item of a list section, valid or not: a reference to an item that was
/// written but rejected is already reported, and must not be reported again as unknown.
pub fn declared_names(root: &MarkedYamlOwned, section: &str) -> Vec<String> {
    let Some(section) = yaml::entries(root).and_then(|e| e.into_iter().find(|(k, _, _)| k == section)) else {
        return Vec::new();
    };
    yaml::items(section.2)
        .unwrap_or_default()
        .iter()
        .filter_map(|item| {
            yaml::entries(item)?
                .into_iter()
                .find(|(k, _, _)| k == "name")
                .and_then(|(_, _, v)| yaml::scalar(v))
        })
        .collect()
}

/// Hint for a reference to an unknown name: the nearest defined one, or where to define it.
pub fn unknown_name_hint(name: &str, defined: &[&str], kind: &str, section: &str) -> String {
    match yaml::closest(name, defined) {
        Some(best) => format!("did you mean `{best}`? defined {kind}: {}", defined.join(", ")),
        None if defined.is_empty() => format!("define it under `{section}:`"),
        None => format!("defined {kind}: {}", defined.join(", ")),
    }
}

/// A share such as `1%` or `0.01`, within 0..=1.
pub fn parse_share(text: &str) -> Option<f64> {
    let t = text.trim();
    match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().ok().map(|p| p / 100.0),
        None => t.parse::<f64>().ok(),
    }
    .filter(|x| (0.0..=1.0).contains(x))
}

/// Expands `${env:NAME}` from `env`; an unset variable is an error, not an empty string.
pub fn expand_env(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${env:") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 6..];
        let Some(end) = after.find('}') else {
            return Err("unterminated `${env:`".into());
        };
        let name = &after[..end];
        match env(name) {
            Some(v) => out.push_str(&v),
            None => return Err(format!("environment variable `{name}` is unset")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
#[path = "fields_props.rs"]
mod props;
