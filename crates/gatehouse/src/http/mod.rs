//! The HTTP edge: Host/Origin guard, CORS, bearer extraction, challenges, RFC 9728 metadata,
//! request limits, and the tower layer that ties them together in front of an rmcp server.
//!
//! Only this module knows status codes and `WWW-Authenticate` ([`challenge`] is the one place
//! they are produced, for every refusal the edge makes: guard, authentication, policy, sessions,
//! bodies, rate and request limits, unknown paths). Verification ([`crate::verify`]) and policy
//! ([`crate::policy`]) stay HTTP-agnostic.
//!
//! [`Gatehouse::mount`] is the one call that puts an rmcp server behind all of it; see the
//! crate documentation for the short path, and [`Gatehouse::layer`] / [`Gatehouse::router`] for
//! mounting by hand.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bytes::Bytes;
use http::{Request, Response};
use rmcp::ServerHandler;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;
use tower_layer::Layer;
use tower_service::Service;

use crate::mcp::Protected;
use crate::policy::ScopePolicy;
use crate::resource::ResourceUrl;
use crate::verify::cache::Authenticator;
use crate::verify::chain::VerifierChain;

pub mod bearer;
mod builder;
pub mod challenge;
pub mod cors;
pub mod guard;
pub mod layer;
pub mod limits;
pub mod metadata;
pub mod session;

pub use bearer::{BearerError, DEFAULT_MAX_TOKEN_BYTES, MalformedReason, extract_bearer};
pub use builder::{BuildError, GatehouseBuilder};
pub use challenge::{Challenges, Rejection};
pub use cors::{CorsConfig, CorsConfigError};
pub use guard::{GuardConfig, GuardConfigError, HostGuard};
pub use layer::{GatehouseLayer, GatehouseService};
pub use limits::RequestLimits;
pub use metadata::{DEFAULT_METADATA_MAX_AGE, MetadataDocument, ProtectedResourceMetadata};
pub use session::SessionBindingConfig;

use layer::Shared;

/// Default cap on request bodies: rmcp 3.11's default `max_request_body_bytes` (4 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Default `Retry-After` on `503` when a token cannot be verified.
pub const DEFAULT_UNAVAILABLE_RETRY_AFTER: Duration = Duration::from_secs(5);

/// A configured protected resource: metadata, guard, challenges, authentication, policy and
/// limits. Cheap to clone.
#[derive(Clone)]
pub struct Gatehouse {
    resource: ResourceUrl,
    metadata: MetadataDocument,
    cors: Option<cors::Cors>,
    shared: Arc<Shared>,
    limits: RequestLimits,
    stateful: bool,
    cancel: CancellationToken,
    chain: Option<Arc<VerifierChain>>,
}

impl std::fmt::Debug for Gatehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gatehouse")
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

    /// The authenticator (readiness, cache statistics).
    pub fn authenticator(&self) -> &Arc<Authenticator> {
        &self.shared.authenticator
    }

    /// The verifier chain built by [`GatehouseBuilder::start`] (per-issuer key and
    /// introspection statistics); `None` with a custom verifier.
    pub fn verifier_chain(&self) -> Option<&Arc<VerifierChain>> {
        self.chain.as_ref()
    }

    /// Refusals of the rate limiter so far, by limit (zeros without one).
    pub fn rate_limit_stats(&self) -> crate::policy::rate_limit::RateLimitStats {
        self.shared
            .rate_limiter
            .as_ref()
            .map(|r| r.stats())
            .unwrap_or_default()
    }

    /// True when MCP sessions are stateful ([`GatehouseBuilder::stateful_sessions`]).
    pub fn is_stateful(&self) -> bool {
        self.stateful
    }

    /// Stops background work (key refresh) and ends open SSE streams, so that a graceful
    /// shutdown is not held up by them.
    pub fn shutdown(&self) {
        self.cancel.cancel();
    }

    /// The guard + authentication + authorization layer, for custom mounting. It does not add
    /// the metadata route, CORS, request limits or the wrapper around the server;
    /// [`Gatehouse::mount`] does.
    pub fn layer(&self) -> GatehouseLayer {
        GatehouseLayer {
            shared: self.shared.clone(),
        }
    }

    /// Adjusts an rmcp configuration to agree with Gatehouse (for custom mounting;
    /// [`Gatehouse::mount`] applies it): rmcp's own `allowed_hosts` check (loopback-only by
    /// default, which refuses every public deployment) is disabled because the Gatehouse guard
    /// replaces it, and rmcp's body limit is set to `max_body_bytes` so both refuse the same
    /// bodies with `413`.
    pub fn configure_rmcp(&self, config: StreamableHttpServerConfig) -> StreamableHttpServerConfig {
        config
            .disable_allowed_hosts()
            .with_max_request_body_bytes(self.shared.max_body_bytes)
    }

    /// Wraps `handler` in the library's per-call behaviour ([`Protected`]: one observation per
    /// tool call, tool scopes checked again, `tools/list` filtered by scope when configured).
    pub fn protect<H: ServerHandler>(&self, handler: H) -> Protected<H> {
        Protected::new(
            handler,
            self.shared.policy.clone(),
            self.shared.observer.clone(),
        )
    }

    /// Mounts the rmcp server that `factory` makes (called once per request in stateless mode,
    /// once per session in stateful mode: keep it cheap, e.g. a clone of an `Arc`) behind
    /// everything Gatehouse does, and returns the complete router:
    ///
    /// - the RFC 9728 metadata document at [`ResourceUrl::metadata_path`] (no token; Host/Origin
    ///   guard), the MCP endpoint at [`ResourceUrl::path`], `404` elsewhere;
    /// - request ids (`x-request-id`, set or propagated), a `request` tracing span per request,
    ///   `Authorization` marked sensitive, request limits (`503`/`408`), CORS when configured;
    /// - rmcp configured to agree ([`Gatehouse::configure_rmcp`]): stateless JSON responses by
    ///   default, or stateful SSE sessions bound to their principal;
    /// - the server wrapped in [`Protected`].
    ///
    /// Serve the router with [`crate::serve`] (or with
    /// `into_make_service_with_connect_info::<SocketAddr>()`), so that rate limits and trusted
    /// proxies can see the peer address.
    pub fn mount<H, F>(&self, factory: F) -> Router
    where
        H: ServerHandler,
        F: Fn() -> H + Send + Sync + 'static,
    {
        let gatehouse = self.clone();
        let make = move || Ok(gatehouse.protect(factory()));
        let config = self.configure_rmcp(
            StreamableHttpServerConfig::default()
                .with_legacy_session_mode(self.stateful)
                .with_json_response(!self.stateful)
                .with_cancellation_token(self.cancel.child_token()),
        );
        let router = if self.stateful {
            self.router(StreamableHttpService::new(
                make,
                Arc::new(LocalSessionManager::default()),
                config,
            ))
        } else {
            self.router(StreamableHttpService::new(
                make,
                Arc::new(NeverSessionManager::default()),
                config,
            ))
        };
        limits::wrap(router, self.shared.clone(), &self.resource, self.limits)
    }

    /// An axum router with the metadata document at [`ResourceUrl::metadata_path`] (no token;
    /// Host/Origin guard applies) and `mcp` at [`ResourceUrl::path`] behind [`Gatehouse::layer`],
    /// both wrapped in CORS when configured. For custom mounting; [`Gatehouse::mount`] adds the
    /// rest.
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

/// Serves `router` on `listener` until `shutdown` resolves, with what the edge needs from the
/// connection: the peer address (`ConnectInfo`, for rate limits and trusted proxies) and
/// `TCP_NODELAY` (SSE replies stall ~40 ms each without it). In-flight requests finish before it
/// returns.
pub async fn serve<F>(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: F,
) -> std::io::Result<()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caller::{AccessToken, Caller, ScopeSet};
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
