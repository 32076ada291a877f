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
//! Records never contain a token: they are built from the verified [`Caller`], which holds none.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use gatehouse::Caller;
use gatehouse::observe::{Observer, Outcome, ToolCall};
use tokio::sync::{mpsc, oneshot};

use crate::store::Store;

/// Tracing target of audit events.
pub const AUDIT_TARGET: &str = "gatehouse::audit";

/// Default capacity of the queue between [`AuditLog::record`] and the writer task.
pub const DEFAULT_QUEUE_CAPACITY: usize = 4096;

/// Default time the writer waits, after the first record of a batch, for more to join it.
pub const DEFAULT_LINGER: Duration = Duration::from_millis(50);

/// Most records the writer puts in one transaction; a full batch is written without waiting
/// for the linger time to end.
pub const MAX_BATCH: usize = 512;

/// How a `tools/call` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AuditOutcome {
    /// The caller was authorized and the tool ran; the detail is `ok` or the tool's error code
    /// (`not_found`, `not_open`, …).
    Allowed,
    /// Authorization refused the call: at the edge (`403` before the tool ran) or inside the tool
    /// (missing scope, no tenant).
    Denied,
    /// The call failed for reasons other than authorization (bad parameters, unknown tool,
    /// storage failure).
    Error,
}

impl AuditOutcome {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Denied => "denied",
            Self::Error => "error",
        }
    }
}

impl From<Outcome> for AuditOutcome {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Allowed => Self::Allowed,
            Outcome::Denied => Self::Denied,
            Outcome::Error => Self::Error,
        }
    }
}

impl fmt::Display for AuditOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An outcome string that is none of `allowed`, `denied`, `error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown audit outcome")]
pub struct UnknownOutcome;

impl FromStr for AuditOutcome {
    type Err = UnknownOutcome;
    fn from_str(s: &str) -> Result<Self, UnknownOutcome> {
        match s {
            "allowed" => Ok(Self::Allowed),
            "denied" => Ok(Self::Denied),
            "error" => Ok(Self::Error),
            _ => Err(UnknownOutcome),
        }
    }
}

/// One audited `tools/call`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// When the call was decided.
    pub at: SystemTime,
    /// Request id of the HTTP request (`x-request-id`), when the edge assigned one.
    pub request_id: Option<String>,
    /// Tool name as requested (truncated to 128 bytes).
    pub tool: String,
    /// Caller subject.
    pub subject: Option<String>,
    /// Caller OAuth client.
    pub client_id: Option<String>,
    /// Tenant the caller acts for, when known.
    pub tenant: Option<String>,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// A short machine-readable code: `ok`, `already_void`, `insufficient_scope`, `no_tenant`,
    /// `not_found`, …
    pub detail: String,
}

/// Longest tool name kept in a record: the name is caller-controlled.
const MAX_TOOL_NAME: usize = 128;

impl AuditRecord {
    /// A record for `caller` calling `tool`, timestamped now. `tenant` is the tenant the caller
    /// acts for (resolved after authentication, see [`gatehouse::tenancy`]), which may differ from the raw claim.
    ///
    /// This is what the HTTP edge uses for calls it denies before the tool runs:
    /// `AuditRecord::for_caller(&caller, tool, tenant, AuditOutcome::Denied, "insufficient_scope",
    /// request_id)`.
    pub fn for_caller(
        caller: &Caller,
        tool: &str,
        tenant: Option<&str>,
        outcome: AuditOutcome,
        detail: &str,
        request_id: Option<String>,
    ) -> Self {
        Self {
            at: SystemTime::now(),
            request_id,
            tool: truncate(tool, MAX_TOOL_NAME).to_owned(),
            subject: caller.subject.clone(),
            client_id: caller.client_id.clone(),
            tenant: tenant.map(str::to_owned),
            outcome,
            detail: detail.to_owned(),
        }
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

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
        let record = match call.caller {
            Some(c) => AuditRecord::for_caller(
                c,
                tool,
                c.tenant.as_deref(),
                call.outcome.into(),
                call.reason,
                request_id,
            ),
            None => AuditRecord {
                at: SystemTime::now(),
                request_id,
                tool: truncate(tool, MAX_TOOL_NAME).to_owned(),
                subject: None,
                client_id: None,
                tenant: None,
                outcome: call.outcome.into(),
                detail: call.reason.to_owned(),
            },
        };
        self.record(record);
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
            if let Err(e) = store.insert_audit(&batch).await {
                let n = batch.len() as u64;
                counters.write_failures.fetch_add(n, Ordering::Relaxed);
                tracing::error!(error = %e, records = n, "failed to write audit_log rows");
            }
            batch.clear();
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_round_trips() {
        for o in [
            AuditOutcome::Allowed,
            AuditOutcome::Denied,
            AuditOutcome::Error,
        ] {
            assert_eq!(o.as_str().parse::<AuditOutcome>(), Ok(o));
        }
        assert!("ok".parse::<AuditOutcome>().is_err());
    }

    #[test]
    fn long_tool_names_are_truncated_on_a_char_boundary() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("ééé", 3), "é");
        assert_eq!(
            truncate(&"x".repeat(500), MAX_TOOL_NAME).len(),
            MAX_TOOL_NAME
        );
    }
}
