//! `seed-invoices --database FILE --count N [--tenant acme]`
//!
//! Creates (or migrates) the billing SQLite database with the demo seed, then adds N invoices
//! for the tenant in one SQL statement (a recursive CTE: no per-row round trip), so the scale
//! check can compare `lookup_invoice` on 10 k and 1 M rows. Ids are `BIG-0000001` … .

use std::time::Instant;

use gatehouse_bench::{args, seed};

fn main() -> anyhow::Result<()> {
    let database = args::required("database")?;
    let count: i64 = args::parsed("count", 10_000)?;
    let tenant = args::get("tenant").unwrap_or_else(|| "acme".into());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let started = Instant::now();
        let rows = seed::big_invoices(&database, count, &tenant).await?;
        eprintln!(
            "seed-invoices: {rows} rows for {tenant} in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Ok(())
    })
}
