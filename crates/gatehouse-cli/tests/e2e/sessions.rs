//! Stateful mode binds each MCP session to the principal that created it (issue 3; spec rows C9,
//! C11, D4): another principal presenting the session id gets 404, exactly like an unknown
//! session; the same principal with a refreshed token keeps its session.

use serde_json::json;

use super::stack::{Reply, Stack, VERSION, initialize};

async fn post(stack: &Stack, token: &str, session: Option<&str>, body: serde_json::Value) -> Reply {
    let mut headers = vec![("mcp-protocol-version", VERSION)];
    headers.extend(session.map(|s| ("mcp-session-id", s)));
    stack.send(Some(token), &headers, &body).await
}

/// The JSON-RPC messages of an SSE or JSON reply.
fn messages(r: &Reply) -> Vec<serde_json::Value> {
    if r.header("content-type").starts_with("application/json") {
        return vec![r.json()];
    }
    r.body
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str(d.trim()).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_bound_to_the_principal() {
    let stack = Stack::start(|c| c.server.stateful_sessions = true).await;
    let alice = stack.token("acme-reader", &[]);
    let mallory = stack.token("globex-reader", &[]);

    let r = post(&stack, &alice, None, initialize(VERSION)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let session = r.header("mcp-session-id").to_owned();
    assert!(!session.is_empty(), "stateful mode mints a session id");
    let r = post(
        &stack,
        &alice,
        Some(&session),
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);

    let list = json!({"jsonrpc":"2.0","id":1,"method":"tools/list"});
    let r = post(&stack, &alice, Some(&session), list.clone()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        messages(&r)
            .iter()
            .any(|m| m["id"] == 1 && m["result"]["tools"].is_array()),
        "{}",
        r.body
    );

    // Another principal with Alice's session id: 404, byte-identical to an unknown session.
    let stolen = post(&stack, &mallory, Some(&session), list.clone()).await;
    let unknown = post(&stack, &mallory, Some("no-such-session"), list.clone()).await;
    assert_eq!(stolen.status, 404);
    assert_eq!(
        (stolen.status, stolen.body.as_str()),
        (unknown.status, unknown.body.as_str())
    );

    // Alice with a refreshed token (same issuer, subject, client) keeps her session.
    let refreshed = stack.token("acme-reader", &[]);
    assert_ne!(refreshed, alice);
    let r = post(&stack, &refreshed, Some(&session), list).await;
    assert_eq!(r.status, 200, "{}", r.body);
    stack.stop().await;
}

// With `server.replica_id`, the ids this replica mints name it (what deploy/nginx.conf routes
// on), the session works as any other, and a session of another replica gets the spec's 404 —
// the answer that makes a client start a new session after its replica is gone (C9).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_names_its_sessions_and_refuses_others_with_404() {
    let stack = Stack::start(|c| {
        c.server.stateful_sessions = true;
        c.server.replica_id = Some("b".into());
    })
    .await;
    let alice = stack.token("acme-reader", &[]);
    let r = post(&stack, &alice, None, initialize(VERSION)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let session = r.header("mcp-session-id").to_owned();
    let random = session.strip_prefix("b.").expect("the replica's prefix");
    let initialized = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
    let r = post(&stack, &alice, Some(&session), initialized.clone()).await;
    assert_eq!(r.status, 202, "{}", r.body);

    let elsewhere = format!("a.{random}");
    let r = post(&stack, &alice, Some(&elsewhere), initialized).await;
    assert_eq!(r.status, 404, "{}", r.body);
    stack.stop().await;
}
