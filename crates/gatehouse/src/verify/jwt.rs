//! Local verification of JWT access tokens (RFC 9068) for one issuer.
//!
//! The checks, in the order they run (cheap and key-free first, so that a flood of forged
//! tokens cannot make us fetch keys):
//! 1. compact JWS shape: three base64url segments, header and payload JSON objects, no
//!    duplicate top-level names;
//! 2. header: `crit` (RFC 7515 §4.1.11) and `nonce` (Entra first-party tokens) refuse the token;
//!    `alg` must be in the allow-list (never `none`; HMAC only with a configured secret);
//!    `typ` per [`TypPolicy`] (RFC 9068 §4, spec row E5); `jku`, `x5u`, `jwk`, `x5c` are never
//!    read (RFC 8725 §3.10: keys only come from the issuer's `jwks_uri`, row E14);
//! 3. claims: `iss` byte-exact (E6), `exp` required (E9), `nbf`, `iat` not in the future, `aud`
//!    contains an accepted audience (E7, A22), `sub` a string when present;
//! 4. key: by `kid` from the issuer's JWKS, which must allow the header's `alg` for that key
//!    type (RFC 8725 §3.1: a key is used with its algorithm only);
//! 5. signature.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
/// Signature algorithms (re-exported from `jsonwebtoken`; parse names with `str::parse`).
pub use jsonwebtoken::Algorithm;
use jsonwebtoken::{AlgorithmFamily, DecodingKey};
use serde::Deserialize;
use serde_json::{Map, Value};
use url::Url;

use crate::caller::{AccessToken, Caller, Principal, ScopeSet, TokenKind};
use crate::verify::discovery::{DiscoveryError, discover};
use crate::verify::fetch::{FetchConfig, FetchError, Fetcher};
use crate::verify::jwks::{JwksCache, JwksConfig};
use crate::verify::{BoxFuture, InvalidReason, TokenVerifier, VerifyError};

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

/// Largest token accepted by default, in bytes. Real access tokens are 1–4 KiB.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 16 * 1024;

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
pub struct HmacSecret(Arc<[u8]>);

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
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
            typ: TypPolicy::default(),
            leeway: DEFAULT_LEEWAY,
            extra_scope_claims: Vec::new(),
            tenant_claim: None,
            jwks: JwksConfig::default(),
            fetch: FetchConfig::default(),
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

/// Why [`JwtVerifier::discover`] failed.
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

/// The header fields the verifier reads. Everything else (`jku`, `x5u`, `jwk`, `x5c`, …) is
/// deliberately not even parsed.
#[derive(Deserialize)]
pub(crate) struct JwsHeader {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<Value>,
    #[serde(default)]
    nonce: Option<Value>,
}

/// A compact JWS split and decoded, not yet verified.
pub(crate) struct ParsedJws<'a> {
    header: JwsHeader,
    claims: Map<String, Value>,
    signing_input: &'a str,
    signature: &'a str,
}

impl ParsedJws<'_> {
    /// The unverified `iss`, used only to route the token to its issuer's verifier.
    pub(crate) fn unverified_issuer(&self) -> Option<&str> {
        self.claims.get("iss").and_then(Value::as_str)
    }
}

fn is_b64url(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn decode_json_object<T: for<'de> Deserialize<'de>>(segment: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).ok()?;
    // A derived struct would also accept a JSON array; RFC 7515 wants an object.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return None;
    }
    serde_json::from_slice(&bytes).ok()
}

/// True when `token` has the shape of a compact JWS: three base64url segments and a header that
/// decodes to a JSON object. Used by the chain to tell JWTs from opaque tokens.
pub(crate) fn looks_like_jws(token: &str) -> bool {
    let mut parts = token.split('.');
    let (Some(h), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    !h.is_empty() && is_b64url(h) && decode_json_object::<Map<String, Value>>(h).is_some()
}

/// Splits and decodes a compact JWS (RFC 7515 §7.1).
pub(crate) fn parse_jws(token: &str) -> Result<ParsedJws<'_>, InvalidReason> {
    let (signing_input, signature) = token.rsplit_once('.').ok_or(InvalidReason::Malformed)?;
    let (header_b64, payload_b64) = signing_input
        .split_once('.')
        .ok_or(InvalidReason::Malformed)?;
    if [header_b64, payload_b64, signature]
        .iter()
        .any(|s| !is_b64url(s))
        || header_b64.is_empty()
        || payload_b64.is_empty()
    {
        return Err(InvalidReason::Malformed);
    }
    let header: JwsHeader = decode_json_object(header_b64).ok_or(InvalidReason::Malformed)?;
    let claims: UniqueMap = decode_json_object(payload_b64).ok_or(InvalidReason::Malformed)?;
    Ok(ParsedJws {
        header,
        claims: claims.0,
        signing_input,
        signature,
    })
}

/// A JSON object that refuses duplicate member names (RFC 7519 §4: a parser MUST reject them
/// or keep the last; rejecting removes any doubt about which `aud` or `exp` was meant).
struct UniqueMap(Map<String, Value>);

impl<'de> Deserialize<'de> for UniqueMap {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = UniqueMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<UniqueMap, A::Error> {
                let mut m = Map::new();
                while let Some((k, v)) = a.next_entry::<String, Value>()? {
                    if m.contains_key(&k) {
                        return Err(serde::de::Error::custom("duplicate claim"));
                    }
                    m.insert(k, v);
                }
                Ok(UniqueMap(m))
            }
        }
        d.deserialize_map(V)
    }
}

/// A JSON NumericDate (RFC 7519 §2): seconds, integer or not. Values past year 9999 are
/// refused so that the conversion to `SystemTime` cannot overflow.
pub(crate) fn numeric_date(v: &Value) -> Option<f64> {
    let n = v.as_f64()?;
    (n.is_finite() && (-1e11..=253_402_300_799.0).contains(&n)).then_some(n)
}

pub(crate) fn system_time_from_secs(secs: f64) -> SystemTime {
    if secs <= 0.0 {
        UNIX_EPOCH
    } else {
        UNIX_EPOCH + Duration::from_secs_f64(secs)
    }
}

pub(crate) fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Scopes from `scope` / `scp` (string or array) and the configured extra claims.
pub(crate) fn collect_scopes<'a>(
    claims: &Map<String, Value>,
    names: impl Iterator<Item = &'a str>,
) -> ScopeSet {
    let mut out = ScopeSet::new();
    for name in names {
        let parsed = match claims.get(name) {
            Some(Value::String(s)) => ScopeSet::from_space_separated(s),
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .flat_map(|s| {
                    ScopeSet::from_space_separated(s)
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                })
                .collect(),
            _ => continue,
        };
        out = out.union(&parsed);
    }
    out
}

/// `aud` as a list: a string, or an array of strings. `None` for any other type.
pub(crate) fn audiences(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>(),
        _ => None,
    }
}

fn str_claim(claims: &Map<String, Value>, name: &str) -> Option<String> {
    claims.get(name).and_then(Value::as_str).map(str::to_owned)
}

/// Verifies JWT access tokens of one issuer.
pub struct JwtVerifier {
    issuer: Arc<str>,
    audiences: HashSet<String>,
    algorithms: Vec<Algorithm>,
    typ: TypPolicy,
    leeway: f64,
    scope_claims: Vec<String>,
    tenant_claim: Option<String>,
    jwks: Option<JwksCache>,
    hmac: Option<DecodingKey>,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("issuer", &self.issuer)
            .field("algorithms", &self.algorithms)
            .field("jwks", &self.jwks)
            .field("hmac", &self.hmac.is_some())
            .finish()
    }
}

fn validate(config: &JwtIssuerConfig) -> Result<(), JwtConfigError> {
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

impl JwtVerifier {
    /// Builds a verifier from a configuration with a `jwks_uri` (or HMAC only). Keys are not
    /// loaded yet: call [`JwksCache::load`] through [`JwtVerifier::jwks`], or use
    /// [`JwtVerifier::discover`], which does both.
    pub fn new(config: JwtIssuerConfig) -> Result<Self, JwtConfigError> {
        validate(&config)?;
        let needs_jwks = config
            .algorithms
            .iter()
            .any(|a| a.family() != AlgorithmFamily::Hmac);
        let jwks = match (&config.jwks_uri, needs_jwks) {
            (Some(uri), true) => {
                let fetcher = Fetcher::new(config.fetch.clone()).map_err(JwtConfigError::Fetch)?;
                fetcher.check_url(uri).map_err(JwtConfigError::Fetch)?;
                Some(JwksCache::new(
                    config.issuer.as_str(),
                    uri.clone(),
                    fetcher,
                    &config.algorithms,
                    config.jwks.clone(),
                ))
            }
            (None, true) => return Err(JwtConfigError::MissingJwksUri(config.issuer.clone())),
            (_, false) => None,
        };
        Ok(Self::assemble(config, jwks))
    }

    /// Builds a verifier, discovering the `jwks_uri` from the issuer's metadata when not
    /// configured, and attempts the first key load. A failed first load is logged, not fatal:
    /// the verifier reports not [`ready`](TokenVerifier::ready) and retries on demand and in the
    /// background task.
    pub async fn discover(mut config: JwtIssuerConfig) -> Result<Self, JwtSetupError> {
        validate(&config)?;
        let needs_jwks = config
            .algorithms
            .iter()
            .any(|a| a.family() != AlgorithmFamily::Hmac);
        if config.jwks_uri.is_none() && needs_jwks {
            let fetcher = Fetcher::new(config.fetch.clone()).map_err(JwtConfigError::Fetch)?;
            let meta = discover(&fetcher, &config.issuer).await?;
            config.jwks_uri = Some(
                meta.jwks_uri
                    .ok_or_else(|| JwtSetupError::NoJwksUri(config.issuer.clone()))?,
            );
        }
        let verifier = Self::new(config)?;
        if let Some(jwks) = &verifier.jwks
            && let Err(e) = jwks.load().await
        {
            tracing::warn!(issuer = %verifier.issuer, error = %e, "initial JWKS load failed; not ready");
        }
        Ok(verifier)
    }

    fn assemble(config: JwtIssuerConfig, jwks: Option<JwksCache>) -> Self {
        if config.typ.accept_jwt || config.typ.accept_missing {
            tracing::warn!(
                issuer = %config.issuer,
                accept_jwt = config.typ.accept_jwt,
                accept_missing = config.typ.accept_missing,
                "IdP compatibility: access tokens without typ at+jwt are accepted (RFC 9068 §4 relaxed)"
            );
        }
        let hmac = config.dangerous_allow_hmac_secret.as_ref().map(|s| {
            tracing::warn!(issuer = %config.issuer, "dangerous_allow_hmac_secret: HS* tokens accepted");
            DecodingKey::from_secret(&s.0)
        });
        let mut scope_claims = vec!["scope".to_owned(), "scp".to_owned()];
        scope_claims.extend(config.extra_scope_claims);
        Self {
            issuer: config.issuer.into(),
            audiences: config.audiences.into_iter().collect(),
            algorithms: config.algorithms,
            typ: config.typ,
            leeway: config.leeway.as_secs_f64(),
            scope_claims,
            tenant_claim: config.tenant_claim,
            jwks,
            hmac,
        }
    }

    /// The issuer this verifier trusts.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The key cache (absent for HMAC-only verifiers).
    pub fn jwks(&self) -> Option<&JwksCache> {
        self.jwks.as_ref()
    }

    fn typ_ok(&self, typ: Option<&str>) -> bool {
        let Some(typ) = typ else {
            return self.typ.accept_missing;
        };
        // RFC 9068 §4 / RFC 7515 §4.1.9: media type, the "application/" prefix may be omitted,
        // compared case-insensitively.
        let t = typ.to_ascii_lowercase();
        let t = t.strip_prefix("application/").unwrap_or(&t);
        t == "at+jwt" || (self.typ.accept_jwt && t == "jwt")
    }

    /// Verifies an already split token (the chain parses once to route it).
    pub(crate) async fn verify_parsed(&self, jws: ParsedJws<'_>) -> Result<Caller, VerifyError> {
        let h = &jws.header;
        if h.crit.is_some() || h.nonce.is_some() {
            return Err(InvalidReason::ForbiddenHeader.into());
        }
        // The header names an algorithm; it is accepted only if configured (and, below, only if
        // the selected key allows it). `none` does not parse as an Algorithm at all.
        let alg = Algorithm::from_str(&h.alg).map_err(|_| InvalidReason::AlgorithmNotAllowed)?;
        if !self.algorithms.contains(&alg) {
            return Err(InvalidReason::AlgorithmNotAllowed.into());
        }
        if !self.typ_ok(h.typ.as_deref()) {
            return Err(InvalidReason::TypeNotAllowed.into());
        }

        let c = &jws.claims;
        // RFC 9068 §4 / RFC 8725 §3.8: the issuer must be exactly the one whose keys we use.
        match c.get("iss") {
            Some(Value::String(iss)) if **iss == *self.issuer => {}
            Some(Value::String(_)) => return Err(InvalidReason::IssuerMismatch.into()),
            _ => return Err(InvalidReason::MissingClaim.into()),
        }
        let now = now_secs();
        let exp = c
            .get("exp")
            .and_then(numeric_date)
            .ok_or(InvalidReason::MissingClaim)?;
        if now >= exp + self.leeway {
            return Err(InvalidReason::Expired.into());
        }
        if let Some(v) = c.get("nbf") {
            let nbf = numeric_date(v).ok_or(InvalidReason::MissingClaim)?;
            if nbf > now + self.leeway {
                return Err(InvalidReason::NotYetValid.into());
            }
        }
        if let Some(v) = c.get("iat") {
            let iat = numeric_date(v).ok_or(InvalidReason::MissingClaim)?;
            if iat > now + self.leeway {
                return Err(InvalidReason::IssuedInFuture.into());
            }
        }
        let auds = c
            .get("aud")
            .and_then(audiences)
            .ok_or(InvalidReason::MissingClaim)?;
        if auds.is_empty() {
            return Err(InvalidReason::MissingClaim.into());
        }
        if !auds.iter().any(|a| self.audiences.contains(a)) {
            return Err(InvalidReason::AudienceMismatch.into());
        }
        let subject = match c.get("sub") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(InvalidReason::MissingClaim.into()),
        };

        let verified = if alg.family() == AlgorithmFamily::Hmac {
            let key = self
                .hmac
                .as_ref()
                .ok_or(InvalidReason::AlgorithmNotAllowed)?;
            check_signature(&jws, key, alg)
        } else {
            let jwks = self
                .jwks
                .as_ref()
                .ok_or(InvalidReason::AlgorithmNotAllowed)?;
            let key = jwks.resolve(jws.header.kid.as_deref(), alg).await?;
            check_signature(&jws, key.decoding_key(), alg)
        };
        if !verified {
            return Err(InvalidReason::BadSignature.into());
        }

        let ParsedJws { claims, .. } = jws;
        let scopes = collect_scopes(&claims, self.scope_claims.iter().map(String::as_str));
        let client_id = str_claim(&claims, "client_id").or_else(|| str_claim(&claims, "azp"));
        let tenant = self
            .tenant_claim
            .as_deref()
            .and_then(|t| str_claim(&claims, t));
        Ok(Caller::new(Principal {
            issuer: self.issuer.clone(),
            subject,
            client_id,
            scopes,
            audiences: auds,
            tenant,
            expires_at: system_time_from_secs(exp),
            kind: TokenKind::Jwt,
            claims,
        }))
    }
}

fn check_signature(jws: &ParsedJws<'_>, key: &DecodingKey, alg: Algorithm) -> bool {
    match jsonwebtoken::crypto::verify(jws.signature, jws.signing_input.as_bytes(), key, alg) {
        Ok(ok) => ok,
        Err(e) => {
            tracing::debug!(error = %e, "signature check errored");
            false
        }
    }
}

impl TokenVerifier for JwtVerifier {
    fn verify<'a>(&'a self, token: &'a AccessToken) -> BoxFuture<'a, Result<Caller, VerifyError>> {
        Box::pin(async move {
            if token.len() > DEFAULT_MAX_TOKEN_BYTES {
                return Err(InvalidReason::TooLarge.into());
            }
            let jws = parse_jws(token.expose())?;
            self.verify_parsed(jws).await
        })
    }

    fn ready(&self) -> bool {
        self.jwks.as_ref().is_none_or(JwksCache::ready)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::verify::UnavailableReason;
    use crate::verify::test_support::{MockIdp, TestKey, b64, now, sign_hs256, signing_input};

    const AUD: &str = "https://mcp.example/mcp";

    struct Fixture {
        idp: MockIdp,
        key: TestKey,
        verifier: JwtVerifier,
    }

    async fn fixture_with(edit: impl FnOnce(&mut JwtIssuerConfig)) -> Fixture {
        let idp = MockIdp::start().await;
        let key = TestKey::rsa(0, "k1");
        idp.set_keys(&[&key, &TestKey::ec256("ec1"), &TestKey::ed25519("ed1")]);
        let mut config = JwtIssuerConfig::new(idp.issuer(), AUD);
        config.jwks_uri = Some(idp.jwks_url());
        edit(&mut config);
        let verifier = JwtVerifier::discover(config).await.unwrap();
        assert!(verifier.ready());
        Fixture { idp, key, verifier }
    }

    async fn fixture() -> Fixture {
        fixture_with(|_| {}).await
    }

    async fn check(v: &JwtVerifier, token: &str) -> Result<Caller, VerifyError> {
        v.verify(&AccessToken::new(token)).await
    }

    fn invalid(r: InvalidReason) -> Result<(), VerifyError> {
        Err(VerifyError::Invalid(r))
    }

    async fn expect(v: &JwtVerifier, token: &str, want: Result<(), VerifyError>) {
        assert_eq!(check(v, token).await.map(|_| ()), want);
    }

    #[tokio::test]
    async fn valid_tokens_for_each_key_type() {
        // E8: RS256, PS256, ES256, EdDSA all verify with their JWKS key.
        let idp = MockIdp::start().await;
        let rsa = TestKey::rsa(0, "rsa");
        let ec = TestKey::ec256("ec");
        let ed = TestKey::ed25519("ed");
        idp.set_keys(&[&rsa, &ec, &ed]);
        let mut config = JwtIssuerConfig::new(idp.issuer(), AUD);
        config.jwks_uri = Some(idp.jwks_url());
        config.tenant_claim = Some("tid".into());
        let v = JwtVerifier::discover(config).await.unwrap();
        let mut claims = idp.claims(AUD);
        claims["tid"] = json!("tenant-7");
        for (key, alg) in [
            (&rsa, "RS256"),
            (&rsa, "RS384"),
            (&rsa, "RS512"),
            (&rsa, "PS256"),
            (&rsa, "PS512"),
            (&ec, "ES256"),
            (&ed, "EdDSA"),
        ] {
            let token = key.sign(
                &json!({"alg": alg, "typ": "at+jwt", "kid": key.kid}),
                &claims,
            );
            let caller = check(&v, &token)
                .await
                .unwrap_or_else(|e| panic!("{alg}: {e:?}"));
            assert_eq!(caller.issuer.as_ref(), idp.issuer());
            assert_eq!(caller.subject.as_deref(), Some("user-1"));
            assert_eq!(caller.client_id.as_deref(), Some("client-1"));
            assert_eq!(caller.tenant.as_deref(), Some("tenant-7"));
            assert_eq!(
                caller.scopes.to_space_separated(),
                "invoices:read invoices:write"
            );
            assert_eq!(caller.audiences, [AUD]);
            assert_eq!(caller.kind, TokenKind::Jwt);
            assert_eq!(caller.expires_at_unix(), claims["exp"].as_u64().unwrap());
            assert_eq!(caller.claims["jti"], "j-1");
        }
        assert_eq!(v.jwks().unwrap().fetch_count(), 1);
    }

    #[tokio::test]
    async fn alg_none_and_unknown_algs_refused() {
        // E8 / E14: `none` is never consumed.
        let f = fixture().await;
        let claims = f.idp.claims(AUD);
        let none = format!(
            "{}.",
            signing_input(&json!({"alg": "none", "typ": "at+jwt"}), &claims)
        );
        expect(
            &f.verifier,
            &none,
            invalid(InvalidReason::AlgorithmNotAllowed),
        )
        .await;
        let none_kid = format!(
            "{}.",
            signing_input(
                &json!({"alg": "none", "typ": "at+jwt", "kid": "k1"}),
                &claims
            )
        );
        expect(
            &f.verifier,
            &none_kid,
            invalid(InvalidReason::AlgorithmNotAllowed),
        )
        .await;
        for alg in ["None", "NONE", "RSA-OAEP", "ES512", "", "HS256 "] {
            let t = f
                .key
                .sign(&json!({"alg": alg, "typ": "at+jwt", "kid": "k1"}), &claims);
            expect(&f.verifier, &t, invalid(InvalidReason::AlgorithmNotAllowed)).await;
        }
        // alg of the wrong JSON type: malformed header.
        let t = f
            .key
            .sign(&json!({"alg": 256, "typ": "at+jwt", "kid": "k1"}), &claims);
        expect(&f.verifier, &t, invalid(InvalidReason::Malformed)).await;
    }

    #[tokio::test]
    async fn hs256_with_rsa_public_key_as_secret_refused() {
        // E14: the classic RS256→HS256 key confusion.
        let f = fixture().await;
        let claims = f.idp.claims(AUD);
        let header = json!({"alg": "HS256", "typ": "at+jwt", "kid": "k1"});
        let der = f.key.rsa_public_der();
        let t = sign_hs256(&header, &claims, &der);
        expect(&f.verifier, &t, invalid(InvalidReason::AlgorithmNotAllowed)).await;
        // Also with the JWK JSON and the modulus as "secret".
        let jwk = serde_json::to_vec(&f.key.jwk(None)).unwrap();
        expect(
            &f.verifier,
            &sign_hs256(&header, &claims, &jwk),
            invalid(InvalidReason::AlgorithmNotAllowed),
        )
        .await;
    }

    #[tokio::test]
    async fn hmac_only_with_configured_secret() {
        let secret = b"0123456789abcdef0123456789abcdef".to_vec();
        let idp = MockIdp::start().await;
        let rsa = TestKey::rsa(0, "k1");
        idp.set_keys(&[&rsa]);
        let mut config = JwtIssuerConfig::new(idp.issuer(), AUD);
        config.jwks_uri = Some(idp.jwks_url());
        config.algorithms = vec![Algorithm::HS256, Algorithm::RS256];
        config.dangerous_allow_hmac_secret = Some(HmacSecret::new(secret.clone()).unwrap());
        assert!(!format!("{config:?}").contains("0123456789"));
        let v = JwtVerifier::discover(config).await.unwrap();
        let claims = idp.claims(AUD);
        let header = json!({"alg": "HS256", "typ": "at+jwt"});
        check(&v, &sign_hs256(&header, &claims, &secret))
            .await
            .unwrap();
        // The RSA public key is never an HMAC secret, even when HS256 is allowed.
        let forged = sign_hs256(
            &json!({"alg": "HS256", "typ": "at+jwt", "kid": "k1"}),
            &claims,
            &rsa.rsa_public_der(),
        );
        expect(&v, &forged, invalid(InvalidReason::BadSignature)).await;
        check(&v, &rsa.token(&claims)).await.unwrap();

        // Configuration mistakes are caught.
        let mut c = JwtIssuerConfig::new(idp.issuer(), AUD);
        c.jwks_uri = Some(idp.jwks_url());
        c.algorithms = vec![Algorithm::HS256];
        assert!(matches!(
            JwtVerifier::new(c.clone()),
            Err(JwtConfigError::HmacMismatch(_))
        ));
        assert!(matches!(
            HmacSecret::new(b"short".to_vec()),
            Err(JwtConfigError::WeakHmacSecret)
        ));
        c.algorithms = vec![Algorithm::RS256];
        c.dangerous_allow_hmac_secret = Some(HmacSecret::new(secret).unwrap());
        assert!(matches!(
            JwtVerifier::new(c),
            Err(JwtConfigError::HmacMismatch(_))
        ));
    }

    #[tokio::test]
    async fn key_type_confusion_refused() {
        // An RS256 header naming the EC key's kid: the key's algorithm set decides.
        let f = fixture().await;
        let claims = f.idp.claims(AUD);
        let t = f.key.sign(
            &json!({"alg": "RS256", "typ": "at+jwt", "kid": "ec1"}),
            &claims,
        );
        expect(&f.verifier, &t, invalid(InvalidReason::AlgorithmNotAllowed)).await;
        // A correct header but signed by another RSA key: bad signature.
        let other = TestKey::rsa(1, "k1");
        expect(
            &f.verifier,
            &other.token(&claims),
            invalid(InvalidReason::BadSignature),
        )
        .await;
    }

    #[tokio::test]
    async fn unknown_kid_then_rotation() {
        let f = fixture_with(|c| c.jwks.min_refresh_interval = Duration::ZERO).await;
        let claims = f.idp.claims(AUD);
        let new_key = TestKey::rsa(1, "k2");
        // E8: a key the issuer does not publish → refresh once → 401.
        expect(
            &f.verifier,
            &new_key.token(&claims),
            invalid(InvalidReason::UnknownKey),
        )
        .await;
        assert_eq!(f.verifier.jwks().unwrap().fetch_count(), 2);
        // Rotation: published now → accepted after exactly one more refresh.
        f.idp.set_keys(&[&f.key, &new_key]);
        check(&f.verifier, &new_key.token(&claims)).await.unwrap();
        assert_eq!(f.verifier.jwks().unwrap().fetch_count(), 3);
        check(&f.verifier, &new_key.token(&claims)).await.unwrap();
        assert_eq!(f.verifier.jwks().unwrap().fetch_count(), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn thousand_concurrent_verifications_after_rotation_fetch_once() {
        // peers.md gap 6: N concurrent callers with a new kid share one JWKS fetch.
        let f = fixture_with(|c| c.jwks.min_refresh_interval = Duration::ZERO).await;
        let new_key = TestKey::rsa(1, "k2");
        f.idp.set_keys(&[&f.key, &new_key]);
        let token = AccessToken::new(new_key.token(&f.idp.claims(AUD)));
        let verifier = Arc::new(f.verifier);
        let gate = Arc::new(tokio::sync::Barrier::new(1000));
        let tasks: Vec<_> = (0..1000)
            .map(|_| {
                let (v, t, gate) = (verifier.clone(), token.clone(), gate.clone());
                tokio::spawn(async move {
                    gate.wait().await;
                    v.verify(&t).await.map(|_| ())
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(
            verifier.jwks().unwrap().fetch_count(),
            2,
            "initial load + one refresh"
        );
        assert_eq!(f.idp.jwks_hits(), 2);
    }

    #[tokio::test]
    async fn odd_kids_are_just_unknown() {
        // E14: kid with path or quote characters matches nothing; no panic, no file access.
        let f = fixture().await;
        let claims = f.idp.claims(AUD);
        for kid in [
            "../../../../etc/passwd",
            "k1' OR '1'='1",
            "\"k1\"",
            "k1/../k1",
            "%2e%2e",
        ] {
            let t = f.key.sign(
                &json!({"alg": "RS256", "typ": "at+jwt", "kid": kid}),
                &claims,
            );
            expect(&f.verifier, &t, invalid(InvalidReason::UnknownKey)).await;
        }
        let t = f.key.sign(
            &json!({"alg": "RS256", "typ": "at+jwt", "kid": ["k1"]}),
            &claims,
        );
        expect(&f.verifier, &t, invalid(InvalidReason::Malformed)).await;
    }

    #[tokio::test]
    async fn issuer_checks() {
        // E6 / A23 / A30.
        let f = fixture().await;
        let mut claims = f.idp.claims(AUD);
        claims["iss"] = json!("https://other.example");
        expect(
            &f.verifier,
            &f.key.token(&claims),
            invalid(InvalidReason::IssuerMismatch),
        )
        .await;
        claims["iss"] = json!(format!("{}/", f.idp.issuer()));
        expect(
            &f.verifier,
            &f.key.token(&claims),
            invalid(InvalidReason::IssuerMismatch),
        )
        .await;
        claims["iss"] = json!(f.idp.issuer().to_uppercase());
        expect(
            &f.verifier,
            &f.key.token(&claims),
            invalid(InvalidReason::IssuerMismatch),
        )
        .await;
        claims["iss"] = json!([f.idp.issuer()]);
        expect(
            &f.verifier,
            &f.key.token(&claims),
            invalid(InvalidReason::MissingClaim),
        )
        .await;
        claims.as_object_mut().unwrap().remove("iss");
        expect(
            &f.verifier,
            &f.key.token(&claims),
            invalid(InvalidReason::MissingClaim),
        )
        .await;
    }

    #[tokio::test]
    async fn key_of_issuer_x_never_validates_a_token_claiming_y() {
        // RFC 8725 §3.8: X's verifier refuses a token that says iss=Y even when signed by X's key.
        let x = fixture().await;
        let y = MockIdp::start().await;
        let claims_y = y.claims(AUD);
        expect(
            &x.verifier,
            &x.key.token(&claims_y),
            invalid(InvalidReason::IssuerMismatch),
        )
        .await;
    }

    #[tokio::test]
    async fn audience_checks() {
        // E7 / A22.
        let f = fixture().await;
        let mut claims = f.idp.claims(AUD);
        claims["aud"] = json!("https://other.example/mcp");
        expect(
            &f.verifier,
            &f.key.token(&claims),
            invalid(InvalidReason::AudienceMismatch),
        )
        .await;
        claims["aud"] = json!(["https://other.example", AUD]);
        let c = check(&f.verifier, &f.key.token(&claims)).await.unwrap();
        assert_eq!(c.audiences, ["https://other.example", AUD]);
        claims["aud"] = json!(["https://other.example"]);
        expect(
            &f.verifier,
            &f.key.token(&claims),
            invalid(InvalidReason::AudienceMismatch),
        )
        .await;
        claims["aud"] = json!([]);
        expect(
            &f.verifier,
            &f.key.token(&claims),
            invalid(InvalidReason::MissingClaim),
        )
        .await;
        claims["aud"] = json!([AUD, 7]);
        expect(
            &f.verifier,
            &f.key.token(&claims),
            invalid(InvalidReason::MissingClaim),
        )
        .await;
        claims["aud"] = json!(format!("{AUD}/"));
        expect(
            &f.verifier,
            &f.key.token(&claims),
            invalid(InvalidReason::AudienceMismatch),
        )
        .await;
        claims.as_object_mut().unwrap().remove("aud");
        expect(
            &f.verifier,
            &f.key.token(&claims),
            invalid(InvalidReason::MissingClaim),
        )
        .await;
    }

    #[tokio::test]
    async fn time_checks() {
        // E9 and A21.
        let f = fixture().await;
        let n = now();
        let with = |k: &str, v: Value| {
            let mut c = f.idp.claims(AUD);
            c[k] = v;
            f.key.token(&c)
        };
        expect(
            &f.verifier,
            &with("exp", json!(n - 600)),
            invalid(InvalidReason::Expired),
        )
        .await;
        // Within leeway (60 s): accepted.
        check(&f.verifier, &with("exp", json!(n - 5)))
            .await
            .unwrap();
        expect(
            &f.verifier,
            &with("exp", json!("9999999999")),
            invalid(InvalidReason::MissingClaim),
        )
        .await;
        expect(
            &f.verifier,
            &with("exp", json!(1e300)),
            invalid(InvalidReason::MissingClaim),
        )
        .await;
        expect(
            &f.verifier,
            &with("nbf", json!(n + 600)),
            invalid(InvalidReason::NotYetValid),
        )
        .await;
        check(&f.verifier, &with("nbf", json!(n + 30)))
            .await
            .unwrap();
        expect(
            &f.verifier,
            &with("iat", json!(n + 3600)),
            invalid(InvalidReason::IssuedInFuture),
        )
        .await;
        check(&f.verifier, &with("exp", json!((n + 600) as f64 + 0.5)))
            .await
            .unwrap();
        let mut c = f.idp.claims(AUD);
        c.as_object_mut().unwrap().remove("exp");
        expect(
            &f.verifier,
            &f.key.token(&c),
            invalid(InvalidReason::MissingClaim),
        )
        .await;
        expect(
            &f.verifier,
            &with("sub", json!(42)),
            invalid(InvalidReason::MissingClaim),
        )
        .await;
    }

    #[tokio::test]
    async fn leeway_is_configurable_and_bounded() {
        let f = fixture_with(|c| c.leeway = Duration::ZERO).await;
        let mut c = f.idp.claims(AUD);
        c["exp"] = json!(now() - 5);
        expect(
            &f.verifier,
            &f.key.token(&c),
            invalid(InvalidReason::Expired),
        )
        .await;
        let mut bad = JwtIssuerConfig::new(f.idp.issuer(), AUD);
        bad.jwks_uri = Some(f.idp.jwks_url());
        bad.leeway = Duration::from_secs(301);
        assert!(matches!(
            JwtVerifier::new(bad),
            Err(JwtConfigError::LeewayTooLarge(_))
        ));
    }

    #[tokio::test]
    async fn typ_policy() {
        // E5 / E13: JWT (e.g. an ID token) refused by default; compat options relax it.
        let f = fixture().await;
        let claims = f.idp.claims(AUD);
        let with_typ = |typ: Option<&str>| {
            let mut h = json!({"alg": "RS256", "kid": "k1"});
            if let Some(t) = typ {
                h["typ"] = json!(t);
            }
            f.key.sign(&h, &claims)
        };
        for ok in [
            "at+jwt",
            "AT+JWT",
            "application/at+jwt",
            "Application/AT+JWT",
        ] {
            check(&f.verifier, &with_typ(Some(ok))).await.unwrap();
        }
        for bad in [
            Some("JWT"),
            Some("jwt"),
            None,
            Some("at+jwt+x"),
            Some("application/okta-internal-at+jwt"),
        ] {
            expect(
                &f.verifier,
                &with_typ(bad),
                invalid(InvalidReason::TypeNotAllowed),
            )
            .await;
        }
        let jwt_ok = fixture_with(|c| c.typ.accept_jwt = true).await;
        let t = |typ: Option<&str>| {
            let mut h = json!({"alg": "RS256", "kid": "k1"});
            if let Some(x) = typ {
                h["typ"] = json!(x);
            }
            jwt_ok.key.sign(&h, &jwt_ok.idp.claims(AUD))
        };
        check(&jwt_ok.verifier, &t(Some("JWT"))).await.unwrap();
        check(&jwt_ok.verifier, &t(Some("application/jwt")))
            .await
            .unwrap();
        expect(
            &jwt_ok.verifier,
            &t(None),
            invalid(InvalidReason::TypeNotAllowed),
        )
        .await;
        let missing_ok = fixture_with(|c| c.typ.accept_missing = true).await;
        let h = json!({"alg": "RS256", "kid": "k1"});
        check(
            &missing_ok.verifier,
            &missing_ok.key.sign(&h, &missing_ok.idp.claims(AUD)),
        )
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn key_bearing_headers_are_never_used_or_fetched() {
        // E14 / RFC 8725 §3.10: jku, x5u, jwk, x5c point at an attacker key; never fetched, never
        // trusted.
        let f = fixture().await;
        let attacker = MockIdp::start().await;
        let evil = TestKey::rsa(2, "evil");
        attacker.set_attacker_keys(&[&evil]);
        let claims = f.idp.claims(AUD);
        let headers = [
            json!({"alg": "RS256", "typ": "at+jwt", "kid": "evil", "jku": attacker.url("/attacker/jwks").as_str()}),
            json!({"alg": "RS256", "typ": "at+jwt", "kid": "evil", "x5u": attacker.url("/attacker/cert").as_str()}),
            json!({"alg": "RS256", "typ": "at+jwt", "kid": "evil", "jwk": evil.jwk(Some("RS256"))}),
            json!({"alg": "RS256", "typ": "at+jwt", "jwk": evil.jwk(Some("RS256"))}),
            json!({"alg": "RS256", "typ": "at+jwt", "kid": "evil", "x5c": ["MIIBIjANBg=="]}),
            // Even naming our own kid, the attacker's key signs → signature fails.
            json!({"alg": "RS256", "typ": "at+jwt", "kid": "k1", "jku": attacker.url("/attacker/jwks").as_str()}),
        ];
        for (i, h) in headers.iter().enumerate() {
            let r = check(&f.verifier, &evil.sign(h, &claims)).await;
            // Without a kid (3), or with our kid (5), our own key is selected and the attacker's
            // signature fails; with the attacker's kid, nothing matches.
            let want = if i == 3 || i == 5 {
                InvalidReason::BadSignature
            } else {
                InvalidReason::UnknownKey
            };
            assert_eq!(r.map(|_| ()), invalid(want), "header {i}");
        }
        assert_eq!(attacker.attacker_hits(), 0);
        assert_eq!(attacker.jwks_hits(), 0);
    }

    #[tokio::test]
    async fn crit_and_nonce_headers_refused() {
        let f = fixture().await;
        let claims = f.idp.claims(AUD);
        for h in [
            json!({"alg": "RS256", "typ": "at+jwt", "kid": "k1", "crit": ["exp"]}),
            json!({"alg": "RS256", "typ": "at+jwt", "kid": "k1", "crit": []}),
            json!({"alg": "RS256", "typ": "at+jwt", "kid": "k1", "b64": false, "crit": ["b64"]}),
            json!({"alg": "RS256", "typ": "JWT", "kid": "k1", "nonce": "abc"}),
        ] {
            expect(
                &f.verifier,
                &f.key.sign(&h, &claims),
                invalid(InvalidReason::ForbiddenHeader),
            )
            .await;
        }
    }

    #[tokio::test]
    async fn malformed_tokens() {
        let f = fixture().await;
        let good = f.key.token(&f.idp.claims(AUD));
        let (head, sig) = good.rsplit_once('.').unwrap();
        let garbage_header = format!("{}.{}", b64(b"not json"), head.split_once('.').unwrap().1);
        let array_header = format!(
            "{}.{}.{sig}",
            b64(b"[\"RS256\"]"),
            head.split_once('.').unwrap().1
        );
        let dup_claims = format!(
            "{}.{}.{sig}",
            head.split_once('.').unwrap().0,
            b64(br#"{"aud":"x","aud":"https://mcp.example/mcp"}"#)
        );
        let array_payload = format!(
            "{}.{}.{sig}",
            head.split_once('.').unwrap().0,
            b64(b"[1,2]")
        );
        let dup_header = format!(
            "{}.{}.{sig}",
            b64(br#"{"alg":"RS256","alg":"none","typ":"at+jwt","kid":"k1"}"#),
            head.split_once('.').unwrap().1
        );
        let cases = [
            "".to_owned(),
            "abc".to_owned(),
            "a.b".to_owned(),
            good[..head.len() - 10].to_owned(),
            {
                let (h, p) = head.split_once('.').unwrap();
                format!("{h}.{}.{sig}", &p[..p.len() - 3])
            },
            head.to_owned(),
            format!("{head}.{sig}.extra"),
            format!("{head}==.{sig}"),
            format!("{garbage_header}.{sig}"),
            array_header,
            dup_claims,
            dup_header,
            array_payload,
            format!("{head}.!!!"),
            "e30.e30.".to_owned(),
            "..".to_owned(),
            "\u{1F600}.\u{1F600}.\u{1F600}".to_owned(),
        ];
        for (i, t) in cases.iter().enumerate() {
            let r = check(&f.verifier, t).await.map(|_| ());
            assert_eq!(r, invalid(InvalidReason::Malformed), "case {i}");
        }
        // Truncated signature: well-formed but wrong.
        expect(
            &f.verifier,
            &good[..good.len() - 4],
            invalid(InvalidReason::BadSignature),
        )
        .await;
        let big = "a".repeat(DEFAULT_MAX_TOKEN_BYTES + 1);
        expect(&f.verifier, &big, invalid(InvalidReason::TooLarge)).await;
    }

    #[tokio::test]
    async fn scopes_from_scope_scp_and_extra_claims() {
        let f = fixture_with(|c| c.extra_scope_claims = vec!["permissions".into()]).await;
        let mut c = f.idp.claims(AUD);
        c["scope"] = json!("a b");
        c["scp"] = json!(["c", "d e"]);
        c["permissions"] = json!(["read:x", 5, "bad\"scope"]);
        let caller = check(&f.verifier, &f.key.token(&c)).await.unwrap();
        assert_eq!(caller.scopes.to_space_separated(), "a b c d e read:x");
        let mut c = f.idp.claims(AUD);
        c.as_object_mut().unwrap().remove("scope");
        c["scp"] = json!("x y");
        c.as_object_mut().unwrap().remove("client_id");
        c["azp"] = json!("spa");
        let caller = check(&f.verifier, &f.key.token(&c)).await.unwrap();
        assert_eq!(caller.scopes.to_space_separated(), "x y");
        assert_eq!(caller.client_id.as_deref(), Some("spa"));
    }

    #[tokio::test]
    async fn jwks_down_after_start() {
        let f = fixture_with(|c| c.jwks.min_refresh_interval = Duration::ZERO).await;
        f.idp.set_down(true);
        let claims = f.idp.claims(AUD);
        // Stale keys still accept known kids…
        check(&f.verifier, &f.key.token(&claims)).await.unwrap();
        // …and an unknown kid cannot be decided.
        let t = TestKey::rsa(1, "k2").token(&claims);
        assert_eq!(
            check(&f.verifier, &t).await.unwrap_err(),
            VerifyError::Unavailable(UnavailableReason::KeysUnavailable)
        );
    }

    #[tokio::test]
    async fn discovery_and_config_errors() {
        let idp = MockIdp::start().await;
        idp.set_keys(&[&TestKey::rsa(0, "k1")]);
        // Discovery finds the jwks_uri.
        let v = JwtVerifier::discover(JwtIssuerConfig::new(idp.issuer(), AUD))
            .await
            .unwrap();
        assert_eq!(v.jwks().unwrap().uri(), &idp.jwks_url());
        assert!(v.ready());
        assert_eq!(idp.metadata_hits(), 1);
        // Issuer mismatch in the metadata.
        idp.set_metadata_issuer("https://evil.example");
        let e = JwtVerifier::discover(JwtIssuerConfig::new(idp.issuer(), AUD))
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                JwtSetupError::Discovery(DiscoveryError::IssuerMismatch { .. })
            ),
            "{e:?}"
        );
        // JWKS down at start: built, not ready.
        idp.set_down(true);
        let mut c = JwtIssuerConfig::new(idp.issuer(), AUD);
        c.jwks_uri = Some(idp.jwks_url());
        let v = JwtVerifier::discover(c.clone()).await.unwrap();
        assert!(!v.ready());
        let t = TestKey::rsa(0, "k1").token(&idp.claims(AUD));
        assert_eq!(
            check(&v, &t).await.unwrap_err(),
            VerifyError::Unavailable(UnavailableReason::KeysUnavailable)
        );
        // Static config errors.
        let mut bad = c.clone();
        bad.audiences.clear();
        assert!(matches!(
            JwtVerifier::new(bad),
            Err(JwtConfigError::NoAudience(_))
        ));
        let mut bad = c.clone();
        bad.jwks_uri = None;
        assert!(matches!(
            JwtVerifier::new(bad),
            Err(JwtConfigError::MissingJwksUri(_))
        ));
        let mut bad = c.clone();
        bad.algorithms.clear();
        assert!(matches!(
            JwtVerifier::new(bad),
            Err(JwtConfigError::NoAlgorithm(_))
        ));
        let mut bad = c.clone();
        bad.issuer = "not a url".into();
        assert!(matches!(
            JwtVerifier::new(bad),
            Err(JwtConfigError::InvalidIssuer(_))
        ));
        let mut bad = c;
        bad.jwks_uri = Some(Url::parse("http://idp.example/jwks").unwrap());
        assert!(matches!(
            JwtVerifier::new(bad),
            Err(JwtConfigError::Fetch(FetchError::InsecureUrl(_)))
        ));
    }

    #[test]
    fn jws_shape_detection() {
        assert!(looks_like_jws(&format!(
            "{}.e30.sig",
            b64(br#"{"alg":"RS256"}"#)
        )));
        assert!(!looks_like_jws("opaque-token-value"));
        assert!(!looks_like_jws("a.b.c"));
        // Auth0-style JWE: five segments.
        assert!(!looks_like_jws(&format!(
            "{}.a.b.c.d",
            b64(br#"{"alg":"dir","enc":"A256GCM"}"#)
        )));
    }
}
