//! Invariant: the forwarding path (a `tools/call` sent to an HTTP upstream as the client's
//! bytes, `gatehouse::mcp::forward`) answers every request as rmcp's path does, sends the
//! upstream exactly the bytes the policy read with only the id replaced by the gateway's own,
//! keeps concurrent calls with the same id apart, cancels upstream when the client goes away,
//! and writes one audit record per call.
//!
//! Real pieces: rmcp Streamable HTTP servers on 127.0.0.1 as upstreams — one with sessions
//! answering in SSE, one stateless answering in JSON — with a layer recording what they
//! receive; the gateway mounted twice over the same upstream, with and without the path.

#![allow(
    deprecated,
    reason = "sampling and logging are what some of these tests exercise; rmcp marks them \
              deprecated (SEP-2577) but the 2025-11-25 revision has them"
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use gatehouse::observe::{Observer, ToolCall};
use gatehouse::policy::UnnamedTools;
use gatehouse::{Gatehouse, ResourceUrl};
use gatehouse_gateway::{GatewayHandler, HttpTarget, Secret, UpstreamServer};
use http::HeaderMap;
use http_body_util::BodyExt;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::StreamableHttpServerConfig;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

mod common;

const RESOURCE: &str = "https://gw.example.com/mcp";
const KEY: &str = "upstream-key-3";

/// What the upstream's `wait` tool reports: `started`, then `cancelled`.
type Marks = mpsc::UnboundedSender<&'static str>;

#[derive(Clone)]
struct Upstream {
    tool_router: ToolRouter<Self>,
    marks: Marks,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct EchoParams {
    /// What to say back.
    text: String,
}

#[tool_router]
impl Upstream {
    #[tool(description = "Says the text back")]
    fn echo(&self, Parameters(p): Parameters<EchoParams>) -> String {
        p.text
    }

    #[tool(description = "Fails as a tool")]
    fn fail(&self) -> CallToolResult {
        CallToolResult::error(vec![ContentBlock::text("it broke")])
    }

    #[tool(description = "A tool the policy hides")]
    fn admin_reset(&self) -> String {
        "reset".into()
    }

    #[tool(description = "Sends a log message, then answers")]
    async fn log(&self, context: RequestContext<RoleServer>) -> String {
        let m = rmcp::model::LoggingMessageNotificationParam::new(
            rmcp::model::LoggingLevel::Warning,
            json!("from the upstream"),
        );
        match context.peer.notify_logging_message(m).await {
            Ok(()) => "logged".into(),
            Err(e) => e.to_string(),
        }
    }

    #[tool(description = "Asks the client to sample and answers with the outcome")]
    async fn sample(&self, context: RequestContext<RoleServer>) -> String {
        use rmcp::model::{CreateMessageRequest, CreateMessageRequestParams, SamplingMessage};
        let params = CreateMessageRequestParams::new(vec![SamplingMessage::user_text("hi")], 8);
        let request =
            rmcp::model::ServerRequest::CreateMessageRequest(CreateMessageRequest::new(params));
        match context.peer.send_request(request).await {
            Ok(_) => "sampled".into(),
            Err(rmcp::service::ServiceError::McpError(e)) => format!("refused: {}", e.message),
            Err(e) => format!("failed: {e}"),
        }
    }

    #[tool(description = "Waits until cancelled")]
    async fn wait(&self, context: RequestContext<RoleServer>) -> String {
        let _ = self.marks.send("started");
        context.ct.cancelled().await;
        let _ = self.marks.send("cancelled");
        "cancelled".into()
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Upstream {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_logging()
                .build(),
        )
    }
}

/// What the upstream received: each POST's headers and body.
type Seen = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

/// What the upstream answers to a `tools/call` instead of running it: status, content type,
/// body.
type Fault = Arc<Mutex<Option<(u16, &'static str, &'static str)>>>;

struct Served {
    url: String,
    seen: Seen,
    marks: mpsc::UnboundedReceiver<&'static str>,
    fault: Fault,
    /// With sessions: the upstream's session store, to end a session under the gateway.
    sessions: Option<Arc<LocalSessionManager>>,
    stop: CancellationToken,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// An upstream on 127.0.0.1: with sessions (SSE answers) or stateless (JSON answers). It
/// refuses requests without the gateway's key.
async fn upstream(sessions: bool) -> Served {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let (tx, marks) = mpsc::unbounded_channel();
    let make = move || {
        Ok(Upstream {
            tool_router: Upstream::tool_router(),
            marks: tx.clone(),
        })
    };
    let config = StreamableHttpServerConfig::default().with_cancellation_token(stop.child_token());
    let (routes, manager) = common::mcp_routes(make, sessions, config);
    let seen = Seen::default();
    let record = seen.clone();
    let fault = Fault::default();
    let faulty = fault.clone();
    let app = routes.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let record = record.clone();
            let faulty = faulty.clone();
            async move {
                if req
                    .headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    != Some(&format!("Bearer {KEY}"))
                {
                    return http::Response::builder()
                        .status(401)
                        .header("www-authenticate", "Bearer")
                        .body(axum::body::Body::empty())
                        .unwrap();
                }
                let (parts, body) = req.into_parts();
                let bytes = body.collect().await.unwrap().to_bytes();
                if parts.method == http::Method::POST {
                    record
                        .lock()
                        .unwrap()
                        .push((parts.headers.clone(), bytes.clone()));
                }
                let fault = *faulty.lock().unwrap();
                if let Some((status, media, body)) = fault
                    && bytes.windows(10).any(|w| w == b"tools/call")
                {
                    return http::Response::builder()
                        .status(status)
                        .header("content-type", media)
                        .body(axum::body::Body::from(body))
                        .unwrap();
                }
                next.run(axum::extract::Request::from_parts(parts, Body::from(bytes)))
                    .await
            }
        },
    ));
    let s = stop.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { s.cancelled().await })
            .await
            .unwrap();
    });
    Served {
        url,
        seen,
        marks,
        fault,
        sessions: manager,
        stop,
    }
}

/// The audit records' (tool, outcome, reason), and whether each call's tool was known (what
/// metrics label by).
#[derive(Default)]
struct Audit(Mutex<Vec<(String, String, String)>>, Mutex<Vec<bool>>);

impl Observer for Audit {
    fn tool_call(&self, call: &ToolCall<'_>) {
        self.0.lock().unwrap().push((
            call.tool.unwrap_or("-").to_owned(),
            call.outcome.as_str().to_owned(),
            call.reason.to_owned(),
        ));
        self.1.lock().unwrap().push(call.known_tool);
    }
}

struct Gateway {
    app: Router,
    gatehouse: Gatehouse,
    audit: Arc<Audit>,
}

/// The gateway in front of `url`, with or without the forwarding path.
async fn gateway(url: &str, forward: bool) -> Gateway {
    let handler = GatewayHandler::start(UpstreamServer::http(HttpTarget {
        credential: Some(("authorization".into(), Secret::new(KEY))),
        ..HttpTarget::new(url)
    }))
    .await
    .expect("upstream reachable");
    let audit = Arc::new(Audit::default());
    let mut builder = Gatehouse::builder(ResourceUrl::parse(RESOURCE).unwrap())
        .authorization_servers(["https://auth.example.com"])
        .verifier(Arc::new(common::Users::new(
            RESOURCE,
            &[("alice", "alice", "mcp"), ("bob", "bob", "mcp")],
        )))
        .unnamed_tools(UnnamedTools::Deny)
        .observer(audit.clone());
    for tool in ["echo", "fail", "log", "sample", "wait"] {
        builder = builder.tool_scopes(tool, Vec::<String>::new());
    }
    let gatehouse = builder.build().unwrap();
    Gateway {
        app: handler.mount(&gatehouse, forward),
        gatehouse,
        audit,
    }
}

/// Posts `body` as `token` with the headers a client sends, and the answer's status and last
/// JSON-RPC message (the JSON body, or the last event of an SSE stream).
async fn post(app: &Router, token: &str, body: &str) -> (u16, Value) {
    let req = common::mcp_post(token, body, &[("x-inbound-secret", "client-side-value")]);
    let resp = tokio::time::timeout(Duration::from_secs(20), app.clone().oneshot(req))
        .await
        .unwrap_or_else(|_| panic!("no answer to {body}"))
        .unwrap();
    let status = resp.status().as_u16();
    (status, common::last_message(resp).await)
}

fn call(id: Value, tool: &str, arguments: Value) -> String {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":arguments}})
        .to_string()
}

/// Each case: the body, and whether the forwarding path takes it. `sample` only with sessions:
/// a stateless upstream answering in JSON has no stream to ask on, and its call never ends.
fn corpus(sessions: bool) -> Vec<(String, bool)> {
    let mut cases = vec![
        (call(json!(1), "echo", json!({"text":"hi"})), true),
        (call(json!("s-1"), "echo", json!({"text":"ünïcode \u{1F600}"})), true),
        (
            r#"{"jsonrpc":"2.0","id":-4,"method":"tools/call","params":{"name":"ec\u0068o","arguments":{"text":"esc"}}}"#.into(),
            true,
        ),
        (
            r#"{ "params" : { "arguments" : { "text" : "order" } , "name" : "echo" } , "method" : "tools/call" , "id" : 9 , "jsonrpc" : "2.0" }"#.into(),
            true,
        ),
        (call(json!(2), "fail", json!({})), true),
        (call(json!(3), "echo", json!({})), true),
        (call(json!(4), "echo", json!({"text": 5})), true),
        (call(json!(5), "log", json!({})), true),
        // Not taken: rmcp's path answers them.
        (call(json!(7), "admin_reset", json!({})), false),
        (call(json!(8), "nope", json!({})), false),
        (
            r#"{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"echo","arguments":{"text":"a","text":"b"}}}"#.into(),
            false,
        ),
        (
            r#"{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":"echo","arguments":{"text":"a"},"_meta":{"progressToken":"p"}}}"#.into(),
            false,
        ),
        (
            r#"{"jsonrpc":"2.0","id":12,"method":"tools/list","params":{}}"#.into(),
            false,
        ),
        (
            r#"{"jsonrpc":"2.0","id":13.5,"method":"tools/call","params":{"name":"echo","arguments":{"text":"a"}}}"#.into(),
            false,
        ),
        (
            r#"[{"jsonrpc":"2.0","id":14,"method":"tools/call","params":{"name":"echo","arguments":{"text":"a"}}}]"#.into(),
            false,
        ),
        (
            r#"{"jsonrpc":"2.0","id":15,"method":"tools/call","params":{"name":"echo","arguments":{"text":"a"}},"Method":"x"}"#.into(),
            false,
        ),
    ];
    if sessions {
        cases.push((call(json!(6), "sample", json!({})), true));
    }
    cases
}

/// Results carry `resultType` only on rmcp's path for newer clients; ids and everything else
/// must match.
async fn both_paths_answer_alike(sessions: bool) {
    let up = upstream(sessions).await;
    let fast = gateway(&up.url, true).await;
    let slow = gateway(&up.url, false).await;
    for (body, forwarded) in corpus(sessions) {
        let before = fast.gatehouse.direct_answers();
        let (fs, fj) = post(&fast.app, "alice", &body).await;
        let taken = fast.gatehouse.direct_answers() - before;
        let (ss, sj) = post(&slow.app, "alice", &body).await;
        assert_eq!(taken, u64::from(forwarded), "forwarded? {body}");
        assert_eq!(fs, ss, "status of {body}");
        assert_eq!(fj, sj, "answer to {body}");
        assert_ne!(fj, Value::Null, "an answer to {body}");
    }
    assert_eq!(slow.gatehouse.direct_answers(), 0);
    // The sampling request on a forwarded call was answered upstream with the relay's refusal.
    if sessions {
        let (_, sampled) = post(&fast.app, "alice", &call(json!(1), "sample", json!({}))).await;
        let text = sampled["result"]["content"][0]["text"].as_str().unwrap();
        assert!(
            text.starts_with("refused: sampling is not available through the gateway"),
            "{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_calls_answer_as_rmcps_path_does_over_sse_sessions() {
    both_paths_answer_alike(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_calls_answer_as_rmcps_path_does_over_stateless_json() {
    both_paths_answer_alike(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_gets_the_clients_bytes_with_only_the_id_replaced() {
    let up = upstream(true).await;
    let gw = gateway(&up.url, true).await;
    let body = r#"{ "jsonrpc":"2.0", "id" : 77,"method":"tools/call","params":{"name":"echo","arguments":{"text":"sp  aces\n\u00e9"}}}"#;
    let (status, answer) = post(&gw.app, "alice", body).await;
    assert_eq!(status, 200);
    assert_eq!(answer["id"], json!(77));
    assert_eq!(answer["result"]["content"][0]["text"], json!("sp  aces\né"));
    let seen = up.seen.lock().unwrap();
    let (headers, forwarded) = seen.last().unwrap();
    let forwarded = std::str::from_utf8(forwarded).unwrap();
    let id = forwarded
        .split("\"id\" : ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap();
    assert!(id.starts_with("\"gatehouse-"), "{forwarded}");
    assert_eq!(forwarded, body.replace("77", id));
    // The gateway's credential, never the client's token or headers.
    assert_eq!(headers["authorization"], format!("Bearer {KEY}").as_str());
    assert!(headers.get("x-inbound-secret").is_none());
    assert_eq!(headers["mcp-protocol-version"], "2025-11-25");
    assert!(headers.get("mcp-session-id").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_with_one_id_get_their_own_answers() {
    let up = upstream(true).await;
    let gw = gateway(&up.url, true).await;
    let calls = (0..24).map(|n| {
        let app = gw.app.clone();
        tokio::spawn(async move {
            let text = format!("call {n}");
            let (_, answer) = post(
                &app,
                "alice",
                &call(json!(1), "echo", json!({ "text": text })),
            )
            .await;
            (text, answer)
        })
    });
    for c in calls.collect::<Vec<_>>() {
        let (text, answer) = c.await.unwrap();
        assert_eq!(answer["id"], json!(1));
        assert_eq!(answer["result"]["content"][0]["text"], json!(text));
    }
    assert_eq!(gw.gatehouse.direct_answers(), 24);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_cancels_the_forwarded_call() {
    let mut up = upstream(true).await;
    let gw = gateway(&up.url, true).await;
    let app = gw.app.clone();
    let pending =
        tokio::spawn(async move { post(&app, "alice", &call(json!(1), "wait", json!({}))).await });
    let mark = tokio::time::timeout(Duration::from_secs(10), up.marks.recv()).await;
    assert_eq!(mark.unwrap(), Some("started"));
    pending.abort();
    let mark = tokio::time::timeout(Duration::from_secs(10), up.marks.recv()).await;
    assert_eq!(
        mark.expect("the upstream call was cancelled"),
        Some("cancelled")
    );
    // Its record says it was cut short: written when the call (or its answer's stream, if the
    // upstream's had begun) was dropped, before the cancellation went upstream.
    assert_eq!(
        gw.audit.0.lock().unwrap().clone(),
        vec![(
            "wait".to_owned(),
            "error".to_owned(),
            "interrupted".to_owned()
        )]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_forwarded_call_is_audited_once() {
    let up = upstream(true).await;
    let gw = gateway(&up.url, true).await;
    let slow = gateway(&up.url, false).await;
    for g in [&gw, &slow] {
        post(
            &g.app,
            "alice",
            &call(json!(1), "echo", json!({"text":"a"})),
        )
        .await;
        post(&g.app, "alice", &call(json!(2), "fail", json!({}))).await;
        post(&g.app, "alice", &call(json!(3), "admin_reset", json!({}))).await;
    }
    assert_eq!(gw.gatehouse.direct_answers(), 2);
    let audit = gw.audit.0.lock().unwrap().clone();
    let s = |t: &str, o: &str, r: &str| (t.to_owned(), o.to_owned(), r.to_owned());
    assert_eq!(
        audit,
        vec![
            s("echo", "allowed", "ok"),
            s("fail", "error", "tool_error"),
            s("admin_reset", "denied", "hidden_tool"),
        ]
    );
    // Observed as rmcp's path observes them, down to whether the tool is known (metrics keep
    // the names of tools that answered).
    assert_eq!(audit, slow.audit.0.lock().unwrap().clone());
    let known = gw.audit.1.lock().unwrap().clone();
    assert_eq!(known, vec![true, false, false]);
    assert_eq!(known, slow.audit.1.lock().unwrap().clone());
}

/// Every way an upstream can fail a forwarded call, each with the client's answer and the audit
/// record it gets; a call the upstream never ran (its session gone) is sent again by rmcp's path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_upstream_failure_gets_its_answer_and_record() {
    let up = upstream(true).await;
    let gw = gateway(&up.url, true).await;
    let echo = || call(json!(5), "echo", json!({"text": "a"}));
    let cases = [
        // A 5xx without a JSON-RPC error: the upstream is down, 503 + Retry-After.
        (
            (502, "text/plain", "bad gateway"),
            503,
            Value::Null,
            "upstream_unavailable",
        ),
        // Another refusal without a JSON-RPC error: a JSON-RPC error to the client.
        (
            (400, "text/plain", "no"),
            200,
            json!("upstream request failed"),
            "upstream_failed",
        ),
        // JSON that answers another request, or is no answer at all.
        (
            (
                200,
                "application/json",
                r#"{"jsonrpc":"2.0","id":"other","result":{}}"#,
            ),
            200,
            json!("upstream answered unexpectedly"),
            "upstream_invalid",
        ),
        (
            (200, "application/json", "not json"),
            200,
            json!("upstream answered unexpectedly"),
            "upstream_invalid",
        ),
        // A stream that ends before the answer.
        (
            (200, "text/event-stream", ""),
            200,
            Value::Null,
            "interrupted",
        ),
    ];
    for (fault, status, message, reason) in cases {
        *up.fault.lock().unwrap() = Some(fault);
        gw.audit.0.lock().unwrap().clear();
        let resp = gw
            .app
            .clone()
            .oneshot(common::mcp_post("alice", echo(), &[]))
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "{fault:?}");
        if status == 503 {
            assert!(resp.headers().contains_key("retry-after"), "{fault:?}");
        }
        let answer = common::last_message(resp).await;
        if message != Value::Null {
            assert_eq!(answer["id"], json!(5), "{fault:?}");
            assert_eq!(answer["error"]["message"], message, "{fault:?}");
        }
        assert_eq!(
            gw.audit.0.lock().unwrap().clone(),
            vec![("echo".to_owned(), "error".to_owned(), reason.to_owned())],
            "{fault:?}"
        );
    }
    *up.fault.lock().unwrap() = None;
    assert_eq!(gw.gatehouse.direct_answers(), 5);

    // The upstream ends the session: the forwarded call is answered 404 and not run; rmcp's
    // path starts a new session and the call is answered from it.
    let first = |seen: &Seen| {
        seen.lock().unwrap().last().unwrap().0["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    let (status, _) = post(&gw.app, "alice", &echo()).await;
    assert_eq!(status, 200);
    let old = first(&up.seen);
    let manager = up.sessions.as_ref().unwrap();
    rmcp::transport::streamable_http_server::session::SessionManager::close_session(
        manager.as_ref(),
        &old.clone().into(),
    )
    .await
    .unwrap();
    let (status, answer) = post(&gw.app, "alice", &echo()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"]["content"][0]["text"], json!("a"));
    assert_ne!(first(&up.seen), old, "a new session");
    // The retried call was answered by rmcp's path, not forwarded.
    assert_eq!(gw.gatehouse.direct_answers(), 6);
}
