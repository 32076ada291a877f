//! A small stdio MCP server for the gateway's tests (not for production): it reports what it
//! was started with — its process id and its environment — so tests can prove which principal a
//! child serves and that the gateway's own environment never reaches it.
//!
//! Tools: `whoami` (pid and environment), `echo`, `admin_reset` (a tool a policy should hide),
//! `exit` (the process dies, as a crashing server would), `wait` (writes `started` to the file
//! named by `FIXTURE_MARKER`, then waits until the call is cancelled and writes `cancelled`).

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

#[tool_router]
impl Fixture {
    #[tool(description = "This process's id and environment, as JSON")]
    fn whoami(&self) -> String {
        let env: BTreeMap<String, String> = std::env::vars().collect();
        serde_json::json!({ "pid": std::process::id(), "env": env }).to_string()
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

    #[tool(description = "Exits the process at once (a crash)")]
    fn exit(&self) -> String {
        std::process::exit(3)
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Fixture {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
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
