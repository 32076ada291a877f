//! The fixtures the conformance suite's server scenarios call, with the names and shapes each
//! scenario's description prints (`npx conformance list`; `--scenario NAME` on failure).
//!
//! Every fixture goes through the Gatehouse layer first: the suite only reaches them with the
//! token the proxy injects.
//!
//! They cover the 0.1.16 suite and the newest release (0.2.0-alpha.12): its default set, all 37
//! scenarios `--requirements 2026-07-28` requires and the 13 pending/extension ones it runs
//! besides. For protocol 2026-07-28 (per-request `_meta`, no session):
//! - SEP-2322 input-required tools and prompt: [`crate::mrtr`];
//! - SEP-2663 tasks: [`crate::tasks`];
//! - SEP-2575 diagnostics: `test_missing_capability` (`-32021` unless the request declares
//!   sampling), `test_streaming_elicitation` (an input-required result, never a request on the
//!   response stream), `test_logging_tool` (logs only when `_meta` sets a `logLevel`),
//!   `subscriptions/listen` with `test_trigger_tool_change` / `test_trigger_prompt_change`
//!   announcing list changes to every open stream;
//! - SEP-2243: `test_mcp_param_header`, whose `x-mcp-header` argument rmcp's transport checks
//!   against the `Mcp-Param-Region` header; SEP-2106: the full 2020-12 schema tool.
//!
//! Not served: the SEP-2640 skills extension (no skills declared: the suite skips those
//! scenarios) and SSE resumption (`server-sse-polling`: no `test_reconnection`, no event store).
//!
//! Sampling, elicitation and logging are deprecated from protocol 2026-07-28 on (SEP-2577) but
//! are what the 2025-06-18 / 2025-11-25 scenarios test, hence `allow(deprecated)` for the module.
#![allow(deprecated)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rmcp::handler::server::router::tool::{ToolRoute, ToolRouter};
use rmcp::handler::server::tool::InputResponses as InputResponsesPart;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientCapabilities,
    CompleteRequestParams, CompleteResult, CompletionInfo, ContentBlock, GetPromptRequestParams,
    GetPromptResponse, GetPromptResult, Implementation, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, LoggingLevel,
    PaginatedRequestParams, Prompt, PromptArgument, PromptListChangedNotification, PromptMessage,
    ProtocolVersion, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult,
    RequestMetaObject, Resource, ResourceContents, ResourceTemplate, Role, ServerCapabilities,
    ServerConfig, ServerNotification, SetLevelRequestParams, SubscribeRequestParams,
    SubscriptionFilter, Tool, ToolListChangedNotification, UnsubscribeRequestParams,
};
use rmcp::model::{CancelTaskParams, GetTaskParams, GetTaskResult, UpdateTaskParams};
use rmcp::service::{RequestContext, SubscriptionContext, SubscriptionSendError};
use rmcp::task_manager::TaskManager;
use rmcp::{ErrorData, Peer, RoleServer, ServerHandler, tool, tool_router};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast;

use crate::rounds::{self, StateSeal, from_json};

/// The conformance fixtures. Cheap to clone; one per MCP session.
#[derive(Clone)]
pub(crate) struct Fixtures {
    // Built once (a per-request rebuild costs ~9 % throughput; test-peers.md).
    tool_router: Arc<ToolRouter<Fixtures>>,
    pub(crate) shared: Arc<Shared>,
}

/// What every session of one server shares. On 2026-07-28 each request may be served by a
/// fresh handler (no session), so anything that spans requests lives here.
pub(crate) struct Shared {
    /// Legacy `resources/subscribe` URIs.
    subscriptions: Mutex<HashSet<String>>,
    /// Seals the input-required fixtures' `requestState`.
    pub(crate) seal: StateSeal,
    /// List-change announcements, fanned out to every open `subscriptions/listen` stream
    /// (SEP-2575); each stream's sink drops what its filter did not ask for.
    changes: broadcast::Sender<ServerNotification>,
    /// The SEP-2663 tasks (`tasks.rs`).
    pub(crate) tasks: TaskManager,
}

/// A 1×1 red PNG.
const RED_PIXEL_PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";

/// Name of the JSON Schema 2020-12 fixture tool (scenario `json-schema-2020-12`).
const JSON_SCHEMA_TOOL: &str = "json_schema_2020_12_tool";

/// Name of the SEP-2243 fixture tool whose `region` argument is mirrored in the
/// `Mcp-Param-Region` header (scenario `http-custom-header-server-validation`).
const HEADER_TOOL: &str = "test_mcp_param_header";

/// A minimal valid WAV file: RIFF header, 8 kHz mono 8-bit PCM, 8 samples of silence.
fn tiny_wav() -> Vec<u8> {
    let samples = [128u8; 8];
    let mut w = Vec::with_capacity(44 + samples.len());
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + samples.len() as u32).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes()); // fmt chunk size
    w.extend_from_slice(&1u16.to_le_bytes()); // PCM
    w.extend_from_slice(&1u16.to_le_bytes()); // mono
    w.extend_from_slice(&8000u32.to_le_bytes()); // sample rate
    w.extend_from_slice(&8000u32.to_le_bytes()); // byte rate
    w.extend_from_slice(&1u16.to_le_bytes()); // block align
    w.extend_from_slice(&8u16.to_le_bytes()); // bits per sample
    w.extend_from_slice(b"data");
    w.extend_from_slice(&(samples.len() as u32).to_le_bytes());
    w.extend_from_slice(&samples);
    w
}

/// A JSON-RPC internal error carrying `e`'s text.
fn internal(e: impl std::fmt::Display) -> ErrorData {
    ErrorData::internal_error(e.to_string(), None)
}

/// A successful tool result: one text block.
pub(crate) fn text(text: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(text)])
}

/// A tool error (`isError: true`): one text block.
fn tool_error(text: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(text)])
}

/// The tool error a scenario expects when the client did not declare `capability` (`declared`
/// reads it from the client's capabilities); `None` when it did.
fn undeclared(
    peer: &Peer<RoleServer>,
    capability: &str,
    declared: impl Fn(&ClientCapabilities) -> bool,
) -> Option<CallToolResult> {
    let ok = peer.peer_info().is_some_and(|i| declared(&i.capabilities));
    (!ok).then(|| tool_error(format!("the client does not support {capability}")))
}

/// Waits before the `i`-th of a series of notifications: not before the first, ~50 ms before
/// the others. The logging and progress scenarios ask for spaced-out notifications; this is the
/// fixtures' specified behaviour, not synchronisation.
async fn pause_before(i: usize) {
    if i > 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct PromptArg {
    /// The prompt to send to the LLM.
    prompt: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct MessageArg {
    /// The message to show the user.
    message: String,
}

impl Fixtures {
    pub(crate) fn new() -> Self {
        let mut router = Self::tool_router() + Self::mrtr_router() + Self::tasks_router();
        router.add_route(ToolRoute::new_dyn(json_schema_tool(), |_ctx| {
            Box::pin(async { Ok(text("JSON Schema 2020-12 tool called").into()) })
        }));
        router.add_route(ToolRoute::new_dyn(header_tool(), |ctx| {
            let region = ctx
                .arguments
                .as_ref()
                .and_then(|a| a.get("region"))
                .and_then(|r| r.as_str())
                .map(str::to_owned);
            Box::pin(async move {
                let region =
                    region.ok_or_else(|| ErrorData::invalid_params("region is required", None))?;
                Ok(text(format!("region: {region}")).into())
            })
        }));
        // Capacity: announcements are rare (the trigger fixtures); a lagging stream skips some.
        let (changes, _) = broadcast::channel(16);
        Self {
            tool_router: Arc::new(router),
            shared: Arc::new(Shared {
                subscriptions: Mutex::new(HashSet::new()),
                seal: StateSeal::new(),
                changes,
                tasks: TaskManager::new(),
            }),
        }
    }

    /// Announces `change` to every open `subscriptions/listen` stream (none open: dropped).
    fn announce(&self, change: ServerNotification) {
        let _ = self.shared.changes.send(change);
    }

    /// Sends `elicitation/create` for a form of `properties` (a flat object, as elicitation
    /// requires), `required` of them mandatory, and reports the client's answer after `label`.
    async fn elicit(
        peer: &Peer<RoleServer>,
        message: &str,
        properties: serde_json::Value,
        required: &[&str],
        label: &str,
    ) -> Result<CallToolResult, ErrorData> {
        let params = from_json(json!({
            "mode": "form",
            "message": message,
            "requestedSchema": { "type": "object", "properties": properties, "required": required },
        }))?;
        let answer = peer
            .create_elicitation(params)
            .await
            .map_err(|e| internal(format!("elicitation failed: {e}")))?;
        Ok(text(format!(
            "{label}: {}",
            serde_json::to_string(&answer).unwrap_or_default()
        )))
    }
}

/// The `json-schema-2020-12` fixture: its input schema must reach clients verbatim — the
/// 2020-12 keywords of SEP-1613 (`$schema`, `$defs`, `additionalProperties`) and the broader
/// vocabulary SEP-2106 permits (`$anchor`, `allOf`/`anyOf`, `if`/`then`/`else`).
fn json_schema_tool() -> Tool {
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {
            "address": {
                "$anchor": "addressDef",
                "type": "object",
                "properties": { "street": { "type": "string" }, "city": { "type": "string" } }
            }
        },
        "properties": {
            "name": { "type": "string" },
            "address": { "$ref": "#/$defs/address" },
            "contactMethod": { "type": "string", "enum": ["phone", "email"] },
            "phone": { "type": "string" },
            "email": { "type": "string" }
        },
        "allOf": [{ "anyOf": [{ "required": ["phone"] }, { "required": ["email"] }] }],
        "if": {
            "properties": { "contactMethod": { "const": "phone" } },
            "required": ["contactMethod"]
        },
        "then": { "required": ["phone"] },
        "else": { "required": ["email"] },
        "additionalProperties": false
    });
    Tool::new(
        JSON_SCHEMA_TOOL,
        "Tool with JSON Schema 2020-12 features",
        Arc::new(object(schema)),
    )
}

/// The SEP-2243 fixture: `region` carries `x-mcp-header`, so a 2026-07-28 client mirrors it in
/// `Mcp-Param-Region` and rmcp's transport refuses (`-32020`, HTTP 400) a request whose header
/// is missing, badly Base64-encoded or differs from the body.
fn header_tool() -> Tool {
    let schema = json!({
        "type": "object",
        "properties": {
            "region": { "type": "string", "description": "Region to echo", "x-mcp-header": "Region" }
        },
        "required": ["region"]
    });
    Tool::new(
        HEADER_TOOL,
        "Echoes its region argument, mirrored in the Mcp-Param-Region header",
        Arc::new(object(schema)),
    )
}

/// The map of a JSON object literal.
fn object(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    let serde_json::Value::Object(map) = value else {
        unreachable!("a JSON object literal")
    };
    map
}

/// Whether the request is on protocol 2026-07-28 or later (per-request `_meta` or the
/// session's negotiated version): there server-to-client requests travel as input-required
/// results, never as independent requests on the response stream (SEP-2322, SEP-2575).
fn mrtr_era(context: &RequestContext<RoleServer>) -> bool {
    context
        .protocol_version()
        .is_some_and(|v| v.as_str() >= ProtocolVersion::V_2026_07_28.as_str())
}

#[tool_router]
impl Fixtures {
    #[tool(name = "test_simple_text", description = "Returns simple text content")]
    async fn test_simple_text(&self) -> CallToolResult {
        text("This is a simple text response for testing.")
    }

    #[tool(
        name = "test_image_content",
        description = "Returns image content (1x1 red PNG)"
    )]
    async fn test_image_content(&self) -> CallToolResult {
        CallToolResult::success(vec![ContentBlock::image(RED_PIXEL_PNG, "image/png")])
    }

    #[tool(
        name = "test_audio_content",
        description = "Returns audio content (a tiny WAV)"
    )]
    async fn test_audio_content(&self) -> CallToolResult {
        CallToolResult::success(vec![ContentBlock::audio(
            B64.encode(tiny_wav()),
            "audio/wav",
        )])
    }

    #[tool(
        name = "test_embedded_resource",
        description = "Returns an embedded resource"
    )]
    async fn test_embedded_resource(&self) -> CallToolResult {
        CallToolResult::success(vec![ContentBlock::resource(ResourceContents::text(
            "This is an embedded resource content.",
            "test://embedded-resource",
        ))])
    }

    #[tool(
        name = "test_multiple_content_types",
        description = "Returns text, image and resource content"
    )]
    async fn test_multiple_content_types(&self) -> CallToolResult {
        CallToolResult::success(vec![
            ContentBlock::text("Multiple content types test:"),
            ContentBlock::image(RED_PIXEL_PNG, "image/png"),
            ContentBlock::resource(
                ResourceContents::text(
                    r#"{"test":"data","value":123}"#,
                    "test://mixed-content-resource",
                )
                .with_mime_type("application/json"),
            ),
        ])
    }

    #[tool(
        name = "test_tool_with_logging",
        description = "Sends three log notifications while it runs"
    )]
    async fn test_tool_with_logging(
        &self,
        peer: Peer<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let messages = [
            "Tool execution started",
            "Tool processing data",
            "Tool execution completed",
        ];
        for (i, data) in messages.into_iter().enumerate() {
            pause_before(i).await;
            let param =
                from_json(json!({ "level": "info", "logger": "conformance", "data": data }))?;
            peer.notify_logging_message(param).await.map_err(internal)?;
        }
        Ok(text("Tool with logging executed successfully"))
    }

    #[tool(
        name = "test_error_handling",
        description = "Always fails with a tool error"
    )]
    async fn test_error_handling(&self) -> CallToolResult {
        tool_error("This tool intentionally returns an error for testing")
    }

    #[tool(
        name = "test_tool_with_progress",
        description = "Reports progress 0, 50, 100 of 100 when given a progress token"
    )]
    async fn test_tool_with_progress(
        &self,
        peer: Peer<RoleServer>,
        meta: RequestMetaObject,
    ) -> Result<CallToolResult, ErrorData> {
        let token = meta.get_progress_token();
        for (i, progress) in [0.0, 50.0, 100.0].into_iter().enumerate() {
            pause_before(i).await;
            if let Some(token) = &token {
                let param = from_json(json!({
                    "progressToken": token, "progress": progress, "total": 100.0
                }))?;
                peer.notify_progress(param).await.map_err(internal)?;
            }
        }
        Ok(text("Tool with progress executed successfully"))
    }

    #[tool(
        name = "test_missing_capability",
        description = "Needs the sampling capability: -32021 for a request that did not declare it (SEP-2575)"
    )]
    async fn test_missing_capability(
        &self,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        if context
            .client_capabilities()
            .is_some_and(|c| c.sampling.is_some())
        {
            return Ok(text("The client declared sampling"));
        }
        let required: ClientCapabilities = from_json(json!({ "sampling": {} }))?;
        Err(ErrorData::missing_required_client_capability(required))
    }

    #[tool(
        name = "test_streaming_elicitation",
        description = "Asks for a confirmation: an input-required result on 2026-07-28, elicitation/create before"
    )]
    async fn test_streaming_elicitation(
        &self,
        context: RequestContext<RoleServer>,
        InputResponsesPart(answers): InputResponsesPart,
    ) -> Result<CallToolResponse, ErrorData> {
        if let Some(refusal) = undeclared(&context.peer, "elicitation", |c| c.elicitation.is_some())
            .filter(|_| !mrtr_era(&context))
        {
            return Ok(refusal.into());
        }
        if !mrtr_era(&context) {
            let properties = json!({ "confirmed": { "type": "boolean" } });
            return Self::elicit(
                &context.peer,
                "Continue?",
                properties,
                &["confirmed"],
                "Answer",
            )
            .await
            .map(Into::into);
        }
        if context
            .client_capabilities()
            .is_none_or(|c| c.elicitation.is_none())
        {
            let required: ClientCapabilities = from_json(json!({ "elicitation": {} }))?;
            return Err(ErrorData::missing_required_client_capability(required));
        }
        match rounds::answer(answers.as_ref(), "confirm")? {
            None => {
                let request = rounds::elicit("Continue?", "confirmed", "boolean")?;
                Ok(rounds::ask([("confirm", request)], None).into())
            }
            Some(a) => Ok(text(format!(
                "Answer: {}",
                rounds::elicited(a, "confirmed")?.unwrap_or(serde_json::Value::Null)
            ))
            .into()),
        }
    }

    #[tool(
        name = "test_logging_tool",
        description = "Logs one info message, only when the request asked for logs (_meta logLevel, SEP-2575)"
    )]
    async fn test_logging_tool(
        &self,
        peer: Peer<RoleServer>,
        meta: RequestMetaObject,
    ) -> Result<CallToolResult, ErrorData> {
        // No logLevel: the client did not ask for logs, so none may be sent.
        if let Some(level) = meta.log_level()
            && matches!(level, LoggingLevel::Debug | LoggingLevel::Info)
        {
            let param = from_json(
                json!({ "level": "info", "logger": "conformance", "data": "test_logging_tool ran" }),
            )?;
            peer.notify_logging_message(param).await.map_err(internal)?;
        }
        Ok(text("Logging tool executed"))
    }

    #[tool(
        name = "test_trigger_tool_change",
        description = "Announces a tool-list change to every open subscriptions/listen stream"
    )]
    async fn test_trigger_tool_change(&self) -> CallToolResult {
        self.announce(ServerNotification::ToolListChangedNotification(
            ToolListChangedNotification::default(),
        ));
        text("Tool list change announced")
    }

    #[tool(
        name = "test_trigger_prompt_change",
        description = "Announces a prompt-list change to every open subscriptions/listen stream"
    )]
    async fn test_trigger_prompt_change(&self) -> CallToolResult {
        self.announce(ServerNotification::PromptListChangedNotification(
            PromptListChangedNotification::default(),
        ));
        text("Prompt list change announced")
    }

    #[tool(
        name = "test_sampling",
        description = "Asks the client's LLM through sampling"
    )]
    async fn test_sampling(
        &self,
        peer: Peer<RoleServer>,
        Parameters(p): Parameters<PromptArg>,
    ) -> Result<CallToolResult, ErrorData> {
        if let Some(refusal) = undeclared(&peer, "sampling", |c| c.sampling.is_some()) {
            return Ok(refusal);
        }
        let params = from_json(json!({
            "messages": [{ "role": "user", "content": { "type": "text", "text": p.prompt } }],
            "maxTokens": 100
        }))?;
        let result = peer
            .create_message(params)
            .await
            .map_err(|e| internal(format!("sampling failed: {e}")))?;
        let reply = serde_json::to_value(&result.message.content)
            .ok()
            .and_then(|c| c.get("text").and_then(|t| t.as_str()).map(str::to_owned))
            .unwrap_or_default();
        Ok(text(format!("LLM response: {reply}")))
    }

    #[tool(
        name = "test_elicitation",
        description = "Asks the user for a username and email"
    )]
    async fn test_elicitation(
        &self,
        peer: Peer<RoleServer>,
        Parameters(p): Parameters<MessageArg>,
    ) -> Result<CallToolResult, ErrorData> {
        if let Some(refusal) = undeclared(&peer, "elicitation", |c| c.elicitation.is_some()) {
            return Ok(refusal);
        }
        let properties = json!({
            "username": { "type": "string", "description": "User's response" },
            "email": { "type": "string", "description": "User's email address" }
        });
        let required = ["username", "email"];
        Self::elicit(&peer, &p.message, properties, &required, "User response").await
    }

    #[tool(
        name = "test_elicitation_sep1034_defaults",
        description = "Elicitation with a default for every primitive type (SEP-1034)"
    )]
    async fn test_elicitation_sep1034_defaults(
        &self,
        peer: Peer<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let properties = json!({
            "name": { "type": "string", "description": "User name", "default": "John Doe" },
            "age": { "type": "integer", "description": "User age", "default": 30 },
            "score": { "type": "number", "description": "User score", "default": 95.5 },
            "status": {
                "type": "string", "description": "User status",
                "enum": ["active", "inactive", "pending"], "default": "active"
            },
            "verified": { "type": "boolean", "description": "Verification status", "default": true }
        });
        let message = "Please review your information";
        Self::elicit(&peer, message, properties, &[], "Elicitation completed").await
    }

    #[tool(
        name = "test_elicitation_sep1330_enums",
        description = "Elicitation with the five enum schema variants (SEP-1330)"
    )]
    async fn test_elicitation_sep1330_enums(
        &self,
        peer: Peer<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let properties = json!({
            "untitledSingle": {
                "type": "string", "description": "Untitled single-select",
                "enum": ["option1", "option2", "option3"]
            },
            "titledSingle": {
                "type": "string", "description": "Titled single-select",
                "oneOf": [
                    { "const": "value1", "title": "First Option" },
                    { "const": "value2", "title": "Second Option" },
                    { "const": "value3", "title": "Third Option" }
                ]
            },
            "legacyEnum": {
                "type": "string", "description": "Legacy titled enum",
                "enum": ["opt1", "opt2", "opt3"],
                "enumNames": ["Option One", "Option Two", "Option Three"]
            },
            "untitledMulti": {
                "type": "array", "description": "Untitled multi-select",
                "items": { "type": "string", "enum": ["option1", "option2", "option3"] }
            },
            "titledMulti": {
                "type": "array", "description": "Titled multi-select",
                "items": { "anyOf": [
                    { "const": "value1", "title": "First Choice" },
                    { "const": "value2", "title": "Second Choice" },
                    { "const": "value3", "title": "Third Choice" }
                ] }
            }
        });
        let message = "Please choose your options";
        Self::elicit(&peer, message, properties, &[], "Elicitation completed").await
    }
}

impl ServerHandler for Fixtures {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_logging()
                .enable_completions()
                .enable_prompts()
                .enable_prompts_list_changed()
                .enable_resources()
                .enable_resources_subscribe()
                .enable_tools()
                .enable_tool_list_changed()
                .enable_tasks()
                .build(),
        )
        .with_server_info(Implementation::new(
            "gatehouse-conformance",
            env!("CARGO_PKG_VERSION"),
        ))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.tool_router
            .call(ToolCallContext::new(self, request, context))
            .await
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tool_router.list_all()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tool_router.get(name).cloned()
    }

    async fn set_level(
        &self,
        _request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        Ok(())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        // Minimal completion: a few fixed candidates filtered by the typed prefix.
        let prefix = request.argument.value.to_lowercase();
        let values: Vec<String> = ["paris", "park", "party"]
            .iter()
            .filter(|v| v.starts_with(&prefix))
            .map(|v| (*v).to_owned())
            .collect();
        // The constructor sets `resultType: "complete"` (required on 2026-07-28, SEP-2322;
        // rmcp strips it for older peers).
        Ok(CompleteResult::new(
            CompletionInfo::with_all_values(values).map_err(internal)?,
        ))
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        Ok(GetTaskResult::new(
            self.shared.tasks.get_task(&request.task_id)?,
        ))
    }

    async fn update_task(
        &self,
        request: UpdateTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.shared
            .tasks
            .update_task(&request.task_id, request.input_responses)
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.shared.tasks.cancel_task(&request.task_id)
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        // Everything asked for; rmcp narrows it to what get_info advertises.
        Some(requested.clone())
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        let mut changes = self.shared.changes.subscribe();
        loop {
            let change = tokio::select! {
                () = context.cancelled() => return Ok(()),
                change = changes.recv() => change,
            };
            match change {
                // The sink tags it with the subscription id and drops what the filter excludes.
                Ok(n) => match context.sink().send(n).await {
                    Ok(()) | Err(SubscriptionSendError::NotificationNotAccepted(_)) => {}
                    Err(_) => return Ok(()),
                },
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            }
        }
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(vec![
            Resource::new("test://static-text", "static-text")
                .with_description("A static text resource")
                .with_mime_type("text/plain"),
            Resource::new("test://static-binary", "static-binary")
                .with_description("A static binary resource (1x1 PNG)")
                .with_mime_type("image/png"),
            Resource::new("test://watched-resource", "watched-resource")
                .with_description("A resource clients can subscribe to")
                .with_mime_type("text/plain"),
        ]))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(vec![
            ResourceTemplate::new("test://template/{id}/data", "template-data")
                .with_description("Data for an id")
                .with_mime_type("application/json"),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let uri = request.uri.as_str();
        let contents = match uri {
            "test://static-text" => {
                ResourceContents::text("This is the content of the static text resource.", uri)
            }
            "test://static-binary" => {
                ResourceContents::blob(RED_PIXEL_PNG, uri).with_mime_type("image/png")
            }
            "test://watched-resource" => ResourceContents::text("Watched resource content.", uri),
            _ => match uri
                .strip_prefix("test://template/")
                .and_then(|rest| rest.strip_suffix("/data"))
                .filter(|id| !id.is_empty() && !id.contains('/'))
            {
                Some(id) => ResourceContents::text(
                    json!({ "id": id, "templateTest": true, "data": format!("Data for ID: {id}") })
                        .to_string(),
                    uri,
                )
                .with_mime_type("application/json"),
                None => {
                    return Err(ErrorData::resource_not_found(
                        "resource not found",
                        Some(json!({ "uri": uri })),
                    ));
                }
            },
        };
        Ok(ReadResourceResult::new(vec![contents]).into())
    }
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.shared
            .subscriptions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(request.uri);
        Ok(())
    }
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.shared
            .subscriptions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&request.uri);
        Ok(())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let arg = |name: &str, description: &str| {
            PromptArgument::new(name)
                .with_description(description)
                .with_required(true)
        };
        Ok(ListPromptsResult::with_all_items(vec![
            Prompt::new(
                "test_simple_prompt",
                Some("A simple prompt without arguments"),
                None,
            ),
            Prompt::new(
                "test_prompt_with_arguments",
                Some("A prompt with two required arguments"),
                Some(vec![
                    arg("arg1", "First test argument"),
                    arg("arg2", "Second test argument"),
                ]),
            ),
            Prompt::new(
                "test_prompt_with_embedded_resource",
                Some("A prompt that embeds a resource"),
                Some(vec![arg("resourceUri", "URI of the resource to embed")]),
            ),
            Prompt::new(
                "test_prompt_with_image",
                Some("A prompt with an image"),
                None,
            ),
            Prompt::new(
                rounds::PROMPT,
                Some("Asks for its context through an input-required result (SEP-2322)"),
                None,
            ),
        ]))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        if request.name == rounds::PROMPT {
            return rounds::input_required_prompt(request.input_responses.as_ref());
        }
        let args = request.arguments.unwrap_or_default();
        let arg = |name: &str| -> Result<String, ErrorData> {
            args.get(name)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
                .ok_or_else(|| ErrorData::invalid_params(format!("missing argument {name}"), None))
        };
        let messages = match request.name.as_str() {
            "test_simple_prompt" => vec![PromptMessage::new_text(
                Role::User,
                "This is a simple prompt for testing.",
            )],
            "test_prompt_with_arguments" => vec![PromptMessage::new_text(
                Role::User,
                format!(
                    "Prompt with arguments: arg1='{}', arg2='{}'",
                    arg("arg1")?,
                    arg("arg2")?
                ),
            )],
            "test_prompt_with_embedded_resource" => vec![
                PromptMessage::new(
                    Role::User,
                    ContentBlock::resource(ResourceContents::text(
                        "Embedded resource content for testing.",
                        arg("resourceUri")?,
                    )),
                ),
                PromptMessage::new_text(Role::User, "Please process the embedded resource above."),
            ],
            "test_prompt_with_image" => vec![
                PromptMessage::new(Role::User, ContentBlock::image(RED_PIXEL_PNG, "image/png")),
                PromptMessage::new_text(Role::User, "Please analyze the image above."),
            ],
            _ => return Err(ErrorData::invalid_params("unknown prompt", None)),
        };
        Ok(GetPromptResult::new(messages).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The audio fixture must be a well-formed WAV: clients may decode it.
    #[test]
    fn tiny_wav_is_a_consistent_riff_wave_file() {
        let w = tiny_wav();
        assert_eq!(&w[0..4], b"RIFF");
        assert_eq!(&w[8..16], b"WAVEfmt ");
        let riff_len = u32::from_le_bytes(w[4..8].try_into().unwrap()) as usize;
        assert_eq!(riff_len + 8, w.len());
        let data_len = u32::from_le_bytes(w[40..44].try_into().unwrap()) as usize;
        assert_eq!(&w[36..40], b"data");
        assert_eq!(44 + data_len, w.len());
    }

    // The json-schema-2020-12 scenario checks these keywords survive tools/list.
    #[test]
    fn json_schema_tool_keeps_2020_12_keywords() {
        let tool = json_schema_tool();
        let s = &tool.input_schema;
        assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
        assert!(s["$defs"]["address"].is_object());
        assert_eq!(s["additionalProperties"], false);
        let router = Fixtures::new().tool_router;
        assert!(router.get(JSON_SCHEMA_TOOL).is_some());
        assert!(router.get("test_simple_text").is_some());
    }

    #[test]
    fn embedded_png_decodes() {
        let png = B64.decode(RED_PIXEL_PNG).unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }
}
