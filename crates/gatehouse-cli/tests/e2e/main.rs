//! End-to-end tests of the billing MCP server as users run it: the real `gatehouse` wiring
//! (`app::build` + `App::serve`, the same code as `gatehouse serve`), the real development
//! authorization server, a real SQLite file, real HTTP on 127.0.0.1 ephemeral ports.
//!
//! Invariant guarded here: a caller gets exactly what its token allows — no token, no data
//! (not even `initialize` or `tools/list`); a read token reads its own tenant's invoices and is
//! challenged to step up for `void_invoice`; every `tools/call`, allowed or denied, is audited.

mod credit_notes;
mod demo_commands;
mod direct_dispatch;
mod ops_admin;
mod ops_binary;
mod ops_limits;
mod ops_rate_limits;
mod ops_redis_rate_limits;
mod ops_tls;
mod protocol;
mod refusals;
mod sessions;
mod stack;
mod tools_list;
