//! Invariant: every tool, reached through rmcp's real Streamable HTTP service with a verified
//! `Caller`, answers its happy path with text plus structured content, refuses every bad input
//! and every unauthorized caller with a fixed tool error (never a panic, never rows), and keeps
//! tenants apart: another tenant's invoice is indistinguishable from a missing one.

use gatehouse::policy::ToolListMode;
use gatehouse_billing::store::InvoiceStatus;
use gatehouse_billing::{Seed, Tenancy, default_policy, default_policy_with};
use serde_json::{Value, json};

use crate::common::{Mcp, TestDb, caller, demo, new_invoice, reader, tenant, writer};
use crate::on_both_engines;

const NO_TENANT: &str = "No tenant is associated with this caller.";
const NEED_READ: &str = "Insufficient scope: this tool requires invoices:read.";
const NEED_WRITE: &str = "Insufficient scope: this tool requires invoices:write.";

on_both_engines! {
    async fn lookup_returns_text_and_structured_content(engine) {
        let (_db, mcp) = demo(engine).await;
        let r = mcp.call(&reader("acme"), "lookup_invoice", json!({"invoiceId": "INV-2041"})).await;
        let s = r.ok();
        assert_eq!(r.text(), "INV-2041: open, total 1250.00 EUR");
        assert_eq!(s["invoiceId"], "INV-2041");
        assert_eq!(s["tenant"], "acme");
        assert_eq!(s["status"], "open");
        assert_eq!((s["total"].as_str(), s["totalMinor"].as_i64(), s["currency"].as_str()),
                   (Some("1250.00"), Some(125000), Some("EUR")));
        assert!(s["createdAt"].as_str().unwrap().ends_with('Z'));
        // The same id in the other tenant is that tenant's own invoice.
        let g = mcp.call(&reader("globex"), "lookup_invoice", json!({"invoiceId": "INV-2041"})).await;
        assert_eq!(g.text(), "INV-2041: open, total 990.00 USD");
        assert_eq!(g.ok()["tenant"], "globex");
    }

    async fn another_tenants_invoice_looks_exactly_missing(engine) {
        let (_db, mcp) = demo(engine).await;
        let acme = writer("acme");
        // INV-3001 exists only in globex; INV-9999 nowhere. Same id text → same reply.
        for tool in ["lookup_invoice", "invoice_history", "void_invoice"] {
            let other = mcp.call(&acme, tool, json!({"invoiceId": "INV-3001"})).await;
            let missing = mcp.call(&acme, tool, json!({"invoiceId": "INV-9999"})).await;
            other.assert_error("No invoice found for INV-3001.");
            let normalised = missing.0.to_string().replace("INV-9999", "INV-3001");
            assert_eq!(other.0.to_string(), normalised, "{tool}");
        }
        // And the void attempt did not touch globex's invoice.
        let g = mcp.call(&reader("globex"), "lookup_invoice", json!({"invoiceId": "INV-3001"})).await;
        assert_eq!(g.ok()["status"], "paid");
    }

    async fn caller_without_tenant_gets_a_fixed_error_and_nothing_changes(engine) {
        let (_db, mcp) = demo(engine).await;
        let nobody = caller("bob", "unmapped-client", "invoices:write", None);
        let calls = [
            ("lookup_invoice", json!({"invoiceId": "INV-2041"})),
            ("list_invoices", json!({})),
            ("void_invoice", json!({"invoiceId": "INV-2041"})),
            ("invoice_history", json!({"invoiceId": "INV-2041"})),
        ];
        for (tool, args) in calls {
            mcp.call(&nobody, tool, args).await.assert_error(NO_TENANT);
        }
        for t in ["acme", "globex"] {
            let r = mcp.call(&reader(t), "lookup_invoice", json!({"invoiceId": "INV-2041"})).await;
            assert_eq!(r.ok()["status"], "open", "{t}");
        }
    }

    async fn client_map_gives_claimless_tokens_a_tenant(engine) {
        let (_db, mcp) = demo(engine).await;
        let bot = caller("svc", "acme-reporting", "invoices:read", None);
        let r = mcp.call(&bot, "lookup_invoice", json!({"invoiceId": "INV-2041"})).await;
        assert_eq!(r.ok()["tenant"], "acme");
        // A tenant claim wins over the map.
        let claimed = caller("svc", "acme-reporting", "invoices:read", Some("globex"));
        let r = mcp.call(&claimed, "lookup_invoice", json!({"invoiceId": "INV-2041"})).await;
        assert_eq!(r.ok()["tenant"], "globex");
    }

    async fn tools_check_scopes_themselves(engine) {
        let (_db, mcp) = demo(engine).await;
        let none = caller("eve", "acme-app", "profile", Some("acme"));
        for tool in ["lookup_invoice", "list_invoices", "invoice_history"] {
            mcp.call(&none, tool, json!({"invoiceId": "INV-2041"})).await.assert_error(NEED_READ);
        }
        mcp.call(&none, "void_invoice", json!({"invoiceId": "INV-2041"})).await.assert_error(NEED_WRITE);
        mcp.call(&reader("acme"), "void_invoice", json!({"invoiceId": "INV-2041"})).await.assert_error(NEED_WRITE);
        // Scope refusals come before tenancy: no tenant, no scope → scope error.
        let bare = caller("eve", "x", "", None);
        mcp.call(&bare, "lookup_invoice", json!({"invoiceId": "INV-2041"})).await.assert_error(NEED_READ);
        // invoices:write implies invoices:read.
        let r = mcp.call(&writer("acme"), "lookup_invoice", json!({"invoiceId": "INV-2041"})).await;
        assert_eq!(r.ok()["status"], "open");
        // The refused void changed nothing.
        assert!(mcp.store.invoice_history(&tenant("acme"), "INV-2041").await.unwrap().unwrap().is_empty());
    }

    async fn invalid_arguments_are_tool_errors(engine) {
        let (_db, mcp) = demo(engine).await;
        let w = writer("acme");
        for tool in ["lookup_invoice", "void_invoice", "invoice_history"] {
            for bad in ["", "INV 2041", "../etc", &"X".repeat(65)] {
                mcp.call(&w, tool, json!({"invoiceId": bad})).await.assert_error("Invalid invoice id.");
            }
            // Missing or mistyped arguments are rejected by rmcp before the tool body runs.
            for args in [json!({}), json!({"invoiceId": 5})] {
                let r = mcp.call(&w, tool, args).await;
                assert!(r.is_error(), "{tool}: {}", r.0);
            }
        }
        let long = "x".repeat(501);
        mcp.call(&w, "void_invoice", json!({"invoiceId": "INV-2041", "reason": long})).await
            .assert_error("reason must be at most 500 characters.");
        for limit in [0, 101] {
            mcp.call(&w, "list_invoices", json!({"limit": limit})).await
                .assert_error("limit must be between 1 and 100.");
        }
        assert!(mcp.call(&w, "list_invoices", json!({"limit": -1})).await.is_error());
        assert!(mcp.call(&w, "list_invoices", json!({"status": "draft"})).await.is_error());
        // Nothing was voided along the way.
        let r = mcp.call(&w, "lookup_invoice", json!({"invoiceId": "INV-2041"})).await;
        assert_eq!(r.ok()["status"], "open");
    }

    async fn garbage_cursors_are_tool_errors(engine) {
        let (_db, mcp) = demo(engine).await;
        let r = reader("acme");
        let page = mcp.call(&r, "list_invoices", json!({"limit": 2})).await;
        let good = page.ok()["nextCursor"].as_str().unwrap().to_owned();
        let mut tampered = good.clone();
        tampered.insert(3, '!');
        for bad in ["", "garbage", "%%%", &tampered, &"A".repeat(300), "djE6MTp-"] {
            mcp.call(&r, "list_invoices", json!({"cursor": bad})).await.assert_error("Invalid cursor.");
        }
        // A syntactically valid cursor taken from another tenant's listing only moves a position
        // within the caller's own tenant.
        let g = mcp.call(&reader("globex"), "list_invoices", json!({"limit": 1})).await;
        let foreign = g.ok()["nextCursor"].as_str().unwrap().to_owned();
        let r2 = mcp.call(&r, "list_invoices", json!({"cursor": foreign})).await;
        assert!(r2.ok()["invoices"].as_array().unwrap().iter().all(|i| i["tenant"] == "acme"));
    }

    async fn listing_paginates_newest_first_and_filters(engine) {
        let (_db, mcp) = demo(engine).await;
        let acme = tenant("acme");
        for i in 0..25_i64 {
            let status = if i % 5 == 0 { InvoiceStatus::Paid } else { InvoiceStatus::Open };
            mcp.store.insert_invoice(&new_invoice("acme", &format!("INV-5{i:03}"), status, 2_000_000_000_000_000 + i)).await.unwrap();
        }
        let all = mcp.store.list_invoices(&acme, None, 100, None).await.unwrap().invoices;
        let want: Vec<String> = all.iter().map(|i| i.id.clone()).collect();
        assert_eq!(want.len(), 30);

        // Default page size is 20.
        let first = mcp.call(&reader("acme"), "list_invoices", json!({})).await;
        assert_eq!(first.ok()["invoices"].as_array().unwrap().len(), 20);

        for (args, filter) in [(json!({"limit": 7}), None), (json!({"limit": 3, "status": "paid"}), Some("paid"))] {
            let mut got = Vec::new();
            let mut args = args;
            loop {
                let r = mcp.call(&reader("acme"), "list_invoices", args.clone()).await;
                let s = r.ok().clone();
                for inv in s["invoices"].as_array().unwrap() {
                    assert_eq!(inv["tenant"], "acme");
                    got.push(inv["invoiceId"].as_str().unwrap().to_owned());
                }
                match s.get("nextCursor").and_then(Value::as_str) {
                    Some(c) => args["cursor"] = json!(c),
                    None => break,
                }
            }
            let want: Vec<String> = all.iter()
                .filter(|i| filter.is_none_or(|f| i.status.as_str() == f))
                .map(|i| i.id.clone()).collect();
            assert_eq!(got, want, "{filter:?}");
        }
        // The text form names each invoice.
        let r = mcp.call(&reader("acme"), "list_invoices", json!({"limit": 1})).await;
        assert!(r.text().starts_with("INV-5024: open, total 100.00 EUR"), "{}", r.text());
        let empty = mcp.call(&reader("acme"), "list_invoices", json!({"status": "void", "cursor": r.ok()["nextCursor"]})).await;
        assert_eq!(empty.ok()["invoices"].as_array().unwrap().len(), 1, "INV-2039 is void");
    }

    async fn void_then_history_shows_who_did_it(engine) {
        let (_db, mcp) = demo(engine).await;
        let w = writer("acme");
        let r = mcp.call_with_id(&w, Some("req-42"), "void_invoice",
                                 json!({"invoiceId": "INV-2041", "reason": "sent twice"})).await;
        assert_eq!(r.text(), "Voided INV-2041.");
        let s = r.ok();
        assert_eq!(s["alreadyVoid"], false);
        assert_eq!(s["invoice"]["status"], "void");
        assert_eq!(s["invoice"]["voidedBy"], "writer@acme");

        let again = mcp.call(&w, "void_invoice", json!({"invoiceId": "INV-2041"})).await;
        assert_eq!(again.text(), "INV-2041 is already void; nothing changed.");
        assert_eq!(again.ok()["alreadyVoid"], true);

        let h = mcp.call(&reader("acme"), "invoice_history", json!({"invoiceId": "INV-2041"})).await;
        let events = h.ok()["events"].as_array().unwrap().clone();
        assert_eq!(events.len(), 1, "idempotent void wrote no second event");
        let e = &events[0];
        assert_eq!((&e["action"], &e["subject"], &e["clientId"], &e["reason"], &e["requestId"]),
                   (&json!("void"), &json!("writer@acme"), &json!("acme-backoffice"), &json!("sent twice"), &json!("req-42")));
        assert!(h.text().contains("void by writer@acme via acme-backoffice: sent twice"), "{}", h.text());

        // globex's INV-2041 is still open and has no history.
        let g = mcp.call(&reader("globex"), "invoice_history", json!({"invoiceId": "INV-2041"})).await;
        assert_eq!(g.ok()["events"], json!([]));
        assert_eq!(g.text(), "INV-2041: no events.");
    }

    async fn paid_invoices_cannot_be_voided(engine) {
        let (_db, mcp) = demo(engine).await;
        mcp.call(&writer("acme"), "void_invoice", json!({"invoiceId": "INV-2040"})).await
            .assert_error("INV-2040 is paid; only open invoices can be voided.");
        let r = mcp.call(&reader("acme"), "lookup_invoice", json!({"invoiceId": "INV-2040"})).await;
        assert_eq!(r.ok()["status"], "paid");
    }

    async fn tools_list_modes(engine) {
        let db = TestDb::new(engine).await;
        let store = db.store(Seed::None).await;
        let all_names = ["invoice_history", "list_invoices", "lookup_invoice", "void_invoice"];
        let listing = Mcp::new(store.clone(), default_policy(), Tenancy::new());
        let filtering = Mcp::new(store, default_policy_with(ToolListMode::FilterByScope), Tenancy::new());
        let none = caller("x", "y", "", Some("acme"));
        for c in [&reader("acme"), &writer("acme"), &none] {
            assert_eq!(listing.list_tool_names(Some(c)).await, all_names);
        }
        assert_eq!(filtering.list_tool_names(Some(&writer("acme"))).await, all_names);
        assert_eq!(filtering.list_tool_names(Some(&reader("acme"))).await,
                   ["invoice_history", "list_invoices", "lookup_invoice"]);
        assert!(filtering.list_tool_names(Some(&none)).await.is_empty());
        assert!(filtering.list_tool_names(None).await.is_empty(), "no caller, nothing listed");
    }
}

#[tokio::test]
async fn tool_schemas_use_camel_case_and_server_is_named() {
    let db = TestDb::sqlite();
    let mcp = Mcp::new(db.store(Seed::None).await, default_policy(), Tenancy::new());
    let resp = mcp
        .rpc(
            Some(&reader("acme")),
            None,
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
        )
        .await;
    let tools = resp["result"]["tools"].as_array().unwrap();
    let props = |name: &str| -> Vec<String> {
        let t = tools.iter().find(|t| t["name"] == name).unwrap();
        let mut p: Vec<String> = t["inputSchema"]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        p.sort();
        p
    };
    assert_eq!(props("lookup_invoice"), ["invoiceId"]);
    assert_eq!(props("list_invoices"), ["cursor", "limit", "status"]);
    assert_eq!(props("void_invoice"), ["invoiceId", "reason"]);
    assert_eq!(props("invoice_history"), ["invoiceId"]);
    for t in tools {
        assert!(t["outputSchema"].is_object(), "{}", t["name"]);
        // Portable schemas: no `"type": [T, "null"]` (MCP Inspector's portability warning;
        // single-`type` dialects reject it), optional values as `anyOf` branches instead.
        for schema in [&t["inputSchema"], &t["outputSchema"]] {
            assert!(!has_type_array(schema), "{}: {schema}", t["name"]);
        }
    }
    let voided_by = &tools
        .iter()
        .find(|t| t["name"] == "lookup_invoice")
        .unwrap()["outputSchema"]["properties"]["voidedBy"];
    assert_eq!(
        voided_by["anyOf"],
        json!([{"type": "string"}, {"type": "null"}]),
        "{voided_by}"
    );
    let void = tools.iter().find(|t| t["name"] == "void_invoice").unwrap();
    assert_eq!(void["annotations"]["destructiveHint"], true);

    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "t", "version": "0"}}});
    let resp = mcp.rpc(Some(&reader("acme")), None, init).await;
    assert_eq!(
        resp["result"]["serverInfo"]["name"], "gatehouse-billing",
        "{resp}"
    );
}

/// Whether a `type` keyword anywhere in `v` is an array.
fn has_type_array(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Object(m) => m
            .iter()
            .any(|(k, v)| (k == "type" && v.is_array()) || has_type_array(v)),
        serde_json::Value::Array(a) => a.iter().any(has_type_array),
        _ => false,
    }
}

#[tokio::test]
async fn unknown_tools_are_protocol_errors() {
    let db = TestDb::sqlite();
    let mcp = Mcp::new(db.store(Seed::Demo).await, default_policy(), Tenancy::new());
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": "drop_tables", "arguments": {}}});
    let resp = mcp.rpc(Some(&reader("acme")), None, body).await;
    assert!(resp.get("error").is_some(), "{resp}");
}
