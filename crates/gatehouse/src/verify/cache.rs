//! The verified-token cache and the [`Authenticator`] that consults it before any verifier.
//!
//! (Stub: the real cache is being written; the public signatures below are fixed.)

use std::sync::Arc;

use crate::caller::{AccessToken, Caller};
use crate::verify::{TokenVerifier, VerifyError};

/// Tuning of the verified-token cache.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Maximum number of cached verified tokens.
    pub max_entries: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self { max_entries: 100_000 }
    }
}

/// Entry point of authentication: cache first, then the verifier (chain).
pub struct Authenticator {
    inner: Arc<dyn TokenVerifier>,
}

impl Authenticator {
    /// Wraps a verifier with the verified-token cache.
    pub fn new(inner: Arc<dyn TokenVerifier>, _config: CacheConfig) -> Self {
        Self { inner }
    }

    /// Verifies `token`, answering from the cache when the exact token was verified before.
    pub async fn authenticate(&self, token: &AccessToken) -> Result<Caller, VerifyError> {
        self.inner.verify(token).await
    }

    /// True once the underlying verifiers can decide tokens.
    pub fn ready(&self) -> bool {
        self.inner.ready()
    }
}
