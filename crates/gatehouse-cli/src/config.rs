//! The one typed configuration of `gatehouse serve`: a TOML file, every key overridable by an
//! environment variable (`GATEHOUSE_SERVER__LISTEN=…`: `__` separates levels), the common ones by
//! flags. Start-up validation names the key at fault.
//!
//! The sections that configure the protection (`[server]`, `[auth]`, `[policy]`, `[tenancy]`,
//! `[rate_limits]`, `[limits]`) are the library's own types ([`gatehouse::settings`]); this
//! crate adds the billing database, the admin listener, TLS and the audit summary, and gives the
//! billing server's defaults (its scopes, the `tenant` claim, its name).
//!
//! Every field documents its default and why it is safe. Anything that weakens a check is named
//! `dangerous_*` and logs a warning at start-up.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use gatehouse::settings::{
    AuthSettings, LimitSettings, PolicySettings, RateLimitSettings, ServerSettings, Settings,
    SettingsError, TenancySettings, UpstreamSettings,
};
use serde::{Deserialize, Serialize};

/// One `[[auth.issuers]]` entry (the library's type).
pub use gatehouse::settings::IssuerSettings as IssuerConfig;

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The HTTP listener and the protected resource.
    pub server: ServerSettings,
    /// Who may issue tokens for this server and how they are checked.
    pub auth: AuthSettings,
    /// Which scopes each operation needs.
    pub policy: PolicySettings,
    /// Where the caller's tenant comes from.
    pub tenancy: TenancySettings,
    /// The billing database.
    pub database: DatabaseConfig,
    /// The admin listener: `/metrics`, `/healthz`, `/readyz`.
    pub admin: AdminConfig,
    /// Connection and request limits.
    pub limits: LimitSettings,
    /// TLS termination (absent: plain HTTP).
    pub tls: Option<TlsConfig>,
    /// Rate limits (each absent: off).
    pub rate_limits: RateLimitSettings,
    /// The audit trail on the `gatehouse::audit` tracing target.
    pub audit: AuditConfig,
    /// APIs the tools call, each with its own credential (`[[upstreams]]`).
    pub upstreams: Vec<UpstreamSettings>,
    /// Credit notes posted to a ledger API for every void (absent: off).
    pub credit_notes: Option<CreditNotesConfig>,
}

impl Default for Config {
    /// The library's defaults, plus the billing server's: `invoices:read` for every request,
    /// `invoices:write` for `void_invoice` (and implying `invoices:read`), the tenant from the
    /// `tenant` claim, and its name in the metadata.
    fn default() -> Self {
        Self {
            server: ServerSettings {
                resource_name: "Gatehouse Billing".into(),
                ..ServerSettings::default()
            },
            auth: AuthSettings::default(),
            policy: PolicySettings {
                route_scopes: vec![gatehouse_billing::SCOPE_READ.into()],
                tools: BTreeMap::from([(
                    gatehouse_billing::server::TOOL_VOID.into(),
                    vec![gatehouse_billing::SCOPE_WRITE.into()],
                )]),
                hierarchy: BTreeMap::from([(
                    gatehouse_billing::SCOPE_WRITE.into(),
                    vec![gatehouse_billing::SCOPE_READ.into()],
                )]),
                ..PolicySettings::default()
            },
            tenancy: TenancySettings {
                claim: "tenant".into(),
                ..TenancySettings::default()
            },
            database: DatabaseConfig::default(),
            admin: AdminConfig::default(),
            limits: LimitSettings::default(),
            tls: None,
            rate_limits: RateLimitSettings::default(),
            audit: AuditConfig::default(),
            upstreams: Vec::new(),
            credit_notes: None,
        }
    }
}

impl Config {
    /// The sections the library reads.
    pub fn settings(&self) -> Settings {
        Settings {
            server: self.server.clone(),
            auth: self.auth.clone(),
            policy: self.policy.clone(),
            tenancy: self.tenancy.clone(),
            rate_limits: self.rate_limits.clone(),
            limits: self.limits.clone(),
            upstreams: self.upstreams.clone(),
        }
    }
}

/// `[credit_notes]`: every void also owes a credit note to a ledger API, written in the void's
/// transaction and delivered with retries (see `gatehouse_billing::credit_notes`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreditNotesConfig {
    /// The `[[upstreams]]` entry used while the user's request is in flight (typically
    /// `token_exchange`: the ledger sees the user and this server as actor).
    pub upstream: String,
    /// The `[[upstreams]]` entry used for retries after the request has ended:
    /// `client_credentials` or `static` (no user's token is kept for later).
    pub retry_upstream: String,
    /// Path of the credit-note collection under the upstream's base. Default `credit-notes`.
    #[serde(default = "default_credit_note_path")]
    pub path: String,
    /// Seconds a note is left to the inline attempt before retries may take it. Default 30.
    #[serde(default = "default_grace_seconds")]
    pub grace_seconds: u64,
    /// First retry delay in milliseconds, doubled after each failure. Default 1000.
    #[serde(default = "default_min_backoff_ms")]
    pub min_backoff_ms: u64,
    /// Longest retry delay in seconds. Default 300.
    #[serde(default = "default_max_backoff_seconds")]
    pub max_backoff_seconds: u64,
    /// How often retries look for due notes, in milliseconds. Default 2000.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
}

fn default_credit_note_path() -> String {
    "credit-notes".into()
}
fn default_grace_seconds() -> u64 {
    30
}
fn default_min_backoff_ms() -> u64 {
    1000
}
fn default_max_backoff_seconds() -> u64 {
    300
}
fn default_poll_interval_ms() -> u64 {
    2000
}

impl CreditNotesConfig {
    /// The delivery settings of the billing crate, checked against `upstreams`: both names must
    /// be configured, and retries (which run after the user's request has ended) cannot use
    /// `token_exchange`.
    pub fn delivery(
        &self,
        upstreams: &[UpstreamSettings],
    ) -> Result<gatehouse_billing::CreditNoteDelivery, ConfigError> {
        use std::time::Duration;
        let mode = |key: &str, name: &str| {
            upstreams
                .iter()
                .find(|u| u.name == name)
                .map(|u| u.mode)
                .ok_or_else(|| {
                    ConfigError::invalid(key, format!("no [[upstreams]] entry is named {name:?}"))
                })
        };
        mode("credit_notes.upstream", &self.upstream)?;
        if mode("credit_notes.retry_upstream", &self.retry_upstream)?
            == gatehouse::settings::UpstreamMode::TokenExchange
        {
            return Err(ConfigError::invalid(
                "credit_notes.retry_upstream",
                "retries run after the user's request has ended, without the user's token: \
                 use a client_credentials or static upstream",
            ));
        }
        if self.poll_interval_ms == 0 {
            return Err(ConfigError::invalid(
                "credit_notes.poll_interval_ms",
                "must be at least 1",
            ));
        }
        Ok(gatehouse_billing::CreditNoteDelivery {
            path: self.path.clone(),
            grace: Duration::from_secs(self.grace_seconds),
            min_backoff: Duration::from_millis(self.min_backoff_ms),
            max_backoff: Duration::from_secs(self.max_backoff_seconds),
            poll_interval: Duration::from_millis(self.poll_interval_ms),
            ..gatehouse_billing::CreditNoteDelivery::new(&self.upstream, &self.retry_upstream)
        })
    }
}

/// `[admin]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Serve the admin listener. Default true.
    pub enabled: bool,
    /// Its address. Default `127.0.0.1:9464` (loopback: metrics reveal traffic patterns and
    /// client ids' activity; expose them deliberately, never by default). Port 0 picks a free
    /// port (printed on the ready line).
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

/// `[tls]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
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

impl From<SettingsError> for ConfigError {
    fn from(e: SettingsError) -> Self {
        Self::Invalid {
            key: e.key,
            message: e.message,
        }
    }
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

    /// Loads defaults, then `text` as the TOML file, without the environment: what
    /// [`Config::load`] does with a file of this content and no `GATEHOUSE_*` variables.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(text))
            .extract()
            .map_err(|e| ConfigError::Load(Box::new(e)))
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
        assert_eq!(
            c.server.resource.as_deref(),
            Some("https://mcp.example.com/mcp")
        );
        assert_eq!(c.auth.issuers[0].issuer, "https://auth.example.com");
        assert_eq!(c.policy.tools["void_invoice"], ["invoices:write"]);
    }

    #[test]
    fn text_loads_like_a_file_without_the_environment() {
        // The fuzz target `config` loads through `from_toml`; it must be the file's loading.
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../gatehouse.example.toml");
        let from_file = Config::load_from(Some(&path), Env::raw().only(&[])).unwrap();
        let from_text = Config::from_toml(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let value = |c: &Config| toml::Value::try_from(c).unwrap();
        assert_eq!(value(&from_text), value(&from_file));
        let e = Config::from_toml("[server]\nlisen = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("lisen"), "{e}");
    }

    #[test]
    fn credit_notes_name_configured_upstreams_and_retry_without_the_users_token() {
        let (upstreams, c) = crate::demo::ledger_settings(
            "http://127.0.0.1:1/token",
            "http://127.0.0.1:2/api",
            Path::new("/nonexistent"),
        );
        let d = c.delivery(&upstreams).unwrap();
        assert_eq!(
            (d.upstream.as_str(), d.retry_upstream.as_str()),
            ("ledger", "ledger-service")
        );
        let key = |c: &CreditNotesConfig, u: &[UpstreamSettings]| match c.delivery(u) {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("{other:?}"),
        };
        assert_eq!(key(&c, &[]), "credit_notes.upstream");
        assert_eq!(key(&c, &upstreams[..1]), "credit_notes.retry_upstream");
        let mut exchanging = c.clone();
        exchanging.retry_upstream = "ledger".into();
        assert_eq!(key(&exchanging, &upstreams), "credit_notes.retry_upstream");
        let mut busy = c.clone();
        busy.poll_interval_ms = 0;
        assert_eq!(key(&busy, &upstreams), "credit_notes.poll_interval_ms");
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
