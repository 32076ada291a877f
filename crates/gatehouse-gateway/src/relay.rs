//! What an upstream sends on its own initiative goes back to the downstream request or session
//! it belongs to — never to another principal's:
//!
//! - **progress**: rmcp puts a fresh progress token on every request the gateway forwards; the
//!   relay maps it to the client's own token and the client's session, so progress reaches the
//!   request that asked for it (on its SSE stream) and no other;
//! - **server-to-client requests** (sampling, elicitation) and **log messages** carry no link to
//!   the request that caused them on stdio, so they go to the most recent request in flight on
//!   the same connection. A connection serves one principal (or one session), so the choice is
//!   only ever between that user's own requests. On a `shared` connection nothing is guessed:
//!   requests are refused and log messages dropped;
//! - **resource updates** go to the sessions that subscribed to that resource.
//!
//! What cannot be bridged is refused with an explicit JSON-RPC error to the upstream (the
//! reasons are in [`Unbridgeable`]); nothing hangs.
//!
//! Order: rmcp hands each notification to its own task, so two progress notifications (or a
//! progress notification and the response after it) could overtake each other. The relay reads
//! them off the transport instead ([`Relay::tap`]), in the order the upstream sent them, and
//! forwards them from one task per connection; a response is returned to the client only once
//! everything the upstream sent before it has been forwarded.
//!
//! A request the downstream client abandons (cancellation, disconnect) is cancelled upstream
//! with `notifications/cancelled` naming the upstream's request id.

#![allow(
    deprecated,
    reason = "the gateway bridges sampling, logging and resource subscriptions, which rmcp marks \
              deprecated (SEP-2577) but which the 2025-06-18 and 2025-11-25 revisions it serves have"
)]
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use rmcp::ErrorData;
use rmcp::model::{
    CancelledNotificationParam, ClientCapabilities, ClientRequest, ClientResult,
    CreateMessageRequest, CreateMessageRequestParams, CreateMessageResult, ElicitRequest,
    ElicitRequestParams, ElicitResult, ErrorCode, GetExtensions, LoggingMessageNotificationParam,
    ProgressNotificationParam, ProgressToken, ProtocolVersion, RequestId,
    ResourceUpdatedNotificationParam, ServerNotification, ServerRequest, ServerResult,
};
use rmcp::service::RxJsonRpcMessage;
use rmcp::service::{
    OriginatingRequestId, Peer, PeerRequestOptions, RequestContext, RoleClient, RoleServer,
    ServiceError,
};
use rmcp::transport::Transport;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// The downstream request a forwarded request serves.
#[derive(Clone)]
pub(crate) struct Downstream {
    peer: Peer<RoleServer>,
    request_id: RequestId,
    progress: Option<ProgressToken>,
    capabilities: Option<ClientCapabilities>,
    protocol: Option<ProtocolVersion>,
    cancelled: CancellationToken,
}

impl Downstream {
    /// The request `context` serves. What the client declared and its revision are read only
    /// where the relay may ask it something (`asks`): on the default stateless path they would
    /// be copied on every call for nothing.
    pub(crate) fn of(context: &RequestContext<RoleServer>, asks: bool) -> Self {
        Self {
            peer: context.peer.clone(),
            request_id: context.id.clone(),
            progress: context.meta.get_progress_token(),
            capabilities: asks.then(|| context.client_capabilities()).flatten(),
            protocol: asks.then(|| context.protocol_version()).flatten(),
            cancelled: context.ct.clone(),
        }
    }
}

/// Why a server-to-client request was not relayed (the message the upstream gets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unbridgeable {
    /// The gateway serves without sessions: a JSON response has no stream to carry a request.
    #[error("the gateway serves without sessions (server.stateful_sessions = false)")]
    NoSessions,
    /// The connection is shared by several principals: whose client to ask is unknowable.
    #[error("the upstream is shared by several principals")]
    Shared,
    /// No downstream request is in flight on this connection.
    #[error("no client request is in progress")]
    NoRequest,
    /// The downstream client did not declare the capability.
    #[error("the client did not declare this capability")]
    NotDeclared,
    /// A 2026-07-28 client: server-to-client requests became input-required results, which
    /// the gateway does not translate.
    #[error("the client speaks protocol 2026-07-28, which has no server-to-client requests")]
    StatelessProtocol,
}

/// Per upstream connection: the downstream requests in flight on it and the subscriptions.
pub(crate) struct Relay {
    /// Whether server-to-client requests and log messages may be relayed: the connection is
    /// one principal's (or one session's) and downstream has sessions to carry them.
    requests: Result<(), Unbridgeable>,
    state: Mutex<State>,
    /// Held for writing while a request is sent and its progress token registered, for reading
    /// while a progress notification is looked up: progress the upstream sends at once is never
    /// looked up before its token is known.
    gate: tokio::sync::RwLock<()>,
    /// To the forwarding task: what [`Tap`] read, in order, and barriers.
    queue: mpsc::Sender<Relayed>,
    /// Its receiving end, until [`Relay::tap`] starts the task.
    receiver: Mutex<Option<mpsc::Receiver<Relayed>>>,
    /// Notifications read but not yet forwarded: a response waits for them only if there are.
    pending: AtomicU64,
}

/// What the forwarding task handles, in order.
enum Relayed {
    Progress(ProgressNotificationParam),
    Log(LoggingMessageNotificationParam),
    /// Everything before it has been forwarded.
    Barrier(oneshot::Sender<()>),
}

/// Notifications read off the transport and not yet forwarded, at most: past it, reading from
/// the upstream waits (back-pressure, not memory).
const QUEUE: usize = 1024;

#[derive(Default)]
struct State {
    next: u64,
    /// In arrival order (the key increases): the last is the most recent.
    inflight: BTreeMap<u64, Downstream>,
    /// Upstream progress token → (in-flight key, the client's token).
    progress: HashMap<ProgressToken, (u64, ProgressToken)>,
    /// Resource URI → (downstream session id → its peer).
    subscriptions: HashMap<String, HashMap<String, Peer<RoleServer>>>,
    /// The downstream peer of the most recent request sent on this connection: where a log
    /// message goes when it arrives with no request in flight (after its answer, on another
    /// stream of an HTTP upstream). Only kept on a connection that relays (one owner).
    last: Option<Peer<RoleServer>>,
}

impl Relay {
    /// A relay for one connection; `requests` says whether server-to-client requests (and log
    /// messages) can be relayed on it.
    pub(crate) fn new(requests: Result<(), Unbridgeable>) -> Self {
        let (queue, receiver) = mpsc::channel(QUEUE);
        Self {
            requests,
            state: Mutex::default(),
            gate: tokio::sync::RwLock::new(()),
            queue,
            receiver: Mutex::new(Some(receiver)),
            pending: AtomicU64::new(0),
        }
    }

    /// Wraps the connection's transport so that progress and log messages are read off it in
    /// order, and starts the task that forwards them. The task holds the relay weakly and ends
    /// when the transport and the relay are gone.
    pub(crate) fn tap<T>(self: &Arc<Self>, inner: T) -> Tap<T> {
        let receiver = self
            .receiver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(mut rx) = receiver {
            let relay = Arc::downgrade(self);
            tokio::spawn(async move {
                while let Some(item) = rx.recv().await {
                    forward(&relay, item).await;
                }
            });
        }
        Tap {
            inner,
            relay: self.clone(),
        }
    }

    /// Waits until everything read off the transport so far has been forwarded.
    async fn flush(&self) {
        if self.pending.load(Ordering::Acquire) == 0 {
            return;
        }
        let (tx, rx) = oneshot::channel();
        if self.queue.send(Relayed::Barrier(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Whether the gateway tells the upstream it can sample and elicit.
    pub(crate) fn relays_requests(&self) -> bool {
        self.requests.is_ok()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves maps that are still consistent (every update
        // is one insert or remove).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends `request` upstream on behalf of `downstream` and waits for the answer. Dropping
    /// the future (the client cancelled or went away) cancels the request upstream.
    pub(crate) async fn call(
        self: &Arc<Self>,
        upstream: &Peer<RoleClient>,
        request: ClientRequest,
        downstream: Downstream,
    ) -> Result<ServerResult, ServiceError> {
        let (handle, key) = {
            let _gate = self.gate.write().await;
            let handle = upstream
                .send_request_with_option(request, PeerRequestOptions::no_options())
                .await?;
            let mut s = self.state();
            let key = s.next;
            s.next += 1;
            if let Some(theirs) = downstream.progress.clone() {
                s.progress
                    .insert(handle.progress_token.clone(), (key, theirs));
            }
            if self.requests.is_ok() {
                s.last = Some(downstream.peer.clone());
            }
            s.inflight.insert(key, downstream);
            (handle, key)
        };
        let mut guard = InFlight {
            relay: self.clone(),
            key,
            token: handle.progress_token.clone(),
            upstream: Some((upstream.clone(), handle.id.clone())),
        };
        let result = handle.await_response().await;
        guard.upstream = None;
        // Progress and log messages the upstream sent before its answer reach the client first.
        self.flush().await;
        result
    }

    /// Progress from the upstream, to the request it belongs to (with the client's token).
    async fn progress(&self, mut params: ProgressNotificationParam) {
        let target = {
            let _gate = self.gate.read().await;
            let s = self.state();
            s.progress
                .get(&params.progress_token)
                .and_then(|(key, theirs)| {
                    s.inflight
                        .get(key)
                        .map(|d| (d.peer.clone(), theirs.clone()))
                })
        };
        let Some((peer, theirs)) = target else {
            tracing::debug!("progress for no request in flight, dropped");
            return;
        };
        params.progress_token = theirs;
        if let Err(e) = peer.notify_progress(params).await {
            tracing::debug!(error = %e, "progress not delivered");
        }
    }

    /// A log message, to the session of the most recent request in flight, or of the most
    /// recent request when none is (one principal's connection only). A log message belongs
    /// to the session, not to a request: an HTTP upstream may send it on its standalone stream,
    /// where it can arrive after the answer of the call that caused it.
    async fn logging(&self, params: LoggingMessageNotificationParam) {
        if self.requests.is_err() {
            tracing::debug!("log message on a connection without a single owner, dropped");
            return;
        }
        let peer = match self.latest(|_| true) {
            Some(d) => Some(d.peer),
            None => self
                .state()
                .last
                .clone()
                .filter(|p| !p.is_transport_closed()),
        };
        let Some(peer) = peer else {
            tracing::debug!("log message with no session to take it, dropped");
            return;
        };
        if let Err(e) = peer.notify_logging_message(params).await {
            tracing::debug!(error = %e, "log message not delivered");
        }
    }

    /// A resource changed: tell every session that subscribed to it.
    pub(crate) async fn resource_updated(&self, params: ResourceUpdatedNotificationParam) {
        let peers: Vec<Peer<RoleServer>> = {
            let mut s = self.state();
            let Some(sessions) = s.subscriptions.get_mut(&params.uri) else {
                return;
            };
            sessions.retain(|_, p| !p.is_transport_closed());
            sessions.values().cloned().collect()
        };
        for peer in peers {
            if let Err(e) = peer.notify_resource_updated(params.clone()).await {
                tracing::debug!(error = %e, "resource update not delivered");
            }
        }
    }

    /// Records that `session` subscribed to `uri`.
    pub(crate) fn subscribe(&self, uri: &str, session: String, peer: Peer<RoleServer>) {
        self.state()
            .subscriptions
            .entry(uri.to_owned())
            .or_default()
            .insert(session, peer);
    }

    /// Records that `session` unsubscribed from `uri`; true when no session of this
    /// connection still wants it (the upstream subscription can go).
    pub(crate) fn unsubscribe(&self, uri: &str, session: &str) -> bool {
        let mut s = self.state();
        let Some(sessions) = s.subscriptions.get_mut(uri) else {
            return true;
        };
        sessions.remove(session);
        let last = sessions.is_empty();
        if last {
            s.subscriptions.remove(uri);
        }
        last
    }

    /// The most recent request in flight whose client `accepts`.
    fn latest(&self, accepts: impl Fn(&Downstream) -> bool) -> Option<Downstream> {
        self.state()
            .inflight
            .values()
            .rev()
            .find(|d| accepts(d))
            .cloned()
    }

    /// The downstream request to ask, or why there is none.
    fn asker(
        &self,
        declared: impl Fn(&ClientCapabilities) -> bool,
    ) -> Result<Downstream, Unbridgeable> {
        self.requests?;
        let latest = self.latest(|_| true).ok_or(Unbridgeable::NoRequest)?;
        if latest.protocol.as_ref() == Some(&ProtocolVersion::V_2026_07_28) {
            return Err(Unbridgeable::StatelessProtocol);
        }
        self.latest(|d| d.capabilities.as_ref().is_some_and(&declared))
            .ok_or(Unbridgeable::NotDeclared)
    }

    /// Sends a server-to-client request to the downstream client, on the stream of the request
    /// that is waiting for it; gives up when that request ends.
    async fn ask(
        &self,
        d: Downstream,
        mut request: ServerRequest,
    ) -> Result<ClientResult, ErrorData> {
        request
            .extensions_mut()
            .insert(OriginatingRequestId(d.request_id.clone()));
        tokio::select! {
            r = d.peer.send_request(request) => match r {
                Ok(r) => Ok(r),
                Err(ServiceError::McpError(e)) => Err(e),
                Err(e) => {
                    tracing::debug!(error = %e, "the client did not answer");
                    Err(ErrorData::internal_error("the client did not answer", None))
                }
            },
            () = d.cancelled.cancelled() => {
                Err(ErrorData::internal_error("the client request ended", None))
            }
        }
    }

    /// `sampling/createMessage` from the upstream.
    pub(crate) async fn create_message(
        &self,
        params: CreateMessageRequestParams,
    ) -> Result<CreateMessageResult, ErrorData> {
        let d = self
            .asker(|c| c.sampling.is_some())
            .map_err(|why| refused("sampling", why))?;
        match self
            .ask(
                d,
                ServerRequest::CreateMessageRequest(CreateMessageRequest::new(params)),
            )
            .await?
        {
            ClientResult::CreateMessageResult(r) => Ok(*r),
            _ => Err(ErrorData::internal_error(
                "the client answered unexpectedly",
                None,
            )),
        }
    }

    /// `elicitation/create` from the upstream.
    pub(crate) async fn create_elicitation(
        &self,
        params: ElicitRequestParams,
    ) -> Result<ElicitResult, ErrorData> {
        let d = self
            .asker(|c| c.elicitation.is_some())
            .map_err(|why| refused("elicitation", why))?;
        match self
            .ask(d, ServerRequest::ElicitRequest(ElicitRequest::new(params)))
            .await?
        {
            ClientResult::ElicitResult(r) => Ok(r),
            _ => Err(ErrorData::internal_error(
                "the client answered unexpectedly",
                None,
            )),
        }
    }
}

async fn forward(relay: &Weak<Relay>, item: Relayed) {
    let Some(relay) = relay.upgrade() else {
        return;
    };
    match item {
        Relayed::Progress(p) => relay.progress(p).await,
        Relayed::Log(l) => relay.logging(l).await,
        Relayed::Barrier(done) => {
            let _ = done.send(());
            return;
        }
    }
    relay.pending.fetch_sub(1, Ordering::AcqRel);
}

/// A transport that hands progress and log messages to its relay as it reads them (they still
/// go on to rmcp, whose handlers for them do nothing in the gateway).
pub(crate) struct Tap<T> {
    inner: T,
    relay: Arc<Relay>,
}

impl<T: Transport<RoleClient>> Transport<RoleClient> for Tap<T> {
    type Error = T::Error;

    fn send(
        &mut self,
        item: rmcp::service::TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.inner.send(item)
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleClient>> {
        let message = self.inner.receive().await?;
        if let rmcp::model::JsonRpcMessage::Notification(n) = &message {
            let item = match &n.notification {
                ServerNotification::ProgressNotification(p) => {
                    Some(Relayed::Progress(p.params.clone()))
                }
                ServerNotification::LoggingMessageNotification(l) => {
                    Some(Relayed::Log(l.params.clone()))
                }
                _ => None,
            };
            if let Some(item) = item {
                self.relay.pending.fetch_add(1, Ordering::AcqRel);
                if self.relay.queue.send(item).await.is_err() {
                    self.relay.pending.fetch_sub(1, Ordering::AcqRel);
                }
            }
        }
        Some(message)
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.inner.close()
    }
}

fn refused(what: &str, why: Unbridgeable) -> ErrorData {
    tracing::info!(%why, "{what} request from the upstream not relayed");
    ErrorData::new(
        ErrorCode::INVALID_REQUEST,
        format!("{what} is not available through the gateway: {why}"),
        None,
    )
}

/// A forwarded request: forgotten when it ends; cancelled upstream if it ends unanswered.
struct InFlight {
    relay: Arc<Relay>,
    key: u64,
    token: ProgressToken,
    upstream: Option<(Peer<RoleClient>, RequestId)>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        {
            let mut s = self.relay.state();
            s.inflight.remove(&self.key);
            s.progress.remove(&self.token);
        }
        if let (Some((peer, id)), Ok(rt)) =
            (self.upstream.take(), tokio::runtime::Handle::try_current())
        {
            rt.spawn(async move {
                let p = CancelledNotificationParam::new(
                    Some(id),
                    Some("the client cancelled the request".into()),
                );
                let _ = peer.notify_cancelled(p).await;
            });
        }
    }
}
