//! AWS credentials of `kind: aws_lambda` functions: the standard provider chain (environment,
//! profile files, web identity — IRSA —, container endpoint — ECS, EKS Pod Identity —, EC2
//! instance metadata), or credentials given explicitly. Whatever the source, they are cached
//! until [`REFRESH_BEFORE`] their expiry and renewed by one caller at a time, so an invoke
//! costs no credential lookup and a burst of fallbacks costs one refresh, not one each.

use std::error::Error;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::provider_config::ProviderConfig;
use aws_config::Region;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use tokio::sync::OnceCell;
use tokio::time::Instant;

/// Credentials are renewed this long before they expire: STS sessions last 15 min to 12 h,
/// and a renewal that fails leaves this long to retry with the old ones still good.
pub const REFRESH_BEFORE: Duration = Duration::from_secs(300);

/// After a failed load, invokes fail at once for this long instead of each waiting on the
/// chain again (which may be timing out on a metadata endpoint that is not there).
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

enum Source {
    /// The default chain, built on first use (it reads profile files, which is async).
    Chain {
        region: String,
        chain: OnceCell<SharedCredentialsProvider>,
    },
    /// A provider given by the caller (static credentials of `Function::with_env`, tests).
    Given(SharedCredentialsProvider),
}

#[derive(Default)]
struct State {
    current: Option<Credentials>,
    /// When the last load failed, and why.
    failed: Option<(Instant, String)>,
}

/// Where one function's AWS credentials come from, and the ones in hand.
pub struct AwsCredentials {
    source: Source,
    state: Mutex<State>,
    /// Held while loading: one load at a time, the others wait and take its result.
    loading: tokio::sync::Mutex<()>,
    /// The wall clock credentials' expiry is read against (a test's own clock).
    now: fn() -> SystemTime,
}

impl AwsCredentials {
    /// The standard chain, for functions in `region` (the region STS is called in).
    pub fn chain(region: &str) -> Self {
        Self::from_source(Source::Chain {
            region: region.to_string(),
            chain: OnceCell::new(),
        })
    }

    /// Exactly these credentials (never refreshed: they carry no expiry).
    pub fn fixed(creds: Credentials) -> Self {
        Self::provider(SharedCredentialsProvider::new(creds))
    }

    /// None: every invoke fails with `why` (a caller that gave no credentials).
    pub fn missing(why: &'static str) -> Self {
        Self::provider(SharedCredentialsProvider::new(Missing(why)))
    }

    /// Credentials from `provider`, cached like the chain's.
    pub fn provider(provider: SharedCredentialsProvider) -> Self {
        Self::from_source(Source::Given(provider))
    }

    fn from_source(source: Source) -> Self {
        AwsCredentials {
            source,
            state: Mutex::new(State::default()),
            loading: tokio::sync::Mutex::new(()),
            now: SystemTime::now,
        }
    }

    #[cfg(test)]
    fn with_clock(mut self, now: fn() -> SystemTime) -> Self {
        self.now = now;
        self
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached credentials while they are good for at least `margin` more.
    fn cached(&self, margin: Duration) -> Option<Credentials> {
        let now = (self.now)();
        self.state()
            .current
            .as_ref()
            .filter(|c| c.expiry().is_none_or(|at| now + margin < at))
            .cloned()
    }

    /// Credentials to sign with: the cached ones, or freshly loaded when they are missing or
    /// about to expire. A failed renewal keeps using the old ones until they actually expire.
    pub async fn get(&self) -> Result<Credentials, String> {
        if let Some(c) = self.cached(REFRESH_BEFORE) {
            return Ok(c);
        }
        let _one = self.loading.lock().await;
        if let Some(c) = self.cached(REFRESH_BEFORE) {
            // Loaded by the caller this one waited for.
            return Ok(c);
        }
        let recent_failure = self
            .state()
            .failed
            .as_ref()
            .filter(|(at, _)| at.elapsed() < RETRY_AFTER_FAILURE)
            .map(|(_, why)| why.clone());
        let loaded = match recent_failure {
            Some(why) => Err(why),
            None => self.load().await,
        };
        let mut state = self.state();
        match loaded {
            Ok(c) => {
                state.current = Some(c.clone());
                state.failed = None;
                Ok(c)
            }
            Err(why) => {
                if state
                    .failed
                    .as_ref()
                    .is_none_or(|(at, _)| at.elapsed() >= RETRY_AFTER_FAILURE)
                {
                    tracing::warn!(error = %why, "loading AWS credentials failed");
                    state.failed = Some((Instant::now(), why.clone()));
                }
                drop(state);
                self.cached(Duration::ZERO).ok_or(why)
            }
        }
    }

    async fn load(&self) -> Result<Credentials, String> {
        let provider = match &self.source {
            Source::Given(p) => p.clone(),
            Source::Chain { region, chain } => chain.get_or_init(|| default_chain(region)).await.clone(),
        };
        provider
            .provide_credentials()
            .await
            .map_err(|e| format!("AWS credentials: {}", error_chain(&e)))
    }
}

/// The SDK's default chain with its own HTTP calls (STS, the container endpoint, instance
/// metadata) on rustls with ring: no aws-lc, no OpenSSL.
async fn default_chain(region: &str) -> SharedCredentialsProvider {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let config = ProviderConfig::without_region().with_http_client(http);
    let chain = DefaultCredentialsChain::builder()
        .configure(config)
        .region(Region::new(region.to_string()))
        .build()
        .await;
    SharedCredentialsProvider::new(chain)
}

/// `e` and its causes, `: `-separated (the chain's errors say little without their sources).
fn error_chain(e: &dyn Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// A provider that has nothing to give.
#[derive(Debug)]
struct Missing(&'static str);

impl ProvideCredentials for Missing {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::ready(Err(CredentialsError::not_loaded(self.0)))
    }
}

#[cfg(test)]
#[path = "credentials_tests.rs"]
mod tests;
