//! `faas:` — functions a route can replay requests on when its pods cannot serve them.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use http::HeaderName;
use serde::{Deserialize, Serialize};

use super::defaults::faas as def;
use super::fields::{check_unique, expand_env};
use super::secret::redact_url;
use super::ser::{header_names_only, human};
use super::{dur_or, Dur};
use crate::diag::{Diagnostics, Seg};

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaasKind {
    Http,
    AwsLambda,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaasFile {
    pub name: String,
    pub kind: FaasKind,
    /// kind http: base URL; the request path and query are appended.
    #[serde(default)]
    pub url: Option<String>,
    /// kind aws_lambda: function name or ARN.
    #[serde(default)]
    pub function: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    /// kind aws_lambda: Lambda API endpoint override (e.g. a local emulator).
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub timeout: Option<Dur>,
    #[serde(default)]
    pub max_concurrency: Option<u32>,
    /// Extra request headers; values may use `${env:NAME}`.
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
}

/// A function the gateway can replay requests on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaasSpec {
    pub name: String,
    pub target: FaasTarget,
    #[serde(serialize_with = "human")]
    pub timeout: Duration,
    pub max_concurrency: u32,
    /// Extra headers, `${env:..}` already expanded (values are not shown by `/config`).
    #[serde(serialize_with = "header_names_only")]
    pub headers: Vec<(HeaderName, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaasTarget {
    Http {
        /// Shown with any credentials masked.
        #[serde(serialize_with = "redacted")]
        url: String,
    },
    AwsLambda {
        function: String,
        region: String,
        #[serde(serialize_with = "redacted_opt")]
        endpoint: Option<String>,
    },
}

fn redacted<S: serde::Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&redact_url(url))
}

fn redacted_opt<S: serde::Serializer>(url: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match url {
        Some(u) => s.serialize_str(&redact_url(u)),
        None => s.serialize_none(),
    }
}

fn is_url(u: &str) -> bool {
    u.starts_with("http://") || u.starts_with("https://")
}

/// Validates the decoded `faas:` items.
pub fn validate(c: &mut Diagnostics<'_>, items: &[(usize, FaasFile)]) -> Vec<FaasSpec> {
    check_unique(c, "faas", items.iter().map(|(i, f)| (*i, f.name.as_str())));
    let mut out = Vec::new();
    for (i, f) in items {
        let at = |key: &'static str| [Seg::Key("faas"), Seg::Index(*i), Seg::Key(key)];
        let target = target(c, *i, f);
        let headers = headers(c, &at("headers"), f.headers.as_ref());
        if f.max_concurrency == Some(0) {
            c.error_at(&at("max_concurrency"), "max_concurrency must be at least 1", None);
        }
        let Some(target) = target else { continue };
        out.push(FaasSpec {
            name: f.name.clone(),
            target,
            timeout: dur_or(f.timeout, def::TIMEOUT),
            max_concurrency: f.max_concurrency.unwrap_or(def::MAX_CONCURRENCY).max(1),
            headers,
        });
    }
    out
}

fn target(c: &mut Diagnostics<'_>, i: usize, f: &FaasFile) -> Option<FaasTarget> {
    let item = [Seg::Key("faas"), Seg::Index(i)];
    let at = |key: &'static str| [Seg::Key("faas"), Seg::Index(i), Seg::Key(key)];
    match f.kind {
        FaasKind::Http => match &f.url {
            Some(u) if is_url(u) => Some(FaasTarget::Http {
                url: u.trim_end_matches('/').to_string(),
            }),
            Some(u) => {
                c.error_at(
                    &at("url"),
                    format!("bad function url `{}`", redact_url(u)),
                    Some("an http:// or https:// URL".into()),
                );
                None
            }
            None => {
                c.error_at(&item, "kind `http` needs a `url`", None);
                None
            }
        },
        FaasKind::AwsLambda => match (&f.function, &f.region) {
            (Some(function), Some(region)) => {
                if f.endpoint.as_deref().is_some_and(|e| !is_url(e)) {
                    c.error_at(&at("endpoint"), "endpoint must be an http:// or https:// URL", None);
                }
                Some(FaasTarget::AwsLambda {
                    function: function.clone(),
                    region: region.clone(),
                    endpoint: f.endpoint.as_ref().map(|e| e.trim_end_matches('/').to_string()),
                })
            }
            _ => {
                c.error_at(&item, "kind `aws_lambda` needs `function` and `region`", None);
                None
            }
        },
    }
}

fn headers(c: &mut Diagnostics<'_>, at: &[Seg], list: Option<&BTreeMap<String, String>>) -> Vec<(HeaderName, String)> {
    let mut headers = Vec::new();
    for (k, v) in list.into_iter().flatten() {
        let name = HeaderName::from_str(&k.to_ascii_lowercase());
        match (name, expand_env(v, |n| c.env(n))) {
            (Ok(n), Ok(v)) if http::HeaderValue::from_str(&v).is_ok() => headers.push((n, v)),
            (Err(_), _) => c.error_at(at, format!("bad header name `{k}`"), None),
            (_, Err(e)) => c.error_at(
                at,
                format!("header `{k}`: {e}"),
                Some("export the variable before starting the gateway".into()),
            ),
            _ => c.error_at(
                at,
                format!("header `{k}` has a value that is not a valid header value"),
                None,
            ),
        }
    }
    headers
}
