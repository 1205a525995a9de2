//! Scenario files: YAML → typed file structs → validated [`Scenario`].
//!
//! Problems are reported all at once with `file:line:col` and a hint, in the same format as
//! gateway configuration errors (the YAML-with-positions bridge is the gateway's). The `fleet:`
//! and `faults:` sections belong to other modules: [`ScenarioHooks`] hands them their raw
//! position-carrying nodes and a [`Diagnostics`] sink, and their typed results ride along in
//! [`Scenario::fleet`] / [`Scenario::faults`]. `abuse:` (the tester's own abusive connections)
//! and `release:` (a grey release of the target to follow) are the scenario's own.

pub mod abuse;
mod file;
pub mod release;
pub mod template;
pub mod threshold;
mod url;
mod validate;

use std::path::Path;
use std::time::Duration;

use arena_core::diag::yaml;
use http::{HeaderName, Method};
use saphyr::MarkedYamlOwned;
use serde::Serialize;

pub use abuse::{AbuseKind, AbuseSpec};
pub use arena_core::diag::{ConfigErrors, Diagnostic, Severity};
pub use file::TOP_LEVEL_KEYS;
pub use release::{ReleaseWatch, UserIds};
pub use template::{Template, Var, VarGen};
pub use threshold::{AbuseCount, LatencyStat, Metric, Op, Phase, PhaseStat, Threshold, UserMove};
pub use url::BaseUrl;

/// Open loop (requests at scheduled times) or closed loop (back-to-back per connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Open,
    Closed,
}

/// What counts as an error besides transport failures and timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ErrorRule {
    /// HTTP status ≥ 500.
    #[serde(rename = "5xx")]
    Status5xx,
    /// Any status outside 200–299.
    #[serde(rename = "non_2xx")]
    Non2xx,
}

impl ErrorRule {
    pub fn is_error(self, status: u16) -> bool {
        match self {
            ErrorRule::Status5xx => status >= 500,
            ErrorRule::Non2xx => !(200..300).contains(&status),
        }
    }
}

/// HTTP protocol used towards the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum HttpVersion {
    #[serde(rename = "1.1")]
    Http1,
    /// h2c with prior knowledge.
    #[serde(rename = "2")]
    Http2,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpSettings {
    pub version: HttpVersion,
    pub connections: usize,
    /// Concurrent requests per connection (HTTP/2 only; 1 for HTTP/1.1).
    pub streams: usize,
    #[serde(with = "human")]
    pub timeout: Duration,
    #[serde(with = "human")]
    pub connect_timeout: Duration,
    /// Bound on queued + in-flight requests in open loop; beyond it requests are dropped.
    pub max_in_flight: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            version: HttpVersion::Http1,
            connections: 64,
            streams: 1,
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            max_in_flight: 10_000,
        }
    }
}

/// One load stage. `rate` is requests/s (open loop only); with `ramp` the rate moves
/// linearly from the previous stage's rate (0 before the first) to `rate`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stage {
    #[serde(with = "human")]
    pub duration: Duration,
    pub rate: Option<f64>,
    pub ramp: bool,
}

/// One entry of the weighted request mix.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    pub name: String,
    pub weight: f64,
    pub method: Method,
    pub path: Template,
    pub headers: Vec<(HeaderName, Template)>,
    pub body: Option<Template>,
}

/// A validated scenario; `F` and `T` are what the hooks made of `fleet:` and `faults:`.
#[derive(Debug)]
pub struct Scenario<F = (), T = ()> {
    /// File name (or other origin) used in messages.
    pub origin: String,
    pub name: String,
    pub description: Option<String>,
    /// Base URL (`http://host:port[/prefix]`); may be absent when a fleet provides it.
    pub target: Option<String>,
    pub mode: Mode,
    pub http: HttpSettings,
    pub stages: Vec<Stage>,
    pub requests: Vec<RequestSpec>,
    pub vars: Vec<Var>,
    pub errors: ErrorRule,
    pub thresholds: Vec<Threshold>,
    pub seed: Option<u64>,
    pub fleet: Option<F>,
    pub faults: Option<T>,
    /// Abusive connections the tester opens alongside the measured traffic.
    pub abuse: Vec<AbuseSpec>,
    /// The grey release to follow, if any.
    pub release: Option<ReleaseWatch>,
    /// Client spans of the sent requests, exported over OTLP (`traceparent` sent with each).
    pub tracing: Option<arena_core::config::TracingSpec>,
    /// Non-fatal findings (printed by `check` and `run`).
    pub warnings: Vec<Diagnostic>,
}

impl<F, T> Scenario<F, T> {
    /// Sum of the stage durations.
    pub fn duration(&self) -> Duration {
        self.stages.iter().map(|s| s.duration).sum()
    }
}

/// Decoders for the sections owned by other modules (`fleet:`, `faults:`).
///
/// Each gets its raw node (positions intact) and a [`Diagnostics`] sink to report problems
/// with `file:line:col`; returning `None` means "nothing usable" (errors already reported).
pub trait ScenarioHooks {
    type Fleet;
    type Faults;

    fn fleet(&self, node: &MarkedYamlOwned, diags: &mut Diagnostics<'_>) -> Option<Self::Fleet>;
    fn faults(&self, node: &MarkedYamlOwned, diags: &mut Diagnostics<'_>) -> Option<Self::Faults>;

    /// Cross-checks once everything is decoded (e.g. fault offsets against the total
    /// duration, fault targets against fleet members). Default: nothing.
    fn validate(&self, _scenario: &Scenario<Self::Fleet, Self::Faults>, _diags: &mut Diagnostics<'_>) {}
}

/// Hooks of a build without fleet/fault support: those sections are errors.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoExtensions;

impl ScenarioHooks for NoExtensions {
    type Fleet = ();
    type Faults = ();

    fn fleet(&self, node: &MarkedYamlOwned, diags: &mut Diagnostics<'_>) -> Option<()> {
        diags.error(
            yaml::pos(node),
            "`fleet` is not supported by this build",
            Some("remove `fleet:` and set `target:` (or pass --target)".into()),
        );
        None
    }

    fn faults(&self, node: &MarkedYamlOwned, diags: &mut Diagnostics<'_>) -> Option<()> {
        diags.error(
            yaml::pos(node),
            "`faults` is not supported by this build",
            Some("remove `faults:`".into()),
        );
        None
    }
}

/// Collects diagnostics against one parsed document; handed to [`ScenarioHooks`] (the
/// gateway's collector, so scenario and config errors read alike).
pub use arena_core::diag::Diagnostics;

/// Parses and validates scenario text; `origin` names it in messages.
pub fn load<H: ScenarioHooks>(
    text: &str,
    origin: &str,
    hooks: &H,
) -> Result<Scenario<H::Fleet, H::Faults>, ConfigErrors> {
    validate::load(text, origin, hooks)
}

/// Reads, parses and validates a scenario file.
pub fn load_file<H: ScenarioHooks>(path: &Path, hooks: &H) -> Result<Scenario<H::Fleet, H::Faults>, ConfigErrors> {
    let origin = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => load(&text, &origin, hooks),
        Err(e) => Err(ConfigErrors(vec![Diagnostic::new(
            Severity::Error,
            &origin,
            None,
            format!("cannot read scenario: {e}"),
            Some("check the path of the scenario file".into()),
        )])),
    }
}

/// Human-readable durations in serialized output (`2s`, `250ms`).
pub(crate) mod human {
    use std::time::Duration;

    use serde::Serializer;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use arena_core::diag::yaml::Seg;
    use serde::Deserialize;

    const BASE: &str =
        "name: t\ntarget: http://127.0.0.1:8080/api/\nstages: [{ duration: 1s, rate: 10 }]\nrequests: [{ path: /x }]\n";

    #[test]
    fn defaults_and_target_prefix() {
        let s = load(BASE, "t.yaml", &NoExtensions).unwrap();
        assert_eq!(s.mode, Mode::Open);
        assert_eq!(s.http, HttpSettings::default());
        assert_eq!(s.errors, ErrorRule::Status5xx);
        assert_eq!(s.requests[0].method, Method::GET);
        let url = BaseUrl::parse(s.target.as_deref().unwrap()).unwrap();
        assert_eq!(
            (url.host.as_str(), url.port, url.prefix.as_str()),
            ("127.0.0.1", 8080, "/api")
        );
        assert!(s.warnings.is_empty());
    }

    #[test]
    fn tracing_is_the_gateways_section_with_the_load_testers_name() {
        let s = load(
            &format!("{BASE}tracing: {{ otlp_endpoint: \"http://127.0.0.1:4318/\", sample_ratio: 5% }}\n"),
            "t.yaml",
            &NoExtensions,
        )
        .unwrap();
        let t = s.tracing.unwrap();
        assert_eq!(t.otlp_endpoint, "http://127.0.0.1:4318");
        assert_eq!((t.sample_ratio, t.service_name.as_str()), (0.05, "arena-loadtest"));
        assert!(
            t.keep_errors && t.keep_slow.is_some(),
            "errors and slow kept by default"
        );
        let e = load(
            &format!("{BASE}tracing:\n  otlp_endpoint: collector\n  sample_ratio: lots\n  alway: [error]\n"),
            "t.yaml",
            &NoExtensions,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown key `alway`") && e.contains("t.yaml:8:3"), "{e}");
        let e = load(
            &format!("{BASE}tracing:\n  otlp_endpoint: collector\n  sample_ratio: lots\n"),
            "t.yaml",
            &NoExtensions,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("is not an http(s) URL") && e.contains("t.yaml:6:18"), "{e}");
        assert!(
            e.contains("bad tracing.sample_ratio `lots`") && e.contains("t.yaml:7:17"),
            "{e}"
        );
    }

    #[test]
    fn extensions_are_rejected_without_hooks() {
        let e = load(&format!("{BASE}fleet: {{ pods: 3 }}\n"), "t.yaml", &NoExtensions).unwrap_err();
        assert!(e.to_string().contains("t.yaml:5:8"), "{e}");
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct FleetFile {
        pods: u32,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct FaultFile {
        at: String,
        action: String,
    }

    /// What a sibling module does: decode its section with positions, cross-check later.
    struct Hooks;

    impl ScenarioHooks for Hooks {
        type Fleet = FleetFile;
        type Faults = Vec<FaultFile>;

        fn fleet(&self, node: &MarkedYamlOwned, diags: &mut Diagnostics<'_>) -> Option<FleetFile> {
            diags.decode(node)
        }

        fn faults(&self, node: &MarkedYamlOwned, diags: &mut Diagnostics<'_>) -> Option<Vec<FaultFile>> {
            Some(diags.decode_list(node, "faults").into_iter().map(|(_, f)| f).collect())
        }

        fn validate(&self, s: &Scenario<FleetFile, Vec<FaultFile>>, diags: &mut Diagnostics<'_>) {
            for (i, f) in s.faults.iter().flatten().enumerate() {
                if f.action == "kill" && s.fleet.as_ref().is_none_or(|fl| fl.pods == 0) {
                    diags.error_at(
                        &[Seg::Key("faults"), Seg::Index(i), Seg::Key("action")],
                        "nothing to kill",
                        None,
                    );
                }
            }
        }
    }

    #[test]
    fn hooks_decode_their_sections_with_positions() {
        let text = format!(
            "{BASE}fleet: {{ pods: 0 }}\nfaults:\n  - {{ at: 1s, action: kill }}\n  - {{ at: 2s, acton: x }}\n"
        );
        let e = load(&text, "t.yaml", &Hooks).unwrap_err();
        let msgs: Vec<String> = e.0.iter().map(|d| format!("{} @ {}", d.message, d.location)).collect();
        assert!(
            msgs.iter()
                .any(|m| m.contains("unknown key `acton`") && m.ends_with("t.yaml:8:15")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.contains("nothing to kill") && m.ends_with("t.yaml:7:23")),
            "{msgs:?}"
        );
        let ok = format!("{BASE}fleet: {{ pods: 2 }}\nfaults: [{{ at: 1s, action: kill }}]\n");
        let s = load(&ok, "t.yaml", &Hooks).unwrap();
        assert_eq!(s.fleet.unwrap().pods, 2);
        assert_eq!(s.faults.unwrap()[0].at, "1s");
    }

    #[test]
    fn missing_target_is_only_a_warning() {
        let text = BASE.replace("target: http://127.0.0.1:8080/api/\n", "");
        let s = load(&text, "t.yaml", &NoExtensions).unwrap();
        assert!(s.target.is_none());
        assert!(s.warnings[0].message.contains("no `target`"));
    }

    #[test]
    fn closed_mode_rejects_rates_and_open_needs_them() {
        let text = "name: c\nmode: closed\nstages: [{ duration: 1s, rate: 5 }]\nrequests: [{ path: / }]\n";
        let e = load(text, "t.yaml", &NoExtensions).unwrap_err();
        assert!(e.to_string().contains("closed-loop stages have no `rate`"), "{e}");
        let text = "name: o\nstages: [{ duration: 1s }]\nrequests: [{ path: / }]\n";
        assert!(load(text, "t.yaml", &NoExtensions).is_err());
    }
}
