//! Protocol revisions 2025-06-18, 2025-11-25 and 2026-07-28 all work through the auth layers;
//! unauthenticated callers see nothing; step-up works on every revision; every `tools/call` is
//! audited. (Issue 3; spec-requirements A14, A17, A25, B13, B17.)

use gatehouse_billing::AuditOutcome;
use serde_json::json;

use super::stack::{ALL_TOOLS, Reply, Stack, VERSION, initialize, tools_list};

/// A 2026-07-28 request: SEP-2243 headers plus the per-request `_meta` (SEP-2575).
async fn post_2026(
    stack: &Stack,
    token: &str,
    method: &str,
    name: Option<&str>,
    mut params: serde_json::Value,
) -> Reply {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {}
    });
    let mut headers = vec![
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", method),
    ];
    headers.extend(name.map(|n| ("mcp-name", n)));
    let body = json!({"jsonrpc":"2.0","id":7,"method":method,"params":params});
    stack.send(Some(token), &headers, &body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_callers_see_nothing() {
    let stack = Stack::start(|_| {}).await;
    for body in [
        initialize(VERSION),
        tools_list(),
        json!({"jsonrpc":"2.0","id":1,"method":"ping"}),
    ] {
        let r = stack.post(None, Some(VERSION), body.clone()).await;
        assert_eq!(r.status, 401, "{body}");
        assert!(!r.body.contains("lookup_invoice"), "{}", r.body);
        assert!(
            r.header("www-authenticate")
                .starts_with("Bearer resource_metadata=")
        );
    }
    // A token minted for another resource is refused (A22).
    let other = stack
        .issuer
        .mint("acme-reader", &[], "http://127.0.0.1:1/other")
        .unwrap();
    let r = stack.list_tools(Some(&other)).await;
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .contains("error=\"invalid_token\"")
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revision_2025_06_18_and_2025_11_25_initialize_list_call() {
    let stack = Stack::start(|_| {}).await;
    let read = stack.token("acme-reader", &[]);
    for version in ["2025-06-18", VERSION] {
        let init = stack
            .post(Some(&read), None, initialize(version))
            .await
            .result();
        assert_eq!(init["protocolVersion"], version);
        assert_eq!(init["serverInfo"]["name"], "gatehouse-billing");
        let names = stack
            .post(Some(&read), Some(version), tools_list())
            .await
            .tool_names();
        assert_eq!(names, ALL_TOOLS);
        let call = json!({"jsonrpc":"2.0","id":2,"method":"tools/call",
            "params":{"name":"lookup_invoice","arguments":{"invoiceId":"INV-2041"}}});
        let result = stack
            .post(Some(&read), Some(version), call.clone())
            .await
            .result();
        assert_eq!(result["structuredContent"]["status"], "open", "{version}");
        assert_eq!(result["structuredContent"]["tenant"], "acme");
        // Step-up on this revision: the body names the tool (headers are not trusted < 2026-07-28).
        let void = json!({"jsonrpc":"2.0","id":3,"method":"tools/call",
            "params":{"name":"void_invoice","arguments":{"invoiceId":"INV-2041"}}});
        let r = stack.post(Some(&read), Some(version), void).await;
        assert_eq!(r.status, 403, "{version}");
        assert!(
            r.header("www-authenticate")
                .contains("scope=\"invoices:write\"")
        );
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revision_2026_07_28_headers_meta_and_step_up() {
    let stack = Stack::start(|_| {}).await;
    let read = stack.token("acme-reader", &[]);
    let write = stack.token("acme-writer", &[]);

    let r = post_2026(
        &stack,
        &read,
        "tools/call",
        Some("lookup_invoice"),
        json!({"name":"lookup_invoice","arguments":{"invoiceId":"INV-2040"}}),
    )
    .await;
    let result = r.result();
    assert_eq!(result["resultType"], "complete");
    assert_eq!(result["structuredContent"]["invoiceId"], "INV-2040");

    let r = post_2026(&stack, &read, "tools/list", None, json!({})).await;
    assert_eq!(r.tool_names().len(), 4);

    // Step-up decided from the headers alone.
    let args = json!({"name":"void_invoice","arguments":{"invoiceId":"INV-2041"}});
    let r = post_2026(
        &stack,
        &read,
        "tools/call",
        Some("void_invoice"),
        args.clone(),
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.header("www-authenticate"),
        format!(
            "Bearer error=\"insufficient_scope\", error_description=\"The access token does not grant the required scope\", resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp\", scope=\"invoices:write\"",
            stack.url.trim_end_matches("/mcp")
        )
    );
    // A header that lies about the body is refused by rmcp (B17), never trusted for policy.
    let r = post_2026(
        &stack,
        &read,
        "tools/call",
        Some("lookup_invoice"),
        args.clone(),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], -32020);

    let r = post_2026(&stack, &write, "tools/call", Some("void_invoice"), args).await;
    assert_eq!(r.result()["structuredContent"]["invoice"]["status"], "void");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tool_call_is_audited_allowed_or_denied() {
    let stack = Stack::start(|_| {}).await;
    let read = stack.token("acme-reader", &[]);
    let write = stack.token("acme-writer", &[]);
    assert_eq!(
        stack
            .call(&read, "void_invoice", json!({"invoiceId":"INV-2041"}))
            .await
            .status,
        403
    );
    let r = stack
        .call(
            &write,
            "void_invoice",
            json!({"invoiceId":"INV-2041","reason":"dup"}),
        )
        .await;
    assert_eq!(r.result()["isError"], false);
    let r = stack
        .call(&read, "lookup_invoice", json!({"invoiceId":"INV-9999"}))
        .await;
    assert_eq!(r.result()["isError"], true);

    let records = stack.audit_records().await;
    assert_eq!(records.len(), 3, "{records:?}");
    // Newest first.
    assert_eq!(
        (
            records[0].tool.as_str(),
            records[0].outcome,
            records[0].detail.as_str()
        ),
        ("lookup_invoice", AuditOutcome::Allowed, "not_found")
    );
    assert_eq!(
        (records[1].tool.as_str(), records[1].outcome),
        ("void_invoice", AuditOutcome::Allowed)
    );
    assert_eq!(records[1].subject.as_deref(), Some("acme-writer"));
    assert_eq!(records[1].tenant.as_deref(), Some("acme"));
    assert_eq!(
        (
            records[2].tool.as_str(),
            records[2].outcome,
            records[2].detail.as_str()
        ),
        ("void_invoice", AuditOutcome::Denied, "insufficient_scope")
    );
    assert_eq!(records[2].client_id.as_deref(), Some("acme-reader"));
    for r in &records {
        let id = r.request_id.as_deref().expect("request id recorded");
        assert_eq!(id.len(), 36, "a UUID from the edge: {id}");
    }
    stack.stop().await;
}
