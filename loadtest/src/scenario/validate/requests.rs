//! What a scenario sends: `vars:` and the `requests:` mix, template references checked against
//! the declared variables.

use std::collections::BTreeMap;

use arena_core::diag::yaml::{self, Pos};
use http::{HeaderName, Method};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use saphyr::MarkedYamlOwned;

use super::{child, pos_of};
use crate::scenario::file::{RequestFile, VarFile};
use crate::scenario::template::{self, Template, Var, VarGen};
use crate::scenario::{Diagnostics, RequestSpec};

/// Valid variables, and the names of all declared ones (so a broken declaration does not
/// also show up as "unknown variable" at every use).
pub(super) fn vars(d: &mut Diagnostics<'_>, node: Option<&MarkedYamlOwned>) -> (Vec<Var>, Vec<String>) {
    let Some(node) = node.filter(|n| !yaml::is_null(n)) else {
        return (Vec::new(), Vec::new());
    };
    let Some(entries) = yaml::entries(node) else {
        d.error(
            yaml::pos(node),
            "`vars` must be a mapping of variable names",
            Some("e.g. `vars: { user_id: { range: [1, 1000] } }`".into()),
        );
        return (Vec::new(), Vec::new());
    };
    let mut out = Vec::new();
    let declared = entries.iter().map(|(name, _, _)| name.clone()).collect();
    for (name, key_node, value) in entries {
        if template::references(&format!("{{{name}}}")).len() != 1 {
            d.error(
                yaml::pos(key_node),
                format!("bad variable name `{name}`"),
                Some("use letters, digits and `_`, not starting with a digit".into()),
            );
            continue;
        }
        let Some(v) = d.decode::<VarFile>(value) else { continue };
        let generator = match (v.pick, v.range) {
            (Some(choices), None) => {
                if choices.is_empty() {
                    d.error(pos_of(value, "pick"), "`pick` needs at least one value", None);
                }
                VarGen::Pick(choices)
            }
            (None, Some(r)) => match r.as_slice() {
                [lo, hi] if lo <= hi => VarGen::Range(*lo, *hi),
                _ => {
                    d.error(
                        pos_of(value, "range"),
                        "`range` needs two integers `[low, high]` with low <= high",
                        Some("e.g. `range: [1, 100000]` (both inclusive)".into()),
                    );
                    continue;
                }
            },
            _ => {
                d.error(
                    yaml::pos(value),
                    format!("variable `{name}` needs exactly one of `pick` or `range`"),
                    Some("e.g. `{ pick: [a, b] }` or `{ range: [1, 100] }`".into()),
                );
                continue;
            }
        };
        out.push(Var { name, generator });
    }
    (out, declared)
}

/// Reports `{name}` references to undefined variables in one template string.
fn check_refs(d: &mut Diagnostics<'_>, text: &str, pos: Pos, declared: &[String]) {
    for (_, name) in template::references(text) {
        if declared.iter().any(|v| v == name) {
            continue;
        }
        let names: Vec<&str> = declared.iter().map(String::as_str).collect();
        let hint = match yaml::closest(name, &names) {
            Some(best) => format!("did you mean `{{{best}}}`? defined vars: {}", names.join(", ")),
            None if names.is_empty() => "define it under `vars:`".to_string(),
            None => format!("defined vars: {}", names.join(", ")),
        };
        d.error(pos, format!("unknown variable `{{{name}}}`"), Some(hint));
    }
}

pub(super) fn requests(
    d: &mut Diagnostics<'_>,
    node: Option<&MarkedYamlOwned>,
    vars: &[Var],
    declared: &[String],
) -> Vec<RequestSpec> {
    let root_pos = yaml::pos(d.root());
    let Some(node) = node else {
        d.error(
            root_pos,
            "missing required key `requests`",
            Some("add e.g. `requests: [{ method: GET, path: / }]`".into()),
        );
        return Vec::new();
    };
    let items = yaml::items(node).unwrap_or_default();
    if items.is_empty() && yaml::items(node).is_some() {
        d.error(
            yaml::pos(node),
            "`requests` is empty",
            Some("add at least one request".into()),
        );
    }
    let scope = Scope { vars, declared };
    let mut out = Vec::new();
    for (i, r) in d.decode_list::<RequestFile>(node, "requests") {
        out.push(request(d, &items[i], r, &scope));
    }
    out
}

/// The variables in scope of a request's templates: the valid ones to compile against, and every
/// declared name to check references against.
struct Scope<'a> {
    vars: &'a [Var],
    declared: &'a [String],
}

impl Scope<'_> {
    /// Reports unknown references in `text`, then compiles it.
    fn template(&self, d: &mut Diagnostics<'_>, text: &str, pos: Pos) -> Template {
        check_refs(d, text, pos, self.declared);
        Template::compile(text, |n| self.vars.iter().position(|v| v.name == n))
    }
}

/// One entry of the mix, every problem of it reported (in the order the fields are written).
fn request(d: &mut Diagnostics<'_>, item: &MarkedYamlOwned, r: RequestFile, scope: &Scope<'_>) -> RequestSpec {
    let method = method(d, item, r.method.as_deref());
    let weight = r.weight.unwrap_or(1.0);
    if !weight.is_finite() || weight <= 0.0 {
        d.error(
            pos_of(item, "weight"),
            format!("`weight` must be above 0, found {weight}"),
            Some("weights are relative: 80 and 20 mean 80% and 20%".into()),
        );
    }
    let path_pos = pos_of(item, "path");
    check_path(d, &r.path, path_pos);
    let path = scope.template(d, &r.path, path_pos);
    let headers = headers(d, item, &r.headers, path_pos, scope);
    let body = r.body.as_ref().map(|b| scope.template(d, b, pos_of(item, "body")));
    check_rendered(d, &path, path_pos, scope.vars);
    RequestSpec {
        name: r.name.clone().unwrap_or_else(|| format!("{method} {}", r.path)),
        weight,
        method,
        path,
        headers,
        body,
    }
}

/// The request's method (GET when absent or unusable).
fn method(d: &mut Diagnostics<'_>, item: &MarkedYamlOwned, written: Option<&str>) -> Method {
    let text = written.unwrap_or("GET");
    match Method::from_bytes(text.to_ascii_uppercase().as_bytes()) {
        Ok(m) => m,
        Err(_) => {
            d.error(pos_of(item, "method"), format!("bad HTTP method `{text}`"), None);
            Method::GET
        }
    }
}

/// The path as written: absolute, and nothing that would need encoding.
fn check_path(d: &mut Diagnostics<'_>, path: &str, pos: Pos) {
    if !path.starts_with('/') {
        d.error(pos, format!("path `{path}` must start with `/`"), None);
    }
    if path.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
        d.error(
            pos,
            "path contains whitespace",
            Some("percent-encode it (`%20`)".into()),
        );
    }
}

/// Renders the path once with sample values: a `pick` value with a space would break every
/// request.
fn check_rendered(d: &mut Diagnostics<'_>, path: &Template, pos: Pos, vars: &[Var]) {
    let mut sample = String::new();
    path.render(vars, &mut SmallRng::seed_from_u64(0), &mut sample);
    if let Err(e) = http::uri::PathAndQuery::try_from(sample.as_str()) {
        d.error(
            pos,
            format!("path renders to an invalid URI `{sample}`: {e}"),
            Some("percent-encode special characters in the path and in `pick` values".into()),
        );
    }
}

/// The request's headers; those the load tester sets itself are refused.
fn headers(
    d: &mut Diagnostics<'_>,
    item: &MarkedYamlOwned,
    written: &BTreeMap<String, String>,
    path_pos: Pos,
    scope: &Scope<'_>,
) -> Vec<(HeaderName, Template)> {
    let mut headers = Vec::new();
    let header_nodes = child(item, "headers").and_then(yaml::entries).unwrap_or_default();
    for (name, value) in written {
        // Point at the header as written; the path stands in when its node is not found.
        let (key_pos, value_pos) = header_nodes
            .iter()
            .find(|(k, _, _)| k == name)
            .map_or((path_pos, path_pos), |(_, k, v)| (yaml::pos(k), yaml::pos(v)));
        let Ok(hn) = HeaderName::from_bytes(name.as_bytes()) else {
            d.error(key_pos, format!("bad header name `{name}`"), None);
            continue;
        };
        if hn == http::header::HOST || hn == http::header::CONTENT_LENGTH {
            d.error(
                key_pos,
                format!("header `{name}` is set by the load tester"),
                Some("the target URL gives `host`; the body gives `content-length`".into()),
            );
            continue;
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n') {
            d.error(value_pos, "header values cannot contain line breaks", None);
        }
        headers.push((hn, scope.template(d, value, value_pos)));
    }
    headers
}
