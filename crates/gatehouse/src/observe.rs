//! Observing the edge's decisions, for audit trails and metrics, without coupling the library
//! to either.
//!
//! The HTTP edge calls an [`EdgeObserver`] when it refuses a request, so that an application can
//! record "who tried to void invoice 2041 without `invoices:write`" even though the tool never ran.
//! Callbacks run on the request path: they must be cheap and must not block (queue the work).

use crate::caller::{Caller, ScopeSet};

/// Receives the edge's refusals. Every method has an empty default.
pub trait EdgeObserver: Send + Sync + 'static {
    /// A `tools/call` was refused with `403 insufficient_scope` before reaching the server.
    /// `tool` is `None` when the request's target could not be read unambiguously.
    fn tool_call_denied(
        &self,
        caller: &Caller,
        tool: Option<&str>,
        required: &ScopeSet,
        request_id: Option<&str>,
    ) {
        let _ = (caller, tool, required, request_id);
    }

    /// A bearer token was verified (from the cache or a verifier). Called on the success path
    /// of every authenticated request: keep it to an atomic increment.
    fn authenticated(&self, caller: &Caller) {
        let _ = caller;
    }

    /// A request was refused before reaching the server; `reason` is the stable reason code of
    /// the rejection (`invalid.expired`, `missing_token`, `insufficient_scope`, …).
    fn rejected(&self, reason: &'static str) {
        let _ = reason;
    }
}

/// The observer used when none is configured.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopObserver;

impl EdgeObserver for NoopObserver {}
