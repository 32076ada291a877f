//! The gateway's audit trail: one `tracing` event per `tools/call` on the `gatehouse::audit`
//! target (the same target and fields as the billing server's), naming the proxied server. The
//! arguments are never logged: they are the user's data, and the upstream's business.

use gatehouse::observe::{Observer, ToolCall};

/// The target audit events are emitted on.
pub const AUDIT_TARGET: &str = "gatehouse::audit";

/// Logs every tool call of one proxied server.
#[derive(Debug, Clone)]
pub struct AuditTrace {
    server: String,
}

impl AuditTrace {
    /// The audit of the proxied server `server`.
    pub fn new(server: impl Into<String>) -> Self {
        Self {
            server: server.into(),
        }
    }
}

impl Observer for AuditTrace {
    fn tool_call(&self, call: &ToolCall<'_>) {
        let caller = call.caller;
        // The tool name is caller-controlled text: bounded before it reaches a log line.
        let tool: String = call.tool.unwrap_or("-").chars().take(128).collect();
        tracing::info!(
            target: AUDIT_TARGET,
            server = %self.server,
            tool = %tool,
            subject = caller.and_then(|c| c.subject.as_deref()),
            client_id = caller.and_then(|c| c.client_id.as_deref()),
            tenant = caller.and_then(|c| c.tenant.as_deref()),
            outcome = call.outcome.as_str(),
            detail = call.reason,
            latency_us = call.latency.as_micros() as u64,
            request_id = call.request_id,
            "tools/call"
        );
    }
}
