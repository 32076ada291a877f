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
//!
//! This file holds the verifier and that flow; `config.rs` its configuration and errors,
//! `jws.rs` the parsing of step 1, `claims.rs` the reading of claim values.

mod claims;
mod config;
mod jws;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// Signature algorithms (re-exported from `jsonwebtoken`; parse names with `str::parse`).
pub use jsonwebtoken::Algorithm;
use jsonwebtoken::{AlgorithmFamily, DecodingKey};
use serde_json::Value;

use crate::caller::{AccessToken, Caller, Principal, TokenKind};
use crate::verify::discovery::discover;
use crate::verify::fetch::Fetcher;
use crate::verify::jwks::JwksCache;
use crate::verify::{BoxFuture, InvalidReason, TokenVerifier, VerifyError};

pub use claims::AudiencePolicy;
use claims::str_claim;
pub(crate) use claims::{audiences, collect_scopes, now_secs, numeric_date, system_time_from_secs};
use config::validate;
pub use config::{
    DEFAULT_ALGORITHMS, DEFAULT_LEEWAY, DEFAULT_MAX_TOKEN_BYTES, HmacSecret, JwtConfigError,
    JwtIssuerConfig, JwtSetupError, MAX_LEEWAY, TypPolicy,
};
pub(crate) use jws::{ParsedJws, decode_unique_object, is_b64url, looks_like_jws, parse_jws};

/// Verifies JWT access tokens of one issuer.
pub struct JwtVerifier {
    issuer: Arc<str>,
    audiences: HashSet<String>,
    audience_policy: AudiencePolicy,
    audience_from_client_id: bool,
    required_claims: Vec<(String, String)>,
    algorithms: Vec<Algorithm>,
    typ: TypPolicy,
    leeway: f64,
    scope_claims: Vec<String>,
    tenant_claim: Option<String>,
    jwks: Option<JwksCache>,
    hmac: Option<DecodingKey>,
    max_token_bytes: usize,
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

    /// Builds a verifier whose keys are the usable keys of `jwks`, a JWKS document given in full
    /// and never fetched ([`JwksCache::fixed`]); `config.jwks_uri` is ignored. Not an API for
    /// applications: it lets the fuzz targets (`crates/gatehouse-fuzz-targets`) run the whole
    /// verification, signature included, with a fixed key set and no network.
    #[doc(hidden)]
    pub fn with_fixed_keys(
        config: JwtIssuerConfig,
        jwks: &serde_json::Value,
    ) -> Result<Self, JwtConfigError> {
        validate(&config)?;
        let cache = JwksCache::fixed(config.issuer.as_str(), jwks, &config.algorithms)
            .map_err(JwtConfigError::Fetch)?;
        Ok(Self::assemble(config, Some(cache)))
    }

    fn assemble(config: JwtIssuerConfig, jwks: Option<JwksCache>) -> Self {
        if config.dangerous_audience_from_client_id {
            tracing::warn!(
                issuer = %config.issuer,
                "dangerous_audience_from_client_id: tokens without aud are accepted for their \
                 client_id; a client ID does not say which resource a token is for"
            );
        }
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
            audience_policy: config.audience_policy,
            audience_from_client_id: config.dangerous_audience_from_client_id,
            required_claims: config.required_claims,
            algorithms: config.algorithms,
            typ: config.typ,
            leeway: config.leeway.as_secs_f64(),
            scope_claims,
            tenant_claim: config.tenant_claim,
            jwks,
            hmac,
            max_token_bytes: config.max_token_bytes,
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
        let checked = self.check_before_key(&jws)?;
        let key = match self.key_held(&jws, checked.alg) {
            Some(key) => key?,
            // Only JWKS keys can be missing: an unknown `kid` triggers a bounded refresh.
            None => match &self.jwks {
                Some(jwks) => {
                    Key::Jwks(jwks.resolve(jws.header.kid.as_deref(), checked.alg).await?)
                }
                None => return Err(InvalidReason::AlgorithmNotAllowed.into()),
            },
        };
        self.finish(jws, checked, key.as_ref())
    }

    /// [`JwtVerifier::verify_parsed`] with the keys held now, never fetching: `None` when the
    /// token's key is not among them (deciding needs a JWKS refresh).
    pub(crate) fn verify_parsed_locally(
        &self,
        jws: ParsedJws<'_>,
    ) -> Option<Result<Caller, VerifyError>> {
        let checked = match self.check_before_key(&jws) {
            Ok(c) => c,
            Err(e) => return Some(Err(e)),
        };
        Some(match self.key_held(&jws, checked.alg)? {
            Ok(key) => self.finish(jws, checked, key.as_ref()),
            Err(e) => Err(e),
        })
    }

    /// Steps 2 and 3 of the module docs: everything that needs no key.
    fn check_before_key(&self, jws: &ParsedJws<'_>) -> Result<Checked, VerifyError> {
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
        let auds = match c.get("aud") {
            Some(v) => audiences(v).ok_or(InvalidReason::MissingClaim)?,
            // Only where configured (Cognito): the client the token was issued to stands in.
            None if self.audience_from_client_id => c
                .get("client_id")
                .and_then(Value::as_str)
                .map(|id| vec![id.to_owned()])
                .ok_or(InvalidReason::MissingClaim)?,
            None => return Err(InvalidReason::MissingClaim.into()),
        };
        for (name, value) in &self.required_claims {
            if c.get(name).and_then(Value::as_str) != Some(value.as_str()) {
                return Err(InvalidReason::MissingClaim.into());
            }
        }
        if auds.is_empty() {
            return Err(InvalidReason::MissingClaim.into());
        }
        // E7, A22: minted for this resource (and, with `exact`, for nothing else).
        if !self
            .audience_policy
            .admits(&auds, |a| self.audiences.contains(a))
        {
            return Err(InvalidReason::AudienceMismatch.into());
        }
        let subject = match c.get("sub") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(InvalidReason::MissingClaim.into()),
        };
        Ok(Checked {
            alg,
            exp,
            auds,
            subject,
        })
    }

    /// Step 4 without fetching: the HMAC secret, or a key of the JWKS held now. `None` when the
    /// JWKS would have to be refreshed to decide.
    fn key_held(&self, jws: &ParsedJws<'_>, alg: Algorithm) -> Option<Result<Key, VerifyError>> {
        if alg.family() == AlgorithmFamily::Hmac {
            return Some(
                self.hmac
                    .clone()
                    .map(Key::Hmac)
                    .ok_or(InvalidReason::AlgorithmNotAllowed.into()),
            );
        }
        let Some(jwks) = &self.jwks else {
            return Some(Err(InvalidReason::AlgorithmNotAllowed.into()));
        };
        jwks.held(jws.header.kid.as_deref(), alg)
            .map(|k| k.map(Key::Jwks))
    }

    /// Step 5, then the caller.
    fn finish(
        &self,
        jws: ParsedJws<'_>,
        checked: Checked,
        key: &DecodingKey,
    ) -> Result<Caller, VerifyError> {
        if !check_signature(&jws, key, checked.alg) {
            return Err(InvalidReason::BadSignature.into());
        }
        let Checked {
            exp, auds, subject, ..
        } = checked;
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

/// What the key-free checks found, for the signature check and the caller.
struct Checked {
    alg: Algorithm,
    exp: f64,
    auds: Vec<String>,
    subject: Option<String>,
}

/// The key a token is checked with.
enum Key {
    Hmac(DecodingKey),
    Jwks(Arc<crate::verify::jwks::VerificationKey>),
}

impl AsRef<DecodingKey> for Key {
    fn as_ref(&self) -> &DecodingKey {
        match self {
            Key::Hmac(k) => k,
            Key::Jwks(k) => k.decoding_key(),
        }
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
            if token.len() > self.max_token_bytes {
                return Err(InvalidReason::TooLarge.into());
            }
            let jws = parse_jws(token.expose())?;
            self.verify_parsed(jws).await
        })
    }

    fn verify_locally(&self, token: &AccessToken) -> Option<Result<Caller, VerifyError>> {
        if token.len() > self.max_token_bytes {
            return Some(Err(InvalidReason::TooLarge.into()));
        }
        match parse_jws(token.expose()) {
            Ok(jws) => self.verify_parsed_locally(jws),
            Err(e) => Some(Err(e.into())),
        }
    }

    fn ready(&self) -> bool {
        self.jwks.as_ref().is_none_or(JwksCache::ready)
    }
}
