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
//!
//! # Layout
//!
//! This file: the server and its four tools. `types`: their parameters and results (re-exported
//! here). `error`: [`ToolError`], the refusals.

mod error;
mod types;

use std::sync::Arc;

use gatehouse::Caller;
use gatehouse::mcp::{RequestId, report_outcome};
use gatehouse::observe::Outcome;
use gatehouse::upstream::UpstreamAccess;
use rmcp::handler::server::common::schema_for_output;
use rmcp::handler::server::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use serde::Serialize;

pub use error::ToolError;
pub use types::{
    CreditNoteView, DEFAULT_LIMIT, EventView, InvoiceHistory, InvoiceHistoryParams, InvoicePage,
    InvoiceView, ListInvoicesParams, LookupInvoiceParams, MAX_LIMIT, MAX_REASON_CHARS,
    VoidInvoiceParams, VoidResult,
};

use crate::credit_notes::CreditNotes;
use crate::store::{Actor, Cursor, Store, VoidOutcome, is_valid_invoice_id, rfc3339_micros};
use crate::tenancy::TenantId;
use error::internal;

/// Name of the lookup tool.
pub const TOOL_LOOKUP: &str = "lookup_invoice";
/// Name of the listing tool.
pub const TOOL_LIST: &str = "list_invoices";
/// Name of the void tool.
pub const TOOL_VOID: &str = "void_invoice";
/// Name of the history tool.
pub const TOOL_HISTORY: &str = "invoice_history";

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

/// The billing MCP server. Cheap to clone (one `Arc`): rmcp's Streamable HTTP service builds one
/// per request from a factory closure, and the tool router is built once, in [`BillingServer::new`].
#[derive(Clone)]
pub struct BillingServer {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    /// Credit notes to the ledger for every void, when configured.
    credit_notes: Option<CreditNotes>,
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
                credit_notes: None,
                tool_router: Self::tool_router(),
            }),
        }
    }

    /// A server whose voids post a credit note to the ledger ([`crate::credit_notes`]): the
    /// store writes each note with its void, the void tool delivers it as the user, and the
    /// courier (run it with [`CreditNotes::spawn_courier`]) retries what did not arrive.
    pub fn with_credit_notes(store: Store, credit_notes: CreditNotes) -> Self {
        Self {
            inner: Arc::new(Inner {
                store: store.with_credit_notes(true),
                credit_notes: Some(credit_notes),
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
        upstreams: &UpstreamAccess,
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
                let credit_note = self
                    .deliver_credit_note(&tenant, &inv.id, upstreams)
                    .await?;
                let text = match &credit_note {
                    Some(n) => format!("Voided {}; {}.", inv.id, n.describe()),
                    None => format!("Voided {}.", inv.id),
                };
                let out = VoidResult {
                    invoice: InvoiceView::from(&inv),
                    already_void: false,
                    credit_note,
                };
                Ok((success(text, &out), "ok"))
            }
            VoidOutcome::AlreadyVoid(inv) => {
                let out = VoidResult {
                    invoice: InvoiceView::from(&inv),
                    already_void: true,
                    credit_note: None,
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

    /// The inline delivery of the credit note the void just wrote (see [`crate::credit_notes`]).
    /// The void has committed whatever happens here: a failed delivery leaves the note pending
    /// for the courier, and the tool still reports the void.
    async fn deliver_credit_note(
        &self,
        tenant: &TenantId,
        invoice_id: &str,
        upstreams: &UpstreamAccess,
    ) -> Result<Option<CreditNoteView>, ToolError> {
        let Some(credit_notes) = &self.inner.credit_notes else {
            return Ok(None);
        };
        let store = &self.inner.store;
        let notes = store
            .credit_notes_of(tenant, invoice_id)
            .await
            .map_err(internal)?;
        let Some(mut note) = notes.into_iter().find(|n| n.delivered_at.is_none()) else {
            return Ok(None);
        };
        match credit_notes.deliver_as_caller(upstreams, &note).await {
            Ok(crate::credit_notes::Delivery::Delivered(ledger_id)) => {
                note.attempts += 1;
                note.ledger_id = Some(ledger_id);
                note.delivered_at = Some(crate::store::now_micros());
            }
            Ok(crate::credit_notes::Delivery::Pending(why)) => {
                note.attempts += 1;
                note.last_error = Some(why.to_owned());
            }
            // Recording the attempt failed: the note is still owed, and the courier will find it.
            Err(e) => tracing::warn!(error = %e, "recording a credit-note attempt failed"),
        }
        Ok(Some(CreditNoteView::from(&note)))
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
        let credit_notes: Vec<CreditNoteView> = self
            .inner
            .store
            .credit_notes_of(&tenant, &id)
            .await
            .map_err(internal)?
            .iter()
            .map(CreditNoteView::from)
            .collect();
        let mut text = if events.is_empty() {
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
        for n in &credit_notes {
            text.push('\n');
            text.push_str(&n.describe());
        }
        let out = InvoiceHistory {
            invoice_id: id,
            events: events.iter().map(EventView::from).collect(),
            credit_notes,
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
        upstreams: UpstreamAccess,
        Parameters(p): Parameters<VoidInvoiceParams>,
    ) -> CallToolResult {
        Self::finish(self.do_void(&caller, &request_id, &upstreams, p).await)
    }

    #[tool(
        name = "invoice_history",
        description = "The history of one invoice: who voided it, when, with which client and \
                       why, and whether its credit note reached the ledger. Requires invoices:read.",
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
