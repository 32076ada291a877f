//! The credit-note outbox: what voids owe the ledger, written in the void's transaction and
//! delivered afterwards (the row id is the idempotency key, so a delivery retried after a lost
//! answer is still one credit note at the ledger).

use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Store, StoreError};
use crate::store::micros::now_micros;
use crate::store::model::{Actor, Invoice};

/// One credit note owed to the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwedCreditNote {
    /// The row id: the idempotency key at the ledger.
    pub id: String,
    /// The tenant of the voided invoice.
    pub tenant: String,
    /// The voided invoice.
    pub invoice_id: String,
    /// Its total, in minor units.
    pub amount_minor: i64,
    /// Its currency.
    pub currency: String,
    /// The void's reason.
    pub reason: Option<String>,
    /// Who voided it (subject), for the ledger's record.
    pub subject: Option<String>,
    /// With which client.
    pub client_id: Option<String>,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// The last failure, when the last attempt failed.
    pub last_error: Option<String>,
    /// When the ledger confirmed it (Unix µs).
    pub delivered_at: Option<i64>,
    /// The ledger's id for it.
    pub ledger_id: Option<String>,
    /// After a failure: not to be tried again before this (Unix µs).
    pub next_attempt_at: Option<i64>,
}

/// The result of one delivery attempt, for [`Store::record_credit_note_attempt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt<'a> {
    /// The ledger confirmed the note and gave it this id.
    Delivered {
        /// The ledger's id.
        ledger_id: &'a str,
    },
    /// It did not; try again at `retry_at` (Unix µs).
    Failed {
        /// Why, in a few fixed words (shown by `invoice_history`).
        error: &'a str,
        /// Not before this.
        retry_at: i64,
    },
}

pub(super) async fn insert(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    inv: &Invoice,
    actor: &Actor,
    reason: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO credit_note_outbox \
         (id, tenant_id, invoice_id, amount_minor, currency, reason, subject, client_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(inv.tenant.as_str())
    .bind(inv.id.as_str())
    .bind(inv.total_minor)
    .bind(inv.currency.as_str())
    .bind(reason)
    .bind(actor.subject.as_deref())
    .bind(actor.client_id.as_deref())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

const COLUMNS: &str = "id, tenant_id, invoice_id, amount_minor, currency, reason, subject, \
                       client_id, attempts, last_error, delivered_at, ledger_id, next_attempt_at";

fn from_row(r: &AnyRow) -> Result<OwedCreditNote, StoreError> {
    Ok(OwedCreditNote {
        id: r.try_get("id")?,
        tenant: r.try_get("tenant_id")?,
        invoice_id: r.try_get("invoice_id")?,
        amount_minor: r.try_get("amount_minor")?,
        currency: r.try_get("currency")?,
        reason: r.try_get("reason")?,
        subject: r.try_get("subject")?,
        client_id: r.try_get("client_id")?,
        attempts: r.try_get("attempts")?,
        last_error: r.try_get("last_error")?,
        delivered_at: r.try_get("delivered_at")?,
        ledger_id: r.try_get("ledger_id")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
    })
}

impl Store {
    /// The oldest `limit` credit notes not yet delivered.
    pub async fn owed_credit_notes(&self, limit: u32) -> Result<Vec<OwedCreditNote>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM credit_note_outbox WHERE delivered_at IS NULL \
             ORDER BY created_at, id LIMIT $1"
        )))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Every credit note of one invoice (delivered or not), oldest first.
    pub async fn credit_notes_of(
        &self,
        tenant: &crate::tenancy::TenantId,
        invoice_id: &str,
    ) -> Result<Vec<OwedCreditNote>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM credit_note_outbox WHERE tenant_id = $1 AND invoice_id = $2 \
             ORDER BY created_at, id"
        )))
        .bind(tenant.as_str())
        .bind(invoice_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// The oldest `limit` undelivered notes that are due at `now` (Unix µs): a note never tried
    /// once it is `grace` µs old (the request that wrote it tries first), a note that failed
    /// once its backoff has passed.
    pub async fn due_credit_notes(
        &self,
        now: i64,
        grace: i64,
        limit: u32,
    ) -> Result<Vec<OwedCreditNote>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM credit_note_outbox WHERE delivered_at IS NULL \
             AND ((attempts = 0 AND created_at <= $1) OR (attempts > 0 AND next_attempt_at <= $2)) \
             ORDER BY created_at, id LIMIT $3"
        )))
        .bind(now.saturating_sub(grace))
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Records a delivery attempt. A confirmation marks the note delivered once: a second one
    /// (another replica's courier, a retry whose first answer was lost) changes nothing.
    pub async fn record_credit_note_attempt(
        &self,
        id: &str,
        attempt: Attempt<'_>,
    ) -> Result<(), StoreError> {
        let q = match attempt {
            Attempt::Delivered { ledger_id } => sqlx::query(
                "UPDATE credit_note_outbox SET attempts = attempts + 1, delivered_at = $1, \
                 ledger_id = $2, last_error = NULL, next_attempt_at = NULL \
                 WHERE id = $3 AND delivered_at IS NULL",
            )
            .bind(now_micros())
            .bind(ledger_id)
            .bind(id),
            Attempt::Failed { error, retry_at } => sqlx::query(
                "UPDATE credit_note_outbox SET attempts = attempts + 1, last_error = $1, \
                 next_attempt_at = $2 WHERE id = $3 AND delivered_at IS NULL",
            )
            .bind(error.chars().take(200).collect::<String>())
            .bind(retry_at)
            .bind(id),
        };
        q.execute(&self.pool).await?;
        Ok(())
    }
}
