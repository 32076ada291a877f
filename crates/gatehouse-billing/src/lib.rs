//! # gatehouse-billing
//!
//! The invoice MCP server from the tutorial in `shared/seed/`, made real: tools that read and
//! write a database, data partitioned by tenant, and an audit trail that answers "who voided
//! invoice 2041".
//!
//! This crate knows nothing of HTTP, status codes or tokens. It receives a verified
//! [`gatehouse::Caller`] through the rmcp extractor in [`gatehouse::mcp`]; the Gatehouse edge
//! layer has already authenticated the request and applied the route and per-tool scopes.
//!
//! The modules follow the path of a tool call:
//!
//! 1. [`server`] — [`BillingServer`], the rmcp `ServerHandler`: tool definitions, the in-tool
//!    scope check (defence in depth), `tools/list` filtering, one audit record per `tools/call`;
//! 2. [`tenancy`] — [`TenantResolver`]: which tenant a caller acts for ([`TenantId`]);
//! 3. [`store`] — [`Store`]: SQLite or PostgreSQL through one code path, every query constrained
//!    to a [`TenantId`];
//! 4. [`audit`] — [`AuditLog`]: a non-blocking writer of `audit_log` rows plus a `tracing` event on
//!    the `gatehouse::audit` target.
//!
//! Wiring it up (what the command line does):
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use gatehouse_billing::{AuditLog, BillingServer, Seed, Store, TenantResolver, default_policy};
//!
//! let store = Store::connect("billing.db", Seed::Demo).await?;
//! let audit = AuditLog::new(store.clone());
//! let tenants = TenantResolver::new().with_client("reporting-bot", "acme")?;
//! let server = BillingServer::new(store, default_policy(), tenants, audit.clone());
//! // Hand `move || Ok(server.clone())` to rmcp's `StreamableHttpService::new`, behind the
//! // Gatehouse layer; on shutdown, `audit.flush().await`.
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod audit;
pub mod server;
pub mod store;
pub mod tenancy;

use std::collections::HashMap;

use gatehouse::ScopeSet;
use gatehouse::policy::{ScopeHierarchy, ScopePolicy, ToolListMode};

pub use audit::{AuditLog, AuditOutcome, AuditRecord};
pub use server::BillingServer;
pub use store::{Backend, InvoiceCacheConfig, Seed, Store, StoreError};
pub use tenancy::{InvalidTenant, TenantId, TenantResolver};

/// Scope that every billing tool needs (the route scope).
pub const SCOPE_READ: &str = "invoices:read";
/// Scope that destructive billing tools need; it implies [`SCOPE_READ`].
pub const SCOPE_WRITE: &str = "invoices:write";

/// The demo's policy: every request needs `invoices:read`, `void_invoice` needs
/// `invoices:write`, and `invoices:write` implies `invoices:read`. `tools/list` shows every tool
/// (so clients can discover what to step up to).
pub fn default_policy() -> ScopePolicy {
    default_policy_with(ToolListMode::All)
}

/// [`default_policy`] with another `tools/list` mode.
pub fn default_policy_with(list_mode: ToolListMode) -> ScopePolicy {
    // These literals are valid scope tokens, so parsing cannot fail; an `expect` here would be
    // a programming error caught by the unit test below.
    let route = ScopeSet::parse([SCOPE_READ]).expect("valid scope literal");
    let mut tools = HashMap::new();
    tools.insert(
        server::TOOL_VOID.to_owned(),
        ScopeSet::parse([SCOPE_WRITE]).expect("valid scope literal"),
    );
    let hierarchy =
        ScopeHierarchy::new([(SCOPE_WRITE, [SCOPE_READ])]).expect("acyclic scope hierarchy");
    ScopePolicy::new(route, tools, hierarchy, list_mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_routes_read_and_steps_up_void_to_write() {
        let p = default_policy();
        assert_eq!(p.route_scopes().to_space_separated(), SCOPE_READ);
        assert_eq!(
            p.tool_scopes(server::TOOL_VOID)
                .unwrap()
                .to_space_separated(),
            SCOPE_WRITE
        );
        assert!(p.tool_scopes(server::TOOL_LOOKUP).is_none());
        let write = gatehouse::Scope::new(SCOPE_WRITE).unwrap();
        let read = gatehouse::Scope::new(SCOPE_READ).unwrap();
        assert!(p.hierarchy().grants(&write, &read));
        assert!(!p.hierarchy().grants(&read, &write));
        assert_eq!(p.list_mode(), ToolListMode::All);
        assert_eq!(
            default_policy_with(ToolListMode::FilterByScope).list_mode(),
            ToolListMode::FilterByScope
        );
    }
}
