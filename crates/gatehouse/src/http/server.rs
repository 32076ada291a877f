//! [`Gatehouse`]: a configured protected resource, and the one call that mounts an rmcp server
//! behind it ([`Gatehouse::mount`]). Built by [`crate::GatehouseBuilder`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::http::session::RoutedSessionManager;
use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bytes::Bytes;
use http::{Request, Response};
use rmcp::ServerHandler;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;
use tower_layer::Layer;
use tower_service::Service;

use crate::http::cors;
use crate::http::layer::{self, GatehouseLayer, Shared};
use crate::http::limits::{self, RequestLimits};
use crate::http::metadata::MetadataDocument;
use crate::mcp::Protected;
use crate::mcp::direct::DirectDispatch;
use crate::mcp::forward::{Forward, Forwarding};
use crate::policy::ScopePolicy;
use crate::resource::ResourceUrl;
use crate::verify::cache::Authenticator;
use crate::verify::chain::VerifierChain;

/// A configured protected resource: metadata, guard, challenges, authentication, policy and
/// limits. Cheap to clone.
#[derive(Clone)]
pub struct Gatehouse {
    pub(crate) resource: ResourceUrl,
    pub(crate) metadata: MetadataDocument,
    pub(crate) cors: Option<cors::Cors>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) limits: RequestLimits,
    pub(crate) stateful: bool,
    /// Names this replica in minted session ids ([`crate::SessionBindingConfig::id_prefix`]).
    pub(crate) session_id_prefix: Option<Arc<str>>,
    pub(crate) cancel: CancellationToken,
    pub(crate) chain: Option<Arc<VerifierChain>>,
    /// `tools/call`s answered without rmcp's per-request machinery ([`crate::mcp::DirectTools`]).
    pub(crate) direct_tools: crate::mcp::DirectTools,
}

impl std::fmt::Debug for Gatehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gatehouse")
            .field("resource", &self.resource)
            .finish_non_exhaustive()
    }
}

impl Gatehouse {
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

    /// The verifier chain built by [`GatehouseBuilder::start`](crate::GatehouseBuilder::start) (per-issuer key and
    /// introspection statistics); `None` with a custom verifier.
    pub fn verifier_chain(&self) -> Option<&Arc<VerifierChain>> {
        self.chain.as_ref()
    }

    /// The upstreams tools call ([`GatehouseBuilder::upstreams`](crate::GatehouseBuilder::upstreams)),
    /// for background work that calls them as this server
    /// ([`Upstreams::service_access`](crate::upstream::Upstreams::service_access)).
    pub fn upstreams(&self) -> Option<&crate::upstream::Upstreams> {
        self.shared.upstreams.as_ref()
    }

    /// Refusals of the rate limiter so far, by limit (zeros without one).
    pub fn rate_limit_stats(&self) -> crate::policy::rate_limit::RateLimitStats {
        self.shared
            .rate_limiter
            .as_ref()
            .map(|r| r.stats())
            .unwrap_or_default()
    }

    /// True when MCP sessions are stateful ([`GatehouseBuilder::stateful_sessions`](crate::GatehouseBuilder::stateful_sessions)).
    pub fn is_stateful(&self) -> bool {
        self.stateful
    }

    /// How many requests were answered directly, without rmcp's per-request service
    /// ([`crate::GatehouseBuilder::direct_tools`]), since start.
    pub fn direct_answers(&self) -> u64 {
        self.shared
            .direct_answers
            .load(std::sync::atomic::Ordering::Relaxed)
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
        self.mount_with(factory, None)
    }

    /// [`Gatehouse::mount`] with a forwarding fast path ([`crate::mcp::forward`]): in stateless
    /// mode, a `tools/call` of an allowed tool whose body passes one strict parse is handed to
    /// `forward` as bytes (a gateway sends it on to another server); everything else, and
    /// whatever `forward` declines, is the rmcp server's that `factory` makes. With stateful
    /// sessions `forward` is not used (a session's requests belong to its rmcp service).
    pub fn mount_forwarding<H, F>(&self, factory: F, forward: Arc<dyn Forward>) -> Router
    where
        H: ServerHandler,
        F: Fn() -> H + Send + Sync + 'static,
    {
        self.mount_with(factory, Some(forward))
    }

    fn mount_with<H, F>(&self, factory: F, forward: Option<Arc<dyn Forward>>) -> Router
    where
        H: ServerHandler,
        F: Fn() -> H + Send + Sync + 'static,
    {
        let gatehouse = self.clone();
        let make = Arc::new(move || gatehouse.protect(factory()));
        let config = self.configure_rmcp(
            StreamableHttpServerConfig::default()
                .with_legacy_session_mode(self.stateful)
                .with_json_response(!self.stateful)
                .with_cancellation_token(self.cancel.child_token()),
        );
        let rmcp_make = {
            let make = make.clone();
            move || Ok(make())
        };
        let router = if self.stateful {
            self.router(StreamableHttpService::new(
                rmcp_make,
                Arc::new(RoutedSessionManager::new(self.session_id_prefix.clone())),
                config,
            ))
        } else {
            let rmcp = StreamableHttpService::new(
                rmcp_make,
                Arc::new(NeverSessionManager::default()),
                config,
            );
            // Nothing declared direct and nothing forwarded: rmcp's service alone, no wrapper on
            // every request.
            let direct = |rmcp| {
                DirectDispatch::new(
                    rmcp,
                    make.clone(),
                    self.direct_tools.clone(),
                    self.shared.clone(),
                    self.cancel.child_token(),
                )
            };
            let off = matches!(self.direct_tools, crate::mcp::DirectTools::Off);
            match forward {
                // Forwarded calls first; what is not forwarded is answered directly when
                // declared so, else by rmcp.
                Some(forward) if off => {
                    self.router(Forwarding::new(rmcp, forward, self.shared.clone()))
                }
                Some(forward) => {
                    self.router(Forwarding::new(direct(rmcp), forward, self.shared.clone()))
                }
                None if off => self.router(rmcp),
                None => self.router(direct(rmcp)),
            }
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
