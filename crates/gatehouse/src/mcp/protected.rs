//! [`Protected`]: the library's wrapper around an application's rmcp `ServerHandler`.
//!
//! [`crate::Gatehouse::mount`] wraps every server it mounts, so that what every server would
//! otherwise write by hand is done once, here:
//!
//! - **one observation per `tools/call`** ([`crate::observe::ToolCall`]: caller, tool, outcome,
//!   reason, latency) for every call that reaches the server — unknown tools, malformed arguments
//!   and tool errors included. A tool refines its outcome with [`report_outcome`]; otherwise it is
//!   classified from the answer;
//! - **the tool's scopes checked again** (defence in depth: the edge checked them before rmcp saw
//!   the request; a server mounted some other way must not open its tools), refused as a tool
//!   error with fixed text;
//! - **`tools/list` filtered by the caller's scopes** when the policy says
//!   [`ToolListMode::FilterByScope`], marked private so no shared cache reuses it (A36).
//!
//! Everything else is delegated to the inner handler unchanged. rmcp 3.11's Streamable HTTP
//! service needs a `ServerHandler` (not a `Service`), so the wrapper implements every method of
//! the trait by delegation; the list follows rmcp's own wrapper for `Box`/`Arc`.

use std::borrow::Cow;
use std::cell::Cell;
use std::future::Future;
use std::time::Instant;

use rmcp::model::*;
use rmcp::service::{
    MaybeSendFuture, NotificationContext, RequestContext, RoleServer, SubscriptionContext,
};
use rmcp::{ErrorData, ServerHandler};

use crate::caller::ScopeSet;
use crate::mcp::extract::{caller_from_extensions, request_id_from_extensions};
use crate::observe::{NoopObserver, Observer, Outcome, Stage, ToolCall};
use crate::policy::{PolicyError, ScopePolicy, ToolListMode};

tokio::task_local! {
    /// The outcome a tool reported for the call being run ([`report_outcome`]).
    static REPORTED: Cell<Option<(Outcome, &'static str)>>;
}

/// Reports how the current tool call ended, with a short stable code (`not_found`,
/// `already_void`, `no_tenant`, …), for the audit record and metrics of this call.
///
/// Call it from a tool body run through [`Protected`] (every server mounted by
/// [`crate::Gatehouse::mount`]). Without it, a call is `allowed`/`ok` when the tool answered,
/// and `error`/`tool_error` when its result has `isError: true`. Outside a protected call this
/// does nothing.
pub fn report_outcome(outcome: Outcome, reason: &'static str) {
    let _ = REPORTED.try_with(|slot| slot.set(Some((outcome, reason))));
}

/// Fixed client-facing text of the defence-in-depth scope refusal.
fn insufficient_scope_result(required: &ScopeSet) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(format!(
        "Insufficient scope: this tool requires {}.",
        required.to_space_separated()
    ))])
}

/// rmcp 3.11 answers arguments that do not deserialize with a tool error (not a JSON-RPC
/// error) whose text starts with this; the billing audit tests hold the classification.
const ARGUMENT_ERROR_PREFIX: &str = "failed to deserialize parameters:";

/// rmcp's answer to a `tools/call` of a tool its router does not have.
fn unknown_tool() -> ErrorData {
    ErrorData::invalid_params("tool not found", None)
}

fn is_argument_error(r: &CallToolResult) -> bool {
    r.content
        .first()
        .and_then(|c| c.as_text())
        .is_some_and(|t| t.text.starts_with(ARGUMENT_ERROR_PREFIX))
}

/// An rmcp `ServerHandler` wrapped with the library's per-call behaviour (see the module docs).
/// Cheap to clone when the inner handler is.
#[derive(Clone)]
pub struct Protected<H> {
    inner: H,
    policy: ScopePolicy,
    observer: std::sync::Arc<dyn Observer>,
}

impl<H> std::fmt::Debug for Protected<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Protected")
            .field("list_mode", &self.policy.list_mode())
            .finish_non_exhaustive()
    }
}

impl<H: ServerHandler> Protected<H> {
    /// Wraps `inner`, checking `policy` and telling `observer` about every tool call.
    /// [`crate::Gatehouse::mount`] does this for you with the server's own policy and observers.
    pub fn new(inner: H, policy: ScopePolicy, observer: std::sync::Arc<dyn Observer>) -> Self {
        Self {
            inner,
            policy,
            observer,
        }
    }

    /// Wraps `inner` with `policy` and no observer.
    pub fn with_policy(inner: H, policy: ScopePolicy) -> Self {
        Self::new(inner, policy, std::sync::Arc::new(NoopObserver))
    }

    /// The wrapped handler.
    pub fn inner(&self) -> &H {
        &self.inner
    }

    async fn observed_call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let started = Instant::now();
        let caller = caller_from_extensions(&context.extensions);
        let request_id = request_id_from_extensions(&context.extensions).0;
        let tool = request.name.clone();
        let observe = |outcome, reason: &str, known_tool, required: Option<&ScopeSet>| {
            self.observer.tool_call(&ToolCall {
                caller: caller.as_ref(),
                tool: Some(&tool),
                known_tool,
                required,
                outcome,
                reason,
                latency: started.elapsed(),
                request_id: request_id.as_deref(),
                stage: Stage::Server,
            })
        };

        let Some(c) = &caller else {
            // Reaching a server without a Caller means it was mounted without the Gatehouse
            // edge: refuse rather than run unauthenticated.
            observe(Outcome::Error, "unauthenticated", false, None);
            return Err(ErrorData::internal_error(
                "request is not authenticated",
                None,
            ));
        };
        match self.policy.check_tool(c, &tool) {
            Ok(()) => {}
            Err(PolicyError::InsufficientScope { required }) => {
                observe(Outcome::Denied, "insufficient_scope", true, Some(&required));
                return Ok(insufficient_scope_result(&required).into());
            }
            Err(PolicyError::Hidden) => {
                // Exactly what rmcp's tool router answers for a tool that does not exist, so
                // the client cannot tell the two apart; the audit record says why.
                observe(Outcome::Denied, "hidden_tool", false, None);
                return Err(unknown_tool());
            }
        }

        let slot = crate::mcp::dependency::slot_of(&context.extensions);
        let (reported, response) = REPORTED
            .scope(Cell::new(None), async {
                let call = self.inner.call_tool(request, context);
                let response = crate::mcp::dependency::with_slot(slot, call).await;
                (REPORTED.with(Cell::get), response)
            })
            .await;
        let known = || self.inner.get_tool(&tool).is_some();
        match (reported, &response) {
            (Some((outcome, reason)), _) => observe(outcome, reason, true, None),
            (None, Ok(CallToolResponse::Complete(r))) if r.is_error == Some(true) => {
                let reason = if is_argument_error(r) {
                    "invalid_params"
                } else {
                    "tool_error"
                };
                observe(Outcome::Error, reason, known(), None)
            }
            (None, Ok(_)) => observe(Outcome::Allowed, "ok", true, None),
            (None, Err(e)) => {
                let known = known();
                let reason = if !known {
                    "unknown_tool"
                } else if e.code == ErrorCode::INVALID_PARAMS {
                    "invalid_params"
                } else {
                    "protocol_error"
                };
                observe(Outcome::Error, reason, known, None)
            }
        }
        response
    }

    async fn filtered_list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let by_scope = self.policy.list_mode() == ToolListMode::FilterByScope;
        if !by_scope && !self.policy.may_hide_tools() {
            return self.inner.list_tools(request, context).await;
        }
        let caller = by_scope
            .then(|| caller_from_extensions(&context.extensions))
            .flatten();
        let mut result = self.inner.list_tools(request, context).await?;
        // Hidden tools are never listed; by scope, only what the caller may call (no caller
        // means nothing is callable). `next_cursor` is the inner server's, untouched.
        result.tools.retain(|t| match (by_scope, &caller) {
            (false, _) => !self.policy.is_hidden(&t.name),
            (true, Some(c)) => self.policy.may_call(c, &t.name),
            (true, None) => false,
        });
        // The list now depends on the token's scopes: no shared cache may reuse it (A36).
        if result.cache_scope.is_some() {
            result.cache_scope = Some(CacheScope::Private);
        }
        Ok(result)
    }
}

impl<H: ServerHandler> ServerHandler for Protected<H> {
    fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<CallToolResponse, ErrorData>> + MaybeSendFuture + '_ {
        self.observed_call_tool(request, context)
    }

    fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListToolsResult, ErrorData>> + MaybeSendFuture + '_ {
        self.filtered_list_tools(request, context)
    }

    // Everything below is plain delegation.

    fn ping(
        &self,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), ErrorData>> + MaybeSendFuture + '_ {
        self.inner.ping(context)
    }

    fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<InitializeResult, ErrorData>> + MaybeSendFuture + '_ {
        self.inner.initialize(request, context)
    }

    fn negotiate_initialize(
        &self,
        request: &InitializeRequestParams,
    ) -> Result<InitializeResult, ErrorData> {
        self.inner.negotiate_initialize(request)
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        self.inner.supported_protocol_versions()
    }

    fn discover(
        &self,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<DiscoverResult, ErrorData>> + MaybeSendFuture + '_ {
        self.inner.discover(context)
    }

    fn complete(
        &self,
        request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<CompleteResult, ErrorData>> + MaybeSendFuture + '_ {
        self.inner.complete(request, context)
    }

    #[allow(deprecated)]
    fn set_level(
        &self,
        request: SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), ErrorData>> + MaybeSendFuture + '_ {
        self.inner.set_level(request, context)
    }

    fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<GetPromptResponse, ErrorData>> + MaybeSendFuture + '_ {
        self.inner.get_prompt(request, context)
    }

    fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListPromptsResult, ErrorData>> + MaybeSendFuture + '_ {
        self.inner.list_prompts(request, context)
    }

    fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListResourcesResult, ErrorData>> + MaybeSendFuture + '_ {
        self.inner.list_resources(request, context)
    }

    fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListResourceTemplatesResult, ErrorData>> + MaybeSendFuture + '_
    {
        self.inner.list_resource_templates(request, context)
    }

    fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ReadResourceResponse, ErrorData>> + MaybeSendFuture + '_ {
        self.inner.read_resource(request, context)
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        self.inner.accepted_subscription_filter(requested)
    }

    fn listen(
        &self,
        context: SubscriptionContext,
    ) -> impl Future<Output = Result<(), ErrorData>> + MaybeSendFuture + '_ {
        self.inner.listen(context)
    }

    #[allow(deprecated)]
    fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), ErrorData>> + MaybeSendFuture + '_ {
        self.inner.subscribe(request, context)
    }

    #[allow(deprecated)]
    fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), ErrorData>> + MaybeSendFuture + '_ {
        self.inner.unsubscribe(request, context)
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        if self.policy.is_hidden(name) {
            return None;
        }
        self.inner.get_tool(name)
    }

    fn on_custom_request(
        &self,
        request: CustomRequest,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<CustomResult, ErrorData>> + MaybeSendFuture + '_ {
        self.inner.on_custom_request(request, context)
    }

    fn on_cancelled(
        &self,
        notification: CancelledNotificationParam,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_cancelled(notification, context)
    }

    fn on_progress(
        &self,
        notification: ProgressNotificationParam,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_progress(notification, context)
    }

    fn on_initialized(
        &self,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_initialized(context)
    }

    fn on_roots_list_changed(
        &self,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_roots_list_changed(context)
    }

    fn on_custom_notification(
        &self,
        notification: CustomNotification,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_custom_notification(notification, context)
    }

    fn get_info(&self) -> ServerConfig {
        self.inner.get_info()
    }

    fn get_task(
        &self,
        request: GetTaskParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<GetTaskResult, ErrorData>> + MaybeSendFuture + '_ {
        self.inner.get_task(request, context)
    }

    fn update_task(
        &self,
        request: UpdateTaskParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), ErrorData>> + MaybeSendFuture + '_ {
        self.inner.update_task(request, context)
    }

    fn cancel_task(
        &self,
        request: CancelTaskParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), ErrorData>> + MaybeSendFuture + '_ {
        self.inner.cancel_task(request, context)
    }

    fn list_skills(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListSkillsResult, ErrorData>> + MaybeSendFuture + '_ {
        self.inner.list_skills(request, context)
    }

    fn get_skill(
        &self,
        request: GetSkillRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<GetSkillResult, ErrorData>> + MaybeSendFuture + '_ {
        self.inner.get_skill(request, context)
    }

    fn read_resource_directory(
        &self,
        request: ReadResourceDirectoryRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ReadResourceDirectoryResult, ErrorData>> + MaybeSendFuture + '_
    {
        self.inner.read_resource_directory(request, context)
    }
}
