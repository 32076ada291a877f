//! Invariant: every request to the protected MCP endpoint is checked on its own — Host/Origin,
//! bearer token, verification, route scopes, tool scopes, session owner — and every refusal has
//! the exact status and challenge the MCP authorization spec asks for; an admitted request
//! reaches the tool with its `Caller` and without its token.
//!
//! These tests drive `Gatehouse::router` in front of a real rmcp `StreamableHttpService`, with a
//! fake `TokenVerifier` (a map token → result that counts its calls). Each names its
//! spec-requirements row.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use gatehouse::http::{CorsConfig, Gatehouse, GatehouseBuilder, SessionBindingConfig};
use gatehouse::verify::{BoxFuture, InvalidReason, UnavailableReason};
use gatehouse::{
    AccessToken, Caller, Principal, ResourceUrl, ScopeSet, TokenKind, TokenVerifier, VerifyError,
};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use rmcp::transport::streamable_http_server::StreamableHttpServerConfig;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

#[path = "common/mod.rs"]
mod common;

use common::{call_body, policy, service, stateless_config, tool_text};

const RESOURCE: &str = "https://mcp.example.com/mcp";
const HOST: &str = "mcp.example.com";
const RM: &str =
    r#"resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp""#;

// ---------------------------------------------------------------------------------------------
// Fixtures

fn caller(sub: &str, client: &str, scopes: &str) -> Caller {
    Caller::new(Principal {
        issuer: "https://auth.example.com".into(),
        subject: Some(sub.into()),
        client_id: Some(client.into()),
        scopes: ScopeSet::from_space_separated(scopes),
        audiences: vec![RESOURCE.into()],
        tenant: None,
        expires_at: SystemTime::now() + Duration::from_secs(600),
        kind: TokenKind::Jwt,
        claims: Default::default(),
    })
}

/// token → verdict, with a call counter.
struct FakeVerifier {
    verdicts: HashMap<&'static str, Result<Caller, VerifyError>>,
    calls: AtomicUsize,
}

impl TokenVerifier for FakeVerifier {
    fn verify<'a>(&'a self, token: &'a AccessToken) -> BoxFuture<'a, Result<Caller, VerifyError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let verdict = self
            .verdicts
            .get(token.expose())
            .cloned()
            .unwrap_or(Err(VerifyError::Invalid(InvalidReason::Malformed)));
        Box::pin(async move { verdict })
    }
}

fn verifier() -> Arc<FakeVerifier> {
    let mut v = HashMap::new();
    v.insert("reader", Ok(caller("alice", "app", "invoices:read")));
    v.insert(
        "reader-refreshed",
        Ok(caller("alice", "app", "invoices:read")),
    );
    v.insert("writer", Ok(caller("alice", "app", "invoices:write")));
    v.insert(
        "admin",
        Ok(caller("root", "app", "invoices:write audit:read")),
    );
    v.insert("bob", Ok(caller("bob", "app", "invoices:read")));
    v.insert("noscope", Ok(caller("carol", "app", "")));
    v.insert("expired", Err(VerifyError::Invalid(InvalidReason::Expired)));
    v.insert(
        "down",
        Err(VerifyError::Unavailable(UnavailableReason::KeysUnavailable)),
    );
    Arc::new(FakeVerifier {
        verdicts: v,
        calls: AtomicUsize::new(0),
    })
}

struct Setup {
    builder: gatehouse::http::GatehouseBuilder,
    verifier: Arc<FakeVerifier>,
}

fn setup(resource: &str) -> Setup {
    let verifier = verifier();
    let builder = Gatehouse::builder(ResourceUrl::parse(resource).unwrap())
        .authorization_servers(["https://auth.example.com"])
        .verifier(verifier.clone())
        .policy(policy(&[
            ("void_invoice", "invoices:write"),
            ("audit_log", "audit:read"),
        ]))
        .resource_name("Billing");
    Setup { builder, verifier }
}

fn stateless_app(gatehouse: &Gatehouse) -> Router {
    let config = gatehouse.configure_rmcp(stateless_config());
    gatehouse.router(service(NeverSessionManager::default(), config))
}

fn app() -> (Router, Arc<FakeVerifier>) {
    let s = setup(RESOURCE);
    let gatehouse = s.builder.build().unwrap();
    (stateless_app(&gatehouse), s.verifier)
}

/// The stateless app with the builder changed by `tweak`.
fn app_with(tweak: impl FnOnce(GatehouseBuilder) -> GatehouseBuilder) -> Router {
    stateless_app(&tweak(setup(RESOURCE).builder).build().unwrap())
}

/// What the tools answer to the callers of [`verifier`] (issuer, client and token never vary).
fn echo(tool: &str, sub: &str, scopes: &str) -> String {
    format!(
        "{tool} iss=https://auth.example.com sub={sub} client=app scopes={scopes} tenant=- \
         kind=Jwt saw_token=false"
    )
}

fn call_body_2026(tool: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{tool}","arguments":{{}},"_meta":{{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{{}}}}}}}}"#
    )
}

/// A `method` request to `uri` with the resource's host and the MCP content headers only.
fn mcp_request(method: http::Method, uri: &str) -> http::request::Builder {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("host", HOST)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
}

fn post(token: Option<&str>) -> http::request::Builder {
    let mut b =
        mcp_request(http::Method::POST, "/mcp").header("mcp-protocol-version", "2025-11-25");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b
}

/// A GET of the protected resource metadata with `host`.
fn metadata_request(host: &str) -> http::request::Builder {
    Request::get("/.well-known/oauth-protected-resource/mcp").header("host", host)
}

fn req(token: Option<&str>, body: String) -> Request<Body> {
    post(token).body(Body::from(body)).unwrap()
}

/// A `whoami` call with these `Authorization` header values, one header line each.
fn with_authorization(values: &[&str]) -> Request<Body> {
    let mut b = post(None);
    for v in values {
        b = b.header("authorization", *v);
    }
    b.body(Body::from(call_body("whoami"))).unwrap()
}

struct Reply {
    status: StatusCode,
    www: Option<String>,
    headers: http::HeaderMap,
    body: String,
}

async fn send(app: &Router, req: Request<Body>) -> Reply {
    let resp: Response<Body> = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let www = headers
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    Reply {
        status,
        www,
        headers,
        body,
    }
}

const NO_TOKEN_CHALLENGE: &str = r#"Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp", scope="invoices:read""#;

/// A14, A15: the answer to a request without (usable) credentials: 401 with the exact
/// no-error challenge, and the verifier never called.
async fn assert_no_credentials(request: Request<Body>) {
    let (app, v) = app();
    let r = send(&app, request).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.www.as_deref(), Some(NO_TOKEN_CHALLENGE));
    assert_eq!(v.calls.load(Ordering::SeqCst), 0);
}

// ---------------------------------------------------------------------------------------------
// Authentication

// A14, A15, E3: no token → 401 with the exact no-error challenge.
#[tokio::test]
async fn no_token_gets_401_with_exact_challenge() {
    let (app, v) = app();
    let r = send(&app, req(None, call_body("whoami"))).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.www.as_deref(), Some(NO_TOKEN_CHALLENGE));
    assert_eq!(
        r.body,
        r#"{"error":"unauthorized","error_description":"An access token is required"}"#
    );
    assert_eq!(v.calls.load(Ordering::SeqCst), 0);
}

// A24: query-string tokens are ignored (401, no error), never accepted.
#[tokio::test]
async fn query_token_is_ignored() {
    let request = mcp_request(http::Method::POST, "/mcp?access_token=reader")
        .body(Body::from(call_body("whoami")))
        .unwrap();
    assert_no_credentials(request).await;
}

// A24, E4: a form-body token without a header token is not a supported method: ignored (401).
#[tokio::test]
async fn form_body_token_alone_is_ignored() {
    let request = Request::post("/mcp")
        .header("host", HOST)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from("access_token=reader"))
        .unwrap();
    assert_no_credentials(request).await;
}

// RFC 6750 §3.1: another scheme is "no credentials" → 401 without error.
#[tokio::test]
async fn other_scheme_is_no_credentials() {
    assert_no_credentials(with_authorization(&["Basic YWxpY2U6c2VjcmV0"])).await;
}

// A24: the scheme is case-insensitive; A25/A35: the tool gets the Caller, not the token.
#[tokio::test]
async fn lowercase_bearer_is_accepted_and_tool_receives_caller() {
    let (app, _) = app();
    let r = send(&app, with_authorization(&["bearer reader"])).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        tool_text(&r.body),
        Ok(echo("whoami", "alice", "invoices:read"))
    );
}

// A20, E4: malformed credentials → 400 invalid_request, before any verification.
#[tokio::test]
async fn malformed_credentials_get_400_without_verification() {
    let (app, v) = app();
    let body = call_body("whoami");
    let invalid_request = format!(
        r#"Bearer error="invalid_request", error_description="The request is malformed", {RM}, scope="invoices:read""#
    );
    let huge = format!("Bearer {}", "a".repeat(100 * 1024));
    let cases: Vec<(&str, Request<Body>)> = vec![
        (
            "two Authorization headers",
            with_authorization(&["Bearer reader", "Bearer writer"]),
        ),
        ("empty token", with_authorization(&["Bearer "])),
        ("bad characters", with_authorization(&["Bearer a%b"])),
        ("100 KB token", with_authorization(&[huge.as_str()])),
        (
            "header + query token (E4)",
            mcp_request(http::Method::POST, "/mcp?access_token=reader")
                .header("authorization", "Bearer reader")
                .body(Body::from(body))
                .unwrap(),
        ),
        (
            "header + form body token (E4)",
            Request::post("/mcp")
                .header("host", HOST)
                .header(
                    "content-type",
                    "application/x-www-form-urlencoded; charset=utf-8",
                )
                .header("authorization", "Bearer reader")
                .body(Body::from("x=1&access_token=reader"))
                .unwrap(),
        ),
    ];
    for (name, request) in cases {
        let r = send(&app, request).await;
        assert_eq!(r.status, 400, "{name}");
        assert_eq!(r.www.as_deref(), Some(invalid_request.as_str()), "{name}");
        assert_eq!(
            r.body, r#"{"error":"invalid_request","error_description":"The request is malformed"}"#,
            "{name}"
        );
    }
    assert_eq!(
        v.calls.load(Ordering::SeqCst),
        0,
        "no verification for malformed requests"
    );
}

// A16, E2: invalid token → 401 invalid_token; reason never in the response.
#[tokio::test]
async fn invalid_token_gets_401_invalid_token() {
    let (app, v) = app();
    let r = send(&app, req(Some("expired"), call_body("whoami"))).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.www.as_deref(),
        Some(
            format!(
                r#"Bearer error="invalid_token", error_description="The access token is invalid", {RM}, scope="invoices:read""#
            )
            .as_str()
        )
    );
    assert!(!r.body.contains("expired"));
    let r = send(&app, req(Some("unknown-token"), call_body("whoami"))).await;
    assert_eq!(r.status, 401);
    assert_eq!(v.calls.load(Ordering::SeqCst), 2);
}

// Fail closed without a login storm: 503 + Retry-After, no WWW-Authenticate.
#[tokio::test]
async fn unavailable_verifier_gets_503_with_retry_after() {
    let (app, _) = app();
    let r = send(&app, req(Some("down"), call_body("whoami"))).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.headers.get("retry-after").unwrap(), "5");
    assert!(r.www.is_none());
}

// ---------------------------------------------------------------------------------------------
// Authorization

// A17, A18: missing route scope → 403 insufficient_scope naming the route scopes.
#[tokio::test]
async fn insufficient_route_scope_gets_403() {
    let (app, _) = app();
    let r = send(&app, req(Some("noscope"), call_body("whoami"))).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.www.as_deref(),
        Some(
            format!(
                r#"Bearer error="insufficient_scope", error_description="The access token does not grant the required scope", {RM}, scope="invoices:read""#
            )
            .as_str()
        )
    );
}

fn insufficient(scope: &str) -> String {
    format!(
        r#"Bearer error="insufficient_scope", error_description="The access token does not grant the required scope", {RM}, scope="{scope}""#
    )
}

// A17, A18, A19: a tool needing more scope → 403 with every scope it needs (via the body for a
// 2025-11-25 request); the hierarchy lets write stand in for read.
#[tokio::test]
async fn tool_scope_via_body() {
    let (app, _) = app();
    let r = send(&app, req(Some("reader"), call_body("void_invoice"))).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.www.as_deref(),
        Some(insufficient("invoices:write").as_str())
    );
    let r = send(&app, req(Some("writer"), call_body("void_invoice"))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        tool_text(&r.body),
        Ok(echo("void_invoice", "alice", "invoices:write"))
    );
    // A tool without its own rule needs only the route scopes.
    let r = send(&app, req(Some("reader"), call_body("whoami"))).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

fn post_2026(token: &str, method: &str, name: Option<&str>, body: String) -> Request<Body> {
    let mut b = mcp_request(http::Method::POST, "/mcp")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method)
        .header("authorization", format!("Bearer {token}"));
    if let Some(n) = name {
        b = b.header("mcp-name", n);
    }
    b.body(Body::from(body)).unwrap()
}

// A17, B17: for 2026-07-28 the tool comes from `Mcp-Name` (rmcp validates it against the body),
// and the body is not read: a body limit smaller than the body does not matter.
#[tokio::test]
async fn tool_scope_via_2026_headers_without_reading_the_body() {
    let s = setup(RESOURCE);
    let body = call_body_2026("void_invoice");
    let gatehouse = s.builder.max_body_bytes(body.len() / 2).build().unwrap();
    // rmcp gets a generous limit so that only Gatehouse's read could produce 413.
    let mcp = service(
        NeverSessionManager::default(),
        StreamableHttpServerConfig::default()
            .disable_allowed_hosts()
            .with_legacy_session_mode(false)
            .with_json_response(true),
    );
    let app = gatehouse.router(mcp);
    let r = send(
        &app,
        post_2026("reader", "tools/call", Some("void_invoice"), body.clone()),
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.www.as_deref(),
        Some(insufficient("invoices:write").as_str())
    );
    let r = send(
        &app,
        post_2026("writer", "tools/call", Some("void_invoice"), body.clone()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        tool_text(&r.body),
        Ok(echo("void_invoice", "alice", "invoices:write"))
    );
    // Base64-encoded Mcp-Name (SEP-2243 value encoding) is decoded before the policy sees it.
    let r = send(
        &app,
        post_2026(
            "reader",
            "tools/call",
            Some("=?base64?dm9pZF9pbnZvaWNl?="),
            body.clone(),
        ),
    )
    .await;
    assert_eq!(r.status, 403);
    // Headers that lie about the body are refused by rmcp (400 -32020), never executed.
    let r = send(
        &app,
        post_2026("reader", "tools/call", Some("whoami"), body),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("-32020"), "{}", r.body);
}

// Headers of older revisions are never trusted: the body decides.
#[tokio::test]
async fn pre_2026_headers_are_not_trusted() {
    let (app, _) = app();
    let body = call_body("void_invoice");
    let r = post(Some("reader"))
        .header("mcp-method", "tools/call")
        .header("mcp-name", "whoami")
        .body(Body::from(body))
        .unwrap();
    let r = send(&app, r).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.www.as_deref(),
        Some(insufficient("invoices:write").as_str())
    );
}

// Parser differentials fail closed: an ambiguous body needs every tool scope.
#[tokio::test]
async fn ambiguous_body_requires_all_tool_scopes() {
    let (app, _) = app();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","name":"void_invoice","arguments":{}}}"#.to_owned();
    let r = send(&app, req(Some("writer"), body.clone())).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.www.as_deref(),
        Some(insufficient("audit:read invoices:write").as_str())
    );
    // With every scope the request passes on to rmcp, which decides on its own.
    let r = send(&app, req(Some("admin"), body)).await;
    assert_ne!(r.status, 403);
}

// A body over max_body_bytes is refused with 413 when it must be read for tool policy.
#[tokio::test]
async fn oversized_body_gets_413() {
    let app = app_with(|b| b.max_body_bytes(64));
    let body = call_body("void_invoice");
    assert!(body.len() > 64);
    let r = send(&app, req(Some("writer"), body.clone())).await;
    assert_eq!(r.status, 413);
    // Also without Content-Length (streamed body).
    let stream = futures::stream::iter([Ok::<_, Infallible>(bytes::Bytes::from(body))]);
    let r = post(Some("writer"))
        .body(Body::from_stream(stream))
        .unwrap();
    let r = send(&app, r).await;
    assert_eq!(r.status, 413);

    // Requests whose body Gatehouse does not need to read (a 2026-07-28 call named in headers,
    // a tools/list) get the same JSON 413 when their declared length is over the limit, rather
    // than rmcp's plain-text one.
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}}}"#;
    assert!(list.len() > 64);
    let mut r = post_2026("reader", "tools/list", None, list.to_owned());
    r.headers_mut()
        .insert(http::header::CONTENT_LENGTH, list.len().into());
    let r = send(&app, r).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.headers["content-type"], "application/json");
    assert!(r.body.contains("\"error\""), "{}", r.body);

    // A body that fails mid-stream (client gone) is a 400, not a crash or a pass.
    let stream = futures::stream::iter([
        Ok(bytes::Bytes::from_static(b"{\"method\":")),
        Err(std::io::Error::other("reset")),
    ]);
    let default_app = app_with(|b| b);
    let r = post(Some("writer"))
        .body(Body::from_stream(stream))
        .unwrap();
    let r = send(&default_app, r).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        r#"{"error":"bad_request","error_description":"The request body could not be read"}"#
    );
}

// ---------------------------------------------------------------------------------------------
// Guard, metadata, CORS

// B2 / DNS rebinding: foreign Host → 421; foreign Origin → 403; both before authentication.
#[tokio::test]
async fn host_and_origin_guard() {
    let (app, v) = app();
    let body = call_body("whoami");
    let r = post(Some("reader"))
        .header("origin", "https://evil.example")
        .body(Body::from(body.clone()))
        .unwrap();
    let r = send(&app, r).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.body,
        r#"{"error":"forbidden","error_description":"Origin not allowed"}"#
    );

    let mut request = req(Some("reader"), body.clone());
    request
        .headers_mut()
        .insert("host", "evil.example".parse().unwrap());
    let r = send(&app, request).await;
    assert_eq!(r.status, 421);

    let mut request = req(Some("reader"), body.clone());
    request.headers_mut().remove("host");
    let r = send(&app, request).await;
    assert_eq!(r.status, 400);
    assert_eq!(v.calls.load(Ordering::SeqCst), 0);

    // The resource's own origin is allowed.
    let r = post(Some("reader"))
        .header("origin", "https://mcp.example.com")
        .body(Body::from(body))
        .unwrap();
    assert_eq!(send(&app, r).await.status, 200);
}

// Trusted proxies: X-Forwarded-Host counts only from a configured peer.
#[tokio::test]
async fn forwarded_host_from_trusted_proxy_only() {
    let app = app_with(|b| b.trusted_proxies(["10.0.0.0/8"]));
    let make = |peer: &str| {
        let mut r = req(Some("reader"), call_body("whoami"));
        r.headers_mut()
            .insert("host", "backend:8080".parse().unwrap());
        r.headers_mut()
            .insert("x-forwarded-host", HOST.parse().unwrap());
        r.headers_mut()
            .insert("x-forwarded-proto", "https".parse().unwrap());
        r.extensions_mut()
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        r
    };
    assert_eq!(send(&app, make("10.0.0.7:40000")).await.status, 200);
    assert_eq!(send(&app, make("203.0.113.9:40000")).await.status, 421);
}

// A3, A4, A6, A8, A9, A10, A11, E19: metadata without a token, exact bytes, cacheable.
#[tokio::test]
async fn metadata_is_served_without_token() {
    let explicit = app_with(|b| b.scopes_supported(["invoices:read", "offline_access"]));
    let r = send(
        &explicit,
        metadata_request(HOST).body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.headers["cache-control"], "public, max-age=3600");
    insta::assert_snapshot!(r.body, @r#"{"resource":"https://mcp.example.com/mcp","authorization_servers":["https://auth.example.com"],"scopes_supported":["invoices:read"],"bearer_methods_supported":["header"],"resource_name":"Billing"}"#);

    // Default scopes_supported: every scope the policy names.
    let (app, _) = app();
    let r = send(&app, metadata_request(HOST).body(Body::empty()).unwrap()).await;
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        v["scopes_supported"],
        serde_json::json!(["audit:read", "invoices:read", "invoices:write"])
    );
    assert_eq!(v["resource"], RESOURCE);

    // The guard applies to the metadata route too.
    let r = metadata_request("evil.example")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, r).await.status, 421);
}

// B22, C1: a method the endpoint does not serve is 405 with `Allow`, with or without a token and
// before any verification: a 401 would make a client drop a good token. Stateless serves POST
// only; with sessions GET and DELETE are served (and need a token like POST).
#[tokio::test]
async fn unserved_methods_are_405_before_authentication() {
    let stateless = setup(RESOURCE);
    let verifier = stateless.verifier.clone();
    let app = stateless_app(&stateless.builder.build().unwrap());
    let stateful = setup(RESOURCE);
    let gatehouse = stateful
        .builder
        .stateful_sessions(SessionBindingConfig::default())
        .build()
        .unwrap();
    let sessions = gatehouse.router(service(
        LocalSessionManager::default(),
        gatehouse.configure_rmcp(StreamableHttpServerConfig::default().with_sse_keep_alive(None)),
    ));
    let cases: [(&Router, http::Method, &str); 9] = [
        (&app, http::Method::GET, "POST"),
        (&app, http::Method::DELETE, "POST"),
        (&app, http::Method::PUT, "POST"),
        (&app, http::Method::PATCH, "POST"),
        (&app, http::Method::HEAD, "POST"),
        // Without CORS an OPTIONS request is not a preflight anyone answers.
        (&app, http::Method::OPTIONS, "POST"),
        (&sessions, http::Method::PUT, "GET, POST, DELETE"),
        (&sessions, http::Method::OPTIONS, "GET, POST, DELETE"),
        (&sessions, http::Method::HEAD, "GET, POST, DELETE"),
    ];
    for (app, method, allow) in cases {
        for token in [None, Some("reader"), Some("garbage")] {
            let mut b = mcp_request(method.clone(), "/mcp");
            if let Some(t) = token {
                b = b.header("authorization", format!("Bearer {t}"));
            }
            let r = send(app, b.body(Body::empty()).unwrap()).await;
            assert_eq!(r.status, 405, "{method} {token:?}");
            assert_eq!(r.headers["allow"], allow, "{method} {token:?}");
            assert_eq!(r.www, None, "{method} {token:?}");
            assert_eq!(r.headers["content-type"], "application/json");
        }
    }
    assert_eq!(verifier.calls.load(Ordering::SeqCst), 0);
    // A served method still needs a token.
    let r = send(
        &sessions,
        mcp_request(http::Method::GET, "/mcp")
            .header("accept", "text/event-stream")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 401);
}

// Browser clients: 401 exposes WWW-Authenticate; preflight allows the MCP headers.
#[tokio::test]
async fn cors_exposes_challenge_and_answers_preflight() {
    let app = app_with(|b| b.cors(CorsConfig::new(["https://app.example.com"])));

    let body = call_body("whoami");
    let r = post(None)
        .header("origin", "https://app.example.com")
        .body(Body::from(body))
        .unwrap();
    let r = send(&app, r).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    let exposed = r.headers["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for h in ["www-authenticate", "mcp-session-id", "mcp-protocol-version"] {
        assert!(exposed.contains(h), "{h} in {exposed}");
    }

    let r = Request::options("/mcp")
        .header("host", HOST)
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type, mcp-protocol-version",
        )
        .body(Body::empty())
        .unwrap();
    let r = send(&app, r).await;
    assert!(r.status.is_success(), "{}", r.status);
    let allowed = r.headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for h in [
        "authorization",
        "content-type",
        "mcp-protocol-version",
        "mcp-session-id",
        "mcp-method",
        "mcp-name",
        "last-event-id",
        "dpop",
    ] {
        assert!(allowed.contains(h), "{h} in {allowed}");
    }

    let r = metadata_request(HOST)
        .header("origin", "https://app.example.com")
        .body(Body::empty())
        .unwrap();
    let r = send(&app, r).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.headers["access-control-allow-origin"],
        "https://app.example.com"
    );

    // An origin outside the list is refused by the guard and gets no CORS grant.
    let body = call_body("whoami");
    let r = post(Some("reader"))
        .header("origin", "https://other.example")
        .body(Body::from(body))
        .unwrap();
    let r = send(&app, r).await;
    assert_eq!(r.status, 403);
    assert!(r.headers.get("access-control-allow-origin").is_none());
}

// ---------------------------------------------------------------------------------------------
// Sessions (stateful mode)

fn initialize(token: &str) -> Request<Body> {
    let body = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    mcp_request(http::Method::POST, "/mcp")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from(body))
        .unwrap()
}

fn in_session(token: &str, session: &str, method: http::Method, body: &str) -> Request<Body> {
    mcp_request(method, "/mcp")
        .header("mcp-protocol-version", "2025-06-18")
        .header("mcp-session-id", session)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from(body.to_owned()))
        .unwrap()
}

const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

// C9, C11, D4: a session belongs to the principal that created it; a refreshed token of the same
// principal keeps it; another principal gets the same 404 as an unknown session; DELETE unbinds.
#[tokio::test]
async fn sessions_are_bound_to_the_principal() {
    let s = setup(RESOURCE);
    let gatehouse = s
        .builder
        .stateful_sessions(SessionBindingConfig::default())
        .build()
        .unwrap();
    let mcp = service(
        LocalSessionManager::default(),
        gatehouse.configure_rmcp(StreamableHttpServerConfig::default().with_sse_keep_alive(None)),
    );
    let app = gatehouse.router(mcp);

    let resp = app.clone().oneshot(initialize("reader")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let session = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    drop(resp);

    let r = send(
        &app,
        in_session("reader", &session, http::Method::POST, INITIALIZED),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);

    // Another principal with a valid token: 404, byte-identical to an unknown session.
    let foreign = send(
        &app,
        in_session("bob", &session, http::Method::POST, INITIALIZED),
    )
    .await;
    let unknown = send(
        &app,
        in_session("reader", "no-such-session", http::Method::POST, INITIALIZED),
    )
    .await;
    assert_eq!(foreign.status, 404);
    assert_eq!(
        (foreign.status, &foreign.body),
        (unknown.status, &unknown.body)
    );
    assert_eq!(
        foreign.body,
        r#"{"error":"not_found","error_description":"Session not found"}"#
    );

    // The same principal after a token refresh keeps the session.
    let r = send(
        &app,
        in_session(
            "reader-refreshed",
            &session,
            http::Method::POST,
            INITIALIZED,
        ),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);

    // A repeated session header is refused like an unknown session.
    let mut twice = in_session("reader", &session, http::Method::POST, INITIALIZED);
    twice
        .headers_mut()
        .append("mcp-session-id", session.parse().unwrap());
    assert_eq!(send(&app, twice).await.status, 404);

    // DELETE by another principal is refused; by the owner it ends the binding.
    let r = send(&app, in_session("bob", &session, http::Method::DELETE, "")).await;
    assert_eq!(r.status, 404);
    let r = send(
        &app,
        in_session("reader", &session, http::Method::DELETE, ""),
    )
    .await;
    assert!(r.status.is_success(), "{}", r.status);
    let r = send(
        &app,
        in_session("reader", &session, http::Method::POST, INITIALIZED),
    )
    .await;
    assert_eq!(r.status, 404);
}

// ---------------------------------------------------------------------------------------------
// A25 on a real listener

async fn read_response(stream: &mut tokio::net::TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed early");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8(buf[..header_end].to_vec()).unwrap();
    let status: u16 = head[9..12].parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().unwrap())
        })
        .expect("content-length");
    while buf.len() < header_end + len {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed early");
        buf.extend_from_slice(&chunk[..n]);
    }
    (
        status,
        String::from_utf8(buf[header_end..header_end + len].to_vec()).unwrap(),
    )
}

// A25: a request without a token on a keep-alive connection that just carried a valid token is
// refused — nothing is inherited from the connection.
#[tokio::test]
async fn keep_alive_connection_does_not_carry_authorization() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let s = setup(&format!("http://127.0.0.1:{}/mcp", addr.port()));
    let gatehouse = s.builder.listen_addr(addr).build().unwrap();
    let app = stateless_app(&gatehouse);
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });

    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = call_body("whoami");
    let request = |auth: &str| {
        format!(
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2025-11-25\r\n\
             {auth}Content-Length: {}\r\n\r\n{body}",
            addr.port(),
            body.len()
        )
    };
    stream
        .write_all(request("Authorization: Bearer reader\r\n").as_bytes())
        .await
        .unwrap();
    let (status, body1) = read_response(&mut stream).await;
    assert_eq!(status, 200, "{body1}");
    assert_eq!(
        tool_text(&body1),
        Ok(echo("whoami", "alice", "invoices:read"))
    );

    stream.write_all(request("").as_bytes()).await.unwrap();
    let (status, body2) = read_response(&mut stream).await;
    assert_eq!(status, 401, "{body2}");
    server.abort();
}
