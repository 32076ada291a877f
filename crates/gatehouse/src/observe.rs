//! Observing what Gatehouse decides, for audit trails and metrics, without coupling the library
//! to either.
//!
//! One trait, [`Observer`], receives everything an application records:
//!
//! - every **tool call**, exactly once, as a typed [`ToolCall`] (`caller, tool, outcome, reason,
//!   latency`): from the HTTP edge when it refuses a `tools/call` before the server sees it
//!   (`403 insufficient_scope`), and from the library's wrapper around the server's `call_tool`
//!   ([`crate::mcp::Protected`]) for every call that reaches it — unknown tools and malformed
//!   arguments included. An application gets one audit record per call without writing one;
//! - every **refusal** of the edge with its stable reason code, every **authentication**, every
//!   **verification** that missed the cache (with its latency), and every **finished request**
//!   (route and status).
//!
//! Callbacks run on the request path: they must be cheap and must not block (queue the work).
//! Several observers can be registered ([`crate::GatehouseBuilder::observer`]); each is told
//! everything.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::caller::{Caller, ScopeSet};

/// How a tool call ended, from the point of view of an audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// The caller was authorized and the tool ran; the reason is `ok` or the tool's own code for
    /// an answer that is not a success but not a failure of the system either (`not_found`,
    /// `already_void`, …).
    Allowed,
    /// Authorization refused the call: at the edge (`403` before the tool ran) or inside the
    /// tool (a missing scope, no tenant).
    Denied,
    /// The call failed for reasons other than authorization (unknown tool, bad arguments, a tool
    /// error, a storage failure).
    Error,
}

impl Outcome {
    /// The stable spelling (`allowed`, `denied`, `error`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Denied => "denied",
            Self::Error => "error",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A text that is none of `allowed`, `denied`, `error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown outcome")]
pub struct UnknownOutcome;

impl std::str::FromStr for Outcome {
    type Err = UnknownOutcome;
    fn from_str(s: &str) -> Result<Self, UnknownOutcome> {
        match s {
            "allowed" => Ok(Self::Allowed),
            "denied" => Ok(Self::Denied),
            "error" => Ok(Self::Error),
            _ => Err(UnknownOutcome),
        }
    }
}

/// Where a tool call was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The HTTP edge refused it before the MCP server saw the request.
    Edge,
    /// It reached the MCP server (the tool ran, or the server refused it).
    Server,
}

/// One `tools/call`, as observers see it. Borrowed: copy what you keep.
#[derive(Debug, Clone, Copy)]
pub struct ToolCall<'a> {
    /// The verified caller (`None` only when a server is mounted without the edge).
    pub caller: Option<&'a Caller>,
    /// The tool name as requested (caller-controlled text: bound it before using it as a label);
    /// `None` when the edge could not read the target unambiguously.
    pub tool: Option<&'a str>,
    /// Whether the server knows a tool of that name (`false` at the edge: it does not ask).
    pub known_tool: bool,
    /// For a refusal for lack of scope: every scope the call needed (minimised through the
    /// hierarchy), as the `403` challenge named them.
    pub required: Option<&'a ScopeSet>,
    /// How it ended.
    pub outcome: Outcome,
    /// A short, stable code: `ok`, `insufficient_scope`, `unknown_tool`, `invalid_params`,
    /// `tool_error`, or the code a tool reported ([`crate::mcp::report_outcome`]).
    pub reason: &'a str,
    /// Time spent deciding and running the call (at the edge: from the start of the request).
    pub latency: Duration,
    /// The request id (`x-request-id`) of the HTTP request, when one was assigned.
    pub request_id: Option<&'a str>,
    /// Where it was decided.
    pub stage: Stage,
}

/// Which route of the protected server a request was for, for request metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// The MCP endpoint.
    Mcp,
    /// The protected-resource metadata document.
    Metadata,
    /// Anything else (answered `404`).
    Other,
}

impl Route {
    /// `mcp`, `metadata` or `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mcp => "mcp",
            Self::Metadata => "metadata",
            Self::Other => "other",
        }
    }
}

/// Receives what the library decides. Every method has an empty default.
pub trait Observer: Send + Sync + 'static {
    /// A tool call was decided (exactly once per `tools/call`, see the module docs).
    fn tool_call(&self, call: &ToolCall<'_>) {
        let _ = call;
    }

    /// A bearer token was verified (from the cache or a verifier). Called on the success path
    /// of every authenticated request: keep it to an atomic increment.
    fn authenticated(&self, caller: &Caller) {
        let _ = caller;
    }

    /// A token missed the verified-token cache and went to a verifier, which took `elapsed`.
    fn verified(&self, elapsed: Duration) {
        let _ = elapsed;
    }

    /// A request was refused by the edge; `reason` is the stable reason code of the rejection
    /// (`invalid.expired`, `request.no_credentials`, `policy.insufficient_scope`,
    /// `limits.overloaded`, …).
    fn rejected(&self, reason: &'static str) {
        let _ = reason;
    }

    /// A request started being processed (it holds one of the concurrency permits).
    fn request_started(&self) {}

    /// A request's response head is ready (every request, refused or not, including those
    /// refused for lack of a permit, which never started).
    fn request_finished(&self, route: Route, status: u16, started: bool) {
        let _ = (route, status, started);
    }
}

/// The observer used when none is configured.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopObserver;

impl Observer for NoopObserver {}

/// Several observers told the same things, in registration order.
#[derive(Clone, Default)]
pub(crate) struct Observers(Arc<[Arc<dyn Observer>]>);

impl fmt::Debug for Observers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Observers({})", self.0.len())
    }
}

impl Observers {
    pub(crate) fn new(list: Vec<Arc<dyn Observer>>) -> Self {
        Self(list.into())
    }
}

impl Observer for Observers {
    fn tool_call(&self, call: &ToolCall<'_>) {
        self.0.iter().for_each(|o| o.tool_call(call));
    }
    fn authenticated(&self, caller: &Caller) {
        self.0.iter().for_each(|o| o.authenticated(caller));
    }
    fn verified(&self, elapsed: Duration) {
        self.0.iter().for_each(|o| o.verified(elapsed));
    }
    fn rejected(&self, reason: &'static str) {
        self.0.iter().for_each(|o| o.rejected(reason));
    }
    fn request_started(&self) {
        self.0.iter().for_each(|o| o.request_started());
    }
    fn request_finished(&self, route: Route, status: u16, started: bool) {
        self.0
            .iter()
            .for_each(|o| o.request_finished(route, status, started));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Log(Mutex<Vec<String>>);
    impl Observer for Log {
        fn rejected(&self, reason: &'static str) {
            self.0.lock().unwrap().push(reason.to_owned());
        }
        fn tool_call(&self, call: &ToolCall<'_>) {
            self.0
                .lock()
                .unwrap()
                .push(format!("{}:{}", call.tool.unwrap_or("?"), call.outcome));
        }
    }

    #[test]
    fn every_observer_hears_everything_in_order() {
        let a = Arc::new(Log::default());
        let b = Arc::new(Log::default());
        let all = Observers::new(vec![a.clone(), b.clone()]);
        all.rejected("x");
        all.tool_call(&ToolCall {
            caller: None,
            tool: Some("t"),
            known_tool: true,
            required: None,
            outcome: Outcome::Denied,
            reason: "insufficient_scope",
            latency: Duration::ZERO,
            request_id: None,
            stage: Stage::Edge,
        });
        for log in [a, b] {
            assert_eq!(*log.0.lock().unwrap(), ["x", "t:denied"]);
        }
    }

    #[test]
    fn outcomes_round_trip_through_their_spelling() {
        for o in [Outcome::Allowed, Outcome::Denied, Outcome::Error] {
            assert_eq!(o.as_str().parse::<Outcome>(), Ok(o));
        }
        assert_eq!("maybe".parse::<Outcome>(), Err(UnknownOutcome));
    }
}
