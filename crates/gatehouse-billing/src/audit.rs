//! The audit trail of `tools/call`: who called which tool, for which tenant, and what happened.
//!
//! Every record goes two ways:
//!
//! - a `tracing` event on the `gatehouse::audit` target, emitted synchronously by
//!   [`AuditLog::record`] (so log pipelines see it even if the database is down);
//! - an `audit_log` row, written by a background task fed through a bounded queue, so that
//!   recording never blocks or fails the request that is being audited. When the queue is full
//!   the record is dropped from the database (the tracing event was still emitted), a warning is
//!   logged and [`AuditLog::dropped`] counts it.
//!
//! The writer gathers records for up to [`DEFAULT_LINGER`] after the first one of a batch (or
//! until [`MAX_BATCH`] are waiting) and writes them in one transaction of multi-row `INSERT`s.
//! Writing each record as it comes costs a transaction per `tools/call`, which measured as the
//! largest single cost of a call on SQLite (`bench/README.md`). The price is that a crash can
//! lose the rows of the last linger window from the table; their tracing events were already
//! emitted. [`AuditLog::flush`] and an orderly shutdown write what is waiting at once.
//!
//! Records never contain a token: they are built from the verified [`Caller`](gatehouse::Caller),
//! which holds none.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gatehouse::observe::{Observer, ToolCall};
use tokio::sync::{mpsc, oneshot};

use crate::store::Store;
// The record is a storage type: this module uses the store, the store does not use this module.
pub use crate::store::{AuditOutcome, AuditRecord, UnknownOutcome};

/// Tracing target of audit events.
pub const AUDIT_TARGET: &str = "gatehouse::audit";

/// Default capacity of the queue between [`AuditLog::record`] and the writer task.
pub const DEFAULT_QUEUE_CAPACITY: usize = 4096;

/// Default time the writer waits, after the first record of a batch, for more to join it.
pub const DEFAULT_LINGER: Duration = Duration::from_millis(50);

/// Most records the writer puts in one transaction; a full batch is written without waiting
/// for the linger time to end.
pub const MAX_BATCH: usize = 512;

enum Msg {
    Record(AuditRecord),
    Flush(oneshot::Sender<()>),
}

#[derive(Debug, Default)]
struct Counters {
    dropped: AtomicU64,
    write_failures: AtomicU64,
}

/// The audit log. Cheap to clone; all clones feed the same writer task, which ends when the last
/// clone is dropped.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Msg>,
    counters: Arc<Counters>,
}

impl fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditLog")
            .field("dropped", &self.dropped())
            .field("write_failures", &self.write_failures())
            .finish()
    }
}

impl AuditLog {
    /// Starts the writer task on the current tokio runtime with the default queue capacity and
    /// linger time.
    pub fn new(store: Store) -> Self {
        Self::with_options(store, DEFAULT_QUEUE_CAPACITY, DEFAULT_LINGER)
    }

    /// Starts the writer task with a queue of `capacity` records (at least 1) and the default
    /// linger time.
    pub fn with_capacity(store: Store, capacity: usize) -> Self {
        Self::with_options(store, capacity, DEFAULT_LINGER)
    }

    /// Starts the writer task with a queue of `capacity` records (at least 1) that waits up to
    /// `linger` after the first record of a batch for more records to join it (zero: write what
    /// is queued at once).
    ///
    /// # Panics
    /// Outside a tokio runtime (like `tokio::spawn`).
    pub fn with_options(store: Store, capacity: usize, linger: Duration) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let counters = Arc::new(Counters::default());
        tokio::spawn(writer(store, rx, linger, counters.clone()));
        Self { tx, counters }
    }

    /// Records one call: emits the tracing event now and queues the database row. Never blocks
    /// and never fails the caller; see the module docs for what happens under pressure.
    pub fn record(&self, rec: AuditRecord) {
        tracing::info!(
            target: AUDIT_TARGET,
            tool = %rec.tool,
            subject = rec.subject.as_deref(),
            client_id = rec.client_id.as_deref(),
            tenant = rec.tenant.as_deref(),
            outcome = rec.outcome.as_str(),
            detail = %rec.detail,
            request_id = rec.request_id.as_deref(),
            "tools/call"
        );
        match self.tx.try_send(Msg::Record(rec)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                let n = self.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(dropped_total = n, "audit queue full; audit_log row dropped");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                let n = self.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(
                    dropped_total = n,
                    "audit writer stopped; audit_log row dropped"
                );
            }
        }
    }

    /// Waits until every record queued before this call has been written (or has failed to be).
    /// For tests and orderly shutdown.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).await.is_ok() {
            // An error means the writer is gone; there is nothing left to wait for.
            let _ = wait.await;
        }
    }

    /// Records that never reached the database because the queue was full or the writer had
    /// stopped.
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Records the writer failed to store (database errors; each is logged).
    pub fn write_failures(&self) -> u64 {
        self.counters.write_failures.load(Ordering::Relaxed)
    }
}

/// Every tool call the library observes — denied at the edge or run by the server — becomes one
/// record: who (subject, client, the tenant resolved after authentication), which tool, how it
/// ended and why.
impl Observer for AuditLog {
    fn tool_call(&self, call: &ToolCall<'_>) {
        // The edge could not name the tool (an ambiguous body): record that, not a guess.
        let tool = call.tool.unwrap_or("<ambiguous>");
        let request_id = call.request_id.map(str::to_owned);
        let record = AuditRecord::new(call.caller, tool, call.outcome, call.reason, request_id);
        self.record(record);
    }
}

/// How long the writer keeps retrying a batch while the database is unreachable. Records that
/// arrive meanwhile wait in the queue (bounded: past it they are dropped and counted); a batch
/// still unwritten after this is dropped and counted, so that the writer never stops for good.
const RETRY_FOR: Duration = Duration::from_secs(30);

/// Writes one batch, retrying with backoff (100 ms doubling to 2 s) while the database is
/// unreachable ([`crate::store::StoreError::is_unavailable`]): a database restart loses no
/// audit rows. A retry after a commit whose acknowledgement was lost writes the batch twice
/// (new row ids): rare, and a duplicate is preferred to a loss.
async fn write(store: &Store, batch: &[AuditRecord], counters: &Counters) {
    let give_up = tokio::time::Instant::now() + RETRY_FOR;
    let mut delay = Duration::from_millis(100);
    loop {
        match store.insert_audit(batch).await {
            Ok(()) => return,
            Err(e) if e.is_unavailable() && tokio::time::Instant::now() + delay < give_up => {
                if delay == Duration::from_millis(100) {
                    tracing::warn!(error = %e, records = batch.len(), "audit_log unreachable; retrying");
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(e) => {
                let n = batch.len() as u64;
                counters.write_failures.fetch_add(n, Ordering::Relaxed);
                tracing::error!(error = %e, records = n, "failed to write audit_log rows");
                return;
            }
        }
    }
}

async fn writer(
    store: Store,
    mut rx: mpsc::Receiver<Msg>,
    linger: Duration,
    counters: Arc<Counters>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut flushes = Vec::new();
    while let Some(first) = rx.recv().await {
        // Gather a batch: everything that arrives within `linger` of its first record, up to
        // MAX_BATCH; a flush request or the last sender going away ends the wait early.
        let deadline = tokio::time::Instant::now() + linger;
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Record(r) => batch.push(r),
                Msg::Flush(done) => flushes.push(done),
            }
            if batch.len() >= MAX_BATCH || !flushes.is_empty() {
                break;
            }
            next = match rx.try_recv() {
                Ok(m) => Some(m),
                Err(mpsc::error::TryRecvError::Disconnected) => None,
                Err(mpsc::error::TryRecvError::Empty) => {
                    tokio::time::timeout_at(deadline, rx.recv())
                        .await
                        .ok()
                        .flatten()
                }
            };
        }
        if !batch.is_empty() {
            write(&store, &batch, &counters).await;
            batch.clear();
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}
