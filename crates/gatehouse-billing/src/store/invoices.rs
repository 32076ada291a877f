//! Invoice queries: inserting, reading, listing, voiding and history, each within one tenant.

use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::micros::now_micros;
use super::{
    Actor, Cursor, Invoice, InvoiceEvent, InvoiceStatus, Store, StoreError, VoidOutcome,
    is_valid_invoice_id,
};
use crate::tenancy::TenantId;

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Invoices, newest first.
    pub invoices: Vec<Invoice>,
    /// Where the next page starts, when there is one.
    pub next: Option<Cursor>,
}

impl Store {
    /// Inserts a new invoice. Returns `false` (and changes nothing) when the tenant already has
    /// an invoice with that id. An invoice that carries `voided_at` or `voided_by` is refused:
    /// voids are recorded by [`Store::void_invoice`], with their history event.
    pub async fn insert_invoice(&self, inv: &Invoice) -> Result<bool, StoreError> {
        if !is_valid_invoice_id(&inv.id) {
            return Err(StoreError::InvalidInput("invoice id"));
        }
        if inv.voided_at.is_some() || inv.voided_by.is_some() {
            return Err(StoreError::InvalidInput("voided_at/voided_by"));
        }
        if inv.currency.len() != 3 || !inv.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(StoreError::InvalidInput("currency"));
        }
        let done = sqlx::query(
            "INSERT INTO invoices (tenant_id, id, customer, status, total_minor, currency, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id, id) DO NOTHING",
        )
        .bind(inv.tenant.as_str())
        .bind(&inv.id)
        .bind(&inv.customer)
        .bind(inv.status.as_str())
        .bind(inv.total_minor)
        .bind(&inv.currency)
        .bind(inv.created_at)
        .execute(&self.pool)
        .await?;
        // Nothing was cached for an id that did not exist (misses are not cached); this keeps
        // the rule "every committed write invalidates" without exceptions. No notification to
        // other replicas for the same reason: they cannot hold an invoice that did not exist
        // (and `DO NOTHING` leaves an existing one unchanged).
        self.cache.invalidate(&inv.tenant, &inv.id);
        Ok(done.rows_affected() == 1)
    }

    /// One invoice of `tenant`; `None` when the tenant has no such invoice (whether or not
    /// another tenant does). Served from the invoice cache when it holds the invoice (see
    /// [`InvoiceCacheConfig`](super::InvoiceCacheConfig) for how fresh that is).
    pub async fn invoice(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<Invoice>, StoreError> {
        let ticket = match self.cache.get(tenant, id) {
            Ok(inv) => return Ok(Some(inv)),
            Err(ticket) => ticket,
        };
        let row = sqlx::query(SELECT_INVOICE_BY_ID)
            .bind(tenant.as_str())
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        let inv = row.map(|r| invoice_from_row(&r)).transpose()?;
        if let Some(inv) = &inv {
            self.cache.fill(ticket, inv);
        }
        Ok(inv)
    }

    /// A page of `tenant`'s invoices, newest first (`created_at DESC, id DESC`), optionally of one
    /// status, starting after `after`. `limit` must be positive.
    pub async fn list_invoices(
        &self,
        tenant: &TenantId,
        status: Option<InvoiceStatus>,
        limit: u32,
        after: Option<&Cursor>,
    ) -> Result<Page, StoreError> {
        if limit == 0 {
            return Err(StoreError::InvalidInput("limit"));
        }
        // One extra row tells whether a next page exists.
        let mut q = sqlx::query(list_sql(status.is_some(), after.is_some())).bind(tenant.as_str());
        if let Some(s) = status {
            q = q.bind(s.as_str());
        }
        if let Some(c) = after {
            q = q.bind(c.created_at).bind(c.id.as_str());
        }
        let rows = q.bind(i64::from(limit) + 1).fetch_all(&self.pool).await?;
        let mut invoices = rows
            .iter()
            .map(invoice_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let next = if invoices.len() > limit as usize {
            invoices.truncate(limit as usize);
            invoices.last().map(Cursor::after)
        } else {
            None
        };
        Ok(Page { invoices, next })
    }

    /// Voids an open invoice of `tenant`, writing the status change and its history event in one
    /// transaction: either both are stored or neither is.
    ///
    /// The update is conditional (`… AND status = 'open'`), so two concurrent voids cannot both
    /// succeed and write two events: the loser sees zero rows updated and reports
    /// [`VoidOutcome::AlreadyVoid`].
    pub async fn void_invoice(
        &self,
        tenant: &TenantId,
        id: &str,
        actor: &Actor,
        reason: Option<&str>,
        request_id: Option<&str>,
    ) -> Result<VoidOutcome, StoreError> {
        let now = now_micros();
        let voided_by = actor.subject.as_deref().or(actor.client_id.as_deref());
        let mut tx = self.pool.begin().await?;
        // The write comes first so that SQLite takes the write lock at once (a read-then-write
        // transaction could fail with SQLITE_BUSY_SNAPSHOT under WAL).
        let updated = sqlx::query(
            "UPDATE invoices SET status = 'void', voided_at = $1, voided_by = $2 \
             WHERE tenant_id = $3 AND id = $4 AND status = 'open'",
        )
        .bind(now)
        .bind(voided_by)
        .bind(tenant.as_str())
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();

        if updated == 0 {
            let row = sqlx::query(SELECT_INVOICE_BY_ID)
                .bind(tenant.as_str())
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            tx.rollback().await?;
            return Ok(match row.map(|r| invoice_from_row(&r)).transpose()? {
                None => VoidOutcome::NotFound,
                Some(inv) if inv.status == InvoiceStatus::Void => VoidOutcome::AlreadyVoid(inv),
                Some(inv) => VoidOutcome::NotOpen(inv),
            });
        }

        sqlx::query(
            "INSERT INTO invoice_events \
             (id, tenant_id, invoice_id, action, actor_subject, client_id, reason, at, request_id) \
             VALUES ($1, $2, $3, 'void', $4, $5, $6, $7, $8)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(tenant.as_str())
        .bind(id)
        .bind(actor.subject.as_deref())
        .bind(actor.client_id.as_deref())
        .bind(reason)
        .bind(now)
        .bind(request_id)
        .execute(&mut *tx)
        .await?;

        let row = sqlx::query(SELECT_INVOICE_BY_ID)
            .bind(tenant.as_str())
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let inv = invoice_from_row(&row)?;
        if self.credit_notes {
            // The credit note the void owes the ledger, committed with the void or not at all.
            super::outbox::insert(&mut tx, &inv, actor, reason, now).await?;
        }
        if let Some(channel) = &self.notify_channel {
            // Inside the transaction: delivered to the other replicas on commit, never for a
            // void that rolls back. `::text` because `pg_notify` returns `void`, a type the
            // `Any` driver has no mapping for.
            sqlx::query("SELECT pg_notify($1, $2)::text")
                .bind(&**channel)
                .bind(super::notify::payload(tenant, id))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.cache.invalidate(tenant, id);
        Ok(VoidOutcome::Voided(inv))
    }

    /// The history of one invoice of `tenant`, oldest first; `None` when the tenant has no such
    /// invoice.
    pub async fn invoice_history(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<Vec<InvoiceEvent>>, StoreError> {
        // Existence first, so that "no events yet" and "no such invoice" differ for the owner
        // while another tenant's invoice still looks exactly like a missing one.
        if self.invoice(tenant, id).await?.is_none() {
            return Ok(None);
        }
        let rows = sqlx::query(
            "SELECT action, actor_subject, client_id, reason, at, request_id FROM invoice_events \
             WHERE tenant_id = $1 AND invoice_id = $2 ORDER BY at, id",
        )
        .bind(tenant.as_str())
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(InvoiceEvent {
                    action: r.try_get("action")?,
                    actor_subject: r.try_get("actor_subject")?,
                    client_id: r.try_get("client_id")?,
                    reason: r.try_get("reason")?,
                    at: r.try_get("at")?,
                    request_id: r.try_get("request_id")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map(Some)
            .map_err(StoreError::from)
    }
}

/// The invoice columns, as a macro so that `concat!` can build `'static` query strings (sqlx
/// 0.9 accepts only static SQL unless a dynamic string is explicitly asserted safe).
macro_rules! select_invoice {
    () => {
        "SELECT tenant_id, id, customer, status, total_minor, currency, created_at, voided_at, \
         voided_by FROM invoices"
    };
}
const SELECT_INVOICE_BY_ID: &str = concat!(select_invoice!(), " WHERE tenant_id = $1 AND id = $2");

/// The listing query for each combination of (status filter, cursor). Placeholders are numbered
/// in bind order: tenant, [status], [cursor created_at, cursor id], limit.
///
/// The cursor condition is a row-value comparison, which both engines turn into an index range
/// on `(created_at, id)` after the tenant (and status) equality; the `ORDER BY` matches the index,
/// so there is no sort step.
fn list_sql(status: bool, cursor: bool) -> &'static str {
    macro_rules! order {
        () => {
            " ORDER BY created_at DESC, id DESC"
        };
    }
    match (status, cursor) {
        (false, false) => concat!(
            select_invoice!(),
            " WHERE tenant_id = $1",
            order!(),
            " LIMIT $2"
        ),
        (true, false) => {
            concat!(
                select_invoice!(),
                " WHERE tenant_id = $1 AND status = $2",
                order!(),
                " LIMIT $3"
            )
        }
        (false, true) => concat!(
            select_invoice!(),
            " WHERE tenant_id = $1 AND (created_at, id) < ($2, $3)",
            order!(),
            " LIMIT $4"
        ),
        (true, true) => concat!(
            select_invoice!(),
            " WHERE tenant_id = $1 AND status = $2 AND (created_at, id) < ($3, $4)",
            order!(),
            " LIMIT $5"
        ),
    }
}

fn invoice_from_row(r: &AnyRow) -> Result<Invoice, StoreError> {
    let tenant: String = r.try_get("tenant_id")?;
    let status: String = r.try_get("status")?;
    Ok(Invoice {
        tenant: TenantId::new(&tenant).map_err(|_| StoreError::Corrupt("invoices.tenant_id"))?,
        id: r.try_get("id")?,
        customer: r.try_get("customer")?,
        status: status
            .parse()
            .map_err(|_| StoreError::Corrupt("invoices.status"))?,
        total_minor: r.try_get("total_minor")?,
        currency: r.try_get("currency")?,
        created_at: r.try_get("created_at")?,
        voided_at: r.try_get("voided_at")?,
        voided_by: r.try_get("voided_by")?,
    })
}

#[cfg(test)]
mod query_plans;
