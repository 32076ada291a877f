//! # gatehouse-billing
//!
//! The invoice MCP server from the tutorial in `shared/seed/`, made real: tools that read and
//! write a database, data partitioned by tenant, and an audit trail that answers "who voided
//! invoice 2041".
//!
//! This crate knows nothing of HTTP, status codes or tokens. It receives a verified
//! [`gatehouse::Caller`] (with its tenant resolved) through the rmcp extractor in
//! [`gatehouse::mcp`]; the Gatehouse edge has already authenticated the request and applied the
//! route and per-tool scopes, and the library's wrapper reports every call to the observers.
//!
//! The modules follow the path of a tool call:
//!
//! 1. [`server`] — [`BillingServer`], the rmcp `ServerHandler`: tool definitions, each reporting
//!    its outcome for the audit record;
//! 2. [`tenancy`] — [`TenantId`], the library's tenancy re-exported;
//! 3. [`store`] — [`Store`]: SQLite or PostgreSQL through one code path, every query constrained
//!    to a [`TenantId`];
//! 4. [`audit`] — [`AuditLog`], an [`gatehouse::observe::Observer`]: a non-blocking writer of
//!    `audit_log` rows plus a `tracing` event on the `gatehouse::audit` target.
//!
//! Wiring it up (what the command line does):
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use gatehouse_billing::{AuditLog, BillingServer, Seed, Store, configure};
//!
//! let store = Store::connect("billing.db", Seed::Demo).await?;
//! let audit = AuditLog::new(store.clone());
//! let gatehouse = configure(gatehouse::Gatehouse::builder("https://mcp.example.com/mcp".parse()?))
//!     .jwt_issuer("https://auth.example.com")
//!     .tenant_claim("tenant")
//!     .tenant_for_client("reporting-bot", "acme")?
//!     .observer(Arc::new(audit.clone()))
//!     .start()
//!     .await?;
//! let server = BillingServer::new(store);
//! let app = gatehouse.mount(move || server.clone());
//! // Serve `app` with `gatehouse::serve`; on shutdown, `audit.flush().await`.
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod audit;
pub mod credit_notes;
pub mod server;
pub mod store;
pub mod tenancy;

use std::collections::HashMap;

use gatehouse::ScopeSet;
use gatehouse::policy::{ScopeHierarchy, ScopePolicy, ToolListMode};

pub use audit::{AuditLog, AuditOutcome, AuditRecord};
pub use credit_notes::{CreditNoteDelivery, CreditNotes, CreditNotesError, Delivery};
pub use server::BillingServer;
pub use store::{Backend, CacheEvent, InvoiceCacheConfig, Seed, Store, StoreError};
pub use tenancy::{InvalidTenant, Tenancy, TenantId};

/// Scope that every billing tool needs (the route scope).
pub const SCOPE_READ: &str = "invoices:read";
/// Scope that destructive billing tools need; it implies [`SCOPE_READ`].
pub const SCOPE_WRITE: &str = "invoices:write";

/// The billing policy on a builder: [`default_policy`]'s scopes (route `invoices:read`,
/// `void_invoice` needs `invoices:write`, which implies `invoices:read`).
pub fn configure(builder: gatehouse::GatehouseBuilder) -> gatehouse::GatehouseBuilder {
    builder
        .route_scopes([SCOPE_READ])
        .tool_scopes(server::TOOL_VOID, [SCOPE_WRITE])
        .scope_implies(SCOPE_WRITE, [SCOPE_READ])
}

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
