//! Protect an rmcp server with Gatehouse: the smallest complete resource server.
//!
//! ```sh
//! ISSUER=https://auth.example.com RESOURCE=http://127.0.0.1:8080/mcp \
//!     cargo run -p gatehouse --example protect
//! ```
//!
//! `crates/gatehouse/tests/example_protect.rs` runs [`protect`] against a real issuer and drives
//! `401` → token → `tools/call` → `403` step-up through it.
// README:begin
use std::sync::Arc;

use gatehouse::{Caller, Gatehouse};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::{ServerHandler, tool, tool_handler, tool_router};

#[derive(Clone)]
pub struct Hello {
    tool_router: Arc<ToolRouter<Self>>,
}

impl Default for Hello {
    fn default() -> Self {
        Self {
            tool_router: Arc::new(Self::tool_router()),
        }
    }
}

#[tool_router]
impl Hello {
    /// Tools take the verified caller as an argument; they never see the token.
    #[tool(description = "Greets the authenticated caller")]
    async fn hello(&self, caller: Caller) -> String {
        format!(
            "hello, {}",
            caller.subject.as_deref().unwrap_or("anonymous")
        )
    }

    #[tool(description = "Forgets everyone (needs the admin scope)")]
    async fn reset(&self) -> String {
        "forgotten".to_owned()
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Hello {}

/// JWTs from `issuer` (keys discovered from its metadata) whose `aud` names `resource`; every
/// request needs `greet`, `reset` needs `admin`, and `admin` implies `greet`.
pub async fn protect(
    resource: &str,
    issuer: &str,
) -> Result<(Gatehouse, axum::Router), Box<dyn std::error::Error>> {
    let gatehouse = Gatehouse::builder(resource.parse()?)
        .jwt_issuer(issuer)
        .route_scopes(["greet"])
        .tool_scopes("reset", ["admin"])
        .scope_implies("admin", ["greet"])
        .start()
        .await?;
    let hello = Hello::default();
    let app = gatehouse.mount(move || hello.clone());
    Ok((gatehouse, app))
}

#[tokio::main]
#[allow(dead_code)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (gatehouse, app) = protect(&std::env::var("RESOURCE")?, &std::env::var("ISSUER")?).await?;
    let listener = tokio::net::TcpListener::bind(gatehouse.resource().authority()).await?;
    gatehouse::serve(listener, app, std::future::pending()).await?;
    Ok(())
}
// README:end
