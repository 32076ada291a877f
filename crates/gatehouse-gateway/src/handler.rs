//! [`GatewayHandler`]: an rmcp `ServerHandler` whose methods forward to the upstream process
//! that serves the caller. The library's wrapper around it ([`gatehouse::mcp::Protected`], put
//! there by `Gatehouse::mount`) has already applied the policy: hidden tools are answered as
//! missing and left out of `tools/list`, tool scopes are checked again, every call is observed.

#![allow(
    deprecated,
    reason = "the gateway bridges sampling, logging and resource subscriptions, which rmcp marks \
              deprecated (SEP-2577) but which the 2025-06-18 and 2025-11-25 revisions it serves have"
)]
use std::sync::Arc;

use gatehouse::Caller;
use gatehouse::mcp::{DependencyFailure, caller_from_extensions, report_dependency_failure};
use gatehouse::upstream::UpstreamAccess;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResponse, ClientRequest, CompleteRequest,
    CompleteRequestParams, CompleteResult, GetPromptRequest, GetPromptRequestParams,
    GetPromptResponse, Implementation, ListPromptsRequest, ListPromptsResult,
    ListResourceTemplatesRequest, ListResourceTemplatesResult, ListResourcesRequest,
    ListResourcesResult, ListToolsRequest, ListToolsResult, PaginatedRequestParams,
    ReadResourceRequest, ReadResourceRequestParams, ReadResourceResponse, ResultType,
    ServerCapabilities, ServerConfig, ServerPeerInfo, ServerResult, SetLevelRequest,
    SetLevelRequestParams, SubscribeRequest, SubscribeRequestParams, UnsubscribeRequest,
    UnsubscribeRequestParams,
};
use rmcp::service::{RequestContext, RoleServer, ServiceError};
use rmcp::{ErrorData, ServerHandler};
use std::time::Duration;

use crate::config::UpstreamServer;
use crate::pool::{Lease, Pool, PoolError};
use crate::relay::{Downstream, Relay};

/// Forwards MCP requests to the upstream. Cheap to clone; mount it with
/// `gatehouse.mount(move || handler.clone())`.
#[derive(Clone)]
pub struct GatewayHandler {
    pool: Arc<Pool>,
    info: Arc<ServerConfig>,
    /// The MCP session this handler serves (per-session isolation), see
    /// [`GatewayHandler::for_session`].
    session: Option<Arc<SessionTicket>>,
}

/// One MCP session's claim on its upstream process: when the session's handler is dropped
/// (the session ended), the process is stopped.
struct SessionTicket {
    id: u64,
    pool: std::sync::Weak<Pool>,
}

impl Drop for SessionTicket {
    fn drop(&mut self) {
        let (Some(pool), Ok(rt)) = (self.pool.upgrade(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let id = self.id;
        rt.spawn(async move { pool.end_session(id).await });
    }
}

/// Session numbers, process-wide (they only need to differ).
static NEXT_SESSION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl std::fmt::Debug for GatewayHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayHandler")
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

/// What the gateway says of itself: the upstream's name, version and instructions, and the
/// capabilities the gateway forwards — tools, prompts, resources, completions and logging as the
/// upstream has them; resource subscriptions only with sessions (updates need a session's
/// stream). List-change notifications are not bridged.
fn advertised(upstream: &ServerPeerInfo, sessions: bool) -> ServerConfig {
    let up = &upstream.capabilities;
    let mut caps = ServerCapabilities::default();
    if up.tools.is_some() {
        caps.tools = Some(Default::default());
    }
    if up.prompts.is_some() {
        caps.prompts = Some(Default::default());
    }
    if let Some(r) = &up.resources {
        let mut resources = rmcp::model::ResourcesCapability::default();
        resources.subscribe = r.subscribe.filter(|_| sessions);
        caps.resources = Some(resources);
    }
    caps.completions = up.completions.clone();
    caps.logging = up.logging.clone();
    let mut info = ServerConfig::new(caps);
    info.server_info = upstream
        .server_info
        .clone()
        .unwrap_or_else(|| Implementation::new("upstream", "unknown"));
    info.instructions = upstream.instructions.clone();
    info
}

impl GatewayHandler {
    /// Starts one upstream process to learn what it offers (then stops it) and returns the
    /// handler. Fails when the upstream cannot be started: better at start-up than at the
    /// first request.
    pub async fn start(upstream: UpstreamServer) -> Result<Self, PoolError> {
        // An upstream that only talks to users (its credential is a user's exchanged token)
        // cannot be probed without one: advertise what the gateway forwards, and let the first
        // user's session show what it really offers.
        let per_user = matches!(
            &upstream.transport,
            crate::config::Transport::Http(t) if t.per_user()
        );
        let sessions = upstream.sessions;
        let pool = Arc::new(Pool::new(upstream));
        let info = if per_user {
            let mut caps = ServerCapabilities::default();
            caps.tools = Some(Default::default());
            caps.prompts = Some(Default::default());
            caps.resources = Some(Default::default());
            let mut info = ServerConfig::new(caps);
            info.server_info = Implementation::new("gatehouse-gateway", env!("CARGO_PKG_VERSION"));
            info
        } else {
            advertised(&pool.probe().await?, sessions)
        };
        Ok(Self {
            pool,
            info: Arc::new(info),
            session: None,
        })
    }

    /// The handler for a new MCP session: with per-session isolation it gets its own upstream
    /// process, stopped when the session ends; otherwise a plain clone. Mount with
    /// `gatehouse.mount(move || handler.for_session())` — and, for per-session isolation, with
    /// stateful sessions only (rmcp calls the factory once per session; without sessions, once
    /// per request).
    pub fn for_session(&self) -> Self {
        let mut h = self.clone();
        if self.pool.upstream().isolation == crate::config::Isolation::PerSession {
            h.session = Some(Arc::new(SessionTicket {
                id: NEXT_SESSION.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                pool: Arc::downgrade(&self.pool),
            }));
        }
        h
    }

    fn session(&self) -> Option<u64> {
        self.session.as_ref().map(|t| t.id)
    }

    /// The pool of upstream processes.
    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    /// Mounts this handler behind `gatehouse` (`handler.for_session()` per session). With
    /// `forward` (the `server.direct_dispatch` setting), in stateless mode and for a plain-http
    /// upstream, allowed `tools/call`s take the forwarding path ([`crate::forward`]): bytes to
    /// the upstream, without rmcp on either side. Everything else goes through rmcp.
    pub fn mount(&self, gatehouse: &gatehouse::Gatehouse, forward: bool) -> axum::Router {
        let h = self.clone();
        let factory = move || h.for_session();
        let fast = (forward && !gatehouse.is_stateful())
            .then(|| crate::forward::Forwarder::new(self.pool.clone()))
            .flatten();
        match fast {
            Some(fast) => gatehouse.mount_forwarding(factory, Arc::new(fast)),
            None => gatehouse.mount(factory),
        }
    }

    async fn upstream(
        &self,
        context: &RequestContext<RoleServer>,
    ) -> Result<(Caller, Lease), ErrorData> {
        // Without a Caller the handler was mounted without the edge: refuse.
        let caller = caller_from_extensions(&context.extensions)
            .ok_or_else(|| ErrorData::internal_error("request is not authenticated", None))?;
        let access = context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|p| p.extensions.get::<UpstreamAccess>());
        match self.pool.get_with(&caller, self.session(), access).await {
            Ok(up) => Ok((caller, up)),
            Err(e) => {
                tracing::warn!(error = %e, "no upstream connection");
                // The same answers as on the forwarding path.
                Err(match e.failure() {
                    DependencyFailure::Refused => refused(context),
                    DependencyFailure::Unavailable { retry_after } => {
                        unavailable(context, retry_after)
                    }
                })
            }
        }
    }

    /// Sends `request` to the caller's upstream through its connection's relay (so progress,
    /// log messages and server-to-client requests find their way back to this request), cancels
    /// it upstream when the client cancels or goes away, and forgets a connection that has died
    /// so the next request starts a new one.
    async fn raw(
        &self,
        context: RequestContext<RoleServer>,
        request: ClientRequest,
    ) -> Result<ServerResult, ErrorData> {
        let (caller, up) = self.upstream(&context).await?;
        let relay = up.relay().clone();
        let result = tokio::select! {
            r = relay.call(
                up.peer(),
                request,
                Downstream::of(&context, relay.relays_requests()),
            ) => r,
            () = context.ct.cancelled() => {
                return Err(ErrorData::internal_error("request cancelled", None));
            }
        };
        match result {
            Ok(v) => Ok(v),
            // The upstream's own JSON-RPC error, verbatim.
            Err(ServiceError::McpError(e)) => Err(e),
            // The upstream refused the gateway's own credential: a 502, never the client's 401
            // (the client's token was fine; re-authenticating would not help).
            Err(e) if e.auth_challenge().is_some() => {
                tracing::warn!(error = %e, "the upstream refused the gateway's credential");
                self.pool.discard(&caller, self.session(), &up).await;
                Err(refused(&context))
            }
            Err(e @ (ServiceError::TransportClosed | ServiceError::TransportSend(_))) => {
                tracing::warn!(pid = ?up.pid(), error = %e, "upstream connection is gone");
                self.pool.discard(&caller, self.session(), &up).await;
                Err(unavailable(&context, Duration::from_secs(1)))
            }
            Err(e) => {
                tracing::warn!(pid = ?up.pid(), error = %e, "upstream request failed");
                Err(ErrorData::internal_error("upstream request failed", None))
            }
        }
    }

    /// The relay of the caller's connection, for bookkeeping that needs no upstream request.
    async fn relay(&self, context: &RequestContext<RoleServer>) -> Result<Arc<Relay>, ErrorData> {
        Ok(self.upstream(context).await?.1.relay().clone())
    }
}

/// The downstream MCP session a request belongs to (its `Mcp-Session-Id`), if any.
fn session_id(context: &RequestContext<RoleServer>) -> Option<String> {
    context
        .extensions
        .get::<http::request::Parts>()
        .and_then(|p| p.headers.get("mcp-session-id"))
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

// Results: the upstream speaks an older revision to the gateway and leaves `resultType` out,
// which means "complete" there (SEP-2322); the gateway says so for a 2026-07-28 client (rmcp
// strips it again for older ones).

/// The upstream is down: the edge answers `503` + `Retry-After` (the JSON-RPC error is what a
/// client gets where the status is already sent, on a stream).
fn unavailable(context: &RequestContext<RoleServer>, retry_after: Duration) -> ErrorData {
    report_dependency_failure(
        &context.extensions,
        DependencyFailure::Unavailable { retry_after },
    );
    ErrorData::internal_error("upstream unavailable", None)
}

/// The upstream is out of the gateway's reach for this user: the edge answers `502`, never the
/// client's `401` — its token was fine, and re-authenticating would not help.
fn refused(context: &RequestContext<RoleServer>) -> ErrorData {
    report_dependency_failure(&context.extensions, DependencyFailure::Refused);
    ErrorData::internal_error("upstream refused the gateway", None)
}

fn unexpected() -> ErrorData {
    ErrorData::internal_error("upstream answered unexpectedly", None)
}

impl ServerHandler for GatewayHandler {
    fn get_info(&self) -> ServerConfig {
        (*self.info).clone()
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let req = ClientRequest::ListToolsRequest(ListToolsRequest {
            method: Default::default(),
            params: request,
            extensions: Default::default(),
        });
        match self.raw(context, req).await? {
            ServerResult::ListToolsResult(mut r) => {
                r.result_type.get_or_insert(ResultType::COMPLETE);
                Ok(r)
            }
            _ => Err(unexpected()),
        }
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        match self
            .raw(
                context,
                ClientRequest::CallToolRequest(CallToolRequest::new(request)),
            )
            .await?
        {
            ServerResult::CallToolResult(mut r) => {
                r.result_type.get_or_insert(ResultType::COMPLETE);
                Ok(CallToolResponse::Complete(r))
            }
            ServerResult::InputRequiredResult(r) => Ok(CallToolResponse::InputRequired(r)),
            ServerResult::CreateTaskResult(r) => Ok(CallToolResponse::Task(r)),
            _ => Err(unexpected()),
        }
    }

    async fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let req = ClientRequest::ListPromptsRequest(ListPromptsRequest {
            method: Default::default(),
            params: request,
            extensions: Default::default(),
        });
        match self.raw(context, req).await? {
            ServerResult::ListPromptsResult(mut r) => {
                r.result_type.get_or_insert(ResultType::COMPLETE);
                Ok(r)
            }
            _ => Err(unexpected()),
        }
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        match self
            .raw(
                context,
                ClientRequest::GetPromptRequest(GetPromptRequest::new(request)),
            )
            .await?
        {
            ServerResult::GetPromptResult(mut r) => {
                r.result_type.get_or_insert(ResultType::COMPLETE);
                Ok(GetPromptResponse::Complete(r))
            }
            ServerResult::InputRequiredResult(r) => Ok(GetPromptResponse::InputRequired(r)),
            _ => Err(unexpected()),
        }
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let req = ClientRequest::ListResourcesRequest(ListResourcesRequest {
            method: Default::default(),
            params: request,
            extensions: Default::default(),
        });
        match self.raw(context, req).await? {
            ServerResult::ListResourcesResult(mut r) => {
                r.result_type.get_or_insert(ResultType::COMPLETE);
                Ok(r)
            }
            _ => Err(unexpected()),
        }
    }

    async fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let req = ClientRequest::ListResourceTemplatesRequest(ListResourceTemplatesRequest {
            method: Default::default(),
            params: request,
            extensions: Default::default(),
        });
        match self.raw(context, req).await? {
            ServerResult::ListResourceTemplatesResult(mut r) => {
                r.result_type.get_or_insert(ResultType::COMPLETE);
                Ok(r)
            }
            _ => Err(unexpected()),
        }
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        match self
            .raw(
                context,
                ClientRequest::ReadResourceRequest(ReadResourceRequest::new(request)),
            )
            .await?
        {
            ServerResult::ReadResourceResult(mut r) => {
                r.result_type.get_or_insert(ResultType::COMPLETE);
                Ok(ReadResourceResponse::Complete(r))
            }
            ServerResult::InputRequiredResult(r) => Ok(ReadResourceResponse::InputRequired(r)),
            _ => Err(unexpected()),
        }
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        match self
            .raw(
                context,
                ClientRequest::CompleteRequest(CompleteRequest::new(request)),
            )
            .await?
        {
            ServerResult::CompleteResult(mut r) => {
                r.result_type.get_or_insert(ResultType::COMPLETE);
                Ok(r)
            }
            _ => Err(unexpected()),
        }
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        // On a connection log messages are not relayed from (shared, or without sessions), the
        // level is not the client's to set for everyone: accepted, not forwarded.
        if !self.relay(&context).await?.relays_requests() {
            return Ok(());
        }
        self.raw(
            context,
            ClientRequest::SetLevelRequest(SetLevelRequest::new(request)),
        )
        .await
        .map(drop)
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        // Updates are notifications on the session's stream: without a session, nowhere to go.
        let session = session_id(&context)
            .ok_or_else(|| ErrorData::invalid_request("subscriptions need an MCP session", None))?;
        let relay = self.relay(&context).await?;
        let uri = request.uri.clone();
        let peer = context.peer.clone();
        self.raw(
            context,
            ClientRequest::SubscribeRequest(SubscribeRequest::new(request)),
        )
        .await?;
        relay.subscribe(&uri, session, peer);
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let session = session_id(&context).unwrap_or_default();
        let relay = self.relay(&context).await?;
        // The upstream subscription is shared by this connection's sessions: it goes when the
        // last of them leaves.
        if relay.unsubscribe(&request.uri, &session) {
            self.raw(
                context,
                ClientRequest::UnsubscribeRequest(UnsubscribeRequest::new(request)),
            )
            .await?;
        }
        Ok(())
    }
}
