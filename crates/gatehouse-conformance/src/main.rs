//! `gatehouse-conformance`: the fixture MCP server of the official conformance suite
//! (`@modelcontextprotocol/conformance`), served through the Gatehouse library with
//! authentication on.
//!
//! The suite cannot send a bearer token, so `interop/` puts a token-injecting proxy in front
//! (`interop/lib/token-proxy.mjs`). `--resource` is therefore the proxy's URL: that is the URL
//! clients use, so it is what tokens name as audience and what the Host/Origin guard accepts.
//!
//! The server is stateful (rmcp sessions, SSE responses) because several fixtures send requests
//! to the client in the middle of a tool call (sampling, elicitation); sessions are bound to the
//! principal that created them ([`gatehouse::http::SessionBindingConfig`]).
//!
//! Two more modes serve the same fixtures as an *upstream* of `gatehouse proxy`, which is then
//! the only authentication (interop's conformance differential: the suite directly against the
//! upstream, then through the gateway):
//!
//! - `--stdio`: MCP over stdin/stdout, for the gateway to start as a child process;
//! - `--dangerous-no-auth`: plain Streamable HTTP without any authentication, refused on any
//!   address but loopback.
//!
//! Prints `READY url=http://ADDR/mcp` on stdout once it accepts connections (not in `--stdio`
//! mode, where stdout is the protocol).

mod fixtures;
mod mrtr;
mod rounds;
mod tasks;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Parser;
use gatehouse::http::SessionBindingConfig;
use gatehouse::{Gatehouse, ResourceUrl};
use rmcp::ServiceExt;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(
    name = "gatehouse-conformance",
    about = "MCP conformance fixture server behind Gatehouse"
)]
struct Args {
    /// Address to listen on (port 0: ephemeral).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The canonical MCP URL clients use (the token-injecting proxy's URL).
    #[arg(long, required_unless_present_any = ["stdio", "dangerous_no_auth"])]
    resource: Option<String>,
    /// Issuer of the JWT access tokens (JWKS discovered from its metadata).
    #[arg(long, required_unless_present_any = ["stdio", "dangerous_no_auth"])]
    issuer: Option<String>,
    /// Scope every request needs.
    #[arg(long, default_value = "invoices:read")]
    scope: Vec<String>,
    /// Extra accepted Host values (e.g. `localhost:PROXYPORT`).
    #[arg(long)]
    allowed_host: Vec<String>,
    /// Extra accepted Origin values.
    #[arg(long)]
    allowed_origin: Vec<String>,
    /// Serve over stdin/stdout without authentication (an upstream for `gatehouse proxy`).
    #[arg(long, conflicts_with_all = ["resource", "issuer", "dangerous_no_auth"])]
    stdio: bool,
    /// Serve Streamable HTTP WITHOUT AUTHENTICATION, loopback only (an upstream for
    /// `gatehouse proxy` in tests; never in production).
    #[arg(long, conflicts_with_all = ["resource", "issuer"])]
    dangerous_no_auth: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rmcp=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if args.stdio {
        return stdio().await;
    }
    if args.dangerous_no_auth {
        return no_auth(args.listen).await;
    }
    let cancel = CancellationToken::new();
    // clap requires both unless one of the modes above was chosen.
    let (Some(resource), Some(issuer)) = (args.resource, args.issuer) else {
        bail!("--resource and --issuer are required");
    };

    let resource = ResourceUrl::parse(&resource).context("--resource")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .context("--listen")?;
    let addr = listener.local_addr()?;
    let gatehouse = Gatehouse::builder(resource)
        .jwt_issuer(issuer)
        .route_scopes(args.scope.clone())
        .resource_name("Gatehouse conformance fixtures")
        .listen_addr(addr)
        .allowed_hosts(args.allowed_host.clone())
        .allowed_origins(args.allowed_origin.clone())
        .stateful_sessions(SessionBindingConfig::default())
        .cancellation(cancel.clone())
        .start()
        .await
        .context("configuring Gatehouse (discovering the issuer's keys)")?;
    let server = fixtures::Fixtures::new();
    let app = gatehouse.mount(move || server.clone());

    println!("READY url=http://{addr}/mcp");
    std::io::stdout().flush()?;
    gatehouse::serve(listener, app, async move {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    cancel.cancel();
    Ok(())
}

/// One MCP session over stdin/stdout; returns when the client closes stdin.
async fn stdio() -> anyhow::Result<()> {
    let running = fixtures::Fixtures::new()
        .serve(rmcp::transport::stdio())
        .await
        .context("stdio handshake")?;
    running.waiting().await.context("stdio session")?;
    Ok(())
}

/// Stateful Streamable HTTP (SSE responses, like the authenticated mode) with no
/// authentication at all. Loopback only: anything that can connect can call every fixture.
/// rmcp's own Host check (loopback names) stays on, so DNS rebinding is still refused.
async fn no_auth(listen: SocketAddr) -> anyhow::Result<()> {
    if !listen.ip().is_loopback() {
        bail!("--dangerous-no-auth refuses to listen on {listen}: loopback addresses only");
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .context("--listen")?;
    let addr = listener.local_addr()?;
    tracing::warn!(%addr, "--dangerous-no-auth: serving WITHOUT authentication (tests only)");
    let cancel = CancellationToken::new();
    let server = fixtures::Fixtures::new();
    let service = StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default()
            .with_legacy_session_mode(true)
            .with_cancellation_token(cancel.child_token()),
    );
    let app = axum::Router::new().route_service("/mcp", service);
    println!("READY url=http://{addr}/mcp");
    std::io::stdout().flush()?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    cancel.cancel();
    Ok(())
}
