//! Shared by the release tests: a spec as the documented example writes it.

use std::time::Duration;

use crate::config::defaults::release as def;
use crate::config::release::fingerprint;
use crate::config::{AnalysisSpec, OnFailure, ReleaseScope, ReleaseSpec, StickyKey};

/// `name` splitting `matches` from `match-api` to `match-api-v2` over `steps` (bp), with the
/// default analysis but `min_requests` 100 and a 10 s window.
pub fn spec(name: &str, steps: &[u16]) -> ReleaseSpec {
    let routes = vec!["matches".to_string()];
    ReleaseSpec {
        name: name.into(),
        fingerprint: fingerprint("match-api", "match-api-v2", &routes, steps, 0),
        routes,
        stable: "match-api".into(),
        canary: "match-api-v2".into(),
        sticky: StickyKey::ClientIp,
        force_canary: Vec::new(),
        force_stable: Vec::new(),
        steps: steps.to_vec(),
        initial_weight: 0,
        step_interval: Duration::from_secs(30),
        analysis: AnalysisSpec {
            window: Duration::from_secs(10),
            min_requests: 100,
            max_error_rate_delta: def::MAX_ERROR_RATE_DELTA,
            max_p99_ratio: def::MAX_P99_RATIO,
        },
        on_failure: OnFailure::Rollback,
        retry_on_stable: true,
        scope: ReleaseScope::Local,
    }
}
