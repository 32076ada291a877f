//! Invariant: every `tools/call` that reaches the billing server produces exactly one audit
//! record — allowed, denied or failed — with tool, subject, client, tenant, outcome, detail and
//! request id, as an `audit_log` row and a `gatehouse::audit` tracing event, never a token; and
//! recording never blocks the caller (a full queue drops and counts).

use gatehouse::tenancy::CallerEnricher as _;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gatehouse_billing::{AuditLog, AuditOutcome, AuditRecord, Seed};
use serde_json::json;

use crate::common::{TestDb, caller, demo};
use crate::on_both_engines;

type Row = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    AuditOutcome,
    String,
    Option<String>,
);

fn row(r: &AuditRecord) -> Row {
    (
        r.tool.clone(),
        r.subject.clone(),
        r.client_id.clone(),
        r.tenant.clone(),
        r.outcome,
        r.detail.clone(),
        r.request_id.clone(),
    )
}

fn want(
    tool: &str,
    who: Option<(&str, &str)>,
    tenant: Option<&str>,
    outcome: AuditOutcome,
    detail: &str,
    rid: &str,
) -> Row {
    (
        tool.to_owned(),
        who.map(|w| w.0.to_owned()),
        who.map(|w| w.1.to_owned()),
        tenant.map(str::to_owned),
        outcome,
        detail.to_owned(),
        Some(rid.to_owned()),
    )
}

/// Records one allowed `lookup_invoice` by ann (acme) with `request_id`.
fn one_record(audit: &AuditLog, request_id: &str) {
    let c = caller("ann", "app", "invoices:read", Some("acme"));
    audit.record(AuditRecord::for_caller(
        &c,
        "lookup_invoice",
        Some("acme"),
        AuditOutcome::Allowed,
        "ok",
        Some(request_id.into()),
    ));
}

on_both_engines! {
    async fn every_tools_call_is_audited_once(engine) {
        use AuditOutcome::{Allowed, Denied, Error};
        let (_db, mcp) = demo(engine).await;
        let reader = caller("ann", "acme-app", "invoices:read", Some("acme"));
        let writer = caller("wes", "acme-ops", "invoices:write", Some("acme"));
        let bot = caller("svc", "acme-reporting", "invoices:read", None);
        let lost = caller("lou", "nowhere", "invoices:read", None);
        let calls = [
            (&reader, "r1", "lookup_invoice", json!({"invoiceId": "INV-2041"})),
            (&reader, "r2", "void_invoice", json!({"invoiceId": "INV-2041"})),
            (&lost, "r3", "lookup_invoice", json!({"invoiceId": "INV-2041"})),
            (&writer, "r4", "void_invoice", json!({"invoiceId": "INV-2041"})),
            (&writer, "r5", "void_invoice", json!({"invoiceId": "INV-2041"})),
            (&writer, "r6", "void_invoice", json!({"invoiceId": "INV-2040"})),
            (&bot, "r7", "lookup_invoice", json!({"invoiceId": "INV-3001"})),
            (&reader, "r8", "lookup_invoice", json!({})),
            (&reader, "r9", "list_invoices", json!({"cursor": "junk"})),
            (&bot, "r10", "invoice_history", json!({"invoiceId": "INV-2041"})),
        ];
        for (c, rid, tool, args) in calls {
            mcp.call_with_id(c, Some(rid), tool, args).await;
        }
        // Unknown tool and a call that reached the server without a Caller (no Gatehouse layer).
        let unknown = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                             "params": {"name": "drop_tables", "arguments": {}}});
        assert!(mcp.rpc(Some(&reader), Some("r11"), unknown).await.get("error").is_some());
        let anon = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                          "params": {"name": "lookup_invoice", "arguments": {"invoiceId": "INV-2041"}}});
        assert!(mcp.rpc(None, Some("r12"), anon).await.get("error").is_some());
        // tools/list is not a tools/call: no record.
        mcp.list_tool_names(Some(&reader)).await;

        mcp.audit.flush().await;
        let mut got: Vec<Row> = mcp.store.recent_audit(100).await.unwrap().iter().map(row).collect();
        let ann = Some(("ann", "acme-app"));
        let wes = Some(("wes", "acme-ops"));
        let svc = Some(("svc", "acme-reporting"));
        let mut expected = vec![
            want("lookup_invoice", ann, Some("acme"), Allowed, "ok", "r1"),
            want("void_invoice", ann, Some("acme"), Denied, "insufficient_scope", "r2"),
            want("lookup_invoice", Some(("lou", "nowhere")), None, Denied, "no_tenant", "r3"),
            want("void_invoice", wes, Some("acme"), Allowed, "ok", "r4"),
            want("void_invoice", wes, Some("acme"), Allowed, "already_void", "r5"),
            want("void_invoice", wes, Some("acme"), Allowed, "not_open", "r6"),
            want("lookup_invoice", svc, Some("acme"), Allowed, "not_found", "r7"),
            want("lookup_invoice", ann, Some("acme"), Error, "invalid_params", "r8"),
            want("list_invoices", ann, Some("acme"), Allowed, "invalid_cursor", "r9"),
            want("invoice_history", svc, Some("acme"), Allowed, "ok", "r10"),
            want("drop_tables", ann, Some("acme"), Error, "unknown_tool", "r11"),
            want("lookup_invoice", None, None, Error, "unauthenticated", "r12"),
        ];
        got.sort();
        expected.sort();
        assert_eq!(got, expected);
        assert_eq!((mcp.audit.dropped(), mcp.audit.write_failures()), (0, 0));
    }

    async fn a_burst_larger_than_a_batch_is_written_whole(engine) {
        // 1,100 records: more than one INSERT statement (64 rows) and more than one batch (512).
        let db = TestDb::new(engine).await;
        let store = db.store(Seed::None).await;
        let audit = AuditLog::with_capacity(store.clone(), 2048);
        for i in 0..1100 {
            one_record(&audit, &format!("b{i:04}"));
        }
        audit.flush().await;
        let mut ids: Vec<String> = store.recent_audit(5000).await.unwrap()
            .into_iter().map(|r| r.request_id.unwrap()).collect();
        ids.sort();
        let expected: Vec<String> = (0..1100).map(|i| format!("b{i:04}")).collect();
        assert_eq!(ids, expected);
        assert_eq!((audit.dropped(), audit.write_failures()), (0, 0));
    }

    async fn edge_denials_are_recorded_with_the_resolved_tenant(engine) {
        let (_db, mcp) = demo(engine).await;
        let bot = caller("svc", "acme-reporting", "invoices:read", None);
        // What the edge reports when it refuses a call: the caller carries the tenant resolved
        // after authentication.
        let required = gatehouse::ScopeSet::from_space_separated("invoices:write");
        gatehouse::observe::Observer::tool_call(&mcp.audit, &gatehouse::observe::ToolCall {
            caller: Some(&mcp.tenancy.enrich(bot.clone())),
            tool: Some("void_invoice"),
            known_tool: false,
            required: Some(&required),
            outcome: gatehouse::observe::Outcome::Denied,
            reason: "insufficient_scope",
            latency: std::time::Duration::ZERO,
            request_id: Some("edge-1"),
            stage: gatehouse::observe::Stage::Edge,
        });
        // The lower-level API for wiring that has no BillingServer at hand.
        mcp.audit.record(AuditRecord::for_caller(
            &bot, "x".repeat(300).as_str(), None, AuditOutcome::Denied, "insufficient_scope", None,
        ));
        mcp.audit.flush().await;
        let mut rows = mcp.store.recent_audit(10).await.unwrap();
        rows.sort_by(|a, b| a.tool.cmp(&b.tool));
        assert_eq!(rows.len(), 2);
        assert_eq!(row(&rows[0]), want("void_invoice", Some(("svc", "acme-reporting")), Some("acme"),
                                       AuditOutcome::Denied, "insufficient_scope", "edge-1"));
        assert_eq!(rows[1].tool.len(), 128, "caller-controlled names are truncated");
    }
}

/// On a current-thread runtime the writer task cannot run until the test yields, so the queue
/// fills deterministically.
#[tokio::test(flavor = "current_thread")]
async fn a_full_queue_drops_and_counts_without_blocking() {
    let db = TestDb::sqlite();
    let store = db.store(Seed::None).await;
    let audit = AuditLog::with_capacity(store.clone(), 2);
    for i in 0..5 {
        one_record(&audit, &format!("q{i}"));
    }
    assert_eq!(audit.dropped(), 3);
    audit.flush().await;
    let mut ids: Vec<_> = store
        .recent_audit(10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.request_id.unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["q0", "q1"]);
}

/// The writer gathers a batch for the linger time: nothing reaches the table while it waits, and
/// a flush ends the wait at once (with an hour's linger, a flush that waited would time out).
#[tokio::test]
async fn a_lingering_batch_is_not_written_until_flushed() {
    let db = TestDb::sqlite();
    let store = db.store(Seed::None).await;
    let audit = AuditLog::with_options(store.clone(), 16, Duration::from_secs(3600));
    one_record(&audit, "l1");
    for _ in 0..10 {
        tokio::task::yield_now().await;
        assert!(store.recent_audit(10).await.unwrap().is_empty());
    }
    tokio::time::timeout(Duration::from_secs(10), audit.flush())
        .await
        .expect("a flush does not wait for the linger time");
    let rows = store.recent_audit(10).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].request_id.as_deref(), Some("l1"));
}

/// Without a flush, a record reaches the table once its batch's linger time has passed.
#[tokio::test]
async fn records_reach_the_table_without_a_flush() {
    let db = TestDb::sqlite();
    let store = db.store(Seed::None).await;
    let audit = AuditLog::with_options(store.clone(), 16, Duration::from_millis(20));
    one_record(&audit, "l2");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let rows = store.recent_audit(10).await.unwrap();
        if let [row] = rows.as_slice() {
            assert_eq!(row.request_id.as_deref(), Some("l2"));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the record never reached audit_log"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn write_failures_are_counted_not_raised() {
    let db = TestDb::sqlite();
    let store = db.store(Seed::None).await;
    let audit = AuditLog::new(store.clone());
    let mut raw = db.raw().await;
    sqlx::query("DROP TABLE audit_log")
        .execute(&mut raw)
        .await
        .unwrap();
    one_record(&audit, "w1");
    audit.flush().await;
    assert_eq!((audit.write_failures(), audit.dropped()), (1, 0));
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn audit_events_go_to_the_gatehouse_audit_target_without_tokens() {
    let db = TestDb::sqlite();
    let audit = AuditLog::new(db.store(Seed::None).await);
    let out = Captured::default();
    let sink = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || sink.clone())
        .finish();
    let mut c = caller("ann", "app", "invoices:read", Some("acme"));
    // Claims can hold anything an issuer put there; none of it may reach the audit event.
    let mut p = (*c).clone();
    p.claims
        .insert("raw_token".into(), json!("eyJhbGciOiJFUzI1NiJ9.SECRET.sig"));
    c = gatehouse::Caller::new(p);
    tracing::subscriber::with_default(subscriber, || {
        audit.record(AuditRecord::for_caller(
            &c,
            "void_invoice",
            Some("acme"),
            AuditOutcome::Denied,
            "insufficient_scope",
            Some("req-7".into()),
        ));
    });
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("gatehouse::audit"))
        .unwrap_or_else(|| panic!("{text}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["target"], "gatehouse::audit");
    let f = &v["fields"];
    assert_eq!(
        (
            &f["tool"],
            &f["subject"],
            &f["client_id"],
            &f["tenant"],
            &f["outcome"],
            &f["detail"],
            &f["request_id"]
        ),
        (
            &json!("void_invoice"),
            &json!("ann"),
            &json!("app"),
            &json!("acme"),
            &json!("denied"),
            &json!("insufficient_scope"),
            &json!("req-7")
        )
    );
    assert!(!text.contains("SECRET"), "{text}");
    audit.flush().await;
}

/// A batch whose connection the database cuts off (an administrator's termination, a restart) is
/// written again on a new connection: no audit row is lost to a database restart. A trigger
/// holds the first insert (sleeping) until the test has found and terminated its backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_cut_off_by_the_database_is_written_again() {
    let db = TestDb::postgres().await;
    let store = db.store(Seed::None).await;
    let mut raw = db.raw().await;
    for stmt in [
        "CREATE TABLE hold_audit_flag (hold BOOLEAN NOT NULL)",
        "INSERT INTO hold_audit_flag VALUES (true)",
        "CREATE FUNCTION hold_audit() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF (SELECT hold FROM hold_audit_flag) THEN PERFORM pg_sleep(60); END IF; \
         RETURN NEW; END $$",
        "CREATE TRIGGER hold_audit BEFORE INSERT ON audit_log \
         FOR EACH ROW EXECUTE FUNCTION hold_audit()",
    ] {
        sqlx::query(stmt).execute(&mut raw).await.unwrap();
    }
    let audit = AuditLog::with_options(store.clone(), 16, Duration::from_millis(1));
    let marker = format!("cut-{}", uuid::Uuid::new_v4().simple());
    one_record(&audit, &marker);

    // The insert is sleeping in the trigger: find its backend by the schema-qualified flag
    // table it read, let later inserts through, and terminate it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let pid: i32 = loop {
        let row: Option<(i32,)> = sqlx::query_as(
            "SELECT pid FROM pg_stat_activity \
             WHERE wait_event = 'PgSleep' AND query LIKE 'INSERT INTO audit_log%' \
             AND pid <> pg_backend_pid() \
             AND EXISTS (SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
                         WHERE l.pid = pg_stat_activity.pid AND c.relname = 'hold_audit_flag' \
                         AND c.relnamespace = (SELECT oid FROM pg_namespace \
                                               WHERE nspname = current_schema()))",
        )
        .fetch_optional(&mut raw)
        .await
        .unwrap();
        if let Some((pid,)) = row {
            break pid;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the insert never reached the trigger"
        );
        tokio::task::yield_now().await;
    };
    sqlx::query("UPDATE hold_audit_flag SET hold = false")
        .execute(&mut raw)
        .await
        .unwrap();
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .execute(&mut raw)
        .await
        .unwrap();

    tokio::time::timeout(Duration::from_secs(20), audit.flush())
        .await
        .expect("the retried batch is written");
    let rows = store.recent_audit(10).await.unwrap();
    let ours: Vec<_> = rows
        .iter()
        .filter(|r| r.request_id.as_deref() == Some(marker.as_str()))
        .collect();
    assert_eq!(ours.len(), 1, "{rows:?}");
    assert_eq!((audit.write_failures(), audit.dropped()), (0, 0));
}
