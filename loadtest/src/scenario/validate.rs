//! File structs → validated [`Scenario`], collecting every problem with its position.

use std::time::Duration;

use arena_core::diag::parse_document;
use arena_core::diag::yaml::{self, Pos};
use http::{HeaderName, Method};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use saphyr::MarkedYamlOwned;

use super::file::{ErrorsFile, HttpFile, ModeFile, RequestFile, StageFile, VarFile, TOP_LEVEL_KEYS};
use super::template::{self, Template, Var, VarGen};
use super::threshold::{self, Threshold};
use super::{
    BaseUrl, ConfigErrors, Diagnostic, Diagnostics, ErrorRule, HttpSettings, HttpVersion, Mode, RequestSpec, Scenario,
    ScenarioHooks, Stage,
};

/// Nothing sensible runs longer than a day; catches `duration: 5000h` typos.
const MAX_TOTAL_DURATION: Duration = Duration::from_secs(24 * 3600);

/// Raw nodes and decoded values of the top-level sections.
#[derive(Default)]
struct Sections<'n> {
    name: Option<(String, Pos)>,
    description: Option<String>,
    target: Option<(String, Pos)>,
    mode: Option<ModeFile>,
    http: Option<(HttpFile, &'n MarkedYamlOwned)>,
    stages: Option<&'n MarkedYamlOwned>,
    requests: Option<&'n MarkedYamlOwned>,
    vars: Option<&'n MarkedYamlOwned>,
    errors: Option<ErrorsFile>,
    thresholds: Option<&'n MarkedYamlOwned>,
    seed: Option<u64>,
    fleet: Option<&'n MarkedYamlOwned>,
    faults: Option<&'n MarkedYamlOwned>,
}

pub(super) fn load<H: ScenarioHooks>(
    text: &str,
    origin: &str,
    hooks: &H,
) -> Result<Scenario<H::Fleet, H::Faults>, ConfigErrors> {
    let root = parse_document(text, origin)?;
    let mut d = Diagnostics::new(&root, origin, text);
    let scenario = build(&mut d, hooks);
    if let Some(s) = &scenario {
        hooks.validate(s, &mut d);
    }
    let diags = d.into_list();
    match scenario {
        Some(mut s) if !diags.iter().any(Diagnostic::is_error) => {
            s.warnings = diags;
            Ok(s)
        }
        _ => Err(ConfigErrors(diags)),
    }
}

fn sections<'n>(d: &mut Diagnostics<'n>, root: &'n MarkedYamlOwned) -> Sections<'n> {
    let mut s = Sections::default();
    let Some(entries) = yaml::entries(root) else {
        d.error(
            yaml::pos(root),
            "a scenario must be a mapping of sections",
            Some(format!("top-level keys: {}", TOP_LEVEL_KEYS.join(", "))),
        );
        return s;
    };
    for (key, key_node, value) in entries {
        match key.as_str() {
            "name" => s.name = d.decode::<String>(value).map(|v| (v, yaml::pos(value))),
            "description" => s.description = d.decode(value),
            "target" => {
                if !yaml::is_null(value) {
                    s.target = d.decode::<String>(value).map(|v| (v, yaml::pos(value)));
                }
            }
            "mode" => s.mode = d.decode(value),
            "http" => {
                if !yaml::is_null(value) {
                    s.http = d.decode::<HttpFile>(value).map(|h| (h, value));
                }
            }
            "stages" => s.stages = Some(value),
            "requests" => s.requests = Some(value),
            "vars" => s.vars = Some(value),
            "errors" => s.errors = d.decode(value),
            "thresholds" => s.thresholds = Some(value),
            "seed" => s.seed = d.decode(value),
            "fleet" => s.fleet = Some(value),
            "faults" => s.faults = Some(value),
            other => {
                let hint = match yaml::closest(other, TOP_LEVEL_KEYS) {
                    Some(best) => format!("did you mean `{best}`? top-level keys: {}", TOP_LEVEL_KEYS.join(", ")),
                    None => format!("top-level keys: {}", TOP_LEVEL_KEYS.join(", ")),
                };
                d.error(
                    yaml::pos(key_node),
                    format!("unknown top-level key `{other}`"),
                    Some(hint),
                );
            }
        }
    }
    s
}

fn build<H: ScenarioHooks>(d: &mut Diagnostics<'_>, hooks: &H) -> Option<Scenario<H::Fleet, H::Faults>> {
    let root = d.root();
    let s = sections(d, root);
    let mode = match s.mode {
        Some(ModeFile::Closed) => Mode::Closed,
        _ => Mode::Open,
    };
    let name = match s.name {
        Some((n, pos)) => {
            if n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
                d.error(
                    pos,
                    format!("bad scenario name `{n}`"),
                    Some("use letters, digits, `-`, `_` and `.` (it names the result files)".into()),
                );
            }
            n
        }
        None => {
            d.error(
                yaml::pos(root),
                "missing required key `name`",
                Some("add e.g. `name: smoke` (it names the result files)".into()),
            );
            String::new()
        }
    };
    let target = s.target.and_then(|(t, pos)| match BaseUrl::parse(&t) {
        Ok(_) => Some(t),
        Err((msg, hint)) => {
            d.error(pos, msg, Some(hint));
            None
        }
    });
    let http = http_settings(d, s.http, mode);
    let stages = stages(d, s.stages, mode);
    let (vars, declared) = vars(d, s.vars);
    let requests = requests(d, s.requests, &vars, &declared);
    let thresholds = thresholds(d, s.thresholds);
    let fleet = s.fleet.filter(|n| !yaml::is_null(n)).and_then(|n| hooks.fleet(n, d));
    let faults = s.faults.filter(|n| !yaml::is_null(n)).and_then(|n| hooks.faults(n, d));
    if target.is_none() && s.fleet.is_none() {
        d.warn(
            yaml::pos(root),
            "no `target` and no `fleet`",
            Some("add `target: http://HOST:PORT`, or pass `--target URL` to `run`".into()),
        );
    }
    Some(Scenario {
        origin: d.origin().to_string(),
        name,
        description: s.description,
        target,
        mode,
        http,
        stages,
        requests,
        vars,
        errors: match s.errors {
            Some(ErrorsFile::Non2xx) => ErrorRule::Non2xx,
            _ => ErrorRule::Status5xx,
        },
        thresholds,
        seed: s.seed,
        fleet,
        faults,
        warnings: Vec::new(),
    })
}

fn child<'n>(node: &'n MarkedYamlOwned, key: &str) -> Option<&'n MarkedYamlOwned> {
    yaml::entries(node)?
        .into_iter()
        .find(|(k, _, _)| k == key)
        .map(|(_, _, v)| v)
}

/// Position of `node[key]`, or of `node` itself when the key is absent.
fn pos_of(node: &MarkedYamlOwned, key: &str) -> Pos {
    child(node, key).map_or_else(|| yaml::pos(node), yaml::pos)
}

fn http_settings(d: &mut Diagnostics<'_>, file: Option<(HttpFile, &MarkedYamlOwned)>, mode: Mode) -> HttpSettings {
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

fn stages(d: &mut Diagnostics<'_>, node: Option<&MarkedYamlOwned>, mode: Mode) -> Vec<Stage> {
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

/// Valid variables, and the names of all declared ones (so a broken declaration does not
/// also show up as "unknown variable" at every use).
fn vars(d: &mut Diagnostics<'_>, node: Option<&MarkedYamlOwned>) -> (Vec<Var>, Vec<String>) {
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

fn requests(
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
    let lookup = |n: &str| vars.iter().position(|v| v.name == n);
    let mut out = Vec::new();
    for (i, r) in d.decode_list::<RequestFile>(node, "requests") {
        let item = &items[i];
        let method_text = r.method.clone().unwrap_or_else(|| "GET".into());
        let method = match Method::from_bytes(method_text.to_ascii_uppercase().as_bytes()) {
            Ok(m) => m,
            Err(_) => {
                d.error(pos_of(item, "method"), format!("bad HTTP method `{method_text}`"), None);
                Method::GET
            }
        };
        let weight = r.weight.unwrap_or(1.0);
        if !weight.is_finite() || weight <= 0.0 {
            d.error(
                pos_of(item, "weight"),
                format!("`weight` must be above 0, found {weight}"),
                Some("weights are relative: 80 and 20 mean 80% and 20%".into()),
            );
        }
        let path_pos = pos_of(item, "path");
        if !r.path.starts_with('/') {
            d.error(path_pos, format!("path `{}` must start with `/`", r.path), None);
        }
        if r.path.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
            d.error(
                path_pos,
                "path contains whitespace",
                Some("percent-encode it (`%20`)".into()),
            );
        }
        check_refs(d, &r.path, path_pos, declared);
        let mut headers = Vec::new();
        let header_nodes = child(item, "headers").and_then(yaml::entries).unwrap_or_default();
        for (name, value) in &r.headers {
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
            check_refs(d, value, value_pos, declared);
            headers.push((hn, Template::compile(value, lookup)));
        }
        let body = r.body.as_ref().map(|b| {
            check_refs(d, b, pos_of(item, "body"), declared);
            Template::compile(b, lookup)
        });
        let path = Template::compile(&r.path, lookup);
        // Render once with sample values: a `pick` value with a space would break every request.
        let mut sample = String::new();
        path.render(vars, &mut SmallRng::seed_from_u64(0), &mut sample);
        if let Err(e) = http::uri::PathAndQuery::try_from(sample.as_str()) {
            d.error(
                path_pos,
                format!("path renders to an invalid URI `{sample}`: {e}"),
                Some("percent-encode special characters in the path and in `pick` values".into()),
            );
        }
        out.push(RequestSpec {
            name: r.name.clone().unwrap_or_else(|| format!("{method} {}", r.path)),
            weight,
            method,
            path,
            headers,
            body,
        });
    }
    out
}

fn thresholds(d: &mut Diagnostics<'_>, node: Option<&MarkedYamlOwned>) -> Vec<Threshold> {
    let Some(node) = node.filter(|n| !yaml::is_null(n)) else {
        return Vec::new();
    };
    let items = yaml::items(node).unwrap_or_default();
    let mut out = Vec::new();
    for (i, text) in d.decode_list::<String>(node, "thresholds") {
        let pos = yaml::pos(&items[i]);
        match threshold::parse(&text) {
            Ok(t) => out.push(t),
            Err(e) => {
                // Point into the expression when it sits on one line as written.
                let quoted = usize::from(d.char_at(pos).is_some_and(|c| c == '"' || c == '\''));
                let col = pos.col + quoted + e.offset;
                d.error(
                    Pos { line: pos.line, col },
                    format!("threshold `{text}`: {}", e.message),
                    e.hint,
                );
            }
        }
    }
    out
}
