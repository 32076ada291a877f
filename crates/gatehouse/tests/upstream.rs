//! Invariant: a tool reaches another API only with a credential minted for that API — never the
//! client's token — and only at the destination configuration names.
//!
//! Real HTTP on 127.0.0.1: the testkit issues the inbound tokens; a token endpoint written here
//! does RFC 8693 token exchange and records every request; a "ledger" API records the
//! `Authorization` it receives; an "evil" server counts any request at all. Checked: the ledger
//! sees the exchanged token and never the inbound one; the exchange sends the inbound token as
//! `subject_token` with the ledger as `resource`; one user's exchanged token is never used for
//! another; a cached token is reused and an expired one is not; refusals and outages of the
//! authorization server are tool errors (never a 401); a URL outside the upstream and a redirect
//! out of it are refused before a credential leaves; a 401 from the upstream fetches a fresh token
//! once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{any, post};
use gatehouse::upstream::{
    CredentialMode, TokenEndpointClient, UpstreamAccess, UpstreamConfig, Upstreams,
};
use gatehouse::verify::fetch::FetchConfig;
use gatehouse::verify::introspection::ClientSecret;
use gatehouse::{Gatehouse, ResourceUrl};
use gatehouse_testkit::TestAuthServer;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use serde_json::{Value, json};

// --- the authorization server's token endpoint ---------------------------------------------

#[derive(Default)]
struct TokenEndpoint {
    /// Every form received.
    requests: Mutex<Vec<HashMap<String, String>>>,
    /// `ok`, `refuse`, `down`.
    mode: Mutex<&'static str>,
    expires_in: AtomicU64,
    issued: AtomicUsize,
}

async fn token(
    State(te): State<Arc<TokenEndpoint>>,
    headers: HeaderMap,
    body: String,
) -> axum::response::Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let authenticated = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Basic "));
    te.requests.lock().unwrap().push(form.clone());
    match *te.mode.lock().unwrap() {
        "refuse" => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": "invalid_target"})),
            )
                .into_response();
        }
        "down" => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
        _ => {}
    }
    if !authenticated {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    // The exchanged token names whose it is (the subject token's `sub`), for the assertions.
    let sub = form
        .get("subject_token")
        .and_then(|t| t.split('.').nth(1))
        .and_then(|p| {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|c| c["sub"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "service".into());
    let n = te.issued.fetch_add(1, Ordering::SeqCst);
    axum::Json(json!({
        "access_token": format!("exchanged-{sub}-{n}"),
        "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "token_type": "Bearer",
        "expires_in": te.expires_in.load(Ordering::SeqCst),
    }))
    .into_response()
}

// --- the upstream API and an attacker -------------------------------------------------------

#[derive(Default)]
struct Ledger {
    /// (path, Authorization) of every request.
    seen: Mutex<Vec<(String, String)>>,
    /// Answer 401 to this many requests first.
    unauthorized: AtomicUsize,
}

async fn ledger(
    State(l): State<Arc<Ledger>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> axum::response::Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    l.seen.lock().unwrap().push((uri.path().to_owned(), auth));
    if uri.path().ends_with("/bounce") {
        let to = headers["x-bounce-to"].to_str().unwrap().to_owned();
        return Redirect::temporary(&to).into_response();
    }
    if l.unauthorized
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    StatusCode::CREATED.into_response()
}

async fn serve(router: Router) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, router).await });
    base
}

// --- the MCP server: one tool that posts to the ledger at a path its argument names ----------

#[derive(serde::Deserialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
struct NoteParams {
    path: String,
    #[serde(default)]
    bounce_to: Option<String>,
}

#[derive(Clone)]
struct Tools {
    tool_router: Arc<ToolRouter<Self>>,
}

#[tool_router]
impl Tools {
    #[tool(description = "Posts a note to the ledger")]
    async fn note(
        &self,
        upstreams: UpstreamAccess,
        Parameters(p): Parameters<NoteParams>,
    ) -> String {
        let client = match upstreams.client("ledger") {
            Ok(c) => c,
            Err(e) => return format!("error {e}"),
        };
        let bounce = p.bounce_to.unwrap_or_default();
        let headers: Vec<(&str, &str)> = if bounce.is_empty() {
            vec![]
        } else {
            vec![("x-bounce-to", &bounce)]
        };
        match client
            .send(
                http::Method::POST,
                &p.path,
                Some(&json!({"note": 1})),
                &headers,
            )
            .await
        {
            Ok(r) => format!("status {}", r.status().as_u16()),
            Err(e) => format!("error {e}"),
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Tools {}

struct World {
    issuer: TestAuthServer,
    te: Arc<TokenEndpoint>,
    ledger: Arc<Ledger>,
    ledger_base: String,
    evil_hits: Arc<AtomicUsize>,
    evil_base: String,
    mcp: String,
    client: reqwest::Client,
}

async fn world(mode: fn(TokenEndpointClient) -> CredentialMode) -> World {
    let issuer = TestAuthServer::start().await;
    let te = Arc::new(TokenEndpoint::default());
    *te.mode.lock().unwrap() = "ok";
    te.expires_in.store(300, Ordering::SeqCst);
    let as_base = serve(
        Router::new()
            .route("/token", post(token))
            .with_state(te.clone()),
    )
    .await;
    let ledger_state = Arc::new(Ledger::default());
    let ledger_base = serve(
        Router::new()
            .fallback(any(ledger))
            .with_state(ledger_state.clone()),
    )
    .await;
    let evil_hits = Arc::new(AtomicUsize::new(0));
    let hits = evil_hits.clone();
    let evil_base = serve(Router::new().fallback(any(move || {
        hits.fetch_add(1, Ordering::SeqCst);
        async { StatusCode::OK }
    })))
    .await;

    let upstreams = Upstreams::new(
        vec![UpstreamConfig {
            name: "ledger".into(),
            base_url: format!("{ledger_base}/api").parse().unwrap(),
            audience: None,
            resource: None,
            scopes: vec!["ledger:write".into()],
            mode: mode(TokenEndpointClient {
                token_endpoint: format!("{as_base}/token").parse().unwrap(),
                client_id: "billing".into(),
                client_secret: ClientSecret::new("s"),
            }),
        }],
        FetchConfig::default(),
    )
    .unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mcp = format!("http://{}/mcp", listener.local_addr().unwrap());
    issuer.set_audience(&mcp);
    let gatehouse = Gatehouse::builder(ResourceUrl::parse(&mcp).unwrap())
        .jwt_issuer(issuer.issuer())
        .upstreams(upstreams)
        .start()
        .await
        .unwrap();
    let tools = Tools {
        tool_router: Arc::new(Tools::tool_router()),
    };
    let app = gatehouse.mount(move || tools.clone());
    tokio::spawn(gatehouse::serve(listener, app, std::future::pending()));
    World {
        issuer,
        te,
        ledger: ledger_state,
        ledger_base,
        evil_hits,
        evil_base,
        mcp,
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
    }
}

impl World {
    async fn note(&self, token: &str, args: Value) -> (u16, String) {
        let resp = self
            .client
            .post(&self.mcp)
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                          "params": {"name": "note", "arguments": args}}))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let text = body["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        (status, text)
    }

    fn ledger_auth(&self) -> Vec<String> {
        self.ledger
            .seen
            .lock()
            .unwrap()
            .iter()
            .map(|(_, a)| a.clone())
            .collect()
    }

    fn exchanges(&self) -> Vec<HashMap<String, String>> {
        self.te.requests.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn the_upstream_gets_its_own_token_never_the_callers() {
    let w = world(CredentialMode::TokenExchange).await;
    let alice = w.issuer.token().subject("alice").sign();
    let bob = w.issuer.token().subject("bob").sign();

    assert_eq!(
        w.note(&alice, json!({"path": "notes"})).await,
        (200, "status 201".into())
    );
    assert_eq!(
        w.note(&alice, json!({"path": "notes"})).await,
        (200, "status 201".into())
    );
    assert_eq!(
        w.note(&bob, json!({"path": "notes"})).await,
        (200, "status 201".into())
    );

    // The ledger saw exchanged tokens only, per user, the cached one reused for alice.
    assert_eq!(
        w.ledger_auth(),
        [
            "Bearer exchanged-alice-0",
            "Bearer exchanged-alice-0",
            "Bearer exchanged-bob-1"
        ]
    );
    for (_, auth) in w.ledger.seen.lock().unwrap().iter() {
        assert!(
            !auth.contains(&alice) && !auth.contains(&bob),
            "inbound token reached the ledger"
        );
    }
    // Two exchanges (alice's second call hit the cache), each with the caller's token as
    // subject, the ledger as resource and the configured scopes.
    let ex = w.exchanges();
    assert_eq!(ex.len(), 2);
    assert_eq!(
        ex[0]["grant_type"],
        "urn:ietf:params:oauth:grant-type:token-exchange"
    );
    assert_eq!(ex[0]["subject_token"], alice);
    assert_eq!(
        ex[0]["subject_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    assert_eq!(ex[0]["resource"], format!("{}/api", w.ledger_base));
    assert_eq!(ex[0]["scope"], "ledger:write");
    assert_eq!(ex[1]["subject_token"], bob);
}

#[tokio::test]
async fn an_expired_upstream_token_is_not_reused() {
    let w = world(CredentialMode::TokenExchange).await;
    // `expires_in: 0`: every call needs a new one.
    w.te.expires_in.store(0, Ordering::SeqCst);
    let alice = w.issuer.token().subject("alice").sign();
    w.note(&alice, json!({"path": "notes"})).await;
    w.note(&alice, json!({"path": "notes"})).await;
    assert_eq!(w.exchanges().len(), 2);
    assert_eq!(
        w.ledger_auth(),
        ["Bearer exchanged-alice-0", "Bearer exchanged-alice-1"]
    );
}

#[tokio::test]
async fn refusals_and_outages_are_tool_errors_never_401() {
    let w = world(CredentialMode::TokenExchange).await;
    let alice = w.issuer.token().subject("alice").sign();
    *w.te.mode.lock().unwrap() = "refuse";
    let (status, text) = w.note(&alice, json!({"path": "notes"})).await;
    assert_eq!(status, 200);
    assert!(
        text.contains("refused") && text.contains("invalid_target"),
        "{text}"
    );
    *w.te.mode.lock().unwrap() = "down";
    let (status, text) = w.note(&alice, json!({"path": "notes"})).await;
    assert_eq!(status, 200);
    assert!(text.contains("unavailable"), "{text}");
    assert!(
        w.ledger_auth().is_empty(),
        "nothing reached the ledger without a token"
    );
    // Errors are not cached: the next call after recovery succeeds.
    *w.te.mode.lock().unwrap() = "ok";
    assert_eq!(
        w.note(&alice, json!({"path": "notes"})).await,
        (200, "status 201".into())
    );
}

#[tokio::test]
async fn a_credential_never_leaves_the_upstreams_base() {
    let w = world(CredentialMode::TokenExchange).await;
    let alice = w.issuer.token().subject("alice").sign();
    let evil = w.evil_base.clone();
    let authority = evil.trim_start_matches("http://").to_owned();
    for path in [
        format!("{evil}/steal"),
        format!("//{authority}/steal"),
        "../steal".to_owned(),
        "..%2f..%2fsteal".to_owned(),
        format!("{}/api-admin/x", w.ledger_base),
    ] {
        let (status, text) = w.note(&alice, json!({"path": path})).await;
        assert_eq!(status, 200);
        if text != "status 201" {
            assert!(text.contains("outside the upstream"), "{path}: {text}");
        } else {
            // An encoded `..` is a harmless path segment under the base.
            let seen = w.ledger.seen.lock().unwrap();
            assert!(
                seen.last().unwrap().0.starts_with("/api/"),
                "{path}: {seen:?}"
            );
        }
    }
    // A redirect out of the base is refused, not followed.
    let (status, text) = w
        .note(
            &alice,
            json!({"path": "bounce", "bounce_to": format!("{evil}/steal")}),
        )
        .await;
    assert_eq!(status, 200);
    assert!(text.starts_with("error"), "{text}");
    assert_eq!(
        w.evil_hits.load(Ordering::SeqCst),
        0,
        "nothing reached another server"
    );
}

#[tokio::test]
async fn a_401_from_the_upstream_fetches_a_fresh_token_once() {
    let w = world(CredentialMode::TokenExchange).await;
    let alice = w.issuer.token().subject("alice").sign();
    w.ledger.unauthorized.store(1, Ordering::SeqCst);
    assert_eq!(
        w.note(&alice, json!({"path": "notes"})).await,
        (200, "status 201".into())
    );
    assert_eq!(
        w.ledger_auth(),
        ["Bearer exchanged-alice-0", "Bearer exchanged-alice-1"]
    );
    // Twice in a row: the second 401 is the tool's answer, no loop.
    w.ledger.unauthorized.store(5, Ordering::SeqCst);
    assert_eq!(
        w.note(&alice, json!({"path": "notes"})).await,
        (200, "status 401".into())
    );
    assert_eq!(w.exchanges().len(), 3);
}

#[tokio::test]
async fn client_credentials_are_the_services_own_and_shared_across_users() {
    let w = world(CredentialMode::ClientCredentials).await;
    let alice = w.issuer.token().subject("alice").sign();
    let bob = w.issuer.token().subject("bob").sign();
    w.note(&alice, json!({"path": "notes"})).await;
    w.note(&bob, json!({"path": "notes"})).await;
    let ex = w.exchanges();
    assert_eq!(ex.len(), 1);
    assert_eq!(ex[0]["grant_type"], "client_credentials");
    assert!(
        !ex[0].contains_key("subject_token"),
        "no user token leaves for client credentials"
    );
    assert_eq!(
        w.ledger_auth(),
        ["Bearer exchanged-service-0", "Bearer exchanged-service-0"]
    );
}
