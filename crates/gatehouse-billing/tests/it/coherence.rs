//! Invariant: on PostgreSQL, a change committed through one store (replica) invalidates every
//! other store's cached copy as soon as its notification arrives — not a TTL later — and only
//! changes that commit are notified; when the listening connection is lost, the store
//! resubscribes and drops its whole cache (notifications sent meanwhile are lost), and
//! invalidation works again afterwards.
//!
//! The TTL is 60 s in every test, so nothing but a notification can explain a fresh read; the
//! tests wait on the store's cache events, never on the clock.

use std::time::Duration;

use gatehouse_billing::store::{Actor, InvoiceStatus, VoidOutcome};
use gatehouse_billing::{CacheEvent, InvoiceCacheConfig, Seed, Store};
use tokio::sync::broadcast::Receiver;

use crate::common::{TestDb, tenant};

const LONG_TTL: Duration = Duration::from_secs(60);

fn actor() -> Actor {
    Actor {
        subject: Some("alice".into()),
        client_id: Some("backoffice".into()),
    }
}

async fn replica(db: &TestDb) -> Store {
    let cache = InvoiceCacheConfig {
        max_entries: 1000,
        ttl: LONG_TTL,
    };
    Store::connect_with(&db.url, Seed::Demo, cache)
        .await
        .expect("connect store")
}

async fn status(store: &Store, id: &str) -> InvoiceStatus {
    store
        .invoice(&tenant("acme"), id)
        .await
        .unwrap()
        .unwrap()
        .status
}

/// The next event that `pick` accepts. The outer bound turns a lost notification into a failed
/// test instead of a hung one; it asserts nothing about time.
async fn next_event<T>(
    events: &mut Receiver<CacheEvent>,
    mut pick: impl FnMut(&CacheEvent) -> Option<T>,
) -> T {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let e = events.recv().await.expect("cache events");
            if let Some(t) = pick(&e) {
                return t;
            }
        }
    })
    .await
    .expect("the awaited cache event never came")
}

async fn notified(events: &mut Receiver<CacheEvent>) -> String {
    next_event(events, |e| match e {
        CacheEvent::Notified { id, .. } => Some(id.clone()),
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_void_through_one_replica_is_read_by_the_other_at_once() {
    let db = TestDb::postgres().await;
    let (a, b) = (replica(&db).await, replica(&db).await);
    assert_eq!(status(&b, "INV-2041").await, InvoiceStatus::Open);
    // B's cache answers: a change nobody notifies (a manual UPDATE) is not seen.
    assert_eq!(status(&b, "INV-2042").await, InvoiceStatus::Open);
    let mut raw = db.raw().await;
    sqlx::query("UPDATE invoices SET status = 'paid' WHERE tenant_id = 'acme' AND id = 'INV-2042'")
        .execute(&mut raw)
        .await
        .unwrap();
    assert_eq!(
        status(&b, "INV-2042").await,
        InvoiceStatus::Open,
        "served from B's cache"
    );

    let mut events = b.cache_events();
    let voided = a
        .void_invoice(&tenant("acme"), "INV-2041", &actor(), None, None)
        .await
        .unwrap();
    assert!(matches!(voided, VoidOutcome::Voided(_)));
    assert_eq!(notified(&mut events).await, "INV-2041");
    assert_eq!(status(&b, "INV-2041").await, InvoiceStatus::Void);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_committed_changes_are_notified() {
    let db = TestDb::postgres().await;
    let (a, b) = (replica(&db).await, replica(&db).await);
    let acme = tenant("acme");
    let mut events = b.cache_events();
    a.void_invoice(&acme, "INV-2041", &actor(), None, None)
        .await
        .unwrap();
    assert_eq!(notified(&mut events).await, "INV-2041");
    // Rolled back (already void, not found): nothing is sent. Notifications arrive in commit
    // order, so the next one B hears is the next void that committed.
    let again = a
        .void_invoice(&acme, "INV-2041", &actor(), None, None)
        .await
        .unwrap();
    assert!(matches!(again, VoidOutcome::AlreadyVoid(_)));
    let missing = a
        .void_invoice(&acme, "INV-9999", &actor(), None, None)
        .await
        .unwrap();
    assert!(matches!(missing, VoidOutcome::NotFound));
    a.void_invoice(&acme, "INV-2042", &actor(), None, None)
        .await
        .unwrap();
    assert_eq!(notified(&mut events).await, "INV-2042");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_listener_drops_the_cache_resubscribes_and_invalidates_again() {
    let db = TestDb::postgres().await;
    let (a, b) = (replica(&db).await, replica(&db).await);
    let acme = tenant("acme");
    assert_eq!(status(&b, "INV-2041").await, InvoiceStatus::Open);
    let first = b.cache_listener_pid().expect("B listens");
    let mut events = b.cache_events();

    let mut raw = db.raw().await;
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(first)
        .fetch_one(&mut raw)
        .await
        .unwrap();
    assert!(killed);
    next_event(&mut events, |e| (*e == CacheEvent::Lost).then_some(())).await;
    // Changed while B is deaf: no notification will ever tell B.
    sqlx::query("UPDATE invoices SET status = 'paid' WHERE tenant_id = 'acme' AND id = 'INV-2041'")
        .execute(&mut raw)
        .await
        .unwrap();
    let second = next_event(&mut events, |e| match e {
        CacheEvent::Subscribed { backend_pid } => Some(*backend_pid),
        _ => None,
    })
    .await;
    assert_ne!(second, first);
    assert_eq!(b.cache_listener_pid(), Some(second));
    // The whole cache went with the resubscription: the change is read, 60 s TTL or not.
    assert_eq!(status(&b, "INV-2041").await, InvoiceStatus::Paid);

    // And notifications work again.
    assert_eq!(status(&b, "INV-2042").await, InvoiceStatus::Open);
    a.void_invoice(&acme, "INV-2042", &actor(), None, None)
        .await
        .unwrap();
    assert_eq!(notified(&mut events).await, "INV-2042");
    assert_eq!(status(&b, "INV-2042").await, InvoiceStatus::Void);
}

#[tokio::test]
async fn sqlite_has_no_listener() {
    let db = TestDb::sqlite();
    let store = replica(&db).await;
    assert_eq!(store.cache_listener_pid(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_store_stops_listening() {
    let db = TestDb::postgres().await;
    let store = replica(&db).await;
    let pid = store.cache_listener_pid().expect("listening");
    store.close().await;
    // The listening connection is gone from the server once its task has stopped; poll the
    // server's view (bounded) rather than sleep.
    let mut raw = db.raw().await;
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = $1")
                .bind(pid)
                .fetch_one(&mut raw)
                .await
                .unwrap();
            if n == 0 {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the listening connection stays open after close");
}
