//! The `gatehouse` command's pieces, as a library so that integration tests run exactly what the
//! binary runs: configuration, wiring (`app`), the demo and the development issuer command.
#![warn(missing_docs)]

pub mod app;
pub mod config;
pub mod demo;
pub mod dev_issuer_cmd;
pub mod log_format;
pub mod metrics;
pub mod proxy_cmd;
pub mod proxy_demo;
pub mod serve;
pub mod telemetry;
