//! Wiring: configuration → verifiers, policy, storage, the billing server, the Gatehouse edge and
//! the listener. `build` and `App::serve` are the entry points shared by the binary and the
//! integration tests, so tests run exactly what users run.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use gatehouse::http::{CorsConfig, Gatehouse, SessionBindingConfig};
use gatehouse::policy::rate_limit::{
    GovernorRateLimiter, RateLimitConfig, RateLimited, RateLimiter, RateQuota,
};
use gatehouse::policy::{ScopeHierarchy, ScopePolicy, ToolListMode};
use gatehouse::verify::cache::{Authenticator, CacheConfig};
use gatehouse::verify::chain::{ChainConfig, VerifierChain};
use gatehouse::verify::introspection::{ClientAuthMethod, ClientSecret, IntrospectionConfig};
use gatehouse::verify::jwt::{JwtIssuerConfig, TypPolicy};
use gatehouse::{ResourceUrl, ScopeSet};
use gatehouse_billing::{AuditLog, BillingServer, Seed, Store, TenantResolver};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::{DefaultOnRequest, DefaultOnResponse, TraceLayer};

use crate::metrics::{
    Admin, AuthFailureSummary, EdgeTelemetry, Metrics, TimedVerifier, admin_router,
};
use crate::serve::ServeOptions;

use crate::config::{
    Config, ConfigError, IntrospectionConfig as IntrospectionSection, IssuerConfig,
};

/// A built server: the router and what must be shut down with it.
pub struct App {
    router: Router,
    gatehouse: Gatehouse,
    audit: AuditLog,
    store: Store,
    cancel: CancellationToken,
    listen: SocketAddr,
    metrics: Arc<Metrics>,
    admin_router: Router,
    admin: crate::config::AdminConfig,
    admin_listener: Option<TcpListener>,
    serve_options: ServeOptions,
    summary: Arc<AuthFailureSummary>,
    summary_period: Duration,
    /// Stateful mode keeps SSE streams open: they are ended when shutdown starts, or they would
    /// hold the drain until the grace period is over.
    end_streams_on_shutdown: bool,
}

impl App {
    /// The address from the configuration (`server.listen`).
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// The configured protection (resource, metadata, authenticator).
    pub fn gatehouse(&self) -> &Gatehouse {
        &self.gatehouse
    }

    /// The router, for in-process tests.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// The billing store (tests read the audit table through it).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The audit log writer.
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// The server's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The admin router (`/metrics`, `/healthz`, `/readyz`), for in-process tests.
    pub fn admin_router(&self) -> Router {
        self.admin_router.clone()
    }

    /// The authentication-failure summariser of the audit trail.
    pub fn auth_failure_summary(&self) -> &Arc<AuthFailureSummary> {
        &self.summary
    }

    /// Binds the admin listener now (when `admin.enabled`) and returns its address, so that a
    /// configured port 0 can be discovered. [`App::serve`] binds it otherwise.
    pub async fn bind_admin(&mut self) -> anyhow::Result<Option<SocketAddr>> {
        if !self.admin.enabled {
            return Ok(None);
        }
        if self.admin_listener.is_none() {
            let l = TcpListener::bind(self.admin.listen)
                .await
                .with_context(|| format!("binding `admin.listen` = {}", self.admin.listen))?;
            self.admin_listener = Some(l);
        }
        Ok(self
            .admin_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok()))
    }

    /// Serves on `listener` (and the admin listener) until `shutdown` resolves, then stops
    /// accepting, lets in-flight requests finish within `server.shutdown_grace_seconds`, emits
    /// the last authentication-failure summary, flushes the audit log and stops background tasks.
    pub async fn serve<F>(mut self, listener: TcpListener, shutdown: F) -> anyhow::Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let admin_addr = self.bind_admin().await?;
        let stop_admin = CancellationToken::new();
        let admin_task = self.admin_listener.take().map(|l| {
            if let Some(addr) = admin_addr {
                tracing::info!(%addr, "serving /metrics, /healthz, /readyz");
            }
            let router = self.admin_router.clone();
            let stop = stop_admin.clone();
            tokio::spawn(async move {
                axum::serve(l, router)
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await
            })
        });
        let summary_task = tokio::spawn(
            self.summary
                .clone()
                .run(self.summary_period, self.cancel.child_token()),
        );
        let cancel = self.cancel.clone();
        let end_streams = self.end_streams_on_shutdown;
        let result = crate::serve::run(
            listener,
            self.router.clone(),
            self.serve_options.clone(),
            shutdown,
            move || {
                if end_streams {
                    cancel.cancel();
                }
            },
        )
        .await;
        self.cancel.cancel();
        let _ = summary_task.await;
        self.summary.emit();
        stop_admin.cancel();
        if let Some(t) = admin_task {
            let _ = t.await;
        }
        self.audit.flush().await;
        self.store.close().await;
        result.context("server failed")
    }
}

/// Validates `config` and builds every component. Fetches the authorization servers' metadata
/// and keys, connects to the database and runs its migrations.
pub async fn build(config: Config) -> anyhow::Result<App> {
    let cancel = CancellationToken::new();
    let resource = resource_url(&config)?;
    let policy = policy(&config)?;
    let chain = VerifierChain::start(chain_config(&config, &resource)?, cancel.clone())
        .await
        .context("setting up token verification (auth.issuers / auth.introspection)")?;
    if !gatehouse::TokenVerifier::ready(&chain) {
        tracing::warn!("signing keys not loaded yet; tokens get 503 until they are");
    }
    let chain = Arc::new(chain);
    let metrics = Arc::new(Metrics::default());
    let cache = CacheConfig {
        max_entries: config.auth.cache.max_entries,
        max_ttl: Duration::from_secs(config.auth.cache.max_ttl_seconds),
        max_ttl_introspected: Duration::from_secs(config.auth.cache.max_ttl_seconds.min(60)),
        ..CacheConfig::default()
    };
    let authenticator = Arc::new(Authenticator::new(
        Arc::new(TimedVerifier {
            inner: chain.clone(),
            metrics: metrics.clone(),
        }),
        cache,
    ));
    let serve_options = serve_options(&config)?;
    let rate_limiter = rate_limiter(&config)?;

    let seed = if config.database.seed_demo_data {
        Seed::Demo
    } else {
        Seed::None
    };
    let store = Store::connect_with(&config.database.url, seed, config.database.invoice_cache())
        .await
        .with_context(|| {
            format!(
                "opening database `database.url` = {}",
                redact_url(&config.database.url)
            )
        })?;
    let audit = AuditLog::new(store.clone());
    let tenants = TenantResolver::from_client_map(config.tenancy.clients.clone())
        .map_err(|e| ConfigError::invalid("tenancy.clients", e))?;
    let billing = BillingServer::new(
        store.clone(),
        policy.clone(),
        tenants.clone(),
        audit.clone(),
    );

    let mut builder = gatehouse_builder(&config, &resource, authenticator.clone(), policy);
    if let Some(limiter) = &rate_limiter {
        builder = builder.rate_limiter(Arc::new(TenantRateLimiter {
            inner: limiter.clone(),
            tenants: tenants.clone(),
        }));
    }
    metrics.attach(
        authenticator.clone(),
        chain.clone(),
        config
            .auth
            .issuers
            .iter()
            .map(|i| i.issuer.clone())
            .collect(),
        rate_limiter.clone(),
        audit.clone(),
    );
    let gatehouse = builder
        .observer(Arc::new(EdgeTelemetry {
            billing: billing.clone(),
            metrics: metrics.clone(),
        }))
        .build()
        .context("configuring the protected resource")?;

    let rmcp_config = gatehouse.configure_rmcp(
        StreamableHttpServerConfig::default()
            .with_legacy_session_mode(config.server.stateful_sessions)
            .with_json_response(!config.server.stateful_sessions)
            .with_cancellation_token(cancel.child_token()),
    );
    let factory = move || Ok(billing.clone());
    let mcp_router = if config.server.stateful_sessions {
        gatehouse.router(StreamableHttpService::new(
            factory,
            Arc::new(LocalSessionManager::default()),
            rmcp_config,
        ))
    } else {
        gatehouse.router(StreamableHttpService::new(
            factory,
            Arc::new(NeverSessionManager::default()),
            rmcp_config,
        ))
    };
    let edge = Arc::new(EdgeLimits {
        metrics: metrics.clone(),
        permits: Arc::new(tokio::sync::Semaphore::new(
            config.limits.max_concurrent_requests,
        )),
        request_timeout: Duration::from_secs(config.limits.request_timeout_seconds),
        mcp_path: gatehouse.resource().path().to_owned(),
        metadata_path: gatehouse.resource().metadata_path(),
    });
    let router = mcp_router
        // Unknown paths get a plain 404 through the same layers (request id, limits, metrics).
        .fallback(|| async { http::StatusCode::NOT_FOUND })
        // Outermost last: request id → sensitive headers → span → propagate → limits + metrics.
        .layer(axum::middleware::from_fn_with_state(edge, edge_limits))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &http::Request<axum::body::Body>| {
                    crate::telemetry::request_span(req)
                })
                .on_request(DefaultOnRequest::new().level(tracing::Level::DEBUG))
                .on_response(DefaultOnResponse::new().level(tracing::Level::DEBUG))
                // Refusals are logged (with their reason) by the edge; no second line.
                .on_failure(()),
        )
        .layer(SetSensitiveRequestHeadersLayer::new([
            http::header::AUTHORIZATION,
        ]))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid));

    let summary = Arc::new(AuthFailureSummary::new(metrics.clone()));
    let admin_router = admin_router(Admin {
        registry: Arc::new(metrics.registry()),
        authenticator,
        store: store.clone(),
    });
    Ok(App {
        router,
        gatehouse,
        audit,
        store,
        cancel,
        listen: config.server.listen,
        metrics,
        admin_router,
        admin: config.admin.clone(),
        admin_listener: None,
        serve_options,
        summary,
        summary_period: Duration::from_secs(config.audit.auth_failure_summary_seconds.max(1)),
        end_streams_on_shutdown: config.server.stateful_sessions,
    })
}

/// The Gatehouse edge as configured (shared by `build` and `check`, so that `check` prints the
/// metadata document the server will serve).
fn gatehouse_builder(
    config: &Config,
    resource: &ResourceUrl,
    authenticator: Arc<Authenticator>,
    policy: ScopePolicy,
) -> gatehouse::http::GatehouseBuilder {
    let mut builder = Gatehouse::builder(resource.clone())
        .authorization_servers(
            config
                .auth
                .issuers
                .iter()
                .map(|i| i.issuer.clone())
                .chain(config.auth.introspection.iter().map(|i| i.issuer.clone())),
        )
        .authenticator(authenticator)
        .policy(policy)
        .resource_name(config.server.resource_name.clone())
        .allowed_hosts(config.server.allowed_hosts.clone())
        .allowed_origins(config.server.allowed_origins.clone())
        .trusted_proxies(config.server.trusted_proxies.clone())
        .listen_addr(config.server.listen)
        .max_token_bytes(config.server.max_token_bytes)
        .max_body_bytes(config.server.max_body_bytes);
    if !config.server.scopes_supported.is_empty() {
        builder = builder.scopes_supported(config.server.scopes_supported.clone());
    }
    if config.server.cors {
        builder = builder.cors(CorsConfig::new(config.server.allowed_origins.clone()));
    }
    if config.server.stateful_sessions {
        builder = builder.session_binding(SessionBindingConfig::default());
    }
    builder
}

/// Request-level limits and per-route metrics, in front of everything else.
struct EdgeLimits {
    metrics: Arc<Metrics>,
    permits: Arc<tokio::sync::Semaphore>,
    request_timeout: Duration,
    mcp_path: String,
    metadata_path: String,
}

const BODY_BUSY: &str =
    r#"{"error":"server_busy","error_description":"Too many requests in progress"}"#;
const BODY_TIMEOUT: &str =
    r#"{"error":"request_timeout","error_description":"The request took too long"}"#;

fn terse(status: http::StatusCode, body: &'static str) -> axum::response::Response {
    let mut resp = axum::response::Response::new(axum::body::Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    resp
}

/// `limits.max_concurrent_requests` (503 at once, no queueing: a queue only adds latency to an
/// overload), `limits.request_timeout_seconds` (408, up to the response head; streamed bodies
/// are not cut), and `gatehouse_http_requests_total{route,status}`.
async fn edge_limits(
    axum::extract::State(edge): axum::extract::State<Arc<EdgeLimits>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let path = req.uri().path();
    let route = if path == edge.mcp_path {
        "mcp"
    } else if path == edge.metadata_path {
        "metadata"
    } else {
        "other"
    };
    let resp = match edge.permits.clone().try_acquire_owned() {
        Err(_) => {
            edge.metrics
                .overloaded
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!("limits.max_concurrent_requests reached; request refused with 503");
            let mut r = terse(http::StatusCode::SERVICE_UNAVAILABLE, BODY_BUSY);
            r.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("1"),
            );
            r
        }
        Ok(_permit) => {
            edge.metrics.in_flight.inc();
            let result = tokio::time::timeout(edge.request_timeout, next.run(req)).await;
            edge.metrics.in_flight.dec();
            match result {
                Ok(r) => r,
                Err(_) => {
                    edge.metrics
                        .timed_out
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::info!("limits.request_timeout_seconds reached; answered 408");
                    let mut r = terse(http::StatusCode::REQUEST_TIMEOUT, BODY_TIMEOUT);
                    r.headers_mut().insert(
                        http::header::CONNECTION,
                        http::HeaderValue::from_static("close"),
                    );
                    r
                }
            }
        }
    };
    edge.metrics.requests.inc((route, resp.status().as_u16()));
    resp
}

/// The per-tenant limit uses the tenant the billing server resolves (claim, else
/// `tenancy.clients`), not only the claim.
struct TenantRateLimiter {
    inner: Arc<GovernorRateLimiter>,
    tenants: TenantResolver,
}

impl RateLimiter for TenantRateLimiter {
    fn check_address(&self, peer: std::net::IpAddr) -> Result<(), RateLimited> {
        self.inner.check_address(peer)
    }

    fn record_auth_failure(&self, peer: std::net::IpAddr) {
        self.inner.record_auth_failure(peer)
    }

    fn check_caller(&self, caller: &gatehouse::Caller) -> Result<(), RateLimited> {
        let client = caller.client_id.as_deref().or(caller.subject.as_deref());
        let tenant = self.tenants.resolve(caller);
        self.inner
            .check(&caller.issuer, client, tenant.as_ref().map(|t| t.as_str()))
    }
}

fn quota(q: Option<crate::config::QuotaConfig>) -> Option<RateQuota> {
    // `per_minute = 0` switches a limit off (a default can only be removed by a value).
    q.filter(|q| q.per_minute > 0).map(|q| RateQuota {
        per_minute: q.per_minute,
        burst: q.burst,
    })
}

fn rate_limiter(config: &Config) -> Result<Option<Arc<GovernorRateLimiter>>, ConfigError> {
    let r = &config.rate_limits;
    let c = RateLimitConfig {
        per_client: quota(r.per_client),
        per_tenant: quota(r.per_tenant),
        failed_auth_per_address: quota(r.failed_auth_per_address),
        max_keys: r.max_keys,
    };
    if c.per_client.is_none() && c.per_tenant.is_none() && c.failed_auth_per_address.is_none() {
        return Ok(None);
    }
    GovernorRateLimiter::new(&c)
        .map(|l| Some(Arc::new(l)))
        .map_err(|e| ConfigError::invalid("rate_limits", e))
}

fn serve_options(config: &Config) -> anyhow::Result<ServeOptions> {
    let l = &config.limits;
    if l.max_header_bytes < 8192 {
        return Err(ConfigError::invalid("limits.max_header_bytes", "at least 8192").into());
    }
    for (key, v) in [
        (
            "limits.header_read_timeout_seconds",
            l.header_read_timeout_seconds,
        ),
        ("limits.request_timeout_seconds", l.request_timeout_seconds),
        (
            "limits.tls_handshake_timeout_seconds",
            l.tls_handshake_timeout_seconds,
        ),
    ] {
        if v == 0 {
            return Err(ConfigError::invalid(key, "must be at least 1").into());
        }
    }
    if l.max_concurrent_requests == 0 {
        return Err(
            ConfigError::invalid("limits.max_concurrent_requests", "must be at least 1").into(),
        );
    }
    let tls = config
        .tls
        .as_ref()
        .map(crate::serve::tls_acceptor)
        .transpose()?;
    Ok(ServeOptions {
        limits: l.clone(),
        tls,
        grace: Duration::from_secs(config.server.shutdown_grace_seconds),
    })
}

/// Builds and serves `config` until SIGINT/SIGTERM.
pub async fn serve<F>(config: Config, shutdown: F) -> anyhow::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let app = build(config).await?;
    let listener = TcpListener::bind(app.listen_addr())
        .await
        .with_context(|| format!("binding `server.listen` = {}", app.listen_addr()))?;
    let addr = listener.local_addr()?;
    if app.serve_options.tls.is_none() {
        warn_if_plain_http_in_public(addr);
    }
    tracing::info!(%addr, resource = %app.gatehouse().resource(), "serving MCP");
    app.serve(listener, shutdown).await
}

/// `gatehouse check`: validates the configuration, fetches every issuer's metadata and keys and
/// every introspection endpoint's discovery, and prints what the server would use: issuers with
/// their key ids and algorithms, endpoints, limits, and the metadata document it will serve.
/// The error names the configuration key (and URL) at fault.
pub async fn check(config: Config) -> anyhow::Result<()> {
    use gatehouse::verify::introspection::IntrospectionVerifier;
    use gatehouse::verify::jwt::JwtVerifier;

    let resource = resource_url(&config)?;
    let policy = policy(&config)?;
    let options = serve_options(&config)?;
    rate_limiter(&config)?;
    let chain_config = chain_config(&config, &resource)?;

    println!("resource: {resource}");
    let mut jwt = Vec::new();
    for (i, c) in chain_config.jwt_issuers.into_iter().enumerate() {
        let issuer = c.issuer.clone();
        let v = JwtVerifier::discover(c).await.with_context(|| {
            format!("`auth.issuers[{i}].issuer` = {issuer}: discovery (RFC 8414 / OpenID) failed")
        })?;
        println!("issuer {issuer}");
        if let Some(jwks) = v.jwks() {
            println!("  jwks_uri: {}", jwks.uri());
            if !jwks.ready() {
                let e = jwks.load().await.err();
                anyhow::bail!(
                    "`auth.issuers[{i}].jwks_uri` = {}: no usable signing keys{}",
                    jwks.uri(),
                    e.map(|e| format!(": {e}")).unwrap_or_default()
                );
            }
            for key in jwks.current().iter().flat_map(|set| set.keys().iter()) {
                let algs: Vec<String> = key.algorithms().iter().map(|a| format!("{a:?}")).collect();
                println!(
                    "  key kid={} algorithms={}",
                    key.kid().unwrap_or("<none>"),
                    algs.join(",")
                );
            }
        }
        jwt.push(Arc::new(v));
    }
    let mut introspection = Vec::new();
    for (i, c) in chain_config.introspection.into_iter().enumerate() {
        let issuer = c.issuer.clone();
        let v = IntrospectionVerifier::discover(c).await.with_context(|| {
            format!(
                "`auth.introspection[{i}]` for {issuer}: introspection endpoint discovery failed"
            )
        })?;
        println!("introspection for {issuer}\n  endpoint: {}", v.endpoint());
        introspection.push(Arc::new(v));
    }
    let chain =
        VerifierChain::new(jwt, introspection, chain_config.max_token_bytes).context("`auth`")?;
    let authenticator = Arc::new(Authenticator::new(Arc::new(chain), CacheConfig::default()));
    println!(
        "route scopes: {}",
        policy.route_scopes().to_space_separated()
    );
    let gatehouse = gatehouse_builder(&config, &resource, authenticator, policy)
        .build()
        .context("configuring the protected resource")?;
    let scheme = if options.tls.is_some() {
        "https"
    } else {
        "http"
    };
    println!("endpoints:");
    println!(
        "  mcp:      {scheme}://{}{}",
        config.server.listen,
        resource.path()
    );
    println!(
        "  metadata: {scheme}://{}{}",
        config.server.listen,
        resource.metadata_path()
    );
    if config.admin.enabled {
        println!(
            "  admin:    http://{}/metrics /healthz /readyz",
            config.admin.listen
        );
    }
    println!("metadata document ({}):", resource.metadata_url());
    println!(
        "{}",
        serde_json::to_string_pretty(gatehouse.metadata().document())?
    );
    println!("configuration OK");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown signal received");
}

fn warn_if_plain_http_in_public(addr: SocketAddr) {
    if !addr.ip().is_loopback() {
        tracing::warn!(
            %addr,
            "serving plain HTTP on a non-loopback address: bearer tokens cross the network in the clear; \
             terminate TLS in front of this server (OAuth 2.1 §1.5)"
        );
    }
}

/// The URL with any password replaced, for error messages (a PostgreSQL URL may carry one).
fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("redacted"));
            u.to_string()
        }
        Ok(_) => raw.to_owned(),
        Err(_) if raw.contains('@') => "<unparseable URL with credentials>".to_owned(),
        Err(_) => raw.to_owned(),
    }
}

fn resource_url(config: &Config) -> Result<ResourceUrl, ConfigError> {
    let resource = ResourceUrl::parse(&config.server.resource)
        .map_err(|e| ConfigError::invalid("server.resource", e))?;
    if resource.url().scheme() == "http" && !resource.is_loopback() {
        if config.server.dangerous_allow_insecure_http {
            tracing::warn!(
                "server.dangerous_allow_insecure_http: serving a non-loopback resource over plain http"
            );
        } else {
            return Err(ConfigError::invalid(
                "server.resource",
                "must use https outside loopback (OAuth 2.1 §1.5); \
                 set server.dangerous_allow_insecure_http only behind a TLS-terminating proxy",
            ));
        }
    }
    Ok(resource)
}

fn policy(config: &Config) -> Result<ScopePolicy, ConfigError> {
    let p = &config.policy;
    let route = ScopeSet::parse(&p.route_scopes)
        .map_err(|e| ConfigError::invalid("policy.route_scopes", e))?;
    let mut tools = std::collections::HashMap::new();
    for (tool, scopes) in &p.tools {
        let set = ScopeSet::parse(scopes)
            .map_err(|e| ConfigError::invalid(format!("policy.tools.{tool}"), e))?;
        tools.insert(tool.clone(), set);
    }
    let hierarchy = ScopeHierarchy::new(p.hierarchy.iter().map(|(k, v)| (k.as_str(), v.iter())))
        .map_err(|e| ConfigError::invalid("policy.hierarchy", e))?;
    let mode = match p.tools_list.as_str() {
        "all" => ToolListMode::All,
        "filter" => ToolListMode::FilterByScope,
        other => {
            return Err(ConfigError::invalid(
                "policy.tools_list",
                format!("expected \"all\" or \"filter\", got {other:?}"),
            ));
        }
    };
    Ok(ScopePolicy::new(route, tools, hierarchy, mode))
}

fn chain_config(config: &Config, resource: &ResourceUrl) -> Result<ChainConfig, ConfigError> {
    let auth = &config.auth;
    if auth.issuers.is_empty() && auth.introspection.is_empty() {
        return Err(ConfigError::invalid(
            "auth",
            "configure at least one [[auth.issuers]] or [[auth.introspection]]",
        ));
    }
    let tenant_claim = Some(config.tenancy.claim.clone()).filter(|c| !c.is_empty());
    let mut jwt = Vec::new();
    for (i, issuer) in auth.issuers.iter().enumerate() {
        jwt.push(issuer_config(issuer, i, resource, tenant_claim.clone())?);
    }
    let mut introspection = Vec::new();
    for (i, section) in auth.introspection.iter().enumerate() {
        introspection.push(introspection_config(
            section,
            i,
            resource,
            tenant_claim.clone(),
        )?);
    }
    Ok(ChainConfig {
        jwt_issuers: jwt,
        introspection,
        max_token_bytes: config.server.max_token_bytes,
    })
}

fn issuer_config(
    c: &IssuerConfig,
    index: usize,
    resource: &ResourceUrl,
    tenant_claim: Option<String>,
) -> Result<JwtIssuerConfig, ConfigError> {
    let key = |field: &str| format!("auth.issuers[{index}].{field}");
    let mut out = JwtIssuerConfig::new(c.issuer.clone(), resource.as_str());
    if !c.audiences.is_empty() {
        out.audiences = c.audiences.clone();
    }
    if let Some(uri) = &c.jwks_uri {
        out.jwks_uri =
            Some(url::Url::parse(uri).map_err(|e| ConfigError::invalid(key("jwks_uri"), e))?);
    }
    if !c.algorithms.is_empty() {
        out.algorithms = c
            .algorithms
            .iter()
            .map(|a| {
                let alg: jsonwebtoken::Algorithm = a.parse().map_err(|_| {
                    ConfigError::invalid(key("algorithms"), format!("unknown algorithm {a:?}"))
                })?;
                Ok(alg)
            })
            .collect::<Result<_, ConfigError>>()?;
    }
    out.typ = TypPolicy {
        accept_jwt: c.accept_typ_jwt,
        accept_missing: c.accept_missing_typ,
    };
    if c.leeway_seconds > 300 {
        return Err(ConfigError::invalid(key("leeway_seconds"), "at most 300"));
    }
    out.leeway = Duration::from_secs(c.leeway_seconds);
    out.extra_scope_claims = c.extra_scope_claims.clone();
    out.tenant_claim = tenant_claim;
    Ok(out)
}

fn introspection_config(
    c: &IntrospectionSection,
    index: usize,
    resource: &ResourceUrl,
    tenant_claim: Option<String>,
) -> Result<IntrospectionConfig, ConfigError> {
    let key = |field: &str| format!("auth.introspection[{index}].{field}");
    let secret = match (&c.client_secret_file, &c.client_secret_env) {
        (Some(path), None) => std::fs::read_to_string(path)
            .map(|s| s.trim_end_matches(['\n', '\r']).to_owned())
            .map_err(|e| {
                ConfigError::invalid(
                    key("client_secret_file"),
                    format!("{}: {e}", path.display()),
                )
            })?,
        (None, Some(var)) => std::env::var(var).map_err(|_| {
            ConfigError::invalid(
                key("client_secret_env"),
                format!("environment variable {var} is not set"),
            )
        })?,
        _ => {
            return Err(ConfigError::invalid(
                key("client_secret_file"),
                "set exactly one of client_secret_file or client_secret_env",
            ));
        }
    };
    let mut out = IntrospectionConfig::new(
        c.issuer.clone(),
        c.client_id.clone(),
        ClientSecret::new(secret),
        resource.as_str(),
    );
    if let Some(endpoint) = &c.endpoint {
        out.endpoint =
            Some(url::Url::parse(endpoint).map_err(|e| ConfigError::invalid(key("endpoint"), e))?);
    }
    out.auth_method = match c.auth_method.as_str() {
        "basic" => ClientAuthMethod::ClientSecretBasic,
        "post" => ClientAuthMethod::ClientSecretPost,
        other => {
            return Err(ConfigError::invalid(
                key("auth_method"),
                format!("expected \"basic\" or \"post\", got {other:?}"),
            ));
        }
    };
    if !c.audiences.is_empty() {
        out.audiences = c.audiences.clone();
    }
    out.dangerous_accept_missing_audience = c.dangerous_accept_missing_audience;
    out.tenant_claim = tenant_claim;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // spec-requirements A26 / OAuth 2.1 §1.5: a public resource must be https; plain http only on
    // loopback or through the explicitly dangerous switch.
    #[test]
    fn resource_must_be_https_outside_loopback() {
        let mut config = Config::default();
        for ok in [
            "https://mcp.example.com/mcp",
            "http://127.0.0.1:8080/mcp",
            "http://localhost:9/mcp",
        ] {
            config.server.resource = ok.into();
            assert!(resource_url(&config).is_ok(), "{ok}");
        }
        config.server.resource = "http://mcp.example.com/mcp".into();
        let err = resource_url(&config).unwrap_err().to_string();
        assert!(
            err.contains("server.resource") && err.contains("https"),
            "{err}"
        );
        config.server.dangerous_allow_insecure_http = true;
        assert!(resource_url(&config).is_ok());
        config.server.resource = "https://mcp.example.com/mcp#frag".into();
        assert!(
            resource_url(&config)
                .unwrap_err()
                .to_string()
                .contains("server.resource")
        );
    }

    #[test]
    fn database_passwords_never_reach_error_messages() {
        assert_eq!(
            redact_url("postgres://app:hunter2@db.internal:5432/billing"),
            "postgres://app:redacted@db.internal:5432/billing"
        );
        assert_eq!(redact_url("sqlite://gatehouse.db"), "sqlite://gatehouse.db");
        assert!(!redact_url("postgres://app:hun@ter2@db/x").contains("ter2"));
    }
}
