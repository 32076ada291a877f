//! Rows and value types of the billing store.

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use gatehouse::Caller;
use serde::{Deserialize, Serialize};

use crate::tenancy::TenantId;

/// Longest accepted invoice identifier, in bytes.
pub const MAX_INVOICE_ID_LEN: usize = 64;

/// True when `id` is an acceptable invoice identifier: 1..=64 ASCII letters, digits, `-`, `_` or
/// `.`, starting with a letter or digit (`INV-2041`). Tools reject anything else before touching
/// the database, so identifiers echoed back in messages are always short and printable.
pub fn is_valid_invoice_id(id: &str) -> bool {
    let b = id.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_INVOICE_ID_LEN
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// The lifecycle state of an invoice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum InvoiceStatus {
    /// Issued and awaiting payment; the only state that can be voided.
    Open,
    /// Paid; can no longer be voided.
    Paid,
    /// Voided.
    Void,
}

impl InvoiceStatus {
    /// The database and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Paid => "paid",
            Self::Void => "void",
        }
    }
}

impl fmt::Display for InvoiceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status string that is none of `open`, `paid`, `void`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown invoice status")]
pub struct UnknownStatus;

impl FromStr for InvoiceStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, UnknownStatus> {
        match s {
            "open" => Ok(Self::Open),
            "paid" => Ok(Self::Paid),
            "void" => Ok(Self::Void),
            _ => Err(UnknownStatus),
        }
    }
}

/// An invoice as stored, and as inserted ([`Store::insert_invoice`](super::Store::insert_invoice):
/// seed data, imports, tests), where it has no `voided_at` or `voided_by` yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    /// The owning tenant.
    pub tenant: TenantId,
    /// The invoice identifier, unique within its tenant (`INV-2041`); must satisfy
    /// [`is_valid_invoice_id`].
    pub id: String,
    /// Customer name.
    pub customer: String,
    /// Current status (when inserted: the initial one).
    pub status: InvoiceStatus,
    /// Total in minor units of `currency` (cents for EUR).
    pub total_minor: i64,
    /// ISO 4217 currency code (three ASCII upper-case letters).
    pub currency: String,
    /// Creation time, Unix microseconds.
    pub created_at: i64,
    /// When it was voided, Unix microseconds.
    pub voided_at: Option<i64>,
    /// Who voided it (subject, else client id).
    pub voided_by: Option<String>,
}

impl Invoice {
    /// The total as a decimal string in major units (`1250.00`).
    pub fn total_display(&self) -> String {
        format_minor(self.total_minor, &self.currency)
    }
}

/// One entry of an invoice's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceEvent {
    /// What happened (`void`).
    pub action: String,
    /// Subject of the caller that did it.
    pub actor_subject: Option<String>,
    /// OAuth client the caller used.
    pub client_id: Option<String>,
    /// Reason given by the caller.
    pub reason: Option<String>,
    /// When, Unix microseconds.
    pub at: i64,
    /// Request id of the HTTP request that carried the call.
    pub request_id: Option<String>,
}

/// Who is acting, as recorded in the history and audit trail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actor {
    /// The caller's subject.
    pub subject: Option<String>,
    /// The caller's OAuth client.
    pub client_id: Option<String>,
}

/// Result of [`crate::Store::void_invoice`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoidOutcome {
    /// The invoice was open and is now void; one history event was written with it.
    Voided(Invoice),
    /// The invoice was already void; nothing was written.
    AlreadyVoid(Invoice),
    /// The invoice is in a state that cannot be voided (paid).
    NotOpen(Invoice),
    /// No such invoice in this tenant.
    NotFound,
}

/// Digits after the decimal point for a currency (ISO 4217 minor unit). The common exceptions
/// are listed; everything else uses two.
pub fn currency_exponent(currency: &str) -> u32 {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

/// Formats minor units as a decimal string in major units: `125000` EUR → `1250.00`.
pub fn format_minor(minor: i64, currency: &str) -> String {
    let exp = currency_exponent(currency);
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    if exp == 0 {
        return format!("{sign}{abs}");
    }
    let unit = 10u64.pow(exp);
    format!(
        "{sign}{}.{:0width$}",
        abs / unit,
        abs % unit,
        width = exp as usize
    )
}

/// How a `tools/call` ended: the library's [`gatehouse::observe::Outcome`], stored by its
/// spelling (`allowed`, `denied`, `error`).
pub use gatehouse::observe::{Outcome as AuditOutcome, UnknownOutcome};

/// One audited `tools/call`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// When the call was decided.
    pub at: SystemTime,
    /// Request id of the HTTP request (`x-request-id`), when the edge assigned one.
    pub request_id: Option<String>,
    /// Tool name as requested (truncated to 128 bytes).
    pub tool: String,
    /// Caller subject.
    pub subject: Option<String>,
    /// Caller OAuth client.
    pub client_id: Option<String>,
    /// Tenant the caller acts for, when known.
    pub tenant: Option<String>,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// A short machine-readable code: `ok`, `already_void`, `insufficient_scope`, `no_tenant`,
    /// `not_found`, …
    pub detail: String,
}

/// Longest tool name kept in a record: the name is caller-controlled.
const MAX_TOOL_NAME: usize = 128;

impl AuditRecord {
    /// A record of `tool` called by `caller` (as the library observed it: its tenant resolved
    /// after authentication), timestamped now. `None` for a call that reached the server without
    /// an authenticated caller.
    pub fn new(
        caller: Option<&Caller>,
        tool: &str,
        outcome: AuditOutcome,
        detail: &str,
        request_id: Option<String>,
    ) -> Self {
        match caller {
            Some(c) => Self::for_caller(c, tool, c.tenant.as_deref(), outcome, detail, request_id),
            None => Self {
                at: SystemTime::now(),
                request_id,
                tool: truncate(tool, MAX_TOOL_NAME).to_owned(),
                subject: None,
                client_id: None,
                tenant: None,
                outcome,
                detail: detail.to_owned(),
            },
        }
    }

    /// A record for `caller` calling `tool` on behalf of `tenant`, timestamped now.
    pub fn for_caller(
        caller: &Caller,
        tool: &str,
        tenant: Option<&str>,
        outcome: AuditOutcome,
        detail: &str,
        request_id: Option<String>,
    ) -> Self {
        Self {
            at: SystemTime::now(),
            request_id,
            tool: truncate(tool, MAX_TOOL_NAME).to_owned(),
            subject: caller.subject.clone(),
            client_id: caller.client_id.clone(),
            tenant: tenant.map(str::to_owned),
            outcome,
            detail: detail.to_owned(),
        }
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_formatted_in_major_units() {
        let cases = [
            (125000, "EUR", "1250.00"),
            (5, "USD", "0.05"),
            (-1999, "EUR", "-19.99"),
            (1500, "JPY", "1500"),
            (12345, "KWD", "12.345"),
            (i64::MIN, "EUR", "-92233720368547758.08"),
        ];
        for (minor, cur, want) in cases {
            assert_eq!(format_minor(minor, cur), want, "{minor} {cur}");
        }
    }

    #[test]
    fn invoice_ids_are_short_and_printable() {
        for ok in ["INV-2041", "a", "A.b_c-1", &"x".repeat(MAX_INVOICE_ID_LEN)] {
            assert!(is_valid_invoice_id(ok), "{ok:?}");
        }
        for bad in [
            "",
            "-INV",
            "INV 1",
            "INV/1",
            "ÄÖ",
            "a\n",
            &"x".repeat(MAX_INVOICE_ID_LEN + 1),
        ] {
            assert!(!is_valid_invoice_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn status_round_trips() {
        for s in [
            InvoiceStatus::Open,
            InvoiceStatus::Paid,
            InvoiceStatus::Void,
        ] {
            assert_eq!(s.as_str().parse::<InvoiceStatus>(), Ok(s));
        }
        assert_eq!("OPEN".parse::<InvoiceStatus>(), Err(UnknownStatus));
    }

    #[test]
    fn outcome_round_trips() {
        for o in [
            AuditOutcome::Allowed,
            AuditOutcome::Denied,
            AuditOutcome::Error,
        ] {
            assert_eq!(o.as_str().parse::<AuditOutcome>(), Ok(o));
        }
        assert!("ok".parse::<AuditOutcome>().is_err());
    }

    #[test]
    fn long_tool_names_are_truncated_on_a_char_boundary() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("ééé", 3), "é");
        assert_eq!(
            truncate(&"x".repeat(500), MAX_TOOL_NAME).len(),
            MAX_TOOL_NAME
        );
    }
}
