//! # gatehouse-gateway
//!
//! Gatehouse in front of an MCP server someone else wrote. The gateway is one more application
//! of the library: the edge (guard, challenges, authentication, rate limits, request limits), the
//! scope policy (per tool, by name or glob, unnamed tools hidden by default) and the observers
//! (audit, metrics) are [`gatehouse::Gatehouse`]'s, mounted with [`gatehouse::Gatehouse::mount`]
//! around a [`GatewayHandler`] — an rmcp `ServerHandler` whose every method forwards to the
//! upstream server through an rmcp client.
//!
//! Request flow: HTTP edge → authentication → policy (403 step-up, hidden tools) → rmcp →
//! [`handler`] → [`pool`] (the upstream process for this principal) → upstream.
//!
//! This slice serves **stdio** upstreams: a child process per principal by default
//! ([`Isolation::PerPrincipal`]), started on the principal's first request and kept while it is
//! used, never one per request. The child's environment is built from an allow-list plus values
//! set in configuration; the gateway's own environment (and its secrets) never reach it. The
//! client's token never reaches it either: the child speaks stdio and gets no credential of the
//! caller's.
//!
//! What is forwarded: `tools/list` (filtered by the policy, `nextCursor` intact), `tools/call`
//! (cancelled upstream when the client cancels or disconnects), `prompts/list`, `prompts/get`,
//! `resources/list`, `resources/read`, `resources/templates/list`. Not yet: progress
//! notifications, server-to-client requests (sampling, elicitation, roots: rmcp's default client
//! declines or answers empty), subscriptions, Streamable HTTP upstreams.

pub mod audit;
pub mod config;
pub mod handler;
pub mod pool;
pub mod proxy;

pub use audit::AuditTrace;
pub use config::{Isolation, StdioCommand, StdioUpstream};
pub use handler::GatewayHandler;
pub use pool::{Pool, PoolError};
pub use proxy::{Gateway, ProxiedServer, build};
