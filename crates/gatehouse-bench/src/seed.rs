//! Large invoice tables, written straight into a billing database (SQLite or PostgreSQL).

use gatehouse_billing::{Seed, Store};
use sqlx::ConnectOptions as _;

/// Creates (or migrates) the billing database at `path` (`sqlite://…` or `postgres://…`) with the
/// demo seed, then adds `count` invoices for `tenant` in one SQL statement (no per-row round
/// trip).
/// Ids are `BIG-0000001` …; invoice `n` is open when `n % 3 == 0`, paid when `n % 3 == 1`,
/// void otherwise ([`open_invoice`] names the k-th open one). Returns the rows added.
pub async fn big_invoices(path: &str, count: i64, tenant: &str) -> anyhow::Result<u64> {
    // The store creates the schema (migrations) and the demo rows.
    let store = Store::connect(path, Seed::Demo).await?;
    store.close().await;
    if path.starts_with("postgres") {
        let mut conn = path
            .parse::<sqlx::postgres::PgConnectOptions>()?
            .connect()
            .await?;
        let done = sqlx::query(
            "INSERT INTO invoices (tenant_id, id, customer, status, total_minor, currency, created_at) \
             SELECT $2, 'BIG-' || lpad(n::text, 7, '0'), 'Customer ' || (n % 997), \
                    CASE n % 3 WHEN 0 THEN 'open' WHEN 1 THEN 'paid' ELSE 'void' END, \
                    (n * 7919) % 1000000, 'EUR', 1600000000000000 + n * 1000 \
             FROM generate_series(1::bigint, $1) AS n ON CONFLICT (tenant_id, id) DO NOTHING",
        )
        .bind(count)
        .bind(tenant)
        .execute(&mut conn)
        .await?;
        sqlx::query("ANALYZE invoices").execute(&mut conn).await?;
        return Ok(done.rows_affected());
    }
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path.strip_prefix("sqlite://").unwrap_or(path))
        .connect()
        .await?;
    let done = sqlx::query(
        "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < ?1) \
         INSERT INTO invoices (tenant_id, id, customer, status, total_minor, currency, created_at) \
         SELECT ?2, printf('BIG-%07d', n), 'Customer ' || (n % 997), \
                CASE n % 3 WHEN 0 THEN 'open' WHEN 1 THEN 'paid' ELSE 'void' END, \
                (n * 7919) % 1000000, 'EUR', 1600000000000000 + n * 1000 \
         FROM seq WHERE true ON CONFLICT (tenant_id, id) DO NOTHING",
    )
    .bind(count)
    .bind(tenant)
    .execute(&mut conn)
    .await?;
    sqlx::query("ANALYZE").execute(&mut conn).await?;
    Ok(done.rows_affected())
}

/// The id of the `k`-th open invoice [`big_invoices`] wrote (k from 1), or `None` past `count`.
pub fn open_invoice(k: u64, count: i64) -> Option<String> {
    let n = k.checked_mul(3)?;
    (n <= u64::try_from(count).ok()?).then(|| format!("BIG-{n:07}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_ids_are_the_multiples_of_three_within_count() {
        assert_eq!(open_invoice(1, 10).as_deref(), Some("BIG-0000003"));
        assert_eq!(open_invoice(3, 10).as_deref(), Some("BIG-0000009"));
        assert_eq!(open_invoice(4, 10), None);
    }

    #[tokio::test]
    async fn the_seed_writes_open_paid_and_void_rows() {
        let dir = std::env::temp_dir().join(format!("gh-seed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("b.db");
        let path = format!("sqlite://{}", db.display());
        assert_eq!(big_invoices(&path, 9, "acme").await.unwrap(), 9);
        let store = Store::connect(&path, Seed::None).await.unwrap();
        let tenant = gatehouse_billing::TenantId::new("acme").unwrap();
        for (k, status) in [(3, "open"), (4, "paid"), (5, "void")] {
            let inv = store
                .invoice(&tenant, &format!("BIG-{k:07}"))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(inv.status.as_str(), status);
        }
        store.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
