//! The HTTP edge: Host/Origin guard, CORS, bearer extraction, challenges, RFC 9728 metadata, and
//! the tower layer that ties them together in front of an rmcp `StreamableHttpService`.
//!
//! Only this module knows status codes and `WWW-Authenticate` ([`challenge`] is the one place
//! they are produced). Verification ([`crate::verify`]) and policy ([`crate::policy`]) stay
//! HTTP-agnostic.
//!
//! # Mounting
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use gatehouse::{ResourceUrl, http::Gatehouse, verify::cache::Authenticator};
//! # use rmcp::transport::streamable_http_server::{
//! #     StreamableHttpServerConfig, StreamableHttpService, session::never::NeverSessionManager,
//! # };
//! # fn demo<H: rmcp::ServerHandler + Clone + Send + Sync + 'static>(
//! #     handler: H, authenticator: Arc<Authenticator>,
//! # ) -> Result<axum::Router, Box<dyn std::error::Error>> {
//! let resource = ResourceUrl::parse("https://mcp.example.com/mcp")?;
//! let gatehouse = Gatehouse::builder(resource)
//!     .authorization_servers(["https://auth.example.com"])
//!     .authenticator(authenticator)
//!     .build()?;
//! // Gatehouse's guard replaces rmcp's loopback-only `allowed_hosts`; keep the body limits equal.
//! let config = gatehouse.configure_rmcp(
//!     StreamableHttpServerConfig::default()
//!         .with_legacy_session_mode(false)
//!         .with_json_response(true),
//! );
//! let mcp = StreamableHttpService::new(
//!     move || Ok(handler.clone()),
//!     Arc::new(NeverSessionManager::default()),
//!     config,
//! );
//! let app: axum::Router = gatehouse.router(mcp);
//! // Serve with `app.into_make_service_with_connect_info::<std::net::SocketAddr>()` so that
//! // trusted-proxy checks can see the peer address.
//! # Ok(app) }
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bytes::Bytes;
use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use crate::caller::{InvalidScope, ScopeSet};
use crate::observe::{EdgeObserver, NoopObserver};
use crate::policy::ScopePolicy;
use crate::policy::rate_limit::RateLimiter;
use crate::resource::ResourceUrl;
use crate::verify::cache::Authenticator;

pub mod bearer;
pub mod challenge;
pub mod cors;
pub mod guard;
pub mod layer;
pub mod metadata;
pub mod session;

pub use bearer::{BearerError, DEFAULT_MAX_TOKEN_BYTES, MalformedReason, extract_bearer};
pub use challenge::{Challenges, Rejection};
pub use cors::{CorsConfig, CorsConfigError};
pub use guard::{GuardConfig, GuardConfigError, HostGuard};
pub use layer::{GatehouseLayer, GatehouseService};
pub use metadata::{DEFAULT_METADATA_MAX_AGE, MetadataDocument, ProtectedResourceMetadata};
pub use session::SessionBindingConfig;

use challenge::OFFLINE_ACCESS;
use layer::Shared;

/// Default cap on request bodies read for per-tool policy: rmcp 3.11's default
/// `max_request_body_bytes` (4 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Default `Retry-After` on `503` when a token cannot be verified.
pub const DEFAULT_UNAVAILABLE_RETRY_AFTER: Duration = Duration::from_secs(5);

/// A configuration [`GatehouseBuilder::build`] refuses. Each names the bad setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// `authorization_servers` is empty (RFC 9728 / MCP ASD26: at least one).
    #[error("authorization_servers: at least one authorization server is required")]
    NoAuthorizationServers,
    /// An authorization server is not an absolute https URL (http is allowed on loopback only).
    #[error("authorization_servers: {0:?} is not an https issuer URL (http only on loopback)")]
    AuthorizationServer(String),
    /// No authenticator was given.
    #[error("authenticator: required")]
    NoAuthenticator,
    /// A `scopes_supported` entry is not a valid scope.
    #[error("scopes_supported: {0}")]
    Scope(#[from] InvalidScope),
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
    /// A size limit is zero.
    #[error("{0}: must be greater than zero")]
    ZeroLimit(&'static str),
}

/// Builder for [`Gatehouse`]. Every setting has a secure default; see each method.
#[must_use]
pub struct GatehouseBuilder {
    resource: ResourceUrl,
    authorization_servers: Vec<String>,
    authenticator: Option<Arc<Authenticator>>,
    policy: ScopePolicy,
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
    observer: Arc<dyn EdgeObserver>,
    rate_limiter: Option<Arc<dyn RateLimiter>>,
}

impl std::fmt::Debug for GatehouseBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatehouseBuilder")
            .field("resource", &self.resource)
            .finish_non_exhaustive()
    }
}

impl GatehouseBuilder {
    /// Issuer identifiers advertised in `authorization_servers` (required, at least one; https,
    /// or http on a loopback host).
    pub fn authorization_servers<I, S>(mut self, issuers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.authorization_servers = issuers.into_iter().map(Into::into).collect();
        self
    }

    /// The token authenticator (required).
    pub fn authenticator(mut self, authenticator: Arc<Authenticator>) -> Self {
        self.authenticator = Some(authenticator);
        self
    }

    /// Route and tool scopes. Default: no scopes required (any valid token is enough).
    pub fn policy(mut self, policy: ScopePolicy) -> Self {
        self.policy = policy;
        self
    }

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
    pub fn scopes_supported<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes_supported = Some(scopes.into_iter().map(Into::into).collect());
        self
    }

    /// Extra allowed `Host` values (`host` = any port, or `host:port`). The resource's authority
    /// is always allowed, and the loopback names in loopback mode.
    pub fn allowed_hosts<I, S>(mut self, hosts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.guard.allowed_hosts = hosts.into_iter().map(Into::into).collect();
        self
    }

    /// Extra allowed `Origin` values (`https://app.example.com`, `http://localhost:*`, `null`).
    /// The resource's origin is always allowed (and loopback origins in loopback mode).
    pub fn allowed_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.guard.allowed_origins = origins.into_iter().map(Into::into).collect();
        self
    }

    /// Peers (IP or CIDR) whose `X-Forwarded-Host`/`X-Forwarded-Proto` are believed. Default:
    /// none. Needs the router served with `ConnectInfo<SocketAddr>`.
    pub fn trusted_proxies<I, S>(mut self, proxies: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.guard.trusted_proxies = proxies.into_iter().map(Into::into).collect();
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

    /// Cap on the `Authorization` header's token. Default [`DEFAULT_MAX_TOKEN_BYTES`] (16 KiB).
    pub fn max_token_bytes(mut self, bytes: usize) -> Self {
        self.max_token_bytes = bytes;
        self
    }

    /// Cap on bodies read to find a `tools/call` target; keep it equal to rmcp's
    /// `max_request_body_bytes` (see [`Gatehouse::configure_rmcp`]). Default
    /// [`DEFAULT_MAX_BODY_BYTES`] (4 MiB). Larger bodies get `413`.
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
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

    /// Binds rmcp sessions (stateful mode) to the principal that created them. Default: off
    /// (stateless servers have no sessions).
    pub fn session_binding(mut self, config: SessionBindingConfig) -> Self {
        self.sessions = Some(config);
        self
    }

    /// Receives every refusal of the edge (for audit records and metrics). Default: none.
    pub fn observer(mut self, observer: Arc<dyn EdgeObserver>) -> Self {
        self.observer = observer;
        self
    }

    /// Rate limits ([`crate::policy::rate_limit`]): failed authentications per source address
    /// (checked before verification; needs `ConnectInfo<SocketAddr>`), then per-client and
    /// per-tenant quotas after authentication. Refusals are `429` + `Retry-After`. Default: none.
    pub fn rate_limiter(mut self, limiter: Arc<dyn RateLimiter>) -> Self {
        self.rate_limiter = Some(limiter);
        self
    }

    /// Validates everything and precomputes the metadata document and challenges.
    pub fn build(self) -> Result<Gatehouse, BuildError> {
        if self.authorization_servers.is_empty() {
            return Err(BuildError::NoAuthorizationServers);
        }
        for issuer in &self.authorization_servers {
            if !is_acceptable_issuer(issuer) {
                return Err(BuildError::AuthorizationServer(issuer.clone()));
            }
        }
        let authenticator = self.authenticator.ok_or(BuildError::NoAuthenticator)?;
        if self.max_token_bytes == 0 {
            return Err(BuildError::ZeroLimit("max_token_bytes"));
        }
        if self.max_body_bytes == 0 {
            return Err(BuildError::ZeroLimit("max_body_bytes"));
        }
        let path = self.resource.path();
        if path
            .split('/')
            .any(|seg| seg.starts_with(':') || seg.starts_with('*'))
        {
            return Err(BuildError::ResourcePath(path.to_owned()));
        }

        let scopes_supported = match &self.scopes_supported {
            Some(list) => ScopeSet::parse(list)?,
            None => self.policy.all_scopes(),
        };
        let scopes_supported = strip_offline_access(scopes_supported, "scopes_supported");
        if self.policy.all_scopes().contains_str(OFFLINE_ACCESS) {
            tracing::warn!(
                "the scope policy requires offline_access; it is never advertised in challenges \
                 or metadata (MCP AUTH26 §Refresh Tokens)"
            );
        }
        // A15: a 401 names the scopes basic access needs.
        let challenge_scopes = if self.policy.route_scopes().is_empty() {
            scopes_supported.clone()
        } else {
            self.policy.route_scopes().clone()
        };

        let metadata = MetadataDocument::new(
            ProtectedResourceMetadata {
                resource: self.resource.as_str().to_owned(),
                authorization_servers: self.authorization_servers.clone(),
                scopes_supported: scopes_supported
                    .iter()
                    .map(|s| s.as_str().to_owned())
                    .collect(),
                bearer_methods_supported: vec!["header".to_owned()],
                resource_name: self.resource_name.filter(|s| !s.is_empty()),
                resource_documentation: self.resource_documentation.filter(|s| !s.is_empty()),
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
        let challenges = Challenges::new(
            &self.resource,
            &challenge_scopes,
            self.unavailable_retry_after,
        )?;
        let all_tool_scopes = self.policy.all_scopes();

        let shared = Arc::new(Shared {
            guard,
            challenges,
            authenticator,
            policy: self.policy,
            all_tool_scopes,
            max_token_bytes: self.max_token_bytes,
            max_body_bytes: self.max_body_bytes,
            sessions: self.sessions.as_ref().map(session::SessionBindings::new),
            observer: self.observer,
            rate_limiter: self.rate_limiter,
        });
        Ok(Gatehouse {
            resource: self.resource,
            metadata,
            cors,
            shared,
        })
    }
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

/// A configured protected resource: metadata, guard, challenges, authentication and policy.
/// Cheap to clone.
#[derive(Clone)]
pub struct Gatehouse {
    resource: ResourceUrl,
    metadata: MetadataDocument,
    cors: Option<cors::Cors>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Gatehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gatehouse")
            .field("resource", &self.resource)
            .finish_non_exhaustive()
    }
}

impl Gatehouse {
    /// Starts configuring the protection of `resource`.
    pub fn builder(resource: ResourceUrl) -> GatehouseBuilder {
        GatehouseBuilder {
            resource,
            authorization_servers: Vec::new(),
            authenticator: None,
            policy: ScopePolicy::default(),
            resource_name: None,
            resource_documentation: None,
            scopes_supported: None,
            guard: GuardConfig::default(),
            cors: None,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            metadata_max_age: DEFAULT_METADATA_MAX_AGE,
            unavailable_retry_after: DEFAULT_UNAVAILABLE_RETRY_AFTER,
            sessions: None,
            observer: Arc::new(NoopObserver),
            rate_limiter: None,
        }
    }

    /// The protected resource.
    pub fn resource(&self) -> &ResourceUrl {
        &self.resource
    }

    /// The metadata document served at [`ResourceUrl::metadata_path`].
    pub fn metadata(&self) -> &MetadataDocument {
        &self.metadata
    }

    /// The scope policy.
    pub fn policy(&self) -> &ScopePolicy {
        &self.shared.policy
    }

    /// The authenticator (for readiness checks).
    pub fn authenticator(&self) -> &Arc<Authenticator> {
        &self.shared.authenticator
    }

    /// The guard + authentication + authorization layer, for custom mounting. It does not add
    /// the metadata route or CORS; [`Gatehouse::router`] does.
    pub fn layer(&self) -> GatehouseLayer {
        GatehouseLayer {
            shared: self.shared.clone(),
        }
    }

    /// Adjusts an rmcp configuration to agree with Gatehouse: rmcp's own `allowed_hosts` check
    /// (loopback-only by default, which refuses every public deployment) is disabled because the
    /// Gatehouse guard replaces it, and rmcp's body limit is set to `max_body_bytes` so both
    /// refuse the same bodies with `413`.
    pub fn configure_rmcp(
        &self,
        config: rmcp::transport::streamable_http_server::StreamableHttpServerConfig,
    ) -> rmcp::transport::streamable_http_server::StreamableHttpServerConfig {
        config
            .disable_allowed_hosts()
            .with_max_request_body_bytes(self.shared.max_body_bytes)
    }

    /// An axum router with the metadata document at [`ResourceUrl::metadata_path`] (no token;
    /// Host/Origin guard applies) and `mcp` at [`ResourceUrl::path`] behind [`Gatehouse::layer`],
    /// both wrapped in CORS when configured.
    pub fn router<S, B>(&self, mcp: S) -> Router
    where
        S: Service<Request<Body>, Response = Response<B>, Error = Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        let document = self.metadata.clone();
        let mut metadata_route = get(move || {
            let response = document.response();
            async move { response }
        })
        .layer(axum::middleware::from_fn_with_state(
            self.shared.clone(),
            layer::guard_only,
        ));
        let protected = self.layer().layer(mcp);
        let router = match &self.cors {
            Some(cors) => {
                metadata_route = metadata_route.layer(cors.metadata_layer());
                Router::new().route_service(self.resource.path(), cors.mcp_layer().layer(protected))
            }
            None => Router::new().route_service(self.resource.path(), protected),
        };
        router.route(&self.resource.metadata_path(), metadata_route)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caller::{AccessToken, Caller};
    use crate::verify::cache::CacheConfig;
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
            .authenticator(Arc::new(Authenticator::new(
                Arc::new(Never),
                CacheConfig::default(),
            )))
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
        assert_eq!(err(no_auth), BuildError::NoAuthenticator);
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
        assert_eq!(g.metadata().document().bearer_methods_supported, ["header"]);
        assert!(g.metadata().document().resource_name.is_none());
        let empty = builder("https://mcp.example.com/mcp")
            .resource_name("")
            .build()
            .unwrap();
        assert!(empty.metadata().document().resource_name.is_none());
        assert!(empty.metadata().document().scopes_supported.is_empty());
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
