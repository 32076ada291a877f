//! Wiring: configuration → verifiers, policy, storage, the billing server, the Gatehouse edge and
//! the listener. `build` and `App::serve` are the entry points shared by the binary and the
//! integration tests, so tests run exactly what users run.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::serve::ListenerExt as _;
use gatehouse::http::{CorsConfig, Gatehouse, SessionBindingConfig};
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

    /// Serves on `listener` until `shutdown` resolves, then stops accepting, lets in-flight
    /// requests finish, flushes the audit log and stops background tasks.
    pub async fn serve<F>(self, listener: TcpListener, shutdown: F) -> anyhow::Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        // TCP_NODELAY: without it SSE responses and stateful replies stall ~44 ms each on the
        // Nagle/delayed-ACK interaction (test-peers.md, rmcp facts).
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::warn!(error = %e, "cannot set TCP_NODELAY");
            }
        });
        let cancel = self.cancel.clone();
        let result = axum::serve(
            listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            shutdown.await;
            cancel.cancel();
        })
        .await;
        self.cancel.cancel();
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
    let cache = CacheConfig {
        max_entries: config.auth.cache.max_entries,
        max_ttl: Duration::from_secs(config.auth.cache.max_ttl_seconds),
        max_ttl_introspected: Duration::from_secs(config.auth.cache.max_ttl_seconds.min(60)),
        ..CacheConfig::default()
    };
    let authenticator = Arc::new(Authenticator::new(Arc::new(chain), cache));

    let seed = if config.database.seed_demo_data {
        Seed::Demo
    } else {
        Seed::None
    };
    let store = Store::connect(&config.database.url, seed)
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
    let billing = BillingServer::new(store.clone(), policy.clone(), tenants, audit.clone());

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
    let gatehouse = builder
        .observer(Arc::new(EdgeAudit(billing.clone())))
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
    let router = mcp_router
        // Outermost first when reading bottom-up: the request id exists before anything logs.
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetSensitiveRequestHeadersLayer::new([
            http::header::AUTHORIZATION,
        ]))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid));

    Ok(App {
        router,
        gatehouse,
        audit,
        store,
        cancel,
        listen: config.server.listen,
    })
}

/// Records `tools/call` requests refused at the edge (403 before the tool ran) in the billing
/// audit log, so the trail shows denied attempts too.
struct EdgeAudit(BillingServer);

impl gatehouse::observe::EdgeObserver for EdgeAudit {
    fn tool_call_denied(
        &self,
        caller: &gatehouse::Caller,
        tool: Option<&str>,
        _required: &ScopeSet,
        request_id: Option<&str>,
    ) {
        self.0.record_edge_denial(
            caller,
            tool.unwrap_or("<ambiguous>"),
            "insufficient_scope",
            request_id.map(str::to_owned),
        );
    }
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
    warn_if_plain_http_in_public(addr);
    tracing::info!(%addr, resource = %app.gatehouse().resource(), "serving MCP");
    app.serve(listener, shutdown).await
}

/// `gatehouse check`: validates the configuration, fetches metadata and keys, prints what the
/// server would use.
pub async fn check(config: Config) -> anyhow::Result<()> {
    let resource = resource_url(&config)?;
    let policy = policy(&config)?;
    let cancel = CancellationToken::new();
    let chain = VerifierChain::start(chain_config(&config, &resource)?, cancel.clone())
        .await
        .context("setting up token verification (auth.issuers / auth.introspection)")?;
    println!("resource: {resource}");
    println!("metadata: {}", resource.metadata_url());
    for issuer in &config.auth.issuers {
        let ready = chain
            .jwt_verifier(&issuer.issuer)
            .is_some_and(|v| v.jwks().is_none_or(|j| j.ready()));
        println!(
            "issuer {}: keys {}",
            issuer.issuer,
            if ready { "loaded" } else { "NOT loaded" }
        );
        if !ready {
            anyhow::bail!(
                "auth.issuers: no signing keys could be loaded for {}",
                issuer.issuer
            );
        }
    }
    for i in chain.introspection_verifiers() {
        println!("introspection for {}: {:?}", i.issuer(), i);
    }
    println!(
        "route scopes: {}",
        policy.route_scopes().to_space_separated()
    );
    cancel.cancel();
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
