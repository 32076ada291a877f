//! Logging: `tracing`, human-readable on a terminal, JSON lines with `--log-json`.
//!
//! The default filter keeps rmcp at `warn`: at `info` it writes three lines per request, which
//! costs about a quarter of the throughput and floods disks under load (test-peers.md).
//!
//! Every line logged while a request is handled carries its `request_id` (the `x-request-id`
//! header, set or generated at the edge) through the `request` span ([`request_span`]). The span
//! records the method and the path only: never the query string (where a careless client may put
//! `access_token`) and never headers.
//!
//! Lines are formatted on the thread that logs them and written to stderr by a dedicated thread
//! (`tracing-appender`'s non-blocking writer, a queue of up to 4,096 lines) through a 64 KiB
//! buffer that is flushed whenever the queue runs empty: under load many lines share one
//! `write`, and a request never waits for the disk or the terminal. The queue is not lossy: when
//! it is full, logging waits rather than dropping lines (the audit trail goes through it).
//! [`init`] returns the guard that flushes what is left when the process ends.
//!
//! Beside the log output, a second layer with its own filter counts the `tools/call` audit events
//! (target `gatehouse::audit`) by tool and outcome for `/metrics`, whatever `RUST_LOG` says.

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicU64, Ordering};

use gatehouse_billing::audit::AUDIT_TARGET;
use gatehouse_billing::server::{TOOL_HISTORY, TOOL_LIST, TOOL_LOOKUP, TOOL_VOID};
use tracing::field::{Field, Visit};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::filter_fn;
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
        fmt.with_filter(filter).boxed()
    };
    let counting = ToolCallCounter.with_filter(filter_fn(|m| m.target() == AUDIT_TARGET));
    if let Err(e) = tracing_subscriber::registry()
        .with(output)
        .with(counting)
        .try_init()
    {
        eprintln!("warning: logging already initialised: {e}");
    }
    LogGuard(guard)
}

/// The span of one HTTP request: `request_id` from the `x-request-id` header (set by the outer
/// request-id layer, so always present), method and path. Info level, so that every line a
/// request logs at info or above names it.
pub fn request_span<B>(req: &http::Request<B>) -> tracing::Span {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!(
        "request",
        request_id = id,
        method = %req.method(),
        path = req.uri().path(),
    )
}

/// Tools counted by name; anything else (tool names are caller-controlled) is `other`, so the
/// label set stays bounded.
const TOOLS: [&str; 5] = [TOOL_LOOKUP, TOOL_LIST, TOOL_VOID, TOOL_HISTORY, "other"];
const OUTCOMES: [&str; 3] = ["allowed", "denied", "error"];

static TOOL_CALLS: [[AtomicU64; 3]; 5] = [const { [const { AtomicU64::new(0) }; 3] }; 5];

/// `(tool, outcome, count)` of every audited `tools/call` since start (only counted when the
/// subscriber of [`init`] is installed, i.e. in the binary).
pub fn tool_calls() -> Vec<(&'static str, &'static str, u64)> {
    let mut out = Vec::new();
    for (t, row) in TOOL_CALLS.iter().enumerate() {
        for (o, n) in row.iter().enumerate() {
            let n = n.load(Ordering::Relaxed);
            if n > 0 {
                out.push((TOOLS[t], OUTCOMES[o], n));
            }
        }
    }
    out
}

struct ToolCallCounter;

#[derive(Default)]
struct AuditFields {
    tool: Option<usize>,
    outcome: Option<usize>,
    tools_call: bool,
}

impl AuditFields {
    fn tool(&mut self, name: &str) {
        self.tool = Some(TOOLS[..4].iter().position(|t| *t == name).unwrap_or(4));
    }
}

impl Visit for AuditFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "outcome" => self.outcome = OUTCOMES.iter().position(|o| *o == value),
            "tool" => self.tool(value),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            // `tool = %name` arrives as Display-through-Debug: no quotes.
            "tool" => self.tool(&format!("{value:?}")),
            "message" => self.tools_call = format!("{value:?}") == "tools/call",
            _ => {}
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for ToolCallCounter {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut f = AuditFields::default();
        event.record(&mut f);
        if let (true, Some(t), Some(o)) = (f.tools_call, f.tool, f.outcome) {
            TOOL_CALLS[t][o].fetch_add(1, Ordering::Relaxed);
        }
    }
}
