//! Wiring: configuration → the library's builder (verifiers, policy, tenancy, limits), storage,
//! the billing server mounted through [`Gatehouse::mount`], the audit log and metrics as the
//! library's observers, and the listener. `build` and `App::serve` are the entry points shared by
//! the binary and the integration tests, so tests run exactly what users run.
//!
//! Nothing here carries tenant, audit, metrics or policy behaviour: the library owns it, and this
//! crate only says which observers listen.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use gatehouse::Gatehouse;
use gatehouse::mcp::DirectTools;
use gatehouse_billing::{AuditLog, BillingServer, CreditNotes, Seed, Store};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError};
use crate::metrics::{Admin, AuthFailureSummary, Metrics, admin_router};
use crate::serve::ServeOptions;

/// A built server: the router and what must be shut down with it.
pub struct App {
    router: Router,
    gatehouse: Gatehouse,
    audit: AuditLog,
    store: Store,
    /// Credit-note delivery, when `[credit_notes]` is configured; its courier runs while serving.
    credit_notes: Option<CreditNotes>,
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
    /// The address the server was built for (the bound listener's).
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// True when the listener terminates TLS.
    pub fn is_tls(&self) -> bool {
        self.serve_options.tls.is_some()
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

    /// Credit-note delivery, when configured (tests drive courier rounds through it).
    pub fn credit_notes(&self) -> Option<&CreditNotes> {
        self.credit_notes.as_ref()
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
        let courier = self
            .credit_notes
            .as_ref()
            .map(|c| c.spawn_courier(self.cancel.child_token()));
        let gatehouse = self.gatehouse.clone();
        let end_streams = self.end_streams_on_shutdown;
        let result = crate::serve::run(
            listener,
            self.router.clone(),
            self.serve_options.clone(),
            shutdown,
            move || {
                if end_streams {
                    gatehouse.shutdown();
                }
            },
        )
        .await;
        self.cancel.cancel();
        self.gatehouse.shutdown();
        let _ = summary_task.await;
        if let Some(t) = courier {
            let _ = t.await;
        }
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

/// Validates `config` and builds every component for a listener bound to `bound` (which gives
/// the default resource URL, port 0 included). Fetches the authorization servers' metadata and
/// keys, connects to the database and runs its migrations.
pub async fn build(config: Config, bound: SocketAddr) -> anyhow::Result<App> {
    let cancel = CancellationToken::new();
    let builder = config
        .settings()
        .builder(bound)
        .map_err(ConfigError::from)?;
    let serve_options = serve_options(&config)?;
    let delivery = config
        .credit_notes
        .as_ref()
        .map(|c| c.delivery(&config.upstreams))
        .transpose()?;

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
    let metrics = Arc::new(Metrics::default());
    // Every billing tool answers with one message and never uses the peer (no progress, no
    // logging, no server-to-client requests), so all of them may be answered directly.
    let direct = if config.server.direct_dispatch {
        DirectTools::All
    } else {
        DirectTools::Off
    };
    let gatehouse = builder
        .direct_tools(direct)
        .observer(Arc::new(audit.clone()))
        .observer(metrics.clone())
        .cancellation(cancel.child_token())
        .start()
        .await
        .context("setting up token verification (auth.issuers / auth.introspection)")?;
    metrics.attach(gatehouse.clone(), audit.clone());

    let credit_notes = match delivery {
        None => None,
        Some(delivery) => {
            let upstreams = gatehouse.upstreams().ok_or_else(|| {
                ConfigError::invalid("credit_notes", "needs the ledger in [[upstreams]]")
            })?;
            Some(
                CreditNotes::new(store.clone(), upstreams, delivery)
                    .map_err(|e| ConfigError::invalid("credit_notes", e))?,
            )
        }
    };
    let billing = match &credit_notes {
        Some(c) => BillingServer::with_credit_notes(store.clone(), c.clone()),
        None => BillingServer::new(store.clone()),
    };
    let router = gatehouse.mount(move || billing.clone());

    let summary = Arc::new(AuthFailureSummary::new(metrics.clone()));
    let admin_router = admin_router(Admin {
        registry: Arc::new(metrics.registry()),
        gatehouse: gatehouse.clone(),
        store: store.clone(),
    });
    Ok(App {
        router,
        end_streams_on_shutdown: gatehouse.is_stateful(),
        gatehouse,
        audit,
        store,
        credit_notes,
        cancel,
        listen: bound,
        metrics,
        admin_router,
        admin: config.admin.clone(),
        admin_listener: None,
        serve_options,
        summary,
        summary_period: Duration::from_secs(config.audit.auth_failure_summary_seconds.max(1)),
    })
}

fn serve_options(config: &Config) -> anyhow::Result<ServeOptions> {
    let l = &config.limits;
    l.validate().map_err(ConfigError::from)?;
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

/// Binds `server.listen` (port 0: any free port), builds, prints the ready line on stdout
/// (`gatehouse ready mcp=URL metadata=URL admin=ADDR|off`, so scripts and tests never race for a
/// port), and serves until `shutdown` resolves.
pub async fn serve<F>(config: Config, shutdown: F) -> anyhow::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("binding `server.listen` = {}", config.server.listen))?;
    let addr = listener.local_addr()?;
    let mut app = build(config, addr).await?;
    if !app.is_tls() {
        warn_if_plain_http_in_public(addr);
    }
    let admin = app.bind_admin().await?;
    let resource = app.gatehouse().resource().clone();
    tracing::info!(%addr, %resource, "serving MCP");
    println!("{}", ready_line(&resource, admin));
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    app.serve(listener, shutdown).await
}

/// The line `serve` prints once it accepts connections.
pub fn ready_line(resource: &gatehouse::ResourceUrl, admin: Option<SocketAddr>) -> String {
    let admin = admin.map_or_else(|| "off".to_owned(), |a| a.to_string());
    format!(
        "gatehouse ready mcp={resource} metadata={} admin={admin}",
        resource.metadata_url()
    )
}

/// `gatehouse check`: validates the configuration, fetches every issuer's metadata and keys and
/// every introspection endpoint's discovery, and prints what the server would use: issuers with
/// their key ids and algorithms, endpoints, limits, and the metadata document it will serve.
/// The error names the configuration key (and URL) at fault.
pub async fn check(config: Config) -> anyhow::Result<()> {
    use gatehouse::verify::introspection::IntrospectionVerifier;
    use gatehouse::verify::jwt::JwtVerifier;

    let builder = config
        .settings()
        .builder(config.server.listen)
        .map_err(ConfigError::from)?;
    let options = serve_options(&config)?;
    let chain_config = builder.chain_config();
    let resource = config
        .server
        .resource_url(config.server.listen)
        .map_err(ConfigError::from)?;

    println!("resource: {resource}");
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
    }
    for (i, c) in chain_config.introspection.into_iter().enumerate() {
        let issuer = c.issuer.clone();
        let v = IntrospectionVerifier::discover(c).await.with_context(|| {
            format!(
                "`auth.introspection[{i}]` for {issuer}: introspection endpoint discovery failed"
            )
        })?;
        println!("introspection for {issuer}\n  endpoint: {}", v.endpoint());
    }
    let gatehouse = builder
        .start()
        .await
        .context("configuring the protected resource")?;
    println!(
        "route scopes: {}",
        gatehouse.policy().route_scopes().to_space_separated()
    );
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
    gatehouse.shutdown();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ready_line_names_every_endpoint() {
        let r = gatehouse::ResourceUrl::parse("http://127.0.0.1:4321/mcp").unwrap();
        assert_eq!(
            ready_line(&r, Some(SocketAddr::from(([127, 0, 0, 1], 9)))),
            "gatehouse ready mcp=http://127.0.0.1:4321/mcp \
             metadata=http://127.0.0.1:4321/.well-known/oauth-protected-resource/mcp \
             admin=127.0.0.1:9"
        );
        assert!(ready_line(&r, None).ends_with("admin=off"));
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
