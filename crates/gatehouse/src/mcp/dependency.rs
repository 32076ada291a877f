//! A server telling the edge that something it depends on failed, so that the client gets the
//! HTTP answer that means it — `503` + `Retry-After` for an outage, `502` for a refusal — instead
//! of a JSON-RPC error inside a `200` that says "try again" to nobody, or a relayed `401` that
//! would send the client to re-authenticate for nothing.
//!
//! The edge puts a [`DependencySlot`] into every admitted `POST`; rmcp carries the request's
//! parts (and so the slot) into the handler's context; a handler calls
//! [`report_dependency_failure`] (or, from a tool body run through [`crate::mcp::Protected`],
//! which has no context at hand, [`report_tool_dependency_failure`]); after rmcp has answered, the edge replaces the answer with the
//! refusal ([`crate::http::Rejection::DependencyUnavailable`] or
//! [`crate::http::Rejection::DependencyRefused`]). This works where the answer is one JSON
//! response (stateless mode, the default); on an SSE stream the status is already sent and the
//! handler's own JSON-RPC error is what the client gets.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// What failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DependencyFailure {
    /// Down or unreachable: try again after `retry_after`.
    Unavailable {
        /// When to try again.
        retry_after: Duration,
    },
    /// It refused this server (its credential, its policy).
    Refused,
}

/// Where a handler leaves a [`DependencyFailure`] for the edge. One per request; the first
/// report stands.
#[derive(Debug, Clone, Default)]
pub struct DependencySlot(Arc<OnceLock<DependencyFailure>>);

impl DependencySlot {
    /// What was reported, if anything.
    pub fn get(&self) -> Option<DependencyFailure> {
        self.0.get().copied()
    }

    pub(crate) fn set(&self, failure: DependencyFailure) {
        let _ = self.0.set(failure);
    }
}

tokio::task_local! {
    /// The slot of the `tools/call` that [`crate::mcp::Protected`] is running.
    static CURRENT: Option<DependencySlot>;
}

/// The slot of the request whose MCP context `extensions` are given.
pub(crate) fn slot_of(extensions: &rmcp::model::Extensions) -> Option<DependencySlot> {
    extensions
        .get::<http::request::Parts>()
        .and_then(|p| p.extensions.get::<DependencySlot>())
        .cloned()
}

/// Runs `call` (one `tools/call`) with `slot` as the one [`report_tool_dependency_failure`]
/// fills.
pub(crate) async fn with_slot<F: std::future::Future>(
    slot: Option<DependencySlot>,
    call: F,
) -> F::Output {
    CURRENT.scope(slot, call).await
}

/// Reports `failure` for the tool call being run, from inside a tool body (an application's
/// storage is down: `Unavailable`). Same effect as [`report_dependency_failure`]; returns false
/// outside a call run by [`crate::mcp::Protected`] or when nothing will change the answer.
pub fn report_tool_dependency_failure(failure: DependencyFailure) -> bool {
    CURRENT
        .try_with(|slot| slot.as_ref().map(|s| s.set(failure)).is_some())
        .unwrap_or(false)
}

/// Reports `failure` for the request whose MCP context `extensions` are given (a handler's
/// `RequestContext::extensions`). Returns false when the request did not come through the edge
/// (nothing will change the answer).
pub fn report_dependency_failure(
    extensions: &rmcp::model::Extensions,
    failure: DependencyFailure,
) -> bool {
    match slot_of(extensions) {
        Some(slot) => {
            slot.set(failure);
            true
        }
        None => false,
    }
}
