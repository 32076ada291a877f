//! A short-lived read-through cache of invoices, in front of [`Store::invoice`](super::Store::invoice).
//!
//! Why: on SQLite through sqlx every query is a round trip to the connection's worker thread,
//! and the invoice read was the largest cost of a `lookup_invoice` call (`bench/README.md`).
//!
//! What it guarantees:
//! - Changes made through the same [`Store`](super::Store) (voiding, inserting) are seen by the
//!   next read at once: the write invalidates the entry after it commits, and a read that raced
//!   with the write does not leave its older copy behind (the write epoch below).
//! - Changes made by anyone else (another process on the same database, a manual `UPDATE`) are
//!   seen at the latest `ttl` later. Set the TTL to zero to read the database every time.
//! - Entries are keyed by tenant and id, like the primary key: one tenant's entry cannot answer
//!   another tenant's read. Misses are not cached, so a new invoice is visible at once.
//! - Only reads of single invoices use it; listings, history and every write go to the database,
//!   and the void transaction re-checks the status in the database, never in the cache.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::model::Invoice;
use crate::tenancy::TenantId;

/// Settings of the invoice cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvoiceCacheConfig {
    /// Most invoices kept (each a few hundred bytes).
    pub max_entries: u64,
    /// How long an entry may answer reads: the bound on how stale a read can be after a change
    /// made outside this store. Zero disables the cache.
    pub ttl: Duration,
}

impl InvoiceCacheConfig {
    /// Default number of entries.
    pub const DEFAULT_MAX_ENTRIES: u64 = 10_000;
    /// Default time to live.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(1);

    /// No cache: every read goes to the database.
    pub fn disabled() -> Self {
        Self {
            max_entries: 0,
            ttl: Duration::ZERO,
        }
    }
}

impl Default for InvoiceCacheConfig {
    fn default() -> Self {
        Self {
            max_entries: Self::DEFAULT_MAX_ENTRIES,
            ttl: Self::DEFAULT_TTL,
        }
    }
}

type Key = (TenantId, String);

#[derive(Debug)]
pub(crate) struct InvoiceCache {
    entries: Option<moka::sync::Cache<Key, Arc<Invoice>>>,
    /// Bumped by every write before it invalidates; a read that filled the cache checks it
    /// afterwards and takes its entry back out if a write happened meanwhile.
    epoch: AtomicU64,
}

/// What a read remembers between missing the cache and filling it.
pub(crate) struct Ticket(u64);

impl InvoiceCache {
    pub(crate) fn new(config: InvoiceCacheConfig) -> Self {
        let entries = (config.max_entries > 0 && !config.ttl.is_zero()).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(config.max_entries)
                .time_to_live(config.ttl)
                .build()
        });
        Self {
            entries,
            epoch: AtomicU64::new(0),
        }
    }

    pub(crate) fn get(&self, tenant: &TenantId, id: &str) -> Result<Invoice, Ticket> {
        let epoch = self.epoch.load(Ordering::SeqCst);
        if let Some(entries) = &self.entries
            && let Some(inv) = entries.get(&(tenant.clone(), id.to_owned()))
        {
            return Ok(Invoice::clone(&inv));
        }
        Err(Ticket(epoch))
    }

    /// Remembers `inv`, read from the database after `ticket` was taken.
    pub(crate) fn fill(&self, ticket: Ticket, inv: &Invoice) {
        let Some(entries) = &self.entries else {
            return;
        };
        let key = (inv.tenant.clone(), inv.id.clone());
        entries.insert(key.clone(), Arc::new(inv.clone()));
        // A write that committed after this read began has bumped the epoch before invalidating.
        // If it invalidated before the insert above, the insert may have put the older copy
        // back: take it out again. (If it invalidates after, that removes it anyway.)
        if self.epoch.load(Ordering::SeqCst) != ticket.0 {
            entries.invalidate(&key);
        }
    }

    /// Forgets an invoice after a committed write to it.
    pub(crate) fn invalidate(&self, tenant: &TenantId, id: &str) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        if let Some(entries) = &self.entries {
            entries.invalidate(&(tenant.clone(), id.to_owned()));
        }
    }
}
