//! Opaque tokens checked by RFC 7662 introspection, a tenant hook, and an audit observer.
//!
//! ```sh
//! ISSUER=https://auth.example.com RESOURCE=http://127.0.0.1:8080/mcp \
//! CLIENT_ID=mcp-server CLIENT_SECRET=… cargo run -p gatehouse --example introspection
//! ```
//!
//! `crates/gatehouse/tests/example_introspection.rs` runs [`protect`] against a real
//! introspection endpoint.
use std::sync::{Arc, Mutex};

use gatehouse::observe::{Observer, ToolCall};
use gatehouse::tenancy::CallerEnricher;
use gatehouse::verify::introspection::ClientSecret;
use gatehouse::{Caller, Gatehouse};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::{ServerHandler, tool, tool_handler, tool_router};

#[derive(Clone)]
pub struct Orders {
    tool_router: Arc<ToolRouter<Self>>,
}

#[tool_router]
impl Orders {
    /// The tenant comes from the caller, resolved once per token by the hook below.
    #[tool(description = "Which tenant the caller acts for")]
    async fn whoami(&self, caller: Caller) -> String {
        match caller.tenant_id() {
            Some(t) => format!("{} of {t}", caller.subject.as_deref().unwrap_or("?")),
            None => "no tenant".to_owned(),
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Orders {}

/// A tenant hook: clients are named `<tenant>-<app>` at this authorization server, so a token
/// without a tenant claim acts for the tenant its client's name starts with. It runs once per
/// verified token (the result is cached with it), after the built-in claim and client-map rules.
pub struct TenantFromClientName;

impl CallerEnricher for TenantFromClientName {
    fn enrich(&self, caller: Caller) -> Caller {
        if caller.tenant.is_some() {
            return caller;
        }
        let tenant = caller
            .client_id
            .as_deref()
            .and_then(|c| c.split_once('-'))
            .map(|(tenant, _)| tenant.to_owned());
        caller.map(|p| p.tenant = tenant)
    }
}

/// An audit observer: one line per tool call — allowed, denied at the edge, or failed. This one
/// keeps them in memory; a real one queues them for storage (observers run on the request path).
#[derive(Default)]
pub struct AuditTrail(pub Mutex<Vec<String>>);

impl Observer for AuditTrail {
    fn tool_call(&self, call: &ToolCall<'_>) {
        let line = format!(
            "{} {} {} {} {}",
            call.caller.and_then(|c| c.tenant.as_deref()).unwrap_or("-"),
            call.caller
                .and_then(|c| c.subject.as_deref())
                .unwrap_or("-"),
            call.tool.unwrap_or("-"),
            call.outcome,
            call.reason,
        );
        if let Ok(mut lines) = self.0.lock() {
            lines.push(line);
        }
    }
}

/// Opaque tokens of `issuer`, introspected with this server's client credentials (the endpoint
/// is discovered from the issuer's metadata); every request needs `orders:read`.
pub async fn protect(
    resource: &str,
    issuer: &str,
    client_id: &str,
    client_secret: &str,
    audit: Arc<AuditTrail>,
) -> Result<(Gatehouse, axum::Router), Box<dyn std::error::Error>> {
    let gatehouse = Gatehouse::builder(resource.parse()?)
        .introspection_issuer(issuer, client_id, ClientSecret::new(client_secret))
        .route_scopes(["orders:read"])
        .enrich(Arc::new(TenantFromClientName))
        .observer(audit)
        .start()
        .await?;
    let orders = Orders {
        tool_router: Arc::new(Orders::tool_router()),
    };
    let app = gatehouse.mount(move || orders.clone());
    Ok((gatehouse, app))
}

#[tokio::main]
#[allow(dead_code)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let var = |name| std::env::var(name);
    let audit = Arc::new(AuditTrail::default());
    let (gatehouse, app) = protect(
        &var("RESOURCE")?,
        &var("ISSUER")?,
        &var("CLIENT_ID")?,
        &var("CLIENT_SECRET")?,
        audit,
    )
    .await?;
    let listener = tokio::net::TcpListener::bind(gatehouse.resource().authority()).await?;
    gatehouse::serve(listener, app, std::future::pending()).await?;
    Ok(())
}
