//! Invariant: with the default configuration, clients that share an address (an office behind
//! NAT, a proxy) cannot lock each other out. Whatever one of them sends:
//! - a valid token from the same address is admitted — new or cached;
//! - a request without a token gets its `401` challenge, and a malformed one its `400`;
//! - the work bad tokens cause at the authorization server stays bounded: introspection calls
//!   stop growing once the address is over its limit (the limit counts only tokens the
//!   authorization server had to refuse), and unknown key ids cost at most one JWKS refresh
//!   per cooldown — in between they are decided with the keys held and bar nobody (a key
//!   rotated in right after a refresh must not lock an office out of introspection);
//! - behind trusted proxies the limit follows the forwarded client address, and an untrusted
//!   peer's `X-Forwarded-For` is ignored.
//!
//! The stack is what `Settings::default()` builds (only the resource, the issuer and the
//! introspection client are set) in front of a real rmcp service, against the testkit's
//! authorization server, whose counters are the "expensive work". Requests go through the
//! router with the peer address a server would attach (`ConnectInfo`).

use std::net::SocketAddr;
use std::time::Instant;

use axum::body::Body;
use axum::extract::ConnectInfo;
use gatehouse::settings::Settings;
use gatehouse_testkit::{Alg, TestKey};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

#[path = "common/mod.rs"]
mod common;

use common::call_body;

const RESOURCE: &str = "https://mcp.example.com/mcp";
const HOST: &str = "mcp.example.com";
/// The default `rate_limits.failed_auth_per_address`: burst 20, then one a second.
const BURST: u64 = 20;
/// More bad tokens than the limit lets through, however slow the machine (see [`bound`]).
const FLOOD: usize = 120;

type Stack = common::IssuerStack;

/// The default settings protecting [`RESOURCE`] with a test issuer (JWT and introspection),
/// changed by `tweak`.
async fn stack(tweak: impl FnOnce(&mut Settings)) -> Stack {
    Stack::start(RESOURCE, tweak).await
}

struct Reply {
    status: StatusCode,
    www_authenticate: Option<String>,
    content_type: Option<String>,
    body: String,
}

impl Stack {
    /// A `tools/call` of `whoami` from TCP peer `peer`, with `token` (if any) and an
    /// `X-Forwarded-For` (if any).
    async fn call(&self, peer: &str, forwarded_for: Option<&str>, token: Option<&str>) -> Reply {
        let mut req = Request::post("/mcp")
            .header("host", HOST)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(xff) = forwarded_for {
            req = req.header("x-forwarded-for", xff);
        }
        let mut req = req.body(Body::from(call_body("whoami"))).unwrap();
        req.extensions_mut().insert(ConnectInfo(
            format!("{peer}:40000").parse::<SocketAddr>().unwrap(),
        ));
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let header = |n: &str| {
            resp.headers()
                .get(n)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let (www_authenticate, content_type) = (header("www-authenticate"), header("content-type"));
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            www_authenticate,
            content_type,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// A new opaque token the authorization server answers `active: true` for.
    fn valid_opaque(&self, name: &str) -> String {
        let token = format!("opaque-valid-{name}");
        self.issuer
            .set_introspection(&token, self.issuer.active_introspection(300));
        token
    }

    /// Sends [`FLOOD`] distinct opaque tokens the authorization server does not know, each one
    /// needing an introspection call; returns the statuses.
    async fn flood_opaque(&self, peer: &str, forwarded_for: Option<&str>, tag: &str) -> Vec<u16> {
        let mut statuses = Vec::with_capacity(FLOOD);
        for i in 0..FLOOD {
            let bad = format!("opaque-bad-{tag}-{i}");
            statuses.push(
                self.call(peer, forwarded_for, Some(&bad))
                    .await
                    .status
                    .as_u16(),
            );
        }
        statuses
    }
}

/// The most refused tokens the default limit lets reach the authorization server within
/// `since`: the burst plus the refill (one a second). Computed from the clock so that a slow
/// machine cannot fail the test; [`FLOOD`] is far above it for any run under a minute and a half.
fn bound(since: Instant) -> u64 {
    BURST + since.elapsed().as_secs() + 1
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|&&s| s == status).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_cannot_lock_out_the_others_behind_its_address() {
    let s = stack(|_| {}).await;
    let office = "192.0.2.10";
    let cached = s.issuer.valid_token();
    assert_eq!(s.call(office, None, Some(&cached)).await.status, 200);
    let cached_opaque = s.valid_opaque("office");
    assert_eq!(s.call(office, None, Some(&cached_opaque)).await.status, 200);

    // One client floods bad opaque tokens: each costs an introspection call until the address
    // is over its limit, then none.
    let started = Instant::now();
    let calls_before = s.issuer.introspection_calls();
    let statuses = s.flood_opaque(office, None, "office").await;
    let calls = s.issuer.introspection_calls() - calls_before;
    let bound = bound(started);
    assert!(
        calls <= bound,
        "{calls} introspection calls for {FLOOD} bad tokens (bound {bound})"
    );
    assert_eq!(count(&statuses, 401) as u64, calls, "{statuses:?}");
    assert_eq!(
        count(&statuses, 429),
        FLOOD - calls as usize,
        "{statuses:?}"
    );

    // The office's other clients: a valid JWT never seen before, and the cached one, are
    // admitted; neither reaches the authorization server again for its keys.
    let jwks_before = s.issuer.jwks_fetches();
    let fresh = s.issuer.token().subject("colleague").sign();
    let r = s.call(office, None, Some(&fresh)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(s.call(office, None, Some(&cached)).await.status, 200);
    assert_eq!(s.issuer.jwks_fetches(), jwks_before);
    // A valid opaque token seen before the flood is cached: admitted without introspection.
    let calls_before = s.issuer.introspection_calls();
    assert_eq!(s.call(office, None, Some(&cached_opaque)).await.status, 200);
    assert_eq!(s.issuer.introspection_calls(), calls_before);
    // The one thing the limit withholds: an opaque token first seen while the address is over
    // its limit needs the introspection call, so it waits (429 + Retry-After) like the bad ones.
    let late = s.valid_opaque("late");
    let r = s.call(office, None, Some(&late)).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(s.issuer.introspection_calls(), calls_before);

    // A client starting discovery gets its challenge; a malformed header its 400.
    let r = s.call(office, None, None).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let challenge = r.www_authenticate.expect("challenge");
    assert!(
        challenge.starts_with("Bearer resource_metadata="),
        "{challenge}"
    );
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    assert_eq!(s.call(office, None, Some("bad token")).await.status, 400);

    // Forged JWTs with a known key are decided locally: 401, never 429, whoever sent them.
    let forged = s.issuer.token().sign_with_bad_signature();
    assert_eq!(s.call(office, None, Some(&forged)).await.status, 401);

    // Another address is unaffected: its bad tokens are still introspected and refused.
    let calls_before = s.issuer.introspection_calls();
    let r = s
        .call("198.51.100.20", None, Some("opaque-bad-elsewhere"))
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(s.issuer.introspection_calls(), calls_before + 1);
    let valid = s.valid_opaque("elsewhere");
    assert_eq!(
        s.call("198.51.100.20", None, Some(&valid)).await.status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_key_ids_cost_the_issuer_one_refresh_per_cooldown_and_bar_nobody() {
    let s = stack(|_| {}).await;
    let office = "192.0.2.11";
    let rogue = TestKey::generate(Alg::ES256);
    let jwks_before = s.issuer.jwks_fetches();
    let mut statuses = Vec::new();
    for i in 0..FLOOD {
        // A new kid each time, as from clients of an issuer that rotated in a key right after
        // our last fetch (or from a forger).
        let token = s
            .issuer
            .token()
            .key(&rogue.clone().with_kid(format!("rogue-{i}")))
            .sign();
        statuses.push(s.call(office, None, Some(&token)).await.status.as_u16());
    }
    // The JWKS cache spaces refreshes (30 s by default): none here, right after start-up. So
    // every one is decided with the keys held, at no cost to the issuer …
    assert_eq!(s.issuer.jwks_fetches(), jwks_before);
    assert_eq!(count(&statuses, 401), FLOOD, "{statuses:?}");
    // … and bars nothing: the same address's new opaque token is still introspected and served,
    // and its JWTs pass.
    let calls_before = s.issuer.introspection_calls();
    let valid = s.valid_opaque("after-unknown-kids");
    let r = s.call(office, None, Some(&valid)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(s.issuer.introspection_calls(), calls_before + 1);
    let r = s.call(office, None, Some(&s.issuer.valid_token())).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_trusted_proxies_each_forwarded_client_has_its_own_limit() {
    let s = stack(|c| c.server.trusted_proxies = vec!["10.0.0.0/8".into()]).await;
    let proxy = "10.0.0.1";

    // Client A, through the proxy, goes over its limit.
    let statuses = s.flood_opaque(proxy, Some("198.51.100.1"), "a").await;
    assert!(count(&statuses, 429) > 0, "{statuses:?}");
    let r = s
        .call(proxy, Some("198.51.100.1"), Some("opaque-bad-a-more"))
        .await;
    assert_eq!(r.status, 429);
    // A cannot escape by writing another address to the left of its own: the proxy appended
    // A's real address last, and that is the one believed.
    let r = s
        .call(
            proxy,
            Some("203.0.113.77, 198.51.100.1"),
            Some("opaque-bad-a-spoof"),
        )
        .await;
    assert_eq!(r.status, 429);

    // Client B, through the same proxy: its bad token is still introspected (401, not 429) and
    // its new valid opaque token admitted.
    let calls_before = s.issuer.introspection_calls();
    let r = s
        .call(proxy, Some("198.51.100.2"), Some("opaque-bad-b"))
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(s.issuer.introspection_calls(), calls_before + 1);
    let valid = s.valid_opaque("b");
    let r = s.call(proxy, Some("198.51.100.2"), Some(&valid)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Through two trusted hops, B is still B.
    let r = s
        .call(
            proxy,
            Some("198.51.100.2, 10.0.0.5"),
            Some("opaque-bad-b-2"),
        )
        .await;
    assert_eq!(r.status, 401);

    // An untrusted peer's X-Forwarded-For is ignored: it is keyed on its own address, whatever
    // it claims, so claiming a fresh address each time does not escape the limit.
    let direct = "192.0.2.99";
    let mut statuses = Vec::new();
    for i in 0..FLOOD {
        let claimed = format!("198.51.100.{}", 100 + i % 100);
        let bad = format!("opaque-bad-direct-{i}");
        statuses.push(
            s.call(direct, Some(&claimed), Some(&bad))
                .await
                .status
                .as_u16(),
        );
    }
    assert!(count(&statuses, 429) > 0, "{statuses:?}");
    let r = s
        .call(direct, Some("198.51.100.3"), Some("opaque-bad-direct-x"))
        .await;
    assert_eq!(r.status, 429);
    // … and it does not borrow the limit of the client it names: B is still served.
    let r = s
        .call(proxy, Some("198.51.100.2"), Some("opaque-bad-b-3"))
        .await;
    assert_eq!(r.status, 401);
}
