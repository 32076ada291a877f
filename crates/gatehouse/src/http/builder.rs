//! [`GatehouseBuilder`]: one place that owns the verifier chain, the verified-token cache, the
//! scope policy, tenancy, observers and limits, and validates them together.
//!
//! Issuers and the resource are each given once: a JWT issuer or introspection endpoint is also
//! what the RFC 9728 metadata advertises in `authorization_servers`, and the resource is the
//! audience every verifier requires unless told otherwise.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::DEFAULT_MAX_TOKEN_BYTES;
use crate::caller::{InvalidScope, ScopeSet};
use crate::http::challenge::{self, Challenges, DEFAULT_UNAVAILABLE_RETRY_AFTER, OFFLINE_ACCESS};
use crate::http::cors::{self, CorsConfig, CorsConfigError};
use crate::http::guard::{self, GuardConfig, HostGuard};
use crate::http::layer::Shared;
use crate::http::limits::{DEFAULT_MAX_BODY_BYTES, RequestLimits};
use crate::http::metadata::{
    DEFAULT_METADATA_MAX_AGE, MetadataDocument, ProtectedResourceMetadata,
};
use crate::http::server::Gatehouse;
use crate::http::session::{self, SessionBindingConfig};
use crate::observe::{Observer, Observers};
use crate::policy::rate_limit::RateLimiter;
use crate::policy::{HierarchyError, ScopeHierarchy, ScopePolicy, ToolListMode};
use crate::resource::ResourceUrl;
use crate::tenancy::{CallerEnricher, Enrichers, Tenancy};
use crate::verify::TokenVerifier;
use crate::verify::cache::{Authenticator, CacheConfig};
use crate::verify::chain::{ChainConfig, ChainError, VerifierChain};
use crate::verify::dpop::{DpopConfig, DpopMode, DpopVerifier};
use crate::verify::introspection::{ClientSecret, IntrospectionConfig};
use crate::verify::jwt::JwtIssuerConfig;

/// A configuration [`GatehouseBuilder::build`] or [`GatehouseBuilder::start`] refuses. Each names
/// the bad setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// No authorization server: neither issuers nor introspection nor an explicit list
    /// (RFC 9728 / MCP ASD26: at least one).
    #[error("authorization_servers: at least one authorization server is required")]
    NoAuthorizationServers,
    /// An authorization server is not an absolute https URL (http is allowed on loopback only).
    #[error("authorization_servers: {0:?} is not an https issuer URL (http only on loopback)")]
    AuthorizationServer(String),
    /// Nothing verifies tokens: no issuer, no introspection, no custom verifier.
    #[error("auth: configure at least one JWT issuer or introspection endpoint")]
    NoVerifier,
    /// Issuers or introspection were configured together with a custom verifier.
    #[error(
        "auth: a custom verifier replaces issuers and introspection; configure one or the other"
    )]
    VerifierAndIssuers,
    /// Issuers or introspection were configured but [`GatehouseBuilder::build`] was called:
    /// their keys and metadata must be fetched, which [`GatehouseBuilder::start`] does.
    #[error("auth: issuers and introspection need GatehouseBuilder::start (it fetches their keys)")]
    NotStarted,
    /// The verifier chain could not be set up (discovery, keys, duplicate issuers).
    #[error("auth: {0}")]
    Chain(#[from] ChainError),
    /// A scope (route, tool, hierarchy or `scopes_supported`) is not a valid scope.
    #[error("scopes: {0}")]
    Scope(#[from] InvalidScope),
    /// The scope hierarchy is invalid.
    #[error("policy.hierarchy: {0}")]
    Hierarchy(#[from] HierarchyError),
    /// A tool-name pattern is not a valid glob.
    #[error("policy.tools: {0}")]
    ToolPattern(#[from] crate::policy::InvalidToolPattern),
    /// Host/Origin/proxy settings.
    #[error("guard: {0}")]
    Guard(#[from] guard::GuardConfigError),
    /// CORS settings.
    #[error("cors: {0}")]
    Cors(#[from] CorsConfigError),
    /// The resource URL or scopes cannot be put into a challenge header.
    #[error("resource: {0}")]
    Challenge(#[from] challenge::ChallengeBuildError),
    /// The resource path cannot be mounted as an axum route.
    #[error("resource: path {0:?} cannot be mounted (segments must not start with ':' or '*')")]
    ResourcePath(String),
    /// A size or count limit is zero.
    #[error("{0}: must be greater than zero")]
    ZeroLimit(&'static str),
    /// The session id prefix is not 1–32 characters of `A-Z a-z 0-9 _ -`.
    #[error("sessions: id prefix {0:?} must be 1-32 characters of A-Z a-z 0-9 _ -")]
    SessionIdPrefix(String),
}

/// Builder for [`Gatehouse`]. Every setting has a secure default; see each method.
///
/// Start with [`Gatehouse::builder`], name the issuers, the scopes and whatever else differs from
/// the defaults, then [`GatehouseBuilder::start`] (which fetches the issuers' metadata and keys)
/// and mount the MCP server with [`Gatehouse::mount`].
#[must_use]
pub struct GatehouseBuilder {
    pub(crate) resource: ResourceUrl,
    authorization_servers: Option<Vec<String>>,
    jwt_issuers: Vec<JwtIssuerConfig>,
    introspection: Vec<IntrospectionConfig>,
    verifier: Option<Arc<dyn TokenVerifier>>,
    cache: CacheConfig,
    policy: Option<ScopePolicy>,
    route_scopes: Vec<String>,
    tool_scopes: BTreeMap<String, Vec<String>>,
    hierarchy: BTreeMap<String, Vec<String>>,
    list_mode: ToolListMode,
    unnamed_tools: crate::policy::UnnamedTools,
    tenant_claim: Option<String>,
    tenancy: Tenancy,
    enrichers: Vec<Arc<dyn CallerEnricher>>,
    /// True once [`GatehouseBuilder::start`] has turned the issuers into a verifier.
    started: bool,
    chain: Option<Arc<VerifierChain>>,
    resource_name: Option<String>,
    resource_documentation: Option<String>,
    scopes_supported: Option<Vec<String>>,
    guard: GuardConfig,
    cors: Option<CorsConfig>,
    max_token_bytes: usize,
    max_body_bytes: usize,
    metadata_max_age: Duration,
    unavailable_retry_after: Duration,
    sessions: Option<SessionBindingConfig>,
    direct_tools: crate::mcp::DirectTools,
    observers: Vec<Arc<dyn Observer>>,
    rate_limiter: Option<Arc<dyn RateLimiter>>,
    upstreams: Option<crate::upstream::Upstreams>,
    dpop_modes: std::collections::HashMap<String, DpopMode>,
    dpop_config: DpopConfig,
    limits: RequestLimits,
    cancel: CancellationToken,
}

impl std::fmt::Debug for GatehouseBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatehouseBuilder")
            .field("resource", &self.resource)
            .finish_non_exhaustive()
    }
}

impl Gatehouse {
    /// Starts configuring the protection of `resource` (its canonical URL: what tokens' `aud`
    /// names and what clients connect to).
    pub fn builder(resource: ResourceUrl) -> GatehouseBuilder {
        GatehouseBuilder::new(resource)
    }
}

impl GatehouseBuilder {
    fn new(resource: ResourceUrl) -> Self {
        Self {
            resource,
            authorization_servers: None,
            jwt_issuers: Vec::new(),
            introspection: Vec::new(),
            verifier: None,
            cache: CacheConfig::default(),
            policy: None,
            route_scopes: Vec::new(),
            tool_scopes: BTreeMap::new(),
            hierarchy: BTreeMap::new(),
            list_mode: ToolListMode::All,
            unnamed_tools: crate::policy::UnnamedTools::Allow,
            tenant_claim: None,
            tenancy: Tenancy::new(),
            enrichers: Vec::new(),
            started: false,
            chain: None,
            resource_name: None,
            resource_documentation: None,
            scopes_supported: None,
            guard: GuardConfig::default(),
            cors: None,
            dpop_modes: Default::default(),
            dpop_config: DpopConfig::default(),
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            metadata_max_age: DEFAULT_METADATA_MAX_AGE,
            unavailable_retry_after: DEFAULT_UNAVAILABLE_RETRY_AFTER,
            sessions: None,
            direct_tools: Default::default(),
            observers: Vec::new(),
            rate_limiter: None,
            upstreams: None,
            limits: RequestLimits::default(),
            cancel: CancellationToken::new(),
        }
    }

    // --- authentication ----------------------------------------------------------------------

    /// Trusts JWT access tokens from `issuer`: keys from its RFC 8414 / OpenID metadata (fetched
    /// by [`GatehouseBuilder::start`]), `aud` must name this resource, `typ` must be `at+jwt`.
    /// For other settings use [`GatehouseBuilder::jwt_issuer_config`].
    pub fn jwt_issuer(self, issuer: impl Into<String>) -> Self {
        let config = JwtIssuerConfig::new(issuer, self.resource.as_str());
        self.jwt_issuer_config(config)
    }

    /// Trusts JWT access tokens as `config` describes. Empty `audiences` mean this resource.
    pub fn jwt_issuer_config(mut self, mut config: JwtIssuerConfig) -> Self {
        if config.audiences.is_empty() {
            config.audiences.push(self.resource.as_str().to_owned());
        }
        self.jwt_issuers.push(config);
        self
    }

    /// Decides opaque tokens of `issuer` by RFC 7662 introspection at the endpoint its metadata
    /// names, authenticating as `client_id` with `client_secret` (`client_secret_basic`);
    /// `aud` must name this resource. For other settings use
    /// [`GatehouseBuilder::introspection`].
    pub fn introspection_issuer(
        self,
        issuer: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: ClientSecret,
    ) -> Self {
        let config =
            IntrospectionConfig::new(issuer, client_id, client_secret, self.resource.as_str());
        self.introspection(config)
    }

    /// Decides opaque tokens by RFC 7662 introspection as `config` describes. Empty `audiences`
    /// mean this resource.
    pub fn introspection(mut self, mut config: IntrospectionConfig) -> Self {
        if config.audiences.is_empty() {
            config.audiences.push(self.resource.as_str().to_owned());
        }
        self.introspection.push(config);
        self
    }

    /// Verifies tokens with a verifier of your own instead of issuers and introspection (tests,
    /// exotic token formats). It still runs behind the verified-token cache and the enrichers.
    pub fn verifier(mut self, verifier: Arc<dyn TokenVerifier>) -> Self {
        self.verifier = Some(verifier);
        self
    }

    /// The verified-token cache. Default [`CacheConfig::default`].
    pub fn cache(mut self, cache: CacheConfig) -> Self {
        self.cache = cache;
        self
    }

    /// Claims your tools read from [`Caller::claims`](crate::Principal::claims) beyond the
    /// caller's own fields: only these (and `act`, `cnf`) are kept on a verified caller, so each
    /// cached entry stays small. Default: none.
    pub fn keep_claims(mut self, claims: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.cache.keep_claims = claims.into_iter().map(Into::into).collect();
        self
    }

    /// Issuer identifiers advertised in `authorization_servers`. Default: every JWT issuer and
    /// introspection issuer, each once. Set it only to advertise something else (for example a
    /// custom verifier's issuer). https, or http on a loopback host.
    pub fn authorization_servers(
        mut self,
        issuers: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.authorization_servers = Some(owned(issuers));
        self
    }

    /// Cap on bearer tokens, in bytes: larger tokens get `400` before any parsing, and no
    /// verifier ever sees one. One setting for the edge, the chain and the cache. Default
    /// [`DEFAULT_MAX_TOKEN_BYTES`] (16 KiB).
    pub fn max_token_bytes(mut self, bytes: usize) -> Self {
        self.max_token_bytes = bytes;
        self
    }

    // --- authorization -----------------------------------------------------------------------

    /// Scopes every request to the MCP endpoint needs. Default: none (any valid token).
    pub fn route_scopes(mut self, scopes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.route_scopes = owned(scopes);
        self
    }

    /// Extra scopes a `tools/call` of `tool` needs (checked at the edge before the server runs,
    /// answered `403 insufficient_scope` for step-up, and again around the tool). `tool` is a
    /// name or a glob pattern (`search_*`, `*`): an exact name wins over patterns, and a tool
    /// several patterns match needs all their scopes.
    pub fn tool_scopes(
        mut self,
        tool: impl Into<String>,
        scopes: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.tool_scopes.insert(tool.into(), owned(scopes));
        self
    }

    /// `parent` implies each of `children` (transitively): a token with `parent` may do what
    /// they allow (MCP step-up: servers account for scope hierarchies, A19).
    pub fn scope_implies(
        mut self,
        parent: impl Into<String>,
        children: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.hierarchy
            .entry(parent.into())
            .or_default()
            .extend(children.into_iter().map(Into::into));
        self
    }

    /// What tools that no [`GatehouseBuilder::tool_scopes`] rule names get: the route scopes
    /// only ([`UnnamedTools::Allow`](crate::policy::UnnamedTools::Allow), the default for a
    /// server's own tools) or hidden ([`UnnamedTools::Deny`](crate::policy::UnnamedTools::Deny):
    /// unlisted, and answered as a tool that does not exist — for tools someone else writes).
    pub fn unnamed_tools(mut self, unnamed: crate::policy::UnnamedTools) -> Self {
        self.unnamed_tools = unnamed;
        self
    }

    /// Whether `tools/list` shows every tool (default, so clients can discover what to step up
    /// to) or only those the caller's scopes allow. Applied by the library to every mounted
    /// server.
    pub fn tools_list(mut self, mode: ToolListMode) -> Self {
        self.list_mode = mode;
        self
    }

    /// A complete policy instead of [`GatehouseBuilder::route_scopes`],
    /// [`GatehouseBuilder::tool_scopes`], [`GatehouseBuilder::scope_implies`] and
    /// [`GatehouseBuilder::tools_list`].
    pub fn policy(mut self, policy: ScopePolicy) -> Self {
        self.policy = Some(policy);
        self
    }

    // --- tenancy and the application seam ----------------------------------------------------

    /// The claim that names the caller's tenant (set on every JWT issuer and introspection
    /// endpoint configured so far and later). Default: none.
    pub fn tenant_claim(mut self, claim: impl Into<String>) -> Self {
        self.tenant_claim = Some(claim.into());
        self
    }

    /// The tenant of a client whose tokens carry no tenant claim (client credentials).
    pub fn tenant_for_client(
        mut self,
        client_id: impl Into<String>,
        tenant: &str,
    ) -> Result<Self, crate::tenancy::InvalidTenant> {
        self.tenancy = self.tenancy.with_client(client_id, tenant)?;
        Ok(self)
    }

    /// Tenant rules in one piece (see [`crate::tenancy`]).
    pub fn tenancy(mut self, tenancy: Tenancy) -> Self {
        self.tenancy = tenancy;
        self
    }

    /// Runs `enricher` once per verified token, after the tenant rules, before the caller is
    /// cached, rate-limited, authorized and handed to tools.
    pub fn enrich(mut self, enricher: Arc<dyn CallerEnricher>) -> Self {
        self.enrichers.push(enricher);
        self
    }

    /// Tells `observer` about every tool call, refusal, authentication and request
    /// ([`crate::observe`]). May be called several times; each observer hears everything.
    pub fn observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observers.push(observer);
        self
    }

    /// Rate limits ([`crate::policy::rate_limit`]): tokens refused by the authorization server
    /// per client address (checked before a verification that would reach it), then
    /// per-client and per-tenant quotas after authentication. Refusals are `429` + `Retry-After`. Default: none.
    pub fn rate_limiter(mut self, limiter: Arc<dyn RateLimiter>) -> Self {
        self.rate_limiter = Some(limiter);
        self
    }

    /// DPoP for `issuer`'s tokens (RFC 9449): `Allowed` takes bound tokens with their proofs
    /// beside Bearer tokens, `Required` only them. Default `Off` for every issuer: the `DPoP`
    /// scheme is not accepted and a bound token sent as Bearer is refused. Turning it on for one
    /// issuer adds `DPoP` challenges to `401`s and the DPoP fields to the metadata document.
    pub fn dpop(mut self, issuer: impl Into<String>, mode: DpopMode) -> Self {
        self.dpop_modes.insert(issuer.into(), mode);
        self
    }

    /// How DPoP proofs are checked (algorithms, `iat` window, replay cache size). Default
    /// [`DpopConfig::default`].
    pub fn dpop_config(mut self, config: DpopConfig) -> Self {
        self.dpop_config = config;
        self
    }

    /// Credentials for the APIs tools call ([`crate::upstream`]): tools take
    /// [`crate::upstream::UpstreamAccess`] as an argument and call a named upstream through it.
    pub fn upstreams(mut self, upstreams: crate::upstream::Upstreams) -> Self {
        self.upstreams = Some(upstreams);
        self
    }

    // --- the edge ----------------------------------------------------------------------------

    /// `resource_name` in the metadata. Default: omitted.
    pub fn resource_name(mut self, name: impl Into<String>) -> Self {
        self.resource_name = Some(name.into());
        self
    }

    /// `resource_documentation` URL in the metadata. Default: omitted.
    pub fn resource_documentation(mut self, url: impl Into<String>) -> Self {
        self.resource_documentation = Some(url.into());
        self
    }

    /// `scopes_supported` in the metadata. Default: every scope the policy mentions.
    /// `offline_access` is always removed (with a warning): MCP AUTH26 §Refresh Tokens (A11).
    pub fn scopes_supported(mut self, scopes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.scopes_supported = Some(owned(scopes));
        self
    }

    /// Extra allowed `Host` values (`host` = any port, or `host:port`). The resource's authority
    /// is always allowed, and the loopback names in loopback mode.
    pub fn allowed_hosts(mut self, hosts: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.guard.allowed_hosts = owned(hosts);
        self
    }

    /// Extra allowed `Origin` values (`https://app.example.com`, `http://localhost:*`, `null`).
    /// The resource's origin is always allowed (and loopback origins in loopback mode).
    pub fn allowed_origins(mut self, origins: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.guard.allowed_origins = owned(origins);
        self
    }

    /// Peers (IP or CIDR) whose `X-Forwarded-Host`/`X-Forwarded-Proto` are believed, and whose
    /// `X-Forwarded-For` names the client for the per-address rate limit. Default: none. Needs the peer address: serve with [`crate::serve`] (or
    /// `into_make_service_with_connect_info::<SocketAddr>()`).
    pub fn trusted_proxies(mut self, proxies: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.guard.trusted_proxies = owned(proxies);
        self
    }

    /// The address the server listens on; a loopback address allows `localhost`, `127.0.0.1`
    /// and `[::1]` with its port as Host and Origin.
    pub fn listen_addr(mut self, addr: SocketAddr) -> Self {
        self.guard.listen_addr = Some(addr);
        self
    }

    /// Accept any `Host`. Weakens DNS-rebinding protection to the Origin check; logs a warning.
    pub fn dangerous_allow_any_host(mut self) -> Self {
        self.guard.dangerous_allow_any_host = true;
        self
    }

    /// Enables CORS for browser clients. Default: off.
    pub fn cors(mut self, cors: CorsConfig) -> Self {
        self.cors = Some(cors);
        self
    }

    /// Cap on request bodies; larger bodies get `413`, from Gatehouse and from rmcp alike
    /// ([`Gatehouse::mount`] sets rmcp's limit to the same value). Default
    /// [`DEFAULT_MAX_BODY_BYTES`] (4 MiB).
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// Requests processed at once (more get `503` + `Retry-After` at once, no queueing) and the
    /// time from request head to response head (then `408`). Default 1024 and 30 s.
    pub fn request_limits(mut self, limits: RequestLimits) -> Self {
        self.limits = limits;
        self
    }

    /// `max-age` of the metadata response. Default [`DEFAULT_METADATA_MAX_AGE`] (1 hour).
    pub fn metadata_max_age(mut self, max_age: Duration) -> Self {
        self.metadata_max_age = max_age;
        self
    }

    /// `Retry-After` sent with `503` when tokens cannot be verified. Default 5 s.
    pub fn unavailable_retry_after(mut self, after: Duration) -> Self {
        self.unavailable_retry_after = after;
        self
    }

    /// The tools whose `tools/call` (and `tools/list`) [`Gatehouse::mount`] may answer directly,
    /// without rmcp's per-request tasks and channels (stateless mode only). Declare only tools
    /// that never use `context.peer` (no progress, logging, sampling, elicitation): a direct
    /// answer is one JSON message and cannot carry them. Default
    /// [`DirectTools::Off`](crate::mcp::DirectTools::Off). See `mcp::direct` for what stays
    /// with rmcp.
    pub fn direct_tools(mut self, tools: crate::mcp::DirectTools) -> Self {
        self.direct_tools = tools;
        self
    }

    /// Stateful MCP sessions, each bound to the principal that created it (issuer, subject,
    /// client); [`Gatehouse::mount`] then serves SSE with rmcp's session manager. Default: off
    /// (stateless JSON: any replica can serve any request).
    pub fn stateful_sessions(mut self, config: SessionBindingConfig) -> Self {
        self.sessions = Some(config);
        self
    }

    /// Stops the background tasks (key refresh) and ends open streams when cancelled. Default: a
    /// token of the server's own ([`Gatehouse::shutdown`]).
    pub fn cancellation(mut self, token: CancellationToken) -> Self {
        self.cancel = token;
        self
    }

    // --- building ----------------------------------------------------------------------------

    /// Fetches the issuers' metadata and keys and the introspection endpoints' discovery, then
    /// [`GatehouseBuilder::build`]s. Keys that cannot be fetched yet are retried in the
    /// background (requests get `503` until they are); an issuer whose metadata is unusable is
    /// an error.
    pub async fn start(mut self) -> Result<Gatehouse, BuildError> {
        let has_issuers = !self.jwt_issuers.is_empty() || !self.introspection.is_empty();
        if has_issuers {
            if self.verifier.is_some() {
                return Err(BuildError::VerifierAndIssuers);
            }
            let chain = VerifierChain::start(self.chain_config(), self.cancel.clone()).await?;
            if !chain.ready() {
                tracing::warn!("signing keys not loaded yet; tokens get 503 until they are");
            }
            let chain = Arc::new(chain);
            self.verifier = Some(chain.clone());
            self.chain = Some(chain);
            self.started = true;
        }
        self.build()
    }

    #[cfg(test)]
    pub(crate) fn mark_started_for_tests(&mut self) {
        self.started = true;
    }

    /// The verifier chain's configuration: the issuers as configured, each with the tenant
    /// claim, and the one token-size cap.
    pub fn chain_config(&self) -> ChainConfig {
        let claim = &self.tenant_claim;
        ChainConfig {
            jwt_issuers: self
                .jwt_issuers
                .iter()
                .cloned()
                .map(|mut c| {
                    c.tenant_claim = c.tenant_claim.or_else(|| claim.clone());
                    c.max_token_bytes = self.max_token_bytes;
                    c
                })
                .collect(),
            introspection: self
                .introspection
                .iter()
                .cloned()
                .map(|mut c| {
                    c.tenant_claim = c.tenant_claim.or_else(|| claim.clone());
                    c.max_token_bytes = self.max_token_bytes;
                    c
                })
                .collect(),
            max_token_bytes: self.max_token_bytes,
        }
    }

    /// The issuers advertised in `authorization_servers`: the explicit list, else every JWT and
    /// introspection issuer once, in configuration order.
    fn advertised_servers(&self) -> Vec<String> {
        if let Some(list) = &self.authorization_servers {
            return list.clone();
        }
        let mut out: Vec<String> = Vec::new();
        let issuers = self.jwt_issuers.iter().map(|c| &c.issuer);
        for issuer in issuers.chain(self.introspection.iter().map(|c| &c.issuer)) {
            if !out.contains(issuer) {
                out.push(issuer.clone());
            }
        }
        out
    }

    fn scope_policy(&mut self) -> Result<ScopePolicy, BuildError> {
        if let Some(p) = self.policy.take() {
            return Ok(p);
        }
        let (patterns, names): (Vec<_>, Vec<_>) = self
            .tool_scopes
            .iter()
            .map(|(tool, scopes)| Ok((tool.clone(), ScopeSet::parse(scopes)?)))
            .collect::<Result<Vec<_>, InvalidScope>>()?
            .into_iter()
            .partition(|(tool, _)| crate::policy::is_tool_pattern(tool));
        let hierarchy = ScopeHierarchy::new(self.hierarchy.iter())?;
        Ok(ScopePolicy::new(
            ScopeSet::parse(&self.route_scopes)?,
            names.into_iter().collect(),
            hierarchy,
            self.list_mode,
        )
        .with_patterns(patterns, self.unnamed_tools)?)
    }

    /// Validates everything and precomputes the metadata document and challenges. Needs a
    /// [`GatehouseBuilder::verifier`]; with issuers or introspection, call
    /// [`GatehouseBuilder::start`] instead.
    pub fn build(mut self) -> Result<Gatehouse, BuildError> {
        let has_issuers = !self.jwt_issuers.is_empty() || !self.introspection.is_empty();
        if has_issuers && !self.started {
            return Err(if self.verifier.is_some() {
                BuildError::VerifierAndIssuers
            } else {
                BuildError::NotStarted
            });
        }
        let verifier = self.verifier.take().ok_or(BuildError::NoVerifier)?;
        let authorization_servers = self.advertised_servers();
        if authorization_servers.is_empty() {
            return Err(BuildError::NoAuthorizationServers);
        }
        for issuer in &authorization_servers {
            if !is_acceptable_issuer(issuer) {
                return Err(BuildError::AuthorizationServer(issuer.clone()));
            }
        }
        for (name, value) in [
            ("max_token_bytes", self.max_token_bytes),
            ("max_body_bytes", self.max_body_bytes),
            (
                "max_concurrent_requests",
                self.limits.max_concurrent_requests,
            ),
        ] {
            if value == 0 {
                return Err(BuildError::ZeroLimit(name));
            }
        }
        if self.limits.request_timeout.is_zero() {
            return Err(BuildError::ZeroLimit("request_timeout"));
        }
        let path = self.resource.path();
        if path
            .split('/')
            .any(|seg| seg.starts_with(':') || seg.starts_with('*'))
        {
            return Err(BuildError::ResourcePath(path.to_owned()));
        }
        if let Some(prefix) = self.sessions.as_ref().and_then(|s| s.id_prefix.as_ref())
            && !SessionBindingConfig::is_valid_id_prefix(prefix)
        {
            return Err(BuildError::SessionIdPrefix(prefix.clone()));
        }
        let policy = self.scope_policy()?;

        let scopes_supported = match &self.scopes_supported {
            Some(list) => ScopeSet::parse(list)?,
            None => policy.all_scopes(),
        };
        let scopes_supported = strip_offline_access(scopes_supported, "scopes_supported");
        if policy.all_scopes().contains_str(OFFLINE_ACCESS) {
            tracing::warn!(
                "the scope policy requires offline_access; it is never advertised in challenges \
                 or metadata (MCP AUTH26 §Refresh Tokens)"
            );
        }
        // A15: a 401 names the scopes basic access needs.
        let challenge_scopes = if policy.route_scopes().is_empty() {
            scopes_supported.clone()
        } else {
            policy.route_scopes().clone()
        };

        let dpop_on = self.dpop_modes.values().any(|m| *m != DpopMode::Off);
        let metadata = MetadataDocument::new(
            ProtectedResourceMetadata {
                resource: self.resource.as_str().to_owned(),
                authorization_servers,
                scopes_supported: scopes_supported
                    .iter()
                    .map(|s| s.as_str().to_owned())
                    .collect(),
                bearer_methods_supported: vec!["header".to_owned()],
                resource_name: self.resource_name.filter(|s| !s.is_empty()),
                resource_documentation: self.resource_documentation.filter(|s| !s.is_empty()),
                // RFC 9449 §5.1 (RFC 9728 §2): the proof algorithms, and whether every token
                // must be bound (every issuer requires DPoP).
                dpop_signing_alg_values_supported: dpop_on.then(|| {
                    self.dpop_config
                        .algorithms
                        .iter()
                        .map(|a| format!("{a:?}"))
                        .collect()
                }),
                dpop_bound_access_tokens_required: (dpop_on
                    && self.dpop_modes.values().all(|m| *m == DpopMode::Required))
                .then_some(true),
            },
            self.metadata_max_age,
        );

        let cors = self.cors.as_ref().map(cors::Cors::new).transpose()?;
        let mut guard_config = self.guard;
        if let Some(c) = &self.cors {
            guard_config
                .allowed_origins
                .extend(c.allowed_origins.iter().cloned());
        }
        let guard = HostGuard::new(&self.resource, &guard_config)?;
        let mut challenges = Challenges::new(
            &self.resource,
            &challenge_scopes,
            self.unavailable_retry_after,
        )?;
        let dpop = if dpop_on {
            challenges = challenges.with_dpop(&self.dpop_config.algorithms)?;
            Some(crate::http::dpop::DpopEdge {
                verifier: DpopVerifier::new(self.dpop_config.clone()),
                modes: self.dpop_modes.clone(),
                resource: self.resource.as_str().to_owned(),
            })
        } else {
            None
        };
        let all_tool_scopes = policy.all_scopes();

        let observer: Arc<dyn Observer> = Arc::new(Observers::new(self.observers));
        let mut enrichers: Vec<Arc<dyn CallerEnricher>> = vec![Arc::new(self.tenancy)];
        enrichers.extend(self.enrichers);
        let cache = self.cache;
        let authenticator = Arc::new(
            Authenticator::new(verifier, cache)
                .with_enricher(Arc::new(Enrichers::new(enrichers)))
                .with_observer(observer.clone()),
        );
        let needs_peer = self.rate_limiter.is_some() || !guard_config.trusted_proxies.is_empty();

        let shared = Arc::new(Shared {
            guard,
            challenges,
            authenticator,
            policy,
            all_tool_scopes,
            max_token_bytes: self.max_token_bytes,
            max_body_bytes: self.max_body_bytes,
            sessions: self.sessions.as_ref().map(session::SessionBindings::new),
            observer,
            rate_limiter: self.rate_limiter,
            needs_peer,
            warned_no_peer: Default::default(),
            upstreams: self.upstreams,
            dpop,
            direct_answers: Default::default(),
        });
        Ok(Gatehouse {
            resource: self.resource,
            metadata,
            cors,
            shared,
            limits: self.limits,
            stateful: self.sessions.is_some(),
            session_id_prefix: self
                .sessions
                .as_ref()
                .and_then(|s| s.id_prefix.as_deref())
                .map(Arc::from),
            cancel: self.cancel,
            chain: self.chain,
            direct_tools: self.direct_tools,
        })
    }
}

/// The strings of a setter's argument, owned.
fn owned(items: impl IntoIterator<Item = impl Into<String>>) -> Vec<String> {
    items.into_iter().map(Into::into).collect()
}

fn strip_offline_access(scopes: ScopeSet, what: &str) -> ScopeSet {
    if scopes.contains_str(OFFLINE_ACCESS) {
        tracing::warn!(
            setting = what,
            "offline_access removed (MCP AUTH26 §Refresh Tokens)"
        );
    }
    scopes
        .iter()
        .filter(|s| s.as_str() != OFFLINE_ACCESS)
        .cloned()
        .collect()
}

fn is_acceptable_issuer(issuer: &str) -> bool {
    let Ok(url) = url::Url::parse(issuer) else {
        return false;
    };
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        None => return false,
    };
    url.scheme() == "https" || (url.scheme() == "http" && loopback)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caller::{AccessToken, Caller, ScopeSet};
    use crate::http::RequestLimits;
    use crate::policy::ToolListMode;
    use crate::verify::jwt::JwtIssuerConfig;
    use crate::verify::{BoxFuture, InvalidReason, TokenVerifier, VerifyError};

    struct Never;
    impl TokenVerifier for Never {
        fn verify<'a>(&'a self, _: &'a AccessToken) -> BoxFuture<'a, Result<Caller, VerifyError>> {
            Box::pin(async { Err(VerifyError::Invalid(InvalidReason::Malformed)) })
        }
    }

    fn builder(resource: &str) -> GatehouseBuilder {
        Gatehouse::builder(ResourceUrl::parse(resource).unwrap())
            .authorization_servers(["https://auth.example.com"])
            .verifier(Arc::new(Never))
    }

    // A4, A26 and secure defaults: each bad setting is refused with its name.
    #[test]
    fn build_refuses_bad_configuration() {
        let r = "https://mcp.example.com/mcp";
        let err = |b: GatehouseBuilder| b.build().unwrap_err();
        assert_eq!(
            err(builder(r).authorization_servers(Vec::<String>::new())),
            BuildError::NoAuthorizationServers
        );
        let prefixed = |p: &str| SessionBindingConfig {
            id_prefix: Some(p.into()),
            ..SessionBindingConfig::default()
        };
        assert_eq!(
            err(builder(r).stateful_sessions(prefixed("a.b"))),
            BuildError::SessionIdPrefix("a.b".into())
        );
        assert!(builder(r).stateful_sessions(prefixed("a")).build().is_ok());
        assert_eq!(
            err(builder(r).authorization_servers(["http://auth.example.com"])),
            BuildError::AuthorizationServer("http://auth.example.com".into())
        );
        assert!(matches!(
            err(builder(r).authorization_servers(["not a url"])),
            BuildError::AuthorizationServer(_)
        ));
        let no_auth = Gatehouse::builder(ResourceUrl::parse(r).unwrap())
            .authorization_servers(["https://auth.example.com"]);
        assert_eq!(err(no_auth), BuildError::NoVerifier);
        // Issuers need `start` (it fetches their keys); they cannot be mixed with a verifier.
        let issuer = || {
            Gatehouse::builder(ResourceUrl::parse(r).unwrap())
                .jwt_issuer("https://auth.example.com")
        };
        assert_eq!(err(issuer()), BuildError::NotStarted);
        assert_eq!(
            err(issuer().verifier(Arc::new(Never))),
            BuildError::VerifierAndIssuers
        );
        assert_eq!(
            err(builder(r).request_limits(RequestLimits {
                max_concurrent_requests: 0,
                ..RequestLimits::default()
            })),
            BuildError::ZeroLimit("max_concurrent_requests")
        );
        assert_eq!(
            err(builder(r).request_limits(RequestLimits {
                request_timeout: Duration::ZERO,
                ..RequestLimits::default()
            })),
            BuildError::ZeroLimit("request_timeout")
        );
        assert!(matches!(
            err(builder(r).route_scopes(["a b"])),
            BuildError::Scope(_)
        ));
        assert!(matches!(
            err(builder(r).tool_scopes("t", ["a\"b"])),
            BuildError::Scope(_)
        ));
        assert!(matches!(
            err(builder(r)
                .scope_implies("a", ["b"])
                .scope_implies("b", ["a"])),
            BuildError::Hierarchy(_)
        ));
        assert_eq!(
            err(builder(r).max_token_bytes(0)),
            BuildError::ZeroLimit("max_token_bytes")
        );
        assert_eq!(
            err(builder(r).max_body_bytes(0)),
            BuildError::ZeroLimit("max_body_bytes")
        );
        assert!(matches!(
            err(builder(r).scopes_supported(["a b"])),
            BuildError::Scope(_)
        ));
        assert!(matches!(
            err(builder(r).allowed_hosts(["a b"])),
            BuildError::Guard(_)
        ));
        assert!(matches!(
            err(builder(r).allowed_origins(["nope"])),
            BuildError::Guard(_)
        ));
        assert!(matches!(
            err(builder(r).trusted_proxies(["10.0.0.0/99"])),
            BuildError::Guard(_)
        ));
        assert!(matches!(
            err(builder(r).cors(CorsConfig::new(["*"]))),
            BuildError::Cors(_)
        ));
        assert!(matches!(
            err(builder("https://mcp.example.com/:id")),
            BuildError::ResourcePath(_)
        ));
        // http issuers are fine on loopback (development authorization server).
        assert!(
            builder(r)
                .authorization_servers(["http://127.0.0.1:9000"])
                .build()
                .is_ok()
        );
    }

    // A10, A11: scopes_supported defaults to the policy's scopes, never offline_access.
    #[test]
    fn scopes_supported_defaults_and_offline_access() {
        let mut tools = std::collections::HashMap::new();
        tools.insert(
            "t".to_owned(),
            ScopeSet::parse(["b", "offline_access"]).unwrap(),
        );
        let policy = ScopePolicy::new(
            ScopeSet::parse(["a"]).unwrap(),
            tools,
            Default::default(),
            Default::default(),
        );
        let g = builder("https://mcp.example.com/mcp")
            .policy(policy)
            .build()
            .unwrap();
        assert_eq!(g.metadata().document().scopes_supported, ["a", "b"]);
        // The declarative form builds the same policy.
        let g = builder("https://mcp.example.com/mcp")
            .route_scopes(["a"])
            .tool_scopes("t", ["b", "offline_access"])
            .scope_implies("b", ["a"])
            .tools_list(ToolListMode::FilterByScope)
            .build()
            .unwrap();
        assert_eq!(g.metadata().document().scopes_supported, ["a", "b"]);
        assert_eq!(g.policy().list_mode(), ToolListMode::FilterByScope);
        assert!(g.policy().hierarchy().set_grants(
            &ScopeSet::from_space_separated("b"),
            &crate::caller::Scope::new("a").unwrap()
        ));
        assert_eq!(g.metadata().document().bearer_methods_supported, ["header"]);
        assert!(g.metadata().document().resource_name.is_none());
        let empty = builder("https://mcp.example.com/mcp")
            .resource_name("")
            .build()
            .unwrap();
        assert!(empty.metadata().document().resource_name.is_none());
        assert!(empty.metadata().document().scopes_supported.is_empty());
    }

    // Issuers are given once: the metadata lists each JWT / introspection issuer once (an
    // issuer with both is not listed twice), and each verifier's audience is the resource.
    #[test]
    fn issuers_are_advertised_once_and_audiences_default_to_the_resource() {
        let r = "https://mcp.example.com/mcp";
        let mut b = Gatehouse::builder(ResourceUrl::parse(r).unwrap())
            .jwt_issuer("https://a.example.com")
            .jwt_issuer_config(JwtIssuerConfig {
                audiences: vec!["api://other".into()],
                ..JwtIssuerConfig::new("https://b.example.com", "x")
            })
            .introspection(crate::verify::introspection::IntrospectionConfig {
                audiences: vec![],
                ..crate::verify::introspection::IntrospectionConfig::new(
                    "https://a.example.com",
                    "rs",
                    crate::verify::introspection::ClientSecret::new("s"),
                    "ignored",
                )
            })
            .tenant_claim("org")
            .max_token_bytes(32 * 1024);
        let chain = b.chain_config();
        // One token-size limit, set once, reaches every verifier (a 20 KB opaque token that the
        // edge accepts is not refused again by introspection).
        assert_eq!(chain.max_token_bytes, 32 * 1024);
        assert!(
            chain
                .jwt_issuers
                .iter()
                .all(|c| c.max_token_bytes == 32 * 1024)
        );
        assert_eq!(chain.introspection[0].max_token_bytes, 32 * 1024);
        assert_eq!(chain.jwt_issuers[0].audiences, [r]);
        assert_eq!(chain.jwt_issuers[1].audiences, ["api://other"]);
        assert_eq!(chain.introspection[0].audiences, [r]);
        assert!(
            chain
                .jwt_issuers
                .iter()
                .all(|c| c.tenant_claim.as_deref() == Some("org"))
        );
        assert_eq!(chain.introspection[0].tenant_claim.as_deref(), Some("org"));
        // Pretend start() ran with a custom verifier, to check the advertised list.
        b = b.verifier(Arc::new(Never));
        b.mark_started_for_tests();
        let g = b.build().unwrap();
        assert_eq!(
            g.metadata().document().authorization_servers,
            ["https://a.example.com", "https://b.example.com"]
        );
    }

    // rmcp's loopback-only Host check is replaced; body limits agree.
    #[test]
    fn configure_rmcp_aligns_limits_and_hosts() {
        let g = builder("https://mcp.example.com/mcp")
            .max_body_bytes(1234)
            .build()
            .unwrap();
        let c = g.configure_rmcp(Default::default());
        assert!(c.allowed_hosts.is_empty());
        assert_eq!(c.max_request_body_bytes, 1234);
    }
}
