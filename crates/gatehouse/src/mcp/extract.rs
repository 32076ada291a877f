//! Extractors: what a tool may take from the request besides its parameters — the verified
//! [`Caller`] and the request id — read from the HTTP request parts that rmcp's Streamable HTTP
//! service puts into the MCP request's extensions.

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
    ext.get::<http::request::Parts>()
        .and_then(|p| p.extensions.get::<Caller>())
        .cloned()
}

impl<C: AsRequestContext> FromContextPart<C> for crate::upstream::UpstreamAccess {
    fn from_context_part(context: &mut C) -> Result<Self, rmcp::ErrorData> {
        let ext = &context.as_request_context().extensions;
        let parts = ext.get::<http::request::Parts>();
        if let Some(access) =
            parts.and_then(|p| p.extensions.get::<crate::upstream::UpstreamAccess>())
        {
            return Ok(access.clone());
        }
        // Authenticated, but no upstreams are configured: every name is unknown (a typed
        // `UpstreamError::Unknown` the tool handles), so a tool that calls upstreams only when
        // configured runs either way.
        match (
            caller_from_extensions(ext),
            crate::upstream::Upstreams::none(),
        ) {
            (Some(caller), Some(none)) => Ok(none.access(caller, None)),
            // A server mounted without the edge: refuse rather than run unauthenticated.
            _ => Err(rmcp::ErrorData::internal_error(
                "request is not authenticated",
                None,
            )),
        }
    }
}

/// The request id of the HTTP request that carried an MCP message (`x-request-id`, set or
/// propagated by the edge), for audit records. `None` when the edge assigned none.
///
/// Tools take it as an argument like [`Caller`]; it is the only piece of the HTTP request a tool
/// needs, so tools never read headers themselves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestId(pub Option<String>);

/// Header that carries the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

impl<C: AsRequestContext> FromContextPart<C> for RequestId {
    fn from_context_part(context: &mut C) -> Result<Self, rmcp::ErrorData> {
        Ok(request_id_from_extensions(
            &context.as_request_context().extensions,
        ))
    }
}

/// The request id of an MCP request (see [`RequestId`]).
pub fn request_id_from_extensions(ext: &rmcp::model::Extensions) -> RequestId {
    RequestId(
        ext.get::<http::request::Parts>()
            .and_then(|p| p.headers.get(REQUEST_ID_HEADER))
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    )
}
