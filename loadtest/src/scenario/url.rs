//! The scenario's target: a plain `http://host:port[/prefix]` base URL.

use serde::Serialize;

/// A parsed `http://host:port[/prefix]` base URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BaseUrl {
    /// `host:port` as written (used for `Host` / `:authority`).
    pub authority: String,
    pub host: String,
    pub port: u16,
    /// Path prefix without a trailing `/` (empty for none).
    pub prefix: String,
}

impl BaseUrl {
    /// Parses a target URL; only plain `http` is supported (HTTP/2 as h2c).
    pub fn parse(text: &str) -> Result<BaseUrl, (String, String)> {
        let uri: http::Uri = text.trim().parse().map_err(|e| {
            (
                format!("bad target URL `{text}`: {e}"),
                "write e.g. `http://127.0.0.1:8080`".to_string(),
            )
        })?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return Err((
                    format!("unsupported scheme `{other}` in target"),
                    "only `http://` targets are supported (HTTP/2 runs as h2c)".into(),
                ))
            }
            None => {
                return Err((
                    format!("target `{text}` has no scheme"),
                    "write e.g. `http://127.0.0.1:8080`".into(),
                ))
            }
        }
        let Some(auth) = uri.authority() else {
            return Err((
                format!("target `{text}` has no host"),
                "write e.g. `http://127.0.0.1:8080`".into(),
            ));
        };
        if uri.query().is_some() {
            return Err((
                "the target URL cannot have a query".into(),
                "put query strings into request paths".into(),
            ));
        }
        let host = auth.host().trim_start_matches('[').trim_end_matches(']').to_string();
        let port = auth.port_u16().unwrap_or(80);
        let prefix = uri.path().trim_end_matches('/').to_string();
        Ok(BaseUrl {
            authority: auth.as_str().to_string(),
            host,
            port,
            prefix,
        })
    }
}

impl std::fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.authority, self.prefix)
    }
}
