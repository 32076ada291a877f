//! Logging: `tracing`, human-readable on a terminal, JSON lines with `--log-json`.
//!
//! The default filter keeps rmcp at `warn`: at `info` it writes three lines per request, which
//! costs about a quarter of the throughput and floods disks under load (test-peers.md).
//!
//! Every line logged while a request is handled carries its `request_id` (the `x-request-id`
//! header, set or generated at the edge) through the library's `request` span
//! ([`gatehouse::http::limits::request_span`]). The span records the method and the path only:
//! never the query string (where a careless client may put `access_token`) and never headers.
//!
//! Fields of the text lines are written by [`crate::log_format::PlainFields`]: the default's
//! output without colours, cheaper, with control characters escaped in every value.
//!
//! Lines are formatted on the thread that logs them and written to stderr by a dedicated thread
//! (`tracing-appender`'s non-blocking writer, a queue of up to 4,096 lines) through a 64 KiB
//! buffer that is flushed whenever the queue runs empty: under load many lines share one
//! `write`, and a request never waits for the disk or the terminal. The queue is not lossy: when
//! it is full, logging waits rather than dropping lines (the audit trail goes through it).
//! [`init`] returns the guard that flushes what is left when the process ends.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The filter used when `RUST_LOG` is not set.
pub const DEFAULT_FILTER: &str = "info,rmcp=warn,sqlx=warn,hyper=warn";

/// Size of the buffer between the log thread and stderr.
const LOG_BUFFER_BYTES: usize = 64 * 1024;

/// Lines that may wait for the log thread before logging blocks. tracing-appender's default,
/// 128,000, let a burst hold tens of megabytes of formatted lines (seen as RSS under load).
const LOG_QUEUE_LINES: usize = 4096;

/// Flushes buffered log lines when dropped: keep it alive until the process is about to exit.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard(#[allow(dead_code)] tracing_appender::non_blocking::WorkerGuard);

/// Installs the global subscriber. Safe to call once per process.
pub fn init(json: bool) -> LogGuard {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    // Colours only for a person at a terminal: escape codes in a log file are noise, and
    // writing them costs time on every line.
    let ansi = std::io::stderr().is_terminal();
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .thread_name("gatehouse-log")
        .finish(std::io::BufWriter::with_capacity(
            LOG_BUFFER_BYTES,
            std::io::stderr(),
        ));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi);
    let output = if json {
        fmt.json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_filter(filter)
            .boxed()
    } else {
        // Cheaper fields, and control characters escaped in every value, on a terminal too
        // (where field names lose their italics: a forged line matters more than a style).
        fmt.fmt_fields(crate::log_format::PlainFields)
            .with_filter(filter)
            .boxed()
    };
    if let Err(e) = tracing_subscriber::registry().with(output).try_init() {
        eprintln!("warning: logging already initialised: {e}");
    }
    LogGuard(guard)
}
