//! The minimal Streamable HTTP MCP server the gateway rows of `bench/run` put proxies in front
//! of: one `echo` tool on rmcp, stateless, JSON responses, no authentication.
//!
//! It is as small as an rmcp server gets, so that what the rows compare is the hop in front of
//! it, not the tool: the direct row measures this server alone, the proxy rows add one hop.

use std::sync::Arc;

use axum::Router;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

/// The server: one tool.
#[derive(Clone)]
pub struct Echo {
    tool_router: ToolRouter<Self>,
}

/// `echo`'s arguments — the same shape as the stdio fixture's `echo`, so one request body
/// serves every gateway row.
#[derive(Deserialize, schemars::JsonSchema)]
pub struct EchoParams {
    /// What to say back.
    pub text: String,
}

#[tool_router]
impl Echo {
    /// A server with its tool router.
    pub fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }

    #[tool(description = "Says the text back")]
    fn echo(&self, Parameters(p): Parameters<EchoParams>) -> String {
        p.text
    }
}

impl Default for Echo {
    fn default() -> Self {
        Self::new()
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Echo {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// `POST /mcp` (and rmcp's other methods there): stateless — no session, each request served on
/// its own, as Gatehouse's own server runs by default — with JSON answers rather than SSE.
/// rmcp's default Host check (loopback names only) stays on: the bench talks to 127.0.0.1.
pub fn router(cancel: CancellationToken) -> Router {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_cancellation_token(cancel);
    let service = StreamableHttpService::new(
        || Ok(Echo::new()),
        Arc::new(NeverSessionManager::default()),
        config,
    );
    Router::new().route_service("/mcp", service)
}
