//! Storage: invoices, their history, and the audit log.
//!
//! # One code path for SQLite and PostgreSQL
//!
//! The store uses sqlx's runtime-generic [`Any`](sqlx::Any) driver with portable SQL rather than
//! a trait with one implementation per database. The queries here are few and simple, and every
//! one of them is written once and exercised against both engines by the test suite
//! (`tests/storage.rs`), so a dialect slip cannot hide in a backend nobody runs. The price of
//! `Any` is a narrow type system (integers, floats, text, blobs), so:
//!
//! - times are `BIGINT` Unix microseconds, converted at the edges of this module;
//! - money is `BIGINT` minor units plus a currency code;
//! - placeholders are `$1, $2, …` (PostgreSQL's form, which sqlx's SQLite driver also binds),
//!   except in the many-row audit `INSERT`, which uses `?` on SQLite (see `audit_insert_sql`);
//! - no engine-specific SQL: `ON CONFLICT … DO NOTHING`, row-value comparisons and `CHECK`
//!   constraints exist in both.
//!
//! SQLite is the embedded default. Options that `Any` cannot carry in a URL are applied per
//! connection (`foreign_keys`, `busy_timeout`, `synchronous`) or once per database file (WAL,
//! which is persistent).
//!
//! # Tenancy
//!
//! Every method that reads or writes invoices takes a [`TenantId`] and puts it in the `WHERE`
//! clause (or the row). There is deliberately no method that reads invoices across tenants.
//!
//! # Scale
//!
//! Lookups use the primary key `(tenant_id, id)`; listings use
//! `(tenant_id, created_at DESC, id DESC)` (and the same with `status`) with keyset pagination,
//! so the cost of a call does not grow with the table (`tests/storage.rs` checks the SQLite query
//! plans).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor as _, Row as _};

use crate::tenancy::TenantId;

mod audit_rows;
mod cache;
pub mod cursor;
mod micros;
pub mod model;
mod seed;

pub use cache::InvoiceCacheConfig;
pub use cursor::{Cursor, InvalidCursor};
use micros::now_micros;
pub use micros::rfc3339_micros;
pub use model::{
    Actor, AuditOutcome, AuditRecord, Invoice, InvoiceEvent, InvoiceStatus, NewInvoice,
    UnknownOutcome, VoidOutcome, format_minor, is_valid_invoice_id,
};

/// Migrations, embedded in the binary at compile time.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How long a SQLite connection waits for a lock held by another writer before failing.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// What to put in a freshly migrated database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seed {
    /// Demo data for tenants `acme` and `globex` (idempotent: safe on every start).
    Demo,
    /// Nothing: migrations only (production).
    None,
}

/// The database engine behind a [`Store`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite (embedded, a file).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// A storage failure. Messages never contain the connection URL (it may hold a password).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database location is not understood.
    #[error("invalid database location: {0}")]
    InvalidLocation(&'static str),
    /// A database error.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A row holds a value this version does not understand.
    #[error("unexpected value in column {0}")]
    Corrupt(&'static str),
    /// Input rejected before reaching the database.
    #[error("invalid input: {0}")]
    InvalidInput(&'static str),
}

/// The billing database. Cheap to clone (a connection pool, and the invoice cache shared by all
/// clones).
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    cache: Arc<cache::InvoiceCache>,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Invoices, newest first.
    pub invoices: Vec<Invoice>,
    /// Where the next page starts, when there is one.
    pub next: Option<Cursor>,
}

impl Store {
    /// Opens (creating if needed) and migrates the database, then applies `seed`.
    ///
    /// `database` is a `postgres://` / `postgresql://` URL, a `sqlite:` URL, or a file path (a
    /// SQLite database, created if missing). For PostgreSQL, a schema other than `public` can be
    /// selected with `?options=-c%20search_path%3D<schema>`.
    ///
    /// Single-invoice reads go through an [invoice cache](InvoiceCacheConfig) with the default
    /// settings; see [`Store::connect_with`].
    pub async fn connect(database: &str, seed: Seed) -> Result<Self, StoreError> {
        Self::connect_with(database, seed, InvoiceCacheConfig::default()).await
    }

    /// [`Store::connect`] with explicit invoice-cache settings.
    pub async fn connect_with(
        database: &str,
        seed: Seed,
        cache: InvoiceCacheConfig,
    ) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let (url, backend) = database_url(database)?;
        if backend == Backend::Sqlite {
            enable_wal(&url).await?;
        }
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                // One writer at a time anyway; a few readers run concurrently under WAL. Each
                // SQLite connection is a thread with its own page cache (up to 2 MB), opened on
                // demand: with 8, a burst of concurrent cache misses showed as ~10 MB of RSS.
                Backend::Sqlite => 4,
                Backend::Postgres => 16,
            })
            // sqlx pings every idle connection before handing it out. A SQLite connection is a
            // file handle that cannot be lost the way a socket can, and the ping is a round trip
            // to the connection's worker thread on every query (measured: `bench/README.md`).
            // PostgreSQL connections can die with the server or the network; they keep the test.
            .test_before_acquire(backend == Backend::Postgres)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // Per-connection settings (sqlx's defaults agree today; stating them
                        // keeps the guarantees independent of those defaults).
                        conn.execute(sqlx::AssertSqlSafe(format!(
                            "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = {}; \
                             PRAGMA synchronous = NORMAL;",
                            SQLITE_BUSY_TIMEOUT.as_millis()
                        )))
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        MIGRATOR.run(&pool).await?;
        let store = Self {
            pool,
            backend,
            cache: Arc::new(cache::InvoiceCache::new(cache)),
        };
        if seed == Seed::Demo {
            seed::apply_demo(&store).await?;
        }
        Ok(store)
    }

    /// The engine behind this store.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// One round trip to the database (`SELECT 1`), for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection (waits for checked-out ones to come back).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Inserts an invoice. Returns `false` (and changes nothing) when the tenant already has an
    /// invoice with that id.
    pub async fn insert_invoice(&self, inv: &NewInvoice) -> Result<bool, StoreError> {
        if !is_valid_invoice_id(&inv.id) {
            return Err(StoreError::InvalidInput("invoice id"));
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
        // the rule "every committed write invalidates" without exceptions.
        self.cache.invalidate(&inv.tenant, &inv.id);
        Ok(done.rows_affected() == 1)
    }

    /// One invoice of `tenant`; `None` when the tenant has no such invoice (whether or not
    /// another tenant does). Served from the invoice cache when it holds the invoice (see
    /// [`InvoiceCacheConfig`] for how fresh that is).
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

/// Turns the configured location into a URL for the `Any` driver.
fn database_url(database: &str) -> Result<(String, Backend), StoreError> {
    if database.starts_with("postgres://") || database.starts_with("postgresql://") {
        return Ok((database.to_owned(), Backend::Postgres));
    }
    if let Some(rest) = database.strip_prefix("sqlite:") {
        // Create the file when missing unless the URL says otherwise.
        let url = if rest.contains("mode=") {
            database.to_owned()
        } else if rest.contains('?') {
            format!("{database}&mode=rwc")
        } else {
            format!("{database}?mode=rwc")
        };
        return Ok((url, Backend::Sqlite));
    }
    if database.contains("://") {
        return Err(StoreError::InvalidLocation("unsupported URL scheme"));
    }
    if database.is_empty() {
        return Err(StoreError::InvalidLocation("empty path"));
    }
    let path = std::path::absolute(Path::new(database))
        .map_err(|_| StoreError::InvalidLocation("unusable path"))?;
    let path = path
        .to_str()
        .ok_or(StoreError::InvalidLocation("path is not UTF-8"))?;
    // sqlx percent-decodes the path; encode what would otherwise end or split it.
    let mut enc = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '%' => enc.push_str("%25"),
            '?' => enc.push_str("%3F"),
            '#' => enc.push_str("%23"),
            ' ' => enc.push_str("%20"),
            c => enc.push(c),
        }
    }
    Ok((format!("sqlite://{enc}?mode=rwc"), Backend::Sqlite))
}

/// Switches a SQLite database file to write-ahead logging, once, before the pool exists. WAL
/// is a property of the file (it persists), and switching needs an exclusive lock, so doing it on
/// every pooled connection would race.
async fn enable_wal(url: &str) -> Result<(), StoreError> {
    use sqlx::Connection as _;
    let mut conn = sqlx::AnyConnection::connect(url).await?;
    conn.execute(sqlx::AssertSqlSafe(format!(
        "PRAGMA busy_timeout = {}",
        SQLITE_BUSY_TIMEOUT.as_millis()
    )))
    .await?;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode = WAL")
        .fetch_one(&mut conn)
        .await?;
    conn.close().await?;
    if !mode.eq_ignore_ascii_case("wal") {
        // In-memory databases answer `memory`; anything else means WAL is unavailable.
        tracing::warn!(journal_mode = %mode, "SQLite database is not in WAL mode");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_map_to_urls() {
        let (u, b) = database_url("postgres://u@h/db").unwrap();
        assert_eq!((u.as_str(), b), ("postgres://u@h/db", Backend::Postgres));
        assert_eq!(
            database_url("sqlite:///x.db").unwrap().0,
            "sqlite:///x.db?mode=rwc"
        );
        assert_eq!(
            database_url("sqlite:///x.db?mode=ro").unwrap().0,
            "sqlite:///x.db?mode=ro"
        );
        assert_eq!(
            database_url("/tmp/a b?.db").unwrap().0,
            "sqlite:///tmp/a%20b%3F.db?mode=rwc"
        );
        assert!(database_url("mysql://h/db").is_err());
        assert!(database_url("").is_err());
    }

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
}
