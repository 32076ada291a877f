//! Issue 6: rate limits through the real wiring — per client, per tenant (resolved like the
//! billing server does), and per client address the tokens the issuer had to refuse, whose
//! further verifications are cut off (issue 15: and nothing else from that address is).

use std::sync::atomic::Ordering;

use gatehouse::settings::QuotaSettings as QuotaConfig;
use gatehouse_testkit::{Alg, TestKey, TokenBuilder, now};

use super::stack::{Stack, tools_list, with_introspection};

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

/// An opaque token the issuer never issued: deciding it takes an introspection call, the work
/// the per-address limit meters, and the issuer refuses it.
fn bad_opaque(i: usize) -> String {
    format!("opaque-never-issued-{i}")
}

/// A token under a `kid` the issuer never published, as from an issuer that rotated in a key
/// right after the server's last JWKS fetch (or from a forger).
fn unknown_kid_token(stack: &Stack, i: usize) -> String {
    let key = TestKey::generate(Alg::ES256).with_kid(format!("rogue-{i}"));
    TokenBuilder::new(key)
        .header_typ("at+jwt")
        .iss(stack.issuer.issuer())
        .aud(stack.url.as_str())
        .subject("mallory")
        .exp(now() + 300)
        .sign()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_verifications_bar_only_the_work_they_cause() {
    let stack = Stack::start_with(
        |_| Vec::new(),
        |c, issuer| {
            c.rate_limits.failed_auth_per_address = Some(TWO);
            with_introspection(c, issuer);
        },
    )
    .await;
    let good = stack.token("acme-reader", &[]);
    // Requests without a token are discovery, not failures: never counted; nor are tokens
    // under unknown key ids, decided with the keys held (no refresh allowed so soon).
    for i in 0..5 {
        assert_eq!(stack.post(None, None, tools_list()).await.status, 401);
        let r = stack.list_tools(Some(&unknown_kid_token(&stack, i))).await;
        assert_eq!(r.status, 401, "{}", r.body);
    }
    // Opaque tokens the issuer refuses: the first two reach it (introspection) and are
    // refused; the third crosses the limit.
    for i in 0..3 {
        let r = stack.list_tools(Some(&bad_opaque(i))).await;
        assert_eq!(r.status, 401, "{}", r.body);
    }
    let verifications = stack.metrics.verifications.load(Ordering::Relaxed);
    // Now such tokens get 429 without being verified …
    let r = stack.list_tools(Some(&bad_opaque(3))).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(retry_after(&r) >= 1);
    assert_eq!(
        r.body,
        r#"{"error":"rate_limited","error_description":"Too many requests"}"#
    );
    assert_eq!(
        stack.metrics.verifications.load(Ordering::Relaxed),
        verifications
    );
    // … while a valid token from the same address is verified and served, and a token-less
    // request still gets its challenge.
    let r = stack.list_tools(Some(&good)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = stack.post(None, None, tools_list()).await;
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").starts_with("Bearer "));
    assert_eq!(stack.metrics.rejections.get("rate_limited"), 1);
    stack.stop().await;
}

/// The attack-suite finding of issue 15, with `gatehouse serve`'s default configuration: one
/// misbehaving client used to lock its whole address out after about 20 refused tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_configuration_never_locks_out_an_address() {
    let stack = Stack::start_with(|_| Vec::new(), with_introspection).await;
    let good = stack.token("acme-reader", &[]);
    // Forged tokens under the issuer's own key id, or under key ids it never published:
    // decided with the keys held, never limited.
    for i in 0..60 {
        let forged = format!("{}x{i}", &good[..good.len() - 4]);
        let r = stack.list_tools(Some(&forged)).await;
        assert_eq!(r.status, 401, "{}", r.body);
        let r = stack.list_tools(Some(&unknown_kid_token(&stack, i))).await;
        assert_eq!(r.status, 401, "{}", r.body);
    }
    // Opaque tokens the issuer refuses: each reaches the issuer; past the default burst of 20
    // (plus the refill of one a second), they are answered 429 and nothing is verified.
    let started = std::time::Instant::now();
    let before = stack.metrics.verifications.load(Ordering::Relaxed);
    let mut refused = 0u64;
    let mut limited = 0u64;
    for i in 0..100 {
        match stack.list_tools(Some(&bad_opaque(i))).await.status {
            401 => refused += 1,
            429 => limited += 1,
            other => panic!("unexpected {other}"),
        }
    }
    let verified = stack.metrics.verifications.load(Ordering::Relaxed) - before;
    assert_eq!(verified, refused);
    let bound = 20 + started.elapsed().as_secs() + 1;
    assert!(refused <= bound, "{refused} verified (bound {bound})");
    assert_eq!(refused + limited, 100);
    // The same address: a valid token (never seen before) is served, a token-less request is
    // challenged.
    let r = stack.list_tools(Some(&good)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = stack.post(None, None, tools_list()).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(
        r.header("www-authenticate")
            .starts_with("Bearer resource_metadata=")
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_quota_switches_the_default_limit_off() {
    let stack = Stack::start_with(
        |_| Vec::new(),
        |c, issuer| {
            c.rate_limits.failed_auth_per_address = Some(QuotaConfig {
                per_minute: 0,
                burst: 0,
            });
            with_introspection(c, issuer);
        },
    )
    .await;
    // Past the default burst of 20, and each one reaching the issuer: never 429.
    for i in 0..30 {
        let r = stack.list_tools(Some(&bad_opaque(i))).await;
        assert_eq!(r.status, 401);
    }
    stack.stop().await;
}
