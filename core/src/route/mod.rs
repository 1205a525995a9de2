//! Matching a request against a route's predicate: host, path, methods and headers, with
//! no allocation (the request path runs this for every request).

use http::{HeaderMap, Method};

use crate::config::{Match, PathMatch};

/// The parts of a request that routing looks at.
pub struct RequestView<'a> {
    pub method: &'a Method,
    /// Lower-case host without port (empty when absent).
    pub host: &'a str,
    pub path: &'a str,
    pub headers: &'a HeaderMap,
}

/// Host of a request: the `Host` header, else the URI authority; port and case dropped.
pub fn host_of<'a>(headers: &'a HeaderMap, uri: &'a http::Uri) -> &'a str {
    let raw = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .unwrap_or("");
    strip_port(raw)
}

fn strip_port(h: &str) -> &str {
    if let Some(rest) = h.strip_prefix('[') {
        // `[v6]:port`; a bracket never closed is kept whole: it matches no route's host.
        return rest.find(']').map_or(h, |end| &h[..end + 2]);
    }
    h.rsplit_once(':').map_or(h, |(host, _)| host)
}

impl Match {
    /// True when every part of the predicate holds for `req`.
    pub fn matches(&self, req: &RequestView<'_>) -> bool {
        if let Some(h) = &self.host {
            if !req.host.eq_ignore_ascii_case(h) {
                return false;
            }
        }
        let path_ok = match &self.path {
            PathMatch::Any => true,
            PathMatch::Exact(p) => req.path == p,
            // `/v1/matches` matches `/v1/matches` and `/v1/matches/7`, not `/v1/matchesX`.
            PathMatch::Prefix(p) => {
                req.path.starts_with(p.as_str())
                    && (p.ends_with('/')
                        || req.path.len() == p.len()
                        || req.path.as_bytes().get(p.len()) == Some(&b'/'))
            }
        };
        if !path_ok {
            return false;
        }
        if let Some(methods) = &self.methods {
            if !methods.contains(req.method) {
                return false;
            }
        }
        self.headers
            .iter()
            .all(|(k, v)| req.headers.get(k).is_some_and(|got| got.as_bytes() == v.as_bytes()))
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;

#[cfg(test)]
#[path = "props.rs"]
mod props;
