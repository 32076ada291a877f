//! The SEP-2663 fixtures (tasks extension, `io.modelcontextprotocol/tasks`), with the names and
//! behaviour the suite's `tasks-*` scenario descriptions require. The server decides which calls
//! become tasks: a task-supporting tool called by a request that declared the extension (in its
//! own `_meta` client capabilities or at `initialize`) answers a `CreateTaskResult`; without
//! the declaration it runs synchronously, or — when it needs a task — is refused with `-32021`
//! naming the extension. rmcp's [`TaskManager`] keeps the tasks (durable before the
//! `CreateTaskResult` leaves, TTL, `tasks/get`/`update`/`cancel`).

use std::time::Duration;

use rmcp::handler::server::tool::InputResponses as InputResponsesPart;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResponse, CallToolResult, ClientCapabilities, CreateTaskResult};
use rmcp::service::RequestContext;
use rmcp::task_manager::{TaskContext, TaskExit, TaskManager, TaskOptions};
use rmcp::{ErrorData, RoleServer, tool, tool_router};
use serde::Deserialize;
use serde_json::Value;

use crate::fixtures::{Fixtures, text};
use crate::rounds;

/// Whether this request declared the tasks extension.
fn declared(context: &RequestContext<RoleServer>) -> bool {
    context
        .client_capabilities()
        .is_some_and(|c| c.supports_tasks())
}

/// `-32021` naming the tasks extension (SEP-2575 "Missing Required Capabilities").
fn tasks_required() -> ErrorData {
    ErrorData::missing_required_client_capability(
        ClientCapabilities::builder().enable_tasks().build(),
    )
}

/// Spawns `work` as a task and answers its `CreateTaskResult`.
fn spawn<F>(manager: &TaskManager, work: impl FnOnce(TaskContext) -> F) -> CallToolResponse
where
    F: Future<Output = Result<CallToolResult, TaskExit>> + Send + 'static,
{
    let task = manager.spawn(TaskOptions::new(), |ctx| Box::pin(work(ctx)));
    CreateTaskResult::new(task).into()
}

/// Waits `seconds` (the fixture's specified work), or ends `Cancelled` when `tasks/cancel`
/// arrives first.
async fn work_for(ctx: &TaskContext, seconds: u64) -> Result<(), TaskExit> {
    tokio::select! {
        () = tokio::time::sleep(Duration::from_secs(seconds)) => Ok(()),
        () = ctx.cancelled() => Err(TaskExit::Cancelled),
    }
}

/// The `field` of an elicitation answer delivered by `tasks/update`.
fn answered(value: &Value, field: &str) -> Result<Value, TaskExit> {
    let Value::Object(answer) = value else {
        return Err(ErrorData::invalid_params("inputResponses: malformed response", None).into());
    };
    Ok(rounds::elicited(answer, field)?.unwrap_or(Value::Null))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct GreetArgs {
    /// Who to greet.
    name: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct ComputeArgs {
    /// How long the computation takes, in seconds.
    seconds: u64,
    /// A label echoed in the result.
    #[serde(default)]
    label: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct DeleteArgs {
    /// The file to delete (nothing is deleted: the fixture only asks for confirmation).
    filename: String,
}

#[tool_router(router = tasks_router, vis = "pub(crate)")]
impl Fixtures {
    #[tool(
        name = "greet",
        description = "Greets by name (synchronous only, never a task)"
    )]
    async fn greet(&self, Parameters(a): Parameters<GreetArgs>) -> CallToolResult {
        text(format!("Hello, {}!", a.name))
    }

    #[tool(
        name = "slow_compute",
        description = "Works for `seconds`, then answers; a task when the request declared the tasks extension"
    )]
    async fn slow_compute(
        &self,
        context: RequestContext<RoleServer>,
        Parameters(a): Parameters<ComputeArgs>,
    ) -> Result<CallToolResponse, ErrorData> {
        let label = a.label.unwrap_or_default();
        let result = move || text(format!("computed {label} after {}s", a.seconds));
        if !declared(&context) {
            tokio::time::sleep(Duration::from_secs(a.seconds)).await;
            return Ok(result().into());
        }
        Ok(spawn(&self.shared.tasks, move |ctx| async move {
            work_for(&ctx, a.seconds).await?;
            Ok(result())
        }))
    }

    #[tool(
        name = "failing_job",
        description = "Needs a task (-32021 without the extension); the task completes with a tool error"
    )]
    async fn failing_job(
        &self,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if !declared(&context) {
            return Err(tasks_required());
        }
        Ok(spawn(&self.shared.tasks, |ctx| async move {
            work_for(&ctx, 1).await?;
            Ok(CallToolResult::error(vec![
                rmcp::model::ContentBlock::text("failing_job failed as designed"),
            ]))
        }))
    }

    #[tool(
        name = "protocol_error_job",
        description = "Needs a task; the task fails with a protocol-level error (status failed)"
    )]
    async fn protocol_error_job(
        &self,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if !declared(&context) {
            return Err(tasks_required());
        }
        Ok(spawn(&self.shared.tasks, |_ctx| async move {
            Err(ErrorData::internal_error("protocol_error_job failed as designed", None).into())
        }))
    }

    #[tool(
        name = "confirm_delete",
        description = "Needs a task; the task asks for a confirmation (input_required) before it completes"
    )]
    async fn confirm_delete(
        &self,
        context: RequestContext<RoleServer>,
        Parameters(a): Parameters<DeleteArgs>,
    ) -> Result<CallToolResponse, ErrorData> {
        if !declared(&context) {
            return Err(tasks_required());
        }
        let request = rounds::elicit(&format!("Delete {}?", a.filename), "confirm", "boolean")?;
        Ok(spawn(&self.shared.tasks, move |ctx| async move {
            let answer = ctx.request_input("confirm_delete", request).await?;
            let verdict = if answered(&answer, "confirm")? == Value::Bool(true) {
                "deleted"
            } else {
                "kept"
            };
            Ok(text(format!("{}: {verdict}", a.filename)))
        }))
    }

    #[tool(
        name = "multi_input",
        description = "Needs a task; the task asks for two inputs at once and completes when both are answered"
    )]
    async fn multi_input(
        &self,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if !declared(&context) {
            return Err(tasks_required());
        }
        let first = rounds::elicit("First name?", "name", "string")?;
        let second = rounds::elicit("Second name?", "name", "string")?;
        Ok(spawn(&self.shared.tasks, move |ctx| async move {
            let (a, b) = tokio::join!(
                ctx.request_input("first", first),
                ctx.request_input("second", second)
            );
            Ok(text(format!(
                "first: {}, second: {}",
                answered(&a?, "name")?,
                answered(&b?, "name")?
            )))
        }))
    }

    #[tool(
        name = "test_tool_with_task",
        description = "Needs a task: asks for user_name (input-required round), then completes as a task greeting them"
    )]
    async fn test_tool_with_task(
        &self,
        context: RequestContext<RoleServer>,
        InputResponsesPart(answers): InputResponsesPart,
    ) -> Result<CallToolResponse, ErrorData> {
        if !declared(&context) {
            return Err(tasks_required());
        }
        // Round 1 (SEP-2322, before any task exists): ask for the name.
        let Some(a) = rounds::answer(answers.as_ref(), "user_name")? else {
            let request = rounds::elicit("What is your name?", "name", "string")?;
            return Ok(rounds::ask([("user_name", request)], None).into());
        };
        // Round 2: the gathered name goes into the task, whose result shows it.
        let name = match rounds::elicited(a, "name")? {
            Some(Value::String(n)) => n,
            _ => return Err(ErrorData::invalid_params("name must be a string", None)),
        };
        Ok(spawn(&self.shared.tasks, move |_ctx| async move {
            Ok(text(format!("Hello, {name}!")))
        }))
    }
}
