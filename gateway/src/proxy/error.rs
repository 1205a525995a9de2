//! The one error type of the request path and its single mapping to an HTTP answer.
//!
//! Every failure a client can see is one of these, with the side at fault (client / upstream /
//! gateway); it becomes a status plus a small JSON body carrying the request id. Pingora's
//! errors are turned into these in one place, `classify`.
//!
//! The body's `message` is the code's public text ([`GatewayError::public_message`]): it names
//! no pod address, function URL, function answer or internal cause. The detailed text
//! (`Display`) is for the operator: the gateway's log and the access log's `detail`.

use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::{Error, ErrorSource, ErrorType};

/// Who is at fault: a client's fault never counts against a pod, a retry budget or a FaaS bill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Upstream,
    Gateway,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayError {
    NoRoute,
    HeadersTooLarge {
        limit: usize,
    },
    BodyTooLarge {
        limit: usize,
    },
    BadRequest(String),
    /// The client stalled: its request body did not arrive within `server.client.body_timeout`.
    ClientTimeout,
    /// The cluster has no pod that may take the request.
    NoEndpoints {
        cluster: String,
    },
    /// Connecting to the pod failed or it closed/reset the connection.
    Unreachable {
        pod: Option<SocketAddr>,
        cause: String,
    },
    /// The pod did not answer within the time allowed.
    UpstreamTimeout {
        pod: Option<SocketAddr>,
    },
    /// The pod answered with a server error and no retry was left.
    BadStatus {
        pod: Option<SocketAddr>,
        status: u16,
    },
    /// The cluster is at `max_in_flight`.
    CircuitOpen {
        cluster: String,
    },
    /// The route's rate limit is spent for this key.
    RateLimited {
        retry_after: Duration,
        limit: u32,
    },
    /// The pods failed and so did the function that was to replace them.
    FallbackFailed {
        upstream: String,
        faas: String,
    },
    Internal(String),
}

impl GatewayError {
    pub fn status(&self) -> u16 {
        match self {
            GatewayError::NoRoute => 404,
            GatewayError::HeadersTooLarge { .. } => 431,
            GatewayError::BodyTooLarge { .. } => 413,
            GatewayError::BadRequest(_) => 400,
            GatewayError::ClientTimeout => 408,
            GatewayError::NoEndpoints { .. } => 503,
            GatewayError::Unreachable { .. } => 502,
            GatewayError::UpstreamTimeout { .. } => 504,
            GatewayError::BadStatus { .. } => 502,
            GatewayError::CircuitOpen { .. } => 503,
            GatewayError::RateLimited { .. } => 429,
            GatewayError::FallbackFailed { .. } => 503,
            GatewayError::Internal(_) => 500,
        }
    }

    /// Stable machine-readable code for the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            GatewayError::NoRoute => "no_route",
            GatewayError::HeadersTooLarge { .. } => "headers_too_large",
            GatewayError::BodyTooLarge { .. } => "body_too_large",
            GatewayError::BadRequest(_) => "bad_request",
            GatewayError::ClientTimeout => "request_timeout",
            GatewayError::NoEndpoints { .. } => "no_healthy_pods",
            GatewayError::Unreachable { .. } => "upstream_unreachable",
            GatewayError::UpstreamTimeout { .. } => "upstream_timeout",
            GatewayError::BadStatus { .. } => "upstream_error",
            GatewayError::CircuitOpen { .. } => "circuit_open",
            GatewayError::RateLimited { .. } => "rate_limited",
            GatewayError::FallbackFailed { .. } => "fallback_failed",
            GatewayError::Internal(_) => "internal",
        }
    }

    pub fn side(&self) -> Side {
        match self {
            GatewayError::NoRoute
            | GatewayError::HeadersTooLarge { .. }
            | GatewayError::BodyTooLarge { .. }
            | GatewayError::BadRequest(_)
            | GatewayError::ClientTimeout
            | GatewayError::RateLimited { .. } => Side::Client,
            GatewayError::NoEndpoints { .. }
            | GatewayError::Unreachable { .. }
            | GatewayError::UpstreamTimeout { .. }
            | GatewayError::CircuitOpen { .. }
            | GatewayError::BadStatus { .. }
            | GatewayError::FallbackFailed { .. } => Side::Upstream,
            GatewayError::Internal(_) => Side::Gateway,
        }
    }

    /// A pingora error carrying this error's status, to stop the proxy pipeline. Its source
    /// is `Internal`: the gateway decided, so `classify` never reads it as a pod's answer (the
    /// error itself travels in the request's outcome).
    pub fn to_pingora(&self) -> Box<Error> {
        Error::create(
            ErrorType::HTTPStatus(self.status()),
            ErrorSource::Internal,
            Some(self.to_string().into()),
            None,
        )
    }

    /// What the client is told: the same for every error of a code but for the size limits
    /// (the client's own request against a published limit). Never where or why inside.
    pub fn public_message(&self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            GatewayError::NoRoute => "no route matches this request",
            GatewayError::HeadersTooLarge { limit } => {
                return Cow::Owned(format!("request headers exceed {limit} bytes"))
            }
            GatewayError::BodyTooLarge { limit } => return Cow::Owned(format!("request body exceeds {limit} bytes")),
            GatewayError::BadRequest(_) => "the request is malformed",
            GatewayError::ClientTimeout => "the request did not arrive in time",
            GatewayError::NoEndpoints { .. } => "no upstream is available to serve this request",
            GatewayError::Unreachable { .. } => "the upstream could not be reached",
            GatewayError::UpstreamTimeout { .. } => "the upstream did not answer in time",
            GatewayError::BadStatus { .. } => "the upstream failed to serve this request",
            GatewayError::CircuitOpen { .. } => "the upstream is at capacity; retry shortly",
            GatewayError::RateLimited { .. } => "rate limit exceeded; see Retry-After",
            GatewayError::FallbackFailed { .. } => "the upstream pods failed and the fallback function failed too",
            GatewayError::Internal(_) => "internal gateway error",
        })
    }

    /// Status line, headers and JSON body for the client.
    pub fn render(&self, request_id: &str) -> pingora::Result<(ResponseHeader, Bytes)> {
        let body = serde_json::json!({
            "error": self.code(),
            "message": self.public_message(),
            "request_id": request_id,
        });
        let body = Bytes::from(body.to_string());
        let mut header = ResponseHeader::build(self.status(), Some(5))?;
        header.insert_header(http::header::CONTENT_TYPE, "application/json")?;
        header.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
        header.insert_header("x-request-id", request_id)?;
        if let GatewayError::RateLimited { retry_after, limit } = self {
            // Whole seconds, rounded up: `Retry-After: 0` would invite an immediate retry.
            let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            header.insert_header(http::header::RETRY_AFTER, secs.max(1).to_string())?;
            header.insert_header("ratelimit-limit", limit.to_string())?;
            header.insert_header("ratelimit-remaining", "0")?;
            header.insert_header("ratelimit-reset", secs.max(1).to_string())?;
        }
        Ok((header, body))
    }
}

impl fmt::Display for GatewayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GatewayError::NoRoute => write!(f, "no route matches this request"),
            GatewayError::HeadersTooLarge { limit } => {
                write!(f, "request headers exceed {limit} bytes")
            }
            GatewayError::BodyTooLarge { limit } => write!(f, "request body exceeds {limit} bytes"),
            GatewayError::BadRequest(m) => write!(f, "bad request: {m}"),
            GatewayError::ClientTimeout => write!(f, "the client stalled sending its request body"),
            GatewayError::NoEndpoints { cluster } => {
                write!(f, "cluster `{cluster}` has no pod available")
            }
            GatewayError::Unreachable { pod: Some(p), cause } => write!(f, "pod {p} unreachable ({cause})"),
            GatewayError::Unreachable { pod: None, cause } => {
                write!(f, "upstream unreachable ({cause})")
            }
            GatewayError::UpstreamTimeout { pod: Some(p) } => {
                write!(f, "pod {p} did not answer in time")
            }
            GatewayError::UpstreamTimeout { pod: None } => {
                write!(f, "upstream did not answer in time")
            }
            GatewayError::BadStatus { pod: Some(p), status } => write!(f, "pod {p} answered {status}"),
            GatewayError::BadStatus { pod: None, status } => write!(f, "upstream answered {status}"),
            GatewayError::CircuitOpen { cluster } => write!(f, "cluster `{cluster}` is at its in-flight limit"),
            GatewayError::RateLimited { retry_after, .. } => {
                write!(f, "rate limit exceeded; retry in {} ms", retry_after.as_millis())
            }
            GatewayError::FallbackFailed { upstream, faas } => {
                write!(f, "pods failed ({upstream}) and the fallback failed ({faas})")
            }
            GatewayError::Internal(m) => write!(f, "internal error: {m}"),
        }
    }
}

impl std::error::Error for GatewayError {}

#[cfg(test)]
#[path = "error_tests.rs"]
mod tests;
