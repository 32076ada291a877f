//! Keeps the invoice caches of several replicas coherent on PostgreSQL (`LISTEN`/`NOTIFY`).
//!
//! Every write that changes an invoice sends `pg_notify(channel, '["tenant","id"]')` inside its
//! own transaction, so PostgreSQL delivers it only when (and if) the write commits (PostgreSQL
//! docs, `NOTIFY`: "if a NOTIFY is executed inside a transaction, the notify events are not
//! delivered until and unless the transaction is committed"). Each store listens on the channel
//! over a dedicated connection and forgets the invoice it names: another replica's void is seen
//! by the next read here as soon as the notification arrives, instead of up to the TTL later.
//!
//! Notifications are not queued for a listener that is not connected. So:
//! - while the listening connection is down, the cache's TTL is the bound on staleness, as for a
//!   single process (the TTL always applies; it is the fallback, not replaced);
//! - every (re)subscription drops the whole cache *after* `LISTEN` is in place: whatever was
//!   missed before is gone, and nothing committed afterwards can be missed.
//!
//! The channel is named after the schema the store works in (`current_schema()`), hashed to fit
//! PostgreSQL's 63-byte identifiers: stores on the same tables hear each other, deployments in
//! other schemas of the same database do not.
//!
//! SQLite has no equivalent and needs none: one process owns the file, and its own writes
//! invalidate its cache directly.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use super::cache::{CacheEvent, InvoiceCache};
use crate::tenancy::TenantId;

/// First wait before reconnecting after a failure; doubled up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The channel of the stores working in `schema`: `gatehouse_invoices_<FNV-1a 64 of the name>`.
/// FNV is written out rather than taken from `std`'s hasher, whose output may change between Rust
/// releases — replicas built by different compilers must agree on the name.
pub(super) fn channel_for(schema: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in schema.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("gatehouse_invoices_{h:016x}")
}

/// The notification's text for one invoice.
pub(super) fn payload(tenant: &TenantId, id: &str) -> String {
    serde_json::json!([tenant.as_str(), id]).to_string()
}

fn parse(payload: &str) -> Option<(TenantId, String)> {
    let (tenant, id): (String, String) = serde_json::from_str(payload).ok()?;
    Some((TenantId::new(&tenant).ok()?, id))
}

/// Subscribes once (so that a store is coherent from the moment `connect` returns), then keeps
/// listening in a task until `stop` is cancelled, resubscribing with backoff. `url` is the
/// store's own URL (never logged: it may hold a password).
pub(super) async fn start(
    url: String,
    channel: String,
    cache: Arc<InvoiceCache>,
    stop: CancellationToken,
) -> Result<(), sqlx::Error> {
    let first = subscribe(&url, &channel).await?;
    tokio::spawn(run(url, channel, cache, stop, first));
    Ok(())
}

async fn run(
    url: String,
    channel: String,
    cache: Arc<InvoiceCache>,
    stop: CancellationToken,
    first: (PgListener, i32),
) {
    let mut backoff = MIN_BACKOFF;
    let mut was_up = true;
    let mut next_subscription = Some(first);
    loop {
        let subscribed = match next_subscription.take() {
            Some(s) => Ok(s),
            None => tokio::select! {
                () = stop.cancelled() => return,
                r = subscribe(&url, &channel) => r,
            },
        };
        let (mut listener, pid) = match subscribed {
            Ok(l) => l,
            Err(e) => {
                if was_up {
                    tracing::warn!(error = %e, "cannot listen for invoice changes; the invoice cache falls back to its TTL");
                    was_up = false;
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        // After LISTEN: anything cached before may have missed a notification.
        cache.invalidate_all();
        cache.announce(CacheEvent::Subscribed { backend_pid: pid });
        tracing::info!(
            backend_pid = pid,
            "listening for invoice changes of other replicas"
        );
        backoff = MIN_BACKOFF;
        was_up = true;
        loop {
            let next = tokio::select! {
                () = stop.cancelled() => return,
                n = listener.try_recv() => n,
            };
            match next {
                Ok(Some(n)) => match parse(n.payload()) {
                    Some((tenant, id)) => {
                        cache.invalidate(&tenant, &id);
                        cache.announce(CacheEvent::Notified { tenant, id });
                    }
                    // Not ours to understand: forgetting everything is always safe.
                    None => cache.invalidate_all(),
                },
                // `Ok(None)`: the connection was lost; an error: it failed (a terminated
                // backend reports its FATAL error). Either way notifications may be missed
                // from now on until a new LISTEN is in place.
                Ok(None) | Err(_) => {
                    tracing::warn!(
                        "lost the connection that listens for invoice changes; the invoice cache \
                         falls back to its TTL until it is back"
                    );
                    cache.announce(CacheEvent::Lost);
                    break;
                }
            }
        }
    }
}

async fn subscribe(url: &str, channel: &str) -> Result<(PgListener, i32), sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(channel).await?;
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut listener)
        .await?;
    Ok((listener, pid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_are_per_schema_stable_and_fit_an_identifier() {
        assert_eq!(channel_for("public"), channel_for("public"));
        assert_ne!(channel_for("public"), channel_for("billing"));
        // Fixed: replicas built apart must agree (FNV-1a 64 of "public").
        assert_eq!(channel_for("public"), "gatehouse_invoices_f4b72165f60f5b60");
        assert!(channel_for(&"x".repeat(63)).len() <= 63);
    }

    #[test]
    fn payloads_round_trip_and_garbage_is_refused() {
        let t = TenantId::new("acme").unwrap();
        assert_eq!(
            parse(&payload(&t, "INV-\"1\"")),
            Some((t, "INV-\"1\"".to_owned()))
        );
        assert_eq!(parse("not json"), None);
        assert_eq!(parse(r#"["", "x"]"#), None);
    }
}
