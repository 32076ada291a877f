//! Declarative configuration of a protected server: serde types for a configuration file (TOML,
//! YAML, environment — whatever the application loads), and their translation into a
//! [`GatehouseBuilder`] with errors that name the key at fault.
//!
//! An application embeds these sections in its own configuration (the `gatehouse` binary's
//! `[server]`, `[auth]`, `[policy]`, `[tenancy]`, `[rate_limits]` and `[limits]` are exactly
//! these types), then calls [`Settings::builder`]. Every field documents its default; anything
//! that weakens a check is named `dangerous_*` and logs a warning.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::caller::ScopeSet;
use crate::http::{CorsConfig, GatehouseBuilder, RequestLimits, SessionBindingConfig};
use crate::policy::rate_limit::{GovernorRateLimiter, RateLimitConfig, RateLimiter, RateQuota};
use crate::policy::{ScopeHierarchy, ToolListMode};
use crate::presets::IdpPreset;
use crate::resource::{ParseOptions, ResourceUrl};
use crate::tenancy::Tenancy;
use crate::upstream::{
    CredentialMode, StaticSecret, TokenEndpointClient, UpstreamConfig, Upstreams,
};
use crate::verify::cache::CacheConfig;
use crate::verify::dpop::{DpopConfig, DpopMode, NonceConfig};
use crate::verify::introspection::{ClientAuthMethod, ClientSecret, IntrospectionConfig};
use crate::verify::jwt::{AudiencePolicy, JwtIssuerConfig, TypPolicy};
use crate::{DEFAULT_MAX_TOKEN_BYTES, Gatehouse};

/// A setting that parsed but is not acceptable. `key` is the dotted path (`auth.issuers[0].jwks_uri`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value for `{key}`: {message}")]
pub struct SettingsError {
    /// Dotted key path, e.g. `server.resource`.
    pub key: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl SettingsError {
    /// A [`SettingsError`] for `key`.
    pub fn new(key: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Self {
            key: key.into(),
            message: message.to_string(),
        }
    }
}

/// Everything the library needs to protect a server, as configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The listener and the protected resource (`[server]`).
    pub server: ServerSettings,
    /// Who may issue tokens and how they are checked (`[auth]`).
    pub auth: AuthSettings,
    /// Which scopes each operation needs (`[policy]`).
    pub policy: PolicySettings,
    /// Where the caller's tenant comes from (`[tenancy]`).
    pub tenancy: TenancySettings,
    /// Rate limits (`[rate_limits]`).
    pub rate_limits: RateLimitSettings,
    /// Request and connection limits (`[limits]`).
    pub limits: LimitSettings,
    /// APIs that tools call, each with its own credential (`[[upstreams]]`).
    pub upstreams: Vec<UpstreamSettings>,
}

/// `[server]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address to listen on. Default `127.0.0.1:8080` (loopback: MCP transport spec, "bind to
    /// 127.0.0.1 when running locally"). Port 0 picks a free port.
    pub listen: SocketAddr,
    /// The canonical URL clients use to reach the MCP endpoint; tokens' `aud` must name it.
    /// Default: `http://{listen}/mcp` when `listen` is a loopback address (with the bound port
    /// when it is 0); required otherwise. Must be https outside loopback.
    pub resource: Option<String>,
    /// Human-readable name in the protected-resource metadata. Default: omitted.
    pub resource_name: String,
    /// Extra `Host` values accepted besides the resource URL's authority (DNS-rebinding guard).
    pub allowed_hosts: Vec<String>,
    /// Extra `Origin` values accepted besides the resource URL's origin.
    pub allowed_origins: Vec<String>,
    /// Peer addresses (IP or CIDR) whose `X-Forwarded-Host`/`-Proto`/`-For` are believed
    /// (`-For` keys the per-address rate limit). Default: none.
    pub trusted_proxies: Vec<String>,
    /// Serve CORS headers for browser clients (origins from `allowed_origins`). Default off.
    pub cors: bool,
    /// `scopes_supported` in the metadata document. Default: every scope the policy names.
    pub scopes_supported: Vec<String>,
    /// Bind MCP sessions to the principal (stateful mode). Default false: stateless, any replica
    /// can serve any request.
    pub stateful_sessions: bool,
    /// With `stateful_sessions`: names this replica in the session ids it mints
    /// (`<replica_id>.<random>`), so that a load balancer routes each session to its replica by
    /// the `Mcp-Session-Id` header alone (see `deploy/nginx.conf`). 1–32 of `A-Z a-z 0-9 _ -`.
    /// Default: none.
    pub replica_id: Option<String>,
    /// Largest accepted bearer token in bytes (edge, verifiers and cache). Default 16384.
    pub max_token_bytes: usize,
    /// Largest accepted request body in bytes. Default 4 MiB (rmcp's default).
    pub max_body_bytes: usize,
    /// Allow a plain-http resource URL on a non-loopback host. Default false (OAuth 2.1 §1.5);
    /// only behind a TLS-terminating proxy. Logs a warning.
    pub dangerous_allow_insecure_http: bool,
    /// On SIGTERM/SIGINT: stop accepting, then give in-flight requests this long to finish.
    /// Default 30.
    pub shutdown_grace_seconds: u64,
    /// Answer `tools/list` and the `tools/call`s of the tools the application declares direct
    /// ([`crate::mcp::DirectTools`]; the billing server: all of its tools) in the request's own
    /// task instead of rmcp's per-request service. `false` sends every request through rmcp.
    /// Default true. `gatehouse proxy` declares no tool direct whatever this says: its tools
    /// relay the upstream's notifications and requests, which a direct answer cannot carry.
    pub direct_dispatch: bool,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            resource: None,
            resource_name: String::new(),
            allowed_hosts: vec![],
            allowed_origins: vec![],
            trusted_proxies: vec![],
            cors: false,
            scopes_supported: vec![],
            stateful_sessions: false,
            replica_id: None,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            max_body_bytes: crate::http::DEFAULT_MAX_BODY_BYTES,
            dangerous_allow_insecure_http: false,
            shutdown_grace_seconds: 30,
            direct_dispatch: true,
        }
    }
}

impl ServerSettings {
    /// The validated resource URL, given the address the listener is bound to (which fills in
    /// the default for a loopback listener, port 0 included).
    pub fn resource_url(&self, bound: SocketAddr) -> Result<ResourceUrl, SettingsError> {
        let text = match &self.resource {
            Some(r) => r.clone(),
            None if bound.ip().is_loopback() => format!("http://{bound}/mcp"),
            None => {
                return Err(SettingsError::new(
                    "server.resource",
                    "required when server.listen is not a loopback address (the https URL \
                     clients use)",
                ));
            }
        };
        ResourceUrl::parse_with(
            &text,
            ParseOptions {
                allow_trailing_slash: false,
                dangerous_allow_insecure_http: self.dangerous_allow_insecure_http,
            },
        )
        .map_err(|e| SettingsError::new("server.resource", e))
    }
}

/// `[auth]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// Issuers of JWT access tokens (`[[auth.issuers]]`). At least one issuer or an
    /// introspection endpoint is required.
    pub issuers: Vec<IssuerSettings>,
    /// RFC 7662 introspection for opaque tokens (`[[auth.introspection]]`).
    pub introspection: Vec<IntrospectionSettings>,
    /// Verified-token cache.
    pub cache: CacheSettings,
    /// How DPoP proofs are checked, for issuers with `dpop` on (`[auth.dpop]`).
    pub dpop: DpopSettings,
}

/// `[auth.dpop]`: DPoP proof checks (RFC 9449) for the issuers that take DPoP.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DpopSettings {
    /// Oldest proof `iat` accepted, in seconds. Default 60.
    pub proof_max_age_seconds: u64,
    /// Server nonces (RFC 9449 §9): a secret, from a file or an environment variable, the same
    /// on every replica (nonces are sealed with a key derived from it, so any replica checks
    /// any replica's). Default: none, no nonces.
    pub nonce_secret_file: Option<PathBuf>,
    /// … or from the environment variable of this name.
    pub nonce_secret_env: Option<String>,
    /// How long a nonce stays good, in seconds. Default 300.
    pub nonce_lifetime_seconds: u64,
}

impl Default for DpopSettings {
    fn default() -> Self {
        Self {
            proof_max_age_seconds: 60,
            nonce_secret_file: None,
            nonce_secret_env: None,
            nonce_lifetime_seconds: 300,
        }
    }
}

impl DpopSettings {
    fn to_config(&self) -> Result<DpopConfig, SettingsError> {
        if self.proof_max_age_seconds == 0 || self.proof_max_age_seconds > 600 {
            return Err(SettingsError::new(
                "auth.dpop.proof_max_age_seconds",
                "must be between 1 and 600",
            ));
        }
        let nonce = if self.nonce_secret_file.is_some() || self.nonce_secret_env.is_some() {
            let secret = read_secret(
                "auth.dpop.nonce_secret",
                &self.nonce_secret_file,
                &self.nonce_secret_env,
            )?;
            if secret.len() < 32 {
                return Err(SettingsError::new(
                    "auth.dpop.nonce_secret_file",
                    "the secret must be at least 32 characters",
                ));
            }
            let mut n = NonceConfig::from_secret(secret.as_bytes());
            n.lifetime = Duration::from_secs(self.nonce_lifetime_seconds.max(1));
            Some(n)
        } else {
            None
        };
        Ok(DpopConfig {
            max_age: Duration::from_secs(self.proof_max_age_seconds),
            nonce,
            ..DpopConfig::default()
        })
    }
}

/// One `[[auth.issuers]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerSettings {
    /// The issuer identifier, compared byte-for-byte with `iss` and with the discovery document.
    pub issuer: String,
    /// `entra`, `auth0`, `keycloak`, `okta`, `cognito` or `zitadel`: that provider's token
    /// shape and key location ([`crate::presets`]), its issuer form checked at start.
    #[serde(default)]
    pub preset: Option<IdpPreset>,
    /// Entra multi-tenant apps: with the issuer template
    /// `https://login.microsoftonline.com/{tenantid}/v2.0`, the tenant IDs whose tokens are
    /// accepted (each becomes an issuer of its own). Any tenant is never the default.
    #[serde(default)]
    pub tenants: Vec<String>,
    /// JWKS URL. Default: discovered from RFC 8414 / OpenID Connect metadata of `issuer`.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// Accepted audiences. Default: the resource URL only.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// `includes` (default: `aud` names an accepted audience, possibly among others) or
    /// `exact` (every `aud` is accepted: a token also good elsewhere is refused).
    #[serde(default)]
    pub audience_policy: AudiencePolicy,
    /// DPoP-bound tokens (RFC 9449): `off` (default), `allowed` (beside Bearer tokens) or
    /// `required`.
    #[serde(default)]
    pub dpop: DpopMode,
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
    /// An unknown `kid` triggers a key refresh at most this often, in seconds. Default 30, at
    /// least 1: a flood of made-up key ids must not become a flood of JWKS fetches.
    #[serde(default = "default_refresh_cooldown")]
    pub jwks_refresh_cooldown_seconds: u64,
    /// Deadline for one metadata or JWKS fetch, in seconds. Default 5.
    #[serde(default = "default_fetch_timeout")]
    pub fetch_timeout_seconds: u64,
    /// How long the last good keys stay in use while refreshes fail, in seconds; past it, tokens
    /// of the issuer get `503`. Default 21600 (6 h).
    #[serde(default = "default_max_staleness")]
    pub jwks_max_staleness_seconds: u64,
}

fn default_leeway() -> u64 {
    60
}
fn default_refresh_cooldown() -> u64 {
    30
}
fn default_fetch_timeout() -> u64 {
    5
}
fn default_max_staleness() -> u64 {
    6 * 3600
}

impl IssuerSettings {
    /// An issuer entry with every option at its default (what a file with only `issuer = …`
    /// gives).
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            preset: None,
            tenants: vec![],
            jwks_uri: None,
            audiences: vec![],
            audience_policy: AudiencePolicy::default(),
            dpop: DpopMode::default(),
            algorithms: vec![],
            accept_typ_jwt: false,
            accept_missing_typ: false,
            leeway_seconds: default_leeway(),
            extra_scope_claims: vec![],
            jwks_refresh_cooldown_seconds: default_refresh_cooldown(),
            fetch_timeout_seconds: default_fetch_timeout(),
            jwks_max_staleness_seconds: default_max_staleness(),
        }
    }

    /// The issuers this entry stands for: itself, or — for an Entra issuer template — one per
    /// listed tenant, each with its tenant's issuer and a `tid` that must match it.
    fn expand(&self, index: usize) -> Result<Vec<IssuerSettings>, SettingsError> {
        const TEMPLATE: &str = "{tenantid}";
        let key = |field: &str| format!("auth.issuers[{index}].{field}");
        if !self.issuer.contains(TEMPLATE) {
            if !self.tenants.is_empty() {
                return Err(SettingsError::new(
                    key("tenants"),
                    "only for an issuer template with {tenantid}",
                ));
            }
            return Ok(vec![self.clone()]);
        }
        if self.preset != Some(IdpPreset::Entra) {
            return Err(SettingsError::new(
                key("issuer"),
                "an issuer template ({tenantid}) needs preset = \"entra\"",
            ));
        }
        if self.tenants.is_empty() {
            return Err(SettingsError::new(
                key("tenants"),
                "list the tenant IDs whose tokens are accepted: a multi-tenant app accepts no \
                 tenant by default",
            ));
        }
        Ok(self
            .tenants
            .iter()
            .map(|tid| IssuerSettings {
                issuer: self.issuer.replace(TEMPLATE, tid),
                tenants: vec![],
                ..self.clone()
            })
            .collect())
    }

    fn to_config(
        &self,
        index: usize,
        resource: &ResourceUrl,
    ) -> Result<JwtIssuerConfig, SettingsError> {
        let key = |field: &str| format!("auth.issuers[{index}].{field}");
        let mut out = JwtIssuerConfig::new(self.issuer.clone(), resource.as_str());
        if !self.audiences.is_empty() {
            out.audiences = self.audiences.clone();
        }
        out.audience_policy = self.audience_policy;
        if let Some(uri) = &self.jwks_uri {
            out.jwks_uri =
                Some(url::Url::parse(uri).map_err(|e| SettingsError::new(key("jwks_uri"), e))?);
        }
        if !self.algorithms.is_empty() {
            out.algorithms = self
                .algorithms
                .iter()
                .map(|a| {
                    a.parse().map_err(|_| {
                        SettingsError::new(key("algorithms"), format!("unknown algorithm {a:?}"))
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        out.typ = TypPolicy {
            accept_jwt: self.accept_typ_jwt,
            accept_missing: self.accept_missing_typ,
        };
        if self.leeway_seconds > 300 {
            return Err(SettingsError::new(key("leeway_seconds"), "at most 300"));
        }
        out.leeway = Duration::from_secs(self.leeway_seconds);
        out.extra_scope_claims = self.extra_scope_claims.clone();
        for (field, v) in [
            (
                "jwks_refresh_cooldown_seconds",
                self.jwks_refresh_cooldown_seconds,
            ),
            ("fetch_timeout_seconds", self.fetch_timeout_seconds),
            (
                "jwks_max_staleness_seconds",
                self.jwks_max_staleness_seconds,
            ),
        ] {
            if v == 0 {
                return Err(SettingsError::new(key(field), "must be at least 1"));
            }
        }
        if let Some(preset) = self.preset {
            preset
                .apply(&mut out)
                .map_err(|e| SettingsError::new(key("preset"), e))?;
        }
        out.jwks.min_refresh_interval = Duration::from_secs(self.jwks_refresh_cooldown_seconds);
        out.jwks.max_staleness = Duration::from_secs(self.jwks_max_staleness_seconds);
        out.fetch.timeout = Duration::from_secs(self.fetch_timeout_seconds);
        Ok(out)
    }
}

/// One `[[auth.introspection]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntrospectionSettings {
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
    /// `includes` (default) or `exact`, as for `[[auth.issuers]]`.
    #[serde(default)]
    pub audience_policy: AudiencePolicy,
    /// `off` (default), `allowed` or `required`, as for `[[auth.issuers]]` (the binding is the
    /// response's `cnf.jkt`).
    #[serde(default)]
    pub dpop: DpopMode,
    /// Accept `active` responses without `aud`. Default false: a token minted for no resource is
    /// not proof that it was minted for this one (MCP audience binding). Only for an
    /// authorization server that audience-restricts introspection itself.
    #[serde(default)]
    pub dangerous_accept_missing_audience: bool,
    /// Deadline for one introspection request, in seconds. Default 5.
    #[serde(default = "default_fetch_timeout")]
    pub fetch_timeout_seconds: u64,
}

fn default_auth_method() -> String {
    "basic".into()
}

impl IntrospectionSettings {
    /// An entry for `issuer`'s endpoint (discovered), authenticating as `client_id` with
    /// `client_secret_basic`, every other option at its default (what a file with only these
    /// keys and a secret gives). Set the secret's file or variable before use.
    pub fn new(issuer: impl Into<String>, client_id: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            endpoint: None,
            client_id: client_id.into(),
            client_secret_file: None,
            client_secret_env: None,
            auth_method: default_auth_method(),
            audiences: vec![],
            audience_policy: AudiencePolicy::default(),
            dpop: DpopMode::default(),
            dangerous_accept_missing_audience: false,
            fetch_timeout_seconds: default_fetch_timeout(),
        }
    }

    fn to_config(
        &self,
        index: usize,
        resource: &ResourceUrl,
    ) -> Result<IntrospectionConfig, SettingsError> {
        let key = |field: &str| format!("auth.introspection[{index}].{field}");
        let secret = read_secret(
            &format!("auth.introspection[{index}].client_secret"),
            &self.client_secret_file,
            &self.client_secret_env,
        )?;
        let mut out = IntrospectionConfig::new(
            self.issuer.clone(),
            self.client_id.clone(),
            ClientSecret::new(secret),
            resource.as_str(),
        );
        if let Some(endpoint) = &self.endpoint {
            out.endpoint = Some(
                url::Url::parse(endpoint).map_err(|e| SettingsError::new(key("endpoint"), e))?,
            );
        }
        out.auth_method = match self.auth_method.as_str() {
            "basic" => ClientAuthMethod::ClientSecretBasic,
            "post" => ClientAuthMethod::ClientSecretPost,
            other => {
                return Err(SettingsError::new(
                    key("auth_method"),
                    format!("expected \"basic\" or \"post\", got {other:?}"),
                ));
            }
        };
        if !self.audiences.is_empty() {
            out.audiences = self.audiences.clone();
        }
        out.audience_policy = self.audience_policy;
        if self.fetch_timeout_seconds == 0 {
            return Err(SettingsError::new(
                key("fetch_timeout_seconds"),
                "must be at least 1",
            ));
        }
        out.fetch.timeout = Duration::from_secs(self.fetch_timeout_seconds);
        out.dangerous_accept_missing_audience = self.dangerous_accept_missing_audience;
        Ok(out)
    }
}

/// A secret from a file (trailing newline removed) or an environment variable: exactly one.
/// `key` is the setting's prefix (`…client_secret` → `…client_secret_file` / `…_env`).
fn read_secret(
    key: &str,
    file: &Option<PathBuf>,
    env: &Option<String>,
) -> Result<String, SettingsError> {
    match (file, env) {
        (Some(path), None) => std::fs::read_to_string(path)
            .map(|s| s.trim_end_matches(['\n', '\r']).to_owned())
            .map_err(|e| {
                SettingsError::new(format!("{key}_file"), format!("{}: {e}", path.display()))
            }),
        (None, Some(var)) => std::env::var(var).map_err(|_| {
            SettingsError::new(
                format!("{key}_env"),
                format!("environment variable {var} is not set"),
            )
        }),
        _ => Err(SettingsError::new(
            format!("{key}_file"),
            format!("set exactly one of {key}_file or {key}_env"),
        )),
    }
}

/// One `[[upstreams]]` entry: an API that tools call, with its own credential
/// ([`crate::upstream`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSettings {
    /// The name tools use.
    pub name: String,
    /// The fixed destination (https; http only on loopback). Requests outside it are refused.
    pub base_url: String,
    /// `audience` of requested tokens, when the authorization server uses logical names.
    #[serde(default)]
    pub audience: Option<String>,
    /// `resource` of requested tokens (RFC 8707). Default: `base_url`.
    #[serde(default)]
    pub resource: Option<String>,
    /// Scopes to ask for.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// `token_exchange` (RFC 8693, the caller's delegated access), `client_credentials` (this
    /// server's own identity) or `static` (an API key).
    pub mode: UpstreamMode,
    /// The authorization server's token endpoint (`token_exchange`, `client_credentials`).
    #[serde(default)]
    pub token_endpoint: Option<String>,
    /// This server's client id there.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Its secret, from a file …
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// … or an environment variable.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// `static`: the key, from a file …
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// … or an environment variable.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// `static`: the header that carries it. Default `authorization` (as `Bearer <key>`).
    #[serde(default)]
    pub header: Option<String>,
}

/// `upstreams[].mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamMode {
    /// RFC 8693 token exchange.
    TokenExchange,
    /// OAuth client credentials.
    ClientCredentials,
    /// A fixed key.
    Static,
}

impl UpstreamSettings {
    fn to_config(&self, index: usize) -> Result<UpstreamConfig, SettingsError> {
        let key = |field: &str| format!("upstreams[{index}].{field}");
        let url = |field: &str, v: &str| {
            url::Url::parse(v).map_err(|e| SettingsError::new(key(field), e))
        };
        let endpoint_client = || -> Result<TokenEndpointClient, SettingsError> {
            let endpoint = self.token_endpoint.as_deref().ok_or_else(|| {
                SettingsError::new(key("token_endpoint"), "required for this mode")
            })?;
            Ok(TokenEndpointClient {
                token_endpoint: url("token_endpoint", endpoint)?,
                client_id: self.client_id.clone().ok_or_else(|| {
                    SettingsError::new(key("client_id"), "required for this mode")
                })?,
                client_secret: ClientSecret::new(read_secret(
                    &key("client_secret"),
                    &self.client_secret_file,
                    &self.client_secret_env,
                )?),
            })
        };
        let mode = match self.mode {
            UpstreamMode::TokenExchange => CredentialMode::TokenExchange(endpoint_client()?),
            UpstreamMode::ClientCredentials => {
                CredentialMode::ClientCredentials(endpoint_client()?)
            }
            UpstreamMode::Static => CredentialMode::Static {
                header: http::HeaderName::try_from(
                    self.header.as_deref().unwrap_or("authorization"),
                )
                .map_err(|e| SettingsError::new(key("header"), e))?,
                secret: StaticSecret::new(read_secret(
                    &key("secret"),
                    &self.secret_file,
                    &self.secret_env,
                )?),
            },
        };
        Ok(UpstreamConfig {
            name: self.name.clone(),
            base_url: url("base_url", &self.base_url)?,
            audience: self.audience.clone(),
            resource: self.resource.clone(),
            scopes: self.scopes.clone(),
            mode,
        })
    }
}

/// `[auth.cache]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSettings {
    /// Maximum number of verified tokens kept. Default 10000 (a token that falls out is only
    /// verified again).
    pub max_entries: u64,
    /// Longest time a verification result is reused, in seconds, even if the token lives
    /// longer. For introspected tokens (at most 60 s) this is the revocation window. Default 300.
    pub max_ttl_seconds: u64,
    /// Claims tools read beyond the caller's fields; every other claim is dropped from the
    /// verified caller (entries stay small). Default: none.
    pub keep_claims: Vec<String>,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            max_entries: CacheConfig::default().max_entries,
            max_ttl_seconds: 300,
            keep_claims: Vec::new(),
        }
    }
}

/// `[policy]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicySettings {
    /// Scopes every request to the MCP endpoint needs. Default: none.
    pub route_scopes: Vec<String>,
    /// Extra scopes per tool: `void_invoice = ["invoices:write"]`. A key may be a glob
    /// pattern (`"search_*" = ["search"]`, `"*" = ["admin"]`): an exact name wins over patterns,
    /// and a tool several patterns match needs all of their scopes.
    pub tools: BTreeMap<String, Vec<String>>,
    /// Tools no `tools` key names: `allow` (they need the route scopes only — right for a server
    /// whose tools you wrote) or `deny` (hidden: unlisted, and a call is answered as for a tool
    /// that does not exist — right in front of tools someone else writes). Unset: the
    /// application's default (`allow` for a server's own tools, `deny` behind the gateway).
    pub unnamed_tools: Option<UnnamedToolsSetting>,
    /// Scope hierarchy: `"invoices:write" = ["invoices:read"]` (write implies read).
    pub hierarchy: BTreeMap<String, Vec<String>>,
    /// `all` (default: every tool is listed so clients can discover what to step up to) or
    /// `filter` (hide tools the caller's scopes cannot call).
    pub tools_list: ToolsList,
}

/// `policy.unnamed_tools`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnnamedToolsSetting {
    /// Callable with the route scopes.
    #[default]
    Allow,
    /// Hidden.
    Deny,
}

/// `policy.tools_list`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolsList {
    /// Every tool.
    #[default]
    All,
    /// Only the tools the caller's scopes allow.
    Filter,
}

/// `[tenancy]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenancySettings {
    /// The claim that names the caller's tenant. Default: none (no tenant from tokens).
    pub claim: String,
    /// Tenant of client-credentials clients whose tokens carry no tenant claim.
    pub clients: HashMap<String, String>,
}

/// `[rate_limits]`: each quota is `{ per_minute = N, burst = M }`; absent (or `per_minute = 0`)
/// means no limit.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSettings {
    /// Per OAuth client (client id, else subject) of the verified token.
    pub per_client: Option<QuotaSettings>,
    /// Per tenant (as resolved after authentication).
    pub per_tenant: Option<QuotaSettings>,
    /// Tokens refused by verifications that reach the authorization server (introspection, a
    /// key refresh for an unknown `kid` — not one within the refresh cooldown, decided with the
    /// keys held), per client address (the peer, or behind
    /// `server.trusted_proxies` the forwarded address). Over it, such tokens from the address
    /// get `429` and the authorization server is not called. Never counted or refused: requests
    /// without a token (they always get their `401` challenge), malformed ones, cached tokens,
    /// and JWTs whose key is held — so a valid token is never refused because of what others
    /// behind the same address sent. Default 60 per minute, burst 20.
    pub failed_auth_per_address: Option<QuotaSettings>,
    /// Most keys tracked per limit (bounded memory). Default 100000. In memory only: Redis keys
    /// expire once their bucket is full again.
    pub max_keys: usize,
    /// Where the limits are kept: `memory` (default: this process only; with N replicas each
    /// enforces its own budget) or `redis` (one budget shared by every replica).
    pub backend: RateLimitBackend,
    /// With `backend = "redis"`: `redis://[user:password@]host[:port][/db]`. Required then.
    /// Never logged nor shown by `Debug`.
    pub redis_url: Option<SecretString>,
    /// Put before every Redis key, so that deployments can share a Redis. Default
    /// `gatehouse:rl:`.
    pub redis_key_prefix: String,
    /// Longest wait for one Redis call, connecting included, in milliseconds. Default 50.
    pub redis_timeout_ms: u64,
    /// What a check does when Redis does not answer in time: `open` (default: the request goes
    /// on, counted in `gatehouse_rate_limit_unavailable_total` and logged at most every 10 s) or
    /// `closed` (`503` + `Retry-After: 1`).
    pub redis_failure: RedisFailureSetting,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            per_client: None,
            per_tenant: None,
            failed_auth_per_address: Some(QuotaSettings {
                per_minute: 60,
                burst: 20,
            }),
            max_keys: 100_000,
            backend: RateLimitBackend::Memory,
            redis_url: None,
            redis_key_prefix: "gatehouse:rl:".to_owned(),
            redis_timeout_ms: 50,
            redis_failure: RedisFailureSetting::Open,
        }
    }
}

/// `rate_limits.backend`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RateLimitBackend {
    /// In this process.
    #[default]
    Memory,
    /// In Redis, shared by replicas.
    Redis,
}

/// `rate_limits.redis_failure`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisFailureSetting {
    /// Let requests through.
    #[default]
    Open,
    /// Refuse them with `503`.
    Closed,
}

/// A string that may hold a credential (a URL with a password): its `Debug` is redacted.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

/// A rate quota.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaSettings {
    /// Sustained requests per minute.
    pub per_minute: u32,
    /// Requests allowed at once.
    pub burst: u32,
}

impl RateLimitSettings {
    /// The limits as the library's configuration.
    fn config(&self) -> RateLimitConfig {
        // `per_minute = 0` switches a limit off (a default can only be removed by a value).
        let quota = |q: Option<QuotaSettings>| {
            q.filter(|q| q.per_minute > 0).map(|q| RateQuota {
                per_minute: q.per_minute,
                burst: q.burst,
            })
        };
        RateLimitConfig {
            per_client: quota(self.per_client),
            per_tenant: quota(self.per_tenant),
            failed_auth_per_address: quota(self.failed_auth_per_address),
            max_keys: self.max_keys,
        }
    }

    /// The limiter these settings describe, `None` when every limit is off. With
    /// `backend = "redis"` it must be called within a Tokio runtime (the connection manager
    /// starts its task there; it connects on first use).
    pub fn limiter(&self) -> Result<Option<Arc<dyn RateLimiter>>, SettingsError> {
        let c = self.config();
        if c.per_client.is_none() && c.per_tenant.is_none() && c.failed_auth_per_address.is_none() {
            return Ok(None);
        }
        match self.backend {
            RateLimitBackend::Memory => GovernorRateLimiter::new(&c)
                .map(|l| Some(Arc::new(l) as Arc<dyn RateLimiter>))
                .map_err(|e| SettingsError::new("rate_limits", e)),
            RateLimitBackend::Redis => self.redis_limiter(&c),
        }
    }

    #[cfg(feature = "redis")]
    fn redis_limiter(
        &self,
        c: &RateLimitConfig,
    ) -> Result<Option<Arc<dyn RateLimiter>>, SettingsError> {
        use crate::policy::redis_rate_limit::{
            RedisFailure, RedisRateLimitConfig, RedisRateLimitError, RedisRateLimiter,
        };
        let url = self.redis_url.as_ref().ok_or_else(|| {
            SettingsError::new("rate_limits.redis_url", "required with backend = \"redis\"")
        })?;
        let redis = RedisRateLimitConfig {
            url: url.expose().to_owned(),
            key_prefix: self.redis_key_prefix.clone(),
            timeout: Duration::from_millis(self.redis_timeout_ms),
            failure: match self.redis_failure {
                RedisFailureSetting::Open => RedisFailure::Open,
                RedisFailureSetting::Closed => RedisFailure::Closed,
            },
        };
        RedisRateLimiter::new(c, redis)
            .map(|l| Some(Arc::new(l) as Arc<dyn RateLimiter>))
            .map_err(|e| match e {
                RedisRateLimitError::Config(e) => SettingsError::new("rate_limits", e),
                RedisRateLimitError::Url => SettingsError::new("rate_limits.redis_url", e),
                RedisRateLimitError::ZeroTimeout => {
                    SettingsError::new("rate_limits.redis_timeout_ms", "must be at least 1")
                }
            })
    }

    #[cfg(not(feature = "redis"))]
    fn redis_limiter(
        &self,
        _: &RateLimitConfig,
    ) -> Result<Option<Arc<dyn RateLimiter>>, SettingsError> {
        Err(SettingsError::new(
            "rate_limits.backend",
            "\"redis\" needs gatehouse built with its `redis` feature",
        ))
    }
}

/// `[limits]`. Body and token sizes are `server.max_body_bytes` / `server.max_token_bytes`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    /// Largest request head (request line + headers) in bytes; larger gets `431` (HTTP/1.1) or
    /// a stream reset (HTTP/2). Default 16384, at least 8192 (hyper's floor). Applied by the
    /// listener.
    pub max_header_bytes: usize,
    /// Time a client has to send its complete request head (slowloris). Default 10 s. Applied by
    /// the listener.
    pub header_read_timeout_seconds: u64,
    /// Time from request head to response head; past it the request gets `408`. Default 30 s.
    pub request_timeout_seconds: u64,
    /// Requests processed at once; more get `503` + `Retry-After` at once (no queueing).
    /// Default 1024.
    pub max_concurrent_requests: usize,
    /// Time a TLS client has to complete its handshake. Default 10 s. Applied by the listener.
    pub tls_handshake_timeout_seconds: u64,
}

impl Default for LimitSettings {
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

impl LimitSettings {
    /// Checks the values (each names its key).
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.max_header_bytes < 8192 {
            return Err(SettingsError::new(
                "limits.max_header_bytes",
                "at least 8192",
            ));
        }
        for (key, v) in [
            (
                "limits.header_read_timeout_seconds",
                self.header_read_timeout_seconds,
            ),
            (
                "limits.request_timeout_seconds",
                self.request_timeout_seconds,
            ),
            (
                "limits.tls_handshake_timeout_seconds",
                self.tls_handshake_timeout_seconds,
            ),
        ] {
            if v == 0 {
                return Err(SettingsError::new(key, "must be at least 1"));
            }
        }
        if self.max_concurrent_requests == 0 {
            return Err(SettingsError::new(
                "limits.max_concurrent_requests",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

impl Settings {
    /// A builder configured from these settings, for a listener bound to `bound`. Call
    /// [`GatehouseBuilder::start`] on it (after adding observers, enrichers, …). Errors name the
    /// key at fault.
    pub fn builder(&self, bound: SocketAddr) -> Result<GatehouseBuilder, SettingsError> {
        let resource = self.server.resource_url(bound)?;
        self.limits.validate()?;
        let auth = &self.auth;
        if auth.issuers.is_empty() && auth.introspection.is_empty() {
            return Err(SettingsError::new(
                "auth",
                "configure at least one [[auth.issuers]] or [[auth.introspection]]",
            ));
        }
        let s = &self.server;
        let mut b = Gatehouse::builder(resource.clone())
            .listen_addr(bound)
            .allowed_hosts(s.allowed_hosts.clone())
            .allowed_origins(s.allowed_origins.clone())
            .trusted_proxies(s.trusted_proxies.clone())
            .max_token_bytes(s.max_token_bytes)
            .max_body_bytes(s.max_body_bytes)
            .dpop_config(auth.dpop.to_config()?)
            .cache(CacheConfig {
                max_entries: auth.cache.max_entries,
                max_ttl: Duration::from_secs(auth.cache.max_ttl_seconds),
                max_ttl_introspected: Duration::from_secs(auth.cache.max_ttl_seconds.min(60)),
                keep_claims: auth.cache.keep_claims.clone(),
                ..CacheConfig::default()
            })
            .request_limits(RequestLimits {
                max_concurrent_requests: self.limits.max_concurrent_requests,
                request_timeout: Duration::from_secs(self.limits.request_timeout_seconds),
            });
        if !s.resource_name.is_empty() {
            b = b.resource_name(s.resource_name.clone());
        }
        if !s.scopes_supported.is_empty() {
            b = b.scopes_supported(s.scopes_supported.clone());
        }
        if s.cors {
            b = b.cors(CorsConfig::new(s.allowed_origins.clone()));
        }
        if let Some(id) = &s.replica_id {
            if !s.stateful_sessions {
                return Err(SettingsError::new(
                    "server.replica_id",
                    "names session ids: needs server.stateful_sessions = true",
                ));
            }
            if !SessionBindingConfig::is_valid_id_prefix(id) {
                return Err(SettingsError::new(
                    "server.replica_id",
                    "1-32 characters of A-Z a-z 0-9 _ -",
                ));
            }
        }
        if s.stateful_sessions {
            b = b.stateful_sessions(SessionBindingConfig {
                id_prefix: s.replica_id.clone(),
                ..SessionBindingConfig::default()
            });
        }
        for (i, entry) in auth.issuers.iter().enumerate() {
            for issuer in entry.expand(i)? {
                b = b
                    .jwt_issuer_config(issuer.to_config(i, &resource)?)
                    .dpop(issuer.issuer.clone(), issuer.dpop);
            }
        }
        for (i, section) in auth.introspection.iter().enumerate() {
            b = b
                .introspection(section.to_config(i, &resource)?)
                .dpop(section.issuer.clone(), section.dpop);
        }

        let p = &self.policy;
        // Checked here as well as by the builder, so that the error names the key.
        ScopeSet::parse(&p.route_scopes)
            .map_err(|e| SettingsError::new("policy.route_scopes", e))?;
        for (tool, scopes) in &p.tools {
            let key = || format!("policy.tools.{tool}");
            let set = ScopeSet::parse(scopes).map_err(|e| SettingsError::new(key(), e))?;
            if crate::policy::is_tool_pattern(tool) {
                crate::policy::ScopePolicy::default()
                    .with_patterns([(tool.clone(), set)], crate::policy::UnnamedTools::Allow)
                    .map_err(|e| SettingsError::new(key(), e))?;
            }
        }
        ScopeHierarchy::new(p.hierarchy.iter())
            .map_err(|e| SettingsError::new("policy.hierarchy", e))?;
        ScopeSet::parse(&s.scopes_supported)
            .map_err(|e| SettingsError::new("server.scopes_supported", e))?;
        b = b
            .route_scopes(p.route_scopes.clone())
            .tools_list(match p.tools_list {
                ToolsList::All => ToolListMode::All,
                ToolsList::Filter => ToolListMode::FilterByScope,
            });
        if let Some(u) = p.unnamed_tools {
            b = b.unnamed_tools(match u {
                UnnamedToolsSetting::Allow => crate::policy::UnnamedTools::Allow,
                UnnamedToolsSetting::Deny => crate::policy::UnnamedTools::Deny,
            });
        }
        for (tool, scopes) in &p.tools {
            b = b.tool_scopes(tool.clone(), scopes.clone());
        }
        for (parent, children) in &p.hierarchy {
            b = b.scope_implies(parent.clone(), children.clone());
        }

        if !self.tenancy.claim.is_empty() {
            b = b.tenant_claim(self.tenancy.claim.clone());
        }
        let tenancy = Tenancy::from_client_map(self.tenancy.clients.iter())
            .map_err(|e| SettingsError::new("tenancy.clients", e))?;
        b = b.tenancy(tenancy);
        if let Some(limiter) = self.rate_limits.limiter()? {
            b = b.rate_limiter(limiter);
        }
        if !self.upstreams.is_empty() {
            let configs = self
                .upstreams
                .iter()
                .enumerate()
                .map(|(i, u)| u.to_config(i))
                .collect::<Result<Vec<_>, _>>()?;
            let upstreams = Upstreams::new(configs, crate::verify::fetch::FetchConfig::default())
                .map_err(|e| SettingsError::new("upstreams", e))?;
            b = b.upstreams(upstreams);
        }
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_issuer() -> Settings {
        let mut s = Settings::default();
        s.auth
            .issuers
            .push(IssuerSettings::new("https://auth.example.com"));
        s
    }

    fn bound(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn resource_defaults_to_the_bound_loopback_address_and_is_required_elsewhere() {
        let s = ServerSettings::default();
        assert_eq!(
            s.resource_url(bound(4321)).unwrap().as_str(),
            "http://127.0.0.1:4321/mcp"
        );
        let public = SocketAddr::from(([0, 0, 0, 0], 8080));
        assert_eq!(s.resource_url(public).unwrap_err().key, "server.resource");
        let s = ServerSettings {
            resource: Some("http://mcp.example.com/mcp".into()),
            ..ServerSettings::default()
        };
        let e = s.resource_url(public).unwrap_err();
        assert_eq!(e.key, "server.resource");
        assert!(e.message.contains("https"), "{e}");
        let s = ServerSettings {
            dangerous_allow_insecure_http: true,
            ..s
        };
        assert!(s.resource_url(public).is_ok());
    }

    #[test]
    fn key_refresh_settings_reach_the_verifier_config() {
        let r = ResourceUrl::parse("https://mcp.example.com/mcp").unwrap();
        let mut i = IssuerSettings::new("https://auth.example.com");
        i.jwks_refresh_cooldown_seconds = 2;
        i.fetch_timeout_seconds = 3;
        i.jwks_max_staleness_seconds = 4;
        let c = i.to_config(0, &r).unwrap();
        assert_eq!(c.jwks.min_refresh_interval, Duration::from_secs(2));
        assert_eq!(c.fetch.timeout, Duration::from_secs(3));
        assert_eq!(c.jwks.max_staleness, Duration::from_secs(4));
        assert_eq!(c.audiences, ["https://mcp.example.com/mcp"]);
        for field in [
            "jwks_refresh_cooldown_seconds",
            "fetch_timeout_seconds",
            "jwks_max_staleness_seconds",
        ] {
            let mut bad = IssuerSettings::new("https://auth.example.com");
            match field {
                "jwks_refresh_cooldown_seconds" => bad.jwks_refresh_cooldown_seconds = 0,
                "fetch_timeout_seconds" => bad.fetch_timeout_seconds = 0,
                _ => bad.jwks_max_staleness_seconds = 0,
            }
            assert_eq!(
                bad.to_config(3, &r).unwrap_err().key,
                format!("auth.issuers[3].{field}")
            );
        }
    }

    #[test]
    fn introspection_settings_new_gives_what_a_minimal_file_gives() {
        let parsed: IntrospectionSettings = serde_json::from_value(serde_json::json!({
            "issuer": "https://a.example.com", "client_id": "rs"
        }))
        .unwrap();
        assert_eq!(
            format!("{parsed:?}"),
            format!(
                "{:?}",
                IntrospectionSettings::new("https://a.example.com", "rs")
            )
        );
    }

    #[test]
    fn a_preset_is_read_and_a_wrong_issuer_form_names_the_key() {
        let r = ResourceUrl::parse("https://mcp.example.com/mcp").unwrap();
        let okta: IssuerSettings = serde_json::from_value(serde_json::json!({
            "issuer": "https://acme.okta.com/oauth2/default", "preset": "okta"
        }))
        .unwrap();
        let c = okta.to_config(0, &r).unwrap();
        assert!(c.typ.accept_missing);
        assert_eq!(
            c.jwks_uri.unwrap().as_str(),
            "https://acme.okta.com/oauth2/default/v1/keys"
        );
        let org: IssuerSettings = serde_json::from_value(serde_json::json!({
            "issuer": "https://acme.okta.com", "preset": "okta"
        }))
        .unwrap();
        assert_eq!(
            org.to_config(2, &r).unwrap_err().key,
            "auth.issuers[2].preset"
        );
        assert!(
            serde_json::from_value::<IssuerSettings>(serde_json::json!({
                "issuer": "https://a", "preset": "ping"
            }))
            .is_err()
        );
    }

    #[test]
    fn an_entra_issuer_template_becomes_one_issuer_per_listed_tenant() {
        let r = ResourceUrl::parse("https://mcp.example.com/mcp").unwrap();
        let (a, b) = (
            "11111111-2222-3333-4444-555555555555",
            "66666666-7777-8888-9999-000000000000",
        );
        let multi: IssuerSettings = serde_json::from_value(serde_json::json!({
            "issuer": "https://login.microsoftonline.com/{tenantid}/v2.0",
            "preset": "entra",
            "tenants": [a, b],
        }))
        .unwrap();
        let expanded = multi.expand(1).unwrap();
        let issuers: Vec<&str> = expanded.iter().map(|i| i.issuer.as_str()).collect();
        assert_eq!(
            issuers,
            [
                format!("https://login.microsoftonline.com/{a}/v2.0"),
                format!("https://login.microsoftonline.com/{b}/v2.0")
            ]
        );
        // Each is checked as a single-tenant Entra issuer, its tokens' `tid` its own.
        let c = expanded[1].to_config(1, &r).unwrap();
        assert_eq!(c.required_claims, [("tid".to_owned(), b.to_owned())]);
        let key = |v: serde_json::Value| {
            serde_json::from_value::<IssuerSettings>(v)
                .unwrap()
                .expand(1)
                .unwrap_err()
                .key
        };
        assert_eq!(
            key(serde_json::json!({
                "issuer": "https://login.microsoftonline.com/{tenantid}/v2.0", "preset": "entra"
            })),
            "auth.issuers[1].tenants",
            "no tenant listed: none accepted, refused at start"
        );
        assert_eq!(
            key(serde_json::json!({
                "issuer": "https://login.microsoftonline.com/{tenantid}/v2.0", "tenants": [a]
            })),
            "auth.issuers[1].issuer"
        );
        assert_eq!(
            key(serde_json::json!({"issuer": "https://a.example.com", "tenants": [a]})),
            "auth.issuers[1].tenants"
        );
    }

    #[test]
    fn dpop_settings_are_checked_and_reach_the_verifier_config() {
        let d = DpopSettings::default().to_config().unwrap();
        assert!(d.nonce.is_none());
        assert_eq!(d.max_age, Duration::from_secs(60));
        for age in [0, 601] {
            let e = DpopSettings {
                proof_max_age_seconds: age,
                ..DpopSettings::default()
            }
            .to_config()
            .unwrap_err();
            assert_eq!(e.key, "auth.dpop.proof_max_age_seconds");
        }
        let var = "GATEHOUSE_TEST_DPOP_NONCE_SECRET_UNSET";
        let e = DpopSettings {
            nonce_secret_env: Some(var.into()),
            ..DpopSettings::default()
        }
        .to_config()
        .unwrap_err();
        assert_eq!(e.key, "auth.dpop.nonce_secret_env");
        let dir = std::env::temp_dir().join(format!("gh-dpop-{}", std::process::id()));
        std::fs::write(&dir, "short").unwrap();
        let short = DpopSettings {
            nonce_secret_file: Some(dir.clone()),
            ..DpopSettings::default()
        };
        assert_eq!(
            short.to_config().unwrap_err().key,
            "auth.dpop.nonce_secret_file"
        );
        std::fs::write(&dir, "x".repeat(40)).unwrap();
        let c = short.to_config().unwrap();
        assert_eq!(c.nonce.map(|n| n.lifetime), Some(Duration::from_secs(300)));
        let _ = std::fs::remove_file(&dir);
    }

    #[test]
    fn the_audience_policy_is_read_and_reaches_the_verifier_config() {
        let r = ResourceUrl::parse("https://mcp.example.com/mcp").unwrap();
        let default: IssuerSettings =
            serde_json::from_value(serde_json::json!({"issuer": "https://a.example.com"})).unwrap();
        assert_eq!(
            default.to_config(0, &r).unwrap().audience_policy,
            AudiencePolicy::Includes
        );
        let exact: IssuerSettings = serde_json::from_value(
            serde_json::json!({"issuer": "https://a.example.com", "audience_policy": "exact"}),
        )
        .unwrap();
        assert_eq!(
            exact.to_config(0, &r).unwrap().audience_policy,
            AudiencePolicy::Exact
        );
        assert!(
            serde_json::from_value::<IssuerSettings>(
                serde_json::json!({"issuer": "https://a.example.com", "audience_policy": "strict"})
            )
            .is_err()
        );
    }

    fn upstream(mode: UpstreamMode) -> UpstreamSettings {
        UpstreamSettings {
            name: "ledger".into(),
            base_url: "https://ledger.example.com/api".into(),
            audience: None,
            resource: None,
            scopes: vec!["ledger:write".into()],
            mode,
            token_endpoint: Some("https://auth.example.com/token".into()),
            client_id: Some("billing".into()),
            client_secret_file: None,
            client_secret_env: Some("PATH".into()),
            secret_file: None,
            secret_env: Some("PATH".into()),
            header: None,
        }
    }

    #[test]
    fn upstreams_are_configured_and_their_errors_name_the_key() {
        let mut s = with_issuer();
        s.upstreams = vec![
            upstream(UpstreamMode::TokenExchange),
            UpstreamSettings {
                name: "search".into(),
                header: Some("x-api-key".into()),
                ..upstream(UpstreamMode::Static)
            },
        ];
        assert!(s.builder(bound(1)).is_ok());
        let key = |u: UpstreamSettings| {
            let mut s = with_issuer();
            s.upstreams = vec![u];
            s.builder(bound(1)).unwrap_err().key
        };
        let mut u = upstream(UpstreamMode::ClientCredentials);
        u.token_endpoint = None;
        assert_eq!(key(u), "upstreams[0].token_endpoint");
        let mut u = upstream(UpstreamMode::TokenExchange);
        u.client_secret_env = Some("GATEHOUSE_TEST_UNSET_VARIABLE".into());
        assert_eq!(key(u), "upstreams[0].client_secret_env");
        let mut u = upstream(UpstreamMode::Static);
        u.secret_env = None;
        assert_eq!(key(u), "upstreams[0].secret_file");
        let mut u = upstream(UpstreamMode::Static);
        u.header = Some("bad header".into());
        assert_eq!(key(u), "upstreams[0].header");
        let mut u = upstream(UpstreamMode::Static);
        u.base_url = "http://ledger.example.com/api".into();
        assert_eq!(key(u), "upstreams");
    }

    #[tokio::test]
    async fn the_redis_backend_names_its_bad_keys_and_hides_its_url() {
        let mut s = RateLimitSettings {
            backend: RateLimitBackend::Redis,
            ..Default::default()
        };
        let key = |s: &RateLimitSettings| s.limiter().err().map(|e| e.key);
        assert_eq!(key(&s).as_deref(), Some("rate_limits.redis_url"));
        s.redis_url = Some(SecretString::new("http://user:hunter2@127.0.0.1/"));
        let e = s.limiter().err().unwrap();
        assert_eq!(e.key, "rate_limits.redis_url");
        assert!(!e.message.contains("hunter2"), "{}", e.message);
        s.redis_url = Some(SecretString::new("redis://user:hunter2@127.0.0.1:1/"));
        assert!(!format!("{s:?}").contains("hunter2"));
        s.redis_timeout_ms = 0;
        assert_eq!(key(&s).as_deref(), Some("rate_limits.redis_timeout_ms"));
        s.redis_timeout_ms = 50;
        // Built without connecting: a Redis that is down at start-up is not a start-up failure.
        assert!(s.limiter().unwrap().is_some());
        let parsed: RateLimitSettings =
            serde_json::from_str(r#"{"backend":"redis","redis_failure":"closed"}"#).unwrap();
        assert_eq!(parsed.redis_failure, RedisFailureSetting::Closed);
        assert!(
            serde_json::from_str::<RateLimitSettings>(r#"{"redis_pasword":"x"}"#).is_err(),
            "unknown keys are refused"
        );
    }

    #[test]
    fn every_refusal_names_its_key() {
        let key = |s: Settings| s.builder(bound(1)).unwrap_err().key;
        assert_eq!(key(Settings::default()), "auth");
        let mut s = with_issuer();
        s.policy.tools.insert("void".into(), vec!["a b".into()]);
        assert_eq!(key(s), "policy.tools.void");
        let mut s = with_issuer();
        s.policy.tools.insert("read_[".into(), vec!["a".into()]);
        assert_eq!(key(s), "policy.tools.read_[");
        let mut s = with_issuer();
        s.policy.route_scopes = vec!["\"".into()];
        assert_eq!(key(s), "policy.route_scopes");
        let mut s = with_issuer();
        s.policy.hierarchy.insert("a".into(), vec!["a".into()]);
        assert_eq!(key(s), "policy.hierarchy");
        let mut s = with_issuer();
        s.tenancy.clients.insert("bot".into(), "has space".into());
        assert_eq!(key(s), "tenancy.clients");
        let mut s = with_issuer();
        s.auth.issuers[0].leeway_seconds = 301;
        assert_eq!(key(s), "auth.issuers[0].leeway_seconds");
        let mut s = with_issuer();
        s.auth.issuers[0].algorithms = vec!["none".into()];
        assert_eq!(key(s), "auth.issuers[0].algorithms");
        let mut s = with_issuer();
        s.limits.max_concurrent_requests = 0;
        assert_eq!(key(s), "limits.max_concurrent_requests");
        let mut s = with_issuer();
        s.rate_limits.per_client = Some(QuotaSettings {
            per_minute: 1,
            burst: 0,
        });
        assert_eq!(key(s), "rate_limits");
        let mut s = Settings::default();
        s.auth
            .introspection
            .push(IntrospectionSettings::new("https://auth.example.com", "rs"));
        assert_eq!(key(s), "auth.introspection[0].client_secret_file");
        let mut s = with_issuer();
        s.server.replica_id = Some("a".into());
        assert_eq!(key(s), "server.replica_id", "without stateful sessions");
        let mut s = with_issuer();
        s.server.stateful_sessions = true;
        s.server.replica_id = Some("a.b".into());
        assert_eq!(key(s), "server.replica_id");
        let mut s = with_issuer();
        s.server.stateful_sessions = true;
        s.server.replica_id = Some("replica-a".into());
        assert!(s.builder(bound(1)).is_ok());
        assert!(with_issuer().builder(bound(1)).is_ok());
    }
}
