//! Invariant: behind the gateway, a stdio MCP server is reached only through the library's edge
//! and policy, by one process per principal (or per MCP session, stopped when the session ends) —
//! never one per request, never one user's process for another — whose environment is the allow-list plus configured values (none of the
//! gateway's own), and a process that dies is replaced on the next request.
//!
//! The upstream is a real stdio MCP server (`gatehouse-stdio-fixture`, built with this crate),
//! started by the gateway as a child process; requests go through `Gatehouse::mount`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use gatehouse::policy::UnnamedTools;
use gatehouse::{Gatehouse, ResourceUrl};
use gatehouse_gateway::{GatewayHandler, Isolation, StdioCommand, UpstreamServer};
use http::Request;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

const RESOURCE: &str = "https://gw.example.com/mcp";

mod common;

/// `alice`, `bob` (scope `mcp`) and `alice-admin` (also `admin`).
const TOKENS: &[(&str, &str, &str)] = &[
    ("alice", "alice", "mcp"),
    ("bob", "bob", "mcp"),
    ("alice-admin", "alice", "mcp admin"),
];

fn fixture() -> StdioCommand {
    let mut c = StdioCommand::new(
        env!("CARGO_BIN_EXE_gatehouse-stdio-fixture"),
        Vec::<String>::new(),
    );
    c.env.insert("FIXTURE_GREETING".into(), "hello".into());
    c
}

/// The gateway's protection: the test users, route scope `mcp`, `whoami` open to them.
fn protection() -> gatehouse::GatehouseBuilder {
    Gatehouse::builder(ResourceUrl::parse(RESOURCE).unwrap())
        .authorization_servers(["https://auth.example.com"])
        .verifier(Arc::new(common::Users::new(RESOURCE, TOKENS)))
        .route_scopes(["mcp"])
        .tool_scopes("whoami", Vec::<String>::new())
}

async fn gateway(upstream: UpstreamServer) -> (Router, GatewayHandler) {
    let (app, handler, _) = gateway_as_the_application(upstream).await;
    (app, handler)
}

/// Mounted as `gatehouse proxy` mounts it by default: every tool may be answered directly
/// (no rmcp service per request; `proxy.rs`), a `tools/call` forwarded as the client's line.
async fn gateway_as_the_application(
    upstream: UpstreamServer,
) -> (Router, GatewayHandler, Gatehouse) {
    mounted(upstream, true).await
}

/// The gateway with (`forward`) or without the forwarding path (`server.direct_dispatch`).
async fn mounted(upstream: UpstreamServer, forward: bool) -> (Router, GatewayHandler, Gatehouse) {
    let handler = GatewayHandler::start(upstream)
        .await
        .expect("upstream starts");
    let gatehouse = protection()
        .tool_scopes("e*", Vec::<String>::new())
        .tool_scopes("wait", Vec::<String>::new())
        .tool_scopes("exit", ["admin"])
        .unnamed_tools(UnnamedTools::Deny)
        .direct_tools(gatehouse::mcp::DirectTools::All)
        .build()
        .unwrap();
    (handler.mount(&gatehouse, forward), handler, gatehouse)
}

async fn post(app: &Router, token: &str, body: Value) -> (u16, Value) {
    let req = common::mcp_post(token, body.to_string(), &[]);
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_applications_mounting_answers_stdio_calls_directly() {
    let (app, _, gatehouse) = gateway_as_the_application(UpstreamServer::stdio(fixture())).await;
    let (status, body) = post(&app, "alice", call("echo", json!({"text": "direct"}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], json!(3));
    assert_eq!(body["result"]["content"][0]["text"], json!("direct"));
    let (_, listed) = post(
        &app,
        "alice",
        json!({"jsonrpc":"2.0","id":4,"method":"tools/list","params":{}}),
    )
    .await;
    assert!(listed["result"]["tools"].as_array().is_some(), "{listed}");
    // Both answered without rmcp's per-request service; a hidden tool, directly too, as a
    // missing one.
    assert_eq!(gatehouse.direct_answers(), 2);
    let (_, hidden) = post(&app, "alice", call("admin_reset", json!({}))).await;
    assert_eq!(
        hidden["error"]["message"],
        json!("tool not found"),
        "{hidden}"
    );
    assert_eq!(gatehouse.direct_answers(), 3);
}

/// A `tools/call` goes to the child as the client's line with only the id replaced (the
/// fixture reports the id it got: the gateway's own, not rmcp's client's numbers), and every
/// call is answered as rmcp's path answers it — also those the path declines (a body with a
/// line break, a hidden tool, a progress token) and those during which the child asks or says
/// something of its own (sampling refused, a log message).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_calls_are_forwarded_as_lines_and_answered_as_rmcps_path_does() {
    let (fast, _, _) = mounted(UpstreamServer::stdio(fixture()), true).await;
    let (slow, _, _) = mounted(UpstreamServer::stdio(fixture()), false).await;
    let request_id = |body: &Value| -> Value {
        let text = body["result"]["content"][0]["text"].as_str().unwrap();
        serde_json::from_str::<Value>(text).unwrap()["request_id"].clone()
    };
    let (_, forwarded) = post(&fast, "alice", call("whoami", json!({}))).await;
    let (_, relayed) = post(&slow, "alice", call("whoami", json!({}))).await;
    assert_eq!(forwarded["id"], json!(3));
    let id = request_id(&forwarded);
    assert!(
        id.as_str().is_some_and(|s| s.starts_with("gatehouse-")),
        "{forwarded}"
    );
    assert!(request_id(&relayed).is_number(), "{relayed}");
    // The line's break makes it two lines: declined, rmcp's path answers (its own id).
    let (_, pretty) = post_line(
        &fast,
        "alice",
        "{\"jsonrpc\":\"2.0\",\"id\":3,\n\"method\":\"tools/call\",\"params\":{\"name\":\"whoami\"}}",
    )
    .await;
    assert!(request_id(&pretty).is_number(), "{pretty}");

    let corpus = [
        call("echo", json!({"text": "ünïcode \u{1F600}"})).to_string(),
        r#"{"jsonrpc":"2.0","id":"s-1","method":"tools/call","params":{"name":"ec\u0068o","arguments":{"text":"esc"}}}"#.into(),
        r#"{ "params" : { "arguments" : { "text" : "order" } , "name" : "echo" } , "method" : "tools/call" , "id" : -9 , "jsonrpc" : "2.0" }"#.into(),
        "{\"jsonrpc\":\"2.0\",\"id\":4,\r\n\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":{\"text\":\"crlf\"}}}".into(),
        call("echo", json!({})).to_string(),
        call("echo", json!({"text": 5})).to_string(),
        call("log", json!({})).to_string(),
        call("sample", json!({})).to_string(),
        call("admin_reset", json!({})).to_string(),
        call("nope", json!({})).to_string(),
        r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"progress","arguments":{"steps":2},"_meta":{"progressToken":"p"}}}"#.into(),
    ];
    for body in corpus {
        let (fs, fj) = post_line(&fast, "alice", &body).await;
        let (ss, sj) = post_line(&slow, "alice", &body).await;
        assert_eq!((fs, &fj), (ss, &sj), "{body}");
        assert_ne!(fj, Value::Null, "an answer to {body}");
    }
}

/// Calls in flight together on one child, all with the client's id 1: each gets its own answer
/// (the gateway's ids keep them apart on the pipe; several lines may go out in one write).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_stdio_calls_with_one_id_get_their_own_answers() {
    let (app, _, gatehouse) = mounted(UpstreamServer::stdio(fixture()), true).await;
    let calls: Vec<_> = (0..48)
        .map(|n| {
            let app = app.clone();
            tokio::spawn(async move {
                let text = format!("call {n}");
                let body = json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
                    "params":{"name":"echo","arguments":{"text": text}}});
                (text, post(&app, "alice", body).await)
            })
        })
        .collect();
    for c in calls {
        let (text, (status, answer)) = c.await.unwrap();
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["id"], json!(1));
        assert_eq!(answer["result"]["content"][0]["text"], json!(text));
    }
    assert_eq!(gatehouse.direct_answers(), 48);
}

async fn post_line(app: &Router, token: &str, body: &str) -> (u16, Value) {
    let resp = app
        .clone()
        .oneshot(common::mcp_post(token, body.to_owned(), &[]))
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, common::last_message(resp).await)
}

fn call(tool: &str, args: Value) -> Value {
    json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":tool,"arguments":args}})
}

/// `whoami` through the gateway: the serving process's pid and environment.
async fn whoami(app: &Router, token: &str) -> (u64, BTreeMap<String, String>) {
    let (status, body) = post(app, token, call("whoami", json!({}))).await;
    assert_eq!(status, 200, "{body}");
    let text = body["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"));
    let v: Value = serde_json::from_str(text).unwrap();
    (
        v["pid"].as_u64().unwrap(),
        serde_json::from_value(v["env"].clone()).unwrap(),
    )
}

fn alive(pid: u64) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

/// Waits (at most 10 s) until `pid` has exited.
async fn exited(pid: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_per_principal_with_only_the_allowed_environment() {
    let (app, handler) = gateway(UpstreamServer::stdio(fixture())).await;

    // The list is the upstream's, minus what the policy hides.
    let (status, body) = post(
        &app,
        "alice",
        json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}),
    )
    .await;
    assert_eq!(status, 200);
    let mut names: Vec<&str> = body["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["echo", "exit", "wait", "whoami"]);

    // Alice's requests share one process; Bob's is another.
    let (alice_pid, env) = whoami(&app, "alice").await;
    assert_eq!(whoami(&app, "alice").await.0, alice_pid);
    assert_eq!(
        whoami(&app, "alice-admin").await.0,
        alice_pid,
        "same principal"
    );
    let (bob_pid, _) = whoami(&app, "bob").await;
    assert_ne!(bob_pid, alice_pid);
    handler.pool().run_pending_tasks().await;
    assert_eq!(handler.pool().process_count(), 2);

    // The child sees PATH and HOME (allowed) and what was set, nothing else of ours.
    let keys: Vec<&str> = env.keys().map(String::as_str).collect();
    let expected: Vec<&str> = ["FIXTURE_GREETING", "HOME", "PATH"]
        .into_iter()
        .filter(|k| *k == "FIXTURE_GREETING" || std::env::var_os(k).is_some())
        .collect();
    assert_eq!(keys, expected, "{env:?}");
    assert_eq!(env["FIXTURE_GREETING"], "hello");

    // Arguments and answers pass through.
    let (_, body) = post(&app, "bob", call("echo", json!({"text": "über ✓"}))).await;
    assert_eq!(body["result"]["content"][0]["text"], "über ✓", "{body}");

    // A hidden tool is answered as a missing one; a named one needs its scope (step-up).
    let (status, hidden) = post(&app, "alice-admin", call("admin_reset", json!({}))).await;
    let (_, missing) = post(&app, "alice-admin", call("no_such_tool", json!({}))).await;
    assert_eq!((status, &hidden), (200, &missing));
    assert_eq!(hidden["error"]["message"], "tool not found");
    let (status, _) = post(&app, "alice", call("exit", json!({}))).await;
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_that_dies_is_replaced_and_a_bounded_pool_stops_the_least_recent() {
    let mut upstream = UpstreamServer::stdio(fixture());
    upstream.max_connections = 1;
    let (app, handler) = gateway(upstream).await;

    // The call that kills the process fails at once with 503 (try again: never a 401); the next
    // request gets a new process.
    let (first, _) = whoami(&app, "alice").await;
    let (status, body) = post(&app, "alice-admin", call("exit", json!({}))).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    assert!(exited(first).await, "the crashed process is gone");
    let (second, _) = whoami(&app, "alice").await;
    assert_ne!(second, first);

    // Room for one process: one of Alice's and Bob's is evicted (the least recently used, as
    // far as the cache's buffered bookkeeping knows) and stopped; the other keeps running.
    let (bob, _) = whoami(&app, "bob").await;
    handler.pool().run_pending_tasks().await;
    assert_eq!(handler.pool().process_count(), 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(second) && alive(bob) {
        assert!(Instant::now() < deadline, "neither process was stopped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(alive(second) != alive(bob), "exactly one process is left");
}

#[tokio::test]
async fn a_shared_upstream_serves_everyone_from_one_process() {
    let mut upstream = UpstreamServer::stdio(fixture());
    upstream.isolation = Isolation::Shared;
    let (app, _) = gateway(upstream).await;
    assert_eq!(whoami(&app, "alice").await.0, whoami(&app, "bob").await.0);
}

#[tokio::test]
async fn an_upstream_that_cannot_start_fails_at_start_up() {
    let e = GatewayHandler::start(UpstreamServer::stdio(StdioCommand::new(
        "/nonexistent/mcp-server",
        Vec::<String>::new(),
    )))
    .await
    .unwrap_err();
    assert!(e.to_string().contains("could not be started"), "{e}");
}

// A client that goes away mid-call cancels the call upstream too (MCP `notifications/cancelled`),
// instead of leaving the upstream working for nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_cancels_the_upstream_call() {
    let marker = std::env::temp_dir().join(format!("gw-cancel-{}-{}", std::process::id(), line!()));
    let _ = std::fs::remove_file(&marker);
    let mut command = fixture();
    command
        .env
        .insert("FIXTURE_MARKER".into(), marker.display().to_string());
    let (app, _) = gateway(UpstreamServer::stdio(command)).await;
    let gateway = app.clone();
    let call = tokio::spawn(async move { post(&gateway, "alice", call("wait", json!({}))).await });
    let read = || std::fs::read_to_string(&marker).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(10);
    while read() != "started" {
        assert!(Instant::now() < deadline, "the upstream never got the call");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    call.abort();
    let deadline = Instant::now() + Duration::from_secs(10);
    while read() != "cancelled" {
        assert!(
            Instant::now() < deadline,
            "the upstream call was not cancelled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = std::fs::remove_file(&marker);
}

/// A raw body, as an attacker would shape it.
async fn post_raw(
    app: &Router,
    token: &str,
    body: &'static str,
    extra: &[(&str, &str)],
) -> (u16, String) {
    let mut req = Request::post("/mcp")
        .header("host", "gw.example.com")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .header("authorization", format!("Bearer {token}"));
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

// The bytes that were authorized are the bytes that are forwarded: a body that one parser could
// read as an allowed tool and another as a hidden one (duplicate keys, case variants, a
// compressed body) never reaches the hidden tool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_body_shape_reaches_a_hidden_tool() {
    let (app, _) = gateway(UpstreamServer::stdio(fixture())).await;
    let bodies: [(&'static str, &[(&str, &str)]); 6] = [
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","name":"admin_reset","arguments":{}}}"#,
            &[],
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"admin_reset","name":"whoami","arguments":{}}}"#,
            &[],
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"Name":"whoami","name":"admin_reset","arguments":{}}}"#,
            &[],
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","method":"tools/list","params":{"name":"admin_reset","arguments":{}}}"#,
            &[],
        ),
        (
            r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"admin_reset","arguments":{}}}]"#,
            &[],
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"admin_reset","arguments":{}}}"#,
            &[("content-encoding", "gzip")],
        ),
    ];
    for (body, extra) in bodies {
        let (status, answer) = post_raw(&app, "alice-admin", body, extra).await;
        assert!(
            !answer.contains("reset\""),
            "{body} reached the hidden tool: {status} {answer}"
        );
        assert!(
            status != 200 || answer.contains("\"error\""),
            "{body}: {status} {answer}"
        );
    }
    // The same tool, asked plainly, is still answered as missing.
    let (_, answer) = post_raw(&app, "alice-admin", r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"admin_reset","arguments":{}}}"#, &[]).await;
    assert!(answer.contains("tool not found"), "{answer}");
}

// ---------------------------------------------------------------------------------------------
// Per-session isolation (stateful mode)

/// A request in an MCP session (or, without one, the `initialize` that opens it).
fn session_request(
    token: &str,
    session: Option<&str>,
    method: http::Method,
    body: &str,
) -> Request<Body> {
    let mut r = Request::builder()
        .method(method)
        .uri("/mcp")
        .header("host", "gw.example.com")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("authorization", format!("Bearer {token}"));
    if let Some(s) = session {
        r = r
            .header("mcp-session-id", s)
            .header("mcp-protocol-version", "2025-11-25");
    }
    r.body(Body::from(body.to_owned())).unwrap()
}

/// The JSON-RPC message of a response, whether sent as JSON or as one SSE event.
async fn message(resp: axum::response::Response) -> Value {
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes);
    let json = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("data:")
                .map(str::trim)
                .filter(|d| !d.is_empty())
        })
        .unwrap_or(&text);
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Opens a session for `token`; returns its id.
async fn open_session(app: &Router, token: &str) -> String {
    let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let resp = app
        .clone()
        .oneshot(session_request(token, None, http::Method::POST, init))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let id = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    drop(message(resp).await);
    let done = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    let resp = app
        .clone()
        .oneshot(session_request(token, Some(&id), http::Method::POST, done))
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    id
}

/// `whoami` in a session: the serving process's pid.
async fn session_pid(app: &Router, token: &str, session: &str) -> u64 {
    let body = call("whoami", json!({})).to_string();
    let resp = app
        .clone()
        .oneshot(session_request(
            token,
            Some(session),
            http::Method::POST,
            &body,
        ))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let m = message(resp).await;
    let text = m["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{m}"));
    serde_json::from_str::<Value>(text).unwrap()["pid"]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_session_isolation_gives_each_session_its_process_and_stops_it_with_the_session() {
    let mut upstream = UpstreamServer::stdio(fixture());
    upstream.isolation = Isolation::PerSession;
    let handler = GatewayHandler::start(upstream)
        .await
        .expect("upstream starts");
    let gatehouse = protection()
        .stateful_sessions(gatehouse::http::SessionBindingConfig::default())
        .build()
        .unwrap();
    let h = handler.clone();
    let app = gatehouse.mount(move || h.for_session());

    // One user, two sessions (two clients or two conversations): two processes, each kept for
    // its session's requests.
    let first = open_session(&app, "alice").await;
    let second = open_session(&app, "alice").await;
    let pid_first = session_pid(&app, "alice", &first).await;
    let pid_second = session_pid(&app, "alice", &second).await;
    assert_ne!(pid_first, pid_second);
    assert_eq!(session_pid(&app, "alice", &first).await, pid_first);
    assert_eq!(session_pid(&app, "alice", &second).await, pid_second);

    // Ending a session (DELETE) stops its process and only its process.
    let resp = app
        .clone()
        .oneshot(session_request(
            "alice",
            Some(&first),
            http::Method::DELETE,
            "",
        ))
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    assert!(
        exited(pid_first).await,
        "the ended session's process stopped"
    );
    assert!(alive(pid_second));
    assert_eq!(session_pid(&app, "alice", &second).await, pid_second);
}

/// A 2026-07-28 request (SEP-2243 headers, per-request `_meta`).
async fn post_2026(
    app: &Router,
    token: &str,
    method: &str,
    name: Option<&str>,
    params: Value,
) -> Value {
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {}
    });
    let mut req = Request::post("/mcp")
        .header("host", "gw.example.com")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method)
        .header("authorization", format!("Bearer {token}"));
    if let Some(n) = name {
        req = req.header("mcp-name", n);
    }
    let body = json!({"jsonrpc":"2.0","id":9,"method":method,"params":params});
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

// SEP-2322: a 2026-07-28 client gets `resultType` on every result, although the upstream (on an
// older revision with the gateway) leaves it out; an older client gets none.
#[tokio::test]
async fn a_2026_07_28_client_gets_result_types_an_older_one_does_not() {
    let (app, _) = gateway(UpstreamServer::stdio(fixture())).await;
    let answer = post_2026(
        &app,
        "alice",
        "tools/call",
        Some("echo"),
        json!({"name":"echo","arguments":{"text":"hi"}}),
    )
    .await;
    assert_eq!(answer["result"]["resultType"], "complete", "{answer}");
    assert_eq!(answer["result"]["content"][0]["text"], "hi", "{answer}");
    let list = post_2026(&app, "alice", "tools/list", None, json!({})).await;
    assert_eq!(list["result"]["resultType"], "complete", "{list}");
    let (_, old) = post(&app, "alice", call("echo", json!({"text":"hi"}))).await;
    assert!(old["result"].get("resultType").is_none(), "{old}");
}

// Pagination passes through as the upstream pages: its cursors, its page boundaries, each page
// filtered for the caller — a page can come back empty with a cursor, and the walk goes on to
// the end (a gateway that drops or invents cursors makes clients loop or stop early).
#[tokio::test]
async fn tools_list_pages_keep_the_upstreams_cursors_with_hidden_tools_left_out() {
    let mut command = fixture();
    command.env.insert("FIXTURE_PAGE_SIZE".into(), "2".into());
    let (app, _) = gateway(UpstreamServer::stdio(command)).await;
    let walk = |token: &'static str| {
        let app = app.clone();
        async move {
            let mut cursors = Vec::new();
            let mut names = Vec::new();
            let mut params = json!({});
            for _ in 0..10 {
                let (status, body) = post(
                    &app,
                    token,
                    json!({"jsonrpc":"2.0","id":4,"method":"tools/list","params":params}),
                )
                .await;
                assert_eq!(status, 200, "{body}");
                for t in body["result"]["tools"].as_array().unwrap() {
                    names.push(t["name"].as_str().unwrap().to_owned());
                }
                match body["result"]["nextCursor"].as_str() {
                    Some(c) => {
                        cursors.push(c.to_owned());
                        params = json!({ "cursor": c });
                    }
                    None => return (cursors, names),
                }
            }
            panic!("the walk did not end");
        }
    };
    let (cursors, names) = walk("alice").await;
    assert_eq!(cursors, ["2", "4", "6", "8"], "the upstream's own cursors");
    // Upstream pages: [admin_reset, echo] [exit, log] [log_after, progress] [sample, wait]
    // [whoami]; the policy hides admin_reset and the unnamed ones, so the third page is empty.
    // (`exit` needs a scope alice lacks: listed, for step-up.)
    assert_eq!(names, ["echo", "exit", "wait", "whoami"]);
}
