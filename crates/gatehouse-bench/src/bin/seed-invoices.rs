//! `seed-invoices --database FILE --count N [--tenant acme]`
//!
//! Creates (or migrates) the billing SQLite database with the demo seed, then adds N invoices
//! for the tenant in one SQL statement (a recursive CTE: no per-row round trip), so the scale
//! check can compare `lookup_invoice` on 10 k and 1 M rows. Ids are `BIG-0000001` … .

use std::time::Instant;

use gatehouse_bench::args;
use gatehouse_billing::{Seed, Store};
use sqlx::ConnectOptions as _;

fn main() -> anyhow::Result<()> {
    let database = args::required("database")?;
    let count: i64 = args::parsed("count", 10_000)?;
    let tenant = args::get("tenant").unwrap_or_else(|| "acme".into());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        // The store creates the schema (migrations) and the demo rows.
        let store = Store::connect(&database, Seed::Demo).await?;
        store.close().await;
        let started = Instant::now();
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&database)
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
        .bind(&tenant)
        .execute(&mut conn)
        .await?;
        sqlx::query("ANALYZE").execute(&mut conn).await?;
        eprintln!(
            "seed-invoices: {} rows for {tenant} in {:.1} s",
            done.rows_affected(),
            started.elapsed().as_secs_f64()
        );
        Ok(())
    })
}
