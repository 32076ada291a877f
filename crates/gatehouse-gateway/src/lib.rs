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
//! upstream gets the gateway's own credential for it (static, exchanged per user by RFC 8693, or a
//! JWT the gateway signs per user: [`assertion`]), at the URL the configuration names, with no
//! redirects followed. The client's token — and any header the
//! client sent — never reaches an upstream: requests to it are built by the rmcp client, not
//! relayed. The common call takes the forwarding path (`forward`): without sessions, a
//! `tools/call` that one strict parse reads unambiguously is sent to the upstream as the client's
//! JSON-RPC message with only its id replaced — in a request the gateway builds (HTTP), or as one
//! line on the child's stdin (`child`) — and its answer comes back the same way.
//!
//! What is forwarded: `tools/list` (filtered by the policy, `nextCursor` intact), `tools/call`
//! (cancelled upstream when the client cancels or disconnects), prompts, resources and resource
//! templates, `completion/complete`, `logging/setLevel`, resource subscriptions. What the
//! upstream sends on its own goes back through [`relay`]: progress to the request that asked
//! (with the client's token, in order, before the answer), log messages and sampling or
//! elicitation requests to the most recent request of the same principal, resource updates to
//! the subscribed sessions — never to another user. With sessions off (the default), or on a
//! `shared` upstream, sampling and elicitation are refused to the upstream with an explicit error
//! ([`Unbridgeable`]), as they are for a 2026-07-28 client. Not bridged: roots (the gateway
//! declares none), list-change notifications, tasks. A crashed or unreachable upstream is `503`
//! with `Retry-After`; an upstream that refuses the gateway's credential is `502`.

pub mod assertion;
pub mod audit;
pub(crate) mod child;
pub mod config;
pub(crate) mod forward;
pub mod handler;
pub mod pool;
pub mod proxy;
pub(crate) mod recorder;
pub mod relay;

pub use assertion::{Asserter, AssertionSettings};
pub use audit::AuditTrace;
pub use config::{HttpTarget, Isolation, Secret, StdioCommand, Transport, Trust, UpstreamServer};
pub use handler::GatewayHandler;
pub use pool::{Connection, Lease, Pool, PoolError};
pub use proxy::{Gateway, ProxiedServer, build};
pub use relay::Unbridgeable;
