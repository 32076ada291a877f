//! Invariant (property): whatever the tenants, invoices and sequence of tool calls by whatever
//! callers (with a tenant claim, with a mapped client, with no tenant at all; with or without
//! scopes), no call ever returns another tenant's rows or changes another tenant's rows, and a
//! caller without a tenant gets nothing. Invoice ids deliberately collide across tenants.
//!
//! Checked against a model: after every call the whole database (all tenants) must equal the
//! model, which only the caller's own tenant's voids may change.

use std::collections::BTreeMap;

use gatehouse::Caller;
use gatehouse_billing::store::InvoiceStatus;
use gatehouse_billing::{Seed, Tenancy, default_policy};
use proptest::prelude::*;
use serde_json::{Value, json};
use sqlx::Row as _;

use crate::common::{Mcp, TestDb, caller, new_invoice};

const TENANTS: [&str; 3] = ["t0", "t1", "t2"];
const IDS: [&str; 5] = ["INV-1", "INV-2", "INV-3", "INV-4", "INV-5"];

#[derive(Debug, Clone, Copy)]
enum Who {
    /// Tenant from the token's claim.
    Claim(usize),
    /// No claim; tenant from the client map.
    Mapped(usize),
    /// No claim, unmapped client.
    Nobody,
}

#[derive(Debug, Clone)]
struct Actor {
    who: Who,
    scopes: &'static str,
}

#[derive(Debug, Clone)]
enum Op {
    Lookup(usize),
    List(Option<InvoiceStatus>, u32),
    Void(usize),
    History(usize),
}

fn status() -> impl Strategy<Value = InvoiceStatus> {
    prop_oneof![
        Just(InvoiceStatus::Open),
        Just(InvoiceStatus::Paid),
        Just(InvoiceStatus::Void)
    ]
}

fn actor() -> impl Strategy<Value = Actor> {
    let who = prop_oneof![
        (0..3usize).prop_map(Who::Claim),
        (0..3usize).prop_map(Who::Mapped),
        Just(Who::Nobody),
    ];
    let scopes = prop_oneof![
        3 => Just("invoices:write"),
        3 => Just("invoices:read"),
        1 => Just(""),
    ];
    (who, scopes).prop_map(|(who, scopes)| Actor { who, scopes })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..5usize).prop_map(Op::Lookup),
        2 => (proptest::option::of(status()), 1..4u32).prop_map(|(s, l)| Op::List(s, l)),
        3 => (0..5usize).prop_map(Op::Void),
        2 => (0..5usize).prop_map(Op::History),
    ]
}

/// (tenant, invoice) → (status, number of history events)
type Model = BTreeMap<(usize, usize), (InvoiceStatus, usize)>;

impl Actor {
    fn caller(&self, n: usize) -> Caller {
        let subject = format!("user{n}");
        match self.who {
            Who::Claim(t) => caller(&subject, "shared-app", self.scopes, Some(TENANTS[t])),
            Who::Mapped(t) => caller(
                &subject,
                &format!("client-{}", TENANTS[t]),
                self.scopes,
                None,
            ),
            Who::Nobody => caller(&subject, "stranger", self.scopes, None),
        }
    }

    fn tenant(&self) -> Option<usize> {
        match self.who {
            Who::Claim(t) | Who::Mapped(t) => Some(t),
            Who::Nobody => None,
        }
    }
}

/// Every invoice in a structured result must be the caller's tenant's, as the model knows it.
fn check_view(v: &Value, t: usize, model: &Model) {
    assert_eq!(v["tenant"], TENANTS[t], "{v}");
    assert_eq!(v["customer"], format!("customer of {}", TENANTS[t]), "{v}");
    let id = IDS
        .iter()
        .position(|i| v["invoiceId"] == *i)
        .expect("known id");
    let (status, _) = model
        .get(&(t, id))
        .expect("row exists in the caller's tenant");
    assert_eq!(v["status"], status.as_str(), "{v}");
}

/// The model key (tenant, invoice) of a row whose first two columns are the tenant and the
/// invoice id.
fn key(r: &sqlx::any::AnyRow) -> (usize, usize) {
    let t = TENANTS
        .iter()
        .position(|x| *x == r.get::<String, _>(0))
        .unwrap();
    let i = IDS
        .iter()
        .position(|x| *x == r.get::<String, _>(1))
        .unwrap();
    (t, i)
}

async fn snapshot(raw: &mut sqlx::AnyConnection) -> Model {
    let mut m = Model::new();
    let rows = sqlx::query("SELECT tenant_id, id, status FROM invoices")
        .fetch_all(&mut *raw)
        .await
        .unwrap();
    for r in rows {
        m.insert(key(&r), (r.get::<String, _>(2).parse().unwrap(), 0));
    }
    let rows = sqlx::query(
        "SELECT tenant_id, invoice_id, COUNT(*) FROM invoice_events GROUP BY tenant_id, invoice_id",
    )
    .fetch_all(&mut *raw)
    .await
    .unwrap();
    for r in rows {
        m.get_mut(&key(&r)).unwrap().1 = usize::try_from(r.get::<i64, _>(2)).unwrap();
    }
    m
}

async fn run_case(invoices: Vec<(usize, usize, InvoiceStatus)>, calls: Vec<(Actor, Op)>) {
    let db = TestDb::sqlite();
    let store = db.store(Seed::None).await;
    let mut model = Model::new();
    for (n, (t, i, s)) in invoices.into_iter().enumerate() {
        if model.contains_key(&(t, i)) {
            continue;
        }
        let created = 1_000 + i64::try_from(n).unwrap();
        assert!(
            store
                .insert_invoice(&new_invoice(TENANTS[t], IDS[i], s, created))
                .await
                .unwrap()
        );
        model.insert((t, i), (s, 0));
    }
    let tenants =
        Tenancy::from_client_map(TENANTS.iter().map(|t| (format!("client-{t}"), *t))).unwrap();
    let mcp = Mcp::new(store, default_policy(), tenants);
    let mut raw = db.raw().await;

    for (n, (actor, op)) in calls.iter().enumerate() {
        let c = actor.caller(n);
        let can_read = actor.scopes.contains("invoices:");
        let can_write = actor.scopes.contains("invoices:write");
        let (tool, args, needs_write) = match op {
            Op::Lookup(i) => ("lookup_invoice", json!({"invoiceId": IDS[*i]}), false),
            Op::List(s, l) => (
                "list_invoices",
                json!({"status": s.map(|s| s.as_str()), "limit": l}),
                false,
            ),
            Op::Void(i) => (
                "void_invoice",
                json!({"invoiceId": IDS[*i], "reason": "prop"}),
                true,
            ),
            Op::History(i) => ("invoice_history", json!({"invoiceId": IDS[*i]}), false),
        };
        let reply = mcp.call(&c, tool, args.clone()).await;

        if !can_read || (needs_write && !can_write) {
            assert!(
                reply.is_error() && reply.text().starts_with("Insufficient scope"),
                "{}",
                reply.0
            );
        } else if let Some(t) = actor.tenant() {
            match op {
                Op::Lookup(i) | Op::History(i) if !model.contains_key(&(t, *i)) => {
                    reply.assert_error(&format!("No invoice found for {}.", IDS[*i]));
                }
                Op::Lookup(_) => check_view(reply.ok(), t, &model),
                Op::History(i) => {
                    let events = reply.ok()["events"].as_array().unwrap().len();
                    assert_eq!(events, model[&(t, *i)].1);
                }
                Op::List(s, _) => {
                    // Walk every page; the union must be exactly the caller's tenant's rows.
                    let mut got = Vec::new();
                    let mut args = args.clone();
                    let mut r = reply.clone();
                    loop {
                        let page = r.ok().clone();
                        for v in page["invoices"].as_array().unwrap() {
                            check_view(v, t, &model);
                            got.push(v["invoiceId"].as_str().unwrap().to_owned());
                        }
                        match page.get("nextCursor").and_then(Value::as_str) {
                            Some(cur) => args["cursor"] = json!(cur),
                            None => break,
                        }
                        r = mcp.call(&c, tool, args.clone()).await;
                    }
                    got.sort();
                    let mut want: Vec<String> = model
                        .iter()
                        .filter(|((mt, _), (st, _))| *mt == t && s.is_none_or(|s| s == *st))
                        .map(|((_, i), _)| IDS[*i].to_owned())
                        .collect();
                    want.sort();
                    assert_eq!(got, want);
                }
                Op::Void(i) => match model.get_mut(&(t, *i)) {
                    None => reply.assert_error(&format!("No invoice found for {}.", IDS[*i])),
                    Some((st @ InvoiceStatus::Open, events)) => {
                        check_view(
                            &reply.ok()["invoice"],
                            t,
                            &BTreeMap::from([((t, *i), (InvoiceStatus::Void, 0))]),
                        );
                        *st = InvoiceStatus::Void;
                        *events += 1;
                    }
                    Some((InvoiceStatus::Void, _)) => assert_eq!(reply.ok()["alreadyVoid"], true),
                    Some((InvoiceStatus::Paid, _)) => reply.assert_error(&format!(
                        "{} is paid; only open invoices can be voided.",
                        IDS[*i]
                    )),
                },
            }
        } else {
            reply.assert_error("No tenant is associated with this caller.");
        }
        // Nothing outside the model's (the caller's own) changes moved, in any tenant.
        assert_eq!(
            snapshot(&mut raw).await,
            model,
            "after call {n}: {actor:?} {op:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn no_call_reads_or_writes_another_tenants_rows(
        invoices in proptest::collection::vec((0..3usize, 0..5usize, status()), 0..14),
        calls in proptest::collection::vec((actor(), op()), 1..12),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run_case(invoices, calls));
    }
}
