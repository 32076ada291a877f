//! Checks that the invoice queries stay index searches on both engines, so that their cost does
//! not grow with the table.

use sqlx::Row as _;

use super::{SELECT_INVOICE_BY_ID, list_sql};
use crate::store::{Seed, Store};

/// The queries whose plans must stay index searches, with binds of the right types:
/// (sql, binds, whether a cursor range must be part of the index condition).
fn plan_cases() -> Vec<(&'static str, Vec<Bind>, bool)> {
    use Bind::{Int, Text};
    let mut cases = vec![(
        SELECT_INVOICE_BY_ID,
        vec![Text("acme"), Text("INV-1")],
        false,
    )];
    for (status, cursor) in [(false, false), (true, false), (false, true), (true, true)] {
        let mut binds = vec![Text("acme")];
        if status {
            binds.push(Text("open"));
        }
        if cursor {
            binds.extend([Int(1), Text("INV-1")]);
        }
        binds.push(Int(21));
        cases.push((list_sql(status, cursor), binds, cursor));
    }
    cases
}

#[derive(Clone, Copy)]
enum Bind {
    Text(&'static str),
    Int(i64),
}

async fn explain(
    conn: &mut sqlx::AnyConnection,
    prefix: &str,
    sql: &str,
    binds: &[Bind],
) -> String {
    let mut q = sqlx::query(sqlx::AssertSqlSafe(format!("{prefix} {sql}")));
    for b in binds {
        q = match *b {
            Bind::Text(t) => q.bind(t),
            Bind::Int(i) => q.bind(i),
        };
    }
    let rows = q.fetch_all(&mut *conn).await.unwrap();
    // SQLite: (id, parent, notused, detail); PostgreSQL: one "QUERY PLAN" text column.
    let col = rows.first().map_or(0, |r| r.columns().len() - 1);
    rows.iter()
        .map(|r| r.try_get::<String, _>(col).unwrap())
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Latency must not grow with the table: every lookup and listing page must be an index
/// search whose condition includes the cursor range, with no sort step and no table scan.
#[tokio::test]
async fn sqlite_plans_use_the_indexes_without_sorting() {
    let dir = std::env::temp_dir().join(format!("gatehouse-plan-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = Store::connect(dir.join("p.db").to_str().unwrap(), Seed::Demo)
        .await
        .unwrap();
    // ANALYZE so that the planner sees real statistics, as a long-running database would.
    sqlx::query("ANALYZE").execute(&store.pool).await.unwrap();
    let mut conn = store.pool.acquire().await.unwrap();
    for (sql, binds, cursor) in plan_cases() {
        let plan = explain(&mut conn, "EXPLAIN QUERY PLAN", sql, &binds).await;
        assert!(plan.starts_with("SEARCH invoices USING"), "{sql}: {plan}");
        assert!(
            !plan.contains("SCAN") && !plan.contains("TEMP B-TREE"),
            "{sql}: {plan}"
        );
        assert_eq!(
            plan.contains("(created_at,id)<(?,?)"),
            cursor,
            "{sql}: {plan}"
        );
    }
    drop(conn);
    store.close().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// The same on PostgreSQL. Its planner rightly prefers sequential scans on a table this
/// small, so sequential scans and sorts are priced out for the session: if a plan still
/// scans or sorts, no index can serve the query.
#[tokio::test]
async fn postgres_plans_use_the_indexes_without_sorting() {
    use sqlx::Connection as _;
    sqlx::any::install_default_drivers();
    let base = std::env::var("GATEHOUSE_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!("t_plan_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::AnyConnection::connect(&base)
        .await
        .expect("PostgreSQL is required");
    let create = format!("CREATE SCHEMA {schema}");
    sqlx::query(sqlx::AssertSqlSafe(create))
        .execute(&mut admin)
        .await
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    let mut plans = Vec::new();
    {
        let store = Store::connect(&url, Seed::Demo).await.unwrap();
        let mut conn = store.pool.acquire().await.unwrap();
        sqlx::query("SET enable_seqscan = off")
            .execute(&mut *conn)
            .await
            .unwrap();
        sqlx::query("SET enable_sort = off")
            .execute(&mut *conn)
            .await
            .unwrap();
        for (sql, binds, cursor) in plan_cases() {
            plans.push((
                sql,
                cursor,
                explain(&mut conn, "EXPLAIN", sql, &binds).await,
            ));
        }
        drop(conn);
        store.close().await;
    }
    let drop_schema = format!("DROP SCHEMA {schema} CASCADE");
    sqlx::query(sqlx::AssertSqlSafe(drop_schema))
        .execute(&mut admin)
        .await
        .unwrap();
    for (sql, cursor, plan) in plans {
        assert!(
            plan.contains("Index Scan") || plan.contains("Index Only Scan"),
            "{sql}: {plan}"
        );
        assert!(
            !plan.contains("Seq Scan") && !plan.contains("Sort"),
            "{sql}: {plan}"
        );
        assert!(
            !plan.contains("Filter:"),
            "every condition is an index condition: {plan}"
        );
        assert_eq!(
            plan.contains("ROW(created_at, id) < ROW("),
            cursor,
            "{sql}: {plan}"
        );
    }
}
