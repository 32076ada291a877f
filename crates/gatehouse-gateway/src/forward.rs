//! The forwarding fast path (issue 13): a `tools/call` the library parsed strictly and the
//! policy allowed ([`gatehouse::mcp::forward`]) goes to the upstream as the bytes the client
//! sent, with one change — its `id` is the gateway's own (`"gatehouse-<n>"`), because one
//! upstream connection serves all of a principal's clients and their ids may collide there —
//! and the answer comes back with the client's id put back.
//!
//! On this path the gateway runs neither rmcp's server (for the client) nor rmcp's client (for
//! the upstream): the library's edge, a strict parse, then
//! - **stdio**: one line to the child's stdin, its answer taken off its stdout beside rmcp's
//!   client ([`crate::child`]). A body with a line break in it (pretty-printed JSON) is
//!   declined: a line is one message;
//! - **Streamable HTTP**: a pooled hyper connection — over rustls for an https upstream, its
//!   certificate checked as rmcp's client checks it ([`crate::config::Trust`]). Everything the
//!   request needs from the upstream session — its URL, its `Mcp-Session-Id`, the revision
//!   negotiated with it, the gateway's credential for it — is what rmcp's own client sent with
//!   `notifications/initialized` when the session started ([`crate::recorder`]); a session
//!   whose revision is 2026-07-28 or later (per-request headers) stays on rmcp's path.
//!
//! The HTTP answer:
//! - JSON: read (at most 16 MiB, rmcp's own client limit), its id checked and replaced,
//!   returned as JSON;
//! - SSE: relayed event by event as it comes — notifications as they are, the answer with the
//!   client's id, after which the stream ends; a request from the upstream (sampling,
//!   elicitation, roots) is refused to the upstream as on rmcp's path without sessions
//!   ([`crate::Unbridgeable::NoSessions`]) and never reaches the client;
//! - `401`/`403`: the gateway's credential was refused — `502` to the client, the session
//!   forgotten; `404` on a session: it expired upstream — forgotten, and the call (which the
//!   upstream did not run) takes rmcp's path, which starts a new one;
//! - unreachable, or a `5xx` without a JSON-RPC error: `503` + `Retry-After`.
//!
//! The stdio answer is one line (JSON); a child whose output ends before it (it crashed) is
//! `503` + `Retry-After` at once, the connection forgotten. A request or notification from
//! the child meanwhile goes to rmcp's client, as on rmcp's path without sessions.
//!
//! A client that goes away before the answer: the upstream is told with
//! `notifications/cancelled` naming the gateway's id (B12) — on stdio always, on HTTP when there
//! is a session (otherwise the closed connection is the signal).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use gatehouse::mcp::DependencyFailure;
use gatehouse::mcp::forward::{
    CallRecord, Forward, ForwardCall, Forwarded, UpstreamMessage, parse_answer, parse_message,
    splice,
};
use gatehouse::observe::Outcome;
use gatehouse::upstream::UpstreamAccess;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sse_stream::{Sse, SseStream};

use crate::child::{Answered, ID_PREFIX, StdioLink};
use crate::pool::{Pool, RETRY_SOON};
use crate::recorder::SessionHeaders;
use crate::relay::Unbridgeable;

/// Largest JSON answer read from the upstream: rmcp's client's own limit.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// The fast path to one upstream (see the module docs).
#[derive(Clone)]
pub(crate) struct Forwarder(Arc<Inner>);

/// The forwarding path's HTTP client: plain http (loopback, or allowed by configuration) or
/// TLS, by the upstream URL's scheme.
type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

struct Inner {
    pool: Arc<Pool>,
    /// For a Streamable HTTP upstream; `None` for stdio.
    http: Option<(HttpClient, Uri)>,
    next_id: AtomicU64,
}

impl Forwarder {
    /// The fast path to `pool`'s upstream: a stdio server, or a Streamable HTTP server over
    /// http or https. `None` when no TLS configuration can be built (the platform's verifier
    /// failed to load): rmcp's client then carries every request, and says why if it fails.
    pub(crate) fn new(pool: Arc<Pool>) -> Option<Self> {
        let http = match &pool.upstream().transport {
            crate::config::Transport::Stdio(_) => None,
            crate::config::Transport::Http(t) => {
                let uri: Uri = t.url.parse().ok()?;
                let tls = match t.trust.client_config() {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "no TLS configuration for the forwarding path");
                        return None;
                    }
                };
                let mut connector = HttpConnector::new();
                connector.set_nodelay(true);
                connector.set_connect_timeout(Some(pool.upstream().start_timeout));
                // The scheme decides; https goes through TLS below.
                connector.enforce_http(false);
                let connector = HttpsConnectorBuilder::new()
                    .with_tls_config(tls)
                    .https_or_http()
                    .enable_http1()
                    .wrap_connector(connector);
                let client = Client::builder(TokioExecutor::new())
                    .pool_idle_timeout(Duration::from_secs(90))
                    .build(connector);
                Some((client, uri))
            }
        };
        Some(Self(Arc::new(Inner {
            pool,
            http,
            next_id: AtomicU64::new(1),
        })))
    }
}

impl Forward for Forwarder {
    fn forward(&self, call: ForwardCall) -> BoxFuture<'static, Forwarded> {
        let inner = self.0.clone();
        Box::pin(async move { inner.forward(call).await })
    }
}

impl Inner {
    async fn forward(&self, mut call: ForwardCall) -> Forwarded {
        let caller = call.caller().clone();
        let access = call.parts().extensions.get::<UpstreamAccess>();
        let up = match self.pool.get_with(&caller, None, access).await {
            Ok(up) => up,
            Err(e) => {
                tracing::warn!(error = %e, "no upstream connection");
                return failed(call, e.failure());
            }
        };
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let id = format!("{ID_PREFIX}{n}\"");
        if let Some(child) = &up.stdio {
            return self.forward_stdio(call, &caller, &up, child, n, id).await;
        }
        let (Some((client, uri)), Some(session)) = (&self.http, up.session_headers()) else {
            // Not yet initialized, or at a revision whose headers depend on the message
            // (`crate::recorder`).
            return Forwarded::Declined(Box::new(call));
        };
        let link = Link {
            client: client.clone(),
            uri: uri.clone(),
            session: session.clone(),
        };
        let request = link.post(call.body_with_id(id.as_bytes()));
        // Without a session id the closed connection is the only signal there is.
        let mut cancel = CancelOnDrop {
            link: session.has_id.then(|| link.clone()),
            id: Some(id.clone()),
        };
        let response = match link.client.request(request).await {
            Ok(r) => r,
            Err(e) => {
                cancel.disarm();
                tracing::warn!(error = %e, "upstream unreachable");
                self.pool.discard(&caller, None, &up).await;
                return failed(call, RETRY_SOON);
            }
        };
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            cancel.disarm();
            tracing::warn!(%status, "the upstream refused the gateway's credential");
            self.pool.discard(&caller, None, &up).await;
            return failed(call, DependencyFailure::Refused);
        }
        if status == StatusCode::NOT_FOUND && session.has_id {
            // The session expired upstream; the call did not run there. rmcp's path starts a
            // new session for it.
            cancel.disarm();
            tracing::info!("upstream session expired; starting a new one");
            self.pool.discard(&caller, None, &up).await;
            return Forwarded::Declined(Box::new(call));
        }
        let record = call.take_record();
        let media = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        let client_id = Bytes::copy_from_slice(call.client_id());
        if media == "application/json" {
            let read = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await;
            cancel.disarm();
            let Ok(body) = read.map(|c| c.to_bytes()) else {
                tracing::warn!("the upstream's answer could not be read");
                return answered(record, unexpected(&client_id));
            };
            return match parse_answer(&body) {
                Some(a) if a.id_text == id => {
                    record.finish_with(&a);
                    Forwarded::Answered(json(splice(&body, a.id, &client_id)))
                }
                _ => {
                    tracing::warn!(%status, "the upstream answered with no answer to the call");
                    answered(record, unexpected(&client_id))
                }
            };
        }
        if media == "text/event-stream" && status.is_success() {
            let relay = SseRelay {
                events: SseStream::new(response.into_body()).boxed(),
                id,
                client_id,
                record: Some(record),
                cancel,
                refuse: RefuseRequests {
                    link,
                    // The path runs without sessions only (the library mounts it so).
                    why: match self.pool.upstream().isolation {
                        crate::config::Isolation::Shared => Unbridgeable::Shared,
                        _ => Unbridgeable::NoSessions,
                    },
                },
            };
            let mut response = Response::new(Body::from_stream(relay.into_stream()));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
            response
                .headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            return Forwarded::Answered(response);
        }
        cancel.disarm();
        tracing::warn!(%status, %media, "upstream request failed");
        if status.is_server_error() {
            call.report(RETRY_SOON);
            record.finish(Outcome::Error, "upstream_unavailable");
        } else {
            record.finish(Outcome::Error, "upstream_failed");
        }
        Forwarded::Answered(json(rpc_error(&client_id, "upstream request failed")))
    }
}

impl Inner {
    /// A call to a stdio child: one line in, one line out (see the module docs).
    async fn forward_stdio(
        &self,
        mut call: ForwardCall,
        caller: &gatehouse::Caller,
        up: &Arc<crate::pool::Connection>,
        child: &Arc<StdioLink>,
        n: u64,
        id: String,
    ) -> Forwarded {
        if memchr::memchr2(b'\n', b'\r', call.body()).is_some() {
            // Whitespace only (the strict parse took it), but a line is one message.
            return Forwarded::Declined(Box::new(call));
        }
        let Some(answer) = child.call(n, call.body_with_id(id.as_bytes())) else {
            tracing::warn!("the upstream process has ended");
            self.pool.discard(caller, None, up).await;
            return failed(call, RETRY_SOON);
        };
        let abandoned = Abandoned {
            child: child.clone(),
            n,
            id: Some(id),
        };
        let Ok(Answered { line, answer }) = answer.await else {
            abandoned.disarm();
            tracing::warn!("the upstream process ended before answering");
            self.pool.discard(caller, None, up).await;
            return failed(call, RETRY_SOON);
        };
        abandoned.disarm();
        // The reader routed it by this call's id and parsed it once.
        call.take_record().finish_with(&answer);
        Forwarded::Answered(json(splice(&line, answer.id, call.client_id())))
    }
}

/// The call could not reach the upstream: the edge answers `503`/`502` (the JSON-RPC error is
/// replaced there), the audit says why.
fn failed(mut call: ForwardCall, failure: DependencyFailure) -> Forwarded {
    call.report(failure);
    let reason = match failure {
        DependencyFailure::Unavailable { .. } => "upstream_unavailable",
        DependencyFailure::Refused => "upstream_refused",
    };
    call.take_record().finish(Outcome::Error, reason);
    let client_id = Bytes::copy_from_slice(call.client_id());
    Forwarded::Answered(json(rpc_error(&client_id, "upstream unavailable")))
}

/// `notifications/cancelled` for the gateway's request `id` (its JSON text).
fn cancelled(id: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","method":"notifications/cancelled","params":{{"requestId":{id},"reason":"the client went away"}}}}"#
    )
}

/// A forwarded stdio call whose client went away, when dropped armed: the child is told and
/// its answer, if one comes, is dropped.
struct Abandoned {
    child: Arc<StdioLink>,
    n: u64,
    id: Option<String>,
}

impl Abandoned {
    /// The call is over: nothing to tell.
    fn disarm(mut self) {
        self.id = None;
    }
}

impl Drop for Abandoned {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.child.forget(self.n);
            self.child.notify(Bytes::from(cancelled(&id)));
        }
    }
}

/// The upstream answered something that is no answer to the call.
fn answered(record: CallRecord, body: Bytes) -> Forwarded {
    record.finish(Outcome::Error, "upstream_invalid");
    Forwarded::Answered(json(body))
}

fn unexpected(client_id: &[u8]) -> Bytes {
    rpc_error(client_id, "upstream answered unexpectedly")
}

/// A JSON-RPC internal error for `client_id` (its JSON text), as rmcp's path words it.
fn rpc_error(client_id: &[u8], message: &str) -> Bytes {
    let mut out = Vec::with_capacity(96);
    out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    out.extend_from_slice(client_id);
    out.extend_from_slice(br#","error":{"code":-32603,"message":"#);
    out.extend_from_slice(
        serde_json::to_string(message)
            .expect("a string serializes")
            .as_bytes(),
    );
    out.extend_from_slice(b"}}");
    Bytes::from(out)
}

fn json(body: Bytes) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// The upstream session a forwarded call is sent in.
#[derive(Clone)]
struct Link {
    client: HttpClient,
    uri: Uri,
    session: SessionHeaders,
}

impl Link {
    /// A POST of `body` in the session.
    fn post(&self, body: Bytes) -> Request<Full<Bytes>> {
        let mut request = Request::post(self.uri.clone())
            .body(Full::new(body))
            .expect("valid request");
        *request.headers_mut() = self.session.headers.clone();
        request
    }

    /// Sends `body` (a notification or an answer to the upstream) without waiting for it.
    fn send_detached(&self, body: String, what: &'static str) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let request = self.post(Bytes::from(body));
        let client = self.client.clone();
        rt.spawn(async move {
            if let Err(e) = client.request(request).await {
                tracing::debug!(error = %e, "{what} not delivered upstream");
            }
        });
    }
}

/// Tells a session-holding upstream that a call was abandoned, when dropped armed.
struct CancelOnDrop {
    /// Only on a session with an id.
    link: Option<Link>,
    id: Option<String>,
}

impl CancelOnDrop {
    fn disarm(&mut self) {
        self.id = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let (Some(id), Some(link)) = (self.id.take(), &self.link) {
            link.send_detached(cancelled(&id), "cancellation");
        }
    }
}

/// Answers the upstream's requests on a forwarded call's stream as rmcp's path does without
/// sessions.
struct RefuseRequests {
    link: Link,
    /// Why requests cannot be relayed here, as the connection's relay would say.
    why: Unbridgeable,
}

impl RefuseRequests {
    /// Answers the upstream's request `id`: a ping is answered, sampling and elicitation are
    /// refused with the relay's words, anything else is a method the gateway's client does
    /// not have.
    fn answer(&self, id: &str, method: &str) {
        let refused = |what: &str| {
            let why = self.why;
            tracing::info!(%why, "{what} request from the upstream not relayed");
            let message = serde_json::to_string(&format!(
                "{what} is not available through the gateway: {why}"
            ))
            .expect("a string serializes");
            format!(
                r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-32600,"message":{message}}}}}"#
            )
        };
        let body = match method {
            "ping" => format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{}}}}"#),
            "sampling/createMessage" => refused("sampling"),
            "elicitation/create" => refused("elicitation"),
            _ => format!(
                r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-32601,"message":"Method not found"}}}}"#
            ),
        };
        self.link.send_detached(body, "answer");
    }
}

/// An upstream SSE answer, relayed to the client (see the module docs).
struct SseRelay {
    events: BoxStream<'static, Result<Sse, sse_stream::Error>>,
    id: String,
    client_id: Bytes,
    record: Option<CallRecord>,
    cancel: CancelOnDrop,
    refuse: RefuseRequests,
}

impl SseRelay {
    fn into_stream(self) -> BoxStream<'static, Result<Bytes, std::io::Error>> {
        futures::stream::unfold(Some(self), |state| async move {
            let mut relay = state?;
            loop {
                let event = match relay.events.next().await {
                    Some(Ok(e)) => e,
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "the upstream's stream broke off");
                        return None;
                    }
                    None => {
                        tracing::warn!("the upstream's stream ended before the answer");
                        return None;
                    }
                };
                let Some(data) = event.data.filter(|d| !d.is_empty()) else {
                    // Priming events, comments: nothing for the client.
                    continue;
                };
                match parse_message(data.as_bytes()) {
                    Some(UpstreamMessage::Notification) => {
                        return Some((Ok(sse_event(data.as_bytes())), Some(relay)));
                    }
                    Some(UpstreamMessage::Request { id, method }) => {
                        relay.refuse.answer(&id, &method)
                    }
                    Some(UpstreamMessage::Answer(a)) if a.id_text == relay.id => {
                        relay.cancel.disarm();
                        let body = splice(data.as_bytes(), a.id.clone(), &relay.client_id);
                        if let Some(record) = relay.record.take() {
                            record.finish_with(&a);
                        }
                        // The answer ends the stream.
                        return Some((Ok(sse_event(&body)), None));
                    }
                    _ => tracing::warn!("an event the gateway cannot place was dropped"),
                }
            }
        })
        .boxed()
    }
}

/// One SSE event carrying `data` (a JSON message: no line breaks outside strings, and those
/// inside are escaped; split defensively anyway).
fn sse_event(data: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(b"event: message\n");
    for line in data.split(|b| *b == b'\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
        out.push(b'\n');
    }
    out.push(b'\n');
    Bytes::from(out)
}
