//! # gatehouse-bench — what the load benchmark (`bench/run`) needs besides the servers under test
//!
//! - [`mint`]: many distinct, valid access tokens from the development issuer, for the
//!   "unique token per request" (cold verification) runs and the 1,000,000-token scale check;
//! - [`ceiling`]: the two bare axum handlers the benchmark compares against — one verifying the
//!   ES256 JWT on every request with `jsonwebtoken` (the crate and backend, aws-lc-rs, that
//!   Gatehouse uses), one doing no verification at all;
//! - [`upstream`]: the minimal Streamable HTTP MCP server (one `echo` tool) the gateway rows put
//!   proxies in front of, and [`bare_proxy`]: a reverse proxy on hyper with no authentication,
//!   the ceiling for one proxy hop;
//! - [`seed`]: large invoice tables written straight into a billing SQLite database (the scale
//!   check and the hardening runs' voids);
//! - [`args`]: a tiny `--name value` parser, so the binaries need no CLI framework.
//!
//! The binaries are `bench-issuer`, `ceiling`, `seed-invoices`, `echo-upstream` and
//! `bare-proxy` (see `bench/README.md`).
//! Nothing here is used by the library or the server.
#![warn(missing_docs)]

pub mod args;
pub mod bare_proxy;
pub mod ceiling;
pub mod mint;
pub mod seed;
pub mod upstream;

/// Resolves on SIGINT or SIGTERM (`bench/run` stops its servers with SIGTERM).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term.recv() => {} }
}
