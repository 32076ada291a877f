//! `gatehouse dev-issuer`: the development authorization server alone.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use gatehouse_dev_issuer::{DevIssuer, DevIssuerConfig};
use tokio::net::TcpListener;

use crate::app;

/// Options of `gatehouse dev-issuer`.
#[derive(Debug, Clone, clap::Args)]
pub struct DevIssuerArgs {
    /// Loopback address to listen on; other addresses are refused.
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub listen: SocketAddr,
    /// TOML file with `[[clients]]` (id, secret, allowed_scopes, tenant, and for RFC 8693 token
    /// exchange `serves` = the resource it is the server for and `may_exchange_for` = the target
    /// audiences), `[[users]]` (name, tenant, allowed_scopes: who may log in on the browser
    /// login page; with users the authorization code flow, registration and refresh tokens are
    /// served), `token_ttl`, `signing_alg` (ES256 or RS256), `signing_key_pem`,
    /// `tenant_claim`. Without it, one client `dev-client` / `dev-secret` and one user
    /// `dev-user`, both with `invoices:read invoices:write` for tenant `acme`.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

/// Runs the issuer until SIGINT/SIGTERM.
pub async fn run(args: DevIssuerArgs) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            toml::from_str::<DevIssuerConfig>(&text)
                .with_context(|| format!("parsing {}", path.display()))?
        }
        None => DevIssuerConfig {
            clients: vec![
                gatehouse_dev_issuer::DevClient::new(
                    "dev-client",
                    "dev-secret",
                    ["invoices:read", "invoices:write"],
                )
                .with_tenant("acme"),
            ],
            users: vec![
                gatehouse_dev_issuer::DevUser::new("dev-user", ["invoices:read", "invoices:write"])
                    .with_tenant("acme"),
            ],
            ..DevIssuerConfig::default()
        },
    };
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let issuer =
        DevIssuer::for_listener(&listener, config).context("starting the development issuer")?;
    eprintln!("{}", gatehouse_dev_issuer::banner(issuer.issuer()));
    println!("token endpoint: {}", issuer.token_endpoint());
    println!("jwks:           {}", issuer.jwks_uri());
    gatehouse_dev_issuer::serve_issuer(listener, issuer, app::shutdown_signal())
        .await
        .context("development issuer failed")
}
