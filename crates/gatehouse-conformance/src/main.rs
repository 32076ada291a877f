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
//! Prints `READY url=http://ADDR/mcp` on stdout once it accepts connections.

mod fixtures;

use std::io::Write;
use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use gatehouse::http::SessionBindingConfig;
use gatehouse::{Gatehouse, ResourceUrl};
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
    #[arg(long)]
    resource: String,
    /// Issuer of the JWT access tokens (JWKS discovered from its metadata).
    #[arg(long)]
    issuer: String,
    /// Scope every request needs.
    #[arg(long, default_value = "invoices:read")]
    scope: Vec<String>,
    /// Extra accepted Host values (e.g. `localhost:PROXYPORT`).
    #[arg(long)]
    allowed_host: Vec<String>,
    /// Extra accepted Origin values.
    #[arg(long)]
    allowed_origin: Vec<String>,
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
    let cancel = CancellationToken::new();

    let resource = ResourceUrl::parse(&args.resource).context("--resource")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .context("--listen")?;
    let addr = listener.local_addr()?;
    let gatehouse = Gatehouse::builder(resource)
        .jwt_issuer(args.issuer.clone())
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
