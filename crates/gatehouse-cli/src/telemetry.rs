//! Logging: `tracing`, human-readable on a terminal, JSON lines with `--log-json`.
//!
//! The default filter keeps rmcp at `warn`: at `info` it writes three lines per request, which
//! costs about a quarter of the throughput and floods disks under load (test-peers.md).

use tracing_subscriber::EnvFilter;

/// The filter used when `RUST_LOG` is not set.
pub const DEFAULT_FILTER: &str = "info,rmcp=warn,sqlx=warn,hyper=warn";

/// Installs the global subscriber. Safe to call once per process.
pub fn init(json: bool) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    if let Err(e) = result {
        eprintln!("warning: logging already initialised: {e}");
    }
}
