//! The one place where refusals become HTTP responses: status codes, `WWW-Authenticate`
//! challenges, `Retry-After`, and tiny fixed bodies.
//!
//! Architecture invariant: verification and policy return typed errors; [`Challenges::render`]
//! turns every [`Rejection`] into a response in one exhaustive `match` (no wildcard arm), so a
//! new refusal cannot be added without deciding its status and challenge here.
//!
//! Wire decisions:
//! - Every `Bearer` challenge carries `resource_metadata` (RFC 9728 §5.1, spec-requirements A13)
//!   and parameters appear at most once, values quoted (RFC 6750 §3, E1).
//! - No credentials → `401` without `error` (RFC 6750 §3.1, A14) but with `scope` (A15).
//! - Malformed credentials → `400 error="invalid_request"` (OA21 §5.3.2, A20).
//! - Invalid token → `401 error="invalid_token"` (A16, RFC 9068 §4).
//! - Insufficient scope → `403 error="insufficient_scope", scope="<everything the operation
//!   needs>"` (A17, A18).
//! - Verification unavailable → `503` + `Retry-After` and **no** `WWW-Authenticate`: a challenge
//!   (even without `error`) invites clients to drop their token and re-authenticate, which turns
//!   an outage of the key or introspection endpoint into a login storm. RFC 9110 §11.6.1 only
//!   requires the header on `401`.
//! - Host not allowed → `421 Misdirected Request` (RFC 9110 §15.5.20: "the server is not able
//!   to produce a response for the target URI"). Unlike `403` it tells a browser that coalesced
//!   an HTTP/2 connection to retry on a fresh one, and it keeps Host refusals apart from Origin
//!   refusals in metrics. An unparseable or ambiguous Host is a plain `400` (RFC 9112 §3.2).
//! - Origin not allowed → `403` (MCP SHTTP26 §Security, B2).
//! - Foreign or unknown session → `404`, byte-identical to rmcp's own unknown-session answer so
//!   that "exists but belongs to someone else" cannot be told apart from "does not exist" (C9, D4).
//! - `offline_access` never appears in a challenge `scope` (AUTH26 §Refresh Tokens, A11).
//!
//! Bodies never carry claims, audiences, times, key ids or library messages; the reason code goes
//! to `tracing` (never the token).

use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONNECTION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};

use crate::caller::ScopeSet;
use crate::http::bearer::{BearerError, MalformedReason};
use crate::policy::PolicyError;
use crate::resource::ResourceUrl;
use crate::verify::dpop::DpopError;
use crate::verify::{InvalidReason, UnavailableReason, VerifyError};

/// The scope that must never be advertised (SEP-2207).
pub(crate) const OFFLINE_ACCESS: &str = "offline_access";

/// Default `Retry-After` on `503` when a token cannot be verified.
pub const DEFAULT_UNAVAILABLE_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Why a request was refused. HTTP-shaped, but free of header text: rendering is
/// [`Challenges::render`]'s job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// No bearer credential (no header, another scheme, or a query-string token only).
    MissingCredentials,
    /// Malformed credentials (empty token, several headers, bad characters, too large, sent two
    /// ways).
    Malformed(MalformedReason),
    /// The token was decided and refused.
    InvalidToken(InvalidReason),
    /// A DPoP-bound token came with a missing or bad proof (RFC 9449 §7.1): `401` with a
    /// `DPoP error="invalid_dpop_proof"` challenge.
    InvalidDpopProof(DpopError),
    /// The proof lacks a current server nonce (RFC 9449 §9): `401`, `use_dpop_nonce`, and this
    /// fresh nonce in `DPoP-Nonce` for the retry.
    UseDpopNonce(String),
    /// The token could not be decided right now.
    Unavailable(UnavailableReason),
    /// The token lacks scopes; `required` is everything the operation needs.
    InsufficientScope {
        /// All scopes the operation needs (minimised through the hierarchy).
        required: ScopeSet,
    },
    /// `Host` missing, repeated, unparseable, or contradicting the request target.
    MalformedHost,
    /// `Host` (or a trusted `X-Forwarded-Host`) names an authority this server does not serve.
    HostNotAllowed,
    /// A present `Origin` is not allowed.
    OriginNotAllowed,
    /// The `Mcp-Session-Id` is unknown or bound to another principal.
    UnknownSession,
    /// The body exceeds `max_body_bytes` (only read when a tool policy needs the tool name).
    PayloadTooLarge,
    /// The body could not be read (client went away, transport error).
    BodyUnreadable,
    /// Too many requests (for rate limiting).
    RateLimited {
        /// When the client may try again.
        retry_after: Duration,
    },
    /// The shared rate limits could not be checked (their backend did not answer in time) and
    /// are configured to fail closed ([`crate::policy::redis_rate_limit`]).
    RateLimitUnavailable,
    /// Every request permit is taken ([`crate::http::RequestLimits::max_concurrent_requests`]):
    /// refused at once rather than queued, since a queue only adds latency to an overload.
    Overloaded,
    /// No response head within [`crate::http::RequestLimits::request_timeout`].
    Timeout,
    /// A path this server does not serve.
    NotFound,
    /// The method is not served on the MCP endpoint; `allow` lists what is (rmcp's `Allow`).
    MethodNotAllowed {
        /// The methods served, as the `Allow` header lists them.
        allow: Option<&'static str>,
    },
    /// A `POST` whose `Accept` does not take both `application/json` and `text/event-stream`, or
    /// a `GET` that does not take `text/event-stream` (MCP SHTTP §Sending Messages).
    NotAcceptable,
    /// A `POST` whose `Content-Type` is not `application/json`.
    UnsupportedMediaType,
    /// A JSON body that is not one JSON-RPC message: unparseable, not a request, notification
    /// or response, or a batch (removed in 2025-06-18). Answered `400` with a JSON-RPC error
    /// without `id`, as MCP SHTTP §Sending Messages allows ("MAY comprise a JSON-RPC error
    /// response that has no id").
    InvalidMessage,
    /// Another refusal of the MCP service (rmcp) that came without a JSON body: the status is
    /// kept, the body replaced (an unsupported `MCP-Protocol-Version`, a missing session id).
    Refused(StatusCode),
    /// The server reported that something it depends on is down
    /// ([`crate::mcp::report_dependency_failure`]): `503` + `Retry-After`, never a `401`.
    DependencyUnavailable {
        /// When to try again.
        retry_after: Duration,
    },
    /// The server reported that something it depends on refused it (a gateway's upstream
    /// answering `401`/`403` to the gateway's own credential): `502`, never relayed as the
    /// client's `401`, which would send the client to re-authenticate for nothing.
    DependencyRefused,
}

impl Rejection {
    /// Stable, low-cardinality reason code for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::MissingCredentials => "request.no_credentials",
            Rejection::Malformed(r) => r.code(),
            Rejection::InvalidToken(r) => r.code(),
            Rejection::InvalidDpopProof(e) => e.code(),
            Rejection::UseDpopNonce(_) => "dpop.use_nonce",
            Rejection::Unavailable(r) => r.code(),
            Rejection::InsufficientScope { .. } => "policy.insufficient_scope",
            Rejection::MalformedHost => "guard.malformed_host",
            Rejection::HostNotAllowed => "guard.host_not_allowed",
            Rejection::OriginNotAllowed => "guard.origin_not_allowed",
            Rejection::UnknownSession => "session.unknown",
            Rejection::PayloadTooLarge => "request.body_too_large",
            Rejection::BodyUnreadable => "request.body_unreadable",
            Rejection::RateLimited { .. } => "rate_limited",
            Rejection::RateLimitUnavailable => "rate_limit.unavailable",
            Rejection::Overloaded => "limits.overloaded",
            Rejection::DependencyUnavailable { .. } => "dependency.unavailable",
            Rejection::DependencyRefused => "dependency.refused",
            Rejection::Timeout => "limits.timeout",
            Rejection::NotFound => "request.not_found",
            Rejection::MethodNotAllowed { .. } => "transport.method_not_allowed",
            Rejection::NotAcceptable => "transport.not_acceptable",
            Rejection::UnsupportedMediaType => "transport.unsupported_media_type",
            Rejection::InvalidMessage => "transport.invalid_message",
            Rejection::Refused(_) => "transport.refused",
        }
    }

    /// The HTTP status this rejection is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::MissingCredentials
            | Rejection::InvalidToken(_)
            | Rejection::InvalidDpopProof(_)
            | Rejection::UseDpopNonce(_) => StatusCode::UNAUTHORIZED,
            Rejection::Malformed(_) | Rejection::MalformedHost | Rejection::BodyUnreadable => {
                StatusCode::BAD_REQUEST
            }
            Rejection::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::InsufficientScope { .. } | Rejection::OriginNotAllowed => {
                StatusCode::FORBIDDEN
            }
            Rejection::HostNotAllowed => StatusCode::MISDIRECTED_REQUEST,
            Rejection::UnknownSession | Rejection::NotFound => StatusCode::NOT_FOUND,
            Rejection::Overloaded
            | Rejection::RateLimitUnavailable
            | Rejection::DependencyUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::DependencyRefused => StatusCode::BAD_GATEWAY,
            Rejection::Timeout => StatusCode::REQUEST_TIMEOUT,
            Rejection::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Rejection::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Rejection::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Rejection::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
            Rejection::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Rejection::InvalidMessage => StatusCode::BAD_REQUEST,
            Rejection::Refused(status) => *status,
        }
    }
}

impl From<VerifyError> for Rejection {
    fn from(e: VerifyError) -> Self {
        match e {
            VerifyError::Invalid(r) => Rejection::InvalidToken(r),
            VerifyError::Unavailable(r) => Rejection::Unavailable(r),
        }
    }
}

impl From<PolicyError> for Rejection {
    fn from(e: PolicyError) -> Self {
        match e {
            PolicyError::InsufficientScope { required } => {
                Rejection::InsufficientScope { required }
            }
            // Hidden means "does not exist". The edge lets `tools/call` of a hidden tool through
            // so that the server answers it exactly as an unknown tool (an HTTP 404 would tell
            // the two apart); nothing else can be hidden, so this arm is only the honest reading.
            PolicyError::Hidden => Rejection::NotFound,
        }
    }
}

impl From<BearerError> for Rejection {
    fn from(e: BearerError) -> Self {
        match e {
            BearerError::Missing => Rejection::MissingCredentials,
            BearerError::Malformed(r) => Rejection::Malformed(r),
        }
    }
}

const BODY_UNAUTHORIZED: &[u8] =
    br#"{"error":"unauthorized","error_description":"An access token is required"}"#;
const BODY_INVALID_REQUEST: &[u8] =
    br#"{"error":"invalid_request","error_description":"The request is malformed"}"#;
const BODY_INVALID_TOKEN: &[u8] =
    br#"{"error":"invalid_token","error_description":"The access token is invalid"}"#;
const BODY_INVALID_DPOP_PROOF: &[u8] =
    br#"{"error":"invalid_dpop_proof","error_description":"The DPoP proof is invalid"}"#;
/// RFC 9449 §8.1.
const DPOP_NONCE: http::HeaderName = http::HeaderName::from_static("dpop-nonce");
const BODY_USE_DPOP_NONCE: &[u8] = br#"{"error":"use_dpop_nonce","error_description":"The DPoP proof must carry the server's nonce"}"#;
const BODY_INSUFFICIENT_SCOPE: &[u8] = br#"{"error":"insufficient_scope","error_description":"The access token does not grant the required scope"}"#;
const BODY_UNAVAILABLE: &[u8] = br#"{"error":"temporarily_unavailable","error_description":"The access token cannot be verified right now"}"#;
const BODY_BAD_HOST: &[u8] = br#"{"error":"bad_request","error_description":"Bad Host header"}"#;
const BODY_HOST_NOT_ALLOWED: &[u8] =
    br#"{"error":"misdirected_request","error_description":"Host not allowed"}"#;
const BODY_ORIGIN_NOT_ALLOWED: &[u8] =
    br#"{"error":"forbidden","error_description":"Origin not allowed"}"#;
/// Also what rmcp's own unknown-session `404` becomes at the edge, so the two stay identical.
const BODY_UNKNOWN_SESSION: &[u8] =
    br#"{"error":"not_found","error_description":"Session not found"}"#;
const BODY_METHOD_NOT_ALLOWED: &[u8] =
    br#"{"error":"method_not_allowed","error_description":"Method not allowed"}"#;
const BODY_NOT_ACCEPTABLE: &[u8] = br#"{"error":"not_acceptable","error_description":"Accept must include application/json and text/event-stream"}"#;
const BODY_UNSUPPORTED_MEDIA_TYPE: &[u8] = br#"{"error":"unsupported_media_type","error_description":"Content-Type must be application/json"}"#;
/// JSON-RPC 2.0 §5.1 `-32600 Invalid Request`, without `id` (none can be read).
const BODY_INVALID_MESSAGE: &[u8] = br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid Request: the body must be one JSON-RPC message"}}"#;
const BODY_SERVER_ERROR: &[u8] =
    br#"{"error":"server_error","error_description":"The request could not be processed"}"#;
const BODY_REFUSED: &[u8] =
    br#"{"error":"invalid_request","error_description":"The request was refused"}"#;
const BODY_TOO_LARGE: &[u8] =
    br#"{"error":"payload_too_large","error_description":"The request body is too large"}"#;
const BODY_UNREADABLE: &[u8] =
    br#"{"error":"bad_request","error_description":"The request body could not be read"}"#;
const BODY_DEPENDENCY_UNAVAILABLE: &[u8] = br#"{"error":"temporarily_unavailable","error_description":"A service this server depends on is unavailable"}"#;
const BODY_DEPENDENCY_REFUSED: &[u8] =
    br#"{"error":"bad_gateway","error_description":"A service this server depends on refused the request"}"#;
const BODY_OVERLOADED: &[u8] =
    br#"{"error":"server_busy","error_description":"Too many requests in progress"}"#;
const BODY_TIMEOUT: &[u8] =
    br#"{"error":"request_timeout","error_description":"The request took too long"}"#;
const BODY_NOT_FOUND: &[u8] = br#"{"error":"not_found","error_description":"Not found"}"#;
const BODY_TEMPORARILY_UNAVAILABLE: &[u8] = br#"{"error":"temporarily_unavailable","error_description":"The service is temporarily unavailable"}"#;
const BODY_RATE_LIMITED: &[u8] =
    br#"{"error":"rate_limited","error_description":"Too many requests"}"#;

const DESC_INVALID_REQUEST: &str = "The request is malformed";
const DESC_INVALID_TOKEN: &str = "The access token is invalid";
const DESC_INVALID_DPOP_PROOF: &str = "The DPoP proof is invalid";
const DESC_USE_DPOP_NONCE: &str = "The DPoP proof must carry the server's nonce";
const DESC_INSUFFICIENT_SCOPE: &str = "The access token does not grant the required scope";

/// Challenge header values that do not vary per request, computed once at build time (they are
/// on the hot path of every refused request), plus what is needed for the ones that vary.
#[derive(Debug, Clone)]
pub struct Challenges {
    /// `resource_metadata="…"`, ready to append.
    resource_metadata_param: String,
    missing: HeaderValue,
    invalid_request: HeaderValue,
    invalid_token: HeaderValue,
    unavailable_retry_after: HeaderValue,
    /// With DPoP on (RFC 9449 §7.1).
    dpop: Option<DpopChallenges>,
}

#[derive(Debug, Clone)]
struct DpopChallenges {
    /// `DPoP algs="…"`, sent beside each `Bearer` challenge of a `401`.
    plain: HeaderValue,
    /// `error="invalid_dpop_proof"`.
    invalid_proof: HeaderValue,
    /// `error="use_dpop_nonce"` (§9).
    use_nonce: HeaderValue,
}

/// A challenge could not be built (a value that cannot travel in a header).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot build a WWW-Authenticate challenge from the configured resource or scopes")]
pub struct ChallengeBuildError;

impl Challenges {
    /// Precomputes the challenges for `resource`. `scopes` is what a `401` names as needed (A15:
    /// the route scopes, or `scopes_supported` when the route needs none); `offline_access` is
    /// dropped. `unavailable_retry_after` is sent with `503`.
    pub fn new(
        resource: &ResourceUrl,
        scopes: &ScopeSet,
        unavailable_retry_after: Duration,
    ) -> Result<Self, ChallengeBuildError> {
        let resource_metadata_param =
            format!("resource_metadata={}", quote(&resource.metadata_url()));
        let scope_param = scope_param(scopes);
        let header = |error: Option<(&str, &str)>| -> Result<HeaderValue, ChallengeBuildError> {
            build_challenge(error, &resource_metadata_param, scope_param.as_deref())
        };
        Ok(Self {
            missing: header(None)?,
            invalid_request: header(Some(("invalid_request", DESC_INVALID_REQUEST)))?,
            invalid_token: header(Some(("invalid_token", DESC_INVALID_TOKEN)))?,
            unavailable_retry_after: HeaderValue::from(retry_after_secs(unavailable_retry_after)),
            resource_metadata_param,
            dpop: None,
        })
    }

    /// Also challenges for DPoP (RFC 9449 §7.1), naming the proof algorithms `algs`.
    pub fn with_dpop(
        mut self,
        algs: &[jsonwebtoken::Algorithm],
    ) -> Result<Self, ChallengeBuildError> {
        let algs: Vec<String> = algs.iter().map(|a| format!("{a:?}")).collect();
        let algs = format!("algs={}", quote(&algs.join(" ")));
        let header = |s: String| HeaderValue::try_from(s).map_err(|_| ChallengeBuildError);
        let error = |code: &str, description: &str| {
            header(format!(
                "DPoP error={}, error_description={}, {algs}",
                quote(code),
                quote(description)
            ))
        };
        self.dpop = Some(DpopChallenges {
            plain: header(format!("DPoP {algs}"))?,
            invalid_proof: error("invalid_dpop_proof", DESC_INVALID_DPOP_PROOF)?,
            use_nonce: error("use_dpop_nonce", DESC_USE_DPOP_NONCE)?,
        });
        Ok(self)
    }

    /// The challenge sent with `401` when no credentials were presented.
    pub fn missing_credentials(&self) -> &HeaderValue {
        &self.missing
    }

    /// Renders `rejection`, logging its reason code.
    pub fn render(&self, rejection: &Rejection) -> Response<Body> {
        log(rejection);
        let status = rejection.status();
        let mut builder = Response::builder().status(status);
        let body: &'static [u8] = match rejection {
            Rejection::MissingCredentials => {
                builder = builder.header(WWW_AUTHENTICATE, self.missing.clone());
                BODY_UNAUTHORIZED
            }
            Rejection::Malformed(_) => {
                builder = builder.header(WWW_AUTHENTICATE, self.invalid_request.clone());
                BODY_INVALID_REQUEST
            }
            Rejection::InvalidToken(_) => {
                builder = builder.header(WWW_AUTHENTICATE, self.invalid_token.clone());
                BODY_INVALID_TOKEN
            }
            Rejection::InvalidDpopProof(_) => {
                if let Some(d) = &self.dpop {
                    builder = builder.header(WWW_AUTHENTICATE, d.invalid_proof.clone());
                }
                BODY_INVALID_DPOP_PROOF
            }
            Rejection::UseDpopNonce(nonce) => {
                if let Some(d) = &self.dpop {
                    builder = builder.header(WWW_AUTHENTICATE, d.use_nonce.clone());
                }
                // A base64url nonce of ours is always a valid header value.
                if let Ok(v) = HeaderValue::try_from(nonce.as_str()) {
                    builder = builder.header(DPOP_NONCE, v);
                }
                BODY_USE_DPOP_NONCE
            }
            Rejection::Unavailable(_) => {
                builder = builder.header(RETRY_AFTER, self.unavailable_retry_after.clone());
                BODY_UNAVAILABLE
            }
            Rejection::InsufficientScope { required } => {
                // Varies with the operation: built only on this (refusal) path.
                let challenge = build_challenge(
                    Some(("insufficient_scope", DESC_INSUFFICIENT_SCOPE)),
                    &self.resource_metadata_param,
                    scope_param(required).as_deref(),
                );
                match challenge {
                    Ok(v) => builder = builder.header(WWW_AUTHENTICATE, v),
                    // Unreachable with validated scopes; fall back to a challenge without them.
                    Err(_) => builder = builder.header(WWW_AUTHENTICATE, self.missing.clone()),
                }
                BODY_INSUFFICIENT_SCOPE
            }
            Rejection::MalformedHost => BODY_BAD_HOST,
            Rejection::HostNotAllowed => BODY_HOST_NOT_ALLOWED,
            Rejection::OriginNotAllowed => BODY_ORIGIN_NOT_ALLOWED,
            Rejection::UnknownSession => BODY_UNKNOWN_SESSION,
            Rejection::PayloadTooLarge => BODY_TOO_LARGE,
            Rejection::BodyUnreadable => BODY_UNREADABLE,
            Rejection::RateLimited { retry_after } => {
                builder = builder.header(
                    RETRY_AFTER,
                    HeaderValue::from(retry_after_secs(*retry_after)),
                );
                BODY_RATE_LIMITED
            }
            Rejection::Overloaded => {
                builder = builder.header(RETRY_AFTER, HeaderValue::from_static("1"));
                BODY_OVERLOADED
            }
            Rejection::RateLimitUnavailable => {
                // A backend outage is usually short (a restart, a failover); one second keeps
                // clients from hammering it without making them wait long after it is back.
                builder = builder.header(RETRY_AFTER, HeaderValue::from_static("1"));
                BODY_TEMPORARILY_UNAVAILABLE
            }
            Rejection::DependencyUnavailable { retry_after } => {
                builder = builder.header(
                    RETRY_AFTER,
                    HeaderValue::from(retry_after_secs(*retry_after)),
                );
                BODY_DEPENDENCY_UNAVAILABLE
            }
            Rejection::DependencyRefused => BODY_DEPENDENCY_REFUSED,
            Rejection::Timeout => {
                // The request may still be running; the connection is not reused for another.
                builder = builder.header(CONNECTION, HeaderValue::from_static("close"));
                BODY_TIMEOUT
            }
            Rejection::NotFound => BODY_NOT_FOUND,
            Rejection::MethodNotAllowed { allow } => {
                if let Some(allow) = allow {
                    builder = builder.header(http::header::ALLOW, HeaderValue::from_static(allow));
                }
                BODY_METHOD_NOT_ALLOWED
            }
            Rejection::NotAcceptable => BODY_NOT_ACCEPTABLE,
            Rejection::UnsupportedMediaType => BODY_UNSUPPORTED_MEDIA_TYPE,
            Rejection::InvalidMessage => BODY_INVALID_MESSAGE,
            Rejection::Refused(status) if status.is_server_error() => BODY_SERVER_ERROR,
            Rejection::Refused(_) => BODY_REFUSED,
        };
        // RFC 9449 §7.1: where DPoP is accepted, every 401 challenges for it too (a client
        // learns the scheme and the algorithms from the first refusal).
        if let (Some(d), Rejection::MissingCredentials | Rejection::InvalidToken(_)) =
            (&self.dpop, rejection)
        {
            builder = builder.header(WWW_AUTHENTICATE, d.plain.clone());
        }
        builder
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            // Refusals depend on the credentials; no shared cache may keep them.
            .header(CACHE_CONTROL, HeaderValue::from_static("no-store"))
            .body(Body::from(Bytes::from_static(body)))
            .unwrap_or_default()
    }
}

fn log(rejection: &Rejection) {
    let reason = rejection.reason();
    let status = rejection.status().as_u16();
    match rejection {
        // Expected traffic (first contact of every client, expiring tokens): debug only.
        Rejection::MissingCredentials
        | Rejection::InvalidToken(_)
        | Rejection::UnknownSession
        | Rejection::NotFound
        | Rejection::MethodNotAllowed { .. } => {
            tracing::debug!(reason, status, "request refused")
        }
        Rejection::Malformed(_)
        | Rejection::InvalidDpopProof(_)
        | Rejection::UseDpopNonce(_)
        | Rejection::InsufficientScope { .. }
        | Rejection::MalformedHost
        | Rejection::HostNotAllowed
        | Rejection::OriginNotAllowed
        | Rejection::PayloadTooLarge
        | Rejection::BodyUnreadable
        | Rejection::RateLimited { .. }
        | Rejection::Timeout
        | Rejection::NotAcceptable
        | Rejection::UnsupportedMediaType
        | Rejection::InvalidMessage
        | Rejection::Refused(_) => tracing::info!(reason, status, "request refused"),
        // An outage of the verifier's dependencies: operators must see it.
        Rejection::Unavailable(_)
        | Rejection::Overloaded
        | Rejection::RateLimitUnavailable
        | Rejection::DependencyUnavailable { .. }
        | Rejection::DependencyRefused => {
            tracing::warn!(reason, status, "request refused")
        }
    }
}

fn build_challenge(
    error: Option<(&str, &str)>,
    resource_metadata_param: &str,
    scope_param: Option<&str>,
) -> Result<HeaderValue, ChallengeBuildError> {
    let mut s = String::with_capacity(128);
    s.push_str("Bearer ");
    if let Some((code, description)) = error {
        s.push_str("error=");
        s.push_str(&quote(code));
        s.push_str(", error_description=");
        s.push_str(&quote(description));
        s.push_str(", ");
    }
    s.push_str(resource_metadata_param);
    if let Some(scope) = scope_param {
        s.push_str(", ");
        s.push_str(scope);
    }
    HeaderValue::try_from(s).map_err(|_| ChallengeBuildError)
}

/// `scope="a b"`, without `offline_access`; `None` when nothing remains (no empty parameters).
fn scope_param(scopes: &ScopeSet) -> Option<String> {
    let kept: ScopeSet = scopes
        .iter()
        .filter(|s| s.as_str() != OFFLINE_ACCESS)
        .cloned()
        .collect();
    (!kept.is_empty()).then(|| format!("scope={}", quote(&kept.to_space_separated())))
}

/// An RFC 9110 §5.6.4 quoted-string. Scopes and URLs never contain `"` or `\` (validated
/// elsewhere), but escaping keeps the header well-formed whatever the input.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `Retry-After` in whole seconds, rounded up, at least 1 (RFC 9110 §10.2.3).
fn retry_after_secs(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    fn challenges(route: &str) -> Challenges {
        let r = ResourceUrl::parse("https://mcp.example.com/mcp").unwrap();
        Challenges::new(
            &r,
            &ScopeSet::from_space_separated(route),
            Duration::from_millis(2500),
        )
        .unwrap()
    }

    async fn rendered(
        c: &Challenges,
        r: Rejection,
    ) -> (u16, Option<String>, Option<String>, String) {
        let resp = c.render(&r);
        // Every refusal is JSON that nobody may cache.
        assert_eq!(resp.headers()[CONTENT_TYPE], "application/json", "{r:?}");
        assert_eq!(resp.headers()[CACHE_CONTROL], "no-store", "{r:?}");
        if let Rejection::MethodNotAllowed { allow: Some(allow) } = &r {
            assert_eq!(resp.headers()[http::header::ALLOW], *allow);
        }
        if r == Rejection::Timeout {
            // The request may still be running: its connection is not reused.
            assert_eq!(resp.headers()[CONNECTION], "close");
        }
        let status = resp.status().as_u16();
        let h = |n| {
            resp.headers()
                .get(n)
                .map(|v: &HeaderValue| v.to_str().unwrap().to_owned())
        };
        let (www, retry) = (h(WWW_AUTHENTICATE), h(RETRY_AFTER));
        assert!(resp.headers().get_all(WWW_AUTHENTICATE).iter().count() <= 1);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            www,
            retry,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    const RM: &str =
        r#"resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp""#;

    /// (rejection, status, WWW-Authenticate, Retry-After, body)
    type Case<'a> = (Rejection, u16, Option<String>, Option<&'a str>, &'a str);

    // A13, A14, A15, A16, A17, A18, A20, E1, E2, E3, B2, C9: exact wire strings.
    #[tokio::test]
    async fn every_rejection_renders_exact_status_header_and_body() {
        let c = challenges("invoices:read offline_access");
        let required = ScopeSet::from_space_separated("invoices:write admin");
        let cases: Vec<Case<'_>> = vec![
            (
                Rejection::MissingCredentials,
                401,
                Some(format!(r#"Bearer {RM}, scope="invoices:read""#)),
                None,
                r#"{"error":"unauthorized","error_description":"An access token is required"}"#,
            ),
            (
                Rejection::Malformed(MalformedReason::EmptyToken),
                400,
                Some(format!(
                    r#"Bearer error="invalid_request", error_description="The request is malformed", {RM}, scope="invoices:read""#
                )),
                None,
                r#"{"error":"invalid_request","error_description":"The request is malformed"}"#,
            ),
            (
                Rejection::InvalidToken(InvalidReason::Expired),
                401,
                Some(format!(
                    r#"Bearer error="invalid_token", error_description="The access token is invalid", {RM}, scope="invoices:read""#
                )),
                None,
                r#"{"error":"invalid_token","error_description":"The access token is invalid"}"#,
            ),
            // Only reachable with DPoP on (then with its challenge: tests/dpop.rs).
            (
                Rejection::InvalidDpopProof(DpopError::Replay),
                401,
                None,
                None,
                r#"{"error":"invalid_dpop_proof","error_description":"The DPoP proof is invalid"}"#,
            ),
            (
                Rejection::Unavailable(UnavailableReason::KeysUnavailable),
                503,
                None,
                Some("3"),
                r#"{"error":"temporarily_unavailable","error_description":"The access token cannot be verified right now"}"#,
            ),
            (
                Rejection::InsufficientScope { required },
                403,
                Some(format!(
                    r#"Bearer error="insufficient_scope", error_description="The access token does not grant the required scope", {RM}, scope="admin invoices:write""#
                )),
                None,
                r#"{"error":"insufficient_scope","error_description":"The access token does not grant the required scope"}"#,
            ),
            (
                Rejection::MalformedHost,
                400,
                None,
                None,
                r#"{"error":"bad_request","error_description":"Bad Host header"}"#,
            ),
            (
                Rejection::HostNotAllowed,
                421,
                None,
                None,
                r#"{"error":"misdirected_request","error_description":"Host not allowed"}"#,
            ),
            (
                Rejection::OriginNotAllowed,
                403,
                None,
                None,
                r#"{"error":"forbidden","error_description":"Origin not allowed"}"#,
            ),
            (
                Rejection::UnknownSession,
                404,
                None,
                None,
                r#"{"error":"not_found","error_description":"Session not found"}"#,
            ),
            (
                Rejection::PayloadTooLarge,
                413,
                None,
                None,
                r#"{"error":"payload_too_large","error_description":"The request body is too large"}"#,
            ),
            (
                Rejection::BodyUnreadable,
                400,
                None,
                None,
                r#"{"error":"bad_request","error_description":"The request body could not be read"}"#,
            ),
            (
                Rejection::RateLimited {
                    retry_after: Duration::from_secs(7),
                },
                429,
                None,
                Some("7"),
                r#"{"error":"rate_limited","error_description":"Too many requests"}"#,
            ),
            (
                Rejection::Overloaded,
                503,
                None,
                Some("1"),
                r#"{"error":"server_busy","error_description":"Too many requests in progress"}"#,
            ),
            (
                Rejection::RateLimitUnavailable,
                503,
                None,
                Some("1"),
                r#"{"error":"temporarily_unavailable","error_description":"The service is temporarily unavailable"}"#,
            ),
            (
                Rejection::Timeout,
                408,
                None,
                None,
                r#"{"error":"request_timeout","error_description":"The request took too long"}"#,
            ),
            (
                Rejection::NotFound,
                404,
                None,
                None,
                r#"{"error":"not_found","error_description":"Not found"}"#,
            ),
            (
                Rejection::MethodNotAllowed {
                    allow: Some("POST"),
                },
                405,
                None,
                None,
                r#"{"error":"method_not_allowed","error_description":"Method not allowed"}"#,
            ),
            (
                Rejection::NotAcceptable,
                406,
                None,
                None,
                r#"{"error":"not_acceptable","error_description":"Accept must include application/json and text/event-stream"}"#,
            ),
            (
                Rejection::UnsupportedMediaType,
                415,
                None,
                None,
                r#"{"error":"unsupported_media_type","error_description":"Content-Type must be application/json"}"#,
            ),
            (
                Rejection::InvalidMessage,
                400,
                None,
                None,
                r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid Request: the body must be one JSON-RPC message"}}"#,
            ),
            (
                Rejection::Refused(StatusCode::BAD_REQUEST),
                400,
                None,
                None,
                r#"{"error":"invalid_request","error_description":"The request was refused"}"#,
            ),
            (
                Rejection::Refused(StatusCode::INTERNAL_SERVER_ERROR),
                500,
                None,
                None,
                r#"{"error":"server_error","error_description":"The request could not be processed"}"#,
            ),
            (
                Rejection::DependencyUnavailable {
                    retry_after: Duration::from_millis(2500),
                },
                503,
                None,
                Some("3"),
                r#"{"error":"temporarily_unavailable","error_description":"A service this server depends on is unavailable"}"#,
            ),
            (
                Rejection::DependencyRefused,
                502,
                None,
                None,
                r#"{"error":"bad_gateway","error_description":"A service this server depends on refused the request"}"#,
            ),
        ];
        for (rejection, status, www, retry, body) in cases {
            let name = format!("{rejection:?}");
            let got = rendered(&c, rejection).await;
            assert_eq!(
                got,
                (status, www, retry.map(str::to_owned), body.to_owned()),
                "{name}"
            );
        }
    }

    // A11: offline_access never appears in a challenge; no empty scope parameter.
    #[tokio::test]
    async fn offline_access_and_empty_scopes_are_left_out() {
        let c = challenges("offline_access");
        let (_, www, _, _) = rendered(&c, Rejection::MissingCredentials).await;
        assert_eq!(www.unwrap(), format!("Bearer {RM}"));
        let required = ScopeSet::from_space_separated("offline_access invoices:write");
        let (_, www, _, _) = rendered(&c, Rejection::InsufficientScope { required }).await;
        assert!(!www.unwrap().contains("offline_access"));
    }

    // E1: each parameter at most once, every challenge has resource_metadata.
    #[tokio::test]
    async fn challenge_parameters_are_unique() {
        let c = challenges("a b");
        for r in [
            Rejection::MissingCredentials,
            Rejection::Malformed(MalformedReason::TooLarge),
            Rejection::InvalidToken(InvalidReason::BadSignature),
            Rejection::InsufficientScope {
                required: ScopeSet::from_space_separated("c"),
            },
        ] {
            let (_, www, _, _) = rendered(&c, r).await;
            let www = www.unwrap();
            for p in [
                "error=",
                "error_description=",
                "scope=",
                "resource_metadata=",
            ] {
                assert!(www.matches(&format!(" {p}")).count() <= 1, "{www}");
            }
            assert!(www.contains("resource_metadata=\"https://"), "{www}");
        }
    }

    #[test]
    fn quoting_and_retry_after_rounding() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(30)), 30);
    }

    #[test]
    fn verify_and_policy_errors_map_to_rejections() {
        let r: Rejection = VerifyError::Invalid(InvalidReason::AudienceMismatch).into();
        assert_eq!((r.status().as_u16(), r.reason()), (401, "invalid.audience"));
        let r: Rejection =
            VerifyError::Unavailable(UnavailableReason::IntrospectionUnreachable).into();
        assert_eq!(
            (r.status().as_u16(), r.reason()),
            (503, "unavailable.introspection")
        );
        let r: Rejection = BearerError::Missing.into();
        assert_eq!(r, Rejection::MissingCredentials);
    }
}
