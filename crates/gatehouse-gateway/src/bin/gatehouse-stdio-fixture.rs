//! A small stdio MCP server for the gateway's tests (not for production): it reports what it
//! was started with — its process id and its environment — so tests can prove which principal a
//! child serves and that the gateway's own environment never reaches it.
//!
//! Tools: `whoami` (pid and environment, and the id the call came with), `echo`, `admin_reset` (a tool a policy should hide),
//! `exit` (the process dies, as a crashing server would), `wait` (writes `started` to the file
//! named by `FIXTURE_MARKER`, then waits until the call is cancelled and writes `cancelled`),
//! `progress` (reports `steps` progress notifications on the call's token, then answers),
//! `sample` (asks the client for a sampling completion, whatever the client declared, and
//! answers with the outcome), `log` (sends a log message, then answers).

use std::collections::BTreeMap;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, ServiceExt, tool, tool_handler, tool_router};
use serde::Deserialize;

#[derive(Clone)]
struct Fixture {
    tool_router: ToolRouter<Self>,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct EchoParams {
    /// What to say back.
    text: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct ProgressParams {
    /// How many progress notifications to send.
    steps: u32,
}

#[tool_router]
impl Fixture {
    #[tool(description = "This process's id and environment, and the call's request id, as JSON")]
    fn whoami(&self, context: rmcp::service::RequestContext<rmcp::RoleServer>) -> String {
        let env: BTreeMap<String, String> = std::env::vars().collect();
        serde_json::json!({ "pid": std::process::id(), "env": env, "request_id": context.id })
            .to_string()
    }

    #[tool(description = "Says the text back")]
    fn echo(&self, Parameters(p): Parameters<EchoParams>) -> String {
        p.text
    }

    #[tool(description = "A dangerous tool a gateway policy should hide")]
    fn admin_reset(&self) -> String {
        "reset".into()
    }

    #[tool(description = "Waits until cancelled, leaving marks in $FIXTURE_MARKER")]
    async fn wait(&self, context: rmcp::service::RequestContext<rmcp::RoleServer>) -> String {
        let marker = std::env::var("FIXTURE_MARKER").ok();
        let mark = |what: &str| {
            if let Some(path) = &marker {
                let _ = std::fs::write(path, what);
            }
        };
        mark("started");
        context.ct.cancelled().await;
        mark("cancelled");
        "cancelled".into()
    }

    #[tool(description = "Sends `steps` progress notifications, then answers")]
    async fn progress(
        &self,
        Parameters(p): Parameters<ProgressParams>,
        context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> String {
        let Some(token) = context.meta.get_progress_token() else {
            return "no progress token".into();
        };
        for step in 1..=p.steps {
            let n = rmcp::model::ProgressNotificationParam::new(token.clone(), f64::from(step))
                .with_total(f64::from(p.steps));
            if context.peer.notify_progress(n).await.is_err() {
                return "progress not sent".into();
            }
        }
        "done".into()
    }

    #[tool(description = "Asks the client to sample; answers with what it declared and got")]
    #[allow(deprecated, reason = "sampling is what this fixture exercises")]
    async fn sample(&self, context: rmcp::service::RequestContext<rmcp::RoleServer>) -> String {
        use rmcp::model::{ClientResult, CreateMessageRequestParams, SamplingMessage};
        let declared = context
            .peer
            .peer_info()
            .is_some_and(|i| i.capabilities.sampling.is_some());
        let params = CreateMessageRequestParams::new(vec![SamplingMessage::user_text("ping")], 16);
        // Sent whatever the client declared: the test sees how the gateway answers.
        let request = rmcp::model::ServerRequest::CreateMessageRequest(
            rmcp::model::CreateMessageRequest::new(params),
        );
        let outcome = match context.peer.send_request(request).await {
            Ok(ClientResult::CreateMessageResult(r)) => serde_json::json!({ "result": r }),
            Ok(other) => serde_json::json!({ "unexpected": format!("{other:?}") }),
            Err(rmcp::service::ServiceError::McpError(e)) => serde_json::json!({ "error": e }),
            Err(e) => serde_json::json!({ "failed": e.to_string() }),
        };
        serde_json::json!({ "declared": declared, "outcome": outcome }).to_string()
    }

    #[tool(description = "Sends a log message, then answers")]
    #[allow(deprecated, reason = "logging is what this fixture exercises")]
    async fn log(&self, context: rmcp::service::RequestContext<rmcp::RoleServer>) -> String {
        let m = rmcp::model::LoggingMessageNotificationParam::new(
            rmcp::model::LoggingLevel::Warning,
            serde_json::json!("from the fixture"),
        );
        match context.peer.notify_logging_message(m).await {
            Ok(()) => "logged".into(),
            Err(e) => e.to_string(),
        }
    }

    #[tool(description = "Answers, then sends a log message (after the answer, on the wire)")]
    #[allow(deprecated, reason = "logging is what this fixture exercises")]
    async fn log_after(&self, context: rmcp::service::RequestContext<rmcp::RoleServer>) -> String {
        let peer = context.peer.clone();
        tokio::spawn(async move {
            // The answer is queued for the transport when this handler returns; yielding lets
            // the service send it before this notification.
            for _ in 0..8 {
                tokio::task::yield_now().await;
            }
            let m = rmcp::model::LoggingMessageNotificationParam::new(
                rmcp::model::LoggingLevel::Info,
                serde_json::json!("after the answer"),
            );
            let _ = peer.notify_logging_message(m).await;
        });
        "answered".into()
    }

    #[tool(description = "Exits the process at once (a crash)")]
    fn exit(&self) -> String {
        std::process::exit(3)
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Fixture {
    /// Pages of `FIXTURE_PAGE_SIZE` tools (default: one page), the cursor being the index of
    /// the next tool: a gateway must pass cursors through as they are.
    async fn list_tools(
        &self,
        request: Option<rmcp::model::PaginatedRequestParams>,
        _context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::ListToolsResult, rmcp::ErrorData> {
        let mut all = self.tool_router.list_all();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        let size = std::env::var("FIXTURE_PAGE_SIZE")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(all.len())
            .max(1);
        let start = match request.and_then(|r| r.cursor) {
            Some(c) => c
                .parse::<usize>()
                .map_err(|_| rmcp::ErrorData::invalid_params("bad cursor", None))?,
            None => 0,
        };
        let end = (start + size).min(all.len());
        let mut page = rmcp::model::ListToolsResult::with_all_items(
            all.get(start..end).unwrap_or_default().to_vec(),
        );
        page.next_cursor = (end < all.len()).then(|| end.to_string());
        Ok(page)
    }

    #[allow(deprecated, reason = "logging is what the `log` tool exercises")]
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_logging()
                .build(),
        )
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Fixture {
        tool_router: Fixture::tool_router(),
    }
    .serve(rmcp::transport::stdio())
    .await?;
    server.waiting().await?;
    Ok(())
}
