//! Issue 6: rate limits through the real wiring — per client, per tenant (resolved like the
//! billing server does), and failed authentications per source address, cut off before
//! verification.

use std::sync::atomic::Ordering;

use gatehouse::settings::QuotaSettings as QuotaConfig;

use super::stack::{Stack, tools_list};

/// One request a minute after a burst of two: the third request of a key is refused and no
/// test depends on the clock moving.
const TWO: QuotaConfig = QuotaConfig {
    per_minute: 1,
    burst: 2,
};

fn retry_after(r: &super::stack::Reply) -> u64 {
    r.header("retry-after")
        .parse()
        .expect("Retry-After seconds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_client_quota_answers_429_with_retry_after() {
    let stack = Stack::start(|c| c.rate_limits.per_client = Some(TWO)).await;
    let reader = stack.token("acme-reader", &[]);
    for _ in 0..2 {
        let r = stack.list_tools(Some(&reader)).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // A fresh token of the same client shares the quota: it is per client, not per token.
    let again = stack.token("acme-reader", &[]);
    let r = stack.list_tools(Some(&again)).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert!((1..=60).contains(&retry_after(&r)), "{:?}", r.headers);
    assert_eq!(
        r.body,
        r#"{"error":"rate_limited","error_description":"Too many requests"}"#
    );
    // Another client is unaffected.
    let other = stack.token("globex-reader", &[]);
    let r = stack.list_tools(Some(&other)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_tenant_quota_is_shared_by_the_tenants_clients() {
    let stack = Stack::start(|c| c.rate_limits.per_tenant = Some(TWO)).await;
    let acme_r = stack.token("acme-reader", &[]);
    let acme_w = stack.token("acme-writer", &[]);
    let globex = stack.token("globex-reader", &[]);
    for t in [&acme_r, &acme_w] {
        let r = stack.list_tools(Some(t)).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let r = stack.list_tools(Some(&acme_r)).await;
    assert_eq!(r.status, 429);
    assert!(retry_after(&r) >= 1);
    let r = stack.list_tools(Some(&globex)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_authentications_bar_the_address_before_verification() {
    let stack = Stack::start(|c| c.rate_limits.failed_auth_per_address = Some(TWO)).await;
    let good = stack.token("acme-reader", &[]);
    // Requests without a token are discovery, not failures: never counted.
    for _ in 0..5 {
        assert_eq!(stack.post(None, None, tools_list()).await.status, 401);
    }
    // Three distinct forged tokens: each is verified and refused; the third crosses the limit.
    for i in 0..3 {
        let forged = format!("{}x{i}", &good[..good.len() - 4]);
        let r = stack.list_tools(Some(&forged)).await;
        assert_eq!(r.status, 401, "{}", r.body);
    }
    let verifications = stack.metrics.verifications.load(Ordering::Relaxed);
    // Now the address is barred: even a valid token gets 429, and nothing is verified.
    let r = stack.list_tools(Some(&good)).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(retry_after(&r) >= 1);
    let forged = format!("{}zz", &good[..good.len() - 2]);
    assert_eq!(stack.list_tools(Some(&forged)).await.status, 429);
    assert_eq!(
        stack.metrics.verifications.load(Ordering::Relaxed),
        verifications
    );
    assert_eq!(stack.metrics.rejections.get("rate_limited"), 2);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_quota_switches_the_default_limit_off() {
    let stack = Stack::start(|c| {
        c.rate_limits.failed_auth_per_address = Some(QuotaConfig {
            per_minute: 0,
            burst: 0,
        })
    })
    .await;
    for i in 0..30 {
        let r = stack.list_tools(Some(&format!("forged-{i}"))).await;
        assert_eq!(r.status, 401);
    }
    stack.stop().await;
}
