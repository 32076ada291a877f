//! Invariant: a tool whose own dependency is down (its database) says so with
//! `report_tool_dependency_failure`, and the client gets the HTTP answer that means it — `503`
//! with `Retry-After` (stateless mode, the default), or `502` for a refusal — instead of a tool
//! error inside a `200` that tells no one to retry. Tools that do not report keep their answer.

use std::time::Duration;

use axum::Router;
use gatehouse::mcp::{DependencyFailure, DirectTools, report_tool_dependency_failure};
use http_body_util::BodyExt;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use tower::ServiceExt;

#[path = "common/mod.rs"]
mod common;

use common::{any_token_gatehouse, tool_call_request};

#[derive(Clone)]
struct Tools {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Tools {
    #[tool(description = "Its database is down")]
    async fn store_down(&self) -> CallToolResult {
        let reported = report_tool_dependency_failure(DependencyFailure::Unavailable {
            retry_after: Duration::from_secs(7),
        });
        CallToolResult::error(vec![ContentBlock::text(format!("reported: {reported}"))])
    }

    #[tool(description = "Its upstream refused it")]
    async fn refused(&self) -> CallToolResult {
        report_tool_dependency_failure(DependencyFailure::Refused);
        CallToolResult::error(vec![ContentBlock::text("refused")])
    }

    #[tool(description = "A tool error of its own")]
    async fn plain_error(&self) -> CallToolResult {
        CallToolResult::error(vec![ContentBlock::text("no such invoice")])
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// The server, its tools answered through rmcp or directly (`mcp::direct`): the reports reach
/// the edge either way.
fn app(direct: DirectTools) -> Router {
    let tools = Tools {
        tool_router: Tools::tool_router(),
    };
    any_token_gatehouse(direct).mount(move || tools.clone())
}

async fn call(app: &Router, tool: &str) -> (u16, Option<String>, String) {
    let resp = app.clone().oneshot(tool_call_request(tool)).await.unwrap();
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, retry_after, String::from_utf8_lossy(&bytes).into())
}

#[tokio::test]
async fn a_tool_that_reports_its_dependency_down_gets_its_request_answered_503() {
    for direct in [DirectTools::Off, DirectTools::All] {
        reports_reach_the_edge(app(direct)).await;
    }
}

async fn reports_reach_the_edge(app: Router) {
    let (status, retry_after, body) = call(&app, "store_down").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry_after.as_deref(), Some("7"));
    // The edge's fixed refusal, not the tool's text.
    assert!(!body.contains("reported"), "{body}");

    let (status, retry_after, body) = call(&app, "refused").await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(retry_after, None);

    let (status, _, body) = call(&app, "plain_error").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("no such invoice"), "{body}");
}

#[test]
fn outside_a_protected_call_nothing_is_reported() {
    assert!(!report_tool_dependency_failure(DependencyFailure::Refused));
}
