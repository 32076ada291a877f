//! The billing MCP server: four invoice tools over the [`Store`], behind Gatehouse.
//!
//! # What the library does around it
//!
//! Mounted with [`gatehouse::Gatehouse::mount`], the server is wrapped in
//! [`gatehouse::mcp::Protected`]: the edge has verified the token and applied the route and
//! per-tool scopes before a `tools/call` reaches rmcp; the wrapper checks the tool's scopes again
//! (defence in depth), reports every call once to the observers (the [`crate::AuditLog`] is one),
//! and filters `tools/list` by scope when configured. The caller's tenant was resolved once,
//! after authentication ([`gatehouse::tenancy`]).
//!
//! # What the tools do
//!
//! Each tool takes the tenant from the [`Caller`] (no tenant: a tool error and no data), passes it
//! to every query, and reports its precise outcome for the audit record
//! ([`gatehouse::mcp::report_outcome`]: `ok`, `already_void`, `not_found`, …). Refusals are tool
//! errors (`isError: true`) with fixed text; details go to the log.

use std::sync::Arc;

use gatehouse::Caller;
use gatehouse::mcp::{RequestId, report_outcome};
use gatehouse::observe::Outcome;
use rmcp::handler::server::common::schema_for_output;
use rmcp::handler::server::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use serde::{Deserialize, Serialize};

use crate::store::{
    Actor, Cursor, Invoice, InvoiceEvent, InvoiceStatus, Store, VoidOutcome, is_valid_invoice_id,
    rfc3339_micros,
};
use crate::tenancy::TenantId;

/// Name of the lookup tool.
pub const TOOL_LOOKUP: &str = "lookup_invoice";
/// Name of the listing tool.
pub const TOOL_LIST: &str = "list_invoices";
/// Name of the void tool.
pub const TOOL_VOID: &str = "void_invoice";
/// Name of the history tool.
pub const TOOL_HISTORY: &str = "invoice_history";

/// Page size when `limit` is absent.
pub const DEFAULT_LIMIT: u32 = 20;
/// Largest page size.
pub const MAX_LIMIT: u32 = 100;
/// Longest accepted void reason, in characters.
pub const MAX_REASON_CHARS: usize = 500;

// ---------------------------------------------------------------------------------------------
// Parameters and structured results (the tools' JSON schemas come from these types).

/// Parameters of `lookup_invoice`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LookupInvoiceParams {
    /// The invoice id, e.g. INV-2041.
    pub invoice_id: String,
}

/// Parameters of `list_invoices`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListInvoicesParams {
    /// Only invoices with this status.
    #[serde(default)]
    pub status: Option<InvoiceStatus>,
    /// Page size, 1 to 100 (default 20).
    #[serde(default)]
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<u32>,
    /// `nextCursor` from the previous page, to continue the listing.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// Parameters of `void_invoice`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VoidInvoiceParams {
    /// The invoice id, e.g. INV-2041.
    pub invoice_id: String,
    /// Why the invoice is voided (kept in its history; at most 500 characters).
    #[serde(default)]
    pub reason: Option<String>,
}

/// Parameters of `invoice_history`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceHistoryParams {
    /// The invoice id, e.g. INV-2041.
    pub invoice_id: String,
}

/// An invoice as tools return it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceView {
    /// The invoice id.
    pub invoice_id: String,
    /// The tenant that owns it (always the caller's).
    pub tenant: String,
    /// Customer name.
    pub customer: String,
    /// `open`, `paid` or `void`.
    pub status: InvoiceStatus,
    /// Total in major units, as a decimal string (`1250.00`).
    pub total: String,
    /// Total in minor units (`125000`).
    pub total_minor: i64,
    /// ISO 4217 currency code.
    pub currency: String,
    /// Creation time, RFC 3339.
    pub created_at: String,
    /// When it was voided, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voided_at: Option<String>,
    /// Who voided it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voided_by: Option<String>,
}

impl From<&Invoice> for InvoiceView {
    fn from(i: &Invoice) -> Self {
        Self {
            invoice_id: i.id.clone(),
            tenant: i.tenant.to_string(),
            customer: i.customer.clone(),
            status: i.status,
            total: i.total_display(),
            total_minor: i.total_minor,
            currency: i.currency.clone(),
            created_at: rfc3339_micros(i.created_at),
            voided_at: i.voided_at.map(rfc3339_micros),
            voided_by: i.voided_by.clone(),
        }
    }
}

/// Result of `list_invoices`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvoicePage {
    /// Invoices, newest first.
    pub invoices: Vec<InvoiceView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Result of `void_invoice`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VoidResult {
    /// The invoice after the call.
    pub invoice: InvoiceView,
    /// True when the invoice was already void and nothing changed.
    pub already_void: bool,
}

/// One history entry as tools return it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    /// What happened (`void`).
    pub action: String,
    /// Subject of the caller that did it.
    pub subject: Option<String>,
    /// OAuth client used.
    pub client_id: Option<String>,
    /// Reason given.
    pub reason: Option<String>,
    /// When, RFC 3339.
    pub at: String,
    /// Request id of the call.
    pub request_id: Option<String>,
}

impl From<&InvoiceEvent> for EventView {
    fn from(e: &InvoiceEvent) -> Self {
        Self {
            action: e.action.clone(),
            subject: e.actor_subject.clone(),
            client_id: e.client_id.clone(),
            reason: e.reason.clone(),
            at: rfc3339_micros(e.at),
            request_id: e.request_id.clone(),
        }
    }
}

/// Result of `invoice_history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceHistory {
    /// The invoice id.
    pub invoice_id: String,
    /// Events, oldest first.
    pub events: Vec<EventView>,
}

// ---------------------------------------------------------------------------------------------
// Tool errors: fixed client-facing text, a code for the audit log.

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

    fn into_result(self) -> CallToolResult {
        // Text only, no structured content: clients validate `structuredContent` against the
        // tool's output schema, which describes successes.
        CallToolResult::error(vec![ContentBlock::text(self.message())])
    }
}

fn internal(e: crate::store::StoreError) -> ToolError {
    tracing::error!(error = %e, "billing store failure");
    ToolError::Internal
}

/// A successful tool answer: a human-readable line plus structured content.
fn success<T: Serialize>(text: String, value: &T) -> CallToolResult {
    match serde_json::to_value(value) {
        Ok(v) => {
            let mut r = CallToolResult::structured(v);
            // Human text first; rmcp already put the serialized JSON in a text block for clients
            // that ignore `structuredContent` (MCP 2025-06-18 §Structured Content: SHOULD).
            r.content.insert(0, ContentBlock::text(text));
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "failed to serialize tool result");
            ToolError::Internal.into_result()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The server.

/// The billing MCP server. Cheap to clone (one `Arc`): rmcp's Streamable HTTP service builds one
/// per request from a factory closure, and the tool router is built once, in [`BillingServer::new`].
#[derive(Clone)]
pub struct BillingServer {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    tool_router: ToolRouter<BillingServer>,
}

impl std::fmt::Debug for BillingServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BillingServer")
            .field("backend", &self.inner.store.backend())
            .finish_non_exhaustive()
    }
}

impl BillingServer {
    /// A server over `store`. Mount it with [`gatehouse::Gatehouse::mount`] (which adds the
    /// scope checks, tenancy and the audit of every call around it).
    pub fn new(store: Store) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                tool_router: Self::tool_router(),
            }),
        }
    }

    /// The caller's tenant, resolved once after authentication. Every tool starts here.
    fn tenant(caller: &Caller) -> Result<TenantId, ToolError> {
        caller.tenant_id().ok_or(ToolError::NoTenant)
    }

    /// Reports the outcome for the audit record of this call and renders the answer.
    fn finish(r: Result<(CallToolResult, &'static str), ToolError>) -> CallToolResult {
        match r {
            Ok((result, code)) => {
                report_outcome(Outcome::Allowed, code);
                result
            }
            Err(e) => {
                report_outcome(e.outcome(), e.code());
                e.into_result()
            }
        }
    }

    async fn do_lookup(&self, caller: &Caller, p: LookupInvoiceParams) -> ToolOutcome {
        let tenant = Self::tenant(caller)?;
        let id = valid_id(p.invoice_id)?;
        let inv = self
            .inner
            .store
            .invoice(&tenant, &id)
            .await
            .map_err(internal)?;
        let inv = inv.ok_or(ToolError::NotFound(id))?;
        let text = format!(
            "{}: {}, total {} {}",
            inv.id,
            inv.status,
            inv.total_display(),
            inv.currency
        );
        Ok((success(text, &InvoiceView::from(&inv)), "ok"))
    }

    async fn do_list(&self, caller: &Caller, p: ListInvoicesParams) -> ToolOutcome {
        let tenant = Self::tenant(caller)?;
        let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ToolError::InvalidLimit);
        }
        let after = match p.cursor.as_deref() {
            Some(c) => Some(Cursor::decode(c).map_err(|_| ToolError::InvalidCursor)?),
            None => None,
        };
        let page = self
            .inner
            .store
            .list_invoices(&tenant, p.status, limit, after.as_ref())
            .await
            .map_err(internal)?;
        let mut text = if page.invoices.is_empty() {
            "No invoices.".to_owned()
        } else {
            page.invoices
                .iter()
                .map(|i| {
                    format!(
                        "{}: {}, total {} {}",
                        i.id,
                        i.status,
                        i.total_display(),
                        i.currency
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        let next_cursor = page.next.as_ref().map(Cursor::encode);
        if let Some(c) = &next_cursor {
            text.push_str(&format!("\nMore: pass cursor {c}"));
        }
        let out = InvoicePage {
            invoices: page.invoices.iter().map(InvoiceView::from).collect(),
            next_cursor,
        };
        Ok((success(text, &out), "ok"))
    }

    async fn do_void(
        &self,
        caller: &Caller,
        request_id: &RequestId,
        p: VoidInvoiceParams,
    ) -> ToolOutcome {
        let tenant = Self::tenant(caller)?;
        let id = valid_id(p.invoice_id)?;
        let reason = p.reason.filter(|r| !r.trim().is_empty());
        if reason
            .as_ref()
            .is_some_and(|r| r.chars().count() > MAX_REASON_CHARS)
        {
            return Err(ToolError::InvalidReason);
        }
        let actor = Actor {
            subject: caller.subject.clone(),
            client_id: caller.client_id.clone(),
        };
        let outcome = self
            .inner
            .store
            .void_invoice(
                &tenant,
                &id,
                &actor,
                reason.as_deref(),
                request_id.0.as_deref(),
            )
            .await
            .map_err(internal)?;
        match outcome {
            VoidOutcome::Voided(inv) => {
                let out = VoidResult {
                    invoice: InvoiceView::from(&inv),
                    already_void: false,
                };
                Ok((success(format!("Voided {}.", inv.id), &out), "ok"))
            }
            VoidOutcome::AlreadyVoid(inv) => {
                let out = VoidResult {
                    invoice: InvoiceView::from(&inv),
                    already_void: true,
                };
                Ok((
                    success(
                        format!("{} is already void; nothing changed.", inv.id),
                        &out,
                    ),
                    "already_void",
                ))
            }
            VoidOutcome::NotOpen(inv) => Err(ToolError::NotOpen(inv.id, inv.status)),
            VoidOutcome::NotFound => Err(ToolError::NotFound(id)),
        }
    }

    async fn do_history(&self, caller: &Caller, p: InvoiceHistoryParams) -> ToolOutcome {
        let tenant = Self::tenant(caller)?;
        let id = valid_id(p.invoice_id)?;
        let events = self
            .inner
            .store
            .invoice_history(&tenant, &id)
            .await
            .map_err(internal)?;
        let events = events.ok_or_else(|| ToolError::NotFound(id.clone()))?;
        let text = if events.is_empty() {
            format!("{id}: no events.")
        } else {
            events
                .iter()
                .map(|e| {
                    format!(
                        "{} {} by {} via {}{}",
                        rfc3339_micros(e.at),
                        e.action,
                        e.actor_subject.as_deref().unwrap_or("(no subject)"),
                        e.client_id.as_deref().unwrap_or("(no client)"),
                        e.reason
                            .as_deref()
                            .map(|r| format!(": {r}"))
                            .unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        let out = InvoiceHistory {
            invoice_id: id,
            events: events.iter().map(EventView::from).collect(),
        };
        Ok((success(text, &out), "ok"))
    }
}

type ToolOutcome = Result<(CallToolResult, &'static str), ToolError>;

fn valid_id(id: String) -> Result<String, ToolError> {
    if is_valid_invoice_id(&id) {
        Ok(id)
    } else {
        Err(ToolError::InvalidInvoiceId)
    }
}

#[tool_router]
impl BillingServer {
    #[tool(
        name = "lookup_invoice",
        description = "Return the status and total of one invoice by id. Requires invoices:read.",
        output_schema = schema_for_output::<InvoiceView>(),
        annotations(title = "Look up an invoice", read_only_hint = true, open_world_hint = false)
    )]
    async fn lookup_invoice(
        &self,
        caller: Caller,
        Parameters(p): Parameters<LookupInvoiceParams>,
    ) -> CallToolResult {
        Self::finish(self.do_lookup(&caller, p).await)
    }

    #[tool(
        name = "list_invoices",
        description = "List invoices, newest first, optionally by status. Paginated: pass \
                       nextCursor back as cursor. Requires invoices:read.",
        output_schema = schema_for_output::<InvoicePage>(),
        annotations(title = "List invoices", read_only_hint = true, open_world_hint = false)
    )]
    async fn list_invoices(
        &self,
        caller: Caller,
        Parameters(p): Parameters<ListInvoicesParams>,
    ) -> CallToolResult {
        Self::finish(self.do_list(&caller, p).await)
    }

    #[tool(
        name = "void_invoice",
        description = "Void an open invoice. Voiding a void invoice changes nothing and says so; \
                       paid invoices cannot be voided. Requires invoices:write.",
        output_schema = schema_for_output::<VoidResult>(),
        annotations(
            title = "Void an invoice",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn void_invoice(
        &self,
        caller: Caller,
        request_id: RequestId,
        Parameters(p): Parameters<VoidInvoiceParams>,
    ) -> CallToolResult {
        Self::finish(self.do_void(&caller, &request_id, p).await)
    }

    #[tool(
        name = "invoice_history",
        description = "The history of one invoice: who voided it, when, with which client and \
                       why. Requires invoices:read.",
        output_schema = schema_for_output::<InvoiceHistory>(),
        annotations(title = "Invoice history", read_only_hint = true, open_world_hint = false)
    )]
    async fn invoice_history(
        &self,
        caller: Caller,
        Parameters(p): Parameters<InvoiceHistoryParams>,
    ) -> CallToolResult {
        Self::finish(self.do_history(&caller, p).await)
    }
}

#[tool_handler(
    router = self.inner.tool_router,
    name = "gatehouse-billing",
    instructions = "Invoices of your tenant: look up, list, void (needs invoices:write) and \
                    read the history of an invoice."
)]
impl ServerHandler for BillingServer {}
