//! rmcp glue: the verified [`Caller`](crate::Caller) reaches tools as an ordinary argument, and
//! [`Protected`] wraps a server with the library's per-call behaviour.
//!
//! rmcp's Streamable HTTP service puts the HTTP request's `http::request::Parts` into the MCP
//! request's extensions; the edge layer put the `Caller` into those parts' extensions. The
//! extractors read it from there so that a tool declares `caller: Caller` (and
//! `request_id: RequestId`) and never touches headers or claims (rust-sdk #153, #644).

mod dependency;
pub(crate) mod direct;
mod extract;
pub mod forward;
mod protected;
mod schema;

pub use dependency::{
    DependencyFailure, DependencySlot, report_dependency_failure, report_tool_dependency_failure,
};
pub use direct::DirectTools;
pub use extract::{
    REQUEST_ID_HEADER, RequestId, caller_from_extensions, request_id_from_extensions,
};
pub use protected::{Protected, report_outcome};
pub use schema::portable_nullables;
