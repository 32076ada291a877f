//! [`GatewayHandler`]: an rmcp `ServerHandler` whose methods forward to the upstream process
//! that serves the caller. The library's wrapper around it ([`gatehouse::mcp::Protected`], put
//! there by `Gatehouse::mount`) has already applied the policy: hidden tools are answered as
//! missing and left out of `tools/list`, tool scopes are checked again, every call is observed.

use std::sync::Arc;

use gatehouse::Caller;
use gatehouse::mcp::{DependencyFailure, caller_from_extensions, report_dependency_failure};
use gatehouse::upstream::{UpstreamAccess, UpstreamError};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ClientRequest, GetPromptRequestParams,
    GetPromptResponse, Implementation, ListPromptsRequest, ListPromptsResult,
    ListResourceTemplatesRequest, ListResourceTemplatesResult, ListResourcesRequest,
    ListResourcesResult, ListToolsRequest, ListToolsResult, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities, ServerConfig,
    ServerPeerInfo, ServerResult,
};
use rmcp::service::{RequestContext, RoleServer, ServiceError};
use rmcp::{ErrorData, ServerHandler};
use std::time::Duration;

use crate::config::UpstreamServer;
use crate::pool::{Connection, Pool, PoolError};

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
/// capabilities the gateway forwards (tools, prompts, resources — without subscriptions or
/// list-change notifications, which it does not bridge yet).
fn advertised(upstream: &ServerPeerInfo) -> ServerConfig {
    let up = &upstream.capabilities;
    let mut caps = ServerCapabilities::default();
    if up.tools.is_some() {
        caps.tools = Some(Default::default());
    }
    if up.prompts.is_some() {
        caps.prompts = Some(Default::default());
    }
    if up.resources.is_some() {
        caps.resources = Some(Default::default());
    }
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
            crate::config::Transport::Http(t) if t.via_upstream.is_some()
        );
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
            advertised(&pool.probe().await?)
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

    async fn upstream(
        &self,
        context: &RequestContext<RoleServer>,
    ) -> Result<(Caller, Arc<Connection>), ErrorData> {
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
                let retry_after = match e {
                    PoolError::Backoff { retry_after } => retry_after,
                    PoolError::Credential(e) if matches!(*e, UpstreamError::Refused { .. }) => {
                        // The authorization server would not let the gateway act for this
                        // user there: the upstream is out of reach, not the client's token.
                        report_dependency_failure(&context.extensions, DependencyFailure::Refused);
                        return Err(ErrorData::internal_error(
                            "upstream refused the gateway",
                            None,
                        ));
                    }
                    PoolError::Credential(_) | PoolError::Start(_) => Duration::from_secs(1),
                };
                Err(unavailable(context, retry_after))
            }
        }
    }

    /// Runs `call` against the caller's upstream, stopping it when the client cancels (the
    /// rmcp helpers used here tell the upstream `notifications/cancelled` when dropped), and
    /// forgetting a process that has died so the next request starts a new one.
    async fn forward<T, F, Fut>(
        &self,
        context: RequestContext<RoleServer>,
        call: F,
    ) -> Result<T, ErrorData>
    where
        F: FnOnce(Arc<Connection>) -> Fut,
        Fut: Future<Output = Result<T, ServiceError>>,
    {
        let (caller, up) = self.upstream(&context).await?;
        let result = tokio::select! {
            r = call(up.clone()) => r,
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
                report_dependency_failure(&context.extensions, DependencyFailure::Refused);
                Err(ErrorData::internal_error(
                    "upstream refused the gateway",
                    None,
                ))
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

    async fn raw(
        &self,
        context: RequestContext<RoleServer>,
        request: ClientRequest,
    ) -> Result<ServerResult, ErrorData> {
        self.forward(context, |up| async move {
            up.peer().send_request(request).await
        })
        .await
    }
}

/// The upstream is down: the edge answers `503` + `Retry-After` (the JSON-RPC error is what a
/// client gets where the status is already sent, on a stream).
fn unavailable(context: &RequestContext<RoleServer>, retry_after: Duration) -> ErrorData {
    report_dependency_failure(
        &context.extensions,
        DependencyFailure::Unavailable { retry_after },
    );
    ErrorData::internal_error("upstream unavailable", None)
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
            ServerResult::ListToolsResult(r) => Ok(r),
            _ => Err(unexpected()),
        }
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.forward(context, |up| async move {
            up.peer().call_tool_once(request).await
        })
        .await
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
            ServerResult::ListPromptsResult(r) => Ok(r),
            _ => Err(unexpected()),
        }
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        self.forward(context, |up| async move {
            up.peer().get_prompt_once(request).await
        })
        .await
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
            ServerResult::ListResourcesResult(r) => Ok(r),
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
            ServerResult::ListResourceTemplatesResult(r) => Ok(r),
            _ => Err(unexpected()),
        }
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        self.forward(context, |up| async move {
            up.peer().read_resource_once(request).await
        })
        .await
    }
}
