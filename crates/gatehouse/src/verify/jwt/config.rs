//! Configuration of the JWT verifier for one issuer: [`JwtIssuerConfig`], [`TypPolicy`],
//! [`HmacSecret`], the defaults and limits, and the errors of a configuration that cannot work.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, AlgorithmFamily};
use url::Url;

use crate::verify::discovery::DiscoveryError;
use crate::verify::fetch::{FetchConfig, FetchError};
use crate::verify::jwks::JwksConfig;

/// Algorithms accepted by default: RSA PKCS#1 v1.5 and PSS, ECDSA P-256/P-384, Ed25519.
pub const DEFAULT_ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Default clock-skew allowance for `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// Largest accepted leeway (RFC 9068 §4: "a few minutes" at most).
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// Largest token accepted by default, in bytes: the crate's one default
/// ([`crate::DEFAULT_MAX_TOKEN_BYTES`]). Real access tokens are 1–4 KiB.
pub use crate::DEFAULT_MAX_TOKEN_BYTES;

/// Which header `typ` values are accepted.
///
/// The default is strict RFC 9068 §4: `at+jwt` or `application/at+jwt` (case-insensitive).
/// Most identity providers do not emit that (idp-shapes §0.1: Entra, Keycloak by default, Auth0's
/// default dialect, ZITADEL and Hydra send `JWT`; Okta custom AS and Cognito send none), so the
/// two switches below are **explicit IdP-compatibility options**. They weaken the protection
/// against cross-JWT confusion (RFC 8725 §3.11, spec row E13: an OIDC ID token of the same issuer
/// looks like an access token), which then rests on the audience check alone. A warning is
/// logged when either is on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TypPolicy {
    /// Also accept `typ: JWT` (case-insensitive, with or without the `application/` prefix).
    pub accept_jwt: bool,
    /// Also accept a header without `typ`.
    pub accept_missing: bool,
}

/// An HMAC secret configured out of band. `Debug` is redacted.
#[derive(Clone)]
pub struct HmacSecret(pub(super) Arc<[u8]>);

impl HmacSecret {
    /// Wraps a secret; it must be at least 32 bytes (RFC 7518 §3.2: key at least the hash size).
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<Self, JwtConfigError> {
        let secret = secret.into();
        if secret.len() < 32 {
            return Err(JwtConfigError::WeakHmacSecret);
        }
        Ok(Self(secret.into()))
    }
}

impl fmt::Debug for HmacSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HmacSecret(<redacted>)")
    }
}

/// Configuration of the verifier for one issuer.
#[derive(Debug, Clone)]
pub struct JwtIssuerConfig {
    /// The issuer identifier, compared byte for byte with `iss` (a trailing slash matters).
    pub issuer: String,
    /// The JWKS URL. `None`: taken from the issuer's metadata ([`crate::verify::discovery`]).
    pub jwks_uri: Option<Url>,
    /// Accepted audiences; `aud` (string or array) must contain one of them. Normally the
    /// resource URL of this server. Must not be empty. A token without `aud` or with `aud: []`
    /// is refused.
    pub audiences: Vec<String>,
    /// Whether `aud` may name other audiences too. Default [`AudiencePolicy::Includes`].
    pub audience_policy: super::AudiencePolicy,
    /// For an issuer whose access tokens carry no `aud` (AWS Cognito): a token without `aud`
    /// is checked by its `client_id` against `audiences` instead (the app clients allowed).
    /// Weaker than an audience — a client ID names who asked, not for which resource — so it is
    /// `dangerous_` and warned about. Default false: no `aud`, no access.
    pub dangerous_audience_from_client_id: bool,
    /// Claims that must be present with exactly this string value (Cognito's
    /// `token_use = "access"`, which tells its access tokens from its ID tokens).
    pub required_claims: Vec<(String, String)>,
    /// Allowed signature algorithms. Default: [`DEFAULT_ALGORITHMS`]. `none` cannot be
    /// expressed; `HS*` requires [`JwtIssuerConfig::dangerous_allow_hmac_secret`].
    pub algorithms: Vec<Algorithm>,
    /// Accepted header `typ` values. Default: strict RFC 9068.
    pub typ: TypPolicy,
    /// Clock-skew allowance for `exp`, `nbf`, `iat`. Default 60 s, at most [`MAX_LEEWAY`].
    pub leeway: Duration,
    /// Claims read as scopes in addition to `scope` (space-separated string, or array) and `scp`
    /// (string or array), e.g. Auth0 RBAC `permissions`. Default: none.
    pub extra_scope_claims: Vec<String>,
    /// Claim holding the tenant (a string claim such as Entra `tid` or Auth0 `org_id`).
    /// Default: none.
    pub tenant_claim: Option<String>,
    /// JWKS refresh tuning.
    pub jwks: JwksConfig,
    /// Limits of the metadata and JWKS fetches.
    pub fetch: FetchConfig,
    /// Longer tokens are refused before parsing. Default [`DEFAULT_MAX_TOKEN_BYTES`]; the
    /// builder sets it from its one `max_token_bytes` ([`crate::GatehouseBuilder::max_token_bytes`]).
    pub max_token_bytes: usize,
    /// A shared secret for `HS256/384/512` tokens. Default: `None`. HMAC tokens can be minted by
    /// anyone holding the secret (every verifier too); only for an authorization server you run
    /// yourself. HMAC is never used with JWKS keys. Logs a warning.
    pub dangerous_allow_hmac_secret: Option<HmacSecret>,
}

impl JwtIssuerConfig {
    /// A configuration with secure defaults for `issuer`, accepting `audience`.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            jwks_uri: None,
            audiences: vec![audience.into()],
            audience_policy: super::AudiencePolicy::default(),
            dangerous_audience_from_client_id: false,
            required_claims: Vec::new(),
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
            typ: TypPolicy::default(),
            leeway: DEFAULT_LEEWAY,
            extra_scope_claims: Vec::new(),
            tenant_claim: None,
            jwks: JwksConfig::default(),
            fetch: FetchConfig::default(),
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            dangerous_allow_hmac_secret: None,
        }
    }
}

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtConfigError {
    /// The issuer is not an absolute http(s) URL without query or fragment.
    #[error("issuer {0:?} is not a valid issuer identifier")]
    InvalidIssuer(String),
    /// `audiences` is empty.
    #[error("issuer {0:?}: at least one accepted audience is required")]
    NoAudience(String),
    /// `algorithms` is empty.
    #[error("issuer {0:?}: at least one algorithm is required")]
    NoAlgorithm(String),
    /// An `HS*` algorithm is allowed but no secret is configured (or the reverse).
    #[error(
        "issuer {0:?}: HS256/384/512 need dangerous_allow_hmac_secret, and a secret needs an HS algorithm"
    )]
    HmacMismatch(String),
    /// The HMAC secret is shorter than 32 bytes.
    #[error("the HMAC secret must be at least 32 bytes")]
    WeakHmacSecret,
    /// The leeway exceeds [`MAX_LEEWAY`].
    #[error("issuer {0:?}: leeway above 300 s")]
    LeewayTooLarge(String),
    /// No `jwks_uri` configured and discovery was not used.
    #[error("issuer {0:?}: jwks_uri is required (or use discovery)")]
    MissingJwksUri(String),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Fetch(FetchError),
}

/// Why [`JwtVerifier::discover`](super::JwtVerifier::discover) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtSetupError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] JwtConfigError),
    /// Metadata discovery failed.
    #[error("issuer discovery: {0}")]
    Discovery(#[from] DiscoveryError),
    /// The metadata has no `jwks_uri`.
    #[error("issuer {0:?} publishes no jwks_uri")]
    NoJwksUri(String),
}

pub(super) fn validate(config: &JwtIssuerConfig) -> Result<(), JwtConfigError> {
    let iss = || config.issuer.clone();
    match Url::parse(&config.issuer) {
        Ok(u)
            if matches!(u.scheme(), "https" | "http")
                && u.host().is_some()
                && u.query().is_none()
                && u.fragment().is_none() => {}
        _ => return Err(JwtConfigError::InvalidIssuer(iss())),
    }
    if config.audiences.is_empty() || config.audiences.iter().any(String::is_empty) {
        return Err(JwtConfigError::NoAudience(iss()));
    }
    if config.algorithms.is_empty() {
        return Err(JwtConfigError::NoAlgorithm(iss()));
    }
    let has_hs = config
        .algorithms
        .iter()
        .any(|a| a.family() == AlgorithmFamily::Hmac);
    if has_hs != config.dangerous_allow_hmac_secret.is_some() {
        return Err(JwtConfigError::HmacMismatch(iss()));
    }
    if config.leeway > MAX_LEEWAY {
        return Err(JwtConfigError::LeewayTooLarge(iss()));
    }
    Ok(())
}
