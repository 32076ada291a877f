//! The stateless JSON fast path (issue 18, item 1): the common request dispatched to the
//! `ServerHandler` without rmcp's per-request serve machinery.
//!
//! For every stateless request rmcp 3.11's Streamable HTTP service builds a whole service
//! (`serve_directly_with_ct`): a peer with its channel, a serve loop task, a task for the
//! handler, a task that waits for the loop, cancellation tokens, and a channel back to the HTTP
//! future — about a quarter of a `tools/call`'s CPU (`bench/README.md`). This module answers the
//! requests that need none of it by calling the handler in the HTTP request's own future, and
//! hands **everything else to rmcp unchanged**:
//!
//! - It sits behind the edge ([`crate::Gatehouse::mount`] mounts it only there), which has
//!   already refused, as rmcp would, a `POST` without a JSON `Content-Type`, without both JSON
//!   and SSE in `Accept`, or declaring a body over the limit. Of the rest, only a request whose
//!   headers have the plain shape is read at all: a `Content-Length` (so the body is bounded),
//!   an `Accept` without parameters or quotes (where the edge's reading and rmcp's, which
//!   weighs `q`, agree), one `MCP-Protocol-Version` naming a revision before 2026-07-28 (which
//!   have no per-request metadata and no SEP-2243 standard headers: B13, B17 do not apply, and
//!   B15's default is not relied on), and no other `Mcp-*` header (a session id, routing
//!   headers). For those, every check rmcp makes before dispatch passes by construction, so no
//!   check of rmcp's is re-implemented here: a request that does not have this shape, or whose
//!   body does not parse, is rmcp's to answer or refuse.
//! - Only two methods: `tools/list`, and `tools/call` of a tool the application declared
//!   direct ([`DirectTools`]). Notifications, `initialize`, every other method, and requests
//!   that carry a progress token or a per-request protocol version go to rmcp.
//! - A direct handler gets a [`RequestContext`] like rmcp's: the request's `_meta`, the HTTP
//!   request parts in its extensions (where the [`Caller`](crate::Caller) is), a cancellation
//!   token cancelled when the client goes away (B12; the call still finishes, [`Finishing`]),
//!   and a peer whose info names the revision of
//!   the header, as rmcp reconstructs it. rmcp 3.11 keeps `Peer::new` crate-private, so that
//!   peer belongs to one long-lived idle service per revision. Nothing a handler sends through
//!   it can reach the client (a JSON answer is one message): a notification is dropped and a
//!   server-to-client request fails at once, each with a warning naming the method. That is
//!   why `tools/call` is direct only for tools declared not to use the peer; rmcp would answer
//!   such a tool with an SSE stream (B7: a request is answered with one JSON object or a
//!   stream, the server's choice).
//!
//! `tests/direct_dispatch.rs` holds the equivalence: a generated corpus sent through both paths
//! gets the same status, headers and JSON body.

use std::collections::HashSet;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use rmcp::model::{
    ClientCapabilities, ClientJsonRpcMessage, ClientRequest, Extensions, GetExtensions, GetMeta,
    Implementation, InitializeRequestParams, JsonRpcRequest, ProtocolVersion, RequestMetaObject,
    ServerJsonRpcMessage,
};
use rmcp::service::{
    Peer, RequestContext, RoleServer, RxJsonRpcMessage, TxJsonRpcMessage, serve_directly_with_ct,
};
use rmcp::{ServerHandler, Service as _};
use tokio_util::sync::CancellationToken;
use tower_service::Service;

use crate::http::layer::{MCP_PROTOCOL_VERSION, Shared, single};

/// Which requests [`crate::Gatehouse::mount`] may answer directly
/// ([`crate::GatehouseBuilder::direct_tools`]): `tools/list` and the `tools/call`s of the
/// declared tools, or nothing.
///
/// Declare tools direct only if they never use `context.peer` (`list_tools` included): no progress or logging
/// notifications, no sampling, elicitation or roots requests. On the direct path there is no
/// stream to carry them: a notification is dropped and a request fails, each with a warning.
#[derive(Debug, Clone, Default)]
pub enum DirectTools {
    /// Nothing direct: every request goes through rmcp's service (the default).
    #[default]
    Off,
    /// `tools/list` and every tool of the server.
    All,
    /// `tools/list` and the tools with these names.
    Named(Arc<HashSet<String>>),
}

impl DirectTools {
    /// `tools/list` and the tools with these names.
    pub fn named(names: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self::Named(Arc::new(names.into_iter().map(Into::into).collect()))
    }

    fn calls(&self, tool: &str) -> bool {
        match self {
            Self::Off => false,
            Self::All => true,
            Self::Named(names) => names.contains(tool),
        }
    }
}

/// The revisions a direct request may name: before 2026-07-28 a stateless request carries its
/// revision in the header alone, and rmcp checks nothing else about it.
const DIRECT_REVISIONS: [ProtocolVersion; 3] = [
    ProtocolVersion::V_2025_03_26,
    ProtocolVersion::V_2025_06_18,
    ProtocolVersion::V_2025_11_25,
];

/// [`DIRECT_REVISIONS`] as static text.
pub(crate) const DIRECT_REVISION_NAMES: [&str; 3] = ["2025-03-26", "2025-06-18", "2025-11-25"];

/// rmcp's answer to a request, or a direct one.
type Answer = Response<Body>;

/// The MCP endpoint: direct dispatch in front of rmcp's service `S`, for the server that
/// `make` builds (the same factory rmcp calls per stateless request).
pub(crate) struct DirectDispatch<S, M> {
    rmcp: S,
    make: Arc<M>,
    tools: DirectTools,
    shared: Arc<Shared>,
    peers: Arc<Peers>,
}

impl<S: Clone, M> Clone for DirectDispatch<S, M> {
    fn clone(&self) -> Self {
        Self {
            rmcp: self.rmcp.clone(),
            make: self.make.clone(),
            tools: self.tools.clone(),
            shared: self.shared.clone(),
            peers: self.peers.clone(),
        }
    }
}

impl<S, M, H, B> DirectDispatch<S, M>
where
    S: Service<Request<Body>, Response = Response<B>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
    M: Fn() -> H + Send + Sync + 'static,
    H: ServerHandler,
{
    /// `shutdown` ends the idle services behind the direct peers.
    pub(crate) fn new(
        rmcp: S,
        make: Arc<M>,
        tools: DirectTools,
        shared: Arc<Shared>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            rmcp,
            make,
            tools,
            shared,
            peers: Arc::new(Peers {
                shutdown,
                by_revision: OnceLock::new(),
            }),
        }
    }

    async fn answer(self, req: Request<Body>) -> Answer {
        let Some(revision) = plain_shape(&req) else {
            return self.through_rmcp(req).await;
        };
        let (parts, body) = req.into_parts();
        let bytes = match read_plain_body(body).await {
            Ok(bytes) => bytes,
            Err(body) => return self.through_rmcp(Request::from_parts(parts, body)).await,
        };
        let Ok(ClientJsonRpcMessage::Request(request)) =
            serde_json::from_slice::<ClientJsonRpcMessage>(&bytes)
        else {
            // Malformed, a batch, a notification or a response: rmcp's to refuse or accept.
            return self
                .through_rmcp(Request::from_parts(parts, Body::from(bytes)))
                .await;
        };
        if !self.is_direct(&request.request) {
            return self
                .through_rmcp(Request::from_parts(parts, Body::from(bytes)))
                .await;
        }
        self.shared.direct_answers.fetch_add(1, Ordering::Relaxed);
        self.dispatch(revision, parts, request).await
    }

    fn is_direct(&self, request: &ClientRequest) -> bool {
        let meta = request.get_meta();
        // A per-request revision (2026-07-28 metadata, even a malformed one) is checked
        // against the header by rmcp; a progress token invites notifications.
        if meta
            .0
            .contains_key("io.modelcontextprotocol/protocolVersion")
            || meta.0.contains_key("progressToken")
        {
            return false;
        }
        match request {
            // `mount` builds no `DirectDispatch` for `DirectTools::Off`.
            ClientRequest::ListToolsRequest(_) => true,
            ClientRequest::CallToolRequest(call) => self.tools.calls(&call.params.name),
            _ => false,
        }
    }

    /// Runs the handler in this future, as rmcp's serve loop would in its own task: the same
    /// context, the same answer for `Ok` and `Err`.
    async fn dispatch(
        self,
        revision: usize,
        parts: http::request::Parts,
        request: JsonRpcRequest<ClientRequest>,
    ) -> Answer {
        let JsonRpcRequest {
            id, mut request, ..
        } = request;
        let mut meta = RequestMetaObject::new();
        std::mem::swap(&mut meta, request.get_meta_mut());
        request.extensions_mut().insert(parts);
        let mut extensions = Extensions::new();
        std::mem::swap(&mut extensions, request.extensions_mut());
        let mut context = RequestContext::new(id.clone(), self.peers.peer(revision));
        context.meta = meta;
        context.extensions = extensions;
        let cancel = CancellationToken::new();
        context.ct = cancel.child_token();
        let handler = (self.make)();
        // A panicking handler ends rmcp's handler task and its answer is a `500`; here the
        // panic would take the connection with it.
        let call =
            std::panic::AssertUnwindSafe(
                async move { handler.handle_request(request, context).await },
            )
            .catch_unwind();
        let result = Finishing::new(call, cancel).await;
        let message = match result {
            Ok(Ok(result)) => ServerJsonRpcMessage::response(result, id),
            Ok(Err(error)) => ServerJsonRpcMessage::error(error, Some(id)),
            Err(_) => {
                tracing::error!("an MCP handler panicked");
                return internal_error();
            }
        };
        match serde_json::to_vec(&message) {
            Ok(body) => Response::builder()
                .status(StatusCode::OK)
                .header(CONTENT_TYPE, "application/json")
                .body(Body::from(body))
                .expect("valid response"),
            Err(e) => {
                tracing::error!(error = %e, "an MCP answer could not be serialized");
                internal_error()
            }
        }
    }

    async fn through_rmcp(mut self, req: Request<Body>) -> Answer {
        let Ok(response) = self.rmcp.call(req).await;
        response.map(Body::new)
    }
}

/// Reads the body of a request of the plain shape ([`plain_shape`]): its `Content-Length` is
/// within the limit (the edge refused it otherwise), and hyper ends a body that disagrees with
/// it with an error, so this reads at most `max_body_bytes`. A body that cannot be read comes
/// back as one that fails the same way, for rmcp to answer as it answers such a body.
pub(crate) async fn read_plain_body(body: Body) -> Result<Bytes, Body> {
    match body.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) => {
            let error = std::io::Error::other(e.to_string());
            Err(Body::new(http_body_util::StreamBody::new(
                futures::stream::once(async move { Err::<http_body::Frame<Bytes>, _>(error) }),
            )))
        }
    }
}

/// A handler call that finishes even when the client goes away.
///
/// rmcp runs a handler in a task of its own: when the client disconnects, the handler's
/// cancellation token fires (rust-sdk #857) and the handler runs on until it returns — a tool
/// that ignores the token still completes, and [`crate::mcp::Protected`] still writes its audit
/// record. Here the handler runs in the request's future, which hyper drops when the client
/// disconnects; dropping the handler there would end a call half-way, without its audit record.
/// So a call dropped before it finished is cancelled the same way and handed to a task to
/// finish, its answer discarded as rmcp discards it.
struct Finishing<F: Future + Send + 'static> {
    call: Option<Pin<Box<F>>>,
    cancel: CancellationToken,
}

impl<F: Future + Send + 'static> Finishing<F> {
    fn new(call: F, cancel: CancellationToken) -> Self {
        Self {
            call: Some(Box::pin(call)),
            cancel,
        }
    }
}

impl<F: Future + Send + 'static> Future for Finishing<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let call = self.call.as_mut().expect("polled after completion");
        let output = std::task::ready!(call.as_mut().poll(cx));
        self.call = None;
        Poll::Ready(output)
    }
}

impl<F: Future + Send + 'static> Drop for Finishing<F> {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            self.cancel.cancel();
            tokio::spawn(async move {
                let _ = call.await;
            });
        }
    }
}

/// What rmcp answers when its handler task fails (the edge renders it as JSON).
fn internal_error() -> Answer {
    Response::builder()
        .status(StatusCode::INTERNAL_SERVER_ERROR)
        .body(Body::empty())
        .expect("valid response")
}

impl<S, M, H, B> Service<Request<Body>> for DirectDispatch<S, M>
where
    S: Service<Request<Body>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
    M: Fn() -> H + Send + Sync + 'static,
    H: ServerHandler,
{
    type Response = Answer;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Answer, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // rmcp's service is always ready; it is called through a clone in `answer`.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.answer(req).await) })
    }
}

/// The index into [`DIRECT_REVISIONS`] of the request's revision when its headers have the
/// plain shape described in the module docs; `None` sends it to rmcp.
pub(crate) fn plain_shape<B>(req: &Request<B>) -> Option<usize> {
    let headers = req.headers();
    if req.method() != Method::POST || single(headers, &CONTENT_LENGTH).is_none() {
        return None;
    }
    if !plain_accept(headers) {
        return None;
    }
    // A session id (ignored in stateless mode) or a SEP-2243 routing header: rmcp decides.
    if headers
        .keys()
        .any(|name| name.as_str().starts_with("mcp-") && *name != MCP_PROTOCOL_VERSION)
    {
        return None;
    }
    let version = single(headers, &MCP_PROTOCOL_VERSION)?;
    DIRECT_REVISIONS.iter().position(|v| v.as_str() == version)
}

/// Every `Accept` value is text without parameters (so no weights) or quoted strings: the form
/// in which the edge's reading (which found both JSON and SSE) and rmcp's agree.
fn plain_accept(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .all(|value| value.to_str().is_ok_and(|v| !v.contains([';', '"'])))
}

/// One peer per direct revision, each owned by an idle service that lives until shutdown.
struct Peers {
    shutdown: CancellationToken,
    by_revision: OnceLock<Vec<Peer<RoleServer>>>,
}

impl Peers {
    /// The peer for `DIRECT_REVISIONS[revision]`, its info as rmcp reconstructs it for a
    /// stateless request (the header's revision, default client info and capabilities). The
    /// services start on first use, inside the runtime.
    fn peer(&self, revision: usize) -> Peer<RoleServer> {
        self.by_revision.get_or_init(|| {
            DIRECT_REVISIONS
                .iter()
                .map(|version| {
                    let info = InitializeRequestParams::new(
                        ClientCapabilities::default(),
                        Implementation::default(),
                    )
                    .with_protocol_version(version.clone());
                    let service = serve_directly_with_ct(
                        Idle,
                        NoStream,
                        Some(info),
                        self.shutdown.child_token(),
                    );
                    let peer = service.peer().clone();
                    // The serve loop ends with `shutdown`; the service handle is not needed.
                    tokio::spawn(async move {
                        let _ = service.waiting().await;
                    });
                    peer
                })
                .collect()
        })[revision]
            .clone()
    }
}

/// The handler of the idle services: they receive nothing (rmcp's server role does nothing with
/// a handler's info when it serves directly), so the application's handler is not built for
/// them — a gateway's may start processes.
struct Idle;

impl ServerHandler for Idle {}

/// The transport of the idle services behind direct peers: nothing arrives, and nothing a
/// handler sends can be delivered.
struct NoStream;

/// Why a message sent through a direct peer failed.
#[derive(Debug, thiserror::Error)]
#[error("a direct (stateless JSON) answer cannot carry server-to-client messages")]
struct NoStreamError;

impl rmcp::transport::Transport<RoleServer> for NoStream {
    type Error = NoStreamError;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), NoStreamError>> + Send + 'static {
        let method = match &item {
            ServerJsonRpcMessage::Notification(n) => serde_json::to_value(&n.notification)
                .ok()
                .and_then(|v| v.get("method").and_then(|m| m.as_str()).map(str::to_owned)),
            ServerJsonRpcMessage::Request(r) => serde_json::to_value(&r.request)
                .ok()
                .and_then(|v| v.get("method").and_then(|m| m.as_str()).map(str::to_owned)),
            _ => None,
        };
        tracing::warn!(
            method = method.as_deref().unwrap_or("?"),
            "a tool declared direct sent a message to the client; direct answers cannot carry \
             it (take the tool out of direct_tools)"
        );
        std::future::ready(Err(NoStreamError))
    }

    fn receive(&mut self) -> impl Future<Output = Option<RxJsonRpcMessage<RoleServer>>> + Send {
        std::future::pending()
    }

    async fn close(&mut self) -> Result<(), NoStreamError> {
        Ok(())
    }
}
