//! Values that must never be shown — passwords, tokens, `${env:…}` expansions. `/config`
//! serializes a [`Secret`] as `***` and `{:?}` prints `***`; URLs are shown by [`redact_url`]
//! with their credentials and query values masked.

use std::fmt;

use serde::{Serialize, Serializer};

/// What a secret is shown as.
pub const MASK: &str = "***";

/// A value the gateway uses but never shows (admin token, header values, passwords).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(MASK)
    }
}

/// `url` with what may be a credential masked: the userinfo's password (`user:***@`, or
/// `***@` when it has no `:` — `redis://secret@host` reads as a bare password to some) and
/// every query value (`?pass=***`: Redis over a Unix socket takes its password there).
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let (head, rest) = url.split_at(scheme_end);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let mut out = String::with_capacity(url.len());
    out.push_str(head);
    match authority.rfind('@') {
        Some(at) => {
            let (userinfo, host) = authority.split_at(at);
            if let Some((user, _)) = userinfo.split_once(':') {
                out.push_str(user);
                out.push(':');
            }
            out.push_str(MASK);
            out.push_str(host);
        }
        None => out.push_str(authority),
    }
    let (path_query, fragment) = match tail.find('#') {
        Some(i) => tail.split_at(i),
        None => (tail, ""),
    };
    match path_query.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            for (i, pair) in query.split('&').enumerate() {
                if i > 0 {
                    out.push('&');
                }
                match pair.split_once('=') {
                    Some((k, _)) => {
                        out.push_str(k);
                        out.push('=');
                        out.push_str(MASK);
                    }
                    None => out.push_str(pair),
                }
            }
        }
        None => out.push_str(path_query),
    }
    // A fragment is never sent, but may hold anything: not shown.
    if !fragment.is_empty() {
        out.push('#');
        out.push_str(MASK);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_query_values_are_masked() {
        for (url, shown) in [
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            ("redis://:hunter2@redis:6379/0", "redis://:***@redis:6379/0"),
            ("redis://arena:hunter2@redis:6379", "redis://arena:***@redis:6379"),
            ("redis://hunter2@redis", "redis://***@redis"),
            ("redis://a:b@c@redis", "redis://a:***@redis"),
            (
                "redis+unix:///run/redis.sock?db=1&pass=hunter2",
                "redis+unix:///run/redis.sock?db=***&pass=***",
            ),
            ("https://fn.example/v1#k=hunter2", "https://fn.example/v1#***"),
            ("https://u:p@fn.example", "https://u:***@fn.example"),
            ("not a url", "not a url"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
            assert!(!redact_url(url).contains("hunter2"), "{url}");
        }
    }

    #[test]
    fn secrets_print_and_serialize_masked() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(serde_json::to_string(&s).ok().as_deref(), Some("\"***\""));
        assert_eq!(s.expose(), "hunter2");
    }
}
