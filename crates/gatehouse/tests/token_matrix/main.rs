//! The token matrix, end to end (issue 2 §3): a test authorization server (RFC 8414 metadata,
//! JWKS, RFC 7662 introspection, rotation, failure toggles) and the resource server
//! (`VerifierChain::start` with discovery → `Authenticator` → `Gatehouse` → rmcp
//! `StreamableHttpService`) each on an ephemeral loopback port, driven by real HTTP requests.
//!
//! Every case asserts the status, every `WWW-Authenticate` parameter, `Retry-After`, the exact
//! body (or the exact `Caller` the tool received), the edge's reason code, and the work done:
//! verified-token cache hits and misses, JWKS fetches per issuer, introspection calls, and hits
//! on the attacker's server (always zero). Each names its spec-requirements.md rows.
//!
//! Cases that share a context run in order inside one test (they compare counters before and
//! after each request); cases that flip the authorization server's state (rotation, outages)
//! get their own context so the tests can run in parallel.

mod case;
mod challenge;
#[path = "../common/mod.rs"]
mod common;
mod context;
mod matrix;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use gatehouse::AccessToken;
use gatehouse_testkit::{Alg, TestKey};
use serde_json::Value;

use case::{Case, Echo, Verify, check_all};
use context::{Auth, Options, Reply, TestContext};

/// Replaces the ephemeral ports of a context's servers with stable names (snapshots).
fn redact(ctx: &TestContext, text: &str) -> String {
    let mut s = text.replace(&format!("{}/", ctx.base), "http://[resource-server]/");
    s = s.replace(&format!("\"{}\"", ctx.x.issuer()), "\"http://[issuer-x]\"");
    if let Some(y) = &ctx.y {
        s = s.replace(&format!("\"{}\"", y.issuer()), "\"http://[issuer-y]\"");
    }
    s
}

/// Every distinct (status, challenge, Retry-After) the replies carry, one per line.
fn challenge_lines(ctx: &TestContext, replies: &[Reply]) -> String {
    let lines: BTreeSet<String> = replies
        .iter()
        .filter(|r| r.status != 200)
        .map(|r| {
            let www = if r.www_authenticate.is_empty() {
                "(no WWW-Authenticate)".to_owned()
            } else {
                redact(ctx, &r.www_authenticate.join(" | "))
            };
            match &r.retry_after {
                Some(after) => format!("{} {www} [Retry-After: {after}]", r.status),
                None => format!("{} {www}", r.status),
            }
        })
        .collect();
    lines.into_iter().collect::<Vec<_>>().join("\n")
}

// The matrix proper: every token shape against issuers X and Y, opaque tokens against X's
// introspection endpoint, and the verified-token cache (rows listed per case in matrix.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_matrix() {
    let ctx = TestContext::start(Options {
        second_issuer: true,
        all_algs: true,
        ..Options::default()
    })
    .await;
    // A29: discovery ran against each issuer's metadata (X twice: JWT keys and introspection
    // endpoint), then one JWKS load each; the resource server is ready.
    assert_eq!(ctx.x.metadata_fetches(), 2);
    assert_eq!(ctx.y().metadata_fetches(), 1);
    assert_eq!((ctx.x.jwks_fetches(), ctx.y().jwks_fetches()), (1, 1));
    assert!(ctx.gatehouse.authenticator().ready());

    let cases = matrix::cases(&ctx);
    let mut replies = check_all(&ctx, &cases).await;

    // E15, A27: revocation at the AS is seen only when the cached result expires
    // (`CacheConfig::max_ttl_introspected`, 60 s by default): the documented window.
    ctx.x.revoke("opaque-revoked-5a90");
    let after_revocation = Case::ok(
        "opaque token after revocation, within the cache window",
        "E15 A27",
        "opaque-revoked-5a90",
        Echo::new(ctx.x.issuer()).introspected(),
    )
    .verify(Verify::Hit);
    replies.extend(check_all(&ctx, &[after_revocation]).await);

    assert_eq!(ctx.attacker.hits(), 0, "jku/x5u/jwk/kid never fetched");
    // No case sent the token anywhere but to X's introspection endpoint.
    assert_eq!(ctx.y().introspection_calls(), 0);
    insta::assert_snapshot!("challenges", challenge_lines(&ctx, &replies));
}

// E5, E13: plain `typ: JWT` is accepted only with the explicit IdP-compatibility option;
// a missing typ still is not (that is a separate option).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typ_jwt_accepted_only_with_the_option() {
    let ctx = TestContext::start(Options {
        accept_jwt: true,
        ..Options::default()
    })
    .await;
    let x = &ctx.x;
    let echo = || Echo::new(x.issuer());
    let cases = [
        Case::ok(
            "typ JWT with accept_jwt",
            "E5 E13",
            &x.token().header_typ("JWT").sign(),
            echo(),
        ),
        Case::ok(
            "typ application/jwt with accept_jwt",
            "E5",
            &x.token().header_typ("application/jwt").sign(),
            echo(),
        ),
        Case::ok("typ at+jwt still accepted", "E5", &x.token().sign(), echo()),
        Case::invalid(
            &ctx,
            "missing typ still refused",
            "E5",
            &x.token().no_typ().sign(),
            "invalid.typ",
        ),
        Case::invalid(
            &ctx,
            "typ JOSE refused",
            "E5",
            &x.token().header_typ("JOSE").sign(),
            "invalid.typ",
        ),
    ];
    check_all(&ctx, &cases).await;
}

// Unverifiable is not invalid: introspection down or too slow → 503 + Retry-After, no
// challenge (no re-authentication storm); the outcome is not cached, so the same token is
// accepted once the endpoint is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_down_or_slow_fails_closed_with_503() {
    let ctx = TestContext::start(Options::default()).await;
    let x = &ctx.x;
    let echo = || Echo::new(x.issuer()).introspected();
    x.set_introspection("opaque-during-outage", x.active_introspection(300));
    x.set_introspection("opaque-slow", x.active_introspection(300));

    x.set_introspection_down(true);
    let down = [Case::unavailable(
        "introspection endpoint down",
        "E15",
        "opaque-during-outage",
        "unavailable.introspection_response",
    )
    .introspections(1)];
    let mut replies = check_all(&ctx, &down).await;
    x.set_introspection_down(false);
    check_all(
        &ctx,
        &[Case::ok(
            "same token once the endpoint is back",
            "E15",
            "opaque-during-outage",
            echo(),
        )
        .introspections(1)],
    )
    .await;

    // The endpoint would answer `active: true` after 3 s; the 300 ms fetch timeout decides
    // first. (A 200 here would mean the timeout did not apply.)
    x.set_introspection_delay(Duration::from_secs(3));
    let slow = [Case::unavailable(
        "introspection endpoint slower than the timeout",
        "E15",
        "opaque-slow",
        "unavailable.introspection",
    )
    .introspections(1)];
    replies.extend(check_all(&ctx, &slow).await);
    x.set_introspection_delay(Duration::ZERO);
    check_all(
        &ctx,
        &[Case::ok(
            "same token once the endpoint is fast",
            "E15",
            "opaque-slow",
            echo(),
        )
        .introspections(1)],
    )
    .await;
    insta::assert_snapshot!("unavailable", challenge_lines(&ctx, &replies));
}

// JWKS rotation: a token signed with a rotated-in key is accepted after exactly one refresh;
// then single flight: 1,000 concurrent requests whose kid the verifier has not seen yet share
// one JWKS fetch — over HTTP (one HTTP/2 connection, so at most 200 requests in flight at a
// time, hyper's default stream limit, instead of 1,000 sockets), and once more with 1,000
// tasks calling the same `Authenticator` directly behind a barrier (all truly concurrent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_rotation_and_single_flight() {
    let ctx = TestContext::start(Options::default()).await;
    let x = &ctx.x;
    let echo = || Echo::new(x.issuer());
    let old = x.current_key(Alg::ES256);
    check_all(
        &ctx,
        &[Case::ok("before rotation", "E8", &x.valid_token(), echo())],
    )
    .await;

    x.rotate();
    let cases = [
        Case::ok(
            "new key after rotation: exactly one refresh",
            "E8",
            &x.valid_token(),
            echo(),
        )
        .jwks(1),
        Case::ok(
            "another token with the new key: no refresh",
            "E8",
            &x.valid_token(),
            echo(),
        ),
        // The old key left the JWKS: one refresh (still not there), then refused.
        Case::invalid(
            &ctx,
            "retired key after rotation",
            "E8",
            &x.token().key(&old).sign(),
            "invalid.kid_unknown",
        )
        .jwks(1),
    ];
    check_all(&ctx, &cases).await;

    // Single flight over HTTP/2.
    x.add_key(Alg::ES256);
    let tokens: Vec<Auth> = (0..1000).map(|_| Auth::Bearer(x.valid_token())).collect();
    let before = ctx.counters();
    let replies = ctx.lookup_all_over_h2(&tokens).await;
    let want = echo().render();
    for r in &replies {
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.tool_text().as_ref(), Ok(&want));
    }
    let after = ctx.counters();
    assert_eq!(
        after.jwks_x - before.jwks_x,
        1,
        "one JWKS fetch for 1,000 requests"
    );
    assert_eq!(
        after.cache.misses - before.cache.misses,
        1000,
        "1,000 verifications"
    );

    // Single flight, 1,000 tasks released at once on the same Authenticator.
    x.add_key(Alg::ES256);
    let gate = Arc::new(tokio::sync::Barrier::new(1000));
    let before = ctx.counters();
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let authenticator = ctx.authenticator.clone();
            let token = AccessToken::new(x.valid_token());
            let gate = gate.clone();
            tokio::spawn(async move {
                gate.wait().await;
                authenticator.authenticate(&token).await
            })
        })
        .collect();
    for t in tasks {
        let caller = t.await.unwrap().expect("token with the rotated-in key");
        assert_eq!(caller.issuer.as_ref(), x.issuer());
    }
    let after = ctx.counters();
    assert_eq!(
        after.jwks_x - before.jwks_x,
        1,
        "one JWKS fetch for 1,000 tasks"
    );
    assert_eq!(after.cache.misses - before.cache.misses, 1000);
    assert_eq!(ctx.attacker.hits(), 0);
}

// An unknown kid refreshes at most once per `min_refresh_interval` (default 30 s): a flood of
// 1,000 concurrent forged kids right after start-up (the start-up load counts) causes no JWKS
// fetch at all, and every request is refused. HTTP/2 as above.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kid_flood_is_rate_limited() {
    let ctx = TestContext::start(Options {
        min_refresh_interval: gatehouse::verify::jwks::JwksConfig::default().min_refresh_interval,
        ..Options::default()
    })
    .await;
    let forger = TestKey::generate(Alg::ES256);
    let tokens: Vec<Auth> = (0..1000)
        .map(|i| {
            Auth::Bearer(
                ctx.x
                    .token()
                    .key(&forger)
                    .kid(&format!("forged-{i}"))
                    .sign(),
            )
        })
        .collect();
    let before = ctx.counters();
    let replies = ctx.lookup_all_over_h2(&tokens).await;
    let want = challenge::invalid_token(&ctx.metadata_url());
    for r in &replies {
        assert_eq!(r.status, 401);
        assert_eq!(r.www_authenticate.len(), 1);
        assert_eq!(challenge::parse(&r.www_authenticate[0]), Ok(want.clone()));
        assert_eq!(r.body, challenge::BODY_INVALID_TOKEN);
    }
    let after = ctx.counters();
    assert_eq!(
        after.jwks_x, before.jwks_x,
        "no JWKS fetch inside the interval"
    );
    assert_eq!(after.jwks_x, 1, "only the start-up load");
    let reasons = ctx.observer.take_reasons();
    assert_eq!(reasons.len(), 1000);
    assert!(reasons.iter().all(|r| *r == "invalid.kid_unknown"));
}

// Stale-if-error: with the JWKS endpoint down after start-up, known keys keep verifying, even
// after a failed refresh; a kid that could be a rotated-in key cannot be decided → 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_down_after_start_up_keeps_last_good_keys() {
    let ctx = TestContext::start(Options::default()).await;
    let x = &ctx.x;
    let echo = || Echo::new(x.issuer());
    let unpublished = TestKey::generate(Alg::ES256);
    x.set_jwks_down(true);
    let cases = [
        Case::ok(
            "known key while the JWKS is down",
            "E8",
            &x.valid_token(),
            echo(),
        ),
        Case::unavailable(
            "unknown kid while the JWKS is down",
            "E8",
            &x.token().key(&unpublished).sign(),
            "unavailable.keys",
        )
        .jwks(1),
        Case::ok(
            "known key after a failed refresh (stale keys kept)",
            "E8",
            &x.valid_token(),
            echo(),
        ),
    ];
    check_all(&ctx, &cases).await;
    assert!(ctx.gatehouse.authenticator().ready());
    x.set_jwks_down(false);
    check_all(
        &ctx,
        &[Case::invalid(
            &ctx,
            "unknown kid once the JWKS is back",
            "E8",
            &x.token().key(&unpublished).sign(),
            "invalid.kid_unknown",
        )
        .jwks(1)],
    )
    .await;
}

// Not ready until keys are loaded; tokens are answered 503 (not 401) meanwhile, and the keys
// are fetched on demand once the JWKS is reachable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_until_the_first_jwks_load() {
    let ctx = TestContext::start(Options {
        jwks_down_at_start: true,
        ..Options::default()
    })
    .await;
    let x = &ctx.x;
    assert!(!ctx.gatehouse.authenticator().ready());
    assert_eq!(x.jwks_fetches(), 1);
    check_all(
        &ctx,
        &[Case::unavailable(
            "valid token before any keys",
            "E8",
            &x.valid_token(),
            "unavailable.keys",
        )
        .jwks(1)],
    )
    .await;
    x.set_jwks_down(false);
    check_all(
        &ctx,
        &[Case::ok(
            "valid token once the JWKS is up",
            "E8",
            &x.valid_token(),
            Echo::new(x.issuer()),
        )
        .jwks(1)],
    )
    .await;
    assert!(ctx.gatehouse.authenticator().ready());
}

// A3–A12, A29, E19: the RFC 9728 document, fetched without a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_document() {
    let ctx = TestContext::start(Options {
        second_issuer: true,
        ..Options::default()
    })
    .await;
    let r = ctx.client().get(ctx.metadata_url()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let header = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(header("content-type").as_deref(), Some("application/json"));
    assert_eq!(
        header("cache-control").as_deref(),
        Some("public, max-age=3600")
    );
    assert!(header("www-authenticate").is_none());
    let doc: Value = r.json().await.unwrap();
    // A6: byte-equal to the resource the client asked for.
    assert_eq!(doc["resource"], Value::String(ctx.resource.clone()));
    assert_eq!(
        doc["authorization_servers"],
        serde_json::json!([ctx.x.issuer(), ctx.y().issuer()])
    );
    let pretty = serde_json::to_string_pretty(&doc).unwrap();
    insta::assert_snapshot!("metadata", redact(&ctx, &pretty));
}
