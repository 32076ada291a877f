//! Issue 6: the admin listener (`/metrics`, `/healthz`, `/readyz`) of the real wiring, and the
//! aggregated audit of authentication failures.

use serde_json::json;

use super::stack::{Stack, tools_list};

async fn get(stack: &Stack, path: &str) -> (u16, String) {
    let url = format!(
        "{}{path}",
        stack.admin_url.as_deref().expect("admin listener")
    );
    let r = stack.http.get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The value of the sample `name{labels}` (labels exactly as rendered) in a scrape.
fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|l| {
        let rest = l.strip_prefix(series)?;
        rest.strip_prefix(' ')?.trim().parse().ok()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_outcomes_cache_keys_and_latency() {
    let stack = Stack::start(|_| {}).await;
    let token = stack.token("acme-reader", &[]);
    // 401 without a token, 401 with a forged one, two successes (one verification, one hit).
    assert_eq!(stack.post(None, None, tools_list()).await.status, 401);
    assert_eq!(stack.list_tools(Some("not-a-jwt")).await.status, 401);
    for _ in 0..2 {
        let r = stack
            .call(&token, "lookup_invoice", json!({"invoiceId": "INV-2041"}))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let meta = stack
        .http
        .get(
            stack
                .url
                .replace("/mcp", "/.well-known/oauth-protected-resource/mcp"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(meta.status(), 200);

    let (status, m) = get(&stack, "/metrics").await;
    assert_eq!(status, 200);
    let v = |s: &str| sample(&m, s).unwrap_or_else(|| panic!("{s} missing in\n{m}"));
    assert_eq!(
        v(r#"gatehouse_http_requests_total{route="mcp",status="401"}"#),
        2.0
    );
    assert_eq!(
        v(r#"gatehouse_http_requests_total{route="mcp",status="200"}"#),
        2.0
    );
    assert_eq!(
        v(r#"gatehouse_http_requests_total{route="metadata",status="200"}"#),
        1.0
    );
    assert_eq!(v(r#"gatehouse_auth_outcomes_total{outcome="ok"}"#), 2.0);
    assert_eq!(
        v(r#"gatehouse_auth_outcomes_total{outcome="request.no_credentials"}"#),
        1.0
    );
    assert_eq!(
        v(r#"gatehouse_auth_outcomes_total{outcome="invalid.malformed"}"#),
        1.0
    );
    assert_eq!(v("gatehouse_token_cache_hits_total"), 1.0);
    assert_eq!(v("gatehouse_token_cache_misses_total"), 2.0);
    assert!((v("gatehouse_token_cache_hit_ratio") - 1.0 / 3.0).abs() < 1e-9);
    assert_eq!(v("gatehouse_token_verification_seconds_count"), 2.0);
    let issuer = stack.issuer.issuer();
    assert!(
        v(&format!(
            r#"gatehouse_jwks_fetches_total{{issuer="{issuer}"}}"#
        )) >= 1.0
    );
    assert_eq!(
        v(&format!(
            r#"gatehouse_jwks_fetch_failures_total{{issuer="{issuer}"}}"#
        )),
        0.0
    );
    assert_eq!(
        v(r#"gatehouse_rate_limited_requests_total{limit="failed_auth_address"}"#),
        0.0
    );
    assert_eq!(v("gatehouse_keys_ready"), 1.0);
    assert!(m.contains("# TYPE gatehouse_token_verification_seconds histogram"));
    assert!(m.contains("# TYPE gatehouse_tool_calls counter"));
    assert!(m.contains("# TYPE gatehouse_introspection_requests counter"));
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_and_readyz_follow_keys_and_database() {
    let stack = Stack::start(|_| {}).await;
    assert_eq!(get(&stack, "/healthz").await.0, 200);
    let (status, body) = get(&stack, "/readyz").await;
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"database":true,"keys":true}"#)
    );
    // The database goes away: not ready, and says which check failed; still alive.
    stack.store.close().await;
    let (status, body) = get(&stack, "/readyz").await;
    assert_eq!(
        (status, body.as_str()),
        (503, r#"{"database":false,"keys":true}"#)
    );
    assert_eq!(get(&stack, "/healthz").await.0, 200);
    stack.stop().await;

    // Keys that cannot be loaded (a JWKS URL nobody listens on): not ready, tokens get 503.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}/jwks.json", dead.local_addr().unwrap());
    drop(dead);
    let stack = Stack::start(|c| c.auth.issuers[0].jwks_uri = Some(dead_url)).await;
    let (status, body) = get(&stack, "/readyz").await;
    assert_eq!(
        (status, body.as_str()),
        (503, r#"{"database":true,"keys":false}"#)
    );
    let token = stack.token("acme-reader", &[]);
    let r = stack.list_tools(Some(&token)).await;
    assert_eq!(r.status, 503);
    let (_, m) = get(&stack, "/metrics").await;
    assert_eq!(sample(&m, "gatehouse_keys_ready"), Some(0.0));
    assert!(
        m.lines()
            .any(|l| l.starts_with("gatehouse_jwks_fetch_failures_total{") && !l.ends_with(" 0")),
        "{m}"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_listener_can_be_disabled() {
    let stack = Stack::start(|c| c.admin.enabled = false).await;
    assert!(stack.admin_url.is_none());
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_failures_are_summarised_not_logged_one_by_one() {
    let stack = Stack::start(|_| {}).await;
    for _ in 0..5 {
        stack.list_tools(Some("forged")).await;
    }
    stack.list_tools(None).await;
    // One summary covers all six; the next one has nothing new to report.
    assert_eq!(stack.summary.emit(), 6);
    assert_eq!(stack.summary.emit(), 0);
    assert_eq!(stack.metrics.auth.get("invalid.malformed"), 5);
    stack.stop().await;
}
