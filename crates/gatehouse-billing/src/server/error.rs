//! [`ToolError`]: why a tool call was refused or failed — fixed client-facing text, and the code
//! and outcome the audit log records.

use gatehouse::observe::Outcome;
use rmcp::model::{CallToolResult, ContentBlock};

use super::types::{MAX_LIMIT, MAX_REASON_CHARS};
use crate::store::InvoiceStatus;

/// Why a tool call was refused or failed. Client-facing text is fixed per variant (see
/// [`ToolError::message`]); internal details are logged, never returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolError {
    /// The caller has no tenant (no tenant claim, no client mapping).
    NoTenant,
    /// The invoice id is malformed.
    InvalidInvoiceId,
    /// No such invoice in the caller's tenant (also: it belongs to another tenant).
    NotFound(String),
    /// The invoice cannot be voided in its current state.
    NotOpen(String, InvoiceStatus),
    /// `limit` out of range.
    InvalidLimit,
    /// `cursor` does not decode.
    InvalidCursor,
    /// `reason` too long.
    InvalidReason,
    /// Storage failed (details logged).
    Internal,
}

impl ToolError {
    /// The machine-readable code recorded in the audit log.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoTenant => "no_tenant",
            Self::InvalidInvoiceId => "invalid_invoice_id",
            Self::NotFound(_) => "not_found",
            Self::NotOpen(..) => "not_open",
            Self::InvalidLimit => "invalid_limit",
            Self::InvalidCursor => "invalid_cursor",
            Self::InvalidReason => "invalid_reason",
            Self::Internal => "internal",
        }
    }

    /// How the audit log classifies it.
    pub fn outcome(&self) -> Outcome {
        match self {
            Self::NoTenant => Outcome::Denied,
            Self::Internal => Outcome::Error,
            Self::InvalidInvoiceId
            | Self::NotFound(_)
            | Self::NotOpen(..)
            | Self::InvalidLimit
            | Self::InvalidCursor
            | Self::InvalidReason => Outcome::Allowed,
        }
    }

    /// The client-facing text.
    pub fn message(&self) -> String {
        match self {
            Self::NoTenant => "No tenant is associated with this caller.".to_owned(),
            Self::InvalidInvoiceId => "Invalid invoice id.".to_owned(),
            // The id was validated (short, printable) before it got here; echoing it is safe and
            // identical whether the invoice is missing or another tenant's.
            Self::NotFound(id) => format!("No invoice found for {id}."),
            Self::NotOpen(id, status) => {
                format!("{id} is {status}; only open invoices can be voided.")
            }
            Self::InvalidLimit => format!("limit must be between 1 and {MAX_LIMIT}."),
            Self::InvalidCursor => "Invalid cursor.".to_owned(),
            Self::InvalidReason => {
                format!("reason must be at most {MAX_REASON_CHARS} characters.")
            }
            Self::Internal => "Internal error.".to_owned(),
        }
    }

    pub(super) fn into_result(self) -> CallToolResult {
        // Text only, no structured content: clients validate `structuredContent` against the
        // tool's output schema, which describes successes.
        CallToolResult::error(vec![ContentBlock::text(self.message())])
    }
}

/// How long a client is told to wait when the database is unreachable (it is what `/readyz`
/// reports too; a load balancer takes the replica out meanwhile).
const STORE_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

pub(super) fn internal(e: crate::store::StoreError) -> ToolError {
    if e.is_unavailable() {
        // An outage, not a bug of this call: the edge answers the whole request 503 +
        // Retry-After (stateless mode), which clients retry, instead of a tool error.
        tracing::warn!(error = %e, "billing store unavailable");
        gatehouse::mcp::report_tool_dependency_failure(
            gatehouse::mcp::DependencyFailure::Unavailable {
                retry_after: STORE_RETRY_AFTER,
            },
        );
    } else {
        tracing::error!(error = %e, "billing store failure");
    }
    ToolError::Internal
}
