//! Authentication: turning a bearer token into a verified [`Caller`], or a reason why not.
//!
//! HTTP-agnostic by design: nothing here knows status codes or headers. The HTTP edge
//! ([`crate::http`]) maps [`VerifyError`] to responses in one exhaustive match.
//!
//! Pieces, in the order a token meets them:
//! - [`cache`]: the verified-token cache (exact-token hits, never past `exp`, bounded);
//! - [`chain`]: routes a JWT to the verifier of its `iss`, an opaque token to introspection;
//! - [`jwt`] + [`jwks`] + [`discovery`]: local JWT verification against the issuer's keys;
//! - [`introspection`]: RFC 7662 for opaque tokens;
//! - [`fetch`]: bounded HTTP fetches (timeouts, size caps, https outside loopback).

use std::future::Future;
use std::pin::Pin;

use crate::caller::{AccessToken, Caller};

pub mod cache;
pub mod chain;
pub mod discovery;
pub mod dpop;
pub mod fetch;
pub mod introspection;
pub mod jwks;
pub mod jwt;

/// A boxed, sendable future, the return type of [`TokenVerifier::verify`] (object safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Verifies an access token and returns who it speaks for.
///
/// Implementations decide only on the token; they never see the HTTP request.
pub trait TokenVerifier: Send + Sync + 'static {
    /// Verifies `token`.
    fn verify<'a>(&'a self, token: &'a AccessToken) -> BoxFuture<'a, Result<Caller, VerifyError>>;

    /// Decides `token` without reaching outside the process, when it can: a JWT whose key is
    /// held, a token refused by its shape. `None` means deciding needs the authorization server
    /// (introspection, a key refresh for an unknown `kid`); [`TokenVerifier::verify`] then does.
    ///
    /// The edge meters only those verifications per source address
    /// ([`crate::policy::rate_limit`]), so what is decided here is never refused by that limit.
    /// Default: `None` — a verifier that does not say is treated as reaching out.
    fn verify_locally(&self, token: &AccessToken) -> Option<Result<Caller, VerifyError>> {
        let _ = token;
        None
    }

    /// True once the verifier can decide tokens (for JWT: keys loaded). Drives `/readyz`.
    fn ready(&self) -> bool {
        true
    }
}

/// Why a token was not accepted. The client never sees this; it goes to logs and metrics through
/// [`VerifyError::reason`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The token was decided and is not acceptable → `401 invalid_token`.
    #[error("invalid token: {0}")]
    Invalid(#[from] InvalidReason),
    /// The token could not be decided (keys or introspection unreachable) → `503` + `Retry-After`.
    /// Fail closed, but do not send clients into a re-authentication storm with a 401.
    #[error("token cannot be verified now: {0}")]
    Unavailable(#[from] UnavailableReason),
}

impl VerifyError {
    /// Stable, low-cardinality reason code for logs and metrics (`invalid.expired`, …).
    pub fn reason(&self) -> &'static str {
        match self {
            VerifyError::Invalid(r) => r.code(),
            VerifyError::Unavailable(r) => r.code(),
        }
    }
}

/// A token that was decided and refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidReason {
    /// Not a well-formed JWT / not decodable / bad base64 / bad JSON.
    #[error("malformed token")]
    Malformed,
    /// `alg` not allowed by configuration or not matching the key (includes `none`, HMAC).
    #[error("algorithm not allowed")]
    AlgorithmNotAllowed,
    /// Header `typ` not in the accepted list (RFC 9068 §4).
    #[error("token type not allowed")]
    TypeNotAllowed,
    /// Header carries a parameter that is refused outright (e.g. Entra `nonce`, `crit`).
    #[error("forbidden header parameter")]
    ForbiddenHeader,
    /// `iss` is not a configured issuer.
    #[error("unknown issuer")]
    UnknownIssuer,
    /// No key with this `kid` after a refresh (or no `kid` and no unambiguous key).
    #[error("unknown signing key")]
    UnknownKey,
    /// Signature did not verify.
    #[error("bad signature")]
    BadSignature,
    /// `exp` is in the past (beyond leeway).
    #[error("expired")]
    Expired,
    /// `nbf` is in the future (beyond leeway).
    #[error("not yet valid")]
    NotYetValid,
    /// `iat` is in the future (beyond leeway).
    #[error("issued in the future")]
    IssuedInFuture,
    /// A required claim (`exp`, `iss`, `aud`, …) is missing or has the wrong type.
    #[error("missing or invalid required claim")]
    MissingClaim,
    /// `aud` does not name this resource (RFC 8707, MCP audience binding).
    #[error("audience mismatch")]
    AudienceMismatch,
    /// `iss` does not equal the issuer whose verifier handled the token.
    #[error("issuer mismatch")]
    IssuerMismatch,
    /// Introspection said `active: false`.
    #[error("inactive")]
    Inactive,
    /// Token larger than the configured cap.
    #[error("token too large")]
    TooLarge,
    /// A DPoP-bound token (`cnf.jkt`) sent as `Bearer` (RFC 9449 §7.2: it must come with a
    /// proof).
    #[error("DPoP-bound token sent as Bearer")]
    BoundTokenAsBearer,
    /// A `Bearer` token from an issuer configured with `dpop = "required"`.
    #[error("DPoP required")]
    DpopRequired,
    /// A token sent with the `DPoP` scheme that is not DPoP-bound, or from an issuer that does
    /// not take DPoP.
    #[error("token not DPoP-bound")]
    NotDpopBound,
}

impl InvalidReason {
    /// Stable reason code.
    pub fn code(self) -> &'static str {
        match self {
            InvalidReason::Malformed => "invalid.malformed",
            InvalidReason::AlgorithmNotAllowed => "invalid.algorithm",
            InvalidReason::TypeNotAllowed => "invalid.typ",
            InvalidReason::ForbiddenHeader => "invalid.header",
            InvalidReason::UnknownIssuer => "invalid.issuer_unknown",
            InvalidReason::UnknownKey => "invalid.kid_unknown",
            InvalidReason::BadSignature => "invalid.signature",
            InvalidReason::Expired => "invalid.expired",
            InvalidReason::NotYetValid => "invalid.nbf",
            InvalidReason::IssuedInFuture => "invalid.iat",
            InvalidReason::MissingClaim => "invalid.claim_missing",
            InvalidReason::AudienceMismatch => "invalid.audience",
            InvalidReason::IssuerMismatch => "invalid.issuer_mismatch",
            InvalidReason::Inactive => "invalid.inactive",
            InvalidReason::TooLarge => "invalid.too_large",
            InvalidReason::BoundTokenAsBearer => "invalid.dpop_bound_as_bearer",
            InvalidReason::DpopRequired => "invalid.dpop_required",
            InvalidReason::NotDpopBound => "invalid.not_dpop_bound",
        }
    }
}

/// A token that could not be decided right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UnavailableReason {
    /// No usable keys for the issuer (never loaded, or older than the maximum staleness), or a
    /// refresh needed to decide an unknown `kid` failed.
    #[error("signing keys unavailable")]
    KeysUnavailable,
    /// The introspection endpoint could not be reached or timed out.
    #[error("introspection endpoint unreachable")]
    IntrospectionUnreachable,
    /// The introspection endpoint answered with an error status or an unparseable body.
    #[error("introspection endpoint answered badly")]
    IntrospectionBadResponse,
}

impl UnavailableReason {
    /// Stable reason code.
    pub fn code(self) -> &'static str {
        match self {
            UnavailableReason::KeysUnavailable => "unavailable.keys",
            UnavailableReason::IntrospectionUnreachable => "unavailable.introspection",
            UnavailableReason::IntrospectionBadResponse => "unavailable.introspection_response",
        }
    }
}
