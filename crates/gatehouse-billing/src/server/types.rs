//! The tools' parameters and structured results (their JSON schemas come from these types), and
//! the limits on parameters.

use serde::{Deserialize, Serialize};

use crate::store::outbox::OwedCreditNote;
use crate::store::{Invoice, InvoiceEvent, InvoiceStatus, rfc3339_micros};

/// Page size when `limit` is absent.
pub const DEFAULT_LIMIT: u32 = 20;
/// Largest page size.
pub const MAX_LIMIT: u32 = 100;
/// Longest accepted void reason, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// Parameters of `lookup_invoice`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[schemars(transform = gatehouse::mcp::portable_nullables)]
#[serde(rename_all = "camelCase")]
pub struct LookupInvoiceParams {
    /// The invoice id, e.g. INV-2041.
    pub invoice_id: String,
}

/// Parameters of `list_invoices`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[schemars(transform = gatehouse::mcp::portable_nullables)]
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
#[schemars(transform = gatehouse::mcp::portable_nullables)]
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
#[schemars(transform = gatehouse::mcp::portable_nullables)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceHistoryParams {
    /// The invoice id, e.g. INV-2041.
    pub invoice_id: String,
}

/// An invoice as tools return it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(transform = gatehouse::mcp::portable_nullables)]
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
#[schemars(transform = gatehouse::mcp::portable_nullables)]
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
#[schemars(transform = gatehouse::mcp::portable_nullables)]
#[serde(rename_all = "camelCase")]
pub struct VoidResult {
    /// The invoice after the call.
    pub invoice: InvoiceView,
    /// True when the invoice was already void and nothing changed.
    pub already_void: bool,
    /// The credit note this void owes the ledger, when credit notes are on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credit_note: Option<CreditNoteView>,
}

/// A credit note owed to the ledger and whether it got there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(transform = gatehouse::mcp::portable_nullables)]
#[serde(rename_all = "camelCase")]
pub struct CreditNoteView {
    /// Its id here: the idempotency key at the ledger.
    pub id: String,
    /// `delivered` or `pending` (retried until the ledger has it).
    pub status: String,
    /// The ledger's id, once delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger_id: Option<String>,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// Why the last attempt failed, while pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the ledger confirmed it, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<String>,
}

impl From<&OwedCreditNote> for CreditNoteView {
    fn from(n: &OwedCreditNote) -> Self {
        Self {
            id: n.id.clone(),
            status: if n.delivered_at.is_some() {
                "delivered"
            } else {
                "pending"
            }
            .into(),
            ledger_id: n.ledger_id.clone(),
            attempts: n.attempts,
            last_error: n.last_error.clone(),
            delivered_at: n.delivered_at.map(rfc3339_micros),
        }
    }
}

impl CreditNoteView {
    /// One line for the tool's text answer.
    pub fn describe(&self) -> String {
        match &self.ledger_id {
            Some(l) => format!("credit note {} delivered to the ledger as {l}", self.id),
            None => format!(
                "credit note {} pending after {} attempt(s){}; it is retried until the ledger has it",
                self.id,
                self.attempts,
                self.last_error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            ),
        }
    }
}

/// One history entry as tools return it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(transform = gatehouse::mcp::portable_nullables)]
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
#[schemars(transform = gatehouse::mcp::portable_nullables)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceHistory {
    /// The invoice id.
    pub invoice_id: String,
    /// Events, oldest first.
    pub events: Vec<EventView>,
    /// Credit notes owed to the ledger for this invoice and their delivery.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credit_notes: Vec<CreditNoteView>,
}
