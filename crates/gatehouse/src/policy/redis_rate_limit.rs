//! The rate limits of [`crate::policy::rate_limit`], shared by every replica through Redis.
//!
//! Same limits, same keys, same answers as [`GovernorRateLimiter`](super::rate_limit::GovernorRateLimiter)
//! — per client (client id, else subject, within its issuer), per tenant, and tokens refused by
//! the authorization server per client address — but one budget for all replicas: each check is
//! one Lua script (GCRA, the algorithm `governor` runs in memory), executed atomically by Redis in
//! one round trip, on Redis's clock, so that replicas whose clocks disagree still agree on the
//! budget. Keys expire when their bucket is full again, so Redis holds only busy keys.
//!
//! # When Redis cannot answer
//!
//! Every call has a short timeout ([`RedisRateLimitConfig::timeout`]): a Redis that is down
//! answers at once (connection refused), one that hangs costs each request at most the timeout.
//! Then, by [`RedisFailure`]:
//! - **open** (the default): the request goes on as if under its limits. Rate limits protect the
//!   service; an outage of the component that enforces them must not become an outage of the
//!   service. Authentication, scopes and tools are unaffected.
//! - **closed**: the request is refused with [`RateLimitError::Unavailable`], which the edge
//!   answers `503` + `Retry-After`.
//!
//! Either way the failure is counted ([`RateLimitStats`]: the CLI exports it as
//! `gatehouse_rate_limit_unavailable_total`) and logged as a warning at most once per
//! [`WARN_INTERVAL`]. A failure to record a refused token is counted and never refuses anything.
//!
//! Redis Cluster is not supported: a check of client and tenant touches two keys in one script.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::caller::Caller;
use crate::policy::rate_limit::{
    LimitKind, RateCheck, RateLimitConfig, RateLimitConfigError, RateLimitError, RateLimitStats,
    RateLimited, RateLimiter, RateQuota, address_key,
};

/// At most one warning per this interval while Redis fails (the counters count every failure).
pub const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// What a check does when Redis cannot answer in time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RedisFailure {
    /// Let the request through (counted and logged).
    #[default]
    Open,
    /// Refuse it: `503` + `Retry-After` (counted and logged).
    Closed,
}

/// Where and how to reach Redis. `Debug` never shows the URL (it may hold a password).
#[derive(Clone)]
pub struct RedisRateLimitConfig {
    /// `redis://[user:password@]host[:port][/db]`.
    pub url: String,
    /// Put before every key, so that several deployments (or tests) can share one Redis.
    pub key_prefix: String,
    /// Longest wait for one Redis call, connecting included.
    pub timeout: Duration,
    /// What to do when Redis cannot answer.
    pub failure: RedisFailure,
}

impl std::fmt::Debug for RedisRateLimitConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRateLimitConfig")
            .field("url", &"<redacted>")
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .field("failure", &self.failure)
            .finish()
    }
}

/// A Redis rate limiter that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum RedisRateLimitError {
    /// A quota or the key bound is unusable.
    #[error(transparent)]
    Config(#[from] RateLimitConfigError),
    /// The URL is not a usable Redis URL (the URL itself is not repeated: it may hold a
    /// password).
    #[error("redis_url is not a usable Redis URL")]
    Url,
    /// `timeout` is zero.
    #[error("the Redis timeout must be positive")]
    ZeroTimeout,
}

/// GCRA over the keys in `KEYS`, in order, each with its emission interval and burst in `ARGV`
/// (microseconds, cells). The first key over its quota stops the script: `{index, wait_us}`; all
/// admitted: `{0, 0}`. As in memory, a key admitted before a later one refuses keeps its cell.
/// Times are Redis's (`TIME`), integers kept exact by formatting them with `%.0f`.
const TAKE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local tolerance = interval * (tonumber(ARGV[2 * i]) - 1)
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local ahead = tat - now
  if ahead > tolerance then
    return {i, ahead - tolerance}
  end
  local next_tat = tat + interval
  redis.call('SET', key, string.format('%.0f', next_tat), 'PX', math.ceil((next_tat - now) / 1000))
end
return {0, 0}
";

/// A refused token from an address: one cell of `KEYS[1]`; over the quota, the address is barred
/// (`KEYS[2]`) until a cell is free again — exactly the in-memory limiter's rule.
const RECORD_FAILURE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = interval * (tonumber(ARGV[2]) - 1)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local ahead = tat - now
if ahead > tolerance then
  redis.call('SET', KEYS[2], '1', 'PX', math.ceil((ahead - tolerance) / 1000))
  return 1
end
local next_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', math.ceil((next_tat - now) / 1000))
return 0
";

/// One quota as the scripts take it.
#[derive(Debug, Clone, Copy)]
struct Gcra {
    interval_us: u64,
    burst: u32,
}

impl Gcra {
    fn new(q: Option<RateQuota>, name: &'static str) -> Result<Option<Self>, RateLimitConfigError> {
        let Some(q) = q else { return Ok(None) };
        if q.per_minute == 0 || q.burst == 0 {
            return Err(RateLimitConfigError::ZeroQuota(name));
        }
        Ok(Some(Self {
            // Whole microseconds: exact for every rate up to a million a minute.
            interval_us: (60_000_000 / u64::from(q.per_minute)).max(1),
            burst: q.burst,
        }))
    }
}

/// Why a call failed, for the log (never the error text, which could echo connection details).
#[derive(Clone, Copy)]
enum Failure {
    Timeout,
    Redis(redis::ErrorKind),
}

impl Failure {
    fn label(self) -> String {
        match self {
            Failure::Timeout => "timeout".to_owned(),
            Failure::Redis(kind) => format!("{kind:?}"),
        }
    }
}

/// [`RateLimiter`] on Redis, shared by every replica that uses the same Redis and key prefix.
pub struct RedisRateLimiter {
    conn: ConnectionManager,
    take: redis::Script,
    record_failure: redis::Script,
    prefix: String,
    timeout: Duration,
    failure: RedisFailure,
    client: Option<Gcra>,
    tenant: Option<Gcra>,
    failed_auth: Option<Gcra>,
    /// client, tenant, failed_auth_address, unavailable allowed / refused / unrecorded.
    counts: [AtomicU64; 6],
    /// Milliseconds since `epoch` of the last warning (0: none yet).
    last_warning: AtomicU64,
    epoch: Instant,
}

impl std::fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRateLimiter")
            .field("key_prefix", &self.prefix)
            .field("failure", &self.failure)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl RedisRateLimiter {
    /// Builds the limits of `limits` on the Redis of `redis`. Does not connect: the first call
    /// does (and reconnects after a failure), so a Redis that is down at start-up is one more
    /// outage, handled as [`RedisFailure`] says. Must be called within a Tokio runtime.
    /// `limits.max_keys` does not apply: Redis keys expire once their bucket is full.
    pub fn new(
        limits: &RateLimitConfig,
        redis: RedisRateLimitConfig,
    ) -> Result<Self, RedisRateLimitError> {
        let client = Gcra::new(limits.per_client, "per_client")?;
        let tenant = Gcra::new(limits.per_tenant, "per_tenant")?;
        let failed_auth = Gcra::new(limits.failed_auth_per_address, "failed_auth_per_address")?;
        if redis.timeout.is_zero() {
            return Err(RedisRateLimitError::ZeroTimeout);
        }
        let redis_client =
            redis::Client::open(redis.url.as_str()).map_err(|_| RedisRateLimitError::Url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(redis.timeout))
            .set_response_timeout(Some(redis.timeout))
            // One attempt per reconnection: while Redis is down, requests must not queue behind
            // a backoff; the next call after a failure tries again.
            .set_number_of_retries(0);
        let conn = ConnectionManager::new_lazy_with_config(redis_client, config)
            .map_err(|_| RedisRateLimitError::Url)?;
        Ok(Self {
            conn,
            take: redis::Script::new(TAKE),
            record_failure: redis::Script::new(RECORD_FAILURE),
            prefix: redis.key_prefix,
            timeout: redis.timeout,
            failure: redis.failure,
            client,
            tenant,
            failed_auth,
            counts: Default::default(),
            last_warning: AtomicU64::new(0),
            epoch: Instant::now(),
        })
    }

    /// Counters: refusals by limit, and checks Redis could not answer.
    pub fn stats(&self) -> RateLimitStats {
        let n = |i: usize| self.counts[i].load(Ordering::Relaxed);
        RateLimitStats {
            client: n(0),
            tenant: n(1),
            failed_auth_address: n(2),
            unavailable_allowed: n(3),
            unavailable_refused: n(4),
            unavailable_unrecorded: n(5),
        }
    }

    /// `{prefix}{kind}:{id}`, the id being the SHA-256 (first 128 bits, hex) of the parts: ids
    /// come from tokens and may be long; a fixed-size key keeps Redis's memory bounded per key.
    /// Deterministic, unlike the in-memory limiter's per-process keyed hash: every replica must
    /// name a bucket the same way.
    fn key(&self, kind: &str, parts: &[&str]) -> String {
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        for p in parts {
            // Length-prefixed, so that ("ab", "c") and ("a", "bc") differ.
            ctx.update(&(p.len() as u64).to_be_bytes());
            ctx.update(p.as_bytes());
        }
        let digest = ctx.finish();
        let mut key = String::with_capacity(self.prefix.len() + kind.len() + 33);
        key.push_str(&self.prefix);
        key.push_str(kind);
        key.push(':');
        for b in &digest.as_ref()[..16] {
            let _ = write!(key, "{b:02x}");
        }
        key
    }

    fn address_keys(&self, peer: IpAddr) -> (String, String) {
        let ip = address_key(peer);
        (
            format!("{}failed_auth:{ip}", self.prefix),
            format!("{}barred:{ip}", self.prefix),
        )
    }

    async fn call<T: redis::FromRedisValue>(
        &self,
        invocation: redis::ScriptInvocation<'_>,
    ) -> Result<T, Failure> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.timeout, invocation.invoke_async(&mut conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) if e.is_timeout() => Err(Failure::Timeout),
            Ok(Err(e)) => Err(Failure::Redis(e.kind())),
            Err(_) => Err(Failure::Timeout),
        }
    }

    async fn check_caller_in_redis(&self, caller: &Caller) -> Result<(), RateLimitError> {
        let client = caller.client_id.as_deref().or(caller.subject.as_deref());
        let mut script = self.take.prepare_invoke();
        let mut kinds = [LimitKind::Client; 2];
        let mut n = 0;
        if let (Some(q), Some(client)) = (self.client, client) {
            script
                .key(self.key("client", &[&caller.issuer, client]))
                .arg(q.interval_us)
                .arg(q.burst);
            n += 1;
        }
        if let (Some(q), Some(tenant)) = (self.tenant, caller.tenant.as_deref()) {
            script
                .key(self.key("tenant", &[tenant]))
                .arg(q.interval_us)
                .arg(q.burst);
            kinds[n] = LimitKind::Tenant;
            n += 1;
        }
        if n == 0 {
            return Ok(());
        }
        match self.call::<(usize, u64)>(script).await {
            Ok((0, _)) => Ok(()),
            Ok((i, wait_us)) => {
                let kind = kinds.get(i - 1).copied().unwrap_or(LimitKind::Client);
                Err(self.refuse(kind, Duration::from_micros(wait_us)))
            }
            Err(f) => self.unavailable("check_caller", f),
        }
    }

    async fn check_address_in_redis(&self, peer: IpAddr) -> Result<(), RateLimitError> {
        let (_, barred) = self.address_keys(peer);
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("PTTL");
        cmd.arg(&barred);
        let pttl = cmd.query_async::<i64>(&mut conn);
        let result = match tokio::time::timeout(self.timeout, pttl).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) if e.is_timeout() => Err(Failure::Timeout),
            Ok(Err(e)) => Err(Failure::Redis(e.kind())),
            Err(_) => Err(Failure::Timeout),
        };
        match result {
            // -2: no bar; -1 (no expiry) cannot be written by the scripts.
            Ok(ms) if ms <= 0 => Ok(()),
            Ok(ms) => Err(self.refuse(
                LimitKind::FailedAuthAddress,
                Duration::from_millis(ms.unsigned_abs()),
            )),
            Err(f) => self.unavailable("check_address", f),
        }
    }

    async fn record_auth_failure_in_redis(&self, peer: IpAddr, q: Gcra) {
        let (bucket, barred) = self.address_keys(peer);
        let mut script = self.record_failure.prepare_invoke();
        script
            .key(bucket)
            .key(barred)
            .arg(q.interval_us)
            .arg(q.burst);
        if let Err(f) = self.call::<i64>(script).await {
            self.counts[5].fetch_add(1, Ordering::Relaxed);
            self.warn("record_auth_failure", f);
        }
    }

    fn refuse(&self, limit: LimitKind, retry_after: Duration) -> RateLimitError {
        let i = match limit {
            LimitKind::Client => 0,
            LimitKind::Tenant => 1,
            LimitKind::FailedAuthAddress => 2,
        };
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        RateLimitError::Limited(RateLimited { limit, retry_after })
    }

    fn unavailable(&self, operation: &'static str, failure: Failure) -> Result<(), RateLimitError> {
        self.warn(operation, failure);
        match self.failure {
            RedisFailure::Open => {
                self.counts[3].fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            RedisFailure::Closed => {
                self.counts[4].fetch_add(1, Ordering::Relaxed);
                Err(RateLimitError::Unavailable)
            }
        }
    }

    /// A warning per [`WARN_INTERVAL`] at most: an outage under load must not flood the log.
    fn warn(&self, operation: &'static str, failure: Failure) {
        let now = self.epoch.elapsed().as_millis() as u64 + 1;
        let last = self.last_warning.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= WARN_INTERVAL.as_millis() as u64;
        if due
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let failing = match self.failure {
                RedisFailure::Open => "open (requests are not rate-limited)",
                RedisFailure::Closed => "closed (requests are refused with 503)",
            };
            tracing::warn!(
                operation,
                failure = %failure.label(),
                failing,
                "rate-limit backend (Redis) did not answer; failing {failing}; further failures \
                 are counted in gatehouse_rate_limit_unavailable_total and logged at most every \
                 {} s",
                WARN_INTERVAL.as_secs()
            );
        }
    }
}

impl RateLimiter for RedisRateLimiter {
    fn check_address(&self, peer: IpAddr) -> RateCheck<'_, Result<(), RateLimitError>> {
        if self.failed_auth.is_none() {
            return RateCheck::ready(Ok(()));
        }
        RateCheck::pending(self.check_address_in_redis(peer))
    }

    fn record_auth_failure(&self, peer: IpAddr) -> RateCheck<'_, ()> {
        match self.failed_auth {
            None => RateCheck::ready(()),
            Some(q) => RateCheck::pending(self.record_auth_failure_in_redis(peer, q)),
        }
    }

    fn check_caller<'a>(&'a self, caller: &'a Caller) -> RateCheck<'a, Result<(), RateLimitError>> {
        if self.client.is_none() && self.tenant.is_none() {
            return RateCheck::ready(Ok(()));
        }
        RateCheck::pending(self.check_caller_in_redis(caller))
    }

    fn stats(&self) -> RateLimitStats {
        RedisRateLimiter::stats(self)
    }
}
