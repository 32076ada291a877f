//! rmcp glue: the verified [`Caller`] reaches tools as an ordinary argument.
//!
//! rmcp's Streamable HTTP service puts the HTTP request's `http::request::Parts` into the MCP
//! request's extensions; the edge layer put the `Caller` into those parts' extensions. This
//! extractor reads it from there so that a tool declares `caller: Caller` and never touches
//! headers or claims (rust-sdk #153, #644).

use rmcp::handler::server::common::{AsRequestContext, FromContextPart};

use crate::caller::Caller;

impl<C: AsRequestContext> FromContextPart<C> for Caller {
    fn from_context_part(context: &mut C) -> Result<Self, rmcp::ErrorData> {
        caller_from_extensions(&context.as_request_context().extensions).ok_or_else(|| {
            // Reaching a tool without a Caller means the service was mounted without the
            // Gatehouse layer: refuse rather than run unauthenticated.
            rmcp::ErrorData::internal_error("request is not authenticated", None)
        })
    }
}

/// The `Caller` of an MCP request, if the Gatehouse layer authenticated it. For handlers that
/// implement `ServerHandler` methods by hand (`list_tools`, `call_tool`).
pub fn caller_from_extensions(ext: &rmcp::model::Extensions) -> Option<Caller> {
    ext.get::<http::request::Parts>().and_then(|p| p.extensions.get::<Caller>()).cloned()
}
