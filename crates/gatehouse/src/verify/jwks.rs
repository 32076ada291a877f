//! The signing keys of one issuer: a JWKS cache with bounded refresh.
//!
//! Architecture invariants:
//! - **Keys are parsed one by one.** A key this library cannot or must not use (`use: enc`,
//!   `kty: oct`, unknown `kty`/`alg`/curve, malformed numbers) is skipped with a log line; it never
//!   fails the whole set (idp-shapes §0.5, §12.9: Keycloak publishes an `RSA-OAEP` key next to
//!   its signing keys).
//! - **Each key carries the algorithms it may verify**: the JWK `alg` when present, else the
//!   algorithms of its key type; always intersected with the configured allow-list. The token
//!   header never chooses an algorithm on its own (RFC 8725 §3.1, spec row E14).
//! - **`DecodingKey`s are built at load time**, never per request; the hot path is one `RwLock`
//!   read and an `Arc` clone, with no `.await` when the key is known.
//! - **Refresh is bounded.** Scheduled refresh follows `Cache-Control: max-age` clamped to
//!   `[min_ttl, max_ttl]`. An unknown `kid` triggers at most one fetch per
//!   `min_refresh_interval`, and concurrent callers share it (single flight: a tokio `Mutex` plus
//!   a generation counter, so waiters reuse the fetch that completed while they queued).
//! - **Stale-if-error.** A failed refresh keeps the last good keys until `max_staleness` after
//!   the last success; after that the issuer is unavailable (fail closed, with `503`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde::Deserialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::verify::fetch::{FetchError, Fetcher};
use crate::verify::{InvalidReason, UnavailableReason, VerifyError};

/// Tuning of a [`JwksCache`]. Defaults are conservative for public IdPs, whose keys rotate in
/// weeks and are published ahead of use.
#[derive(Debug, Clone)]
pub struct JwksConfig {
    /// Refresh period when the JWKS response has no `max-age`. Default: 10 min.
    pub default_ttl: Duration,
    /// Lower clamp for `max-age` (a `max-age=0` endpoint must not be polled in a loop).
    /// Default: 60 s.
    pub min_ttl: Duration,
    /// Upper clamp for `max-age` (a key removed by the IdP must not live on for days).
    /// Default: 24 h.
    pub max_ttl: Duration,
    /// An unknown `kid` triggers a refresh at most this often (also counted from scheduled
    /// refreshes). Default: 30 s.
    pub min_refresh_interval: Duration,
    /// How long the last good keys keep being used while refreshes fail. Past this, tokens of the
    /// issuer are answered "unavailable". Default: 6 h.
    pub max_staleness: Duration,
    /// Delay before the background task retries a failed refresh. Default: 30 s.
    pub retry_interval: Duration,
}

impl Default for JwksConfig {
    fn default() -> Self {
        Self {
            default_ttl: Duration::from_secs(600),
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(24 * 3600),
            min_refresh_interval: Duration::from_secs(30),
            max_staleness: Duration::from_secs(6 * 3600),
            retry_interval: Duration::from_secs(30),
        }
    }
}

/// Why loading a JWKS failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    /// The document could not be fetched or parsed.
    #[error("fetching the JWKS failed: {0}")]
    Fetch(#[from] FetchError),
    /// The document was fetched but holds no key usable for signature verification with the
    /// configured algorithms. Treated as a failed refresh: the previous keys stay.
    #[error("the JWKS holds no usable signing key")]
    NoUsableKeys,
}

/// One verification key with the algorithms it may be used with.
pub struct VerificationKey {
    kid: Option<String>,
    key: DecodingKey,
    algorithms: Vec<Algorithm>,
}

impl VerificationKey {
    /// The key id, when the JWK has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The algorithms this key may verify (never empty).
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }

    /// The precomputed decoding key.
    pub fn decoding_key(&self) -> &DecodingKey {
        &self.key
    }
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .finish()
    }
}

/// A parsed JWKS: the usable keys and when they were fetched.
#[derive(Debug)]
pub struct KeySet {
    keys: Vec<Arc<VerificationKey>>,
    fetched_at: Instant,
}

impl KeySet {
    /// The usable keys.
    pub fn keys(&self) -> &[Arc<VerificationKey>] {
        &self.keys
    }
}

/// Parses a JWKS document key by key, keeping only keys usable for signature verification with
/// an algorithm in `allowed`. Never fails: unusable keys are skipped and logged.
pub fn parse_jwks(doc: &serde_json::Value, allowed: &[Algorithm]) -> Vec<Arc<VerificationKey>> {
    let Some(keys) = doc.get("keys").and_then(|k| k.as_array()) else {
        tracing::warn!("JWKS document has no \"keys\" array");
        return Vec::new();
    };
    keys.iter()
        .enumerate()
        .filter_map(|(i, raw)| match parse_key(raw, allowed) {
            Ok(k) => Some(Arc::new(k)),
            Err(why) => {
                let kid = raw.get("kid").and_then(|v| v.as_str()).unwrap_or("");
                tracing::debug!(index = i, kid, why, "JWKS key skipped");
                None
            }
        })
        .collect()
}

/// The fields checked before handing the key to jsonwebtoken's `Jwk` parser.
#[derive(Deserialize)]
struct JwkPrelude {
    kty: String,
    #[serde(rename = "use")]
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    alg: Option<String>,
}

fn parse_key(
    raw: &serde_json::Value,
    allowed: &[Algorithm],
) -> Result<VerificationKey, &'static str> {
    let prelude: JwkPrelude = serde_json::from_value(raw.clone()).map_err(|_| "not a JWK")?;
    // RFC 7517 §4.2/§4.3: keys meant for encryption (Keycloak's RSA-OAEP key) are not ours.
    if prelude.use_.as_deref().is_some_and(|u| u != "sig") {
        return Err("use is not sig");
    }
    if prelude
        .key_ops
        .as_ref()
        .is_some_and(|ops| !ops.iter().any(|o| o == "verify"))
    {
        return Err("key_ops lacks verify");
    }
    // Symmetric keys from a public JWKS are never used (RFC 8725 §3.2: key confusion); an HMAC
    // secret can only come from configuration.
    if prelude.kty == "oct" {
        return Err("symmetric key");
    }
    let jwk: Jwk = serde_json::from_value(raw.clone()).map_err(|_| "malformed JWK")?;
    let family_algs: &[Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(p) => {
            // RFC 7518 §3.3: RSA keys of 2048 bits or more. Smaller keys would fail every
            // verification anyway; dropping them here makes the log say why.
            let n = b64(&p.n).ok_or("bad RSA modulus")?;
            let n_bits = n.iter().skip_while(|b| **b == 0).count() * 8;
            if n_bits < 2048 || b64(&p.e).is_none_or(|e| e.is_empty()) {
                return Err("RSA key too small or malformed");
            }
            AlgorithmFamily::Rsa.algorithms()
        }
        AlgorithmParameters::EllipticCurve(p) => {
            let (len, alg) = match p.curve {
                EllipticCurve::P256 => (32, &[Algorithm::ES256][..]),
                EllipticCurve::P384 => (48, &[Algorithm::ES384][..]),
                _ => return Err("unsupported curve"),
            };
            let ok = |c: &str| b64(c).is_some_and(|v| v.len() == len);
            if !ok(&p.x) || !ok(&p.y) {
                return Err("malformed EC point");
            }
            alg
        }
        AlgorithmParameters::OctetKeyPair(p) => {
            if p.curve != EllipticCurve::Ed25519 {
                return Err("unsupported OKP curve");
            }
            if b64(&p.x).is_none_or(|x| x.len() != 32) {
                return Err("malformed Ed25519 key");
            }
            &[Algorithm::EdDSA]
        }
        _ => return Err("unsupported kty"),
    };
    let algorithms: Vec<Algorithm> = match prelude.alg {
        Some(_) => {
            // Unknown names parse as `UNKNOWN_ALGORITHM`, encryption ones as `RSA_OAEP` etc.;
            // neither converts to a signature algorithm.
            let alg = match jwk.common.key_algorithm {
                Some(ka) => Algorithm::try_from(ka).map_err(|_| "alg not a signature algorithm")?,
                None => return Err("unknown alg"),
            };
            if !family_algs.contains(&alg) {
                return Err("alg does not match key type");
            }
            vec![alg]
        }
        None => family_algs.to_vec(),
    };
    let algorithms: Vec<Algorithm> = algorithms
        .into_iter()
        .filter(|a| allowed.contains(a))
        .collect();
    if algorithms.is_empty() {
        return Err("no allowed algorithm for this key");
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| "key material not decodable")?;
    Ok(VerificationKey {
        kid: jwk.common.key_id,
        key,
        algorithms,
    })
}

fn b64(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()
}

/// The source of "now" for staleness and rate limits: the system clock, or a manual clock in
/// tests (tokio's paused clock cannot be used with real sockets: it fires request timeouts while
/// the client waits on I/O).
#[derive(Clone, Default)]
pub(crate) struct Clock(Option<Arc<Mutex<Instant>>>);

impl Clock {
    fn now(&self) -> Instant {
        match &self.0 {
            None => Instant::now(),
            Some(m) => *m.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }

    #[cfg(test)]
    pub(crate) fn manual() -> Self {
        Self(Some(Arc::new(Mutex::new(Instant::now()))))
    }

    #[cfg(test)]
    pub(crate) fn advance(&self, d: Duration) {
        if let Some(m) = &self.0 {
            *m.lock().unwrap() += d;
        }
    }
}

/// The outcome of looking a key up in a key set.
enum Lookup {
    Found(Arc<VerificationKey>),
    /// Keys with this `kid` exist, none for this algorithm (key-type confusion attempt).
    WrongAlgorithm,
    /// No `kid` and several keys fit: refuse rather than guess.
    Ambiguous,
    NotFound,
}

fn lookup(set: &KeySet, kid: Option<&str>, alg: Algorithm) -> Lookup {
    match kid {
        Some(kid) => {
            let mut seen = false;
            for k in set.keys.iter().filter(|k| k.kid.as_deref() == Some(kid)) {
                seen = true;
                if k.algorithms.contains(&alg) {
                    return Lookup::Found(k.clone());
                }
            }
            if seen {
                Lookup::WrongAlgorithm
            } else {
                Lookup::NotFound
            }
        }
        None => {
            let mut fitting = set.keys.iter().filter(|k| k.algorithms.contains(&alg));
            match (fitting.next(), fitting.next()) {
                (Some(k), None) => Lookup::Found(k.clone()),
                (Some(_), Some(_)) => Lookup::Ambiguous,
                (None, _) => Lookup::NotFound,
            }
        }
    }
}

struct RefreshState {
    last_attempt: Option<Instant>,
    last_ok: bool,
    next_delay: Duration,
}

struct Inner {
    issuer: Arc<str>,
    uri: Url,
    fetcher: Fetcher,
    config: JwksConfig,
    allowed: Vec<Algorithm>,
    keys: RwLock<Option<Arc<KeySet>>>,
    /// Completed fetch attempts (success or failure); see the module docs on single flight.
    generation: AtomicU64,
    fetches: AtomicU64,
    /// Fetches that failed (unreachable, bad document, no usable key).
    failures: AtomicU64,
    refresh: tokio::sync::Mutex<RefreshState>,
    /// The end of the last fetch and whether it succeeded (a copy of `RefreshState` readable
    /// without awaiting), and whether one is under way: together they tell when an unknown
    /// `kid` is decided without the issuer ([`JwksCache::held`]).
    settled: Mutex<Option<(Instant, bool)>>,
    in_flight: std::sync::atomic::AtomicBool,
    clock: Clock,
    /// Keys given once ([`JwksCache::fixed`]): nothing is ever fetched.
    fixed: bool,
}

/// The key cache of one issuer. Cheap to clone (shared state).
#[derive(Clone)]
pub struct JwksCache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("issuer", &self.inner.issuer)
            .field("uri", &self.inner.uri.as_str())
            .field("ready", &self.ready())
            .finish()
    }
}

impl JwksCache {
    /// A cache for the JWKS at `uri`, keeping keys usable with the `allowed` algorithms. Nothing
    /// is fetched yet: call [`JwksCache::load`] (and [`JwksCache::spawn_refresh`]).
    pub fn new(
        issuer: impl Into<Arc<str>>,
        uri: Url,
        fetcher: Fetcher,
        allowed: &[Algorithm],
        config: JwksConfig,
    ) -> Self {
        Self::with_clock(issuer, uri, fetcher, allowed, config, Clock::default())
    }

    /// A cache holding the usable keys of `doc`, a JWKS document given in full, that never
    /// fetches: a refresh leaves the keys as they are, so an unknown `kid` is refused as
    /// unknown, and the keys never go stale. Not an API for applications (keys must come from
    /// the issuer's `jwks_uri`); it exists so that the fuzz targets
    /// (`crates/gatehouse-fuzz-targets`) can verify tokens with a fixed key set, off the network.
    #[doc(hidden)]
    pub fn fixed(
        issuer: impl Into<Arc<str>>,
        doc: &serde_json::Value,
        allowed: &[Algorithm],
    ) -> Result<Self, FetchError> {
        let uri = Url::parse("about:fixed-jwks").expect("a valid URL");
        let config = JwksConfig {
            max_staleness: Duration::MAX,
            ..JwksConfig::default()
        };
        let fetcher = Fetcher::new(crate::verify::fetch::FetchConfig::default())?;
        let cache = Self::build(
            issuer,
            uri,
            fetcher,
            allowed,
            config,
            Clock::default(),
            true,
        );
        let keys = parse_jwks(doc, &cache.inner.allowed);
        *cache.inner.keys.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(KeySet {
            keys,
            fetched_at: cache.inner.clock.now(),
        }));
        Ok(cache)
    }

    pub(crate) fn with_clock(
        issuer: impl Into<Arc<str>>,
        uri: Url,
        fetcher: Fetcher,
        allowed: &[Algorithm],
        config: JwksConfig,
        clock: Clock,
    ) -> Self {
        Self::build(issuer, uri, fetcher, allowed, config, clock, false)
    }

    fn build(
        issuer: impl Into<Arc<str>>,
        uri: Url,
        fetcher: Fetcher,
        allowed: &[Algorithm],
        config: JwksConfig,
        clock: Clock,
        fixed: bool,
    ) -> Self {
        // HMAC algorithms never apply to JWKS keys, whatever the allow-list says.
        let allowed = allowed
            .iter()
            .copied()
            .filter(|a| a.family() != AlgorithmFamily::Hmac)
            .collect();
        let next_delay = config.default_ttl;
        Self {
            inner: Arc::new(Inner {
                issuer: issuer.into(),
                uri,
                fetcher,
                config,
                allowed,
                keys: RwLock::new(None),
                generation: AtomicU64::new(0),
                fetches: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                refresh: tokio::sync::Mutex::new(RefreshState {
                    last_attempt: None,
                    // A fixed set is as good as a successful refresh: an unknown `kid` is invalid,
                    // not "keys unavailable".
                    last_ok: fixed,
                    next_delay,
                }),
                settled: Mutex::new(None),
                in_flight: std::sync::atomic::AtomicBool::new(false),
                clock,
                fixed,
            }),
        }
    }

    /// The JWKS URL.
    pub fn uri(&self) -> &Url {
        &self.inner.uri
    }

    /// Number of JWKS fetches attempted so far (for tests and metrics).
    pub fn fetch_count(&self) -> u64 {
        self.inner.fetches.load(Ordering::Relaxed)
    }

    /// Number of JWKS fetches that failed so far (for metrics).
    pub fn failure_count(&self) -> u64 {
        self.inner.failures.load(Ordering::Relaxed)
    }

    /// True when keys are loaded and younger than `max_staleness`.
    pub fn ready(&self) -> bool {
        self.inner.fresh_keys().is_some()
    }

    /// The current key set, if loaded and not past `max_staleness`.
    pub fn current(&self) -> Option<Arc<KeySet>> {
        self.inner.fresh_keys()
    }

    /// Fetches the JWKS now (ignoring the refresh rate limit), e.g. at start-up.
    pub async fn load(&self) -> Result<(), JwksError> {
        let mut st = self.inner.refresh.lock().await;
        self.inner.fetch_locked(&mut st).await
    }

    /// The key for a token's `kid` and `alg` among the keys held now, never fetching: `None`
    /// when deciding would take a refresh (unknown `kid`, no fresh keys). The per-address limit
    /// of the edge uses it to tell cheap decisions from ones that reach the issuer.
    pub fn held(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Option<Result<Arc<VerificationKey>, VerifyError>> {
        let set = self.inner.fresh_keys()?;
        match lookup(&set, kid, alg) {
            Lookup::Found(k) => Some(Ok(k)),
            Lookup::WrongAlgorithm => Some(Err(InvalidReason::AlgorithmNotAllowed.into())),
            Lookup::Ambiguous => Some(Err(InvalidReason::UnknownKey.into())),
            // No refresh may look for it yet: `resolve` would answer from these very keys.
            Lookup::NotFound if self.inner.refresh_barred() => {
                Some(Err(InvalidReason::UnknownKey.into()))
            }
            Lookup::NotFound => None,
        }
    }

    /// Finds the key for a token's `kid` and `alg`. Known keys are answered without awaiting
    /// anything; an unknown `kid` (or missing keys) triggers a rate-limited, single-flight
    /// refresh.
    pub async fn resolve(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<VerificationKey>, VerifyError> {
        let inner = &self.inner;
        // Read the generation *before* the keys: if a fetch completes after this point, the
        // refresh below sees a newer generation and reuses it instead of fetching again.
        let seen = inner.generation.load(Ordering::Acquire);
        if let Some(decided) = self.held(kid, alg) {
            return decided;
        }
        let last_ok = inner.refresh_if_due(seen).await;
        let Some(set) = inner.fresh_keys() else {
            return Err(UnavailableReason::KeysUnavailable.into());
        };
        match lookup(&set, kid, alg) {
            Lookup::Found(k) => Ok(k),
            Lookup::WrongAlgorithm => Err(InvalidReason::AlgorithmNotAllowed.into()),
            Lookup::Ambiguous => Err(InvalidReason::UnknownKey.into()),
            // The latest refresh failed: we cannot tell a rotated-in key from a forged kid.
            Lookup::NotFound if !last_ok => Err(UnavailableReason::KeysUnavailable.into()),
            Lookup::NotFound => Err(InvalidReason::UnknownKey.into()),
        }
    }

    /// Spawns the background refresh task. It stops when `cancel` fires or when every clone of
    /// this cache has been dropped.
    pub fn spawn_refresh(&self, cancel: CancellationToken) -> JoinHandle<()> {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                let (delay, seen) = {
                    let Some(inner) = weak.upgrade() else { return };
                    let st = inner.refresh.lock().await;
                    (st.next_delay, inner.generation.load(Ordering::Acquire))
                };
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                let Some(inner) = weak.upgrade() else { return };
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = inner.refresh_scheduled(seen) => {}
                }
            }
        })
    }
}

impl Inner {
    /// An unknown `kid` is decided now, without the issuer: the last fetch succeeded less than
    /// `min_refresh_interval` ago and none is under way, so `refresh_if_due` would not fetch
    /// and the answer is "unknown key" (a fixed set never fetches). Such a refusal costs the
    /// issuer nothing, so the per-address limit does not meter it: during a rotation whose
    /// new key is used before the cooldown allows a refresh, legitimate clients' refusals
    /// must not bar their address from introspection.
    fn refresh_barred(&self) -> bool {
        if self.fixed {
            return true;
        }
        if self.in_flight.load(Ordering::Acquire) {
            return false;
        }
        let settled = *self.settled.lock().unwrap_or_else(|p| p.into_inner());
        settled.is_some_and(|(at, ok)| {
            ok && self.clock.now().saturating_duration_since(at) < self.config.min_refresh_interval
        })
    }

    fn fresh_keys(&self) -> Option<Arc<KeySet>> {
        let guard = self.keys.read().unwrap_or_else(|p| p.into_inner());
        let set = guard.as_ref()?;
        let age = self.clock.now().saturating_duration_since(set.fetched_at);
        (age <= self.config.max_staleness).then(|| set.clone())
    }

    /// Refreshes unless another caller already did since generation `seen`, or the last attempt
    /// is younger than `min_refresh_interval`. Returns whether the latest attempt succeeded.
    async fn refresh_if_due(&self, seen: u64) -> bool {
        let mut st = self.refresh.lock().await;
        if self.generation.load(Ordering::Acquire) != seen {
            return st.last_ok;
        }
        if let Some(t) = st.last_attempt
            && self.clock.now().saturating_duration_since(t) < self.config.min_refresh_interval
        {
            return st.last_ok;
        }
        let _ = self.fetch_locked(&mut st).await;
        st.last_ok
    }

    /// The scheduled refresh: skipped when any other fetch completed while the task slept
    /// (that fetch already set the next delay).
    async fn refresh_scheduled(&self, seen: u64) {
        let mut st = self.refresh.lock().await;
        if self.generation.load(Ordering::Acquire) == seen {
            let _ = self.fetch_locked(&mut st).await;
        }
    }

    /// One fetch; the caller holds the refresh lock.
    async fn fetch_locked(&self, st: &mut RefreshState) -> Result<(), JwksError> {
        if self.fixed {
            return Ok(());
        }
        self.fetches.fetch_add(1, Ordering::Relaxed);
        self.in_flight.store(true, Ordering::Release);
        let result = match self.fetcher.get_json::<serde_json::Value>(&self.uri).await {
            Ok(doc) => {
                let keys = parse_jwks(&doc.value, &self.allowed);
                if keys.is_empty() {
                    Err(JwksError::NoUsableKeys)
                } else {
                    let c = &self.config;
                    let ttl = doc
                        .max_age
                        .unwrap_or(c.default_ttl)
                        .clamp(c.min_ttl, c.max_ttl.max(c.min_ttl));
                    tracing::debug!(issuer = %self.issuer, keys = keys.len(), ttl_s = ttl.as_secs(), "JWKS loaded");
                    let set = Arc::new(KeySet {
                        keys,
                        fetched_at: self.clock.now(),
                    });
                    *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Some(set);
                    st.next_delay = ttl;
                    Ok(())
                }
            }
            Err(e) => Err(JwksError::Fetch(e)),
        };
        if let Err(e) = &result {
            self.failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(issuer = %self.issuer, uri = %self.uri, error = %e, "JWKS refresh failed; keeping previous keys");
            st.next_delay = self.config.retry_interval;
        }
        st.last_ok = result.is_ok();
        let now = self.clock.now();
        st.last_attempt = Some(now);
        *self.settled.lock().unwrap_or_else(|p| p.into_inner()) = Some((now, st.last_ok));
        self.in_flight.store(false, Ordering::Release);
        self.generation.fetch_add(1, Ordering::Release);
        result
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use gatehouse_testkit::{Alg, TestAuthServer, TestKey};

    use super::*;
    use crate::verify::fetch::FetchConfig;

    const ALL: &[Algorithm] = crate::verify::jwt::DEFAULT_ALGORITHMS;

    /// A key of `alg` with this `kid`.
    fn key(alg: Alg, kid: &str) -> TestKey {
        TestKey::generate(alg).with_kid(kid)
    }

    /// An issuer publishing exactly `keys`, without `alg` (the algorithms follow the key type).
    async fn server(keys: &[&TestKey]) -> TestAuthServer {
        let ts = TestAuthServer::builder()
            .keys(keys.iter().map(|&k| k.clone()).collect())
            .start()
            .await;
        ts.set_jwks_omit_alg(true);
        ts
    }

    fn jwks_url(ts: &TestAuthServer) -> Url {
        ts.jwks_uri().parse().unwrap()
    }

    fn kids(keys: &[Arc<VerificationKey>]) -> Vec<&str> {
        keys.iter().map(|k| k.kid().unwrap_or("-")).collect()
    }

    #[test]
    fn parses_key_by_key_skipping_unusable_ones() {
        // idp-shapes §12.9: one bad key must never fail the set.
        let rsa = key(Alg::RS256, "rsa");
        let ec = key(Alg::ES256, "ec");
        let ed = key(Alg::EdDSA, "ed");
        let mut enc = rsa.public_jwk();
        enc["alg"] = json!("RSA-OAEP");
        enc["use"] = json!("enc");
        enc["kid"] = json!("enc");
        let doc = json!({"keys": [
            rsa.public_jwk_without_alg(),
            enc,
            {"kty": "AKP", "kid": "pq", "alg": "ML-DSA-44", "pub": "AAAA"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "bad-n", "n": "!!!", "e": "AQAB"},
            {"kty": "RSA", "kid": "small", "n": "AQAB", "e": "AQAB"},
            {"kty": "EC", "kid": "p521", "crv": "P-521", "x": "AA", "y": "AA"},
            {"kty": "OKP", "kid": "x25519", "crv": "X25519", "x": "AA"},
            {"kty": "RSA", "kid": "ops", "key_ops": ["encrypt"], "n": rsa.public_jwk()["n"], "e": "AQAB"},
            {"kid": "no-kty"},
            "not an object",
            ec.public_jwk(),
            ed.public_jwk_without_alg(),
        ]});
        let keys = parse_jwks(&doc, ALL);
        assert_eq!(kids(&keys), ["rsa", "ec", "ed"]);
        assert_eq!(keys[0].algorithms(), AlgorithmFamily::Rsa.algorithms());
        assert_eq!(keys[1].algorithms(), [Algorithm::ES256]);
        assert_eq!(keys[2].algorithms(), [Algorithm::EdDSA]);
    }

    #[test]
    fn jwk_alg_pins_the_algorithm_and_must_match_key_type() {
        let rsa = key(Alg::RS256, "rsa");
        let rsa_ps256 = rsa.clone().with_alg(Alg::PS256).public_jwk();
        let ec = key(Alg::ES256, "ec");
        let mut ec_claiming_rs = ec.public_jwk();
        ec_claiming_rs["alg"] = json!("RS256");
        ec_claiming_rs["kid"] = json!("liar");
        let doc = json!({"keys": [rsa_ps256, ec_claiming_rs]});
        let keys = parse_jwks(&doc, ALL);
        assert_eq!(kids(&keys), ["rsa"]);
        assert_eq!(keys[0].algorithms(), [Algorithm::PS256]);
        // Intersected with the allow-list.
        let keys = parse_jwks(
            &json!({"keys": [rsa.public_jwk_without_alg()]}),
            &[Algorithm::RS256, Algorithm::ES256],
        );
        assert_eq!(keys[0].algorithms(), [Algorithm::RS256]);
        let keys = parse_jwks(&json!({"keys": [rsa_ps256]}), &[Algorithm::RS256]);
        assert!(keys.is_empty());
        assert!(parse_jwks(&json!({"nokeys": []}), ALL).is_empty());
    }

    fn cache(ts: &TestAuthServer, clock: Clock, config: JwksConfig) -> JwksCache {
        JwksCache::with_clock(
            ts.issuer(),
            jwks_url(ts),
            Fetcher::new(FetchConfig::default()).unwrap(),
            ALL,
            config,
            clock,
        )
    }

    #[tokio::test]
    async fn hmac_is_never_allowed_for_jwks_keys() {
        let ts = server(&[&key(Alg::RS256, "k1")]).await;
        let c = JwksCache::new(
            ts.issuer(),
            jwks_url(&ts),
            Fetcher::new(FetchConfig::default()).unwrap(),
            &[Algorithm::HS256, Algorithm::RS256],
            JwksConfig::default(),
        );
        c.load().await.unwrap();
        assert_eq!(
            c.resolve(Some("k1"), Algorithm::HS256).await.unwrap_err(),
            InvalidReason::AlgorithmNotAllowed.into()
        );
    }

    #[tokio::test]
    async fn not_ready_until_first_success_then_known_kid_needs_no_fetch() {
        let ts = server(&[&key(Alg::RS256, "k1")]).await;
        ts.set_jwks_down(true);
        let c = cache(&ts, Clock::default(), JwksConfig::default());
        assert!(!c.ready());
        assert!(matches!(
            c.load().await,
            Err(JwksError::Fetch(FetchError::Status(503)))
        ));
        assert!(!c.ready());
        ts.set_jwks_down(false);
        c.load().await.unwrap();
        assert!(c.ready());
        assert_eq!(c.fetch_count(), 2);
        for _ in 0..10 {
            c.resolve(Some("k1"), Algorithm::RS256).await.unwrap();
        }
        assert_eq!(c.fetch_count(), 2, "known kid must not fetch");
        assert_eq!(ts.jwks_fetches(), 2);
    }

    #[tokio::test]
    async fn unknown_kid_refreshes_once_then_rate_limited() {
        let clock = Clock::manual();
        let k1 = key(Alg::RS256, "k1");
        let ts = server(&[&k1]).await;
        let c = cache(&ts, clock.clone(), JwksConfig::default());
        c.load().await.unwrap();
        clock.advance(Duration::from_secs(31));
        // Rotation: the new key is found after exactly one refresh.
        ts.set_keys(vec![k1, key(Alg::RS256, "k2")]);
        c.resolve(Some("k2"), Algorithm::RS256).await.unwrap();
        assert_eq!(c.fetch_count(), 2);
        // A forged kid right after: the refresh is rate-limited, answer is "unknown key".
        assert_eq!(
            c.resolve(Some("nope"), Algorithm::RS256).await.unwrap_err(),
            InvalidReason::UnknownKey.into()
        );
        assert_eq!(c.fetch_count(), 2);
        clock.advance(Duration::from_secs(31));
        assert_eq!(
            c.resolve(Some("nope"), Algorithm::RS256).await.unwrap_err(),
            InvalidReason::UnknownKey.into()
        );
        assert_eq!(c.fetch_count(), 3);
    }

    #[tokio::test]
    async fn an_unknown_kid_is_decided_without_the_issuer_only_while_no_refresh_may_run() {
        let clock = Clock::manual();
        let k1 = key(Alg::RS256, "k1");
        let ts = server(&[&k1]).await;
        let c = cache(&ts, clock.clone(), JwksConfig::default());
        // Nothing fetched yet: deciding needs the issuer.
        assert!(c.held(Some("nope"), Algorithm::RS256).is_none());
        c.load().await.unwrap();
        // Within the cooldown after a good fetch: decided from the keys held, no fetch.
        assert_eq!(
            c.held(Some("nope"), Algorithm::RS256).unwrap().unwrap_err(),
            InvalidReason::UnknownKey.into()
        );
        // Past it, a refresh may find the key: not decided here.
        clock.advance(Duration::from_secs(31));
        assert!(c.held(Some("nope"), Algorithm::RS256).is_none());
        // While that refresh hangs, nothing is decided early either (waiters share its result).
        ts.set_jwks_hang(true);
        let pending = {
            let c = c.clone();
            tokio::spawn(async move { c.resolve(Some("k2"), Algorithm::RS256).await })
        };
        ts.wait_for_jwks_fetches(2).await;
        assert!(c.held(Some("nope"), Algorithm::RS256).is_none());
        ts.set_keys(vec![k1.clone(), key(Alg::RS256, "k2")]);
        ts.set_jwks_hang(false);
        assert_eq!(pending.await.unwrap().unwrap().kid(), Some("k2"));
        assert_eq!(
            c.held(Some("nope"), Algorithm::RS256).unwrap().unwrap_err(),
            InvalidReason::UnknownKey.into()
        );
        // After a failed fetch the same kid is "keys unavailable", which needs the issuer.
        clock.advance(Duration::from_secs(31));
        ts.set_jwks_down(true);
        assert_eq!(
            c.resolve(Some("nope"), Algorithm::RS256).await.unwrap_err(),
            UnavailableReason::KeysUnavailable.into()
        );
        assert!(c.held(Some("nope"), Algorithm::RS256).is_none());
    }

    #[tokio::test]
    async fn a_fixed_set_is_held_and_never_fetched() {
        // The fuzz targets' key set: usable keys kept, an unknown kid is invalid, nothing fetched.
        let k1 = key(Alg::RS256, "k1");
        let doc = json!({"keys": [k1.public_jwk(), {"kty": "oct", "k": "AAAA"}]});
        let c = JwksCache::fixed("https://issuer.example", &doc, ALL).unwrap();
        assert_eq!(c.current().unwrap().keys().len(), 1);
        assert_eq!(
            c.resolve(Some("k1"), Algorithm::RS256).await.unwrap().kid(),
            Some("k1")
        );
        assert_eq!(
            c.resolve(Some("k2"), Algorithm::RS256).await.unwrap_err(),
            InvalidReason::UnknownKey.into()
        );
        assert_eq!(c.load().await, Ok(()));
        assert_eq!(c.fetch_count(), 0);
        assert!(c.ready());
    }

    #[tokio::test]
    async fn odd_kids_just_do_not_match() {
        // E14: kid is only ever compared, never used as a path, query or file name.
        let ts = server(&[&key(Alg::RS256, "k1")]).await;
        let c = cache(&ts, Clock::manual(), JwksConfig::default());
        c.load().await.unwrap();
        for kid in [
            "../../etc/passwd",
            "k1\"; DROP TABLE keys; --",
            "k1\0",
            "",
            "K1",
            "k1 ",
        ] {
            assert_eq!(
                c.resolve(Some(kid), Algorithm::RS256).await.unwrap_err(),
                InvalidReason::UnknownKey.into(),
                "{kid:?}"
            );
        }
        assert_eq!(c.fetch_count(), 1, "rate limit holds for all of them");
    }

    #[tokio::test]
    async fn key_type_must_match_the_algorithm() {
        let ts = server(&[&key(Alg::RS256, "rsa"), &key(Alg::ES256, "ec")]).await;
        let c = cache(&ts, Clock::manual(), JwksConfig::default());
        c.load().await.unwrap();
        assert_eq!(
            c.resolve(Some("ec"), Algorithm::RS256).await.unwrap_err(),
            InvalidReason::AlgorithmNotAllowed.into()
        );
        assert_eq!(
            c.resolve(Some("rsa"), Algorithm::ES256).await.unwrap_err(),
            InvalidReason::AlgorithmNotAllowed.into()
        );
        // No kid: unambiguous by algorithm.
        assert_eq!(
            c.resolve(None, Algorithm::ES256).await.unwrap().kid(),
            Some("ec")
        );
        ts.set_keys(vec![key(Alg::RS256, "a"), key(Alg::RS256, "b")]);
        let c2 = cache(&ts, Clock::manual(), JwksConfig::default());
        c2.load().await.unwrap();
        assert_eq!(
            c2.resolve(None, Algorithm::RS256).await.unwrap_err(),
            InvalidReason::UnknownKey.into()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn single_flight_for_concurrent_unknown_kids() {
        // peers.md gap 6: 1,000 concurrent verifications with an unknown kid → one fetch.
        let clock = Clock::manual();
        let k1 = key(Alg::RS256, "k1");
        let ts = server(&[&k1]).await;
        let c = cache(&ts, clock.clone(), JwksConfig::default());
        c.load().await.unwrap();
        clock.advance(Duration::from_secs(60));
        ts.set_keys(vec![k1, key(Alg::RS256, "k2")]);
        let gate = Arc::new(tokio::sync::Barrier::new(1000));
        let tasks: Vec<_> = (0..1000)
            .map(|i| {
                let c = c.clone();
                let gate = gate.clone();
                tokio::spawn(async move {
                    gate.wait().await;
                    let kid = if i % 2 == 0 { "k2" } else { "forged" };
                    (kid, c.resolve(Some(kid), Algorithm::RS256).await)
                })
            })
            .collect();
        for t in tasks {
            let (kid, r) = t.await.unwrap();
            match kid {
                "k2" => assert!(r.is_ok()),
                _ => assert_eq!(r.unwrap_err(), InvalidReason::UnknownKey.into()),
            }
        }
        assert_eq!(c.fetch_count(), 2, "initial load + exactly one refresh");
        assert_eq!(ts.jwks_fetches(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn single_flight_when_jwks_is_down() {
        let clock = Clock::manual();
        let ts = server(&[&key(Alg::RS256, "k1")]).await;
        let c = cache(&ts, clock.clone(), JwksConfig::default());
        c.load().await.unwrap();
        clock.advance(Duration::from_secs(60));
        ts.set_jwks_down(true);
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let c = c.clone();
                tokio::spawn(async move { c.resolve(Some("k9"), Algorithm::RS256).await })
            })
            .collect();
        for t in tasks {
            assert_eq!(
                t.await.unwrap().unwrap_err(),
                UnavailableReason::KeysUnavailable.into()
            );
        }
        assert_eq!(c.fetch_count(), 2);
    }

    #[tokio::test]
    async fn stale_if_error_until_max_staleness() {
        let clock = Clock::manual();
        let ts = server(&[&key(Alg::RS256, "k1")]).await;
        let config = JwksConfig {
            max_staleness: Duration::from_secs(3600),
            ..Default::default()
        };
        let c = cache(&ts, clock.clone(), config);
        c.load().await.unwrap();
        ts.set_jwks_down(true);
        clock.advance(Duration::from_secs(1800));
        // Down after start: the known key still works (no fetch needed)…
        c.resolve(Some("k1"), Algorithm::RS256).await.unwrap();
        // …an unknown kid cannot be decided.
        assert_eq!(
            c.resolve(Some("k2"), Algorithm::RS256).await.unwrap_err(),
            UnavailableReason::KeysUnavailable.into()
        );
        assert!(c.load().await.is_err());
        c.resolve(Some("k1"), Algorithm::RS256).await.unwrap();
        assert!(c.ready());
        // Past max_staleness: even the known key is refused, and readiness drops.
        clock.advance(Duration::from_secs(1801));
        assert!(!c.ready());
        assert_eq!(
            c.resolve(Some("k1"), Algorithm::RS256).await.unwrap_err(),
            UnavailableReason::KeysUnavailable.into()
        );
        // Recovery.
        ts.set_jwks_down(false);
        clock.advance(Duration::from_secs(31));
        c.resolve(Some("k1"), Algorithm::RS256).await.unwrap();
        assert!(c.ready());
    }

    #[tokio::test]
    async fn empty_or_unusable_set_keeps_previous_keys() {
        let ts = server(&[&key(Alg::RS256, "k1")]).await;
        let c = cache(&ts, Clock::manual(), JwksConfig::default());
        c.load().await.unwrap();
        ts.set_jwks_raw(Some(r#"{"keys": [{"kty": "oct", "k": "AAAA"}]}"#));
        assert_eq!(c.load().await, Err(JwksError::NoUsableKeys));
        c.resolve(Some("k1"), Algorithm::RS256).await.unwrap();
    }

    #[tokio::test]
    async fn background_refresh_follows_max_age_and_stops_on_cancel_or_drop() {
        let ts = server(&[&key(Alg::RS256, "k1")]).await;
        ts.set_jwks_cache_control(Some("max-age=0"));
        let config = JwksConfig {
            min_ttl: Duration::from_millis(20),
            max_ttl: Duration::from_millis(20),
            ..Default::default()
        };
        let c = cache(&ts, Clock::default(), config);
        c.load().await.unwrap();
        let mut hits = ts.jwks_fetches();
        let cancel = CancellationToken::new();
        let task = c.spawn_refresh(cancel.clone());
        // Two scheduled refreshes happen without any request traffic.
        for _ in 0..2 {
            hits += 1;
            tokio::time::timeout(Duration::from_secs(10), ts.wait_for_jwks_fetches(hits))
                .await
                .unwrap();
        }
        // A rotated key is picked up by the schedule alone.
        ts.set_keys(vec![key(Alg::RS256, "k2")]);
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                hits += 1;
                ts.wait_for_jwks_fetches(hits).await;
                if c.current()
                    .is_some_and(|s| s.keys().iter().any(|k| k.kid() == Some("k2")))
                {
                    break;
                }
            }
        })
        .await
        .unwrap();
        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .unwrap()
            .unwrap();

        // Dropping every clone also ends the task.
        let task = c.spawn_refresh(CancellationToken::new());
        drop(c);
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .unwrap()
            .unwrap();
    }

    #[test]
    fn ttl_clamping_defaults() {
        let d = JwksConfig::default();
        assert!(d.min_ttl <= d.default_ttl && d.default_ttl <= d.max_ttl);
        assert!(d.min_refresh_interval <= d.min_ttl);
    }
}
