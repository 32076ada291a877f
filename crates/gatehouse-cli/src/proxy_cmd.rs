//! `gatehouse proxy --config FILE`: the same protection in front of MCP servers someone else
//! wrote (stdio, any language). The file has the library's sections — `[server]`, `[auth]`,
//! `[tenancy]`, `[rate_limits]`, `[limits]`, `[tls]` — with the same keys as `gatehouse serve`,
//! and one `[[proxy]]` entry per upstream server ([`gatehouse_gateway::ProxiedServer`]).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use gatehouse::settings::{
    AuthSettings, LimitSettings, RateLimitSettings, ServerSettings, Settings, TenancySettings,
    UpstreamSettings,
};
use gatehouse_gateway::ProxiedServer;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use std::sync::Arc;

use crate::config::{AdminConfig, ConfigError, TlsConfig};
use crate::metrics::{Metrics, UpstreamCollector};
use crate::serve::ServeOptions;

/// Options of `gatehouse proxy`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProxyArgs {
    /// Configuration file (TOML). Every key can also be set as GATEHOUSE_SECTION__KEY.
    #[arg(
        long,
        short,
        env = "GATEHOUSE_CONFIG",
        required_unless_present = "demo"
    )]
    pub config: Option<PathBuf>,
    /// Try it: a development authorization server and the gateway on loopback in front of the
    /// stdio server started by the command after `--`, with tokens and commands printed.
    #[arg(long, conflicts_with = "config", requires = "command")]
    pub demo: bool,
    /// `--demo`: port of the gateway on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8080, requires = "demo")]
    pub port: u16,
    /// `--demo`: port of the development authorization server on 127.0.0.1.
    #[arg(long, default_value_t = 8090, requires = "demo")]
    pub issuer_port: u16,
    /// `--demo`: the stdio MCP server's command and arguments.
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// The whole `gatehouse proxy` configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    /// The listener; `server.resource` is the base URL each `[[proxy]]` path is appended to.
    pub server: ServerSettings,
    /// Who may issue tokens and how they are checked (shared by every proxied server).
    pub auth: AuthSettings,
    /// Where the caller's tenant comes from.
    pub tenancy: TenancySettings,
    /// Rate limits (each absent: off; the failed-verification limit on by default).
    pub rate_limits: RateLimitSettings,
    /// Connection and request limits.
    pub limits: LimitSettings,
    /// TLS termination (absent: plain HTTP).
    pub tls: Option<TlsConfig>,
    /// The admin listener: `/metrics` (as for `gatehouse serve`, plus each upstream's health
    /// and connections), `/healthz` and `/readyz` (every proxied server's issuer keys loaded and
    /// its upstream not failing to start). Default `127.0.0.1:9464`.
    pub admin: AdminConfig,
    /// Credentials for upstreams (`[[upstreams]]`, as for `gatehouse serve`): a `[[proxy]]`
    /// entry's `credential_upstream` names one (token exchange, client credentials).
    pub upstreams: Vec<UpstreamSettings>,
    /// The upstream servers.
    pub proxy: Vec<ProxiedServer>,
}

impl ProxyConfig {
    /// Loads the TOML file, then `GATEHOUSE_*` environment variables.
    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        if !file.exists() {
            return Err(ConfigError::invalid(
                "--config",
                format!("{} does not exist", file.display()),
            ));
        }
        let env = Env::prefixed("GATEHOUSE_")
            .ignore(&["CONFIG", "LOG_JSON"])
            .split("__");
        Figment::from(Serialized::defaults(ProxyConfig::default()))
            .merge(Toml::file_exact(file))
            .merge(env)
            .extract()
            .map_err(|e| ConfigError::Load(Box::new(e)))
    }

    /// The library's settings shared by every proxied server.
    pub fn settings(&self) -> Settings {
        Settings {
            server: self.server.clone(),
            auth: self.auth.clone(),
            tenancy: self.tenancy.clone(),
            rate_limits: self.rate_limits.clone(),
            limits: self.limits.clone(),
            upstreams: self.upstreams.clone(),
            ..Settings::default()
        }
    }
}

/// Binds `server.listen`, builds every proxied server (each upstream is started once to learn
/// what it offers), prints one ready line per server
/// (`gatehouse proxy ready name=N mcp=URL metadata=URL`) and serves until `shutdown`.
pub async fn serve<F>(config: ProxyConfig, shutdown: F) -> anyhow::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    config.limits.validate().map_err(ConfigError::from)?;
    let options = ServeOptions {
        limits: config.limits.clone(),
        tls: config
            .tls
            .as_ref()
            .map(crate::serve::tls_acceptor)
            .transpose()?,
        grace: Duration::from_secs(config.server.shutdown_grace_seconds),
    };
    let listener = TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("binding `server.listen` = {}", config.server.listen))?;
    let bound = listener.local_addr()?;
    let cancel = CancellationToken::new();
    // The same metrics as `gatehouse serve` (requests, refusals, authentication, tool calls,
    // caches, rate limits), summed over the proxied servers, plus each upstream's health.
    let metrics = Arc::new(Metrics::default());
    let observers: [Arc<dyn gatehouse::observe::Observer>; 1] = [metrics.clone()];
    let gateway = gatehouse_gateway::build(
        &config.settings(),
        &config.proxy,
        bound,
        &observers,
        cancel.clone(),
    )
    .await
    .map_err(ConfigError::from)?;
    let mut gateway = gateway;
    let router = std::mem::take(&mut gateway.router);
    let gateway = Arc::new(gateway);
    metrics.attach_all(gateway.servers.iter().map(|s| s.3.clone()).collect());
    let mut registry = metrics.registry();
    {
        let g = gateway.clone();
        registry.register_collector(Box::new(UpstreamCollector(Arc::new(move || {
            g.servers
                .iter()
                .map(|(name, _, handler, _)| {
                    let pool = handler.pool();
                    (name.clone(), pool.healthy(), pool.process_count())
                })
                .collect()
        }))));
    }
    let registry = Arc::new(registry);
    let admin = match config.admin.enabled {
        false => None,
        true => {
            let l = TcpListener::bind(config.admin.listen)
                .await
                .with_context(|| format!("binding `admin.listen` = {}", config.admin.listen))?;
            let addr = l.local_addr()?;
            let g = gateway.clone();
            let app = axum::Router::new()
                .route(
                    "/metrics",
                    axum::routing::get(move || {
                        let registry = registry.clone();
                        async move { crate::metrics::encode_registry(&registry) }
                    }),
                )
                .route("/healthz", axum::routing::get(|| async { "ok\n" }))
                .route(
                    "/readyz",
                    axum::routing::get(move || {
                        let (ready, details) = g.readiness();
                        let status = if ready {
                            http::StatusCode::OK
                        } else {
                            http::StatusCode::SERVICE_UNAVAILABLE
                        };
                        async move { (status, axum::Json(details)) }
                    }),
                );
            let stop = cancel.clone();
            tokio::spawn(async move {
                axum::serve(l, app)
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await
            });
            Some(addr)
        }
    };
    let admin = admin.map_or_else(|| "off".to_owned(), |a| a.to_string());
    for (name, resource, _, _) in &gateway.servers {
        println!(
            "gatehouse proxy ready name={name} mcp={resource} metadata={} admin={admin}",
            resource.metadata_url()
        );
    }
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    let result = crate::serve::run(listener, router, options, shutdown, || {}).await;
    cancel.cancel();
    for (_, _, _, gatehouse) in &gateway.servers {
        gatehouse.shutdown();
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    // The README's gateway configuration is a real one.
    #[test]
    fn the_readme_gateway_config_parses() {
        let readme = include_str!("../../../README.md");
        let section = &readme[readme.find("## Protect an existing MCP server").unwrap()..];
        let start = section.find("```toml\n").unwrap() + 8;
        let body = &section[start..start + section[start..].find("```").unwrap()];
        let c: ProxyConfig = toml::from_str(body).unwrap();
        let p = &c.proxy[0];
        assert_eq!((p.name.as_str(), p.path.as_str()), ("files", "/files/mcp"));
        assert_eq!(p.policy.tools["list_*"], ["files:read"]);
        assert_eq!(
            p.policy.unnamed_tools, None,
            "the gateway's default, deny, applies"
        );
        assert!(c.settings().builder(c.server.listen).is_ok());
    }

    #[test]
    fn a_proxy_file_parses_and_unknown_keys_are_refused() {
        let dir = std::env::temp_dir().join(format!("gh-proxy-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("proxy.toml");
        std::fs::write(
            &file,
            r#"
            [server]
            listen = "127.0.0.1:0"
            [[auth.issuers]]
            issuer = "https://auth.example.com"
            [[proxy]]
            name = "everything"
            path = "/everything/mcp"
            command = "npx"
            args = ["-y", "@modelcontextprotocol/server-everything"]
            [proxy.policy]
            route_scopes = ["mcp"]
            tools = { "get_*" = ["mcp:read"], "*" = ["mcp:admin"] }
            "#,
        )
        .unwrap();
        let c = ProxyConfig::load(&file).unwrap();
        assert_eq!(c.proxy.len(), 1);
        assert_eq!(
            c.proxy[0].args[1],
            "@modelcontextprotocol/server-everything"
        );
        assert_eq!(c.proxy[0].policy.tools["*"], ["mcp:admin"]);
        std::fs::write(
            &file,
            "[[proxy]]\nname='x'\npath='/x'\ncommand='y'\nisolaton='shared'\n",
        )
        .unwrap();
        let e = ProxyConfig::load(&file).unwrap_err().to_string();
        assert!(e.contains("isolaton"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
