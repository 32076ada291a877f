//! The verified-token cache and the [`Authenticator`] that consults it before any verifier.
//!
//! Architecture invariants (peers.md gap 6, spec rows A27, E15):
//! - **Keyed by the token's BLAKE3 digest, never its text** (spec row A27: a token kept in a
//!   server's cache is a theft vector). A hit requires a token with the same digest as one
//!   verified before: reaching it with a different token means finding a BLAKE3 second preimage
//!   of an unknown valid token. The cache therefore holds no bearer string (a memory dump of the process
//!   yields none from it), and an entry is 32 bytes of key instead of the token, which is
//!   typically 600–1,500 bytes (measured: `bench/README.md`).
//! - **Never past `exp`.** Each entry expires at `min(exp − now, max_ttl)`, and a hit re-checks
//!   `exp` against the clock, so a cached token dies with the token (RFC 7662 §4: "MUST NOT cache
//!   past exp"). Introspected tokens have a shorter cap, because revocation is only seen on the
//!   next introspection.
//! - **Cheap hits.** The cache is consulted synchronously before the (boxed) verifier future is
//!   created; a hit does no signature check, no network, and no allocation beyond cloning the
//!   `Caller`'s `Arc`.
//! - **Bounded.** Entry counts are capped. The size of a token does not matter: an entry holds
//!   its 32-byte digest, and tokens over the one size limit never get this far (the edge and the
//!   verifier chain refuse them, [`crate::GatehouseBuilder::max_token_bytes`]).
//! - **Negative cache for definitive refusals only** (bad signature, expired, wrong audience,
//!   malformed, …), short-lived, so a flood of one bad token costs a map lookup. Undecided
//!   outcomes (unknown `kid`, unavailable keys or introspection) and time-dependent ones (not yet
//!   valid) are never cached.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use moka::Expiry;
use moka::sync::Cache;

use crate::caller::{AccessToken, Caller, TokenKind};
use crate::observe::Observer;
use crate::tenancy::CallerEnricher;
use crate::verify::{InvalidReason, TokenVerifier, VerifyError};

/// Tuning of the verified-token cache.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Maximum number of cached verified tokens. Default: 10,000 (worst case about
    /// `max_entries × (32-byte key + the caller's claims)` of memory).
    pub max_entries: u64,
    /// Longest time a verified JWT stays cached (it never outlives its `exp`). Default: 5 min.
    pub max_ttl: Duration,
    /// Longest time an introspection result stays cached: the window in which a revoked opaque
    /// token is still accepted. Default: 60 s.
    pub max_ttl_introspected: Duration,
    /// Maximum number of remembered definitive refusals. `0` disables the negative cache.
    /// Default: 1,000.
    pub negative_max_entries: u64,
    /// How long a refusal is remembered. Default: 10 s.
    pub negative_ttl: Duration,
    /// Claims kept on each verified caller beside its fields (subject, client, issuer, tenant,
    /// scopes, audiences, expiry) and the claims Gatehouse reads itself (`act`, `cnf`): every
    /// other claim is dropped before the caller is cached or handed on, so an entry stays
    /// small (issue 18). Tools that read another claim name it here. Default: none.
    pub keep_claims: Vec<String>,
}

/// Claims Gatehouse itself reads from a verified caller: `act` ([`Caller::actor`]), `cnf`
/// ([`Caller::dpop_jkt`]).
const LIBRARY_CLAIMS: [&str; 2] = ["act", "cnf"];

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            max_ttl: Duration::from_secs(300),
            max_ttl_introspected: Duration::from_secs(60),
            negative_max_entries: 1_000,
            negative_ttl: Duration::from_secs(10),
            keep_claims: Vec::new(),
        }
    }
}

/// Counters of the cache, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Verified-token hits.
    pub hits: u64,
    /// Negative-cache hits (refusals answered from memory).
    pub negative_hits: u64,
    /// Misses (the verifier was called).
    pub misses: u64,
}

/// Sums counters (several protected servers in one process report one total).
impl std::ops::AddAssign for CacheStats {
    fn add_assign(&mut self, o: Self) {
        self.hits += o.hits;
        self.negative_hits += o.negative_hits;
        self.misses += o.misses;
    }
}

/// What the caches are keyed by: the BLAKE3 digest of the token text. Collision resistance is
/// what matters (a token that collided with a cached one would be taken for it); BLAKE3 gives
/// it at a fraction of SHA-256's cost on this per-request path, where the token is hashed on
/// every request, hit or miss.
type TokenKey = [u8; 32];

fn token_key(token: &str) -> TokenKey {
    *blake3::hash(token.as_bytes()).as_bytes()
}

/// Per-entry lifetime: until the token's `exp`, capped by kind.
struct CallerExpiry {
    max_ttl: Duration,
    max_ttl_introspected: Duration,
}

impl Expiry<TokenKey, Caller> for CallerExpiry {
    fn expire_after_create(&self, _: &TokenKey, caller: &Caller, _: Instant) -> Option<Duration> {
        let cap = match caller.kind {
            TokenKind::Jwt => self.max_ttl,
            TokenKind::Introspected => self.max_ttl_introspected,
        };
        Some(caller.remaining(SystemTime::now()).min(cap))
    }
}

/// True for refusals that will not change if the same token is presented again soon.
fn is_definitive(reason: InvalidReason) -> bool {
    match reason {
        InvalidReason::Malformed
        | InvalidReason::AlgorithmNotAllowed
        | InvalidReason::TypeNotAllowed
        | InvalidReason::ForbiddenHeader
        | InvalidReason::UnknownIssuer
        | InvalidReason::BadSignature
        | InvalidReason::Expired
        | InvalidReason::MissingClaim
        | InvalidReason::AudienceMismatch
        | InvalidReason::IssuerMismatch
        | InvalidReason::Inactive => true,
        // A rotated-in key may appear; a token may become valid; a huge token is not worth
        // storing (and is refused before any work anyway).
        InvalidReason::UnknownKey
        | InvalidReason::NotYetValid
        | InvalidReason::IssuedInFuture
        | InvalidReason::TooLarge => false,
        // About how the token was presented (scheme, proof), not the token: the edge decides
        // them on every request, after the cache.
        InvalidReason::BoundTokenAsBearer
        | InvalidReason::DpopRequired
        | InvalidReason::NotDpopBound => false,
    }
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    negative_hits: AtomicU64,
    misses: AtomicU64,
}

/// How [`Authenticator::authenticate_metered`] decided a token.
#[derive(Debug)]
pub enum Authentication {
    /// From the caches, or by the verifier without leaving the process.
    Decided(Result<Caller, VerifyError>),
    /// By a verification that reached the authorization server.
    Reached(Result<Caller, VerifyError>),
    /// Not decided: it needed the authorization server and `may_reach` said no.
    Deferred,
}

/// Entry point of authentication: cache first, then the verifier (chain).
pub struct Authenticator {
    inner: Arc<dyn TokenVerifier>,
    positive: Cache<TokenKey, Caller>,
    negative: Option<Cache<TokenKey, InvalidReason>>,
    counters: Counters,
    /// Runs once per verified token, before the result is cached ([`crate::tenancy`]).
    enricher: Option<Arc<dyn CallerEnricher>>,
    /// Told how long each cache miss took to verify.
    observer: Option<Arc<dyn Observer>>,
    /// Claims a cached caller keeps ([`CacheConfig::keep_claims`] and [`LIBRARY_CLAIMS`]).
    keep_claims: Arc<[String]>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Wraps a verifier with the verified-token cache.
    pub fn new(inner: Arc<dyn TokenVerifier>, config: CacheConfig) -> Self {
        let positive = Cache::builder()
            .max_capacity(config.max_entries)
            .expire_after(CallerExpiry {
                max_ttl: config.max_ttl,
                max_ttl_introspected: config.max_ttl_introspected,
            })
            .build();
        let negative = (config.negative_max_entries > 0).then(|| {
            Cache::builder()
                .max_capacity(config.negative_max_entries)
                .time_to_live(config.negative_ttl)
                .build()
        });
        Self {
            inner,
            positive,
            negative,
            counters: Counters::default(),
            enricher: None,
            observer: None,
            keep_claims: LIBRARY_CLAIMS
                .iter()
                .map(|c| (*c).to_owned())
                .chain(config.keep_claims.iter().cloned())
                .collect(),
        }
    }

    /// Runs `enricher` on every newly verified caller, before it is cached: the tenant and
    /// whatever else the application derives are computed once per token, not per request.
    pub fn with_enricher(mut self, enricher: Arc<dyn CallerEnricher>) -> Self {
        self.enricher = Some(enricher);
        self
    }

    /// Reports the duration of every verification that missed the cache to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Answers from memory when possible. Synchronous on purpose: no future is boxed on a hit.
    fn lookup(&self, key: &TokenKey) -> Option<Result<Caller, VerifyError>> {
        if let Some(caller) = self.positive.get(key) {
            // moka's expiry is the first line; this is the second: never past exp.
            if caller.expires_at > SystemTime::now() {
                self.counters.hits.fetch_add(1, Ordering::Relaxed);
                return Some(Ok(caller));
            }
            self.positive.invalidate(key);
        }
        if let Some(reason) = self.negative.as_ref().and_then(|n| n.get(key)) {
            self.counters.negative_hits.fetch_add(1, Ordering::Relaxed);
            return Some(Err(VerifyError::Invalid(reason)));
        }
        None
    }

    /// Verifies `token`, answering from the cache when the exact token was verified before.
    pub async fn authenticate(&self, token: &AccessToken) -> Result<Caller, VerifyError> {
        match self
            .authenticate_metered(token, || std::future::ready(true))
            .await
        {
            Authentication::Decided(r) | Authentication::Reached(r) => r,
            // Cannot happen (`may_reach` always says yes here); should it ever, fail closed with
            // a 503 rather than panic in the request path.
            Authentication::Deferred => Err(VerifyError::Unavailable(
                super::UnavailableReason::KeysUnavailable,
            )),
        }
    }

    /// Like [`Authenticator::authenticate`], but a cache miss that cannot be decided without the
    /// authorization server (introspection, a key refresh) first asks `may_reach`; when it
    /// says no, nothing is verified and the answer is [`Authentication::Deferred`]. Cache hits
    /// and local decisions ([`TokenVerifier::verify_locally`]) never consult it. `may_reach` is
    /// asynchronous because a shared rate limit answers after a round trip.
    pub async fn authenticate_metered<F, Fut>(
        &self,
        token: &AccessToken,
        may_reach: F,
    ) -> Authentication
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = bool>,
    {
        let key = token_key(token.expose());
        if let Some(answer) = self.lookup(&key) {
            return Authentication::Decided(answer);
        }
        self.counters.misses.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let (result, reached) = match self.inner.verify_locally(token) {
            Some(result) => (result, false),
            None if may_reach().await => (self.inner.verify(token).await, true),
            None => return Authentication::Deferred,
        };
        if let Some(o) = &self.observer {
            o.verified(started.elapsed());
        }
        let result = self.remember(key, result);
        if reached {
            Authentication::Reached(result)
        } else {
            Authentication::Decided(result)
        }
    }

    /// Enriches a verified caller and caches the outcome when it may be.
    fn remember(
        &self,
        key: TokenKey,
        mut result: Result<Caller, VerifyError>,
    ) -> Result<Caller, VerifyError> {
        if let Some(e) = &self.enricher {
            // By value: a second reference would make `Caller::map` copy the whole principal.
            result = result.map(|caller| e.enrich(caller));
        }
        // After enrichment (the tenant may come from a claim), before caching: the first
        // request sees the same caller as the cached ones.
        result = result.map(|caller| {
            caller.map(|p| {
                p.claims
                    .retain(|k, _| self.keep_claims.iter().any(|c| c == k));
            })
        });
        match &result {
            Ok(caller) if caller.expires_at > SystemTime::now() => {
                self.positive.insert(key, caller.clone());
            }
            Err(VerifyError::Invalid(reason)) if is_definitive(*reason) => {
                if let Some(n) = &self.negative {
                    n.insert(key, *reason);
                }
            }
            _ => {}
        }
        result
    }

    /// True once the underlying verifiers can decide tokens.
    pub fn ready(&self) -> bool {
        self.inner.ready()
    }

    /// Hit and miss counters.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.counters.hits.load(Ordering::Relaxed),
            negative_hits: self.counters.negative_hits.load(Ordering::Relaxed),
            misses: self.counters.misses.load(Ordering::Relaxed),
        }
    }

    /// Number of cached verified tokens (approximate: moka applies writes lazily).
    pub fn entry_count(&self) -> u64 {
        self.positive.run_pending_tasks();
        self.positive.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use gatehouse_testkit::{Alg, TestAuthServer, TestKey, now};
    use serde_json::{Map, json};

    use super::*;
    use crate::caller::{Principal, ScopeSet};
    use crate::verify::chain::{ChainConfig, VerifierChain};
    use crate::verify::introspection::{ClientSecret, IntrospectionConfig};
    use crate::verify::jwt::JwtIssuerConfig;
    use crate::verify::{BoxFuture, UnavailableReason};

    const AUD: &str = "https://mcp.example/mcp";

    /// A scripted verifier: answers from a queue, counts calls.
    #[derive(Default)]
    struct Scripted {
        answers: Mutex<Vec<Result<Caller, VerifyError>>>,
        calls: AtomicU64,
    }

    impl TokenVerifier for Scripted {
        fn verify<'a>(&'a self, _: &'a AccessToken) -> BoxFuture<'a, Result<Caller, VerifyError>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let answer = self.answers.lock().unwrap().remove(0);
            Box::pin(async move { answer })
        }
    }

    fn caller(kind: TokenKind, expires_in: Duration) -> Caller {
        Caller::new(Principal {
            issuer: "https://as.example".into(),
            subject: Some("u".into()),
            client_id: None,
            scopes: ScopeSet::new(),
            audiences: vec![],
            tenant: None,
            expires_at: SystemTime::now() + expires_in,
            kind,
            claims: Map::new(),
        })
    }

    fn auth(
        script: Vec<Result<Caller, VerifyError>>,
        config: CacheConfig,
    ) -> (Authenticator, Arc<Scripted>) {
        let s = Arc::new(Scripted {
            answers: Mutex::new(script),
            calls: AtomicU64::new(0),
        });
        (Authenticator::new(s.clone(), config), s)
    }

    // Issue 18: a cached caller keeps its fields, `act`, `cnf` and the configured claims only —
    // the same on the miss that verified it and on every hit after.
    #[tokio::test]
    async fn cached_callers_keep_only_the_claims_that_are_read() {
        let mut full = caller(TokenKind::Jwt, Duration::from_secs(60));
        full = full.map(|p| {
            for (k, v) in [
                ("act", serde_json::json!({"sub": "gateway"})),
                ("cnf", serde_json::json!({"jkt": "abc"})),
                ("email", serde_json::json!("ann@example.com")),
                ("groups", serde_json::json!(["a", "b", "c"])),
                ("amr", serde_json::json!(["pwd", "mfa"])),
            ] {
                p.claims.insert(k.into(), v);
            }
        });
        let (a, s) = auth(
            vec![Ok(full)],
            CacheConfig {
                keep_claims: vec!["email".into()],
                ..CacheConfig::default()
            },
        );
        let token = AccessToken::new("t");
        let first = a.authenticate(&token).await.unwrap();
        let again = a.authenticate(&token).await.unwrap();
        assert_eq!(s.calls.load(Ordering::SeqCst), 1, "the second was a hit");
        for c in [&first, &again] {
            let kept: Vec<&str> = c.claims.keys().map(String::as_str).collect();
            assert_eq!(kept, ["act", "cnf", "email"]);
            assert_eq!(c.actor(), Some("gateway"));
            assert_eq!(c.dpop_jkt(), Some("abc"));
        }
    }

    // The per-address limit's hook: `may_reach` is asked only on a miss that needs the
    // verifier's network; a refusal starts no verification and caches nothing; hits (positive
    // or negative) never ask.
    #[tokio::test]
    async fn metered_misses_ask_before_reaching_and_hits_never_ask() {
        let (a, s) = auth(
            vec![
                Ok(caller(TokenKind::Introspected, Duration::from_secs(600))),
                Err(InvalidReason::Inactive.into()),
            ],
            CacheConfig::default(),
        );
        let good = AccessToken::new("good");
        let bad = AccessToken::new("bad");
        let never = || -> std::future::Ready<bool> { panic!("a hit asked to reach the issuer") };
        let yes = || std::future::ready(true);
        let no = || std::future::ready(false);
        assert!(matches!(
            a.authenticate_metered(&good, no).await,
            Authentication::Deferred
        ));
        assert_eq!(s.calls.load(Ordering::SeqCst), 0);
        assert!(matches!(
            a.authenticate_metered(&good, yes).await,
            Authentication::Reached(Ok(_))
        ));
        assert!(matches!(
            a.authenticate_metered(&good, never).await,
            Authentication::Decided(Ok(_))
        ));
        assert!(matches!(
            a.authenticate_metered(&bad, yes).await,
            Authentication::Reached(Err(VerifyError::Invalid(InvalidReason::Inactive)))
        ));
        assert!(matches!(
            a.authenticate_metered(&bad, never).await,
            Authentication::Decided(Err(VerifyError::Invalid(InvalidReason::Inactive)))
        ));
        assert_eq!(s.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn second_verify_is_a_hit_and_different_token_never_hits() {
        let refused = || Err(InvalidReason::BadSignature.into());
        let (a, s) = auth(
            vec![
                Ok(caller(TokenKind::Jwt, Duration::from_secs(600))),
                refused(),
                refused(),
                refused(),
            ],
            CacheConfig::default(),
        );
        let t = AccessToken::new("token-a");
        let first = a.authenticate(&t).await.unwrap();
        let second = a.authenticate(&t).await.unwrap();
        assert!(
            std::ptr::eq(&*first, &*second),
            "a hit returns the same Arc"
        );
        assert_eq!(s.calls.load(Ordering::SeqCst), 1);
        // Different tokens (a prefix, an extension, a neighbour) always reach the verifier.
        for other in ["token-", "token-a ", "token-b"] {
            let r = a.authenticate(&AccessToken::new(other)).await;
            assert_eq!(
                r.unwrap_err(),
                InvalidReason::BadSignature.into(),
                "{other}"
            );
        }
        assert_eq!(s.calls.load(Ordering::SeqCst), 4);
        assert_eq!(
            a.stats(),
            CacheStats {
                hits: 1,
                negative_hits: 0,
                misses: 4
            }
        );
    }

    #[tokio::test]
    async fn entry_never_outlives_exp() {
        // E15: an entry whose exp has passed is never served, whatever the cache's own TTL says.
        let (a, s) = auth(
            vec![Err(InvalidReason::Expired.into())],
            CacheConfig::default(),
        );
        let mut p = (*caller(TokenKind::Jwt, Duration::ZERO)).clone();
        p.expires_at = SystemTime::now() - Duration::from_secs(1);
        a.positive.insert(token_key("stale"), Caller::new(p));
        let t = AccessToken::new("stale");
        assert_eq!(
            a.authenticate(&t).await.unwrap_err(),
            InvalidReason::Expired.into()
        );
        assert_eq!(s.calls.load(Ordering::SeqCst), 1);
        assert_eq!(a.stats().hits, 0);
        // And a result that is already expired when it comes back is not stored.
        let (a, s) = auth(
            vec![
                Ok(caller(TokenKind::Jwt, Duration::ZERO)),
                Ok(caller(TokenKind::Jwt, Duration::ZERO)),
            ],
            CacheConfig::default(),
        );
        let t = AccessToken::new("zero");
        a.authenticate(&t).await.unwrap();
        a.authenticate(&t).await.unwrap();
        assert_eq!(s.calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn keys_are_blake3_of_the_token_text() {
        // The BLAKE3 reference test vector for "abc", so the key is the real digest of the
        // whole text and not, say, a prefix or a truncation.
        let k = token_key("abc");
        let hex: String = k.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
        );
        assert_ne!(token_key("abc"), token_key("abd"));
    }

    #[test]
    fn expiry_is_min_of_exp_and_cap() {
        let e = CallerExpiry {
            max_ttl: Duration::from_secs(300),
            max_ttl_introspected: Duration::from_secs(60),
        };
        let k = token_key("t");
        let now = Instant::now();
        let d = e
            .expire_after_create(&k, &caller(TokenKind::Jwt, Duration::from_secs(3600)), now)
            .unwrap();
        assert_eq!(d, Duration::from_secs(300));
        let d = e
            .expire_after_create(
                &k,
                &caller(TokenKind::Introspected, Duration::from_secs(3600)),
                now,
            )
            .unwrap();
        assert_eq!(d, Duration::from_secs(60));
        let d = e
            .expire_after_create(&k, &caller(TokenKind::Jwt, Duration::from_secs(30)), now)
            .unwrap();
        assert!(d <= Duration::from_secs(30) && d > Duration::from_secs(28));
        let mut p = (*caller(TokenKind::Jwt, Duration::ZERO)).clone();
        p.expires_at = SystemTime::now() - Duration::from_secs(5);
        assert_eq!(
            e.expire_after_create(&k, &Caller::new(p), now),
            Some(Duration::ZERO)
        );
    }

    #[tokio::test]
    async fn negative_cache_only_for_definitive_refusals() {
        let (a, s) = auth(
            vec![
                Err(InvalidReason::AudienceMismatch.into()),
                Err(InvalidReason::UnknownKey.into()),
                Err(InvalidReason::UnknownKey.into()),
                Err(UnavailableReason::KeysUnavailable.into()),
                Err(UnavailableReason::KeysUnavailable.into()),
                Err(InvalidReason::NotYetValid.into()),
                Err(InvalidReason::NotYetValid.into()),
            ],
            CacheConfig::default(),
        );
        let bad = AccessToken::new("bad-aud");
        for _ in 0..5 {
            assert_eq!(
                a.authenticate(&bad).await.unwrap_err(),
                InvalidReason::AudienceMismatch.into()
            );
        }
        assert_eq!(s.calls.load(Ordering::SeqCst), 1);
        for t in ["unknown-kid", "unavailable", "nbf"] {
            let t = AccessToken::new(t);
            a.authenticate(&t).await.unwrap_err();
            a.authenticate(&t).await.unwrap_err();
        }
        assert_eq!(s.calls.load(Ordering::SeqCst), 7);
        assert_eq!(a.stats().negative_hits, 4);
        for r in [
            InvalidReason::Malformed,
            InvalidReason::BadSignature,
            InvalidReason::Expired,
            InvalidReason::AudienceMismatch,
        ] {
            assert!(is_definitive(r));
        }
    }

    // Keys are digests: a large token costs no more memory than a small one, and is cached.
    #[tokio::test]
    async fn large_tokens_are_cached_by_digest() {
        let (a, s) = auth(
            vec![Ok(caller(TokenKind::Jwt, Duration::from_secs(600)))],
            CacheConfig::default(),
        );
        let t = AccessToken::new("x".repeat(15 * 1024));
        a.authenticate(&t).await.unwrap();
        a.authenticate(&t).await.unwrap();
        assert_eq!(s.calls.load(Ordering::SeqCst), 1);
        assert_eq!(a.entry_count(), 1);
    }

    #[tokio::test]
    async fn end_to_end_no_fetch_or_introspection_on_hit() {
        let key = TestKey::generate(Alg::RS256).with_kid("k1");
        let idp = TestAuthServer::builder()
            .audience(AUD)
            .keys(vec![key.clone()])
            .introspection_client("rs", "pw")
            .start()
            .await;
        idp.set_introspection(
            "opaque-1",
            json!({"active": true, "exp": now() + 300, "aud": AUD}),
        );
        let chain = VerifierChain::start(
            ChainConfig {
                jwt_issuers: vec![JwtIssuerConfig::new(idp.issuer(), AUD)],
                introspection: vec![IntrospectionConfig::new(
                    idp.issuer(),
                    "rs",
                    ClientSecret::new("pw"),
                    AUD,
                )],
                ..Default::default()
            },
            tokio_util::sync::CancellationToken::new(),
        )
        .await
        .unwrap();
        let a = Authenticator::new(Arc::new(chain), CacheConfig::default());
        assert!(a.ready());
        let jwt = AccessToken::new(idp.token().key(&key).sign());
        let opaque = AccessToken::new("opaque-1");
        for _ in 0..3 {
            a.authenticate(&jwt).await.unwrap();
            a.authenticate(&opaque).await.unwrap();
        }
        assert_eq!(idp.jwks_fetches(), 1);
        assert_eq!(idp.introspection_calls(), 1);
        assert_eq!(
            a.stats(),
            CacheStats {
                hits: 4,
                negative_hits: 0,
                misses: 2
            }
        );
        // A flood of one forged token costs one verification.
        let forged = AccessToken::new(
            idp.token()
                .key(&TestKey::generate(Alg::RS256).with_kid("k1"))
                .sign(),
        );
        for _ in 0..100 {
            assert_eq!(
                a.authenticate(&forged).await.unwrap_err(),
                InvalidReason::BadSignature.into()
            );
        }
        assert_eq!(a.stats().misses, 3);
    }
}
