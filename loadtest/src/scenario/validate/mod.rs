//! File structs → validated [`Scenario`], collecting every problem with its position.
//!
//! This module walks the top-level sections; `settings` checks the load shape (`http:`,
//! `stages:`), `requests` what is sent (`vars:`, `requests:`), `abuse` the tester's own
//! abusive connections and `release` the grey release it follows; `tracing` is the section the
//! gateway and the sidecar share (`arena_core::config::tracing`).

mod abuse;
mod release;
mod requests;
mod settings;

use arena_core::config::tracing::{tracing, TracingFile};
use arena_core::diag::parse_document;
use arena_core::diag::yaml::{self, Pos};
use saphyr::MarkedYamlOwned;

use super::file::{ErrorsFile, HttpFile, ModeFile, TOP_LEVEL_KEYS};
use super::release::ReleaseWatch;
use super::threshold::{self, Threshold};
use super::{BaseUrl, ConfigErrors, Diagnostic, Diagnostics, ErrorRule, Mode, Scenario, ScenarioHooks};
use requests::{requests, vars};
use settings::{http_settings, stages};

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
    abuse: Option<&'n MarkedYamlOwned>,
    release: Option<&'n MarkedYamlOwned>,
    tracing: Option<TracingFile>,
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
            "abuse" => s.abuse = Some(value),
            "release" => s.release = Some(value),
            "tracing" => {
                if !yaml::is_null(value) {
                    s.tracing = d.decode::<TracingFile>(value);
                }
            }
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
    let name = name(d, s.name);
    let target = s.target.and_then(|(t, pos)| match BaseUrl::parse(&t) {
        Ok(_) => Some(t),
        Err((msg, hint)) => {
            d.error(pos, msg, Some(hint));
            None
        }
    });
    let http = http_settings(d, s.http, mode);
    let stages = stages(d, s.stages, mode);
    let total = stages.iter().map(|s| s.duration).sum();
    let (vars, declared) = vars(d, s.vars);
    let requests = requests(d, s.requests, &vars, &declared);
    let abuse = abuse::abuse(d, s.abuse, total);
    let phases = Phases {
        attack: !abuse.is_empty() || s.abuse.is_some_and(|n| !yaml::is_null(n)),
        baseline: abuse::leaves_a_baseline(&abuse, total),
    };
    let with_fleet = s.fleet.is_some_and(|n| !yaml::is_null(n));
    let release = release::release(d, s.release, (s.requests, &requests), &vars, with_fleet);
    let thresholds = thresholds(d, s.thresholds, phases, release.as_ref());
    let tracing = s.tracing.as_ref().and_then(|t| tracing(d, t, "arena-loadtest"));
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
        abuse,
        release,
        tracing,
        warnings: Vec::new(),
    })
}

/// The scenario's name, required: it names the result files, so it must be file-name safe.
fn name(d: &mut Diagnostics<'_>, written: Option<(String, Pos)>) -> String {
    let Some((n, pos)) = written else {
        d.error(
            yaml::pos(d.root()),
            "missing required key `name`",
            Some("add e.g. `name: smoke` (it names the result files)".into()),
        );
        return String::new();
    };
    if n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        d.error(
            pos,
            format!("bad scenario name `{n}`"),
            Some("use letters, digits, `-`, `_` and `.` (it names the result files)".into()),
        );
    }
    n
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

/// What the scenario's attacks leave to measure: an attack phase, a baseline without one.
#[derive(Clone, Copy)]
struct Phases {
    attack: bool,
    baseline: bool,
}

fn thresholds(
    d: &mut Diagnostics<'_>,
    node: Option<&MarkedYamlOwned>,
    phases: Phases,
    release: Option<&ReleaseWatch>,
) -> Vec<Threshold> {
    let Some(node) = node.filter(|n| !yaml::is_null(n)) else {
        return Vec::new();
    };
    let items = yaml::items(node).unwrap_or_default();
    let mut out = Vec::new();
    for (i, text) in d.decode_list::<String>(node, "thresholds") {
        let pos = yaml::pos(&items[i]);
        match threshold::parse(&text) {
            Ok(t) if t.metric.needs_attack() && !phases.attack => d.error(
                pos,
                format!("threshold `{text}` needs an `abuse:` section"),
                Some(
                    "add `abuse: [{ kind: slow_headers, connections: 100, start: 10s }]`, or drop the threshold".into(),
                ),
            ),
            Ok(t) if t.metric.needs_baseline() && !phases.baseline => d.error(
                pos,
                format!(
                    "threshold `{text}` compares with a baseline, but the attacks leave no second without an attack"
                ),
                Some("give an attack a `start:` after 0s (or a `stop:` before the end of the load)".into()),
            ),
            Ok(t) if t.metric.needs_release() && release.is_none() => d.error(
                pos,
                format!("threshold `{text}` needs a `release:` section"),
                Some("add `release: { name: RELEASE }` (the gateway's release to poll)".into()),
            ),
            Ok(t) if t.metric.needs_users() && release.is_some_and(|r| r.users.is_none()) => d.error(
                pos,
                format!("threshold `{text}` needs `release.users`"),
                Some("add `users: x-user-id` (the request header carrying the user id) to `release:`".into()),
            ),
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
