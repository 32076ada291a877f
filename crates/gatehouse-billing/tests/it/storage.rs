//! Invariant: the store behaves identically on SQLite and PostgreSQL — migrations, idempotent
//! seed, tenant-scoped reads, keyset pagination that visits every row exactly once in order,
//! and a void that writes status and history together or not at all.

use gatehouse_billing::store::{Actor, Cursor, InvoiceStatus, VoidOutcome};
use gatehouse_billing::{Backend, Seed, Store};
use sqlx::Row as _;

use crate::common::{Engine, TestDb, new_invoice, tenant};
use crate::on_both_engines;

async fn count(db: &TestDb, sql: &'static str) -> i64 {
    let mut c = db.raw().await;
    let n: i64 = sqlx::query(sql)
        .fetch_one(&mut c)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    n
}

fn actor() -> Actor {
    Actor {
        subject: Some("alice".into()),
        client_id: Some("backoffice".into()),
    }
}

on_both_engines! {
    async fn connects_to_the_expected_backend(engine) {
        let db = TestDb::new(engine).await;
        let store = db.store(Seed::None).await;
        let want = match engine { Engine::Sqlite => Backend::Sqlite, Engine::Postgres => Backend::Postgres };
        assert_eq!(store.backend(), want);
    }

    async fn production_mode_is_empty(engine) {
        let db = TestDb::new(engine).await;
        let store = db.store(Seed::None).await;
        assert_eq!(count(&db, "SELECT COUNT(*) FROM invoices").await, 0);
        assert_eq!(count(&db, "SELECT COUNT(*) FROM invoice_events").await, 0);
        assert_eq!(count(&db, "SELECT COUNT(*) FROM audit_log").await, 0);
        let page = store.list_invoices(&tenant("acme"), None, 10, None).await.unwrap();
        assert!(page.invoices.is_empty() && page.next.is_none());
    }

    async fn demo_seed_is_idempotent_and_keeps_tenants_apart(engine) {
        let db = TestDb::new(engine).await;
        let store = db.store(Seed::Demo).await;
        let invoices = count(&db, "SELECT COUNT(*) FROM invoices").await;
        let events = count(&db, "SELECT COUNT(*) FROM invoice_events").await;
        assert!(invoices >= 7, "{invoices}");
        // A void during the demo must survive a restart: the seed never resets rows.
        let acme = tenant("acme");
        assert!(matches!(
            store.void_invoice(&acme, "INV-2042", &actor(), None, None).await.unwrap(),
            VoidOutcome::Voided(_)
        ));
        store.close().await;
        let store = db.store(Seed::Demo).await;
        assert_eq!(count(&db, "SELECT COUNT(*) FROM invoices").await, invoices);
        assert_eq!(count(&db, "SELECT COUNT(*) FROM invoice_events").await, events + 1);
        assert_eq!(store.invoice(&acme, "INV-2042").await.unwrap().unwrap().status, InvoiceStatus::Void);

        let a = store.invoice(&acme, "INV-2041").await.unwrap().unwrap();
        assert_eq!((a.status, a.total_display().as_str(), a.currency.as_str()), (InvoiceStatus::Open, "1250.00", "EUR"));
        let g = store.invoice(&tenant("globex"), "INV-2041").await.unwrap().unwrap();
        assert_eq!(g.tenant.as_str(), "globex");
        assert_ne!(g.customer, a.customer);
        assert!(store.invoice(&tenant("initech"), "INV-2041").await.unwrap().is_none());
        assert!(store.invoice(&acme, "INV-3001").await.unwrap().is_none(), "globex-only invoice");
        // Paid and void invoices exist for the demo.
        let statuses: Vec<_> = store.list_invoices(&acme, None, 100, None).await.unwrap()
            .invoices.iter().map(|i| i.status).collect();
        assert!(statuses.contains(&InvoiceStatus::Paid) && statuses.contains(&InvoiceStatus::Void));
    }

    async fn insert_refuses_duplicates_per_tenant_only(engine) {
        let db = TestDb::new(engine).await;
        let store = db.store(Seed::None).await;
        assert!(store.insert_invoice(&new_invoice("a", "INV-1", InvoiceStatus::Open, 1)).await.unwrap());
        assert!(!store.insert_invoice(&new_invoice("a", "INV-1", InvoiceStatus::Paid, 2)).await.unwrap());
        assert!(store.insert_invoice(&new_invoice("b", "INV-1", InvoiceStatus::Paid, 2)).await.unwrap());
        assert_eq!(store.invoice(&tenant("a"), "INV-1").await.unwrap().unwrap().status, InvoiceStatus::Open);
        let mut bad = new_invoice("a", "INV 2", InvoiceStatus::Open, 1);
        assert!(store.insert_invoice(&bad).await.is_err());
        bad.id = "INV-2".into();
        bad.currency = "euro".into();
        assert!(store.insert_invoice(&bad).await.is_err());
        // Voids come with their history event, from void_invoice only.
        bad.currency = "EUR".into();
        bad.voided_by = Some("someone".into());
        assert!(store.insert_invoice(&bad).await.is_err());
        assert_eq!(store.invoice(&tenant("a"), "INV-2").await.unwrap(), None);
    }

    async fn pagination_visits_every_row_once_newest_first(engine) {
        let db = TestDb::new(engine).await;
        let store = db.store(Seed::None).await;
        // 53 rows for tenant a, with groups sharing a created_at so that the id tie-break matters,
        // and noise in tenant b interleaved in time.
        let mut expected = Vec::new();
        for i in 0..53_i64 {
            let status = [InvoiceStatus::Open, InvoiceStatus::Paid, InvoiceStatus::Void][(i % 3) as usize];
            let inv = new_invoice("a", &format!("INV-{:03}", (i * 37) % 101), status, 1_000 + i / 4);
            assert!(store.insert_invoice(&inv).await.unwrap());
            expected.push((inv.created_at, inv.id.clone(), status));
            store.insert_invoice(&new_invoice("b", &format!("INV-B{i}"), status, 1_000 + i)).await.unwrap();
        }
        expected.sort_by(|x, y| (y.0, &y.1).cmp(&(x.0, &x.1)));
        let a = tenant("a");
        for (filter, page_size) in [(None, 10), (None, 1), (None, 53), (None, 100), (Some(InvoiceStatus::Paid), 4)] {
            let want: Vec<String> = expected.iter()
                .filter(|e| filter.is_none_or(|f| e.2 == f))
                .map(|e| e.1.clone()).collect();
            let mut got = Vec::new();
            let mut cursor: Option<Cursor> = None;
            let mut pages = 0;
            loop {
                let page = store.list_invoices(&a, filter, page_size, cursor.as_ref()).await.unwrap();
                assert!(page.invoices.len() <= page_size as usize);
                assert!(page.invoices.iter().all(|i| i.tenant == a));
                got.extend(page.invoices.iter().map(|i| i.id.clone()));
                pages += 1;
                match page.next {
                    // The cursor survives its wire form.
                    Some(c) => cursor = Some(Cursor::decode(&c.encode()).unwrap()),
                    None => break,
                }
                assert!(pages <= 60, "pagination does not terminate");
            }
            assert_eq!(got, want, "filter {filter:?} page size {page_size}");
            assert_eq!(pages, want.len().div_ceil(page_size as usize).max(1), "no empty trailing page");
        }
    }

    async fn void_writes_status_and_event_together(engine) {
        let db = TestDb::new(engine).await;
        let store = db.store(Seed::Demo).await;
        let acme = tenant("acme");
        let out = store.void_invoice(&acme, "INV-2041", &actor(), Some("duplicate"), Some("req-1")).await.unwrap();
        let VoidOutcome::Voided(inv) = out else { panic!("{out:?}") };
        assert_eq!(inv.status, InvoiceStatus::Void);
        assert_eq!(inv.voided_by.as_deref(), Some("alice"));
        assert!(inv.voided_at.is_some());
        let events = store.invoice_history(&acme, "INV-2041").await.unwrap().unwrap();
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(
            (e.action.as_str(), e.actor_subject.as_deref(), e.client_id.as_deref(), e.reason.as_deref(), e.request_id.as_deref()),
            ("void", Some("alice"), Some("backoffice"), Some("duplicate"), Some("req-1"))
        );
        assert_eq!(e.at, inv.voided_at.unwrap());
        // Idempotent: no second event.
        let again = store.void_invoice(&acme, "INV-2041", &actor(), None, None).await.unwrap();
        assert!(matches!(again, VoidOutcome::AlreadyVoid(ref i) if i.status == InvoiceStatus::Void), "{again:?}");
        assert_eq!(store.invoice_history(&acme, "INV-2041").await.unwrap().unwrap().len(), 1);
        // The other tenant's INV-2041 is untouched.
        let g = tenant("globex");
        assert_eq!(store.invoice(&g, "INV-2041").await.unwrap().unwrap().status, InvoiceStatus::Open);
        assert!(store.invoice_history(&g, "INV-2041").await.unwrap().unwrap().is_empty());
    }

    async fn paid_and_missing_invoices_cannot_be_voided(engine) {
        let db = TestDb::new(engine).await;
        let store = db.store(Seed::Demo).await;
        let acme = tenant("acme");
        let out = store.void_invoice(&acme, "INV-2040", &actor(), None, None).await.unwrap();
        assert!(matches!(out, VoidOutcome::NotOpen(ref i) if i.status == InvoiceStatus::Paid), "{out:?}");
        assert_eq!(store.invoice(&acme, "INV-2040").await.unwrap().unwrap().status, InvoiceStatus::Paid);
        // Another tenant's invoice is "not found", exactly like a missing one.
        assert_eq!(store.void_invoice(&acme, "INV-3001", &actor(), None, None).await.unwrap(), VoidOutcome::NotFound);
        assert_eq!(store.void_invoice(&acme, "INV-9999", &actor(), None, None).await.unwrap(), VoidOutcome::NotFound);
        assert_eq!(store.invoice(&tenant("globex"), "INV-3001").await.unwrap().unwrap().status, InvoiceStatus::Paid);
        assert_eq!(count(&db, "SELECT COUNT(*) FROM invoice_events WHERE request_id IS NOT NULL").await, 0);
        assert!(store.invoice_history(&acme, "INV-3001").await.unwrap().is_none());
    }

    async fn void_is_atomic_when_the_event_insert_fails(engine) {
        let db = TestDb::new(engine).await;
        let store = db.store(Seed::Demo).await;
        let acme = tenant("acme");
        let events_before = count(&db, "SELECT COUNT(*) FROM invoice_events").await;
        // Inject a failure between the status change and the event insert: a trigger that
        // aborts every insert into invoice_events. No hook exists in the production code.
        let mut raw = db.raw().await;
        match engine {
            Engine::Sqlite => {
                sqlx::query("CREATE TRIGGER fail_events BEFORE INSERT ON invoice_events \
                             BEGIN SELECT RAISE(ABORT, 'injected failure'); END")
                    .execute(&mut raw).await.unwrap();
            }
            Engine::Postgres => {
                sqlx::query("CREATE FUNCTION fail_events() RETURNS trigger LANGUAGE plpgsql AS \
                             $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$")
                    .execute(&mut raw).await.unwrap();
                sqlx::query("CREATE TRIGGER fail_events BEFORE INSERT ON invoice_events \
                             FOR EACH ROW EXECUTE FUNCTION fail_events()")
                    .execute(&mut raw).await.unwrap();
            }
        }
        let err = store.void_invoice(&acme, "INV-2041", &actor(), None, None).await;
        assert!(err.is_err(), "the injected failure must surface: {err:?}");
        let inv = store.invoice(&acme, "INV-2041").await.unwrap().unwrap();
        assert_eq!(inv.status, InvoiceStatus::Open, "status change must roll back with the event");
        assert_eq!((inv.voided_at, inv.voided_by), (None, None));
        assert_eq!(count(&db, "SELECT COUNT(*) FROM invoice_events").await, events_before);

        // Without the trigger the same call succeeds: the failure above was the injected one.
        let drop = match engine {
            Engine::Sqlite => "DROP TRIGGER fail_events",
            Engine::Postgres => "DROP TRIGGER fail_events ON invoice_events",
        };
        sqlx::query(drop).execute(&mut raw).await.unwrap();
        assert!(matches!(
            store.void_invoice(&acme, "INV-2041", &actor(), None, None).await.unwrap(),
            VoidOutcome::Voided(_)
        ));
        assert_eq!(count(&db, "SELECT COUNT(*) FROM invoice_events").await, events_before + 1);
    }

    async fn concurrent_voids_write_exactly_one_event(engine) {
        let db = TestDb::new(engine).await;
        let store = db.store(Seed::Demo).await;
        let mut tasks = Vec::new();
        for i in 0..8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let a = Actor { subject: Some(format!("user{i}")), client_id: None };
                store.void_invoice(&tenant("acme"), "INV-2041", &a, None, None).await.unwrap()
            }));
        }
        let mut voided = 0;
        for t in tasks {
            match t.await.unwrap() {
                VoidOutcome::Voided(_) => voided += 1,
                VoidOutcome::AlreadyVoid(_) => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(voided, 1);
        let events = store.invoice_history(&tenant("acme"), "INV-2041").await.unwrap().unwrap();
        assert_eq!(events.len(), 1);
        let inv = store.invoice(&tenant("acme"), "INV-2041").await.unwrap().unwrap();
        assert_eq!(inv.voided_by, events[0].actor_subject, "winner's event matches the row");
    }
}

#[tokio::test]
async fn sqlite_database_is_created_in_wal_mode() {
    let db = TestDb::sqlite();
    assert!(!std::path::Path::new(&db.url).exists());
    let store = Store::connect(&db.url, Seed::None).await.unwrap();
    assert!(std::path::Path::new(&db.url).exists(), "create_if_missing");
    let mut raw = db.raw().await;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut raw)
        .await
        .unwrap();
    assert_eq!(mode.to_lowercase(), "wal");
    // WAL is a property of the file: a second open keeps it and does not fail.
    store.close().await;
    Store::connect(&db.url, Seed::None).await.unwrap();
    drop(raw);
}

#[tokio::test]
async fn invalid_locations_are_rejected_without_echoing_them() {
    for bad in ["", "mysql://root:secret@h/db"] {
        let err = Store::connect(bad, Seed::None)
            .await
            .unwrap_err()
            .to_string();
        assert!(!err.contains("secret"), "{err}");
    }
}
