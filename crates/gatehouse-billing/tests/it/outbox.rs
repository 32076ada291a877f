//! Invariant: with credit notes on, a void and the credit note it owes the ledger commit together
//! — exactly one owed note per voided invoice, however many voids race — and a note is delivered
//! at most once (a second confirmation changes nothing). With credit notes off, voids owe nothing.

use gatehouse_billing::Seed;
use gatehouse_billing::store::outbox::Attempt;
use gatehouse_billing::store::{Actor, VoidOutcome};

use crate::common::{TestDb, tenant};
use crate::on_both_engines;

fn ann() -> Actor {
    Actor {
        subject: Some("ann".into()),
        client_id: Some("acme-app".into()),
    }
}

on_both_engines! {
    async fn a_void_and_its_credit_note_commit_together(engine) {
        let db = TestDb::new(engine).await;
        let store = db.store(Seed::Demo).await.with_credit_notes(true);
        let acme = tenant("acme");
        let voided = store.void_invoice(&acme, "INV-2041", &ann(), Some("duplicate"), None).await.unwrap();
        let VoidOutcome::Voided(inv) = voided else { panic!("{voided:?}") };
        let owed = store.owed_credit_notes(10).await.unwrap();
        assert_eq!(owed.len(), 1);
        let n = &owed[0];
        assert_eq!((n.tenant.as_str(), n.invoice_id.as_str()), ("acme", "INV-2041"));
        assert_eq!((n.amount_minor, n.currency.as_str()), (inv.total_minor, inv.currency.as_str()));
        assert_eq!((n.subject.as_deref(), n.client_id.as_deref()), (Some("ann"), Some("acme-app")));
        assert_eq!(n.reason.as_deref(), Some("duplicate"));

        // Voiding again, or another tenant's invoice of the same id, owes nothing more to acme.
        store.void_invoice(&acme, "INV-2041", &ann(), None, None).await.unwrap();
        assert_eq!(store.owed_credit_notes(10).await.unwrap().len(), 1);

        // A failed delivery is counted; a confirmation delivers it once.
        store.record_credit_note_attempt(&n.id, Attempt::Failed { error: "ledger down", retry_at: 7 }).await.unwrap();
        let n2 = &store.owed_credit_notes(10).await.unwrap()[0];
        assert_eq!((n2.attempts, n2.last_error.as_deref(), n2.next_attempt_at), (1, Some("ledger down"), Some(7)));
        store.record_credit_note_attempt(&n.id, Attempt::Delivered { ledger_id: "CN-1" }).await.unwrap();
        store.record_credit_note_attempt(&n.id, Attempt::Delivered { ledger_id: "CN-9" }).await.unwrap();
        assert!(store.owed_credit_notes(10).await.unwrap().is_empty());
        let all = store.credit_notes_of(&acme, "INV-2041").await.unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!((all[0].ledger_id.as_deref(), all[0].attempts), (Some("CN-1"), 2));
        assert!(all[0].delivered_at.is_some());
    }

    // The courier takes a note never tried only after the inline attempt's grace, and a failed
    // one only once its backoff has passed; a delivered one never.
    async fn notes_fall_due_after_the_grace_and_after_their_backoff(engine) {
        let db = TestDb::new(engine).await;
        let store = db.store(Seed::Demo).await.with_credit_notes(true);
        let acme = tenant("acme");
        store.void_invoice(&acme, "INV-2041", &ann(), None, None).await.unwrap();
        let n = store.owed_credit_notes(10).await.unwrap().remove(0);
        let created = store.credit_notes_of(&acme, "INV-2041").await.unwrap()[0].clone();
        assert_eq!(created, n);
        let due = |now: i64, grace: i64| {
            let store = store.clone();
            async move { store.due_credit_notes(now, grace, 10).await.unwrap().len() }
        };
        let far = i64::MAX / 4;
        // Still within the grace of an hour: not due; with no grace: due.
        let soon = now() + 1_000_000;
        assert_eq!(due(soon, 3_600_000_000).await, 0);
        assert_eq!(due(soon, 0).await, 1);
        // Failed, retry at T: not due before T, due at T, whatever the grace.
        let t = now() + 60_000_000;
        store.record_credit_note_attempt(&n.id, Attempt::Failed { error: "x", retry_at: t }).await.unwrap();
        assert_eq!(due(t - 1, 0).await, 0);
        assert_eq!(due(t, far).await, 1);
        store.record_credit_note_attempt(&n.id, Attempt::Delivered { ledger_id: "CN-1" }).await.unwrap();
        assert_eq!(due(far, 0).await, 0);
    }

    async fn racing_voids_owe_exactly_one_credit_note(engine) {
        let db = TestDb::new(engine).await;
        let store = db.store(Seed::Demo).await.with_credit_notes(true);
        let acme = tenant("acme");
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let store = store.clone();
            let acme = acme.clone();
            tasks.push(tokio::spawn(async move {
                // SQLite may answer "busy" to a racing writer; a refused void owes nothing.
                store.void_invoice(&acme, "INV-2041", &ann(), None, None).await
            }));
        }
        let mut voided = 0;
        for t in tasks {
            if let Ok(VoidOutcome::Voided(_)) = t.await.unwrap() {
                voided += 1;
            }
        }
        assert_eq!(voided, 1);
        assert_eq!(store.credit_notes_of(&acme, "INV-2041").await.unwrap().len(), 1);
    }

    async fn without_credit_notes_a_void_owes_nothing(engine) {
        let db = TestDb::new(engine).await;
        let store = db.store(Seed::Demo).await;
        store.void_invoice(&tenant("acme"), "INV-2041", &ann(), None, None).await.unwrap();
        assert!(store.owed_credit_notes(10).await.unwrap().is_empty());
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}
