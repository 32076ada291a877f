//! Invariant: behind the gateway, a Streamable HTTP MCP server receives the gateway's own
//! credential for it — never the client's token, never any header the client sent — at the URL
//! the configuration names; each principal has its own MCP session with it; and an upstream that
//! goes away is reconnected to once it is back.
//!
//! The upstream is a real rmcp Streamable HTTP server on 127.0.0.1 that reports, from each tool
//! call, the session it belongs to and the headers it arrived with.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use gatehouse::policy::UnnamedTools;
use gatehouse::{AccessToken, Gatehouse, ResourceUrl, TokenVerifier};
use gatehouse_gateway::{GatewayHandler, HttpTarget, Secret, UpstreamServer};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

const RESOURCE: &str = "https://gw.example.com/mcp";

mod common;

fn users() -> common::Users {
    common::Users::new(
        RESOURCE,
        &[("alice-token", "alice", "mcp"), ("bob-token", "bob", "mcp")],
    )
}
const UPSTREAM_KEY: &str = "upstream-api-key-7";

/// The upstream: `seen` answers with the MCP session id and the request's headers.
#[derive(Clone)]
struct Upstream {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Upstream {
    #[tool(description = "The session and headers this call arrived with")]
    fn seen(&self, context: RequestContext<RoleServer>) -> String {
        let parts = context.extensions.get::<http::request::Parts>();
        let headers: serde_json::Map<String, Value> = parts
            .map(|p| {
                p.headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or("?"))))
                    .collect()
            })
            .unwrap_or_default();
        json!({ "headers": headers }).to_string()
    }

    #[tool(description = "A tool the gateway policy hides")]
    fn admin_reset(&self) -> String {
        "reset".into()
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Upstream {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// Refuses every request without the upstream's own key (as a real API would), and every
/// request once the key is revoked.
async fn require_key(
    axum::extract::State(revoked): axum::extract::State<Arc<AtomicBool>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let ok = !revoked.load(Ordering::SeqCst)
        && req
            .headers()
            .get("authorization")
            .is_some_and(|v| v == format!("Bearer {UPSTREAM_KEY}").as_str());
    if !ok {
        return (
            http::StatusCode::UNAUTHORIZED,
            [("www-authenticate", r#"Bearer error="invalid_token""#)],
            "no",
        )
            .into_response();
    }
    next.run(req).await
}

/// Serves the upstream on `listener` until `stop`.
fn serve_upstream(listener: TcpListener, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    serve_revocable(listener, stop, Arc::default())
}

fn serve_revocable(
    listener: TcpListener,
    stop: CancellationToken,
    revoked: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    let service = StreamableHttpService::new(
        || {
            Ok(Upstream {
                tool_router: Upstream::tool_router(),
            })
        },
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default().with_cancellation_token(stop.child_token()),
    );
    let app = Router::new()
        .route_service("/mcp", service)
        .layer(axum::middleware::from_fn_with_state(revoked, require_key));
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
            .unwrap();
    })
}

fn target(url: &str, key: &str) -> UpstreamServer {
    UpstreamServer::http(HttpTarget {
        credential: Some(("authorization".into(), Secret::new(key))),
        ..HttpTarget::new(url)
    })
}

async fn gateway(upstream: UpstreamServer) -> Router {
    gateway_and_handler(upstream).await.0
}

async fn gateway_and_handler(upstream: UpstreamServer) -> (Router, GatewayHandler) {
    let handler = GatewayHandler::start(upstream)
        .await
        .expect("upstream reachable");
    let gatehouse = Gatehouse::builder(ResourceUrl::parse(RESOURCE).unwrap())
        .authorization_servers(["https://auth.example.com"])
        .verifier(Arc::new(users()))
        .tool_scopes("seen", Vec::<String>::new())
        .unnamed_tools(UnnamedTools::Deny)
        .build()
        .unwrap();
    // The application's mounting: `tools/call`s take the forwarding path.
    (handler.mount(&gatehouse, true), handler)
}

/// `seen` through the gateway with `token` and an extra inbound header: the upstream's view
/// (or the refusal body).
async fn seen(app: &Router, token: &str) -> (u16, Value) {
    let (status, _, v) = seen_with_headers(app, token).await;
    (status, v)
}

async fn seen_with_headers(app: &Router, token: &str) -> (u16, http::HeaderMap, Value) {
    let req = common::mcp_post(
        token,
        json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"seen","arguments":{}}})
            .to_string(),
        &[
            ("x-inbound-secret", "client-side-value"),
            ("cookie", "session=client-cookie"),
        ],
    );
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = common::last_message(resp).await;
    let view = body["result"]["content"][0]["text"]
        .as_str()
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(body);
    (status, headers, view)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_gets_its_own_credential_and_a_session_per_principal() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let url = format!("http://{addr}/mcp");
    let stop = CancellationToken::new();
    let server = serve_upstream(listener, stop.clone());
    let app = gateway(target(&url, UPSTREAM_KEY)).await;

    let (status, answer_headers, alice) = seen_with_headers(&app, "alice-token").await;
    assert_eq!(status, 200, "{alice}");
    // The forwarding path: the upstream's SSE answer relayed as it came (rmcp's path, without
    // sessions, answers in JSON).
    assert_eq!(answer_headers["content-type"], "text/event-stream");
    let h = &alice["headers"];
    assert_eq!(h["authorization"], format!("Bearer {UPSTREAM_KEY}"));
    let text = alice.to_string();
    for leaked in ["alice-token", "client-side-value", "client-cookie"] {
        assert!(
            !text.contains(leaked),
            "{leaked} reached the upstream: {text}"
        );
    }
    let session = |v: &Value| v["headers"]["mcp-session-id"].as_str().unwrap().to_owned();
    let (_, again) = seen(&app, "alice-token").await;
    assert_eq!(
        session(&again),
        session(&alice),
        "one session per principal"
    );
    let (_, bob) = seen(&app, "bob-token").await;
    assert_ne!(session(&bob), session(&alice));

    // The upstream goes away: 503 + Retry-After (never a 401 to the client); when it is back on
    // the same address, the next call opens a new session.
    stop.cancel();
    server.await.unwrap();
    let (status, headers, down) = seen_with_headers(&app, "alice-token").await;
    assert_eq!(status, 503, "{down}");
    assert_eq!(down["error"], "temporarily_unavailable");
    assert_eq!(headers["retry-after"], "1");
    let listener = TcpListener::bind(addr).await.unwrap();
    let stop = CancellationToken::new();
    let server = serve_upstream(listener, stop.clone());
    let back = seen(&app, "alice-token").await;
    assert_eq!(back.0, 200);
    assert_eq!(
        back.1["headers"]["authorization"],
        format!("Bearer {UPSTREAM_KEY}"),
        "{}",
        back.1
    );
    assert_ne!(session(&back.1), session(&alice));
    stop.cancel();
    server.await.unwrap();
}

#[tokio::test]
async fn a_wrong_upstream_credential_fails_at_start_up() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let server = serve_upstream(listener, stop.clone());
    let e = GatewayHandler::start(target(&url, "wrong"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, gatehouse_gateway::PoolError::Refused),
        "a refusal is told apart from an upstream that is down: {e}"
    );
    stop.cancel();
    server.await.unwrap();
}

// Repeated failures back off (the first restart is immediate, then 1 s, doubling): a dead
// upstream is not dialled on every request; each refused request still gets 503 + Retry-After.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_upstream_is_retried_with_backoff() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let server = serve_upstream(listener, stop.clone());
    let (app, handler) =
        gateway_and_handler(target(&format!("http://{addr}/mcp"), UPSTREAM_KEY)).await;
    assert_eq!(seen(&app, "alice-token").await.0, 200);
    stop.cancel();
    server.await.unwrap();

    // The session dies (immediate retry allowed), the reconnection fails (1 s backoff), and
    // then the pool refuses without dialling until the backoff has passed.
    assert_eq!(seen(&app, "alice-token").await.0, 503);
    assert_eq!(seen(&app, "alice-token").await.0, 503);
    let (status, headers, _) = seen_with_headers(&app, "alice-token").await;
    assert_eq!(
        (status, &headers["retry-after"]),
        (503, &http::HeaderValue::from_static("1"))
    );
    let alice = users()
        .verify(&AccessToken::new("alice-token"))
        .await
        .unwrap();
    match handler.pool().get(&alice).await {
        Err(gatehouse_gateway::PoolError::Backoff { retry_after }) => {
            assert!(retry_after <= Duration::from_secs(1), "{retry_after:?}")
        }
        other => panic!("expected a backoff, got {other:?}"),
    }
    // Other principals are not held back by alice's failures.
    let bob = users()
        .verify(&AccessToken::new("bob-token"))
        .await
        .unwrap();
    assert!(matches!(
        handler.pool().get(&bob).await,
        Err(gatehouse_gateway::PoolError::Start(_))
    ));
    // Readiness shows the upstream down, and up again once a connection starts.
    assert!(!handler.pool().healthy());
    let listener = TcpListener::bind(addr).await.unwrap();
    let stop = CancellationToken::new();
    let server = serve_upstream(listener, stop.clone());
    assert_eq!(seen(&app, "bob-token").await.0, 200);
    assert!(handler.pool().healthy());
    stop.cancel();
    server.await.unwrap();
}

// The upstream refusing the gateway's own credential is a 502 to the client, never its 401
// (the client's token was fine; re-authenticating would not help).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_refusal_is_a_502_never_a_401() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let revoked = Arc::new(AtomicBool::new(false));
    let server = serve_revocable(listener, stop.clone(), revoked.clone());
    let app = gateway(target(&url, UPSTREAM_KEY)).await;
    assert_eq!(seen(&app, "alice-token").await.0, 200);
    revoked.store(true, Ordering::SeqCst);
    let (status, headers, body) = seen_with_headers(&app, "alice-token").await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"], "bad_gateway");
    assert!(headers.get("www-authenticate").is_none());
    stop.cancel();
    server.await.unwrap();
}
