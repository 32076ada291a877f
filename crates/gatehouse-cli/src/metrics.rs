//! Metrics (Prometheus / OpenMetrics text at `/metrics` on the admin listener), health
//! (`/healthz`, `/readyz`) and the aggregated audit of authentication failures.
//!
//! [`Metrics`] is an [`Observer`] of the library: it is told every request, refusal,
//! authentication, verification and tool call, and counts them. Hot-path cost: every counter is
//! an atomic increment in a map keyed by `&'static str` (and a `u16` status), read-locked; a key
//! is inserted once, the first time it is seen. Values that other components already count (the
//! token cache, JWKS fetches, introspection requests, rate limiter refusals, dropped audit rows)
//! are read at scrape time, not mirrored per request.
//!
//! `prometheus-client` (the Prometheus project's own Rust client) was chosen over
//! `metrics` + `metrics-exporter-prometheus`: no global recorder, typed registries that tests can
//! create per server, and `Collector`s for scrape-time values.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use gatehouse::observe::{Observer, Outcome, Route, Stage, ToolCall};
use gatehouse::{Caller, Gatehouse};
use gatehouse_billing::audit::AUDIT_TARGET;
use gatehouse_billing::{AuditLog, Store};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Counters keyed by a small, fixed label value. Read-locked on the hot path.
#[derive(Debug)]
pub struct LabeledCounters<K> {
    map: RwLock<HashMap<K, AtomicU64>>,
}

impl<K: Hash + Eq + Copy> Default for LabeledCounters<K> {
    fn default() -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq + Copy> LabeledCounters<K> {
    /// Adds one to `key`.
    pub fn inc(&self, key: K) {
        {
            let map = self.map.read().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = map.get(&key) {
                c.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        map.entry(key)
            .or_insert_with(|| AtomicU64::new(0))
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Current values.
    pub fn snapshot(&self) -> Vec<(K, u64)> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .map(|(k, v)| (*k, v.load(Ordering::Relaxed)))
            .collect()
    }

    /// The value of `key`.
    pub fn get(&self, key: K) -> u64 {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.get(&key).map_or(0, |v| v.load(Ordering::Relaxed))
    }
}

/// True for refusal reasons that are authentication outcomes (as opposed to Host/Origin guard,
/// scope policy, sessions, bodies and rate limits).
pub fn is_auth_failure(reason: &str) -> bool {
    reason.starts_with("invalid.")
        || reason.starts_with("unavailable.")
        || matches!(
            reason,
            "request.no_credentials"
                | "request.empty_token"
                | "request.multiple_authorization"
                | "request.bad_token_characters"
                | "request.token_too_large"
                | "request.token_sent_two_ways"
        )
}

/// Everything the server counts.
pub struct Metrics {
    /// Requests by (route, status).
    pub requests: LabeledCounters<(&'static str, u16)>,
    /// Requests being processed.
    pub in_flight: Gauge,
    /// Authentication outcomes: `ok` or the refusal reason.
    pub auth: LabeledCounters<&'static str>,
    /// Every refusal of the edge by reason.
    pub rejections: LabeledCounters<&'static str>,
    /// Duration of token verifications that missed the cache.
    pub verify_seconds: Histogram,
    /// Number of token verifications that missed the cache (the histogram's count).
    pub verifications: AtomicU64,
    /// Requests refused by `limits.max_concurrent_requests`.
    pub overloaded: AtomicU64,
    /// Requests that hit `limits.request_timeout_seconds`.
    pub timed_out: AtomicU64,
    /// `tools/call` by tool and outcome.
    pub tool_calls: ToolCallCounters,
    sources: OnceLock<Sources>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Components whose own counters are read at scrape time: one protected server (`serve`) or
/// one per proxied server (`proxy`, summed), and the billing audit log when there is one.
struct Sources {
    gatehouses: Vec<Gatehouse>,
    audit: Option<AuditLog>,
}

/// Tool names seen as labels before the rest are counted as `other`: names are
/// caller-controlled, so the label set must stay bounded.
const MAX_TOOL_LABELS: usize = 64;

/// `tools/call` counters by (tool, outcome), with a bounded set of tool labels. Looked up by
/// `&str` under a read lock: counting a call allocates nothing once its tool has a row.
#[derive(Debug, Default)]
pub struct ToolCallCounters {
    map: RwLock<HashMap<String, [AtomicU64; 3]>>,
}

const OUTCOMES: [Outcome; 3] = [Outcome::Allowed, Outcome::Denied, Outcome::Error];

impl ToolCallCounters {
    /// Adds one to (`tool`, `outcome`); a new tool past [`MAX_TOOL_LABELS`] names counts as `other`.
    pub fn inc(&self, tool: &str, outcome: Outcome) {
        let column = OUTCOMES.iter().position(|o| *o == outcome).unwrap_or(2);
        {
            let map = self.map.read().unwrap_or_else(|p| p.into_inner());
            if let Some(row) = map.get(tool) {
                row[column].fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        let label = if map.len() < MAX_TOOL_LABELS {
            tool
        } else {
            "other"
        };
        map.entry(label.to_owned()).or_default()[column].fetch_add(1, Ordering::Relaxed);
    }

    /// Current values: `(tool, outcome, count)`, zero counts left out.
    pub fn snapshot(&self) -> Vec<(String, &'static str, u64)> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .flat_map(|(tool, row)| {
                OUTCOMES.iter().zip(row).filter_map(|(o, n)| {
                    let n = n.load(Ordering::Relaxed);
                    (n > 0).then(|| (tool.clone(), o.as_str(), n))
                })
            })
            .collect()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: LabeledCounters::default(),
            in_flight: Gauge::default(),
            auth: LabeledCounters::default(),
            rejections: LabeledCounters::default(),
            // 50 µs … ~3.3 s: a cache miss on a local JWT is tens of µs, introspection is a
            // network round trip.
            verify_seconds: Histogram::new(exponential_buckets(0.00005, 3.0, 11)),
            verifications: AtomicU64::new(0),
            overloaded: AtomicU64::new(0),
            timed_out: AtomicU64::new(0),
            tool_calls: ToolCallCounters::default(),
            sources: OnceLock::new(),
        }
    }
}

impl Metrics {
    /// Connects the scrape-time sources (once).
    pub(crate) fn attach(&self, gatehouse: Gatehouse, audit: AuditLog) {
        let _ = self.sources.set(Sources {
            gatehouses: vec![gatehouse],
            audit: Some(audit),
        });
    }

    /// Connects the protections of every proxied server (`gatehouse proxy`; no audit log of
    /// its own: the gateway's tool calls are audit lines on `gatehouse::audit`).
    pub(crate) fn attach_all(&self, gatehouses: Vec<Gatehouse>) {
        let _ = self.sources.set(Sources {
            gatehouses,
            audit: None,
        });
    }

    /// A registry exposing these metrics.
    pub fn registry(self: &Arc<Self>) -> Registry {
        let mut r = Registry::default();
        r.register(
            "gatehouse_http_requests_in_flight",
            "Requests being processed (until the response head is sent)",
            self.in_flight.clone(),
        );
        r.register(
            "gatehouse_token_verification_seconds",
            "Time to verify a token that was not in the cache (signature or introspection)",
            self.verify_seconds.clone(),
        );
        r.register_collector(Box::new(ScrapeCollector(self.clone())));
        r
    }

    /// Authentication failures counted so far, by reason.
    pub fn auth_failures(&self) -> Vec<(&'static str, u64)> {
        self.auth
            .snapshot()
            .into_iter()
            .filter(|(reason, _)| *reason != "ok")
            .collect()
    }
}

#[derive(Debug)]
struct ScrapeCollector(Arc<Metrics>);

/// What `gatehouse proxy` reports of each proxied server's upstream at scrape time: its
/// name, whether it is healthy (not failing to start) and the connections (processes or
/// sessions) it holds.
pub(crate) type UpstreamReadings = dyn Fn() -> Vec<(String, bool, u64)> + Send + Sync;

/// The upstream gauges of `gatehouse proxy`, read at scrape time.
pub(crate) struct UpstreamCollector(pub(crate) Arc<UpstreamReadings>);

impl std::fmt::Debug for UpstreamCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamCollector").finish_non_exhaustive()
    }
}

impl Collector for UpstreamCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let readings = (self.0)();
        let mut family = e.encode_descriptor(
            "gatehouse_upstream_healthy",
            "1 unless the last attempt to start the proxied server's upstream failed",
            None,
            MetricType::Gauge,
        )?;
        for (server, healthy, _) in &readings {
            ConstGauge::new(i64::from(*healthy))
                .encode(family.encode_family(&[("server", server.as_str())])?)?;
        }
        let mut family = e.encode_descriptor(
            "gatehouse_upstream_connections",
            "Upstream connections held (stdio processes or HTTP sessions), by proxied server",
            None,
            MetricType::Gauge,
        )?;
        for (server, _, n) in &readings {
            ConstGauge::new(i64::try_from(*n).unwrap_or(i64::MAX))
                .encode(family.encode_family(&[("server", server.as_str())])?)?;
        }
        Ok(())
    }
}

fn counter_family<L: prometheus_client::encoding::EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: impl IntoIterator<Item = (L, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in values {
        ConstCounter::new(v).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: u64,
) -> Result<(), std::fmt::Error> {
    ConstCounter::new(v).encode(encoder.encode_descriptor(name, help, None, MetricType::Counter)?)
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: f64,
) -> Result<(), std::fmt::Error> {
    ConstGauge::new(v).encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

impl Collector for ScrapeCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = &self.0;
        counter_family(
            &mut e,
            "gatehouse_http_requests",
            "HTTP requests by route (mcp, metadata, other) and status",
            m.requests
                .snapshot()
                .into_iter()
                .map(|((route, status), v)| {
                    (
                        [("route", route.to_owned()), ("status", status.to_string())],
                        v,
                    )
                }),
        )?;
        counter_family(
            &mut e,
            "gatehouse_auth_outcomes",
            "Authentication outcomes: ok, or the refusal reason code",
            m.auth
                .snapshot()
                .into_iter()
                .map(|(k, v)| ([("outcome", k)], v)),
        )?;
        counter_family(
            &mut e,
            "gatehouse_edge_rejections",
            "Requests refused by the edge, by reason code",
            m.rejections
                .snapshot()
                .into_iter()
                .map(|(k, v)| ([("reason", k)], v)),
        )?;
        counter_family(
            &mut e,
            "gatehouse_tool_calls",
            "tools/call by tool and audit outcome (allowed, denied, error)",
            m.tool_calls
                .snapshot()
                .into_iter()
                .map(|(tool, outcome, v)| ([("tool", tool), ("outcome", outcome.to_owned())], v)),
        )?;
        counter(
            &mut e,
            "gatehouse_overloaded_requests",
            "Requests refused with 503 by limits.max_concurrent_requests",
            m.overloaded.load(Ordering::Relaxed),
        )?;
        counter(
            &mut e,
            "gatehouse_timed_out_requests",
            "Requests answered 408 by limits.request_timeout_seconds",
            m.timed_out.load(Ordering::Relaxed),
        )?;
        let Some(s) = m.sources.get() else {
            return Ok(());
        };
        // Counters are additive across the proxied servers' protections; per-issuer series are
        // summed per issuer (each server holds its own key cache for a shared issuer).
        let mut stats = gatehouse::verify::cache::CacheStats::default();
        let mut jwks: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        let mut introspection: BTreeMap<String, u64> = BTreeMap::new();
        let mut rl = gatehouse::policy::rate_limit::RateLimitStats::default();
        let mut ready = true;
        for g in &s.gatehouses {
            let authenticator = g.authenticator();
            stats += authenticator.stats();
            ready &= authenticator.ready();
            if let Some(chain) = g.verifier_chain() {
                for v in chain.jwt_verifiers() {
                    if let Some(j) = v.jwks() {
                        let e = jwks.entry(v.issuer().to_owned()).or_default();
                        e.0 += j.fetch_count();
                        e.1 += j.failure_count();
                    }
                }
                for v in chain.introspection_verifiers() {
                    *introspection.entry(v.issuer().to_owned()).or_default() += v.request_count();
                }
            }
            rl += g.rate_limit_stats();
        }
        counter(
            &mut e,
            "gatehouse_token_cache_hits",
            "Verified-token cache hits",
            stats.hits,
        )?;
        counter(
            &mut e,
            "gatehouse_token_cache_negative_hits",
            "Refusals answered from the negative cache",
            stats.negative_hits,
        )?;
        counter(
            &mut e,
            "gatehouse_token_cache_misses",
            "Tokens sent to a verifier",
            stats.misses,
        )?;
        let total = stats.hits + stats.negative_hits + stats.misses;
        gauge(
            &mut e,
            "gatehouse_token_cache_hit_ratio",
            "(hits + negative hits) / lookups since start",
            if total == 0 {
                0.0
            } else {
                (stats.hits + stats.negative_hits) as f64 / total as f64
            },
        )?;
        counter_family(
            &mut e,
            "gatehouse_jwks_fetches",
            "JWKS fetch attempts by issuer",
            jwks.iter().map(|(i, (f, _))| ([("issuer", i.clone())], *f)),
        )?;
        counter_family(
            &mut e,
            "gatehouse_jwks_fetch_failures",
            "Failed JWKS fetches by issuer",
            jwks.iter().map(|(i, (_, f))| ([("issuer", i.clone())], *f)),
        )?;
        counter_family(
            &mut e,
            "gatehouse_introspection_requests",
            "RFC 7662 introspection requests by issuer",
            introspection
                .iter()
                .map(|(i, n)| ([("issuer", i.clone())], *n)),
        )?;
        counter_family(
            &mut e,
            "gatehouse_rate_limited_requests",
            "Requests refused with 429, by limit",
            [
                ([("limit", "client")], rl.client),
                ([("limit", "tenant")], rl.tenant),
                ([("limit", "failed_auth_address")], rl.failed_auth_address),
            ],
        )?;
        // A shared backend (Redis) that did not answer: what the limiter did instead. `allowed`
        // is the default (fail open); `refused` answered 503; `unrecorded` is a refused token
        // the per-address limit could not count.
        counter_family(
            &mut e,
            "gatehouse_rate_limit_unavailable",
            "Rate-limit checks the shared backend did not answer, by what was done instead",
            [
                ([("decision", "allowed")], rl.unavailable_allowed),
                ([("decision", "refused")], rl.unavailable_refused),
                ([("decision", "unrecorded")], rl.unavailable_unrecorded),
            ],
        )?;
        if let Some(audit) = &s.audit {
            counter(
                &mut e,
                "gatehouse_audit_rows_dropped",
                "Audit records that did not reach the database (queue full or writer stopped)",
                audit.dropped(),
            )?;
        }
        gauge(
            &mut e,
            "gatehouse_keys_ready",
            "1 when every issuer's signing keys are loaded",
            if ready { 1.0 } else { 0.0 },
        )?;
        Ok(())
    }
}

/// What the library tells the server is what it counts.
impl Observer for Metrics {
    fn tool_call(&self, call: &ToolCall<'_>) {
        // At the server only tools it knows keep their name. Edge refusals name whatever the
        // caller asked for; the counters cap distinct names at MAX_TOOL_LABELS.
        let tool = match (call.tool, call.stage, call.known_tool) {
            (Some(t), Stage::Edge, _) | (Some(t), Stage::Server, true) => t,
            (None, ..) => "<ambiguous>",
            (Some(_), Stage::Server, false) => "other",
        };
        self.tool_calls.inc(tool, call.outcome);
    }

    fn authenticated(&self, _caller: &Caller) {
        self.auth.inc("ok");
    }

    fn verified(&self, elapsed: Duration) {
        self.verify_seconds.observe(elapsed.as_secs_f64());
        self.verifications.fetch_add(1, Ordering::Relaxed);
    }

    fn rejected(&self, reason: &'static str) {
        self.rejections.inc(reason);
        if is_auth_failure(reason) {
            self.auth.inc(reason);
        }
        match reason {
            "limits.overloaded" => {
                self.overloaded.fetch_add(1, Ordering::Relaxed);
            }
            "limits.timeout" => {
                self.timed_out.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    fn request_started(&self) {
        self.in_flight.inc();
    }

    fn request_finished(&self, route: Route, status: u16, started: bool) {
        if started {
            self.in_flight.dec();
        }
        self.requests.inc((route.as_str(), status));
    }
}

/// Emits one audit event summarising the authentication failures since the previous one (none
/// when there were none). An attack produces one line per period, not one per request.
#[derive(Debug)]
pub struct AuthFailureSummary {
    metrics: Arc<Metrics>,
    last: std::sync::Mutex<HashMap<&'static str, u64>>,
}

impl AuthFailureSummary {
    /// A summariser of `metrics`' authentication failures.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            last: Default::default(),
        }
    }

    /// Emits the summary now (also called at shutdown). Returns the number of failures in it.
    pub fn emit(&self) -> u64 {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let mut by_reason: Vec<(&'static str, u64)> = self
            .metrics
            .auth_failures()
            .into_iter()
            .filter_map(|(reason, now)| {
                let before = last.insert(reason, now).unwrap_or(0);
                (now > before).then(|| (reason, now - before))
            })
            .collect();
        if by_reason.is_empty() {
            return 0;
        }
        by_reason.sort_unstable();
        let total: u64 = by_reason.iter().map(|(_, n)| n).sum();
        let detail = serde_json::Value::Object(
            by_reason
                .iter()
                .map(|(r, n)| ((*r).to_owned(), serde_json::Value::from(*n)))
                .collect(),
        );
        tracing::info!(
            target: AUDIT_TARGET,
            failures = total,
            by_reason = %detail,
            "authentication failures"
        );
        total
    }

    /// Emits every `period` until `stop` fires.
    pub(crate) async fn run(
        self: Arc<Self>,
        period: Duration,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => { self.emit(); }
            }
        }
    }
}

/// State of the admin listener.
#[derive(Clone)]
pub(crate) struct Admin {
    pub(crate) registry: Arc<Registry>,
    pub(crate) gatehouse: Gatehouse,
    pub(crate) store: Store,
}

/// `/metrics`, `/healthz`, `/readyz`.
pub(crate) fn admin_router(admin: Admin) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(admin)
}

async fn metrics_handler(State(a): State<Admin>) -> Response {
    encode_registry(&a.registry)
}

/// The OpenMetrics text of `registry`, as `/metrics` answers it.
pub(crate) fn encode_registry(registry: &Registry) -> Response {
    let mut body = String::with_capacity(4096);
    if prometheus_client::encoding::text::encode(&mut body, registry).is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

/// Ready when every issuer's keys are loaded and the database answers (within 2 s).
async fn readyz(State(a): State<Admin>) -> Response {
    let keys = a.gatehouse.authenticator().ready();
    let database = matches!(
        tokio::time::timeout(Duration::from_secs(2), a.store.ping()).await,
        Ok(Ok(()))
    );
    let status = if keys && database {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(serde_json::json!({"keys": keys, "database": database})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proxy_registry_reports_each_upstream_and_no_audit_log() {
        let metrics = Arc::new(Metrics::default());
        metrics.attach_all(Vec::new());
        metrics.tool_calls.inc("whoami", Outcome::Allowed);
        let mut registry = metrics.registry();
        registry.register_collector(Box::new(UpstreamCollector(Arc::new(|| {
            vec![
                ("files".to_owned(), true, 3),
                ("python".to_owned(), false, 0),
            ]
        }))));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            "gatehouse_upstream_healthy{server=\"files\"} 1",
            "gatehouse_upstream_healthy{server=\"python\"} 0",
            "gatehouse_upstream_connections{server=\"files\"} 3",
            "gatehouse_tool_calls_total{tool=\"whoami\",outcome=\"allowed\"} 1",
            "gatehouse_keys_ready 1.0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        assert!(!text.contains("gatehouse_audit_rows_dropped"), "{text}");
    }

    #[test]
    fn counters_count_per_key_and_auth_reasons_are_classified() {
        let c = LabeledCounters::<&'static str>::default();
        c.inc("a");
        c.inc("a");
        c.inc("b");
        assert_eq!(c.get("a"), 2);
        assert_eq!(c.get("b"), 1);
        assert_eq!(c.get("c"), 0);
        assert!(is_auth_failure("invalid.signature"));
        assert!(is_auth_failure("unavailable.keys"));
        assert!(is_auth_failure("request.token_too_large"));
        assert!(!is_auth_failure("policy.insufficient_scope"));
        assert!(!is_auth_failure("guard.host_not_allowed"));
        assert!(!is_auth_failure("rate_limited"));
    }

    #[test]
    fn tool_call_labels_are_bounded() {
        let c = ToolCallCounters::default();
        c.inc("lookup_invoice", Outcome::Allowed);
        c.inc("lookup_invoice", Outcome::Allowed);
        c.inc("lookup_invoice", Outcome::Denied);
        for i in 0..MAX_TOOL_LABELS + 10 {
            c.inc(&format!("t{i}"), Outcome::Error);
        }
        let snap = c.snapshot();
        let get = |t: &str, o: &str| {
            snap.iter()
                .find(|(tool, outcome, _)| tool == t && *outcome == o)
                .map_or(0, |r| r.2)
        };
        assert_eq!(get("lookup_invoice", "allowed"), 2);
        assert_eq!(get("lookup_invoice", "denied"), 1);
        assert_eq!(get("other", "error"), 11);
        let tools: std::collections::HashSet<_> = snap.iter().map(|r| &r.0).collect();
        assert_eq!(tools.len(), MAX_TOOL_LABELS + 1);
    }

    #[test]
    fn the_summary_reports_only_what_happened_since_the_last_one() {
        let m = Arc::new(Metrics::default());
        let s = AuthFailureSummary::new(m.clone());
        assert_eq!(s.emit(), 0);
        m.auth.inc("invalid.signature");
        m.auth.inc("invalid.signature");
        m.auth.inc("ok");
        m.auth.inc("invalid.expired");
        assert_eq!(s.emit(), 3);
        assert_eq!(s.emit(), 0);
        m.auth.inc("invalid.expired");
        assert_eq!(s.emit(), 1);
    }
}
