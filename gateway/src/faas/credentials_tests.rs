//! Unit tests of `credentials`: caching, renewal before expiry, one load at a time, failures.
#![allow(clippy::unwrap_used)]
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::*;

/// A provider that counts its loads and hands out credentials expiring `ttl` after `now()`.
#[derive(Debug)]
struct Counting {
    loads: Arc<AtomicUsize>,
    ttl: Option<Duration>,
    fail: bool,
}

impl ProvideCredentials for Counting {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            // Let concurrent callers pile up behind the one loading.
            tokio::task::yield_now().await;
            let n = self.loads.fetch_add(1, Ordering::SeqCst) + 1;
            if self.fail {
                return Err(CredentialsError::provider_error("metadata endpoint unreachable"));
            }
            Ok(Credentials::new(
                format!("AKID{n}"),
                "secret",
                Some(format!("token{n}")),
                self.ttl.map(|ttl| now() + ttl),
                "test",
            ))
        })
    }
}

thread_local! {
    /// The test clock, seconds after the epoch: one per test thread (each test's runtime runs
    /// its tasks on that thread), moved by the test.
    static CLOCK: Cell<u64> = const { Cell::new(1_000_000) };
}

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(CLOCK.get())
}

fn advance_clock(secs: u64) {
    CLOCK.set(CLOCK.get() + secs);
}

fn counting(ttl: Option<Duration>, fail: bool) -> (AwsCredentials, Arc<AtomicUsize>) {
    let loads = Arc::new(AtomicUsize::new(0));
    let provider = Counting {
        loads: Arc::clone(&loads),
        ttl,
        fail,
    };
    let creds = AwsCredentials::provider(SharedCredentialsProvider::new(provider)).with_clock(now);
    (creds, loads)
}

/// Before: the Lambda invoker read the environment on every invoke — no chain, no cache.
#[tokio::test(start_paused = true)]
async fn credentials_are_loaded_once_and_renewed_before_they_expire() {
    let (creds, loads) = counting(Some(Duration::from_secs(3600)), false);
    for _ in 0..10 {
        assert_eq!(creds.get().await.unwrap().access_key_id(), "AKID1");
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1, "cached");
    // Inside the renewal margin: renewed once, then cached again.
    advance_clock(3600 - REFRESH_BEFORE.as_secs() + 1);
    assert_eq!(creds.get().await.unwrap().access_key_id(), "AKID2");
    assert_eq!(creds.get().await.unwrap().session_token(), Some("token2"));
    assert_eq!(loads.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_callers_costs_one_load() {
    let (creds, loads) = counting(Some(Duration::from_secs(3600)), false);
    let creds = Arc::new(creds);
    let calls: Vec<_> = (0..32)
        .map(|_| {
            let creds = Arc::clone(&creds);
            tokio::spawn(async move { creds.get().await.map(|c| c.access_key_id().to_string()) })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap(), "AKID1");
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn failures_fail_fast_for_a_while_and_never_hide_an_expiry() {
    let (creds, loads) = counting(None, true);
    let err = creds.get().await.unwrap_err();
    assert!(err.contains("metadata endpoint unreachable"), "{err}");
    // Within RETRY_AFTER_FAILURE: the same error at once, no new load.
    assert_eq!(creds.get().await.unwrap_err(), err);
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    tokio::time::advance(RETRY_AFTER_FAILURE).await;
    assert!(creds.get().await.is_err());
    assert_eq!(loads.load(Ordering::SeqCst), 2, "tried again after the pause");
}

#[tokio::test(start_paused = true)]
async fn a_failed_renewal_keeps_the_old_credentials_until_they_expire() {
    let (creds, loads) = counting(None, true);
    // What an earlier load gave, expiring in 2 min: inside the renewal margin.
    let expiry = now() + Duration::from_secs(120);
    creds.state().current = Some(Credentials::new("AKIDOLD", "s", None, Some(expiry), "test"));
    assert_eq!(creds.get().await.unwrap().access_key_id(), "AKIDOLD", "still good");
    assert_eq!(loads.load(Ordering::SeqCst), 1, "a renewal was tried");
    advance_clock(121);
    tokio::time::advance(RETRY_AFTER_FAILURE).await;
    assert!(creds.get().await.is_err(), "expired: not used");
}

#[tokio::test]
async fn fixed_and_missing_credentials() {
    let fixed = AwsCredentials::fixed(Credentials::new("AKIDFIXED", "s", None, None, "test"));
    assert_eq!(fixed.get().await.unwrap().access_key_id(), "AKIDFIXED");
    let missing = AwsCredentials::missing("AWS credentials missing: none given");
    let err = missing.get().await.unwrap_err();
    assert!(err.contains("AWS credentials missing: none given"), "{err}");
}
