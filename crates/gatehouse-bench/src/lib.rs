//! # gatehouse-bench — what the load benchmark (`bench/run`) needs besides the servers under test
//!
//! - [`mint`]: many distinct, valid access tokens from the development issuer, for the
//!   "unique token per request" (cold verification) runs and the 1,000,000-token scale check;
//! - [`ceiling`]: the two bare axum handlers the benchmark compares against — one verifying the
//!   ES256 JWT on every request with `jsonwebtoken` (the crate and backend, aws-lc-rs, that
//!   Gatehouse uses), one doing no verification at all;
//! - [`seed`]: large invoice tables written straight into a billing SQLite database (the scale
//!   check and the hardening runs' voids);
//! - [`args`]: a tiny `--name value` parser, so the binaries need no CLI framework.
//!
//! The binaries are `bench-issuer`, `ceiling` and `seed-invoices` (see `bench/README.md`).
//! Nothing here is used by the library or the server.
#![warn(missing_docs)]

pub mod args;
pub mod ceiling;
pub mod mint;
pub mod seed;
