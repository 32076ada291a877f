//! Invariants of the direct path (`mcp::direct`, issue 18) that the billing corpus cannot show
//! (its tools never use the peer and never wait): a direct tool that sends a message to the
//! client gets an error at once instead of hanging, and its answer stays one JSON message; a
//! direct tool whose client goes away is cancelled, as rmcp cancels it; a tool not declared
//! direct is answered by rmcp (an SSE stream when it notifies).

// Logging and sampling are deprecated in the newest revision (SEP-2577); they are still the
// messages a tool may send on the revisions the direct path serves, so they are what is tested.
#![allow(deprecated)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use gatehouse::Gatehouse;
use gatehouse::mcp::DirectTools;
use http_body_util::BodyExt;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{
    CallToolResult, ContentBlock, CreateMessageRequestParams, LoggingLevel,
    LoggingMessageNotificationParam, SamplingMessage, ServerCapabilities, ServerConfig,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use tokio::sync::Notify;
use tower::ServiceExt;

#[path = "common/mod.rs"]
mod common;

use common::{any_token_gatehouse, tool_call_request};

#[derive(Clone)]
struct Tools {
    tool_router: ToolRouter<Self>,
    /// Told when `wait_for_cancel` has started, and when it saw its cancellation.
    started: Arc<Notify>,
    cancelled: Arc<Notify>,
}

#[tool_router]
impl Tools {
    #[tool(description = "Sends a log message to the client")]
    async fn notifies(&self, context: RequestContext<RoleServer>) -> CallToolResult {
        let sent = context
            .peer
            .notify_logging_message(LoggingMessageNotificationParam::new(
                LoggingLevel::Info,
                serde_json::json!("hello"),
            ))
            .await;
        text(if sent.is_ok() {
            "delivered"
        } else {
            "not delivered"
        })
    }

    #[tool(description = "Asks the client to sample")]
    async fn samples(&self, context: RequestContext<RoleServer>) -> CallToolResult {
        let asked = context
            .peer
            .create_message(CreateMessageRequestParams::new(
                vec![SamplingMessage::user_text("hi")],
                10,
            ))
            .await;
        text(if asked.is_ok() {
            "sampled"
        } else {
            "no sampling"
        })
    }

    #[tool(description = "Panics")]
    async fn panics(&self) -> CallToolResult {
        panic!("a tool bug")
    }

    #[tool(description = "Waits until cancelled")]
    async fn wait_for_cancel(&self, context: RequestContext<RoleServer>) -> CallToolResult {
        self.started.notify_one();
        context.ct.cancelled().await;
        self.cancelled.notify_one();
        text("cancelled")
    }
}

fn text(t: &str) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(t)])
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_logging()
                .build(),
        )
    }
}

fn app(direct: DirectTools) -> (Router, Tools, Gatehouse) {
    let gatehouse = any_token_gatehouse(direct);
    let tools = Tools {
        tool_router: Tools::tool_router(),
        started: Arc::new(Notify::new()),
        cancelled: Arc::new(Notify::new()),
    };
    let mounted = tools.clone();
    (gatehouse.mount(move || mounted.clone()), tools, gatehouse)
}

/// Status, `Content-Type` and body; bounded, so that a hanging tool fails the test.
async fn send(app: &Router, tool: &str) -> (u16, String, String) {
    let answer = tokio::time::timeout(Duration::from_secs(10), async {
        let resp = app.clone().oneshot(tool_call_request(tool)).await.unwrap();
        let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            content_type,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    });
    answer.await.expect("answered within 10 s")
}

#[tokio::test]
async fn a_direct_tool_cannot_reach_the_client_and_says_so_at_once() {
    let (app, _, gatehouse) = app(DirectTools::All);
    let (status, content_type, body) = send(&app, "notifies").await;
    assert_eq!((status, content_type.as_str()), (200, "application/json"));
    assert!(body.contains("not delivered"), "{body}");
    // A server-to-client request fails instead of waiting for an answer that cannot come.
    let (status, content_type, body) = send(&app, "samples").await;
    assert_eq!((status, content_type.as_str()), (200, "application/json"));
    assert!(body.contains("no sampling"), "{body}");
    assert_eq!(gatehouse.direct_answers(), 2);
}

#[tokio::test]
async fn a_tool_not_declared_direct_is_left_to_rmcp() {
    let (app, _, gatehouse) = app(DirectTools::named(["samples"]));
    // rmcp delivers the notification: the answer becomes an SSE stream that carries it.
    let (status, content_type, body) = send(&app, "notifies").await;
    assert_eq!((status, content_type.as_str()), (200, "text/event-stream"));
    assert!(body.contains("notifications/message"), "{body}");
    assert!(body.contains("\"delivered"), "{body}");
    assert_eq!(gatehouse.direct_answers(), 0);
}

#[tokio::test]
async fn a_direct_tool_is_cancelled_when_its_client_goes_away() {
    let (app, tools, gatehouse) = app(DirectTools::All);
    let request = tokio::spawn({
        let app = app.clone();
        async move { app.oneshot(tool_call_request("wait_for_cancel")).await }
    });
    tools.started.notified().await;
    assert_eq!(gatehouse.direct_answers(), 1);
    // The connection's future is dropped, as hyper drops it when the client disconnects.
    request.abort();
    tokio::time::timeout(Duration::from_secs(10), tools.cancelled.notified())
        .await
        .expect("the tool saw its cancellation");
}

/// Status, `Content-Type` and body of `req` through `app`, bounded.
async fn answer(app: &Router, req: http::Request<axum::body::Body>) -> (u16, String, String) {
    let answer = tokio::time::timeout(Duration::from_secs(10), async {
        let resp = app.clone().oneshot(req).await.unwrap();
        let content_type = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            content_type,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    });
    answer.await.expect("answered within 10 s")
}

#[tokio::test]
async fn a_panicking_direct_tool_gets_the_edge_s_json_500_and_the_server_goes_on() {
    let (direct, _, gatehouse) = app(DirectTools::All);
    let (status, content_type, body) = answer(&direct, tool_call_request("panics")).await;
    assert_eq!(gatehouse.direct_answers(), 1);
    assert_eq!(
        (status, content_type.as_str()),
        (500, "application/json"),
        "{body}"
    );
    assert!(
        !body.contains("a tool bug"),
        "the panic message stays in the logs: {body}"
    );
    // The same router answers the next request.
    let (status, _, body) = answer(&direct, tool_call_request("notifies")).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_body_that_cannot_be_read_is_refused_as_rmcp_refuses_it() {
    // A `tools/list` (the edge reads no body for it) whose body fails half-way: the direct path
    // hands the error to rmcp, so both paths give rmcp's refusal, rendered by the edge.
    let broken = || {
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
        let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = vec![
            Ok(bytes::Bytes::from_static(&body.as_bytes()[..10])),
            Err(std::io::Error::other("connection reset")),
        ];
        http::Request::post("/mcp")
            .header("host", "mcp.example.com")
            .header("content-type", "application/json")
            .header("content-length", body.len())
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .header("authorization", "Bearer t")
            .body(axum::body::Body::from_stream(futures::stream::iter(chunks)))
            .unwrap()
    };
    let (direct, _, gatehouse) = app(DirectTools::All);
    let (rmcp, _, _) = app(DirectTools::Off);
    let from_direct = answer(&direct, broken()).await;
    let from_rmcp = answer(&rmcp, broken()).await;
    assert_eq!(from_direct, from_rmcp);
    assert_eq!(gatehouse.direct_answers(), 0, "nothing was dispatched");
    assert!(from_rmcp.0 >= 400, "{from_rmcp:?}");
    assert_eq!(from_rmcp.1, "application/json", "{from_rmcp:?}");
}
