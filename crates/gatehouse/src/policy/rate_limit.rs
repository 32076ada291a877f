//! Rate limits: per client (client id, else subject), per tenant, and a separate limit per
//! client address on the verification work that refused tokens cause.
//!
//! HTTP-agnostic like the rest of [`crate::policy`]: a refusal is a [`RateLimited`] carrying the
//! time after which the request may succeed; the HTTP edge renders it as `429` + `Retry-After`
//! (RFC 6585 §4) through the one exhaustive match in `http::challenge`.
//!
//! Where the edge applies it (see `http::layer`):
//! 1. the per-address limit guards the **authorization server**, not the endpoint. Many clients
//!    share one address (an office behind NAT, a proxy), so what one of them sends must not lock
//!    the others out. It therefore never sees:
//!    - requests without credentials: every MCP client's first contact is an unauthenticated
//!      request that discovers the authorization server (MCP AUTH26 §Authorization Flow), and
//!      its `401` costs nothing;
//!    - malformed credentials (`400`), decided from the header alone;
//!    - tokens answered from the verified-token cache or its negative cache;
//!    - tokens decided with the keys already held (a JWT whose `kid` is known: a local signature
//!      check, no amplification), valid or not — including a `kid` unknown within the refresh
//!      cooldown after a good fetch, which no refresh may look for yet.
//!
//!    What remains are the verifications that reach the issuer: introspection, and a JWKS
//!    refresh for an unknown `kid`. Before one starts, [`RateLimiter::check_address`]; when it
//!    ends in a refused token, [`RateLimiter::record_auth_failure`]. An address over the limit
//!    gets `429` for those tokens only, without the call being made; a valid JWT from the same
//!    address is still verified and admitted. The address is the client's as forwarded by
//!    trusted proxies (`http::guard`);
//! 2. after authentication, [`RateLimiter::check_caller`]: the per-client and per-tenant quotas.
//!
//! [`GovernorRateLimiter`] keeps the state in memory (GCRA, `governor`) with a bounded number of
//! keys: one process, the default. The trait is the seam for a shared backend: with several
//! replicas, [`crate::policy::redis_rate_limit`] keeps the same limits, under the same keys, in
//! Redis. Its calls are round trips, so the trait's answers are futures ([`RateCheck`]); the
//! in-memory limiter's are ready at once and cost no allocation.

use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use std::future::Future;
use std::pin::Pin;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::caller::Caller;

/// Which limit refused a request (for logs and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKind {
    /// The per-client quota (client id, else subject).
    Client,
    /// The per-tenant quota.
    Tenant,
    /// Too many tokens from the client address refused by the authorization server (their
    /// verification is not started).
    FailedAuthAddress,
}

impl LimitKind {
    /// Stable label: `client`, `tenant`, `failed_auth_address`.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::Client => "client",
            LimitKind::Tenant => "tenant",
            LimitKind::FailedAuthAddress => "failed_auth_address",
        }
    }
}

/// A request refused by a rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimited {
    /// The limit that refused it.
    pub limit: LimitKind,
    /// When the same request may succeed.
    pub retry_after: Duration,
}

/// Why a rate-limit check did not admit a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitError {
    /// A limit refused the request (`429`).
    Limited(RateLimited),
    /// The shared backend could not be asked and the limiter is configured to fail closed
    /// (`503`): a shared limit that cannot be checked is not silently skipped when the operator
    /// said so. Failing open (the default) answers `Ok` instead.
    Unavailable,
}

impl From<RateLimited> for RateLimitError {
    fn from(r: RateLimited) -> Self {
        RateLimitError::Limited(r)
    }
}

/// The answer of a [`RateLimiter`] call: ready at once (the in-memory limiter; no allocation on
/// the request path) or after a round trip to a shared backend (boxed: the allocation is nothing
/// beside the round trip). A concrete type rather than `impl Future` keeps the trait usable as
/// `dyn RateLimiter`.
#[must_use = "a rate-limit check does nothing unless awaited"]
pub struct RateCheck<'a, T> {
    inner: CheckInner<'a, T>,
}

enum CheckInner<'a, T> {
    Ready(Option<T>),
    Pending(Pin<Box<dyn Future<Output = T> + Send + 'a>>),
}

impl<'a, T> RateCheck<'a, T> {
    /// An answer known without waiting.
    pub fn ready(value: T) -> Self {
        Self {
            inner: CheckInner::Ready(Some(value)),
        }
    }

    /// An answer that needs a round trip.
    pub fn pending(future: impl Future<Output = T> + Send + 'a) -> Self {
        Self {
            inner: CheckInner::Pending(Box::pin(future)),
        }
    }
}

impl<T: Unpin> Future for RateCheck<'_, T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match &mut self.get_mut().inner {
            // Polled again after completion is a caller bug; futures may panic then.
            CheckInner::Ready(value) => {
                Poll::Ready(value.take().expect("RateCheck polled after completion"))
            }
            CheckInner::Pending(future) => future.as_mut().poll(cx),
        }
    }
}

impl<T> std::fmt::Debug for RateCheck<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.inner {
            CheckInner::Ready(_) => "RateCheck::Ready",
            CheckInner::Pending(_) => "RateCheck::Pending",
        })
    }
}

/// A rate-limit backend. Calls are on the request path: they must be cheap and bounded in time
/// (a shared backend puts a timeout on each round trip).
pub trait RateLimiter: Send + Sync + 'static {
    /// Before a verification that would reach the authorization server: is `peer` barred for
    /// having had too many such tokens refused?
    fn check_address(&self, peer: IpAddr) -> RateCheck<'_, Result<(), RateLimitError>>;

    /// A token from `peer` was refused by a verification that reached the authorization server.
    fn record_auth_failure(&self, peer: IpAddr) -> RateCheck<'_, ()>;

    /// After authentication: may `caller` make this request?
    fn check_caller<'a>(&'a self, caller: &'a Caller) -> RateCheck<'a, Result<(), RateLimitError>>;

    /// Refusals so far, by limit (for metrics). Default: none counted.
    fn stats(&self) -> RateLimitStats {
        RateLimitStats::default()
    }
}

/// A quota: `burst` requests at once, refilled at `per_minute` requests per minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateQuota {
    /// Sustained rate, requests per minute (at least 1).
    pub per_minute: u32,
    /// Requests allowed at once (at least 1).
    pub burst: u32,
}

impl RateQuota {
    fn to_governor(self) -> Option<Quota> {
        let per_minute = NonZeroU32::new(self.per_minute)?;
        let burst = NonZeroU32::new(self.burst)?;
        // One cell every 60 s / per_minute; nanosecond precision keeps high rates exact.
        let period = Duration::from_nanos(60_000_000_000 / u64::from(per_minute.get()));
        Some(Quota::with_period(period.max(Duration::from_nanos(1)))?.allow_burst(burst))
    }
}

/// Configuration of [`GovernorRateLimiter`]. `None` disables a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Per client id (else subject) of the verified token, per issuer.
    pub per_client: Option<RateQuota>,
    /// Per tenant of the verified token.
    pub per_tenant: Option<RateQuota>,
    /// Tokens refused by verifications that reached the authorization server, per client
    /// address (IPv6: per /64, which one host usually owns). See the module docs for what is
    /// never counted or refused.
    pub failed_auth_per_address: Option<RateQuota>,
    /// Most keys tracked per limit. When full, idle keys are dropped; if every key is busy, new
    /// keys share one overflow bucket (memory stays bounded and nobody escapes the limit).
    pub max_keys: usize,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_client: None,
            per_tenant: None,
            failed_auth_per_address: None,
            max_keys: 100_000,
        }
    }
}

/// A quota that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateLimitConfigError {
    /// `per_minute` or `burst` is zero.
    #[error("{0}: per_minute and burst must be at least 1")]
    ZeroQuota(&'static str),
    /// `max_keys` is zero.
    #[error("max_keys must be at least 1")]
    ZeroKeys,
}

/// Refusal counters of a [`RateLimiter`], for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimitStats {
    /// Requests refused by the per-client quota.
    pub client: u64,
    /// Requests refused by the per-tenant quota.
    pub tenant: u64,
    /// Verifications not started because their address had too many tokens refused.
    pub failed_auth_address: u64,
    /// Checks that could not reach a shared backend and let the request through (failing
    /// open). Always zero in memory.
    pub unavailable_allowed: u64,
    /// Checks that could not reach a shared backend and refused the request (failing closed).
    pub unavailable_refused: u64,
    /// Failed-authentication records a shared backend could not store.
    pub unavailable_unrecorded: u64,
}

/// Sums counters (several protected servers in one process report one total).
impl std::ops::AddAssign for RateLimitStats {
    fn add_assign(&mut self, o: Self) {
        self.client += o.client;
        self.tenant += o.tenant;
        self.failed_auth_address += o.failed_auth_address;
        self.unavailable_allowed += o.unavailable_allowed;
        self.unavailable_refused += o.unavailable_refused;
        self.unavailable_unrecorded += o.unavailable_unrecorded;
    }
}

/// Keys are 64-bit keyed hashes: checking a limit allocates nothing. A collision (two clients
/// sharing a bucket) needs two ids whose SipHash under a per-process random key collide.
type Keyed<K> = DefaultKeyedRateLimiter<K>;

struct Limit<K: Hash + Eq + Clone> {
    limiter: Keyed<K>,
    max_keys: usize,
    overflow: K,
    /// Last time idle keys were dropped (nanoseconds since `epoch`), so that a full table costs
    /// one O(n) sweep per second, not one per request.
    last_sweep: AtomicU64,
    epoch: Instant,
}

impl<K: Hash + Eq + Clone> Limit<K> {
    fn new(quota: Quota, max_keys: usize, overflow: K) -> Self {
        Self {
            limiter: Keyed::dashmap(quota),
            max_keys,
            overflow,
            last_sweep: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Takes one cell for `key`; `Err(wait)` when the key is over its quota.
    fn take(&self, key: K) -> Result<(), Duration> {
        let key = if self.limiter.len() >= self.max_keys {
            self.sweep();
            if self.limiter.len() >= self.max_keys {
                self.overflow.clone()
            } else {
                key
            }
        } else {
            key
        };
        self.limiter
            .check_key(&key)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    fn sweep(&self) {
        let now = self.epoch.elapsed().as_nanos() as u64;
        let last = self.last_sweep.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 1_000_000_000
            && self
                .last_sweep
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.limiter.retain_recent();
        }
    }
}

/// In-memory [`RateLimiter`] on `governor` (GCRA), bounded in keys. One per process: with several
/// replicas each enforces its own share.
pub struct GovernorRateLimiter {
    hasher: std::hash::RandomState,
    client: Option<Limit<u64>>,
    tenant: Option<Limit<u64>>,
    failed_auth: Option<Limit<IpAddr>>,
    /// Addresses over the failed-authentication limit, until when. Checked before verification.
    barred: moka::sync::Cache<IpAddr, Instant>,
    refused: [AtomicU64; 3],
}

impl std::fmt::Debug for GovernorRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GovernorRateLimiter")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

struct BarredExpiry;

impl moka::Expiry<IpAddr, Instant> for BarredExpiry {
    fn expire_after_create(&self, _: &IpAddr, until: &Instant, now: Instant) -> Option<Duration> {
        Some(until.saturating_duration_since(now))
    }
}

impl GovernorRateLimiter {
    /// Builds the limits of `config`.
    pub fn new(config: &RateLimitConfig) -> Result<Self, RateLimitConfigError> {
        if config.max_keys == 0 {
            return Err(RateLimitConfigError::ZeroKeys);
        }
        let quota = |q: Option<RateQuota>, name| match q {
            None => Ok(None),
            Some(q) => q
                .to_governor()
                .map(Some)
                .ok_or(RateLimitConfigError::ZeroQuota(name)),
        };
        let client = quota(config.per_client, "per_client")?;
        let tenant = quota(config.per_tenant, "per_tenant")?;
        let failed = quota(config.failed_auth_per_address, "failed_auth_per_address")?;
        let keys = config.max_keys;
        Ok(Self {
            hasher: std::hash::RandomState::new(),
            client: client.map(|q| Limit::new(q, keys, u64::MAX)),
            tenant: tenant.map(|q| Limit::new(q, keys, u64::MAX)),
            failed_auth: failed.map(|q| Limit::new(q, keys, IpAddr::from([0u8; 16]))),
            barred: moka::sync::Cache::builder()
                .max_capacity(keys as u64)
                .expire_after(BarredExpiry)
                .build(),
            refused: Default::default(),
        })
    }

    /// Refusal counters.
    pub fn stats(&self) -> RateLimitStats {
        let n = |i: usize| self.refused[i].load(Ordering::Relaxed);
        RateLimitStats {
            client: n(0),
            tenant: n(1),
            failed_auth_address: n(2),
            ..RateLimitStats::default()
        }
    }

    /// Checks the per-client and per-tenant quotas for explicit keys (for backends that resolve
    /// the tenant differently from the token's tenant claim). `client` is the client id, else the
    /// subject; both are scoped by `issuer`.
    pub fn check(
        &self,
        issuer: &str,
        client: Option<&str>,
        tenant: Option<&str>,
    ) -> Result<(), RateLimited> {
        if let (Some(limit), Some(client)) = (&self.client, client) {
            let key = self.key(0, issuer, client);
            limit
                .take(key)
                .map_err(|wait| self.refuse(LimitKind::Client, wait))?;
        }
        if let (Some(limit), Some(tenant)) = (&self.tenant, tenant) {
            let key = self.key(1, "", tenant);
            limit
                .take(key)
                .map_err(|wait| self.refuse(LimitKind::Tenant, wait))?;
        }
        Ok(())
    }

    fn key(&self, kind: u8, issuer: &str, id: &str) -> u64 {
        let mut h = self.hasher.build_hasher();
        kind.hash(&mut h);
        issuer.hash(&mut h);
        id.hash(&mut h);
        h.finish()
    }

    fn refuse(&self, limit: LimitKind, wait: Duration) -> RateLimited {
        let i = match limit {
            LimitKind::Client => 0,
            LimitKind::Tenant => 1,
            LimitKind::FailedAuthAddress => 2,
        };
        self.refused[i].fetch_add(1, Ordering::Relaxed);
        RateLimited {
            limit,
            retry_after: wait,
        }
    }
}

/// IPv4 as is; IPv6 by its /64 (one host usually owns a whole /64, so per-address keys would let
/// it rotate through 2^64 of them). IPv4-mapped IPv6 is treated as IPv4.
pub(crate) fn address_key(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V4(_) => peer,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::from(octets)
            }
        },
    }
}

impl GovernorRateLimiter {
    fn check_address_now(&self, peer: IpAddr) -> Result<(), RateLimited> {
        if self.failed_auth.is_none() {
            return Ok(());
        }
        let key = address_key(peer);
        match self.barred.get(&key) {
            Some(until) => {
                let wait = until.saturating_duration_since(Instant::now());
                if wait.is_zero() {
                    Ok(())
                } else {
                    Err(self.refuse(LimitKind::FailedAuthAddress, wait))
                }
            }
            None => Ok(()),
        }
    }

    fn record_auth_failure_now(&self, peer: IpAddr) {
        let Some(limit) = &self.failed_auth else {
            return;
        };
        let key = address_key(peer);
        if let Err(wait) = limit.take(key) {
            self.barred.insert(key, Instant::now() + wait);
        }
    }
}

// Every answer is ready at once: the request path neither allocates nor yields here.
impl RateLimiter for GovernorRateLimiter {
    fn check_address(&self, peer: IpAddr) -> RateCheck<'_, Result<(), RateLimitError>> {
        RateCheck::ready(
            self.check_address_now(peer)
                .map_err(RateLimitError::Limited),
        )
    }

    fn record_auth_failure(&self, peer: IpAddr) -> RateCheck<'_, ()> {
        self.record_auth_failure_now(peer);
        RateCheck::ready(())
    }

    fn check_caller<'a>(&'a self, caller: &'a Caller) -> RateCheck<'a, Result<(), RateLimitError>> {
        let client = caller.client_id.as_deref().or(caller.subject.as_deref());
        RateCheck::ready(
            self.check(&caller.issuer, client, caller.tenant.as_deref())
                .map_err(RateLimitError::Limited),
        )
    }

    fn stats(&self) -> RateLimitStats {
        GovernorRateLimiter::stats(self)
    }
}

impl<T: RateLimiter + ?Sized> RateLimiter for Arc<T> {
    fn check_address(&self, peer: IpAddr) -> RateCheck<'_, Result<(), RateLimitError>> {
        (**self).check_address(peer)
    }
    fn record_auth_failure(&self, peer: IpAddr) -> RateCheck<'_, ()> {
        (**self).record_auth_failure(peer)
    }
    fn check_caller<'a>(&'a self, caller: &'a Caller) -> RateCheck<'a, Result<(), RateLimitError>> {
        (**self).check_caller(caller)
    }
    fn stats(&self) -> RateLimitStats {
        (**self).stats()
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::caller::{Principal, ScopeSet, TokenKind};

    /// The in-memory answers are ready at once: polled once, without a runtime.
    fn now<T: Unpin>(check: RateCheck<'_, T>) -> T {
        let mut check = std::pin::pin!(check);
        match check
            .as_mut()
            .poll(&mut Context::from_waker(std::task::Waker::noop()))
        {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("the in-memory limiter never waits"),
        }
    }

    trait AnswerNow: RateLimiter {
        fn caller_now(&self, c: &Caller) -> Result<(), RateLimitError> {
            now(self.check_caller(c))
        }
        fn address_now(&self, ip: IpAddr) -> Result<(), RateLimitError> {
            now(self.check_address(ip))
        }
        fn record_now(&self, ip: IpAddr) {
            now(self.record_auth_failure(ip))
        }
    }
    impl<T: RateLimiter> AnswerNow for T {}

    fn limited(e: RateLimitError) -> RateLimited {
        match e {
            RateLimitError::Limited(r) => r,
            RateLimitError::Unavailable => panic!("the in-memory limiter is always available"),
        }
    }

    fn caller(client: Option<&str>, subject: &str, tenant: Option<&str>) -> Caller {
        Caller::new(Principal {
            issuer: "https://as.example".into(),
            subject: Some(subject.into()),
            client_id: client.map(Into::into),
            scopes: ScopeSet::new(),
            audiences: vec![],
            tenant: tenant.map(Into::into),
            expires_at: SystemTime::now() + Duration::from_secs(60),
            kind: TokenKind::Jwt,
            claims: Default::default(),
        })
    }

    // Slow refill (1/hour) so that no test depends on the clock moving.
    const SLOW: RateQuota = RateQuota {
        per_minute: 1,
        burst: 2,
    };

    #[test]
    fn per_client_quota_refuses_after_the_burst_with_a_retry_time() {
        let rl = GovernorRateLimiter::new(&RateLimitConfig {
            per_client: Some(SLOW),
            ..Default::default()
        })
        .unwrap();
        let a = caller(Some("app-a"), "alice", None);
        assert!(rl.caller_now(&a).is_ok());
        assert!(rl.caller_now(&a).is_ok());
        let refused = limited(rl.caller_now(&a).unwrap_err());
        assert_eq!(refused.limit, LimitKind::Client);
        assert!(refused.retry_after > Duration::from_secs(1));
        assert!(refused.retry_after <= Duration::from_secs(60));
        // Another client, and the same subject through another client, are separate buckets.
        assert!(rl.caller_now(&caller(Some("app-b"), "alice", None)).is_ok());
        // Without a client id the subject is the key.
        let s = caller(None, "svc", None);
        assert!(rl.caller_now(&s).is_ok());
        assert!(rl.caller_now(&s).is_ok());
        assert!(rl.caller_now(&s).is_err());
        assert_eq!(rl.stats().client, 2);
    }

    #[test]
    fn per_tenant_quota_is_shared_by_the_tenants_clients() {
        let rl = GovernorRateLimiter::new(&RateLimitConfig {
            per_tenant: Some(SLOW),
            ..Default::default()
        })
        .unwrap();
        assert!(rl.caller_now(&caller(Some("a"), "x", Some("acme"))).is_ok());
        assert!(rl.caller_now(&caller(Some("b"), "y", Some("acme"))).is_ok());
        let e = limited(
            rl.caller_now(&caller(Some("c"), "z", Some("acme")))
                .unwrap_err(),
        );
        assert_eq!(e.limit, LimitKind::Tenant);
        assert!(
            rl.caller_now(&caller(Some("c"), "z", Some("globex")))
                .is_ok()
        );
        // No tenant: only the client quota (none here) applies.
        assert!(rl.caller_now(&caller(Some("c"), "z", None)).is_ok());
        assert_eq!(rl.stats().tenant, 1);
    }

    #[test]
    fn refused_verifications_bar_the_address() {
        let rl = GovernorRateLimiter::new(&RateLimitConfig {
            failed_auth_per_address: Some(SLOW),
            ..Default::default()
        })
        .unwrap();
        let bad: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        assert!(rl.address_now(bad).is_ok());
        rl.record_now(bad);
        rl.record_now(bad);
        assert!(rl.address_now(bad).is_ok(), "within the burst");
        rl.record_now(bad);
        let e = limited(rl.address_now(bad).unwrap_err());
        assert_eq!(e.limit, LimitKind::FailedAuthAddress);
        assert!(e.retry_after > Duration::ZERO);
        assert!(rl.address_now(other).is_ok());
        assert_eq!(rl.stats().failed_auth_address, 1);
    }

    #[test]
    fn ipv6_addresses_share_their_slash_64() {
        let rl = GovernorRateLimiter::new(&RateLimitConfig {
            failed_auth_per_address: Some(RateQuota {
                per_minute: 1,
                burst: 1,
            }),
            ..Default::default()
        })
        .unwrap();
        rl.record_now("2001:db8:1:2::1".parse().unwrap());
        rl.record_now("2001:db8:1:2::ffff".parse().unwrap());
        assert!(
            rl.address_now("2001:db8:1:2:aaaa::1".parse().unwrap())
                .is_err()
        );
        assert!(rl.address_now("2001:db8:1:3::1".parse().unwrap()).is_ok());
        assert_eq!(
            address_key("::ffff:192.0.2.1".parse().unwrap()),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn key_count_is_bounded_and_overflow_is_still_limited() {
        let rl = GovernorRateLimiter::new(&RateLimitConfig {
            per_client: Some(RateQuota {
                per_minute: 1,
                burst: 1,
            }),
            max_keys: 4,
            ..Default::default()
        })
        .unwrap();
        for i in 0..4 {
            assert!(
                rl.caller_now(&caller(Some(&format!("c{i}")), "s", None))
                    .is_ok()
            );
        }
        // The table is full of busy keys: new clients share the overflow bucket.
        assert!(rl.caller_now(&caller(Some("new-1"), "s", None)).is_ok());
        assert!(rl.caller_now(&caller(Some("new-2"), "s", None)).is_err());
        assert!(rl.client.as_ref().unwrap().limiter.len() <= 5);
    }

    #[test]
    fn bad_configuration_is_refused() {
        let zero = RateQuota {
            per_minute: 0,
            burst: 1,
        };
        assert_eq!(
            GovernorRateLimiter::new(&RateLimitConfig {
                per_tenant: Some(zero),
                ..Default::default()
            })
            .unwrap_err(),
            RateLimitConfigError::ZeroQuota("per_tenant")
        );
        assert_eq!(
            GovernorRateLimiter::new(&RateLimitConfig {
                max_keys: 0,
                ..Default::default()
            })
            .unwrap_err(),
            RateLimitConfigError::ZeroKeys
        );
    }
}
