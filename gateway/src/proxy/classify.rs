//! The one error classifier: a pingora error (and the pod it concerns) → what the client is
//! told ([`GatewayError`], which knows its status and the side at fault) and, when the pod is at
//! fault, which retry trigger it is. Retry, outlier ejection, the retry budget and the FaaS
//! fallback all read this one answer.

use std::net::SocketAddr;

use pingora::{Error, ErrorSource, ErrorType};

use super::error::{GatewayError, Side};
use crate::config::RetryOn;

/// One failed try or request, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub error: GatewayError,
    /// The retry trigger (`retry.on`) this is, when another pod might do better; `None` for
    /// client and gateway faults, which no pod can fix.
    pub retry_on: Option<RetryOn>,
}

impl Fault {
    pub fn side(&self) -> Side {
        self.error.side()
    }

    /// Whether the pod tried is to blame (its balancer cost and outlier state pay for it).
    pub fn counts_against_pod(&self) -> bool {
        self.side() == Side::Upstream
    }

    fn upstream(error: GatewayError, cause: RetryOn) -> Fault {
        Fault {
            error,
            retry_on: Some(cause),
        }
    }

    fn not_retryable(error: GatewayError) -> Fault {
        Fault { error, retry_on: None }
    }
}

/// Classifies `e`, raised while serving a request whose last try went to `pod`.
///
/// The source says the side: anything pingora marks `Downstream` (the client sent garbage,
/// stalled or went away mid-upload) is the client's, whatever its type. The rest is read by
/// type: connect failures, timeouts and resets are the pod's; a `5xx` status is the pod's
/// answer unless the gateway raised it itself (`Internal`: see `GatewayError::to_pingora`).
pub fn classify(e: &Error, pod: Option<SocketAddr>) -> Fault {
    use ErrorType::*;
    let source = e.esource();
    if source == &ErrorSource::Downstream {
        // A stalled client is told so (408, as for a stalled head), not that it sent garbage.
        if matches!(e.etype(), ReadTimedout) {
            return Fault::not_retryable(GatewayError::ClientTimeout);
        }
        return Fault::not_retryable(GatewayError::BadRequest(e.etype().as_str().to_string()));
    }
    let unreachable = || GatewayError::Unreachable {
        pod,
        cause: e.etype().as_str().to_string(),
    };
    match e.etype() {
        HTTPStatus(431) => Fault::not_retryable(GatewayError::HeadersTooLarge { limit: 0 }),
        HTTPStatus(413) => Fault::not_retryable(GatewayError::BodyTooLarge { limit: 0 }),
        HTTPStatus(code) if (400..500).contains(code) => Fault::not_retryable(GatewayError::BadRequest(e.to_string())),
        HTTPStatus(code) if *code >= 500 && source != &ErrorSource::Internal => {
            Fault::upstream(GatewayError::BadStatus { pod, status: *code }, RetryOn::Status5xx)
        }
        ConnectTimedout => Fault::upstream(GatewayError::UpstreamTimeout { pod }, RetryOn::ConnectFailure),
        ConnectRefused | ConnectNoRoute | ConnectError | TLSHandshakeFailure | SocketError | BindError => {
            Fault::upstream(unreachable(), RetryOn::ConnectFailure)
        }
        ReadTimedout | WriteTimedout => Fault::upstream(GatewayError::UpstreamTimeout { pod }, RetryOn::Timeout),
        ConnectionClosed | ReadError | WriteError | InvalidHTTPHeader | H1Error | H2Error | InvalidH2 | H2Downgrade => {
            Fault::upstream(unreachable(), RetryOn::Reset)
        }
        _ if source == &ErrorSource::Upstream => Fault::upstream(unreachable(), RetryOn::Reset),
        _ => Fault::not_retryable(GatewayError::Internal(e.etype().as_str().to_string())),
    }
}

/// Classifies an error of connecting to `pod`: whatever its type (TLS, timeouts, socket
/// errors...), nothing reached the pod, so it is a connect failure when it is the pod's side.
pub fn connect_failure(e: &Error, pod: Option<SocketAddr>) -> Fault {
    let mut f = classify(e, pod);
    if f.counts_against_pod() {
        f.retry_on = Some(RetryOn::ConnectFailure);
    }
    f
}

/// The error raised when a pod answered `status` (5xx) and the answer is not passed on (a
/// retry or the fallback takes over). Sourced `Upstream`: [`classify`] reads it back as the
/// pod's fault.
pub fn pod_answered(status: u16) -> Box<Error> {
    let mut e = Error::explain(ErrorType::HTTPStatus(status), "pod answered a server error");
    e.as_up();
    e
}

#[cfg(test)]
#[path = "classify_tests.rs"]
mod tests;
