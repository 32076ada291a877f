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
//! Upstreams are **stdio** servers or **Streamable HTTP** servers. Per principal by default
//! ([`Isolation::PerPrincipal`]) each user gets their own child process, or their own MCP
//! session with the HTTP server, started on the user's first request and kept while it is used —
//! never one per request. A child's environment is built from an allow-list plus values set in
//! configuration; the gateway's own environment (and its secrets) never reach it. An HTTP
//! upstream gets the gateway's own credential for it (from the configuration), at the URL the
//! configuration names, with no redirects followed. The client's token — and any header the
//! client sent — never reaches an upstream: requests to it are built by the rmcp client, not
//! relayed.
//!
//! What is forwarded: `tools/list` (filtered by the policy, `nextCursor` intact), `tools/call`
//! (cancelled upstream when the client cancels or disconnects), `prompts/list`, `prompts/get`,
//! `resources/list`, `resources/read`, `resources/templates/list`. Not yet: progress
//! notifications, server-to-client requests (sampling, elicitation, roots: rmcp's default client
//! declines or answers empty), subscriptions, identity to the upstream beyond a static
//! credential (assertions, token exchange), `503` while an upstream is down (it is a JSON-RPC
//! error today).

pub mod audit;
pub mod config;
pub mod handler;
pub mod pool;
pub mod proxy;

pub use audit::AuditTrace;
pub use config::{HttpTarget, Isolation, Secret, StdioCommand, Transport, UpstreamServer};
pub use handler::GatewayHandler;
pub use pool::{Connection, Pool, PoolError};
pub use proxy::{Gateway, ProxiedServer, build};
