//! Invariant: the invoice cache never shows one tenant another's invoice, never hides a change
//! made through the store (void, insert) from the next read, not even one that races with
//! concurrent reads, and shows a change made outside the store within its TTL; with a zero TTL
//! every read goes to the database.

use std::time::Duration;

use gatehouse_billing::store::{Actor, InvoiceStatus, VoidOutcome};
use gatehouse_billing::{InvoiceCacheConfig, Seed, Store};

use crate::common::{TestDb, new_invoice, tenant};
use crate::on_both_engines;

fn actor() -> Actor {
    Actor {
        subject: Some("alice".into()),
        client_id: Some("backoffice".into()),
    }
}

async fn store_with(db: &TestDb, ttl: Duration) -> Store {
    let cache = InvoiceCacheConfig {
        max_entries: 1000,
        ttl,
    };
    Store::connect_with(&db.url, Seed::Demo, cache)
        .await
        .expect("connect store")
}

/// The status `store` reports for acme's `INV-2041`.
async fn status_2041(store: &Store) -> InvoiceStatus {
    let acme = tenant("acme");
    store
        .invoice(&acme, "INV-2041")
        .await
        .unwrap()
        .unwrap()
        .status
}

/// Changes `INV-2041` of acme behind the store's back, as another process would.
async fn mark_paid_outside(db: &TestDb) {
    let mut raw = db.raw().await;
    sqlx::query("UPDATE invoices SET status = 'paid' WHERE tenant_id = 'acme' AND id = 'INV-2041'")
        .execute(&mut raw)
        .await
        .unwrap();
}

on_both_engines! {
    async fn cached_reads_stay_within_their_tenant(engine) {
        let db = TestDb::new(engine).await;
        let store = store_with(&db, Duration::from_secs(3600)).await;
        let acme = store.invoice(&tenant("acme"), "INV-2041").await.unwrap().unwrap();
        // Same id, other tenants: globex has its own INV-2041, initech has none.
        let globex = store.invoice(&tenant("globex"), "INV-2041").await.unwrap().unwrap();
        assert_eq!(globex.tenant.as_str(), "globex");
        assert_ne!(globex.customer, acme.customer);
        assert!(store.invoice(&tenant("initech"), "INV-2041").await.unwrap().is_none());
        assert!(store.invoice(&tenant("acme"), "INV-3001").await.unwrap().is_none());
        // And again, now that the entries exist.
        assert_eq!(store.invoice(&tenant("acme"), "INV-2041").await.unwrap().unwrap(), acme);
        assert_eq!(store.invoice(&tenant("globex"), "INV-2041").await.unwrap().unwrap(), globex);
        assert!(store.invoice(&tenant("initech"), "INV-2041").await.unwrap().is_none());
    }

    async fn a_void_through_the_store_is_read_at_once(engine) {
        let db = TestDb::new(engine).await;
        let store = store_with(&db, Duration::from_secs(3600)).await;
        let acme = tenant("acme");
        assert_eq!(store.invoice(&acme, "INV-2041").await.unwrap().unwrap().status, InvoiceStatus::Open);
        let other_clone = store.clone();
        assert!(matches!(
            other_clone.void_invoice(&acme, "INV-2041", &actor(), None, None).await.unwrap(),
            VoidOutcome::Voided(_)
        ));
        assert_eq!(store.invoice(&acme, "INV-2041").await.unwrap().unwrap().status, InvoiceStatus::Void);
    }

    async fn a_new_invoice_is_read_at_once(engine) {
        let db = TestDb::new(engine).await;
        let store = store_with(&db, Duration::from_secs(3600)).await;
        let acme = tenant("acme");
        assert!(store.invoice(&acme, "INV-7777").await.unwrap().is_none());
        assert!(store.insert_invoice(&new_invoice("acme", "INV-7777", InvoiceStatus::Open, 0)).await.unwrap());
        assert!(store.invoice(&acme, "INV-7777").await.unwrap().is_some(), "misses are not cached");
    }

    async fn reads_racing_a_void_never_keep_the_old_status(engine) {
        // Readers hammer the invoice while it is voided; once the void has returned, every read
        // that starts afterwards must see it, whatever the interleaving of cache fills.
        let db = TestDb::new(engine).await;
        let store = store_with(&db, Duration::from_secs(3600)).await;
        let acme = tenant("acme");
        store.invoice(&acme, "INV-2041").await.unwrap().unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..4).map(|_| {
            let (store, acme, stop) = (store.clone(), acme.clone(), stop.clone());
            tokio::spawn(async move {
                let mut reads = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && reads < 2000 {
                    store.invoice(&acme, "INV-2041").await.unwrap().unwrap();
                    reads += 1;
                }
            })
        }).collect();
        tokio::task::yield_now().await;
        let voided = store.void_invoice(&acme, "INV-2041", &actor(), None, None).await.unwrap();
        assert!(matches!(voided, VoidOutcome::Voided(_)));
        for _ in 0..200 {
            assert_eq!(store.invoice(&acme, "INV-2041").await.unwrap().unwrap().status, InvoiceStatus::Void);
            tokio::task::yield_now().await;
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for r in readers {
            r.await.unwrap();
        }
        assert_eq!(store.invoice(&acme, "INV-2041").await.unwrap().unwrap().status, InvoiceStatus::Void);
    }

    async fn an_outside_change_is_read_within_the_ttl(engine) {
        let db = TestDb::new(engine).await;
        let ttl = Duration::from_millis(100);
        let store = store_with(&db, ttl).await;
        assert_eq!(status_2041(&store).await, InvoiceStatus::Open);
        mark_paid_outside(&db).await;
        let changed_at = tokio::time::Instant::now();
        loop {
            let status = status_2041(&store).await;
            if status == InvoiceStatus::Paid {
                break;
            }
            assert!(changed_at.elapsed() < ttl * 20, "still {status:?} long after the TTL");
            tokio::task::yield_now().await;
        }
    }

    async fn a_zero_ttl_reads_the_database_every_time(engine) {
        let db = TestDb::new(engine).await;
        let store = store_with(&db, Duration::ZERO).await;
        assert_eq!(status_2041(&store).await, InvoiceStatus::Open);
        mark_paid_outside(&db).await;
        assert_eq!(status_2041(&store).await, InvoiceStatus::Paid);
    }
}

/// With a long TTL an outside change is not seen while the entry lives: the cache does answer
/// reads (this is what makes the tests above able to fail).
#[tokio::test]
async fn a_cached_read_does_not_touch_the_database() {
    let db = TestDb::sqlite();
    let store = store_with(&db, Duration::from_secs(3600)).await;
    assert_eq!(status_2041(&store).await, InvoiceStatus::Open);
    mark_paid_outside(&db).await;
    assert_eq!(status_2041(&store).await, InvoiceStatus::Open);
}
