//! Invariant: what an upstream sends on its own goes back to the request or session it belongs
//! to and to no one else — progress with the client's own token, in order, before the answer;
//! a sampling request to the client whose call caused it (never to another user's client); and
//! what cannot be bridged (no sessions, a shared upstream, a client that did not declare the
//! capability) is refused to the upstream with an explicit error instead of hanging.
//!
//! Real pieces: the gateway served over TCP on 127.0.0.1 with the library's edge, the stdio
//! fixture server as upstream, and the official Rust SDK's client (rmcp over Streamable HTTP) as
//! the downstream client.

#![allow(
    deprecated,
    reason = "sampling and logging are what these tests exercise; rmcp marks them deprecated \
              (SEP-2577) but the 2025-11-25 revision has them"
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gatehouse::policy::UnnamedTools;
use gatehouse::{Gatehouse, ResourceUrl};
use gatehouse_gateway::{GatewayHandler, Isolation, StdioCommand, UpstreamServer};
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, ClientCapabilities, ClientConfig, ClientRequest,
    CreateMessageRequestParams, CreateMessageResult, Implementation,
    LoggingMessageNotificationParam, ProgressNotificationParam, ProgressToken, SamplingMessage,
    ServerResult,
};
use rmcp::service::{
    NotificationContext, PeerRequestOptions, RequestContext, RoleClient, RunningService,
};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, ErrorData, ServiceExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

mod common;

struct Served {
    url: String,
    stop: CancellationToken,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The gateway in front of the stdio fixture on 127.0.0.1, every tool allowed.
async fn serve(isolation: Isolation, sessions: bool) -> Served {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let url = format!("http://{addr}/mcp");
    let mut upstream = UpstreamServer::stdio(StdioCommand::new(
        env!("CARGO_BIN_EXE_gatehouse-stdio-fixture"),
        Vec::<String>::new(),
    ));
    upstream.isolation = isolation;
    upstream.sessions = sessions;
    let handler = GatewayHandler::start(upstream)
        .await
        .expect("upstream starts");
    let mut builder = Gatehouse::builder(ResourceUrl::parse(&url).unwrap())
        .authorization_servers(["https://auth.example.com"])
        .verifier(Arc::new(common::Users::new(
            url.clone(),
            &[("alice", "alice", "mcp"), ("bob", "bob", "mcp")],
        )))
        .route_scopes(["mcp"])
        .unnamed_tools(UnnamedTools::Allow)
        .listen_addr(addr);
    if sessions {
        builder = builder.stateful_sessions(gatehouse::http::SessionBindingConfig::default());
    }
    let gatehouse = builder.build().unwrap();
    let app = gatehouse.mount(move || handler.for_session());
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(gatehouse::serve(listener, app, async move {
        s.cancelled().await
    }));
    Served { url, stop }
}

/// The downstream client: declares sampling or not, answers sampling with a fixed text, and
/// records the progress and log messages it receives.
#[derive(Clone)]
struct Client {
    sampling: bool,
    answer: &'static str,
    asked: Arc<Mutex<u32>>,
    progress: Arc<Mutex<Vec<(ProgressToken, f64)>>>,
    logs: mpsc::UnboundedSender<Value>,
}

impl ClientHandler for Client {
    fn get_info(&self) -> ClientConfig {
        let mut caps = ClientCapabilities::default();
        if self.sampling {
            caps.sampling = Some(Default::default());
        }
        ClientConfig::new(caps, Implementation::new("relay-test", "1"))
    }

    async fn create_message(
        &self,
        _params: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        *self.asked.lock().unwrap() += 1;
        Ok(CreateMessageResult::new(
            SamplingMessage::assistant_text(self.answer),
            "test-model".into(),
        ))
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.progress
            .lock()
            .unwrap()
            .push((params.progress_token, params.progress));
    }

    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let _ = self.logs.send(params.data);
    }
}

struct Connected {
    service: RunningService<RoleClient, Client>,
    client: Client,
    logs: mpsc::UnboundedReceiver<Value>,
}

async fn connect(url: &str, token: &str, sampling: bool, answer: &'static str) -> Connected {
    let (tx, logs) = mpsc::unbounded_channel();
    let client = Client {
        sampling,
        answer,
        asked: Arc::default(),
        progress: Arc::default(),
        logs: tx,
    };
    let transport = StreamableHttpClientTransport::with_client(
        reqwest::Client::new(),
        StreamableHttpClientTransportConfig::with_uri(url).auth_header(token),
    );
    let service = client.clone().serve(transport).await.expect("connects");
    Connected {
        service,
        client,
        logs,
    }
}

impl Connected {
    /// The next log message this session receives; they ride its standalone stream, so wait
    /// for it, bounded.
    async fn next_log(&mut self) -> Value {
        tokio::time::timeout(Duration::from_secs(10), self.logs.recv())
            .await
            .expect("a log message arrives")
            .expect("the session is open")
    }
}

/// Calls `tool` and returns (the progress token the client sent, the text of the answer).
async fn call(c: &Connected, tool: &str, args: Value) -> (ProgressToken, String) {
    let mut params = CallToolRequestParams::new(tool.to_owned());
    if let Value::Object(map) = args {
        params = params.with_arguments(map);
    }
    let handle = c
        .service
        .peer()
        .send_request_with_option(
            ClientRequest::CallToolRequest(CallToolRequest::new(params)),
            PeerRequestOptions::no_options(),
        )
        .await
        .expect("sent");
    let token = handle.progress_token.clone();
    let result = handle.await_response().await.expect("answered");
    let ServerResult::CallToolResult(r) = result else {
        panic!("not a tool result: {result:?}");
    };
    let text = r.content[0]
        .as_text()
        .map(|t| t.text.clone())
        .unwrap_or_default();
    (token, text)
}

/// Calls the fixture's `sample` tool: what the upstream declared and got, as JSON.
async fn sample(c: &Connected) -> Value {
    let (_, text) = call(c, "sample", json!({})).await;
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn progress_reaches_the_request_that_asked_with_its_token_in_order_before_the_answer() {
    let gw = serve(Isolation::PerPrincipal, true).await;
    let alice = connect(&gw.url, "alice", false, "").await;
    for round in 0..3 {
        let (token, text) = call(&alice, "progress", json!({ "steps": 20 })).await;
        assert_eq!(text, "done");
        let got: Vec<(ProgressToken, f64)> =
            std::mem::take(&mut *alice.client.progress.lock().unwrap());
        let expected: Vec<(ProgressToken, f64)> =
            (1..=20).map(|n| (token.clone(), f64::from(n))).collect();
        assert_eq!(
            got, expected,
            "round {round}: every step, the client's own token, in order, before the answer"
        );
    }
}

#[tokio::test]
async fn sampling_goes_to_the_client_whose_call_asked_and_its_answer_back() {
    let gw = serve(Isolation::PerPrincipal, true).await;
    let alice = connect(&gw.url, "alice", true, "pong from alice's client").await;
    let v = sample(&alice).await;
    assert_eq!(
        v["declared"], true,
        "the gateway declares sampling upstream"
    );
    assert_eq!(
        v["outcome"]["result"]["content"]["text"], "pong from alice's client",
        "{v}"
    );
    assert_eq!(*alice.client.asked.lock().unwrap(), 1);
}

#[tokio::test]
async fn sampling_never_reaches_another_users_client() {
    let gw = serve(Isolation::PerPrincipal, true).await;
    // Bob's client can sample and has a call in flight while Alice's call asks to sample.
    let bob = connect(&gw.url, "bob", true, "bob's answer").await;
    let bob_peer = bob.service.peer().clone();
    let waiting = tokio::spawn(async move {
        let params = CallToolRequestParams::new("wait");
        bob_peer
            .send_request_with_option(
                ClientRequest::CallToolRequest(CallToolRequest::new(params)),
                PeerRequestOptions::no_options(),
            )
            .await
    });
    let alice = connect(&gw.url, "alice", false, "").await;
    let v = sample(&alice).await;
    let message = v["outcome"]["error"]["message"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(
        message,
        "sampling is not available through the gateway: the client did not declare this capability",
        "{v}"
    );
    assert_eq!(*bob.client.asked.lock().unwrap(), 0, "bob was never asked");
    waiting.abort();
}

#[tokio::test]
async fn without_sessions_sampling_is_neither_declared_nor_relayed() {
    let gw = serve(Isolation::PerPrincipal, false).await;
    let alice = connect(&gw.url, "alice", true, "unused").await;
    let v = sample(&alice).await;
    assert_eq!(v["declared"], false, "{v}");
    assert_eq!(
        v["outcome"]["error"]["message"],
        "sampling is not available through the gateway: the gateway serves without sessions \
         (server.stateful_sessions = false)"
    );
    assert_eq!(*alice.client.asked.lock().unwrap(), 0);
}

#[tokio::test]
async fn a_shared_upstream_relays_no_requests() {
    let gw = serve(Isolation::Shared, true).await;
    let alice = connect(&gw.url, "alice", true, "unused").await;
    let v = sample(&alice).await;
    assert_eq!(v["declared"], false, "{v}");
    assert_eq!(
        v["outcome"]["error"]["message"],
        "sampling is not available through the gateway: the upstream is shared by several \
         principals"
    );
    assert_eq!(*alice.client.asked.lock().unwrap(), 0);
}

#[tokio::test]
async fn a_log_message_reaches_the_calling_session() {
    let gw = serve(Isolation::PerPrincipal, true).await;
    let mut alice = connect(&gw.url, "alice", false, "").await;
    let (_, text) = call(&alice, "log", json!({})).await;
    assert_eq!(text, "logged");
    assert_eq!(alice.next_log().await, json!("from the fixture"));
}

// A log message is the session's, not a request's: one that arrives after the answer (an HTTP
// upstream sends it on another stream; this fixture sends it late on purpose) still reaches the
// session of the principal whose connection it came on — never dropped, never someone else's.
#[tokio::test]
async fn a_log_message_after_the_answer_still_reaches_the_session() {
    let gw = serve(Isolation::PerPrincipal, true).await;
    let mut alice = connect(&gw.url, "alice", false, "").await;
    let mut bob = connect(&gw.url, "bob", false, "").await;
    let (_, text) = call(&bob, "log", json!({})).await;
    assert_eq!(text, "logged");
    let (_, text) = call(&alice, "log_after", json!({})).await;
    assert_eq!(text, "answered");
    assert_eq!(alice.next_log().await, json!("after the answer"));
    // Bob got his own message and nothing of Alice's.
    assert_eq!(bob.next_log().await, json!("from the fixture"));
    assert!(
        bob.logs.try_recv().is_err(),
        "bob received alice's log message"
    );
}
