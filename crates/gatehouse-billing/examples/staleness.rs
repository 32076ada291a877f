//! Measures the staleness window of the invoice cache across replicas on PostgreSQL: two stores
//! on one database (two replicas), B holding an invoice in its cache, A voiding it; the window is
//! the time until B has forgotten the invoice (the `Notified` cache event).
//!
//! ```text
//! cargo run --release -p gatehouse-billing --example staleness -- [VOIDS] [POSTGRES_URL]
//! ```
//!
//! Defaults: 1000 voids, `postgres://postgres@127.0.0.1:5432/test` (`GATEHOUSE_TEST_PG_URL`).
//! Works in a fresh schema, dropped at the end. Two figures per void, both on one monotonic
//! clock: from A's call to B's invalidation (an upper bound of the window: the commit happens
//! inside the call), and from the call's return (after the commit) to B's invalidation (zero
//! when B heard it before A's call returned).

use std::time::{Duration, Instant};

use gatehouse_billing::store::{Actor, Invoice, InvoiceStatus, VoidOutcome};
use gatehouse_billing::{CacheEvent, InvoiceCacheConfig, Seed, Store, TenantId};
use sqlx::Connection as _;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let voids: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1000);
    let base = args
        .next()
        .or_else(|| std::env::var("GATEHOUSE_TEST_PG_URL").ok())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned());

    sqlx::any::install_default_drivers();
    let schema = format!("staleness_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::AnyConnection::connect(&base).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut admin)
        .await?;
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");

    let result = measure(&url, voids).await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut admin)
        .await?;
    let (from_call, from_return) = result?;
    println!("voids: {voids} (replica A voids, replica B holds the invoice in its cache)");
    report("A's call -> B invalidated (upper bound)", from_call);
    report("A's commit returned -> B invalidated", from_return);
    Ok(())
}

async fn measure(
    url: &str,
    voids: usize,
) -> Result<(Vec<Duration>, Vec<Duration>), Box<dyn std::error::Error>> {
    // The TTL is far longer than the run: only a notification can invalidate B's copy.
    let cache = InvoiceCacheConfig {
        max_entries: 100_000,
        ttl: Duration::from_secs(3600),
    };
    let a = Store::connect_with(url, Seed::None, cache).await?;
    let b = Store::connect_with(url, Seed::None, cache).await?;
    let tenant = TenantId::new("acme")?;
    let actor = Actor {
        subject: Some("staleness".into()),
        client_id: None,
    };
    for i in 0..voids {
        a.insert_invoice(&Invoice {
            tenant: tenant.clone(),
            id: format!("INV-{i:06}"),
            customer: "Measure Ltd".into(),
            status: InvoiceStatus::Open,
            total_minor: 100,
            currency: "EUR".into(),
            created_at: 0,
            voided_at: None,
            voided_by: None,
        })
        .await?;
    }
    let mut events = b.cache_events();
    let (mut from_call, mut from_return) = (Vec::new(), Vec::new());
    for i in 0..voids {
        let id = format!("INV-{i:06}");
        b.invoice(&tenant, &id)
            .await?
            .ok_or("seeded invoice missing")?;
        let called = Instant::now();
        let outcome = a.void_invoice(&tenant, &id, &actor, None, None).await?;
        let returned = Instant::now();
        if !matches!(outcome, VoidOutcome::Voided(_)) {
            return Err("void did not happen".into());
        }
        loop {
            match events.recv().await? {
                CacheEvent::Notified { id: heard, .. } if heard == id => break,
                _ => {}
            }
        }
        let invalidated = Instant::now();
        from_call.push(invalidated - called);
        from_return.push(invalidated.saturating_duration_since(returned));
        let seen = b.invoice(&tenant, &id).await?.ok_or("invoice missing")?;
        if seen.status != InvoiceStatus::Void {
            return Err("B still reads the old status after its invalidation".into());
        }
    }
    a.close().await;
    b.close().await;
    Ok((from_call, from_return))
}

fn report(what: &str, mut d: Vec<Duration>) {
    d.sort();
    let at = |q: f64| d[((d.len() as f64 * q) as usize).min(d.len() - 1)];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{what}: median {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        ms(at(0.5)),
        ms(at(0.99)),
        ms(d[d.len() - 1])
    );
}
