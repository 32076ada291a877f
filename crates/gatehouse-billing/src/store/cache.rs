//! A short-lived read-through cache of invoices, in front of [`Store::invoice`](super::Store::invoice).
//!
//! Why: on SQLite through sqlx every query is a round trip to the connection's worker thread,
//! and the invoice read was the largest cost of a `lookup_invoice` call (`bench/README.md`).
//!
//! What it guarantees:
//! - Changes made through the same [`Store`](super::Store) (voiding, inserting) are seen by the
//!   next read at once: the write invalidates the entry after it commits, and a read that raced
//!   with the write does not leave its older copy behind (the write epoch below).
//! - Changes made through another store on the same PostgreSQL database (another replica) are
//!   seen as soon as its notification arrives (`notify.rs`; measured in the crate's README);
//!   while the notification connection is down, within `ttl`.
//! - Changes made by anyone else (a manual `UPDATE`, a process on the same SQLite file) are seen
//!   at the latest `ttl` later. Set the TTL to zero to read the database every time.
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

/// What the cache heard from other replicas (PostgreSQL only), for operators and tests:
/// [`Store::cache_events`](super::Store::cache_events).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheEvent {
    /// Listening for other replicas' writes (again); the whole cache was dropped, since
    /// notifications sent while not listening are lost. `backend_pid` is the listening
    /// connection's PostgreSQL process id.
    Subscribed {
        /// `pg_backend_pid()` of the listening connection.
        backend_pid: i32,
    },
    /// The listening connection was lost: until the next `Subscribed`, changes by other
    /// replicas are seen within the TTL only.
    Lost,
    /// Another replica (or this one) committed a change to this invoice; it was forgotten.
    Notified {
        /// The invoice's tenant.
        tenant: TenantId,
        /// The invoice id.
        id: String,
    },
}

#[derive(Debug)]
pub(crate) struct InvoiceCache {
    entries: Option<moka::sync::Cache<Key, Arc<Invoice>>>,
    /// Bumped by every write before it invalidates; a read that filled the cache checks it
    /// afterwards and takes its entry back out if a write happened meanwhile.
    epoch: AtomicU64,
    /// Sending without receivers is a failed `send`, no allocation: free when nobody listens.
    events: tokio::sync::broadcast::Sender<CacheEvent>,
    /// `pg_backend_pid()` of the listening connection while subscribed, else 0.
    listener_pid: std::sync::atomic::AtomicI32,
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
            events: tokio::sync::broadcast::channel(1024).0,
            listener_pid: std::sync::atomic::AtomicI32::new(0),
        }
    }

    /// True when entries are kept at all (a listener is pointless otherwise).
    pub(crate) fn is_enabled(&self) -> bool {
        self.entries.is_some()
    }

    pub(crate) fn subscribe(&self) -> tokio::sync::broadcast::Receiver<CacheEvent> {
        self.events.subscribe()
    }

    pub(crate) fn announce(&self, event: CacheEvent) {
        match &event {
            CacheEvent::Subscribed { backend_pid } => {
                self.listener_pid.store(*backend_pid, Ordering::SeqCst)
            }
            CacheEvent::Lost => self.listener_pid.store(0, Ordering::SeqCst),
            CacheEvent::Notified { .. } => {}
        }
        let _ = self.events.send(event);
    }

    pub(crate) fn listener_pid(&self) -> Option<i32> {
        Some(self.listener_pid.load(Ordering::SeqCst)).filter(|pid| *pid != 0)
    }

    /// Forgets everything: after a (re)subscription, when any change may have been missed.
    pub(crate) fn invalidate_all(&self) {
        // Same order as `invalidate`: a read racing with this cannot put back what it read
        // before (`fill` sees the new epoch).
        self.epoch.fetch_add(1, Ordering::SeqCst);
        if let Some(entries) = &self.entries {
            entries.invalidate_all();
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
