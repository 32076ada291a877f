//! Request limits and the per-request plumbing that [`crate::Gatehouse::mount`] puts around the
//! protected routes: request ids, the `request` span, `Authorization` marked sensitive, a
//! concurrency limit, a request timeout, and `404` for unknown paths — each refusal rendered by
//! [`crate::http::challenge`] like every other.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tokio::sync::Semaphore;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::{DefaultOnRequest, DefaultOnResponse, TraceLayer};

use crate::http::challenge::Rejection;
use crate::http::layer::Shared;
use crate::observe::Route;
use crate::resource::ResourceUrl;

/// Default cap on request bodies: rmcp 3.11's default `max_request_body_bytes` (4 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Limits on the requests a mounted server processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Requests processed at once; more get `503` + `Retry-After: 1` at once (no queueing: a
    /// queue only adds latency to an overload). Default 1024.
    pub max_concurrent_requests: usize,
    /// Time from request head to response head; past it the request gets `408` and the
    /// connection is closed. Streamed response bodies (SSE) are not cut. Default 30 s.
    pub request_timeout: Duration,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            max_concurrent_requests: 1024,
            request_timeout: Duration::from_secs(30),
        }
    }
}

struct Limits {
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
    request_timeout: Duration,
    mcp_path: String,
    metadata_path: String,
}

/// `router` with the limits, `404` fallback and request plumbing, outermost last: request id →
/// sensitive headers → span → propagate id → limits → routes.
pub(crate) fn wrap(
    router: Router,
    shared: Arc<Shared>,
    resource: &ResourceUrl,
    limits: RequestLimits,
) -> Router {
    let fallback_shared = shared.clone();
    let state = Arc::new(Limits {
        shared,
        permits: Arc::new(Semaphore::new(limits.max_concurrent_requests)),
        request_timeout: limits.request_timeout,
        mcp_path: resource.path().to_owned(),
        metadata_path: resource.metadata_path(),
    });
    router
        .fallback(move || {
            let response = fallback_shared.reject(&Rejection::NotFound);
            async move { response }
        })
        .layer(axum::middleware::from_fn_with_state(state, limit))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &http::Request<axum::body::Body>| request_span(req))
                .on_request(DefaultOnRequest::new().level(tracing::Level::DEBUG))
                .on_response(DefaultOnResponse::new().level(tracing::Level::DEBUG))
                // Refusals are logged (with their reason) by the edge; no second line.
                .on_failure(()),
        )
        .layer(SetSensitiveRequestHeadersLayer::new([
            http::header::AUTHORIZATION,
        ]))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// The span of one HTTP request: `request_id` (set or propagated by the outer layer, so always
/// present), method and path. Info level, so that every line a request logs at info or above
/// names it. Never the query string (where a careless client may put `access_token`) and never
/// headers.
pub fn request_span<B>(req: &http::Request<B>) -> tracing::Span {
    let id = req
        .headers()
        .get(crate::mcp::REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!(
        "request",
        request_id = id,
        method = %req.method(),
        path = req.uri().path(),
    )
}

async fn limit(State(l): State<Arc<Limits>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let route = if path == l.mcp_path {
        Route::Mcp
    } else if path == l.metadata_path {
        Route::Metadata
    } else {
        Route::Other
    };
    let observer = &l.shared.observer;
    let (response, started) = match l.permits.clone().try_acquire_owned() {
        Err(_) => (l.shared.reject(&Rejection::Overloaded), false),
        Ok(_permit) => {
            observer.request_started();
            match tokio::time::timeout(l.request_timeout, next.run(req)).await {
                Ok(r) => (r, true),
                Err(_) => (l.shared.reject(&Rejection::Timeout), true),
            }
        }
    };
    observer.request_finished(route, response.status().as_u16(), started);
    response
}
