//! Invariant: the second example (`examples/introspection.rs`, compiled here verbatim) works
//! against a real RFC 7662 endpoint (the testkit's, discovered from its metadata, with client
//! authentication): an active opaque token reaches the tool with the tenant its hook derived; an
//! inactive one gets `401`; a token for another audience gets `401`; every tool call — allowed,
//! unknown, refused at the edge for lack of scope — lands in the audit observer exactly once.

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/introspection.rs"]
mod example;

use std::sync::Arc;

use gatehouse_testkit::TestAuthServer;
use serde_json::{Value, json};

async fn call(client: &reqwest::Client, url: &str, token: &str, tool: &str) -> (u16, Value) {
    let resp = client
        .post(url)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .json(&json!({
            "jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": tool, "arguments": {}}
        }))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn opaque_tokens_tenant_hook_and_audit_observer() {
    let issuer = TestAuthServer::builder()
        .introspection_client("orders-api", "s3cret")
        .start()
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    issuer.set_audience(&url);
    let audit = Arc::new(example::AuditTrail::default());
    let (_g, app) = example::protect(&url, issuer.issuer(), "orders-api", "s3cret", audit.clone())
        .await
        .unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let until = stop.clone();
    tokio::spawn(gatehouse::serve(listener, app, async move {
        until.cancelled().await
    }));
    let client = reqwest::Client::builder().no_proxy().build().unwrap();

    let mut active = issuer.active_introspection(300);
    active["client_id"] = json!("acme-reporting");
    active["sub"] = json!("ann");
    active["scope"] = json!("orders:read");
    issuer.set_introspection("opaque-ann", active.clone());
    let (status, body) = call(&client, &url, "opaque-ann", "whoami").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["content"][0]["text"], "ann of acme");
    // The server authenticated itself to the endpoint and sent the token.
    let seen = issuer.last_introspection_request().expect("introspected");
    assert!(seen.authorization.is_some());

    let (status, _) = call(&client, &url, "opaque-ann", "no_such_tool").await;
    assert_eq!(status, 200);

    let mut narrow = active.clone();
    narrow["scope"] = json!("profile");
    issuer.set_introspection("opaque-narrow", narrow);
    let (status, _) = call(&client, &url, "opaque-narrow", "whoami").await;
    assert_eq!(status, 403);

    issuer.set_introspection("opaque-off", json!({"active": false}));
    assert_eq!(call(&client, &url, "opaque-off", "whoami").await.0, 401);
    let mut elsewhere = active;
    elsewhere["aud"] = json!("https://other.example/mcp");
    issuer.set_introspection("opaque-elsewhere", elsewhere);
    assert_eq!(
        call(&client, &url, "opaque-elsewhere", "whoami").await.0,
        401
    );

    let lines = audit.0.lock().unwrap().clone();
    assert_eq!(
        lines,
        [
            "acme ann whoami allowed ok",
            "acme ann no_such_tool error unknown_tool",
            "acme ann whoami denied insufficient_scope",
        ],
        "each tool call is recorded once, whoever decided it"
    );
    stop.cancel();
}
