//! Protect an rmcp server with Gatehouse: the smallest complete resource server.
//!
//! ```sh
//! ISSUER=https://auth.example.com RESOURCE=http://127.0.0.1:8080/mcp \
//!     cargo run -p gatehouse --example protect
//! ```
// README:begin
use std::sync::Arc;

use gatehouse::http::Gatehouse;
use gatehouse::policy::{ScopeHierarchy, ScopePolicy, ToolListMode};
use gatehouse::verify::cache::{Authenticator, CacheConfig};
use gatehouse::verify::chain::{ChainConfig, VerifierChain};
use gatehouse::verify::jwt::JwtIssuerConfig;
use gatehouse::{Caller, ResourceUrl, ScopeSet};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};

#[derive(Clone)]
struct Hello {
    tool_router: Arc<ToolRouter<Self>>,
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
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Hello {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let issuer = std::env::var("ISSUER")?;
    let resource = ResourceUrl::parse(&std::env::var("RESOURCE")?)?;

    // Authentication: JWTs from `issuer` (keys discovered from its metadata) whose `aud` names
    // this resource, behind the verified-token cache.
    let chain = VerifierChain::start(
        ChainConfig {
            jwt_issuers: vec![JwtIssuerConfig::new(&issuer, resource.as_str())],
            ..ChainConfig::default()
        },
        Default::default(),
    )
    .await?;
    let authenticator = Arc::new(Authenticator::new(Arc::new(chain), CacheConfig::default()));

    // Authorization: every request needs `greet`; `admin` implies it.
    let policy = ScopePolicy::new(
        ScopeSet::parse(["greet"])?,
        Default::default(),
        ScopeHierarchy::new([("admin", ["greet"])])?,
        ToolListMode::All,
    );

    let gatehouse = Gatehouse::builder(resource.clone())
        .authorization_servers([issuer])
        .authenticator(authenticator)
        .policy(policy)
        .resource_name("Hello MCP")
        .build()?;

    let hello = Hello {
        tool_router: Arc::new(Hello::tool_router()),
    };
    let mcp = StreamableHttpService::new(
        move || Ok(hello.clone()),
        Arc::new(NeverSessionManager::default()),
        gatehouse.configure_rmcp(
            StreamableHttpServerConfig::default()
                .with_legacy_session_mode(false)
                .with_json_response(true),
        ),
    );
    // The metadata document (no token) and the MCP endpoint (guarded, authenticated, authorized).
    let app = gatehouse.router(mcp);

    let listener = tokio::net::TcpListener::bind(resource.authority()).await?;
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .await?;
    Ok(())
}
// README:end
