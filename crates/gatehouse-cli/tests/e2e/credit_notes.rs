//! Invariant (issue 12): every void's credit note reaches the ledger **exactly once as the ledger
//! sees it**, whatever happens between them — the ledger down for a while, an answer lost after
//! the ledger recorded the note — and the ledger never receives the MCP client's token.
//!
//! Real components throughout: the development issuer (token exchange and client credentials),
//! the ledger (its own audience and scope), the billing server as `gatehouse serve` runs it, with
//! its courier, on SQLite. The ledger is really taken off the network (its listener closed, so
//! connections are refused) and brought back on the same address.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gatehouse_billing::TenantId;
use gatehouse_billing::store::{Invoice, InvoiceStatus};
use gatehouse_cli::demo;
use gatehouse_ledger::{Ledger, fingerprint};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::stack::{Stack, TempDir};

/// The ledger on a fixed address that can be taken down and brought back, and told to lose the
/// answer to the next post for given invoices (it records the note, the caller sees `502`, as
/// from a proxy that timed out after the ledger committed).
struct LedgerServer {
    ledger: Ledger,
    addr: SocketAddr,
    lose: Lose,
    running: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
}

/// Invoices whose next post's answer is lost.
type Lose = Arc<Mutex<HashSet<String>>>;

async fn lose_answers(State(lose): State<Lose>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let invoice = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v["invoiceId"].as_str().map(str::to_owned));
    let resp = next
        .run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await;
    let lost = invoice.is_some_and(|i| lose.lock().unwrap().remove(&i));
    if lost {
        assert!(resp.status().is_success(), "the ledger recorded it");
        return (http::StatusCode::BAD_GATEWAY, "answer lost").into_response();
    }
    resp
}

impl LedgerServer {
    fn serve(&mut self, listener: TcpListener) {
        let stop = CancellationToken::new();
        let router = self
            .ledger
            .router()
            .layer(axum::middleware::from_fn_with_state(
                self.lose.clone(),
                lose_answers,
            ));
        let s = stop.clone();
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move { s.cancelled().await })
                .await
                .unwrap();
        });
        self.running = Some((stop, task));
    }

    async fn up(&mut self) {
        let listener = TcpListener::bind(self.addr)
            .await
            .expect("rebind the ledger");
        self.serve(listener);
    }

    /// Closes the listener and every connection: from now on connections are refused.
    async fn down(&mut self) {
        let (stop, task) = self.running.take().expect("running");
        stop.cancel();
        task.await.unwrap();
    }
}

fn open_invoice(id: &str) -> Invoice {
    Invoice {
        tenant: TenantId::new("acme").unwrap(),
        id: id.into(),
        customer: "Initech GmbH".into(),
        status: InvoiceStatus::Open,
        total_minor: 10_000 + id.len() as i64,
        currency: "EUR".into(),
        created_at: 1_800_000_000_000_000,
        voided_at: None,
        voided_by: None,
    }
}

/// Polls `history` of every invoice until each credit note is delivered, for at most 30 s.
async fn wait_until_delivered(stack: &Stack, token: &str, ids: &[&str]) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut notes = Vec::new();
        for id in ids {
            let r = stack
                .call(token, "invoice_history", json!({"invoiceId": id}))
                .await
                .result();
            let n = r["structuredContent"]["creditNotes"]
                .as_array()
                .unwrap()
                .clone();
            assert_eq!(n.len(), 1, "one credit note per voided invoice: {r}");
            notes.push(n[0].clone());
        }
        if notes.iter().all(|n| n["status"] == "delivered") {
            return notes;
        }
        assert!(
            Instant::now() < deadline,
            "not delivered in 30 s: {notes:?}"
        );
        // The courier polls every 50 ms; look again a little later.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_credit_note_reaches_the_ledger_exactly_once_through_outages_and_lost_answers() {
    let ledger_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ledger_addr = ledger_listener.local_addr().unwrap();
    let ledger_base = format!("http://{ledger_addr}/api");
    let dir = TempDir::new();
    let secret_file = dir.0.join("billing.secret");
    demo::write_secret(&secret_file, "billing-secret").unwrap();

    let stack = Stack::start_with(
        |mcp| vec![demo::billing_client(mcp, &ledger_base, "billing-secret")],
        |config, issuer| {
            let (upstreams, mut credit_notes) =
                demo::ledger_settings(&issuer.token_endpoint(), &ledger_base, &secret_file);
            credit_notes.poll_interval_ms = 50;
            credit_notes.min_backoff_ms = 20;
            credit_notes.max_backoff_seconds = 1;
            config.upstreams = upstreams;
            config.credit_notes = Some(credit_notes);
        },
    )
    .await;
    let ids = ["INV-9001", "INV-9002", "INV-9003", "INV-9004", "INV-9005"];
    for id in ids {
        assert!(stack.store.insert_invoice(&open_invoice(id)).await.unwrap());
    }
    let cancel = CancellationToken::new();
    let mut ledger = LedgerServer {
        ledger: Ledger::start(stack.issuer.issuer(), &ledger_base, cancel.clone())
            .await
            .unwrap(),
        addr: ledger_addr,
        lose: Lose::default(),
        running: None,
    };
    ledger.serve(ledger_listener);
    let writer = stack.token("acme-writer", &[]);
    let void = |id: &'static str| {
        let stack = &stack;
        let writer = writer.clone();
        async move {
            let r = stack
                .call(
                    &writer,
                    "void_invoice",
                    json!({"invoiceId": id, "reason": "test"}),
                )
                .await
                .result();
            assert_eq!(r["isError"], false, "{r}");
            r["structuredContent"]["creditNote"].clone()
        }
    };

    // 1. Ledger up: delivered inline, as the user (the exchanged token proves it).
    let n = void(ids[0]).await;
    assert_eq!(
        (&n["status"], &n["attempts"]),
        (&json!("delivered"), &json!(1)),
        "{n}"
    );

    // 2. Ledger down: the voids succeed, their notes are pending (the inline attempt failed).
    ledger.down().await;
    for id in &ids[1..4] {
        let n = void(id).await;
        assert_eq!(n["status"], "pending", "{n}");
        assert_eq!(n["lastError"], "ledger unreachable", "{n}");
    }

    // 3. Back, but the answers to the next post of one pending note and of a new void's inline
    // attempt are lost after the ledger recorded them: the retries carry the same idempotency
    // key, and the ledger answers with the note it has.
    ledger
        .lose
        .lock()
        .unwrap()
        .extend([ids[2].to_owned(), ids[4].to_owned()]);
    ledger.up().await;
    let n = void(ids[4]).await;
    assert_eq!(n["status"], "pending", "the inline answer was lost: {n}");
    assert_eq!(n["lastError"], "ledger unavailable", "{n}");
    let notes = wait_until_delivered(&stack, &writer, &ids).await;
    assert!(
        ledger.lose.lock().unwrap().is_empty(),
        "both answers were lost"
    );

    // Exactly once as the ledger sees it: one note per voided invoice, each under the outbox
    // id billing reports, with the ledger id billing recorded.
    let recorded = ledger.ledger.notes();
    assert_eq!(recorded.len(), ids.len(), "{recorded:#?}");
    for (id, billing) in ids.iter().zip(&notes) {
        let at_ledger: Vec<_> = recorded
            .iter()
            .filter(|r| r.request.invoice_id == *id)
            .collect();
        assert_eq!(at_ledger.len(), 1, "{id}: {recorded:#?}");
        let r = at_ledger[0];
        assert_eq!(json!(r.idempotency_key), billing["id"]);
        assert_eq!(json!(r.id), billing["ledgerId"]);
        assert_eq!(r.actor.as_deref(), Some(demo::BILLING_CLIENT));
        assert_eq!(r.user.as_deref(), Some("acme-writer"));
        assert_eq!(r.request.tenant, "acme");
    }
    // The inline deliveries proved the user with the exchanged token (INV-9005's was recorded
    // then, though its answer was lost); the retries, sent after the user's request had
    // ended, assert the user as data.
    let verified: Vec<bool> = ids
        .iter()
        .map(|id| {
            recorded
                .iter()
                .find(|r| r.request.invoice_id == *id)
                .unwrap()
                .user_verified
        })
        .collect();
    assert_eq!(verified, [true, false, false, false, true], "{recorded:#?}");
    assert!(
        notes[1..]
            .iter()
            .all(|n| n["attempts"].as_i64().unwrap() >= 2)
    );

    // The ledger never received the client's token (it keeps fingerprints of every token it
    // was shown), and it refuses that token when it is replayed to it.
    assert!(!ledger.ledger.tokens_seen().contains(&fingerprint(&writer)));
    let replay = stack
        .http
        .post(format!("{ledger_base}/credit-notes"))
        .bearer_auth(&writer)
        .header("idempotency-key", "replayed")
        .json(&json!({"invoiceId": "INV-9001", "tenant": "acme", "amountMinor": 1, "currency": "EUR"}))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 401);
    assert_eq!(ledger.ledger.notes().len(), ids.len());

    // Nothing is owed any more.
    assert!(stack.store.owed_credit_notes(10).await.unwrap().is_empty());
    ledger.down().await;
    cancel.cancel();
    stack.stop().await;
}
