//! Shared by the gateway's integration tests: test users for the gateway's edge, and an
//! upstream MCP server that reports the caller its own Gatehouse verified, with a layer that
//! records every bearer token it is shown.
//!
//! Each test binary includes this file with `mod common;` and uses part of it.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use gatehouse::verify::{BoxFuture, InvalidReason};
use gatehouse::{AccessToken, Caller, Principal, ScopeSet, TokenKind, TokenVerifier, VerifyError};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use serde_json::json;

/// Tokens of `https://auth.example.com` for `audience`: each `(token, subject, scopes)`, client
/// `app`; any other token is refused as malformed.
pub(crate) struct Users {
    audience: String,
    tokens: &'static [(&'static str, &'static str, &'static str)],
}

impl Users {
    pub(crate) fn new(
        audience: impl Into<String>,
        tokens: &'static [(&'static str, &'static str, &'static str)],
    ) -> Self {
        Self {
            audience: audience.into(),
            tokens,
        }
    }
}

impl TokenVerifier for Users {
    fn verify<'a>(&'a self, token: &'a AccessToken) -> BoxFuture<'a, Result<Caller, VerifyError>> {
        let Some((_, sub, scopes)) = self.tokens.iter().find(|(t, _, _)| *t == token.expose())
        else {
            return Box::pin(async { Err(VerifyError::Invalid(InvalidReason::Malformed)) });
        };
        let caller = Caller::new(Principal {
            issuer: "https://auth.example.com".into(),
            subject: Some((*sub).into()),
            client_id: Some("app".into()),
            scopes: ScopeSet::from_space_separated(scopes),
            audiences: vec![self.audience.clone()],
            tenant: None,
            expires_at: SystemTime::now() + Duration::from_secs(600),
            kind: TokenKind::Jwt,
            claims: Default::default(),
        });
        Box::pin(async move { Ok(caller) })
    }
}

/// An upstream MCP server: `whoami` reports the caller its own Gatehouse verified.
#[derive(Clone)]
pub(crate) struct WhoAmI {
    tool_router: ToolRouter<Self>,
}

impl WhoAmI {
    pub(crate) fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }
}

#[tool_router]
impl WhoAmI {
    #[tool(description = "The verified caller")]
    fn whoami(&self, caller: Caller) -> String {
        json!({
            "iss": caller.issuer.as_ref(),
            "sub": caller.subject,
            "actor": caller.actor(),
            "client": caller.client_id,
            "tenant": caller.tenant,
            "scopes": caller.scopes.to_space_separated(),
            "aud": caller.audiences,
        })
        .to_string()
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for WhoAmI {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// `/mcp` served by rmcp for the handlers `make` makes: with sessions (SSE answers; the session
/// store is returned, to end a session under the gateway) or stateless (JSON answers).
pub(crate) fn mcp_routes<H, F>(
    make: F,
    sessions: bool,
    config: rmcp::transport::streamable_http_server::StreamableHttpServerConfig,
) -> (
    Router,
    Option<Arc<rmcp::transport::streamable_http_server::session::local::LocalSessionManager>>,
)
where
    H: ServerHandler,
    F: Fn() -> Result<H, std::io::Error> + Send + Sync + 'static,
{
    use rmcp::transport::streamable_http_server::StreamableHttpService;
    use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
    use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
    if sessions {
        let manager = Arc::new(LocalSessionManager::default());
        let service = StreamableHttpService::new(make, manager.clone(), config);
        (Router::new().route_service("/mcp", service), Some(manager))
    } else {
        let service = StreamableHttpService::new(
            make,
            Arc::new(NeverSessionManager::default()),
            config
                .with_legacy_session_mode(false)
                .with_json_response(true),
        );
        (Router::new().route_service("/mcp", service), None)
    }
}

/// `router`, recording in `seen` the `Authorization` value of every request it receives.
pub(crate) fn recording(router: Router, seen: Arc<Mutex<Vec<String>>>) -> Router {
    router.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let seen = seen.clone();
            async move {
                if let Some(v) = req.headers().get("authorization") {
                    seen.lock()
                        .unwrap()
                        .push(v.to_str().unwrap_or("").to_owned());
                }
                next.run(req).await
            }
        },
    ))
}

/// A `POST /mcp` to the gateway as a client sends it at revision 2025-11-25: `token` as bearer,
/// both answer types accepted, a `Content-Length` (as every HTTP/1.1 client sends: the direct
/// and forwarding paths take only bounded bodies), and `extra` headers.
pub(crate) fn mcp_post(
    token: &str,
    body: impl Into<String>,
    extra: &[(&str, &str)],
) -> http::Request<axum::body::Body> {
    let body = body.into();
    let mut req = http::Request::post("/mcp")
        .header("host", "gw.example.com")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .header("authorization", format!("Bearer {token}"))
        .header("content-length", body.len());
    for (name, value) in extra {
        req = req.header(*name, *value);
    }
    req.body(axum::body::Body::from(body))
        .expect("valid request")
}

/// The last JSON-RPC message of an answer: its JSON body, or the last event of an SSE stream
/// (the forwarding path relays an upstream's stream as it comes); `{"raw": …}` for anything
/// else.
pub(crate) async fn last_message(resp: http::Response<axum::body::Body>) -> serde_json::Value {
    use http_body_util::BodyExt;
    let sse = resp
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let bytes = resp
        .into_body()
        .collect()
        .await
        .expect("the answer is read")
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes);
    if sse {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim)
            .rfind(|d| !d.is_empty())
            .map(|d| serde_json::from_str(d).expect("an event is JSON"))
            .unwrap_or(serde_json::Value::Null)
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| json!({ "raw": text }))
    }
}
