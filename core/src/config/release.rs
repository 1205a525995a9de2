//! `releases:` — grey releases: a share of a route's traffic goes to a canary cluster, sticky
//! per user, raised step by step while the canary's errors and latency stay close to the stable
//! version's, and rolled back (or paused) when they do not.
//!
//! Percentages are written with `%` (`1%`, `0.5%`, `12.34%`, at most two decimals) and kept in
//! basis points (1 % = 100 bp): a bare number such as `5` could mean 5 % or 500 %.
//!
//! The `fingerprint` hashes what defines a rollout (stable, canary, routes, steps, starting
//! weight) and nothing else: on a reload or a restart a release whose fingerprint is unchanged
//! keeps its state (step, weight, phase); a changed one starts over at its first step (or
//! `weight`). Analysis thresholds, `step_interval`, `sticky` and `force` can be tuned live.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use saphyr::MarkedYamlOwned;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::defaults::release as def;
use super::fields::{check_unique, declared_names, is_internal_header, unknown_name_hint, INTERNAL_HEADER_PREFIX};
use super::ser::{header_name, human};
use super::{dur_or, ClusterSpec, Dur, RouteSpec};
use crate::diag::{yaml, Diagnostics, Pos, Seg};
use crate::resilience::rate_limit::Fnv1a;

/// 100 % in basis points.
pub const FULL_BP: u16 = 10_000;

// ------------------------------------------------------------------------------ as written

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Weight 0 and `rolled_back` at once.
    Rollback,
    /// Hold the weight, stop stepping; an operator decides.
    Pause,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseScope {
    /// State kept by this gateway (and its state file).
    Local,
    /// State shared by every replica through Redis.
    Cluster,
}

/// One header value, or a list of them (`x-tenant: [douyu, huya]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneOrMany(pub Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a header value or a list of values")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v.to_string()]))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v.to_string()]))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v.to_string()]))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v.to_string()]))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v.to_string()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element::<String>()? {
                    out.push(v);
                }
                Ok(OneOrMany(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// `force.canary:` / `force.stable:` — requests whose header equals one of the values.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForceRuleFile {
    #[serde(default)]
    pub headers: BTreeMap<String, OneOrMany>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForceFile {
    #[serde(default)]
    pub canary: Option<ForceRuleFile>,
    #[serde(default)]
    pub stable: Option<ForceRuleFile>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisFile {
    #[serde(default)]
    pub window: Option<Dur>,
    #[serde(default)]
    pub min_requests: Option<u64>,
    /// A percentage, e.g. `1%`.
    #[serde(default)]
    pub max_error_rate_delta: Option<String>,
    #[serde(default)]
    pub max_p99_ratio: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseFile {
    pub name: String,
    pub routes: Vec<String>,
    pub stable: String,
    pub canary: String,
    /// `header:NAME`, `cookie:NAME` or `client_ip`.
    #[serde(default)]
    pub sticky: Option<String>,
    #[serde(default)]
    pub force: Option<ForceFile>,
    /// Percentages, strictly increasing, each in (0 %, 100 %].
    #[serde(default)]
    pub steps: Option<Vec<String>>,
    /// Starting weight of a release without steps.
    #[serde(default)]
    pub weight: Option<String>,
    #[serde(default)]
    pub step_interval: Option<Dur>,
    #[serde(default)]
    pub analysis: Option<AnalysisFile>,
    #[serde(default)]
    pub on_failure: Option<OnFailure>,
    #[serde(default)]
    pub retry_on_stable: Option<bool>,
    #[serde(default)]
    pub scope: Option<ReleaseScope>,
}

// ------------------------------------------------------------------------------ validated

/// What keeps a user on one version: the bytes hashed into their cohort.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StickyKey {
    Header(#[serde(serialize_with = "header_name")] HeaderName),
    Cookie(String),
    ClientIp,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnalysisSpec {
    #[serde(serialize_with = "human")]
    pub window: Duration,
    /// Requests per version in the window before a verdict is given.
    pub min_requests: u64,
    /// Share (0..1) the canary's failure rate may exceed the stable one's.
    pub max_error_rate_delta: f64,
    /// The canary's p99 may be at most this multiple of the stable p99 (> 1).
    pub max_p99_ratio: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReleaseSpec {
    pub name: String,
    pub routes: Vec<String>,
    pub stable: String,
    pub canary: String,
    pub sticky: StickyKey,
    /// A request carrying any of these header values always goes to the canary...
    #[serde(serialize_with = "header_value_pairs")]
    pub force_canary: Vec<(HeaderName, HeaderValue)>,
    /// ...and one carrying any of these never does (this wins over `force_canary`).
    #[serde(serialize_with = "header_value_pairs")]
    pub force_stable: Vec<(HeaderName, HeaderValue)>,
    /// Weights in basis points, strictly increasing, each in 1..=10000.
    #[serde(serialize_with = "percents")]
    pub steps: Vec<u16>,
    /// Weight (bp) a release without steps starts at.
    #[serde(serialize_with = "percent")]
    pub initial_weight: u16,
    #[serde(serialize_with = "human")]
    pub step_interval: Duration,
    pub analysis: AnalysisSpec,
    pub on_failure: OnFailure,
    pub retry_on_stable: bool,
    pub scope: ReleaseScope,
    #[serde(serialize_with = "hex")]
    pub fingerprint: u64,
}

impl ReleaseSpec {
    /// The weight a fresh release starts at: its first step, else `weight`.
    pub fn start_weight(&self) -> u16 {
        self.steps.first().copied().unwrap_or(self.initial_weight)
    }
}

fn header_value_pairs<S: Serializer>(h: &[(HeaderName, HeaderValue)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(
        h.iter()
            .map(|(k, v)| (k.as_str(), String::from_utf8_lossy(v.as_bytes()))),
    )
}

fn percents<S: Serializer>(steps: &[u16], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(steps.iter().map(|bp| percent_text(*bp)))
}

fn percent<S: Serializer>(bp: &u16, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&percent_text(*bp))
}

fn hex<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{v:016x}"))
}

// ------------------------------------------------------------------------------ parsers

/// Why a percentage was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PercentError {
    /// Not `<digits>[.<digits>]%`.
    Syntax,
    /// More than two decimals (finer than 1 bp).
    TooFine,
    /// Above 100 %.
    Above100,
}

impl std::fmt::Display for PercentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PercentError::Syntax => "not a percentage (write e.g. `25%` or `0.5%`)",
            PercentError::TooFine => "at most two decimals (0.01% steps)",
            PercentError::Above100 => "above 100%",
        })
    }
}

/// `12.34%` → 1234 basis points. Exact (no float rounding); 0 % to 100 %.
pub fn parse_percent_bp(text: &str) -> Result<u16, PercentError> {
    let t = text.trim();
    let number = t.strip_suffix('%').ok_or(PercentError::Syntax)?.trim_end();
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(frac) || (number.contains('.') && frac.is_empty()) {
        return Err(PercentError::Syntax);
    }
    let frac_trimmed = frac.trim_end_matches('0');
    if frac_trimmed.len() > 2 {
        return Err(PercentError::TooFine);
    }
    let int = int.trim_start_matches('0');
    if int.len() > 3 {
        return Err(PercentError::Above100);
    }
    let whole: u32 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| PercentError::Syntax)?
    };
    let hundredths: u32 = match frac_trimmed.len() {
        0 => 0,
        1 => frac_trimmed.parse::<u32>().map_err(|_| PercentError::Syntax)? * 10,
        _ => frac_trimmed.parse().map_err(|_| PercentError::Syntax)?,
    };
    let bp = whole * 100 + hundredths;
    u16::try_from(bp)
        .ok()
        .filter(|bp| *bp <= FULL_BP)
        .ok_or(PercentError::Above100)
}

/// Basis points as written: `1%`, `0.5%`, `12.34%`.
pub fn percent_text(bp: u16) -> String {
    let (whole, frac) = (bp / 100, bp % 100);
    if frac == 0 {
        format!("{whole}%")
    } else if frac % 10 == 0 {
        format!("{whole}.{}%", frac / 10)
    } else {
        format!("{whole}.{frac:02}%")
    }
}

/// Why a `sticky` value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StickyError {
    Syntax,
    /// `header:x-arena-*`: the gateway drops those before routing.
    InternalHeader(String),
}

/// `header:NAME`, `cookie:NAME` or `client_ip`.
pub fn parse_sticky(text: &str) -> Result<StickyKey, StickyError> {
    let t = text.trim();
    if t == "client_ip" {
        return Ok(StickyKey::ClientIp);
    }
    if let Some(h) = t.strip_prefix("header:") {
        let h = HeaderName::from_str(h.trim()).map_err(|_| StickyError::Syntax)?;
        if is_internal_header(h.as_str()) {
            return Err(StickyError::InternalHeader(h.as_str().to_string()));
        }
        return Ok(StickyKey::Header(h));
    }
    if let Some(name) = t.strip_prefix("cookie:") {
        let name = name.trim();
        // A cookie-name is an RFC 6265 token: no separators, so the parser can find it.
        let token = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
        return token
            .then(|| StickyKey::Cookie(name.to_string()))
            .ok_or(StickyError::Syntax);
    }
    Err(StickyError::Syntax)
}

/// The fingerprint of a rollout (see the module docs): FNV-1a 64 over a versioned, length-
/// prefixed encoding, so it is the same on every build and replica. Routes are sorted: their
/// order in the file means nothing.
pub fn fingerprint(stable: &str, canary: &str, routes: &[String], steps: &[u16], initial_weight: u16) -> u64 {
    let mut h = Fnv1a::new();
    let field = |h: &mut Fnv1a, bytes: &[u8]| {
        h.write(&(bytes.len() as u64).to_le_bytes());
        h.write(bytes);
    };
    h.write(b"arena-release-v1");
    field(&mut h, stable.as_bytes());
    field(&mut h, canary.as_bytes());
    let mut sorted: Vec<&str> = routes.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    h.write(&(sorted.len() as u64).to_le_bytes());
    for r in sorted {
        field(&mut h, r.as_bytes());
    }
    h.write(&(steps.len() as u64).to_le_bytes());
    for s in steps {
        h.write(&s.to_le_bytes());
    }
    h.write(&initial_weight.to_le_bytes());
    h.finish()
}

// ------------------------------------------------------------------------------ validation

/// Validates the decoded `releases:` items against the valid clusters and routes;
/// `redis_configured`: the file has a `redis:` section (which `scope: cluster` needs).
pub fn validate(
    c: &mut Diagnostics<'_>,
    items: &[(usize, ReleaseFile)],
    clusters: &[(usize, ClusterSpec)],
    routes: &[(usize, RouteSpec)],
    redis_configured: bool,
) -> Vec<ReleaseSpec> {
    check_unique(c, "releases", items.iter().map(|(i, r)| (*i, r.name.as_str())));
    // Route name → (item index, release name) of the release that split it first.
    let mut owners: HashMap<String, (usize, String)> = HashMap::new();
    let mut out = Vec::new();
    for (i, r) in items {
        let i = *i;
        let stable_ok = check_cluster(c, i, "stable", &r.stable, clusters);
        let canary_ok = check_cluster(c, i, "canary", &r.canary, clusters);
        let mut ok = stable_ok && canary_ok;
        if r.stable == r.canary {
            c.error_at(
                &at(i, &["canary"]),
                format!("release `{}`: canary `{}` is also its stable cluster", r.name, r.canary),
                Some("the canary is another cluster, running the new version (e.g. `match-api-v2`)".into()),
            );
            ok = false;
        }
        ok &= check_routes(c, i, r, stable_ok, routes, &mut owners);
        let sticky = sticky(c, i, r);
        let force = r.force.clone().unwrap_or_default();
        let force_canary = force_rules(c, i, "canary", force.canary.as_ref());
        let force_stable = force_rules(c, i, "stable", force.stable.as_ref());
        warn_forced_both_ways(c, i, &force_canary, &force_stable);
        let steps = steps(c, i, r);
        let initial_weight = initial_weight(c, i, r);
        let analysis = analysis(c, i, r.analysis.as_ref());
        let step_interval = dur_or(r.step_interval, def::STEP_INTERVAL);
        if step_interval.is_zero() {
            c.error_at(
                &at(i, &["step_interval"]),
                "step_interval must be greater than zero",
                Some("time at a step with a healthy verdict before the next, e.g. `30s`".into()),
            );
            ok = false;
        } else if let Some(a) = analysis.as_ref().filter(|a| step_interval < a.window) {
            c.warn_at(
                &at(i, &["step_interval"]),
                format!(
                    "step_interval {} is shorter than analysis.window {}: a step's verdict still counts traffic from the step before",
                    humantime::format_duration(step_interval),
                    humantime::format_duration(a.window)
                ),
                Some("make step_interval at least the window".into()),
            );
        }
        let scope = r.scope.unwrap_or(def::SCOPE);
        if scope == ReleaseScope::Cluster && !redis_configured {
            c.error_at(
                &at(i, &["scope"]),
                "release scope `cluster` needs a `redis:` section",
                Some("add `redis: { url: redis://127.0.0.1:6379, replicas: 3 }`, or use `scope: local`".into()),
            );
            ok = false;
        }
        let (Some(sticky), Some(force_canary), Some(force_stable), Some(steps), Some(initial_weight), Some(analysis)) =
            (sticky, force_canary, force_stable, steps, initial_weight, analysis)
        else {
            continue;
        };
        if !ok {
            continue;
        }
        let fingerprint = fingerprint(&r.stable, &r.canary, &r.routes, &steps, initial_weight);
        out.push(ReleaseSpec {
            name: r.name.clone(),
            routes: r.routes.clone(),
            stable: r.stable.clone(),
            canary: r.canary.clone(),
            sticky,
            force_canary,
            force_stable,
            steps,
            initial_weight,
            step_interval,
            analysis,
            on_failure: r.on_failure.unwrap_or(def::ON_FAILURE),
            retry_on_stable: r.retry_on_stable.unwrap_or(def::RETRY_ON_STABLE),
            scope,
            fingerprint,
        });
    }
    out
}

fn at(i: usize, keys: &[&'static str]) -> Vec<Seg> {
    let mut p = vec![Seg::Key("releases"), Seg::Index(i)];
    p.extend(keys.iter().map(|k| Seg::Key(k)));
    p
}

fn at_index(i: usize, key: &'static str, j: usize) -> Vec<Seg> {
    vec![Seg::Key("releases"), Seg::Index(i), Seg::Key(key), Seg::Index(j)]
}

/// True when `name` is a valid cluster; reports an unknown one (one written but rejected is
/// already reported).
fn check_cluster(
    c: &mut Diagnostics<'_>,
    i: usize,
    key: &'static str,
    name: &str,
    clusters: &[(usize, ClusterSpec)],
) -> bool {
    if clusters.iter().any(|(_, cl)| cl.name == name) {
        return true;
    }
    let declared = declared_names(c.root(), "clusters");
    if !declared.iter().any(|d| d == name) {
        let names: Vec<&str> = declared.iter().map(String::as_str).collect();
        c.error_at(
            &at(i, &[key]),
            format!("release {key} `{name}` is not a cluster"),
            Some(unknown_name_hint(name, &names, "clusters", "clusters")),
        );
    }
    false
}

/// Each route must exist, send to the release's stable cluster, and be split by no other
/// release (two splits of one route would fight over its traffic).
fn check_routes(
    c: &mut Diagnostics<'_>,
    i: usize,
    r: &ReleaseFile,
    stable_ok: bool,
    routes: &[(usize, RouteSpec)],
    owners: &mut HashMap<String, (usize, String)>,
) -> bool {
    if r.routes.is_empty() {
        c.error_at(
            &at(i, &["routes"]),
            format!("release `{}` splits no route", r.name),
            Some("list the routes whose traffic it splits, e.g. `routes: [matches]`".into()),
        );
        return false;
    }
    let mut ok = true;
    let declared = declared_names(c.root(), "routes");
    for (j, name) in r.routes.iter().enumerate() {
        let here = at_index(i, "routes", j);
        if r.routes[..j].contains(name) {
            c.error_at(&here, format!("route `{name}` is listed twice"), None);
            ok = false;
            continue;
        }
        match routes.iter().find(|(_, rt)| rt.name == *name) {
            // Against an unknown stable cluster every route would differ: that is one error, reported.
            Some((_, rt)) if stable_ok && rt.cluster != r.stable => {
                c.error_at(
                    &here,
                    format!(
                        "route `{name}` sends to cluster `{}`, not to the release's stable cluster `{}`",
                        rt.cluster, r.stable
                    ),
                    Some(format!(
                        "a release splits its routes' own cluster: set `stable: {}`, or split routes of `{}`",
                        rt.cluster, r.stable
                    )),
                );
                ok = false;
            }
            Some(_) => {}
            None => {
                if !declared.contains(name) {
                    let names: Vec<&str> = declared.iter().map(String::as_str).collect();
                    c.error_at(
                        &here,
                        format!("release `{}` references unknown route `{name}`", r.name),
                        Some(unknown_name_hint(name, &names, "routes", "routes")),
                    );
                }
                ok = false;
            }
        }
        match owners.get(name) {
            Some((first, other)) => {
                let line = yaml::locate(c.root(), &[Seg::Key("releases"), Seg::Index(*first)]).line;
                c.error_at(
                    &here,
                    format!("route `{name}` is already split by release `{other}`"),
                    Some(format!(
                        "a route is in one release at a time (`{other}` at line {line}); finish or remove that one first"
                    )),
                );
                ok = false;
            }
            None => {
                owners.insert(name.clone(), (i, r.name.clone()));
            }
        }
    }
    ok
}

fn sticky(c: &mut Diagnostics<'_>, i: usize, r: &ReleaseFile) -> Option<StickyKey> {
    let Some(text) = r.sticky.as_deref() else {
        return Some(def::STICKY);
    };
    match parse_sticky(text) {
        Ok(k) => Some(k),
        Err(StickyError::Syntax) => {
            c.error_at(
                &at(i, &["sticky"]),
                format!("bad sticky `{text}`"),
                Some("write `header:NAME`, `cookie:NAME` or `client_ip`, e.g. `header:x-user-id`".into()),
            );
            None
        }
        Err(StickyError::InternalHeader(h)) => {
            internal_header(
                c,
                yaml::locate(c.root(), &at(i, &["sticky"])),
                &h,
                "sticky",
                "x-user-id",
            );
            None
        }
    }
}

fn internal_header(c: &mut Diagnostics<'_>, pos: Pos, name: &str, what: &str, example: &str) {
    c.error(
        pos,
        format!(
            "{what} cannot use header `{name}`: a client's `{INTERNAL_HEADER_PREFIX}*` headers are dropped before routing"
        ),
        Some(format!(
            "they are the gateway's own signals; use another header, e.g. `{example}`"
        )),
    );
}

/// The node at `path`, when every step of it exists.
fn node_at<'n>(root: &'n MarkedYamlOwned, path: &[Seg]) -> Option<&'n MarkedYamlOwned> {
    let mut node = root;
    for seg in path {
        node = match seg {
            Seg::Key(k) => yaml::entries(node)?.into_iter().find(|(key, _, _)| key == k)?.2,
            Seg::Index(j) => yaml::items(node)?.get(*j)?,
        };
    }
    Some(node)
}

/// `force.<side>.headers`: every (name, value) pair, or `None` after reporting a bad one. The
/// error points at the offending header's own key.
fn force_rules(
    c: &mut Diagnostics<'_>,
    i: usize,
    side: &'static str,
    rule: Option<&ForceRuleFile>,
) -> Option<Vec<(HeaderName, HeaderValue)>> {
    let Some(rule) = rule else { return Some(Vec::new()) };
    let base = at(i, &["force", side, "headers"]);
    let key_pos = |c: &Diagnostics<'_>, name: &str| {
        node_at(c.root(), &base)
            .and_then(yaml::entries)
            .and_then(|e| e.into_iter().find(|(k, _, _)| k == name))
            .map_or_else(|| yaml::locate(c.root(), &base), |(_, k, _)| yaml::pos(k))
    };
    let what = format!("force.{side}");
    let mut out = Vec::new();
    let mut ok = true;
    for (name, values) in &rule.headers {
        let pos = key_pos(c, name);
        let h = match HeaderName::from_str(name.trim()) {
            Ok(h) => h,
            Err(_) => {
                c.error(pos, format!("bad header name `{name}`"), None);
                ok = false;
                continue;
            }
        };
        if is_internal_header(h.as_str()) {
            internal_header(c, pos, h.as_str(), &what, "x-canary: \"1\"");
            ok = false;
            continue;
        }
        if values.0.is_empty() {
            c.error(pos, format!("{what}: header `{h}` lists no value"), None);
            ok = false;
        }
        for v in &values.0 {
            match HeaderValue::from_str(v) {
                Ok(v) => out.push((h.clone(), v)),
                Err(_) => {
                    c.error(pos, format!("{what}: bad value `{v}` for header `{h}`"), None);
                    ok = false;
                }
            }
        }
    }
    ok.then_some(out)
}

fn warn_forced_both_ways(
    c: &mut Diagnostics<'_>,
    i: usize,
    canary: &Option<Vec<(HeaderName, HeaderValue)>>,
    stable: &Option<Vec<(HeaderName, HeaderValue)>>,
) {
    let (Some(canary), Some(stable)) = (canary, stable) else {
        return;
    };
    if let Some((h, v)) = canary.iter().find(|pair| stable.contains(pair)) {
        c.warn_at(
            &at(i, &["force", "canary", "headers"]),
            format!(
                "`{h}: {}` is forced both to the canary and to stable; stable wins",
                String::from_utf8_lossy(v.as_bytes())
            ),
            None,
        );
    }
}

fn percent_error(c: &mut Diagnostics<'_>, path: &[Seg], key: &str, text: &str, e: PercentError) {
    let (message, hint) = match e {
        PercentError::Syntax => (
            format!("bad {key} `{}`", text.trim()),
            "write a percentage with `%`, e.g. `5%`, `0.5%` or `12.34%`",
        ),
        PercentError::TooFine => (
            format!("{key} `{}` is finer than 0.01%", text.trim()),
            "weights are kept in basis points: at most two decimals, e.g. `0.25%`",
        ),
        PercentError::Above100 => (
            format!("{key} `{}` is above 100%", text.trim()),
            "a share of traffic is at most `100%`",
        ),
    };
    c.error_at(path, message, Some(hint.into()));
}

fn steps(c: &mut Diagnostics<'_>, i: usize, r: &ReleaseFile) -> Option<Vec<u16>> {
    let Some(list) = &r.steps else { return Some(Vec::new()) };
    if list.is_empty() {
        c.error_at(
            &at(i, &["steps"]),
            "steps is empty",
            Some("list the weights to go through, e.g. `[1%, 5%, 25%, 50%, 100%]`, or leave `steps` out for manual weights".into()),
        );
        return None;
    }
    let mut out = Vec::with_capacity(list.len());
    let mut ok = true;
    let mut last: Option<(u16, &str)> = None;
    for (j, text) in list.iter().enumerate() {
        let here = at_index(i, "steps", j);
        match parse_percent_bp(text) {
            Err(e) => {
                percent_error(c, &here, "step", text, e);
                ok = false;
            }
            Ok(0) => {
                c.error_at(
                    &here,
                    format!("step `{}` sends the canary nothing", text.trim()),
                    Some("every step is above 0%; the release starts at its first step".into()),
                );
                ok = false;
            }
            Ok(bp) => {
                match last {
                    Some((prev, prev_text)) if bp <= prev => {
                        c.error_at(
                            &here,
                            format!(
                                "steps must increase: `{}` comes after `{}`",
                                text.trim(),
                                prev_text.trim()
                            ),
                            Some("each step is a larger share than the one before it".into()),
                        );
                        ok = false;
                    }
                    _ => last = Some((bp, text)),
                }
                out.push(bp);
            }
        }
    }
    ok.then_some(out)
}

fn initial_weight(c: &mut Diagnostics<'_>, i: usize, r: &ReleaseFile) -> Option<u16> {
    let Some(text) = r.weight.as_deref() else {
        return Some(def::WEIGHT_BP);
    };
    if r.steps.is_some() {
        c.error_at(
            &at(i, &["weight"]),
            "`weight` is the starting weight of a release without `steps`",
            Some("with steps the release starts at its first step: leave `weight` out, or drop `steps` for manual weights".into()),
        );
        return None;
    }
    match parse_percent_bp(text) {
        Ok(bp) => Some(bp),
        Err(e) => {
            percent_error(c, &at(i, &["weight"]), "weight", text, e);
            None
        }
    }
}

fn analysis(c: &mut Diagnostics<'_>, i: usize, file: Option<&AnalysisFile>) -> Option<AnalysisSpec> {
    let f = file.cloned().unwrap_or_default();
    let here = |key: &'static str| at(i, &["analysis", key]);
    let mut ok = true;
    let window = dur_or(f.window, def::WINDOW);
    if window.is_zero() {
        c.error_at(
            &here("window"),
            "analysis.window must be greater than zero",
            Some("the sliding window compared between versions, e.g. `10s`".into()),
        );
        ok = false;
    }
    let min_requests = f.min_requests.unwrap_or(def::MIN_REQUESTS);
    if min_requests == 0 {
        c.error_at(
            &here("min_requests"),
            "analysis.min_requests must be at least 1",
            Some("requests per version in the window before judging, e.g. `100`".into()),
        );
        ok = false;
    }
    let max_error_rate_delta = match f.max_error_rate_delta.as_deref() {
        None => def::MAX_ERROR_RATE_DELTA,
        Some(text) => match parse_percent_bp(text) {
            Ok(bp) => f64::from(bp) / f64::from(FULL_BP),
            Err(e) => {
                percent_error(c, &here("max_error_rate_delta"), "max_error_rate_delta", text, e);
                ok = false;
                def::MAX_ERROR_RATE_DELTA
            }
        },
    };
    let max_p99_ratio = f.max_p99_ratio.unwrap_or(def::MAX_P99_RATIO);
    if !(max_p99_ratio.is_finite() && max_p99_ratio > 1.0) {
        c.error_at(
            &here("max_p99_ratio"),
            format!("analysis.max_p99_ratio must be above 1, not {max_p99_ratio}"),
            Some("the canary's p99 over the stable p99, e.g. `1.5` (50 % slower at most)".into()),
        );
        ok = false;
    }
    ok.then_some(AnalysisSpec {
        window,
        min_requests,
        max_error_rate_delta,
        max_p99_ratio,
    })
}

#[cfg(test)]
#[path = "release_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "release_props.rs"]
mod props;
