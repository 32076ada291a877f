//! The one typed configuration of `gatehouse serve`: a TOML file, every key overridable by an
//! environment variable (`GATEHOUSE_SERVER__LISTEN=…`: `__` separates levels), the common ones by
//! flags. Start-up validation names the key at fault.
//!
//! Every field documents its default and why it is safe. Anything that weakens a check is named
//! `dangerous_*` and logs a warning at start-up.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The HTTP listener and the protected resource.
    pub server: ServerConfig,
    /// Who may issue tokens for this server and how they are checked.
    pub auth: AuthConfig,
    /// Which scopes each operation needs.
    pub policy: PolicyConfig,
    /// Where the caller's tenant comes from.
    pub tenancy: TenancyConfig,
    /// The billing database.
    pub database: DatabaseConfig,
    /// The admin listener: `/metrics`, `/healthz`, `/readyz`.
    pub admin: AdminConfig,
    /// Connection and request limits.
    pub limits: LimitsConfig,
    /// TLS termination (absent: plain HTTP).
    pub tls: Option<TlsConfig>,
    /// Rate limits (each absent: off).
    pub rate_limits: RateLimitsConfig,
    /// The audit trail on the `gatehouse::audit` tracing target.
    pub audit: AuditConfig,
}

/// `[admin]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Serve the admin listener. Default true.
    pub enabled: bool,
    /// Its address. Default `127.0.0.1:9464` (loopback: metrics reveal traffic patterns and
    /// client ids' activity; expose them deliberately, never by default).
    pub listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
        }
    }
}

/// `[limits]`. Body and token sizes are `server.max_body_bytes` / `server.max_token_bytes`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest request head (request line + headers) in bytes; larger gets `431` (HTTP/1.1) or
    /// a stream reset (HTTP/2). Default 16384, at least 8192 (hyper's floor).
    pub max_header_bytes: usize,
    /// Time a client has to send its complete request head (slowloris). Default 10 s.
    pub header_read_timeout_seconds: u64,
    /// Time from request head to response head; past it the request gets `408`. Default 30 s.
    pub request_timeout_seconds: u64,
    /// Requests processed at once; more get `503` + `Retry-After` at once (no queueing).
    /// Default 1024.
    pub max_concurrent_requests: usize,
    /// Time a TLS client has to complete its handshake. Default 10 s.
    pub tls_handshake_timeout_seconds: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_header_bytes: 16 * 1024,
            header_read_timeout_seconds: 10,
            request_timeout_seconds: 30,
            max_concurrent_requests: 1024,
            tls_handshake_timeout_seconds: 10,
        }
    }
}

/// `[tls]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// `[rate_limits]`: each quota is `{ per_minute = N, burst = M }`; absent means no limit.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitsConfig {
    /// Per OAuth client (client id, else subject) of the verified token.
    pub per_client: Option<QuotaConfig>,
    /// Per tenant (the tenant claim, else `tenancy.clients`).
    pub per_tenant: Option<QuotaConfig>,
    /// Failed authentications (malformed or refused tokens) per source address; over it, the
    /// address gets `429` before its tokens are verified. Default 60 per minute, burst 20.
    pub failed_auth_per_address: Option<QuotaConfig>,
    /// Most keys tracked per limit (bounded memory). Default 100000.
    pub max_keys: usize,
}

impl Default for RateLimitsConfig {
    fn default() -> Self {
        Self {
            per_client: None,
            per_tenant: None,
            failed_auth_per_address: Some(QuotaConfig {
                per_minute: 60,
                burst: 20,
            }),
            max_keys: 100_000,
        }
    }
}

/// A rate quota.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaConfig {
    /// Sustained requests per minute.
    pub per_minute: u32,
    /// Requests allowed at once.
    pub burst: u32,
}

/// `[audit]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Authentication failures are summarised (counts by reason) on the audit target every this
    /// many seconds, and at shutdown, instead of one line per failure. Default 60.
    pub auth_failure_summary_seconds: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            auth_failure_summary_seconds: 60,
        }
    }
}

/// `[server]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on. Default `127.0.0.1:8080` (loopback: MCP transport spec, "bind to
    /// 127.0.0.1 when running locally").
    pub listen: SocketAddr,
    /// The canonical URL clients use to reach the MCP endpoint; tokens' `aud` must name it.
    /// Default `http://127.0.0.1:8080/mcp`. Must be https outside loopback.
    pub resource: String,
    /// Human-readable name in the protected-resource metadata.
    pub resource_name: String,
    /// Extra `Host` values accepted besides the resource URL's authority (DNS-rebinding guard).
    pub allowed_hosts: Vec<String>,
    /// Extra `Origin` values accepted besides the resource URL's origin.
    pub allowed_origins: Vec<String>,
    /// Peer addresses (IP or CIDR) whose `X-Forwarded-Host`/`-Proto` are believed. Default: none.
    pub trusted_proxies: Vec<String>,
    /// Serve CORS headers for browser clients (origins from `allowed_origins`). Default off.
    pub cors: bool,
    /// `scopes_supported` in the metadata document. Default: the policy's route scopes (the
    /// minimal set for basic use, spec-requirements A10).
    pub scopes_supported: Vec<String>,
    /// Bind MCP sessions to the principal (stateful mode). Default false: stateless, any replica
    /// can serve any request.
    pub stateful_sessions: bool,
    /// Largest accepted bearer token in bytes. Default 16384.
    pub max_token_bytes: usize,
    /// Largest accepted request body in bytes. Default 4 MiB (rmcp's default).
    pub max_body_bytes: usize,
    /// Allow a plain-http resource URL on a non-loopback host. Default false (OAuth 2.1 §1.5).
    pub dangerous_allow_insecure_http: bool,
    /// On SIGTERM/SIGINT: stop accepting, then give in-flight requests this long to finish.
    /// Default 30.
    pub shutdown_grace_seconds: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            resource: "http://127.0.0.1:8080/mcp".into(),
            resource_name: "Gatehouse Billing".into(),
            allowed_hosts: vec![],
            allowed_origins: vec![],
            trusted_proxies: vec![],
            cors: false,
            scopes_supported: vec![],
            stateful_sessions: false,
            max_token_bytes: 16 * 1024,
            max_body_bytes: 4 * 1024 * 1024,
            dangerous_allow_insecure_http: false,
            shutdown_grace_seconds: 30,
        }
    }
}

/// `[auth]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Issuers of JWT access tokens (`[[auth.issuers]]`). At least one issuer or an
    /// introspection endpoint is required.
    pub issuers: Vec<IssuerConfig>,
    /// RFC 7662 introspection for opaque tokens (`[[auth.introspection]]`).
    pub introspection: Vec<IntrospectionConfig>,
    /// Verified-token cache.
    pub cache: CacheConfig,
}

/// One `[[auth.issuers]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The issuer identifier, compared byte-for-byte with `iss` and with the discovery document.
    pub issuer: String,
    /// JWKS URL. Default: discovered from RFC 8414 / OpenID Connect metadata of `issuer`.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// Accepted audiences. Default: the resource URL only.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Allowed signature algorithms. Default: RS256/384/512, PS256/384/512, ES256, ES384, EdDSA.
    #[serde(default)]
    pub algorithms: Vec<String>,
    /// Also accept header `typ: JWT` (Keycloak, Entra, Auth0 default dialect). Default false:
    /// RFC 9068 §4 requires `at+jwt`.
    #[serde(default)]
    pub accept_typ_jwt: bool,
    /// Also accept tokens without `typ` (Okta custom AS, Cognito). Default false.
    #[serde(default)]
    pub accept_missing_typ: bool,
    /// Clock-skew leeway in seconds. Default 60, at most 300.
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
    /// Additional claims that carry scopes (e.g. Auth0 `permissions`).
    #[serde(default)]
    pub extra_scope_claims: Vec<String>,
}

fn default_leeway() -> u64 {
    60
}

impl IssuerConfig {
    /// An issuer entry with every option at its default (what a file with only `issuer = …`
    /// gives).
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            jwks_uri: None,
            audiences: vec![],
            algorithms: vec![],
            accept_typ_jwt: false,
            accept_missing_typ: false,
            leeway_seconds: default_leeway(),
            extra_scope_claims: vec![],
        }
    }
}

/// One `[[auth.introspection]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntrospectionConfig {
    /// The issuer whose opaque tokens this endpoint decides; `iss` in responses must match.
    pub issuer: String,
    /// Introspection endpoint. Default: discovered from the issuer's metadata.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// This resource server's client id at the authorization server.
    pub client_id: String,
    /// The client secret, from a file (preferred) …
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// … or from the environment variable of this name. Never inline in the file.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// `basic` (default, `client_secret_basic`) or `post` (`client_secret_post`).
    #[serde(default = "default_auth_method")]
    pub auth_method: String,
    /// Accepted audiences in responses. Default: the resource URL.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Accept `active` responses without `aud`. Default false: a token minted for no resource is
    /// not proof that it was minted for this one (MCP audience binding). Only for an
    /// authorization server that audience-restricts introspection itself.
    #[serde(default)]
    pub dangerous_accept_missing_audience: bool,
}

fn default_auth_method() -> String {
    "basic".into()
}

/// `[auth.cache]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Maximum number of verified tokens kept. Default 10000, the library's default: about
    /// 2 KB each when full (claims, bookkeeping; measured in `bench/README.md`), and a
    /// token that falls out is only verified again (one signature check).
    pub max_entries: u64,
    /// Longest time a verification result is reused, in seconds, even if the token lives
    /// longer. For introspected tokens this is the revocation window. Default 300.
    pub max_ttl_seconds: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_entries: gatehouse::verify::cache::CacheConfig::default().max_entries,
            max_ttl_seconds: 300,
        }
    }
}

/// `[policy]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Scopes every request to the MCP endpoint needs. Default `["invoices:read"]`.
    pub route_scopes: Vec<String>,
    /// Extra scopes per tool: `void_invoice = ["invoices:write"]`.
    pub tools: BTreeMap<String, Vec<String>>,
    /// Scope hierarchy: `"invoices:write" = ["invoices:read"]` (write implies read).
    pub hierarchy: BTreeMap<String, Vec<String>>,
    /// `all` (default: every tool is listed so clients can discover what to step up to) or
    /// `filter` (hide tools the caller's scopes cannot call).
    pub tools_list: String,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            route_scopes: vec!["invoices:read".into()],
            tools: BTreeMap::from([("void_invoice".into(), vec!["invoices:write".into()])]),
            hierarchy: BTreeMap::from([("invoices:write".into(), vec!["invoices:read".into()])]),
            tools_list: "all".into(),
        }
    }
}

/// `[tenancy]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenancyConfig {
    /// The claim that names the caller's tenant. Default `tenant`.
    pub claim: String,
    /// Tenant of client-credentials clients whose tokens carry no tenant claim.
    pub clients: HashMap<String, String>,
}

impl Default for TenancyConfig {
    fn default() -> Self {
        Self {
            claim: "tenant".into(),
            clients: HashMap::new(),
        }
    }
}

/// `[database]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://path/to/file.db` (default `sqlite://gatehouse.db`) or `postgres://…`.
    pub url: String,
    /// Seed demo data. Default false: production starts empty.
    pub seed_demo_data: bool,
    /// How long a single-invoice read may be answered from memory, in milliseconds (default
    /// 1000; 0 reads the database every time). Changes made through this server are seen at
    /// once; changes made by another process on the same database within this time.
    pub invoice_cache_ttl_ms: u64,
    /// Most invoices kept in that cache (default 10,000).
    pub invoice_cache_max_entries: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        let cache = gatehouse_billing::InvoiceCacheConfig::default();
        Self {
            url: "sqlite://gatehouse.db".into(),
            seed_demo_data: false,
            invoice_cache_ttl_ms: u64::try_from(cache.ttl.as_millis()).unwrap_or(u64::MAX),
            invoice_cache_max_entries: cache.max_entries,
        }
    }
}

impl DatabaseConfig {
    /// The invoice-cache settings these keys describe.
    pub fn invoice_cache(&self) -> gatehouse_billing::InvoiceCacheConfig {
        gatehouse_billing::InvoiceCacheConfig {
            max_entries: self.invoice_cache_max_entries,
            ttl: std::time::Duration::from_millis(self.invoice_cache_ttl_ms),
        }
    }
}

/// A configuration error that names the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// File or environment could not be parsed into the typed configuration.
    #[error("{0}")]
    Load(Box<figment::Error>),
    /// A value parsed but is not acceptable.
    #[error("invalid value for `{key}`: {message}")]
    Invalid {
        /// Dotted key path, e.g. `server.resource`.
        key: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

impl ConfigError {
    /// An [`ConfigError::Invalid`] for `key`.
    pub fn invalid(key: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Self::Invalid {
            key: key.into(),
            message: message.to_string(),
        }
    }
}

impl Config {
    /// Loads defaults, then the TOML file (if any), then `GATEHOUSE_*` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        // GATEHOUSE_CONFIG and GATEHOUSE_LOG_JSON are command-line options, not configuration keys.
        let env = Env::prefixed("GATEHOUSE_")
            .ignore(&["CONFIG", "LOG_JSON"])
            .split("__");
        Self::load_from(file, env)
    }

    fn load_from(file: Option<&Path>, env: Env) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::invalid(
                    "--config",
                    format!("{} does not exist", path.display()),
                ));
            }
            fig = fig.merge(Toml::file_exact(path));
        }
        fig.merge(env)
            .extract()
            .map_err(|e| ConfigError::Load(Box::new(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, body: &str) -> PathBuf {
        let p = dir.join("gatehouse.toml");
        std::fs::write(&p, body).unwrap();
        p
    }

    fn tmpdir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("gh-config-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    // figment's `Jail` API fixes the closure's error type; its size is not ours to choose.
    #[allow(clippy::result_large_err)]
    fn defaults_file_and_env_layer_in_order() {
        let d = tmpdir();
        let p = write(
            &d,
            "[server]\nlisten = \"127.0.0.1:9000\"\nresource = \"https://mcp.example.com/mcp\"\n\
             [[auth.issuers]]\nissuer = \"https://as.example.com\"\n",
        );
        let env = figment::providers::Env::raw().only(&[]);
        let c = Config::load_from(Some(&p), env).unwrap();
        assert_eq!(c.server.listen.port(), 9000);
        assert_eq!(c.auth.issuers[0].leeway_seconds, 60);
        assert_eq!(c.policy.route_scopes, vec!["invoices:read".to_string()]);

        figment::Jail::expect_with(|jail| {
            jail.set_env("GATEHOUSE_SERVER__LISTEN", "127.0.0.1:9100");
            jail.set_env("GATEHOUSE_CONFIG", "ignored.toml");
            jail.set_env("GATEHOUSE_LOG_JSON", "true");
            let c = Config::load(Some(&p)).unwrap();
            assert_eq!(c.server.listen.port(), 9100);
            Ok(())
        });
    }

    #[test]
    fn invoice_cache_keys_reach_the_store_settings() {
        let d = tmpdir();
        let defaults = Config::load_from(None, Env::raw().only(&[])).unwrap();
        assert_eq!(
            defaults.database.invoice_cache(),
            gatehouse_billing::InvoiceCacheConfig::default()
        );
        let p = write(
            &d,
            "[database]\ninvoice_cache_ttl_ms = 0\ninvoice_cache_max_entries = 7\n",
        );
        let c = Config::load_from(Some(&p), Env::raw().only(&[])).unwrap();
        let cache = c.database.invoice_cache();
        assert_eq!(
            (cache.ttl, cache.max_entries),
            (std::time::Duration::ZERO, 7)
        );
    }

    #[test]
    fn the_shipped_example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../gatehouse.example.toml");
        let c = Config::load_from(Some(&path), Env::raw().only(&[])).unwrap();
        assert_eq!(c.server.resource, "https://mcp.example.com/mcp");
        assert_eq!(c.auth.issuers[0].issuer, "https://auth.example.com");
        assert_eq!(c.policy.tools["void_invoice"], ["invoices:write"]);
    }

    #[test]
    fn unknown_and_mistyped_keys_are_named() {
        let d = tmpdir();
        let p = write(&d, "[server]\nlisen = \"127.0.0.1:9000\"\n");
        let e = Config::load_from(Some(&p), Env::raw().only(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("lisen"), "{e}");

        let p = write(&d, "[server]\nlisten = \"not an address\"\n");
        let e = Config::load_from(Some(&p), Env::raw().only(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("server.listen"), "{e}");
    }
}
