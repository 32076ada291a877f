//! Which tenant a caller acts for: the library's [`gatehouse::tenancy`], re-exported.
//!
//! Scopes say *what* a caller may do; the tenant says *to which rows*. The tenant is resolved
//! once per verified token by the Gatehouse edge (the tenant claim, else the configured client →
//! tenant map) and read by every tool as [`gatehouse::Caller::tenant_id`]; every [`crate::Store`]
//! query that touches invoices takes a [`TenantId`]. A caller without a tenant gets a tool error
//! and no data.

pub use gatehouse::tenancy::{InvalidTenant, MAX_TENANT_LEN, Tenancy, TenantId};
