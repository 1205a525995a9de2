//! FaaS fallback: replaying a request on a function when containers cannot serve it.
//!
//! Each configured function has its own concurrency limit (fail fast when full, never queue
//! behind a cold start) and timeout that must cover a cold start.

pub mod credentials;
mod http;
mod lambda;

use std::net::IpAddr;
use std::sync::Arc;

use ::http::{HeaderMap, Method};
use bytes::Bytes;
use tokio::sync::Semaphore;

use crate::config::{FaasSpec, FaasTarget};
pub use credentials::AwsCredentials;

/// The request as the gateway received it, ready to be replayed.
#[derive(Debug, Clone)]
pub struct FaasRequest {
    pub method: Method,
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub client_ip: Option<IpAddr>,
    pub request_id: String,
}

/// The function's answer in HTTP terms.
#[derive(Debug, Clone)]
pub struct FaasResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum FaasError {
    #[error("function `{0}` is at its concurrency limit")]
    Saturated(String),
    #[error("function `{0}` did not answer in time")]
    Timeout(String),
    #[error("function `{name}` unreachable: {cause}")]
    Transport { name: String, cause: String },
    #[error("function `{name}` failed: {cause}")]
    Function { name: String, cause: String },
}

impl FaasError {
    /// Short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            FaasError::Saturated(_) => "saturated",
            FaasError::Timeout(_) => "timeout",
            FaasError::Transport { .. } => "transport",
            FaasError::Function { .. } => "function_error",
        }
    }
}

enum Invoker {
    Http(http::HttpInvoker),
    /// Boxed: it holds the credential cache, several times the size of an HTTP invoker.
    Lambda(Box<lambda::LambdaInvoker>),
}

/// One configured function.
pub struct Function {
    pub spec: FaasSpec,
    permits: Arc<Semaphore>,
    invoker: Invoker,
}

/// Largest function answer the gateway relays.
pub const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

impl Function {
    /// A function whose AWS credentials (`aws_lambda`) come from the standard provider chain:
    /// environment, profile, web identity (IRSA), container endpoint, instance metadata.
    pub fn new(spec: FaasSpec) -> Result<Self, String> {
        let creds = match &spec.target {
            FaasTarget::AwsLambda { region, .. } => AwsCredentials::chain(region),
            FaasTarget::Http { .. } => AwsCredentials::missing("not an aws_lambda function"),
        };
        Self::with_credentials(spec, creds)
    }

    /// A function whose AWS credentials are exactly `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`) as `env` gives them now — static
    /// credentials, for callers that must not change the process environment (`set_var` races
    /// with `getenv` in threads). Without both keys every invoke fails, saying so.
    pub fn with_env(spec: FaasSpec, env: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let creds = match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            (Some(key), Some(secret)) => AwsCredentials::fixed(aws_credential_types::Credentials::new(
                key,
                secret,
                env("AWS_SESSION_TOKEN"),
                None,
                "explicit",
            )),
            _ => AwsCredentials::missing(
                "AWS credentials missing: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY not given",
            ),
        };
        Self::with_credentials(spec, creds)
    }

    /// A function whose AWS credentials come from `creds`.
    pub fn with_credentials(spec: FaasSpec, creds: AwsCredentials) -> Result<Self, String> {
        let invoker = match &spec.target {
            FaasTarget::Http { url } => Invoker::Http(http::HttpInvoker::new(url, &spec)?),
            FaasTarget::AwsLambda {
                function,
                region,
                endpoint,
            } => Invoker::Lambda(Box::new(lambda::LambdaInvoker::new(
                function,
                region,
                endpoint.as_deref(),
                &spec,
                creds,
            )?)),
        };
        Ok(Function {
            permits: Arc::new(Semaphore::new(spec.max_concurrency as usize)),
            spec,
            invoker,
        })
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn in_flight(&self) -> usize {
        self.spec.max_concurrency as usize - self.permits.available_permits()
    }

    /// Replays `req` on the function within its concurrency limit and timeout.
    pub async fn invoke(&self, req: &FaasRequest) -> Result<FaasResponse, FaasError> {
        let name = &self.spec.name;
        let Ok(_permit) = self.permits.try_acquire() else {
            return Err(FaasError::Saturated(name.clone()));
        };
        let call = async {
            match &self.invoker {
                Invoker::Http(h) => h.invoke(name, req).await,
                Invoker::Lambda(l) => l.invoke(name, req).await,
            }
        };
        match tokio::time::timeout(self.spec.timeout, call).await {
            Ok(r) => r,
            Err(_) => Err(FaasError::Timeout(name.clone())),
        }
    }
}

/// Hop-by-hop headers never forwarded (RFC 9110 §7.6.1) plus ones the client recomputes.
pub fn is_hop_header(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
    )
}
