//! The tower layer that protects an MCP endpoint (usually rmcp's `StreamableHttpService`).
//!
//! Order on every request (each step refuses through [`Challenges::render`]):
//!
//! 1. Host/Origin guard ([`HostGuard`]) → `400`/`421`/`403`;
//! 2. bearer extraction ([`extract_token`]: `Bearer`, and `DPoP` where an issuer takes it; plus, for form bodies, the "token sent two ways"
//!    check of OA21 §5.1) → `401` / `400`;
//! 3. [`Authenticator::authenticate_metered`] → `401 invalid_token` / `503`: the cache, then
//!    what can be decided with the keys held, then the authorization server — only this last
//!    step meets the per-address limit ([`crate::policy::rate_limit`]) → `429`, keyed on the
//!    client address as forwarded by trusted proxies ([`HostGuard::client_ip`]);
//! 4. route scopes ([`ScopePolicy::check_route`]) → `403 insufficient_scope`;
//! 5. session binding, when enabled ([`SessionBindings`]) → `404`;
//! 6. for `POST` when the policy has per-tool rules: the `tools/call` target from the SEP-2243
//!    headers (≥ 2026-07-28 only) or a bounded read of the body ([`crate::policy::tool_name`]),
//!    then [`ScopePolicy::check_tool`] → `403` / `413`;
//! 7. for `POST`: `Accept` must take JSON and SSE (`406`), `Content-Type` must be JSON (`415`),
//!    a declared body over the limit is `413` — rmcp's first checks, answered here in JSON;
//! 8. the `Authorization` header is removed (tools never see tokens, nor can pass them on: MCP
//!    SEC26 §Token Passthrough, A35) and the [`Caller`] is put into the request extensions, where
//!    the rmcp extractor in [`crate::mcp`] finds it;
//! 9. the inner service; an error answer of it that is not JSON (rmcp's plain-text transport
//!    refusals) is replaced by the edge's JSON for the same status (`transport_refusal`).
//!
//! Nothing is shared between requests (A25): a connection that carried a valid token carries no
//! authority for the next request on it.
//!
//! Cost on the success path: no challenge strings are built, the body is not touched unless a
//! tool rule needs it, and 2026-07-28 requests that name their method in `Mcp-Method` never have
//! their body read.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use std::net::{IpAddr, SocketAddr};

use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tower_layer::Layer;
use tower_service::Service;

use crate::caller::{AccessToken, Caller, ScopeSet};
use crate::http::bearer::{MalformedReason, extract_token, has_access_token_param};
use crate::http::challenge::{Challenges, Rejection};
use crate::http::guard::HostGuard;
use crate::http::session::SessionBindings;
use crate::observe::{Observer, Outcome, Stage, ToolCall};
use crate::policy::ScopePolicy;
use crate::policy::rate_limit::{RateLimitError, RateLimiter};
use crate::policy::tool_name::{self, ToolTarget};
use crate::verify::VerifyError;
use crate::verify::cache::{Authentication, Authenticator};

pub(crate) const MCP_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
const MCP_METHOD: HeaderName = HeaderName::from_static("mcp-method");
const MCP_NAME: HeaderName = HeaderName::from_static("mcp-name");
const MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
const REQUEST_ID: HeaderName = HeaderName::from_static(crate::mcp::REQUEST_ID_HEADER);

/// Everything the layer needs, built once by [`crate::http::GatehouseBuilder::build`].
pub(crate) struct Shared {
    pub(crate) guard: HostGuard,
    pub(crate) challenges: Challenges,
    pub(crate) authenticator: Arc<Authenticator>,
    pub(crate) policy: ScopePolicy,
    /// Every scope any tool needs, for requests whose target cannot be read unambiguously.
    pub(crate) all_tool_scopes: ScopeSet,
    pub(crate) max_token_bytes: usize,
    pub(crate) max_body_bytes: usize,
    pub(crate) sessions: Option<SessionBindings>,
    /// Told about every refusal, authentication and edge-denied tool call (audit, metrics).
    pub(crate) observer: Arc<dyn Observer>,
    /// Rate limits, when configured ([`crate::policy::rate_limit`]).
    pub(crate) rate_limiter: Option<Arc<dyn RateLimiter>>,
    /// True when a setting needs the peer address (rate limits, trusted proxies).
    pub(crate) needs_peer: bool,
    /// Set once the missing peer address has been reported.
    pub(crate) warned_no_peer: std::sync::atomic::AtomicBool,
    /// Credentials for the APIs tools call ([`crate::upstream`]); tools reach them through the
    /// `UpstreamAccess` the edge puts beside the `Caller`.
    pub(crate) upstreams: Option<crate::upstream::Upstreams>,
    /// DPoP, when an issuer takes it ([`crate::http::dpop`]).
    pub(crate) dpop: Option<crate::http::dpop::DpopEdge>,
    /// Requests answered without rmcp's per-request service ([`crate::mcp::DirectTools`]).
    pub(crate) direct_answers: std::sync::atomic::AtomicU64,
}

/// What the response path needs to remember about an admitted request (session binding only).
struct Admitted {
    caller: Option<Caller>,
    delete_session: Option<String>,
}

impl Shared {
    pub(crate) fn reject(&self, rejection: &Rejection) -> Response<Body> {
        self.observer.rejected(rejection.reason());
        self.challenges.render(rejection)
    }

    async fn admit(&self, mut req: Request<Body>) -> Result<(Request<Body>, Admitted), Rejection> {
        let started = Instant::now();
        self.warn_if_no_peer(&req);
        self.guard.check(&req)?;
        // B22/C1: a method the endpoint does not serve is `405` whoever asks, before any token
        // is looked at. A `401` there would tell a client that its good token is the problem,
        // and some drop their whole OAuth session for it (a GET answered 401, in the field).
        // Served: POST always; GET and DELETE only with sessions.
        let sessions = self.sessions.is_some();
        let m = req.method();
        if !(m == Method::POST || (sessions && (m == Method::GET || m == Method::DELETE))) {
            return Err(Rejection::MethodNotAllowed {
                allow: Some(if sessions {
                    "GET, POST, DELETE"
                } else {
                    "POST"
                }),
            });
        }
        // No per-address limit before this point: a request without a token always gets its
        // challenge (discovery, A14), and a malformed one its 400; neither costs verification.
        let (token, scheme) = extract_token(
            req.headers(),
            req.uri().query(),
            self.max_token_bytes,
            self.dpop.is_some(),
        )?;
        if is_form(req.headers()) {
            // OA21 §5.1 / RFC 6750 §2: a header token plus a form-body `access_token` is a token
            // sent two ways (E4). Only form bodies can carry one, so only they are read.
            let (parts, body) = req.into_parts();
            let bytes = self.collect(&parts.headers, body).await?;
            if std::str::from_utf8(&bytes).is_ok_and(has_access_token_param) {
                return Err(Rejection::Malformed(MalformedReason::SentTwoWays));
            }
            req = Request::from_parts(parts, Body::from(bytes));
        }

        let client = self
            .rate_limiter
            .as_ref()
            .and_then(|_| self.guard.client_ip(&req));
        let caller = self.authenticate(client, &token).await?;
        // RFC 9449 §7: how the token came (scheme, proof) is checked on every request, after
        // the verified-token cache.
        match &self.dpop {
            Some(dpop) => dpop.check(req.headers(), req.method(), &token, scheme, &caller)?,
            // Without DPoP a bound token still cannot be used as Bearer (§7.2): that would turn
            // a stolen bound token into a usable one.
            None if caller.dpop_jkt().is_some() => {
                return Err(Rejection::InvalidToken(
                    crate::verify::InvalidReason::BoundTokenAsBearer,
                ));
            }
            None => {}
        }
        self.observer.authenticated(&caller);
        if let Some(limiter) = &self.rate_limiter {
            limiter.check_caller(&caller).await.map_err(rate_limited)?;
        }
        if let Err(route) = self.policy.check_route(&caller) {
            // A18: one challenge names everything the operation needs. For a `tools/call` of a
            // tool with its own scopes that is route + tool scopes (the tool check covers
            // both), not the route scopes now and the tool's on the next round trip. The tool
            // check also reports the refused call to the observers (one audit record), so a
            // `tools/call` refused for lack of route scopes is recorded like any other.
            if req.method() == Method::POST
                && let Err(r @ Rejection::InsufficientScope { .. }) =
                    self.check_tool(req, &caller, started).await
            {
                return Err(r);
            }
            return Err(route.into());
        }

        let mut admitted = Admitted {
            caller: None,
            delete_session: None,
        };
        if let Some(sessions) = &self.sessions {
            let mut ids = req.headers().get_all(MCP_SESSION_ID).iter();
            if let Some(first) = ids.next() {
                let id = first.to_str().map_err(|_| Rejection::UnknownSession)?;
                if ids.next().is_some() || !sessions.is_owned_by(id, &caller) {
                    return Err(Rejection::UnknownSession);
                }
                if req.method() == Method::DELETE {
                    admitted.delete_session = Some(id.to_owned());
                }
            }
            admitted.caller = Some(caller.clone());
        }

        if req.method() == Method::POST && self.policy.has_tool_rules() {
            req = self.check_tool(req, &caller, started).await?;
        }

        // MCP SHTTP §Sending Messages: a POST accepts both response types and sends JSON. These
        // are rmcp's first checks too; answering them here gives them the edge's JSON.
        if req.method() == Method::POST {
            if !accepts_json_and_event_stream(req.headers()) {
                return Err(Rejection::NotAcceptable);
            }
            if !is_json(req.headers()) {
                return Err(Rejection::UnsupportedMediaType);
            }
        }

        // A declared body over the limit is refused here, in the same JSON as every refusal,
        // whatever rmcp would have read (its own 413 has no body format of ours). Bodies without
        // a length are still cut by rmcp at the same limit (`Gatehouse::configure_rmcp`).
        if req.method() == Method::POST && self.declared_too_large(req.headers()) {
            return Err(Rejection::PayloadTooLarge);
        }
        req.headers_mut().remove(AUTHORIZATION);
        if let Some(upstreams) = &self.upstreams {
            // The inbound token stays with the request only when an upstream exchanges it
            // (RFC 8693), inside a value whose token tools cannot read.
            let subject = upstreams.needs_subject_token().then_some(token);
            let access = upstreams.access(caller.clone(), subject);
            req.extensions_mut().insert(access);
        }
        req.extensions_mut().insert(caller);
        if req.method() == Method::POST {
            req.extensions_mut()
                .insert(crate::mcp::DependencySlot::default());
        }
        Ok((req, admitted))
    }

    /// Verifies the token, metering per client address only the verifications that reach the
    /// authorization server (introspection, a key refresh for an unknown `kid`): a cached token
    /// or one decided with the keys held is never refused here, whatever the address did. A
    /// refused token that needed the issuer counts against the address; over the limit, such
    /// tokens are answered `429` without reaching the issuer ([`crate::policy::rate_limit`]).
    async fn authenticate(
        &self,
        client: Option<IpAddr>,
        token: &AccessToken,
    ) -> Result<Caller, Rejection> {
        let Some(limiter) = &self.rate_limiter else {
            return Ok(self.authenticator.authenticate(token).await?);
        };
        let mut barred = None;
        let barred_slot = &mut barred;
        let may_reach = move || async move {
            let Some(ip) = client else { return true };
            match limiter.check_address(ip).await {
                Ok(()) => true,
                Err(refused) => {
                    *barred_slot = Some(refused);
                    false
                }
            }
        };
        let outcome = self
            .authenticator
            .authenticate_metered(token, may_reach)
            .await;
        match outcome {
            Authentication::Decided(result) => Ok(result?),
            Authentication::Reached(result) => {
                if let (Err(VerifyError::Invalid(_)), Some(ip)) = (&result, client) {
                    limiter.record_auth_failure(ip).await;
                }
                Ok(result?)
            }
            // Deferred only when `may_reach` said no, which it says only with a refusal in hand;
            // without one, fail closed with the overload answer rather than verify.
            Authentication::Deferred => Err(barred.map_or(Rejection::Overloaded, rate_limited)),
        }
    }

    async fn check_tool(
        &self,
        req: Request<Body>,
        caller: &Caller,
        started: Instant,
    ) -> Result<Request<Body>, Rejection> {
        let request_id = single(req.headers(), &REQUEST_ID);
        if let Some(target) = header_target(req.headers()) {
            self.check_target(&target, caller, request_id, started)?;
            return Ok(req);
        }
        let (parts, body) = req.into_parts();
        let bytes = self.collect(&parts.headers, body).await?;
        let request_id = single(&parts.headers, &REQUEST_ID);
        self.check_target(&tool_name::from_body(&bytes), caller, request_id, started)?;
        Ok(Request::from_parts(parts, Body::from(bytes)))
    }

    fn check_target(
        &self,
        target: &ToolTarget<'_>,
        caller: &Caller,
        request_id: Option<&str>,
        started: Instant,
    ) -> Result<(), Rejection> {
        let denied = |tool: Option<&str>, required: &ScopeSet| {
            self.observer.tool_call(&ToolCall {
                caller: Some(caller),
                tool,
                known_tool: false,
                required: Some(required),
                outcome: Outcome::Denied,
                reason: "insufficient_scope",
                latency: started.elapsed(),
                request_id,
                stage: Stage::Edge,
            })
        };
        match target {
            // Route scopes were checked already; rmcp refuses what is not a JSON object.
            ToolTarget::NotToolCall | ToolTarget::NotAnObject => Ok(()),
            ToolTarget::Tool(name) => match self.policy.check_tool(caller, name) {
                Ok(()) => Ok(()),
                // A hidden tool must look like a missing one: no challenge that would reveal
                // it. The wrapper answers it as the server answers an unknown tool.
                Err(crate::policy::PolicyError::Hidden) => Ok(()),
                Err(crate::policy::PolicyError::InsufficientScope { required }) => {
                    denied(Some(name), &required);
                    Err(Rejection::InsufficientScope { required })
                }
            },
            ToolTarget::Ambiguous => {
                let all = &self.all_tool_scopes;
                if self.policy.satisfies(&caller.scopes, all) {
                    Ok(())
                } else {
                    let required = self.policy.hierarchy().minimise(all);
                    denied(None, &required);
                    Err(Rejection::InsufficientScope { required })
                }
            }
        }
    }

    /// Rate limits and trusted proxies need the peer address, which only a server that provides
    /// `ConnectInfo<SocketAddr>` gives ([`crate::serve`] does). Without it they are not applied:
    /// say so once, loudly, instead of silently.
    fn warn_if_no_peer<B>(&self, req: &Request<B>) {
        use std::sync::atomic::Ordering;
        if self.needs_peer
            && peer_ip(req).is_none()
            && !self.warned_no_peer.swap(true, Ordering::Relaxed)
        {
            tracing::error!(
                "rate limits or trusted proxies are configured but the server does not provide \
                 the peer address: serve with gatehouse::serve (or \
                 into_make_service_with_connect_info::<SocketAddr>()); per-address limits are \
                 not applied and forwarded headers are not believed"
            );
        }
    }

    /// True when `Content-Length` declares more than `max_body_bytes`.
    fn declared_too_large(&self, headers: &HeaderMap) -> bool {
        headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > self.max_body_bytes as u64)
    }

    /// Reads the whole body, refusing more than `max_body_bytes` (413, like rmcp's own limit).
    async fn collect(&self, headers: &HeaderMap, body: Body) -> Result<Bytes, Rejection> {
        if self.declared_too_large(headers) {
            return Err(Rejection::PayloadTooLarge);
        }
        match Limited::new(body, self.max_body_bytes).collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
                Err(Rejection::PayloadTooLarge)
            }
            Err(_) => Err(Rejection::BodyUnreadable),
        }
    }

    fn after<B>(&self, resp: Response<B>, admitted: Admitted) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        if let Some(rejection) = transport_refusal(&resp) {
            return self.reject(&rejection);
        }
        if let (Some(sessions), Some(caller)) = (&self.sessions, &admitted.caller) {
            if let Some(id) = &admitted.delete_session {
                sessions.unbind(id);
            } else if let Some(id) = resp
                .headers()
                .get(MCP_SESSION_ID)
                .and_then(|v| v.to_str().ok())
            {
                sessions.bind(id, caller);
            }
        }
        resp.map(Body::new)
    }
}

fn rate_limited(e: RateLimitError) -> Rejection {
    match e {
        RateLimitError::Limited(r) => Rejection::RateLimited {
            retry_after: r.retry_after,
        },
        RateLimitError::Unavailable => Rejection::RateLimitUnavailable,
    }
}

/// The TCP peer's address, when the server provides `ConnectInfo<SocketAddr>`.
fn peer_ip<B>(req: &Request<B>) -> Option<IpAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

/// The refusal an error answer of the MCP service stands for, when that answer is not JSON
/// already (rmcp 3.11 answers its transport checks in plain text without a `Content-Type`).
/// The status is kept, except that a body rmcp could not read as one JSON-RPC message (its
/// `415` after the edge has checked the `Content-Type`) is the `400` MCP asks for.
fn transport_refusal<B>(resp: &Response<B>) -> Option<Rejection> {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(resp.headers()) {
        return None;
    }
    Some(match status {
        StatusCode::NOT_FOUND => Rejection::UnknownSession,
        StatusCode::METHOD_NOT_ALLOWED => Rejection::MethodNotAllowed {
            allow: resp
                .headers()
                .get(http::header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    ["GET, POST, DELETE", "GET, POST", "POST"]
                        .into_iter()
                        .find(|known| *known == v)
                }),
        },
        StatusCode::NOT_ACCEPTABLE => Rejection::NotAcceptable,
        StatusCode::PAYLOAD_TOO_LARGE => Rejection::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => Rejection::InvalidMessage,
        other => Rejection::Refused(other),
    })
}

/// `Accept` names both `application/json` and `text/event-stream` (media-type essences, any
/// number of header lines), as rmcp requires of a `POST`.
fn accepts_json_and_event_stream(headers: &HeaderMap) -> bool {
    let (mut json, mut sse) = (false, false);
    for value in headers.get_all(ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let essence = item.split(';').next().unwrap_or_default().trim();
            json |= essence.eq_ignore_ascii_case("application/json");
            sse |= essence.eq_ignore_ascii_case("text/event-stream");
        }
    }
    json && sse
}

/// The `Content-Type` is `application/json` (parameters aside).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim())
        .is_some_and(|essence| essence.eq_ignore_ascii_case("application/json"))
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim())
        .is_some_and(|essence| essence.eq_ignore_ascii_case("application/x-www-form-urlencoded"))
}

/// The single value of a header as text; `None` when absent, repeated or not text.
pub(crate) fn single<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    first.to_str().ok()
}

/// The target named by SEP-2243 headers, when the declared version makes them authoritative.
/// `None`: decide from the body. Public only for the fuzz targets
/// (`crates/gatehouse-fuzz-targets`), which check it against the body parse.
#[doc(hidden)]
pub fn header_target(headers: &HeaderMap) -> Option<ToolTarget<'_>> {
    let version = single(headers, &MCP_PROTOCOL_VERSION)?;
    if !tool_name::headers_are_authoritative(version) {
        return None;
    }
    tool_name::from_headers(single(headers, &MCP_METHOD), single(headers, &MCP_NAME))
}

/// A [`Layer`] that wraps a service in Gatehouse's guard, authentication and authorization.
#[derive(Clone)]
pub struct GatehouseLayer {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for GatehouseLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GatehouseLayer")
    }
}

impl<S> Layer<S> for GatehouseLayer {
    type Service = GatehouseService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GatehouseService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service produced by [`GatehouseLayer`].
#[derive(Clone)]
pub struct GatehouseService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> std::fmt::Debug for GatehouseService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GatehouseService")
    }
}

impl<S, B> Service<Request<Body>> for GatehouseService<S>
where
    S: Service<Request<Body>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        // The clone that was driven to readiness is the one that serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        Box::pin(async move {
            let (req, held) = crate::http::drain::hold(req);
            match shared.admit(req).await {
                Ok((req, admitted)) => {
                    let slot = req
                        .extensions()
                        .get::<crate::mcp::DependencySlot>()
                        .cloned();
                    let resp = inner.call(req).await?;
                    // A failure of the server's own dependency replaces its JSON-RPC error.
                    if let Some(failure) = slot.and_then(|s| s.get()) {
                        use crate::mcp::DependencyFailure;
                        let rejection = match failure {
                            DependencyFailure::Unavailable { retry_after } => {
                                Rejection::DependencyUnavailable { retry_after }
                            }
                            DependencyFailure::Refused => Rejection::DependencyRefused,
                        };
                        return Ok(shared.reject(&rejection));
                    }
                    Ok(shared.after(resp, admitted))
                }
                Err(rejection) => {
                    let mut resp = shared.reject(&rejection);
                    if let Some(held) = held {
                        held.settle(&mut resp).await;
                    }
                    Ok(resp)
                }
            }
        })
    }
}

/// axum middleware running only the Host/Origin guard (for the metadata route).
pub(crate) async fn guard_only(
    axum::extract::State(shared): axum::extract::State<Arc<Shared>>,
    req: Request<Body>,
    next: axum::middleware::Next,
) -> Result<Response<Body>, Infallible> {
    match shared.guard.check(&req) {
        Ok(()) => Ok(next.run(req).await),
        Err(rejection) => Ok(shared.reject(&rejection)),
    }
}
