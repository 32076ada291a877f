//! Demo data: two tenants with overlapping invoice ids, so that tenancy is visible in the demo.
//!
//! Idempotent (`ON CONFLICT DO NOTHING` with fixed ids), so the demo can run against the same
//! file on every start without duplicating or resetting anything — an invoice voided during a
//! demo stays void.

use super::model::InvoiceStatus;
use super::{Store, StoreError};

/// 2026-01-05T09:00:00Z, the demo's first invoice date, in Unix microseconds.
const T0: i64 = 1_767_603_600_000_000;
const DAY: i64 = 86_400_000_000;

/// (tenant, id, customer, status, total in minor units, currency, days after T0)
const INVOICES: &[(&str, &str, &str, InvoiceStatus, i64, &str, i64)] = &[
    (
        "acme",
        "INV-2038",
        "Initech GmbH",
        InvoiceStatus::Paid,
        48_000,
        "EUR",
        0,
    ),
    (
        "acme",
        "INV-2039",
        "Umbrella SARL",
        InvoiceStatus::Void,
        9_900,
        "EUR",
        1,
    ),
    (
        "acme",
        "INV-2040",
        "Hooli Inc.",
        InvoiceStatus::Paid,
        310_000,
        "USD",
        2,
    ),
    (
        "acme",
        "INV-2041",
        "Initech GmbH",
        InvoiceStatus::Open,
        125_000,
        "EUR",
        3,
    ),
    (
        "acme",
        "INV-2042",
        "Vandelay Industries",
        InvoiceStatus::Open,
        72_550,
        "EUR",
        4,
    ),
    (
        "globex",
        "INV-2041",
        "Soylent Corp",
        InvoiceStatus::Open,
        99_000,
        "USD",
        3,
    ),
    (
        "globex",
        "INV-3001",
        "Stark Logistics",
        InvoiceStatus::Paid,
        1_500_000,
        "JPY",
        5,
    ),
    (
        "globex",
        "INV-3002",
        "Wayne Foods",
        InvoiceStatus::Void,
        20_000,
        "USD",
        6,
    ),
];

/// Voided demo invoices carry a history event, as if voided through the tool.
/// (tenant, invoice, subject, client, reason, days after T0)
const VOID_EVENTS: &[(&str, &str, &str, &str, &str, i64)] = &[
    (
        "acme",
        "INV-2039",
        "carol@acme.example",
        "acme-backoffice",
        "duplicate of INV-2038",
        2,
    ),
    (
        "globex",
        "INV-3002",
        "dave@globex.example",
        "globex-finance",
        "customer cancelled",
        7,
    ),
];

pub(super) async fn apply_demo(store: &Store) -> Result<(), StoreError> {
    let mut tx = store.pool.begin().await?;
    for &(tenant, id, customer, status, total_minor, currency, day) in INVOICES {
        let voided = VOID_EVENTS.iter().find(|e| e.0 == tenant && e.1 == id);
        sqlx::query(
            "INSERT INTO invoices \
             (tenant_id, id, customer, status, total_minor, currency, created_at, voided_at, voided_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (tenant_id, id) DO NOTHING",
        )
        .bind(tenant)
        .bind(id)
        .bind(customer)
        .bind(status.as_str())
        .bind(total_minor)
        .bind(currency)
        .bind(T0 + day * DAY)
        .bind(voided.map(|e| T0 + e.5 * DAY))
        .bind(voided.map(|e| e.2))
        .execute(&mut *tx)
        .await?;
    }
    for &(tenant, id, subject, client, reason, day) in VOID_EVENTS {
        sqlx::query(
            "INSERT INTO invoice_events \
             (id, tenant_id, invoice_id, action, actor_subject, client_id, reason, at, request_id) \
             VALUES ($1, $2, $3, 'void', $4, $5, $6, $7, NULL) ON CONFLICT (id) DO NOTHING",
        )
        .bind(format!("seed-{tenant}-{id}-void"))
        .bind(tenant)
        .bind(id)
        .bind(subject)
        .bind(client)
        .bind(reason)
        .bind(T0 + day * DAY)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::model::is_valid_invoice_id;
    use crate::tenancy::TenantId;

    #[test]
    fn seed_rows_are_valid_and_unique_per_tenant() {
        let mut seen = std::collections::HashSet::new();
        for &(tenant, id, ..) in INVOICES {
            assert!(TenantId::new(tenant).is_ok() && is_valid_invoice_id(id));
            assert!(seen.insert((tenant, id)), "duplicate {tenant}/{id}");
        }
        for e in VOID_EVENTS {
            let inv = INVOICES
                .iter()
                .find(|i| i.0 == e.0 && i.1 == e.1)
                .expect("event invoice");
            assert_eq!(inv.3, InvoiceStatus::Void);
        }
    }
}
