//! Unit tests of `fallback`.
#![allow(clippy::unwrap_used)]
use super::*;

#[test]
fn final_errors_map_to_fallback_triggers() {
    assert_eq!(
        reason_after(&GatewayError::NoEndpoints { cluster: "c".into() }),
        Some((FallbackOn::NoHealthyPods, FaasReason::NoHealthyPods))
    );
    assert_eq!(reason_after(&GatewayError::NoRoute), None);
}
