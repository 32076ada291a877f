//! Invariant: with `unnamed_tools = deny`, a tool the policy does not name is hidden — never
//! listed, and a call of it is answered byte for byte as a call of a tool that does not exist
//! (no step-up challenge that would reveal it), whatever scopes the caller holds. Tools named by
//! pattern get their scopes and the same `403` step-up as tools named exactly.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use gatehouse::observe::{Observer, Outcome, ToolCall};
use gatehouse::policy::{ToolListMode, UnnamedTools};
use gatehouse::verify::{BoxFuture, InvalidReason};
use gatehouse::{
    AccessToken, Caller, Gatehouse, Principal, ResourceUrl, ScopeSet, TokenKind, TokenVerifier,
    VerifyError,
};
use http::Request;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

#[path = "common/mod.rs"]
mod common;

use common::EchoTools;

const RESOURCE: &str = "https://mcp.example.com/mcp";

/// The token is the caller's scopes, `+`-separated, `.` standing for `:` (token characters).
struct ScopesAreTheToken;

impl TokenVerifier for ScopesAreTheToken {
    fn verify<'a>(&'a self, token: &'a AccessToken) -> BoxFuture<'a, Result<Caller, VerifyError>> {
        let scopes = token.expose().replace('+', " ").replace('.', ":");
        Box::pin(async move {
            if scopes.is_empty() {
                return Err(VerifyError::Invalid(InvalidReason::Malformed));
            }
            Ok(Caller::new(Principal {
                issuer: "https://auth.example.com".into(),
                subject: Some("alice".into()),
                client_id: Some("app".into()),
                scopes: ScopeSet::from_space_separated(&scopes),
                audiences: vec![RESOURCE.into()],
                tenant: None,
                expires_at: SystemTime::now() + Duration::from_secs(600),
                kind: TokenKind::Jwt,
                claims: Default::default(),
            }))
        })
    }
}

#[derive(Default)]
struct Calls(Mutex<Vec<(String, Outcome, String)>>);

impl Observer for Calls {
    fn tool_call(&self, call: &ToolCall<'_>) {
        self.0.lock().unwrap().push((
            call.tool.unwrap_or("-").to_owned(),
            call.outcome,
            call.reason.to_owned(),
        ));
    }
}

fn app(list: ToolListMode, calls: Arc<Calls>) -> Router {
    // EchoTools has whoami, lookup_invoice, void_invoice and audit_log.
    let gatehouse = Gatehouse::builder(ResourceUrl::parse(RESOURCE).unwrap())
        .authorization_servers(["https://auth.example.com"])
        .verifier(Arc::new(ScopesAreTheToken))
        .route_scopes(["mcp"])
        .tool_scopes("who*", Vec::<String>::new())
        .tool_scopes("*_invoice", ["invoices:read"])
        .tool_scopes("void_invoice", ["invoices:write"])
        .unnamed_tools(UnnamedTools::Deny)
        .tools_list(list)
        .observer(calls)
        .build()
        .unwrap();
    gatehouse.mount(EchoTools::new)
}

async fn post(app: &Router, token: &str, body: Value) -> (u16, Option<String>, Value) {
    let req = Request::post("/mcp")
        .header("host", "mcp.example.com")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let www = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        www,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn call(tool: &str) -> Value {
    json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":tool,"arguments":{}}})
}

fn listed(body: &Value) -> Vec<String> {
    let mut names: Vec<String> = body["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

const ALL: &str = "mcp+invoices.read+invoices.write+audit.read";

#[tokio::test]
async fn an_unnamed_tool_is_hidden_and_answered_as_a_missing_one() {
    let calls = Arc::new(Calls::default());
    let app = app(ToolListMode::All, calls.clone());
    let list = json!({"jsonrpc":"2.0","id":1,"method":"tools/list"});

    // Never listed, even for a caller holding every scope.
    let (status, _, body) = post(&app, ALL, list.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(listed(&body), ["lookup_invoice", "void_invoice", "whoami"]);

    // A call of the hidden tool gets the same answer as a call of a tool that does not exist
    // (`delete_invoice` matches `*_invoice`, so it reaches the server's own router).
    let hidden = post(&app, ALL, call("audit_log")).await;
    let missing = post(&app, ALL, call("delete_invoice")).await;
    assert_eq!(hidden, missing);
    assert_eq!(hidden.0, 200);
    assert!(hidden.1.is_none(), "no challenge: {hidden:?}");
    assert_eq!(hidden.2["error"]["message"], "tool not found", "{hidden:?}");
    // Also without the scopes: still no challenge that would reveal it.
    let (status, www, _) = post(&app, "mcp", call("audit_log")).await;
    assert_eq!((status, www), (200, None));

    // Named by pattern: its scopes and the step-up; exact names win over patterns.
    let (status, www, _) = post(&app, "mcp", call("lookup_invoice")).await;
    assert_eq!(status, 403);
    assert!(www.unwrap().contains(r#"scope="invoices:read mcp""#));
    let (status, _, body) = post(&app, "mcp+invoices.read", call("lookup_invoice")).await;
    assert_eq!(
        (status, body["result"]["isError"].clone()),
        (200, json!(false)),
        "{body}"
    );
    let (status, www, _) = post(&app, "mcp+invoices.read", call("void_invoice")).await;
    assert_eq!(status, 403);
    assert!(www.unwrap().contains(r#"scope="invoices:write mcp""#));
    let (status, _, _) = post(&app, "mcp", call("whoami")).await;
    assert_eq!(status, 200);

    // The audit says why, though the client cannot tell.
    let seen = calls.0.lock().unwrap().clone();
    assert!(
        seen.contains(&("audit_log".into(), Outcome::Denied, "hidden_tool".into())),
        "{seen:?}"
    );
    assert!(
        seen.contains(&(
            "delete_invoice".into(),
            Outcome::Error,
            "unknown_tool".into()
        )),
        "{seen:?}"
    );
}

#[tokio::test]
async fn filtered_lists_show_what_the_caller_may_call_and_never_a_hidden_tool() {
    let app = app(ToolListMode::FilterByScope, Arc::default());
    let list = json!({"jsonrpc":"2.0","id":1,"method":"tools/list"});
    let (_, _, body) = post(&app, "mcp", list.clone()).await;
    assert_eq!(listed(&body), ["whoami"]);
    let (_, _, body) = post(&app, "mcp+invoices.read", list.clone()).await;
    assert_eq!(listed(&body), ["lookup_invoice", "whoami"]);
    let (_, _, body) = post(&app, ALL, list).await;
    assert_eq!(listed(&body), ["lookup_invoice", "void_invoice", "whoami"]);
}
