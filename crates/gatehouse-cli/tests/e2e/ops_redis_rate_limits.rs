//! Issue 14: rate limits shared by replicas through Redis, through the real wiring of `gatehouse
//! serve`. Two servers on one Redis (and one key prefix) draw on one budget; when Redis does not
//! answer, requests are served (failing open, counted in `/metrics`) or answered `503` +
//! `Retry-After` (failing closed) — authentication and tools work either way.
//!
//! Needs the Redis at 127.0.0.1:6379 (`GATEHOUSE_TEST_REDIS_URL` overrides); starts nothing.

use gatehouse::settings::{QuotaSettings, RateLimitBackend, RedisFailureSetting, SecretString};
use gatehouse_cli::config::Config;
use serde_json::json;

use super::stack::Stack;

const TWO: QuotaSettings = QuotaSettings {
    per_minute: 1,
    burst: 2,
};

fn redis_url() -> String {
    std::env::var("GATEHOUSE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn on_redis(c: &mut Config, url: String, prefix: &str, failure: RedisFailureSetting) {
    c.rate_limits.backend = RateLimitBackend::Redis;
    c.rate_limits.redis_url = Some(SecretString::new(url));
    c.rate_limits.redis_key_prefix = prefix.to_owned();
    c.rate_limits.redis_failure = failure;
}

async fn closed_port_url() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("redis://{addr}")
}

async fn scrape(stack: &Stack) -> String {
    let url = format!("{}/metrics", stack.admin_url.as_deref().expect("admin"));
    stack
        .http
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|l| {
        let rest = l.strip_prefix(series)?;
        rest.strip_prefix(' ')?.trim().parse().ok()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_the_tenant_budget() {
    let prefix = format!("gatehouse-e2e:{}:", rand::random::<u64>());
    let tweak = |c: &mut Config| {
        c.rate_limits.per_tenant = Some(TWO);
        on_redis(c, redis_url(), &prefix, RedisFailureSetting::Closed);
    };
    let a = Stack::start(tweak).await;
    let b = Stack::start(tweak).await;
    let (ta, tb) = (a.token("acme-reader", &[]), b.token("acme-writer", &[]));
    assert_eq!(a.list_tools(Some(&ta)).await.status, 200);
    assert_eq!(b.list_tools(Some(&tb)).await.status, 200);
    // acme's budget of two is spent, whichever replica spent it.
    for (stack, token) in [(&a, &ta), (&b, &tb)] {
        let r = stack.list_tools(Some(token)).await;
        assert_eq!(r.status, 429, "{}", r.body);
        assert!(!r.header("retry-after").is_empty());
    }
    let globex = b.token("globex-reader", &[]);
    assert_eq!(b.list_tools(Some(&globex)).await.status, 200);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_open_and_the_metric_says_so() {
    let url = closed_port_url().await;
    let stack = Stack::start(|c| {
        c.rate_limits.per_client = Some(TWO);
        on_redis(c, url, "unused:", RedisFailureSetting::Open);
    })
    .await;
    let token = stack.token("acme-reader", &[]);
    // Over the quota of two, were it enforced: every request is served, tools included.
    for _ in 0..3 {
        let r = stack.list_tools(Some(&token)).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let r = stack
        .call(&token, "lookup_invoice", json!({ "invoiceId": "INV-2041" }))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.result()["isError"], false, "{}", r.body);
    let m = scrape(&stack).await;
    assert_eq!(
        sample(
            &m,
            r#"gatehouse_rate_limit_unavailable_total{decision="allowed"}"#
        ),
        Some(4.0),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            r#"gatehouse_rate_limit_unavailable_total{decision="refused"}"#
        ),
        Some(0.0)
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_closed_with_503_and_retry_after() {
    let url = closed_port_url().await;
    let stack = Stack::start(|c| {
        c.rate_limits.per_client = Some(TWO);
        on_redis(c, url, "unused:", RedisFailureSetting::Closed);
    })
    .await;
    let token = stack.token("acme-reader", &[]);
    let r = stack.list_tools(Some(&token)).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.header("retry-after"), "1");
    assert_eq!(
        r.body,
        r#"{"error":"temporarily_unavailable","error_description":"The service is temporarily unavailable"}"#
    );
    // Still authentication first: no token is a 401, not a 503.
    assert_eq!(stack.list_tools(None).await.status, 401);
    let m = scrape(&stack).await;
    assert_eq!(
        sample(
            &m,
            r#"gatehouse_rate_limit_unavailable_total{decision="refused"}"#
        ),
        Some(1.0),
        "{m}"
    );
    stack.stop().await;
}
