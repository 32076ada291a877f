//! Invariant: with `backend = "redis"` every replica draws on one budget per key — exactly, under
//! concurrency — with the same limits and keys as in memory; and when Redis cannot answer (down,
//! or hanging) a check neither hangs nor fails authentication: it fails open (counted) or, when
//! configured, closed.
//!
//! Needs the Redis at 127.0.0.1:6379 (`GATEHOUSE_TEST_REDIS_URL` overrides); starts nothing.
//! Every test uses its own key prefix, so tests run in parallel.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use gatehouse::policy::rate_limit::{
    LimitKind, RateLimitConfig, RateLimitError, RateLimiter, RateQuota,
};
use gatehouse::policy::redis_rate_limit::{RedisFailure, RedisRateLimitConfig, RedisRateLimiter};
use gatehouse::{Caller, Principal, ScopeSet, TokenKind};

fn redis_url() -> String {
    std::env::var("GATEHOUSE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn prefix() -> String {
    format!("gatehouse-test:{}:", rand_u64())
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::hash::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish()
}

fn limiter(
    limits: &RateLimitConfig,
    url: String,
    prefix: &str,
    failure: RedisFailure,
) -> RedisRateLimiter {
    RedisRateLimiter::new(
        limits,
        RedisRateLimitConfig {
            url,
            key_prefix: prefix.to_owned(),
            timeout: Duration::from_millis(200),
            failure,
        },
    )
    .unwrap()
}

fn caller(issuer: &str, client: Option<&str>, subject: &str, tenant: Option<&str>) -> Caller {
    Caller::new(Principal {
        issuer: issuer.into(),
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

/// One cell a minute after the burst: no test depends on the clock moving, except the refill test.
fn slow(burst: u32) -> Option<RateQuota> {
    Some(RateQuota {
        per_minute: 1,
        burst,
    })
}

fn limited(e: RateLimitError) -> (LimitKind, Duration) {
    match e {
        RateLimitError::Limited(r) => (r.limit, r.retry_after),
        RateLimitError::Unavailable => panic!("Redis is up: no check may be unavailable"),
    }
}

/// A port nobody listens on: connecting is refused at once.
async fn closed_port_url() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("redis://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_budget_exactly() {
    let limits = RateLimitConfig {
        per_client: slow(10),
        ..Default::default()
    };
    let p = prefix();
    let a = Arc::new(limiter(&limits, redis_url(), &p, RedisFailure::Closed));
    let b = Arc::new(limiter(&limits, redis_url(), &p, RedisFailure::Closed));
    let c = Arc::new(caller("https://as.example", Some("app"), "alice", None));
    // 40 concurrent checks, half through each replica: exactly the burst is admitted.
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let (rl, c) = (if i % 2 == 0 { a.clone() } else { b.clone() }, c.clone());
            tokio::spawn(async move { rl.check_caller(&c).await })
        })
        .collect();
    let mut admitted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => admitted += 1,
            Err(e) => assert_eq!(limited(e).0, LimitKind::Client),
        }
    }
    assert_eq!(admitted, 10);
    assert_eq!(a.stats().client + b.stats().client, 30);
    // The same client through another issuer is another bucket, as in memory.
    assert!(
        a.check_caller(&caller("https://other.example", Some("app"), "alice", None))
            .await
            .is_ok()
    );
    // A limiter with another prefix (another deployment) does not share it.
    let other = limiter(&limits, redis_url(), &prefix(), RedisFailure::Closed);
    assert!(other.check_caller(&c).await.is_ok());
}

#[tokio::test]
async fn the_bucket_refills_at_the_quota_rate() {
    // 60000 a minute: one cell per millisecond, burst 1.
    let limits = RateLimitConfig {
        per_client: Some(RateQuota {
            per_minute: 60_000,
            burst: 1,
        }),
        ..Default::default()
    };
    let rl = limiter(&limits, redis_url(), &prefix(), RedisFailure::Closed);
    let c = caller("https://as.example", Some("app"), "alice", None);
    rl.check_caller(&c).await.unwrap();
    let (kind, wait) = limited(rl.check_caller(&c).await.unwrap_err());
    assert_eq!(kind, LimitKind::Client);
    assert!(
        wait > Duration::ZERO && wait <= Duration::from_millis(1),
        "{wait:?}"
    );
    // Redis computed `wait` on its clock before answering; once that much time has passed here,
    // it has passed there too. The extra millisecond covers the microsecond rounding.
    tokio::time::sleep(wait + Duration::from_millis(1)).await;
    rl.check_caller(&c).await.expect("a cell is back");
}

#[tokio::test]
async fn per_tenant_is_shared_by_the_tenants_clients() {
    let limits = RateLimitConfig {
        per_tenant: slow(2),
        ..Default::default()
    };
    let rl = limiter(&limits, redis_url(), &prefix(), RedisFailure::Closed);
    let iss = "https://as.example";
    rl.check_caller(&caller(iss, Some("a"), "x", Some("acme")))
        .await
        .unwrap();
    rl.check_caller(&caller(iss, Some("b"), "y", Some("acme")))
        .await
        .unwrap();
    let e = rl
        .check_caller(&caller(iss, Some("c"), "z", Some("acme")))
        .await
        .unwrap_err();
    assert_eq!(limited(e).0, LimitKind::Tenant);
    rl.check_caller(&caller(iss, Some("c"), "z", Some("globex")))
        .await
        .unwrap();
    // No tenant: only the client quota (none here) applies.
    rl.check_caller(&caller(iss, Some("c"), "z", None))
        .await
        .unwrap();
    assert_eq!(rl.stats().tenant, 1);
}

#[tokio::test]
async fn client_then_tenant_in_one_check_and_subject_without_client_id() {
    let limits = RateLimitConfig {
        per_client: slow(1),
        per_tenant: slow(3),
        ..Default::default()
    };
    let rl = limiter(&limits, redis_url(), &prefix(), RedisFailure::Closed);
    let iss = "https://as.example";
    let svc = caller(iss, None, "svc", Some("acme"));
    rl.check_caller(&svc).await.unwrap();
    let (kind, _) = limited(rl.check_caller(&svc).await.unwrap_err());
    assert_eq!(
        kind,
        LimitKind::Client,
        "the client (here: the subject) refuses first"
    );
    rl.check_caller(&caller(iss, Some("b"), "y", Some("acme")))
        .await
        .unwrap();
    rl.check_caller(&caller(iss, Some("c"), "y", Some("acme")))
        .await
        .unwrap();
    let (kind, _) = limited(
        rl.check_caller(&caller(iss, Some("d"), "y", Some("acme")))
            .await
            .unwrap_err(),
    );
    assert_eq!(kind, LimitKind::Tenant);
}

#[tokio::test]
async fn refused_tokens_bar_the_address_across_replicas() {
    let limits = RateLimitConfig {
        failed_auth_per_address: slow(2),
        ..Default::default()
    };
    let p = prefix();
    let a = limiter(&limits, redis_url(), &p, RedisFailure::Closed);
    let b = limiter(&limits, redis_url(), &p, RedisFailure::Closed);
    let bad: IpAddr = "192.0.2.7".parse().unwrap();
    a.check_address(bad).await.unwrap();
    a.record_auth_failure(bad).await;
    b.record_auth_failure(bad).await;
    a.check_address(bad).await.expect("within the burst");
    b.record_auth_failure(bad).await;
    for rl in [&a, &b] {
        let (kind, wait) = limited(rl.check_address(bad).await.unwrap_err());
        assert_eq!(kind, LimitKind::FailedAuthAddress);
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(60),
            "{wait:?}"
        );
    }
    b.check_address("192.0.2.8".parse().unwrap()).await.unwrap();
    // IPv6 by /64, as in memory.
    let v6: IpAddr = "2001:db8:1:2::1".parse().unwrap();
    for _ in 0..3 {
        a.record_auth_failure(v6).await;
    }
    assert!(
        b.check_address("2001:db8:1:2:ffff::9".parse().unwrap())
            .await
            .is_err()
    );
    b.check_address("2001:db8:1:3::1".parse().unwrap())
        .await
        .unwrap();
}

#[tokio::test]
async fn redis_down_fails_open_by_default_and_counts() {
    let limits = RateLimitConfig {
        per_client: slow(1),
        per_tenant: slow(1),
        failed_auth_per_address: slow(1),
        ..Default::default()
    };
    let rl = limiter(
        &limits,
        closed_port_url().await,
        &prefix(),
        RedisFailure::Open,
    );
    let c = caller("https://as.example", Some("app"), "alice", Some("acme"));
    let ip: IpAddr = "192.0.2.1".parse().unwrap();
    for _ in 0..3 {
        rl.check_caller(&c).await.expect("fails open");
        rl.check_address(ip).await.expect("fails open");
        rl.record_auth_failure(ip).await;
    }
    let s = rl.stats();
    assert_eq!(
        (
            s.unavailable_allowed,
            s.unavailable_refused,
            s.unavailable_unrecorded
        ),
        (6, 0, 3)
    );
    assert_eq!((s.client, s.tenant, s.failed_auth_address), (0, 0, 0));
}

#[tokio::test]
async fn redis_down_fails_closed_when_configured() {
    let limits = RateLimitConfig {
        per_client: slow(1),
        failed_auth_per_address: slow(1),
        ..Default::default()
    };
    let rl = limiter(
        &limits,
        closed_port_url().await,
        &prefix(),
        RedisFailure::Closed,
    );
    let c = caller("https://as.example", Some("app"), "alice", None);
    assert_eq!(rl.check_caller(&c).await, Err(RateLimitError::Unavailable));
    assert_eq!(
        rl.check_address("192.0.2.1".parse().unwrap()).await,
        Err(RateLimitError::Unavailable)
    );
    let s = rl.stats();
    assert_eq!((s.unavailable_allowed, s.unavailable_refused), (0, 2));
}

/// A Redis that accepts connections and never answers: each check ends on the limiter's
/// timeout, with the configured failure answer. The outer timeout only turns a hang into a
/// failure instead of a stuck test; it is far above the limiter's own.
#[tokio::test]
async fn a_hanging_redis_costs_a_timeout_not_a_hang() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{}", silent.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        loop {
            match silent.accept().await {
                Ok((s, _)) => conns.push(s),
                Err(_) => return,
            }
        }
    });
    let limits = RateLimitConfig {
        per_client: slow(1),
        ..Default::default()
    };
    let c = caller("https://as.example", Some("app"), "alice", None);
    for (failure, expected) in [
        (RedisFailure::Open, Ok(())),
        (RedisFailure::Closed, Err(RateLimitError::Unavailable)),
    ] {
        let rl = limiter(&limits, url.clone(), &prefix(), failure);
        for _ in 0..2 {
            let answer = tokio::time::timeout(Duration::from_secs(30), rl.check_caller(&c))
                .await
                .expect("the limiter's timeout ends the check");
            assert_eq!(answer, expected);
        }
    }
    held.abort();
}

#[test]
fn the_url_never_shows_in_debug() {
    let config = RedisRateLimitConfig {
        url: "redis://user:hunter2@127.0.0.1:6379".into(),
        key_prefix: "p:".into(),
        timeout: Duration::from_millis(50),
        failure: RedisFailure::Open,
    };
    assert!(!format!("{config:?}").contains("hunter2"));
    let s = gatehouse::settings::SecretString::new("redis://user:hunter2@h");
    assert!(!format!("{s:?}").contains("hunter2"));
}

#[tokio::test]
async fn keys_expire_once_the_bucket_is_full_again() {
    let limits = RateLimitConfig {
        per_tenant: slow(1),
        ..Default::default()
    };
    let p = prefix();
    let rl = limiter(&limits, redis_url(), &p, RedisFailure::Closed);
    rl.check_caller(&caller("https://as.example", Some("a"), "x", Some("acme")))
        .await
        .unwrap();
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{p}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 60_000, "{ttl}");
}
