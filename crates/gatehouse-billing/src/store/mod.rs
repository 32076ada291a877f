//! Storage of invoices, their history and the audit log; this file opens the database.
//!
//! It holds the [`Store`] handle (connecting, migrating, the [`Backend`]) and [`StoreError`]; the
//! queries live in the files below.
//!
//! # Layout
//!
//! - `model.rs`: the rows and value types ([`Invoice`], [`AuditRecord`], …);
//! - `invoices.rs`: invoice queries (insert, read, list, void, history);
//! - `audit_rows.rs`: writing and reading `audit_log` rows;
//! - `cache.rs`: the invoice cache; `cursor.rs`: listing cursors; `micros.rs`: time conversion;
//!   `seed.rs`: demo data.
//!
//! Storage does not depend on the audit writer (`audit.rs`); the writer uses the store.
//!
//! # One code path for SQLite and PostgreSQL
//!
//! The store uses sqlx's runtime-generic [`Any`](sqlx::Any) driver with portable SQL rather than
//! a trait with one implementation per database. The queries here are few and simple, and every
//! one of them is written once and exercised against both engines by the test suite
//! (`tests/it/storage.rs`), so a dialect slip cannot hide in a backend nobody runs. The price of
//! `Any` is a narrow type system (integers, floats, text, blobs), so:
//!
//! - times are `BIGINT` Unix microseconds, converted at the edges of this module;
//! - money is `BIGINT` minor units plus a currency code;
//! - placeholders are `$1, $2, …` (PostgreSQL's form, which sqlx's SQLite driver also binds),
//!   except in the many-row audit `INSERT`, which uses `?` on SQLite (see `audit_rows.rs`);
//! - no engine-specific SQL: `ON CONFLICT … DO NOTHING`, row-value comparisons and `CHECK`
//!   constraints exist in both.
//!
//! SQLite is the embedded default. Options that `Any` cannot carry in a URL are applied per
//! connection (`foreign_keys`, `busy_timeout`, `synchronous`, `temp_store`) or once per database file (WAL,
//! which is persistent).
//!
//! # Tenancy
//!
//! Every method that reads or writes invoices takes a [`TenantId`](crate::TenantId) and puts it
//! in the `WHERE` clause (or the row). There is deliberately no method that reads invoices across
//! tenants.
//!
//! # Scale
//!
//! Lookups use the primary key `(tenant_id, id)`; listings use
//! `(tenant_id, created_at DESC, id DESC)` (and the same with `status`) with keyset pagination,
//! so the cost of a call does not grow with the table (`invoices/query_plans.rs` checks the query
//! plans on both engines).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor as _};

mod audit_rows;
mod cache;
pub mod cursor;
mod invoices;
mod micros;
pub mod model;
mod notify;
pub mod outbox;
mod seed;

pub use cache::{CacheEvent, InvoiceCacheConfig};
pub use cursor::{Cursor, InvalidCursor};
pub use invoices::Page;
pub(crate) use micros::now_micros;
pub use micros::rfc3339_micros;
pub use model::{
    Actor, AuditOutcome, AuditRecord, Invoice, InvoiceEvent, InvoiceStatus, UnknownOutcome,
    VoidOutcome, format_minor, is_valid_invoice_id,
};

/// Migrations, embedded in the binary at compile time.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How long a SQLite connection waits for a lock held by another writer before failing.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Each SQLite connection's page cache, KiB (SQLite's default: 2,000). In WAL mode a connection
/// discards its whole cache when another connection has written since its last read, which the
/// audit writer does every few milliseconds under load, so a larger cache is seldom read again;
/// what it does is grow. The soak measured the four caches (in the C allocator's per-thread
/// arenas, which keep what they once held) climbing for five minutes to 1.2 MB each, most of
/// the resident memory that still moved after the warm-up (hardening/README.md). Pages that
/// fall out are re-read from the operating system's cache.
const SQLITE_CACHE_KIB: u32 = 256;

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

impl StoreError {
    /// True when the database could not be reached or would not serve (the connection was lost
    /// or refused, the pool timed out, PostgreSQL is shutting down or starting: SQLSTATE classes
    /// 08 and 57P): the same call may succeed later. Everything else (constraints, corrupt
    /// rows, SQL errors) is a failure of this server, not an outage.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Database(
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed,
            ) => true,
            Self::Database(sqlx::Error::Database(e)) => e
                .code()
                .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
            _ => false,
        }
    }
}

/// Longest wait for a pooled connection (see [`Store::connect`]).
const STORE_ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// The billing database. Cheap to clone (a connection pool, and the invoice cache shared by all
/// clones).
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    cache: Arc<cache::InvoiceCache>,
    /// Write a credit note to the outbox with every void ([`Store::with_credit_notes`]).
    credit_notes: bool,
    /// PostgreSQL: the channel every invoice write notifies, in its transaction (`notify.rs`).
    notify_channel: Option<Arc<str>>,
    /// Stops the listener when the last clone is dropped, or at [`Store::close`].
    listener: Option<Arc<ListenerHandle>>,
}

/// The listening task's stop switch, held by every clone of a [`Store`].
#[derive(Debug)]
struct ListenerHandle {
    stop: tokio_util::sync::CancellationToken,
    _on_drop: tokio_util::sync::DropGuard,
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
            // While the database is down, a request waits this long for a connection and then
            // fails as an outage (503 + Retry-After, `StoreError::is_unavailable`) instead of
            // hanging for sqlx's default 30 s, the whole request deadline.
            .acquire_timeout(STORE_ACQUIRE_TIMEOUT)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // Per-connection settings (sqlx's defaults agree today; stating them
                        // keeps the guarantees independent of those defaults).
                        // `temp_store = MEMORY`: a statement journal (the audit writer's
                        // many-row INSERT in its transaction) or a sorter past 64 KiB would
                        // otherwise spill to an unlinked file in /var/tmp — a descriptor that
                        // comes and goes under load (the soak named them, hardening/README.md)
                        // and a failure where that directory is read-only (containers). What
                        // is kept instead is bounded by the statement.
                        // `cache_size`: see `SQLITE_CACHE_KIB`.
                        conn.execute(sqlx::AssertSqlSafe(format!(
                            "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = {}; \
                             PRAGMA synchronous = NORMAL; PRAGMA temp_store = MEMORY; \
                             PRAGMA cache_size = -{SQLITE_CACHE_KIB};",
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
        let cache = Arc::new(cache::InvoiceCache::new(cache));
        let (notify_channel, listener) = match backend {
            Backend::Sqlite => (None, None),
            Backend::Postgres => {
                let schema: String = sqlx::query_scalar("SELECT current_schema()::text")
                    .fetch_one(&pool)
                    .await?;
                let channel = notify::channel_for(&schema);
                // Writes notify even when this store keeps no cache: other replicas may.
                let listener = if cache.is_enabled() {
                    let stop = tokio_util::sync::CancellationToken::new();
                    notify::start(url.clone(), channel.clone(), cache.clone(), stop.clone())
                        .await?;
                    Some(Arc::new(ListenerHandle {
                        _on_drop: stop.clone().drop_guard(),
                        stop,
                    }))
                } else {
                    None
                };
                (Some(Arc::from(channel)), listener)
            }
        };
        let store = Self {
            pool,
            backend,
            cache,
            credit_notes: false,
            notify_channel,
            listener,
        };
        if seed == Seed::Demo {
            seed::apply_demo(&store).await?;
        }
        Ok(store)
    }

    /// From now on every void also writes a credit note to the outbox, in the same transaction
    /// ([`crate::store::outbox`]). Off by default: a server without a ledger owes none.
    pub fn with_credit_notes(mut self, on: bool) -> Self {
        self.credit_notes = on;
        self
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

    /// Closes every connection (waits for checked-out ones to come back), the listening one
    /// included.
    pub async fn close(&self) {
        if let Some(l) = &self.listener {
            l.stop.cancel();
        }
        self.pool.close().await;
    }

    /// What the invoice cache hears from other replicas (PostgreSQL; nothing on SQLite):
    /// subscriptions, losses of the listening connection, and each invoice a committed write
    /// invalidated. For monitoring and for measuring the staleness window.
    pub fn cache_events(&self) -> tokio::sync::broadcast::Receiver<CacheEvent> {
        self.cache.subscribe()
    }

    /// The PostgreSQL process id of the connection listening for other replicas' writes, while
    /// it is up; `None` on SQLite, without a cache, or while reconnecting (the TTL bounds
    /// staleness then).
    pub fn cache_listener_pid(&self) -> Option<i32> {
        self.cache.listener_pid()
    }
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

    #[tokio::test]
    async fn every_sqlite_connection_keeps_its_temporary_files_in_memory_and_a_small_page_cache() {
        let path = std::env::temp_dir().join(format!(
            "gatehouse-temp-store-{}-{}.db",
            std::process::id(),
            now_micros()
        ));
        let store = Store::connect(path.to_str().unwrap(), Seed::None)
            .await
            .unwrap();
        // All four connections at once, so each one's `after_connect` is what is read.
        let mut held = Vec::new();
        for _ in 0..4 {
            let mut conn = store.pool.acquire().await.unwrap();
            let mode: i64 = sqlx::query_scalar("PRAGMA temp_store")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            assert_eq!(
                mode, 2,
                "temp_store is MEMORY (2), not the file default (0)"
            );
            let cache: i64 = sqlx::query_scalar("PRAGMA cache_size")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            assert_eq!(
                cache,
                -i64::from(SQLITE_CACHE_KIB),
                "the page cache is capped"
            );
            held.push(conn);
        }
        drop(held);
        store.close().await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

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
}
