//! Shared by `edge_router.rs` and `token_matrix/`: the rmcp server behind the edge (tools that
//! echo the `Caller` they receive), the invoice scope policy, the Streamable HTTP service in
//! front of the tools, and the JSON-RPC bodies and tool text of a `tools/call`.
//!
//! Also the edge with its default settings in front of that server, trusting a test
//! authorization server for both JWTs and introspection ([`IssuerStack`]).
//!
//! And [`AnyToken`], a verifier that accepts every token, for tests about what happens after
//! authentication.
//!
//! Each test binary includes this file with `#[path]` and uses part of it.
#![allow(dead_code)]

use std::collections::HashMap;

use gatehouse::policy::{ScopeHierarchy, ScopePolicy, ToolListMode};
use gatehouse::{Caller, ScopeSet};
use rmcp::handler::server::common::Extension;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::SessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};

/// Route scope `invoices:read`; `invoices:write` implies `invoices:read`; each `(tool, scope)`
/// of `tools` needs that scope.
pub(crate) fn policy(tools: &[(&str, &str)]) -> ScopePolicy {
    let hierarchy = ScopeHierarchy::new([("invoices:write", ["invoices:read"])]).unwrap();
    let tools: HashMap<String, ScopeSet> = tools
        .iter()
        .map(|(tool, scope)| ((*tool).to_owned(), ScopeSet::parse([*scope]).unwrap()))
        .collect();
    ScopePolicy::new(
        ScopeSet::parse(["invoices:read"]).unwrap(),
        tools,
        hierarchy,
        ToolListMode::All,
    )
}

/// What every tool answers: its name, the `Caller` it received, and whether the token reached
/// it (it never should). The tests compare this text exactly.
pub(crate) fn echo(tool: &str, c: &Caller, parts: &http::request::Parts) -> String {
    format!(
        "{tool} iss={} sub={} client={} scopes={} tenant={} kind={:?} saw_token={}",
        c.issuer,
        c.subject.as_deref().unwrap_or("-"),
        c.client_id.as_deref().unwrap_or("-"),
        c.scopes.to_space_separated(),
        c.tenant.as_deref().unwrap_or("-"),
        c.kind,
        parts.headers.contains_key(http::header::AUTHORIZATION),
    )
}

/// The MCP server: four tools that [`echo`] their caller.
#[derive(Clone)]
pub(crate) struct EchoTools {
    tool_router: ToolRouter<Self>,
}

impl EchoTools {
    pub(crate) fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }
}

#[tool_router]
impl EchoTools {
    #[tool(description = "Who am I (reports the caller)")]
    async fn whoami(
        &self,
        caller: Caller,
        Extension(parts): Extension<http::request::Parts>,
    ) -> String {
        echo("whoami", &caller, &parts)
    }

    #[tool(description = "Look an invoice up (reports the caller)")]
    async fn lookup_invoice(
        &self,
        caller: Caller,
        Extension(parts): Extension<http::request::Parts>,
    ) -> String {
        echo("lookup_invoice", &caller, &parts)
    }

    #[tool(description = "Void an invoice (reports the caller)")]
    async fn void_invoice(
        &self,
        caller: Caller,
        Extension(parts): Extension<http::request::Parts>,
    ) -> String {
        echo("void_invoice", &caller, &parts)
    }

    #[tool(description = "Read the audit log (reports the caller)")]
    async fn audit_log(
        &self,
        caller: Caller,
        Extension(parts): Extension<http::request::Parts>,
    ) -> String {
        echo("audit_log", &caller, &parts)
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for EchoTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// Stateless Streamable HTTP with plain JSON answers and no keep-alive stream.
pub(crate) fn stateless_config() -> StreamableHttpServerConfig {
    StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
}

/// [`EchoTools`] behind rmcp's Streamable HTTP service.
pub(crate) fn service<M: SessionManager>(
    sessions: M,
    config: StreamableHttpServerConfig,
) -> StreamableHttpService<EchoTools, M> {
    StreamableHttpService::new(
        || Ok(EchoTools::new()),
        std::sync::Arc::new(sessions),
        config,
    )
}

/// The JSON-RPC body of a `tools/call` of `tool` without arguments.
pub(crate) fn call_body(tool: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{tool}","arguments":{{}}}}}}"#
    )
}

/// The text a tool returned, or an explanation of why there is none (not JSON, a tool error, no
/// text block).
pub(crate) fn tool_text(body: &str) -> Result<String, String> {
    let v: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("body is not JSON ({e}): {body}"))?;
    if v["result"]["isError"] == serde_json::Value::Bool(true) {
        return Err(format!("tool error: {body}"));
    }
    v["result"]["content"][0]["text"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no tool text in {body}"))
}

/// The default settings protecting `resource` with a test authorization server, trusted for
/// JWTs and for introspection (its client secret in a file, as the settings want it), changed
/// by `tweak`, in front of [`EchoTools`] (stateless). The secret file goes with the stack.
pub(crate) struct IssuerStack {
    pub(crate) app: axum::Router,
    pub(crate) issuer: gatehouse_testkit::TestAuthServer,
    secret: std::path::PathBuf,
}

impl Drop for IssuerStack {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.secret);
    }
}

impl IssuerStack {
    pub(crate) async fn start(
        resource: &str,
        tweak: impl FnOnce(&mut gatehouse::settings::Settings),
    ) -> Self {
        use gatehouse::settings::{IntrospectionSettings, IssuerSettings, Settings};
        use gatehouse_testkit::{
            DEFAULT_INTROSPECTION_CLIENT_ID, DEFAULT_INTROSPECTION_CLIENT_SECRET, TestAuthServer,
        };
        let issuer = TestAuthServer::builder().audience(resource).start().await;
        // A distinct file per test server (its port is unique while it runs).
        let secret = std::env::temp_dir().join(format!(
            "gatehouse-secret-{}-{}",
            std::process::id(),
            issuer.addr().port()
        ));
        std::fs::write(&secret, DEFAULT_INTROSPECTION_CLIENT_SECRET).unwrap();
        let mut settings = Settings::default();
        settings.server.resource = Some(resource.into());
        settings.auth.issuers = vec![IssuerSettings::new(issuer.issuer())];
        let mut introspection =
            IntrospectionSettings::new(issuer.issuer(), DEFAULT_INTROSPECTION_CLIENT_ID);
        introspection.client_secret_file = Some(secret.clone());
        settings.auth.introspection = vec![introspection];
        tweak(&mut settings);
        let gatehouse = settings
            .builder(std::net::SocketAddr::from(([0, 0, 0, 0], 8443)))
            .unwrap()
            .start()
            .await
            .unwrap();
        let config = gatehouse.configure_rmcp(stateless_config());
        let app = gatehouse.router(service(
            rmcp::transport::streamable_http_server::session::never::NeverSessionManager::default(),
            config,
        ));
        Self {
            app,
            issuer,
            secret,
        }
    }
}

/// The resource of [`AnyToken`]'s callers.
pub(crate) const ANY_TOKEN_RESOURCE: &str = "https://mcp.example.com/mcp";

/// Accepts every token: alice, client `app`, scope `mcp`, audience [`ANY_TOKEN_RESOURCE`].
pub(crate) struct AnyToken;

impl gatehouse::TokenVerifier for AnyToken {
    fn verify<'a>(
        &'a self,
        _: &'a gatehouse::AccessToken,
    ) -> gatehouse::verify::BoxFuture<'a, Result<Caller, gatehouse::VerifyError>> {
        Box::pin(async {
            Ok(Caller::new(gatehouse::Principal {
                issuer: "https://auth.example.com".into(),
                subject: Some("alice".into()),
                client_id: Some("app".into()),
                scopes: ScopeSet::from_space_separated("mcp"),
                audiences: vec![ANY_TOKEN_RESOURCE.into()],
                tenant: None,
                expires_at: std::time::SystemTime::now() + std::time::Duration::from_secs(600),
                kind: gatehouse::TokenKind::Jwt,
                claims: Default::default(),
            }))
        })
    }
}

/// The edge for [`ANY_TOKEN_RESOURCE`] with [`AnyToken`], route scope `mcp`, and `direct` tools.
pub(crate) fn any_token_gatehouse(direct: gatehouse::mcp::DirectTools) -> gatehouse::Gatehouse {
    gatehouse::Gatehouse::builder(gatehouse::ResourceUrl::parse(ANY_TOKEN_RESOURCE).unwrap())
        .authorization_servers(["https://auth.example.com"])
        .verifier(std::sync::Arc::new(AnyToken))
        .route_scopes(["mcp"])
        .direct_tools(direct)
        .build()
        .unwrap()
}

/// A `tools/call` of `tool` without arguments at 2025-11-25, with the headers of a plain client
/// (so that a direct tool is answered directly).
pub(crate) fn tool_call_request(tool: &str) -> http::Request<axum::body::Body> {
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{tool}","arguments":{{}}}}}}"#
    );
    http::Request::post("/mcp")
        .header("host", "mcp.example.com")
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .header("authorization", "Bearer t")
        .body(axum::body::Body::from(body))
        .unwrap()
}
