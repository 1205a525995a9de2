//! Unit tests of `classify`.
#![allow(clippy::unwrap_used)]
use super::*;

fn up(t: ErrorType) -> Box<Error> {
    let mut e = Error::new(t);
    e.as_up();
    e
}

#[test]
fn classifies_errors() {
    let cause = |e: &Error| classify(e, None).retry_on;
    assert_eq!(
        cause(&Error::new(ErrorType::ConnectRefused)),
        Some(RetryOn::ConnectFailure)
    );
    assert_eq!(cause(&Error::new(ErrorType::ReadTimedout)), Some(RetryOn::Timeout));
    assert_eq!(cause(&Error::new(ErrorType::ConnectionClosed)), Some(RetryOn::Reset));
    assert_eq!(cause(&Error::new(ErrorType::HTTPStatus(503))), Some(RetryOn::Status5xx));
}

#[test]
fn classifies_upstream_errors() {
    let pod = Some(SocketAddr::from(([127, 0, 0, 11], 9100)));
    assert_eq!(classify(&up(ErrorType::ConnectRefused), pod).error.status(), 502);
    assert_eq!(classify(&up(ErrorType::ReadTimedout), pod).error.status(), 504);
    assert_eq!(
        classify(&Error::new(ErrorType::HTTPStatus(431)), None).error.status(),
        431
    );
    let f = classify(&pod_answered(503), pod);
    assert_eq!(f.error, GatewayError::BadStatus { pod, status: 503 });
    assert!(f.counts_against_pod());
}

#[test]
fn a_client_fault_is_never_the_pods() {
    // A client that stops mid-upload or sends garbage: whatever the error type, pingora marks
    // it downstream, and neither the pod nor the retry budget pays for it.
    for t in [
        ErrorType::ReadError,
        ErrorType::ConnectionClosed,
        ErrorType::ReadTimedout,
        ErrorType::H1Error,
    ] {
        let mut e = Error::new(t.clone());
        e.as_down();
        let f = classify(&e, None);
        assert_eq!(f.side(), Side::Client, "{t:?}");
        assert!(!f.counts_against_pod(), "{t:?}");
        assert_eq!(f.retry_on, None, "{t:?}");
        // A stall is a timeout (408, like a stalled head); the rest, a bad request.
        let want = if t == ErrorType::ReadTimedout { 408 } else { 400 };
        assert_eq!(f.error.status(), want, "{t:?}");
    }
}

#[test]
fn the_gateways_own_errors_are_not_pod_answers() {
    let carried = GatewayError::NoEndpoints { cluster: "c".into() }.to_pingora();
    let f = classify(&carried, None);
    assert_eq!(f.retry_on, None);
    assert!(!f.counts_against_pod());
    let f = classify(&Error::new(ErrorType::InternalError), None);
    assert_eq!(f.side(), Side::Gateway);
}
