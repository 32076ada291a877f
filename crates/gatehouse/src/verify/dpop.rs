//! DPoP proofs (RFC 9449): the checks a resource server makes on the `DPoP` header before it
//! accepts a sender-constrained access token (§4.3, §7.1), and RFC 7638 key thumbprints, which
//! bind a token (`cnf.jkt`) to the key that signs the proofs.
//!
//! [`DpopVerifier::verify`] runs the §4.3 checks in order: one well-formed JWS (unique member
//! names, at most [`MAX_PROOF_BYTES`]); `typ` exactly `dpop+jwt`; an asymmetric algorithm from
//! the allow-list; a public `jwk` in the header (no private members, RSA ≥ 2048 bits) that
//! verifies the signature; `jti`, `htm`, `htu`, `iat` present; `htm` the request's method; `htu`
//! the request's URI, both normalised (RFC 3986 §6.2.2–6.2.3) and without query or fragment;
//! `iat` within the window; `ath` the SHA-256 of the access token presented with it (§4.3 step
//! 11, §7.1); the key's thumbprint the one the token is bound to (§7.1, RFC 7638); and last, the
//! `jti` not seen before within the window (§11.1), in a cache bounded in memory per replica.
//!
//! With a nonce key configured ([`NonceConfig`], RFC 9449 §9), proofs must also carry a
//! server nonce: an AES-256-GCM encryption of the time it was issued under that key, so any
//! replica holding the key can check any replica's nonce — no shared store. A missing, forged or
//! stale nonce is answered `use_dpop_nonce` with a fresh one.
//!
//! Errors say which check failed, for logs; clients get one fixed `invalid_dpop_proof`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

use crate::verify::jwt::{decode_unique_object, is_b64url};

/// Binds nonces to their use, so the same key could seal something else without confusion.
const NONCE_AAD: &[u8] = b"gatehouse dpop nonce v1";

/// Longest proof read: a P-521 or RSA-4096 proof with its key is well under it.
pub const MAX_PROOF_BYTES: usize = 8 * 1024;

/// What a proof is checked against.
#[derive(Debug, Clone)]
pub struct DpopConfig {
    /// Accepted proof algorithms (asymmetric only). Default ES256, ES384, EdDSA, RS256, PS256.
    pub algorithms: Vec<Algorithm>,
    /// Oldest `iat` accepted. Default 60 s: a proof is made for one request, just before it.
    pub max_age: Duration,
    /// How far in the future `iat` may be (clock skew). Default 5 s.
    pub leeway: Duration,
    /// Most `jti`s remembered per replica. Default 100,000; past it the oldest are forgotten
    /// first, which a replay inside the window could then pass (size it to the request rate ×
    /// the window).
    pub replay_capacity: u64,
    /// Server nonces (RFC 9449 §9): none by default.
    pub nonce: Option<NonceConfig>,
}

/// Server-provided DPoP nonces.
#[derive(Clone)]
pub struct NonceConfig {
    /// The AES-256-GCM key nonces are sealed with; the same on every replica.
    pub key: [u8; 32],
    /// How long a nonce stays good. Default 300 s.
    pub lifetime: Duration,
}

impl NonceConfig {
    /// Nonces sealed with a key derived from `secret` (SHA-256 of it: any secret string of
    /// enough entropy will do), good for five minutes.
    pub fn from_secret(secret: &[u8]) -> Self {
        let mut key = [0u8; 32];
        key.copy_from_slice(digest(&SHA256, secret).as_ref());
        Self {
            key,
            lifetime: Duration::from_secs(300),
        }
    }
}

impl std::fmt::Debug for NonceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonceConfig")
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl Default for DpopConfig {
    fn default() -> Self {
        Self {
            algorithms: vec![
                Algorithm::ES256,
                Algorithm::ES384,
                Algorithm::EdDSA,
                Algorithm::RS256,
                Algorithm::PS256,
            ],
            max_age: Duration::from_secs(60),
            leeway: Duration::from_secs(5),
            replay_capacity: 100_000,
            nonce: None,
        }
    }
}

/// Whether an issuer's tokens may, or must, be DPoP-bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DpopMode {
    /// The `DPoP` scheme is refused; a bound token is refused too (it cannot come as Bearer).
    #[default]
    Off,
    /// Bearer tokens, and DPoP-bound tokens with their proofs.
    Allowed,
    /// DPoP-bound tokens with their proofs only.
    Required,
}

/// Why a proof was refused (for logs; the client sees `invalid_dpop_proof`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DpopError {
    /// The `DPoP` scheme without a `DPoP` header (or with several).
    #[error("proof missing")]
    Missing,
    /// Not a compact JWS of JSON objects, duplicate members, too large.
    #[error("malformed proof")]
    Malformed,
    /// `typ` is not `dpop+jwt`.
    #[error("proof typ is not dpop+jwt")]
    WrongType,
    /// `alg` is symmetric, `none`, not allowed, or not the key's.
    #[error("proof algorithm not allowed")]
    Algorithm,
    /// No `jwk`, a private or unusable one.
    #[error("proof key missing, private or unusable")]
    Key,
    /// The signature does not verify with the header's key.
    #[error("proof signature invalid")]
    Signature,
    /// `jti`, `htm`, `htu` or `iat` missing or of the wrong type; `ath` missing with a token.
    #[error("proof claim missing")]
    MissingClaim,
    /// `htm` is not the request's method.
    #[error("proof htm mismatch")]
    Method,
    /// `htu` is not the request's URI.
    #[error("proof htu mismatch")]
    Uri,
    /// `iat` too old or in the future.
    #[error("proof iat outside the window")]
    Time,
    /// `ath` is not the hash of the access token.
    #[error("proof ath mismatch")]
    TokenHash,
    /// The key is not the one the token is bound to.
    #[error("proof key is not the token's")]
    Binding,
    /// This `jti` was seen within the window.
    #[error("proof replayed")]
    Replay,
    /// Nonces are required and the proof has none, a forged one or a stale one (§9): the client
    /// retries with the fresh nonce it is given.
    #[error("proof nonce missing or stale")]
    UseNonce,
}

/// The request a proof must match.
#[derive(Debug, Clone, Copy)]
pub struct ProofTarget<'a> {
    /// The HTTP method.
    pub method: &'a str,
    /// The request's URI as the client addressed it (scheme, authority, path; any query or
    /// fragment is ignored).
    pub uri: &'a str,
    /// The access token sent with the proof, if any.
    pub access_token: Option<&'a str>,
    /// The thumbprint the token is bound to (`cnf.jkt`), if any.
    pub bound_jkt: Option<&'a str>,
}

/// Checks DPoP proofs and remembers their `jti`s. One per resource server; cheap to share.
pub struct DpopVerifier {
    config: DpopConfig,
    seen: moka::sync::Cache<String, ()>,
    nonce_key: Option<aws_lc_rs::aead::RandomizedNonceKey>,
}

impl DpopError {
    /// Stable reason code for logs and metrics.
    pub fn code(self) -> &'static str {
        match self {
            Self::Missing => "dpop.missing",
            Self::Malformed => "dpop.malformed",
            Self::WrongType => "dpop.typ",
            Self::Algorithm => "dpop.algorithm",
            Self::Key => "dpop.key",
            Self::Signature => "dpop.signature",
            Self::MissingClaim => "dpop.claim_missing",
            Self::Method => "dpop.htm",
            Self::Uri => "dpop.htu",
            Self::Time => "dpop.iat",
            Self::TokenHash => "dpop.ath",
            Self::Binding => "dpop.binding",
            Self::Replay => "dpop.replay",
            Self::UseNonce => "dpop.use_nonce",
        }
    }
}

impl std::fmt::Debug for DpopVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopVerifier")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl DpopVerifier {
    /// A verifier with `config`.
    pub fn new(config: DpopConfig) -> Self {
        let seen = moka::sync::Cache::builder()
            .max_capacity(config.replay_capacity)
            // A `jti` older than the window cannot pass the `iat` check again.
            .time_to_live(config.max_age + config.leeway)
            .build();
        let nonce_key = config.nonce.as_ref().and_then(|n| {
            aws_lc_rs::aead::RandomizedNonceKey::new(&aws_lc_rs::aead::AES_256_GCM, &n.key).ok()
        });
        Self {
            config,
            seen,
            nonce_key,
        }
    }

    /// A fresh nonce (`None` without a nonce key): base64url of the AEAD nonce, then the sealed
    /// issue time and its tag.
    pub fn issue_nonce(&self) -> Option<String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        self.nonce_at(now)
    }

    fn nonce_at(&self, now: u64) -> Option<String> {
        let key = self.nonce_key.as_ref()?;
        let mut sealed = now.to_be_bytes().to_vec();
        let nonce = key
            .seal_in_place_append_tag(aws_lc_rs::aead::Aad::from(NONCE_AAD), &mut sealed)
            .ok()?;
        let mut out = nonce.as_ref().to_vec();
        out.extend_from_slice(&sealed);
        Some(URL_SAFE_NO_PAD.encode(out))
    }

    /// Whether `nonce` is one of ours and still good at `now`.
    fn nonce_good(&self, nonce: &str, now: u64) -> bool {
        let (Some(key), Some(n)) = (self.nonce_key.as_ref(), self.config.nonce.as_ref()) else {
            return true;
        };
        let Ok(mut bytes) = URL_SAFE_NO_PAD.decode(nonce) else {
            return false;
        };
        if bytes.len() != 12 + 8 + 16 {
            return false;
        }
        let mut sealed = bytes.split_off(12);
        let Ok(aead_nonce) = aws_lc_rs::aead::Nonce::try_assume_unique_for_key(&bytes) else {
            return false;
        };
        let Ok(plain) = key.open_in_place(
            aead_nonce,
            aws_lc_rs::aead::Aad::from(NONCE_AAD),
            &mut sealed,
        ) else {
            return false;
        };
        let Ok(issued) = <[u8; 8]>::try_from(&plain[..]).map(u64::from_be_bytes) else {
            return false;
        };
        issued <= now + self.config.leeway.as_secs()
            && now.saturating_sub(issued) <= n.lifetime.as_secs()
    }

    /// The algorithms proofs may use (for `WWW-Authenticate: DPoP algs=…` and the metadata).
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.config.algorithms
    }

    /// Checks `proof` for `target` at the current time; returns the key's thumbprint.
    pub fn verify(&self, proof: &str, target: &ProofTarget<'_>) -> Result<String, DpopError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        self.verify_at(proof, target, now)
    }

    fn verify_at(
        &self,
        proof: &str,
        target: &ProofTarget<'_>,
        now: u64,
    ) -> Result<String, DpopError> {
        if proof.len() > MAX_PROOF_BYTES {
            return Err(DpopError::Malformed);
        }
        let (signing_input, signature) = proof.rsplit_once('.').ok_or(DpopError::Malformed)?;
        let (header_b64, claims_b64) = signing_input.split_once('.').ok_or(DpopError::Malformed)?;
        if [header_b64, claims_b64, signature]
            .iter()
            .any(|s| s.is_empty() || !is_b64url(s))
        {
            return Err(DpopError::Malformed);
        }
        let header = decode_unique_object(header_b64).ok_or(DpopError::Malformed)?;
        let claims = decode_unique_object(claims_b64).ok_or(DpopError::Malformed)?;

        if header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
            return Err(DpopError::WrongType);
        }
        let alg: Algorithm = header
            .get("alg")
            .and_then(Value::as_str)
            .and_then(|a| a.parse().ok())
            .ok_or(DpopError::Algorithm)?;
        // RFC 9449 §4.3 step 5: never `none`, never a symmetric algorithm.
        if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
            || !self.config.algorithms.contains(&alg)
        {
            return Err(DpopError::Algorithm);
        }
        let jwk = header
            .get("jwk")
            .and_then(Value::as_object)
            .ok_or(DpopError::Key)?;
        let key = public_key(jwk, alg)?;
        match jsonwebtoken::crypto::verify(signature, signing_input.as_bytes(), &key, alg) {
            Ok(true) => {}
            _ => return Err(DpopError::Signature),
        }

        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        let jti = text("jti")
            .filter(|j| !j.is_empty())
            .ok_or(DpopError::MissingClaim)?;
        let htm = text("htm").ok_or(DpopError::MissingClaim)?;
        let htu = text("htu").ok_or(DpopError::MissingClaim)?;
        let iat = claims
            .get("iat")
            .and_then(Value::as_u64)
            .ok_or(DpopError::MissingClaim)?;
        // HTTP methods are case-sensitive (RFC 9110 §9.1).
        if htm != target.method {
            return Err(DpopError::Method);
        }
        match (normalize_htu(htu), normalize_htu(target.uri)) {
            (Some(a), Some(b)) if a == b => {}
            _ => return Err(DpopError::Uri),
        }
        let oldest = now.saturating_sub(self.config.max_age.as_secs());
        if iat < oldest || iat > now + self.config.leeway.as_secs() {
            return Err(DpopError::Time);
        }
        if let Some(token) = target.access_token {
            let ath = text("ath").ok_or(DpopError::MissingClaim)?;
            let expected = URL_SAFE_NO_PAD.encode(digest(&SHA256, token.as_bytes()));
            if !constant_time_eq(ath.as_bytes(), expected.as_bytes()) {
                return Err(DpopError::TokenHash);
            }
        }
        if self.nonce_key.is_some() && !text("nonce").is_some_and(|n| self.nonce_good(n, now)) {
            return Err(DpopError::UseNonce);
        }
        let thumbprint = jwk_thumbprint(jwk).ok_or(DpopError::Key)?;
        if let Some(bound) = target.bound_jkt
            && !constant_time_eq(bound.as_bytes(), thumbprint.as_bytes())
        {
            return Err(DpopError::Binding);
        }
        // Last: only a proof that passed everything else takes a place in the cache.
        if !self.seen.entry(jti.to_owned()).or_insert(()).is_fresh() {
            return Err(DpopError::Replay);
        }
        Ok(thumbprint)
    }
}

/// The verification key of a proof's `jwk`: public members only, of the family `alg` needs.
fn public_key(jwk: &Map<String, Value>, alg: Algorithm) -> Result<DecodingKey, DpopError> {
    // RFC 9449 §4.2: the header carries the public key; a private member means a client that
    // leaks its key, and `oct` would be a shared secret.
    const PRIVATE: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "k"];
    if PRIVATE.iter().any(|m| jwk.contains_key(*m)) {
        return Err(DpopError::Key);
    }
    let parsed: Jwk =
        serde_json::from_value(Value::Object(jwk.clone())).map_err(|_| DpopError::Key)?;
    let fits = match (&parsed.algorithm, alg) {
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES256) => p.curve == EllipticCurve::P256,
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES384) => p.curve == EllipticCurve::P384,
        (AlgorithmParameters::OctetKeyPair(p), Algorithm::EdDSA) => {
            p.curve == EllipticCurve::Ed25519
        }
        (
            AlgorithmParameters::RSA(p),
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512,
        ) => {
            // RFC 7518 §3.3: at least 2048 bits.
            let n = URL_SAFE_NO_PAD.decode(&p.n).map_err(|_| DpopError::Key)?;
            n.iter().skip_while(|b| **b == 0).count() * 8 >= 2048
        }
        _ => false,
    };
    if !fits {
        return Err(DpopError::Algorithm);
    }
    DecodingKey::from_jwk(&parsed).map_err(|_| DpopError::Key)
}

/// The RFC 7638 thumbprint (SHA-256, base64url) of a public JWK: its required members, in
/// lexicographic order, without whitespace. `None` for a key type it does not define or a
/// required member that is missing or not a string.
pub fn jwk_thumbprint(jwk: &Map<String, Value>) -> Option<String> {
    let kty = jwk.get("kty")?.as_str()?;
    let members: &[&str] = match kty {
        "EC" => &["crv", "kty", "x", "y"],
        "RSA" => &["e", "kty", "n"],
        "OKP" => &["crv", "kty", "x"],
        _ => return None,
    };
    let mut canonical = String::from("{");
    for (i, m) in members.iter().enumerate() {
        let v = jwk.get(*m)?.as_str()?;
        if i > 0 {
            canonical.push(',');
        }
        // serde_json writes JSON strings with the escaping RFC 7638 §3.3 asks for.
        canonical.push_str(&serde_json::to_string(m).ok()?);
        canonical.push(':');
        canonical.push_str(&serde_json::to_string(v).ok()?);
    }
    canonical.push('}');
    Some(URL_SAFE_NO_PAD.encode(digest(&SHA256, canonical.as_bytes())))
}

/// `htu` comparison form (RFC 9449 §4.3 step 9): scheme and host lower-cased (RFC 3986 §6.2.2.1),
/// the default port dropped (§6.2.3), an empty path as `/`, no query or fragment. `None` for
/// something that is not an absolute http(s) URI.
pub fn normalize_htu(uri: &str) -> Option<String> {
    let mut url = url::Url::parse(uri).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return None;
    }
    url.set_query(None);
    url.set_fragment(None);
    // `Url` already lower-cases scheme and host, drops default ports and gives `/` for an empty
    // path; it also resolves dot segments and normalises percent-encoding case.
    Some(url.to_string())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jws::{SigningAlg, SigningKey};
    use serde_json::json;

    const URI: &str = "https://mcp.example.com/mcp";
    const TOKEN: &str = "an-access-token";
    const NOW: u64 = 1_800_000_000;

    fn ath(token: &str) -> String {
        URL_SAFE_NO_PAD.encode(digest(&SHA256, token.as_bytes()))
    }

    /// A client key and a proof builder over it.
    struct Client {
        key: SigningKey,
    }

    impl Client {
        fn new(alg: SigningAlg) -> Self {
            Self {
                key: SigningKey::generate(alg).unwrap(),
            }
        }

        fn jwk(&self) -> Value {
            self.key.public_jwk().clone()
        }

        fn jkt(&self) -> String {
            jwk_thumbprint(self.jwk().as_object().unwrap()).unwrap()
        }

        fn header(&self) -> Value {
            json!({"typ": "dpop+jwt", "alg": self.key.alg().as_str(), "jwk": self.jwk()})
        }

        fn claims(&self, jti: &str) -> Value {
            json!({"jti": jti, "htm": "POST", "htu": URI, "iat": NOW, "ath": ath(TOKEN)})
        }

        fn proof(&self, edit: impl FnOnce(&mut Value, &mut Value)) -> String {
            let mut h = self.header();
            let mut c = self.claims(&crate::jws::random_id());
            edit(&mut h, &mut c);
            self.key.sign_jws(&h, &c)
        }
    }

    fn target<'a>(bound: Option<&'a str>) -> ProofTarget<'a> {
        ProofTarget {
            method: "POST",
            uri: URI,
            access_token: Some(TOKEN),
            bound_jkt: bound,
        }
    }

    fn verifier() -> DpopVerifier {
        DpopVerifier::new(DpopConfig::default())
    }

    #[test]
    fn a_good_proof_passes_and_names_its_key() {
        let v = verifier();
        for alg in [SigningAlg::ES256, SigningAlg::RS256] {
            let c = Client::new(alg);
            let jkt = c.jkt();
            let proof = c.proof(|_, _| {});
            assert_eq!(v.verify_at(&proof, &target(Some(&jkt)), NOW), Ok(jkt));
        }
        // Query and fragment are not part of htu; scheme and host case, the default port too.
        let c = Client::new(SigningAlg::ES256);
        let proof = c.proof(|_, claims| claims["htu"] = json!("HTTPS://MCP.example.com:443/mcp"));
        let t = ProofTarget {
            uri: "https://mcp.example.com/mcp?x=1#f",
            ..target(None)
        };
        assert!(v.verify_at(&proof, &t, NOW).is_ok());
    }

    #[test]
    fn every_bad_proof_is_refused_for_its_reason() {
        let v = verifier();
        let c = Client::new(SigningAlg::ES256);
        let other = Client::new(SigningAlg::ES256);
        let jkt = c.jkt();
        let bad = |edit: &dyn Fn(&mut Value, &mut Value)| c.proof(|h, cl| edit(h, cl));
        let cases: Vec<(&str, String, DpopError)> = vec![
            (
                "typ JWT",
                bad(&|h, _| h["typ"] = json!("JWT")),
                DpopError::WrongType,
            ),
            (
                "no typ",
                bad(&|h, _| drop(h.as_object_mut().unwrap().remove("typ"))),
                DpopError::WrongType,
            ),
            (
                "alg HS256",
                bad(&|h, _| h["alg"] = json!("HS256")),
                DpopError::Algorithm,
            ),
            (
                "alg none",
                bad(&|h, _| h["alg"] = json!("none")),
                DpopError::Algorithm,
            ),
            (
                "alg of another family",
                bad(&|h, _| h["alg"] = json!("RS256")),
                DpopError::Algorithm,
            ),
            (
                "no jwk",
                bad(&|h, _| drop(h.as_object_mut().unwrap().remove("jwk"))),
                DpopError::Key,
            ),
            (
                "private jwk",
                bad(&|h, _| h["jwk"]["d"] = json!("AAAA")),
                DpopError::Key,
            ),
            (
                "another key in the header",
                bad(&|h, _| h["jwk"] = other.jwk()),
                DpopError::Signature,
            ),
            (
                "no jti",
                bad(&|_, cl| drop(cl.as_object_mut().unwrap().remove("jti"))),
                DpopError::MissingClaim,
            ),
            (
                "no iat",
                bad(&|_, cl| drop(cl.as_object_mut().unwrap().remove("iat"))),
                DpopError::MissingClaim,
            ),
            (
                "iat a string",
                bad(&|_, cl| cl["iat"] = json!(NOW.to_string())),
                DpopError::MissingClaim,
            ),
            (
                "no ath with a token",
                bad(&|_, cl| drop(cl.as_object_mut().unwrap().remove("ath"))),
                DpopError::MissingClaim,
            ),
            (
                "htm GET",
                bad(&|_, cl| cl["htm"] = json!("GET")),
                DpopError::Method,
            ),
            (
                "htm lower case",
                bad(&|_, cl| cl["htm"] = json!("post")),
                DpopError::Method,
            ),
            (
                "htu other path",
                bad(&|_, cl| cl["htu"] = json!("https://mcp.example.com/other")),
                DpopError::Uri,
            ),
            (
                "htu other host",
                bad(&|_, cl| cl["htu"] = json!("https://evil.example.com/mcp")),
                DpopError::Uri,
            ),
            (
                "htu http",
                bad(&|_, cl| cl["htu"] = json!("http://mcp.example.com/mcp")),
                DpopError::Uri,
            ),
            (
                "htu relative",
                bad(&|_, cl| cl["htu"] = json!("/mcp")),
                DpopError::Uri,
            ),
            (
                "iat too old",
                bad(&|_, cl| cl["iat"] = json!(NOW - 61)),
                DpopError::Time,
            ),
            (
                "iat in the future",
                bad(&|_, cl| cl["iat"] = json!(NOW + 6)),
                DpopError::Time,
            ),
            (
                "ath of another token",
                bad(&|_, cl| cl["ath"] = json!(ath("other-token"))),
                DpopError::TokenHash,
            ),
        ];
        for (name, proof, want) in cases {
            assert_eq!(
                v.verify_at(&proof, &target(Some(&jkt)), NOW),
                Err(want),
                "{name}"
            );
        }
        // Bound to another key.
        let proof = c.proof(|_, _| {});
        assert_eq!(
            v.verify_at(&proof, &target(Some(&other.jkt())), NOW),
            Err(DpopError::Binding)
        );
        // Signed by another key than the header's.
        let mut h = c.header();
        h["jwk"] = c.jwk();
        let forged = other.key.sign_jws(&h, &c.claims("forged"));
        assert_eq!(
            v.verify_at(&forged, &target(None), NOW),
            Err(DpopError::Signature)
        );
    }

    #[test]
    fn malformed_proofs_are_refused() {
        let v = verifier();
        let c = Client::new(SigningAlg::ES256);
        let good = c.proof(|_, _| {});
        let (input, sig) = good.rsplit_once('.').unwrap();
        let b64 = |s: &str| URL_SAFE_NO_PAD.encode(s);
        let dup_claims = format!(
            "{}.{}.{sig}",
            input.split_once('.').unwrap().0,
            b64(
                r#"{"jti":"a","jti":"b","htm":"POST","htu":"https://mcp.example.com/mcp","iat":1}"#
            )
        );
        for proof in [
            String::new(),
            "a.b".to_owned(),
            format!("{input}."),
            format!("{input}.{sig}.x"),
            format!("{}.{sig}", b64("[]")),
            format!("{}.{}.{sig}", b64("{}"), b64("not json")),
            dup_claims,
            format!("{good}{}", "A".repeat(MAX_PROOF_BYTES)),
        ] {
            assert!(
                v.verify_at(&proof, &target(None), NOW).is_err(),
                "{proof:.40}"
            );
        }
    }

    #[test]
    fn a_proof_is_good_once() {
        let v = verifier();
        let c = Client::new(SigningAlg::ES256);
        let proof = c.proof(|_, _| {});
        assert!(v.verify_at(&proof, &target(None), NOW).is_ok());
        assert_eq!(
            v.verify_at(&proof, &target(None), NOW),
            Err(DpopError::Replay)
        );
        // A refused proof does not use up its jti.
        let late = c.proof(|_, cl| {
            cl["jti"] = json!("fresh");
            cl["iat"] = json!(NOW - 600);
        });
        assert_eq!(v.verify_at(&late, &target(None), NOW), Err(DpopError::Time));
        let on_time = c.proof(|_, cl| cl["jti"] = json!("fresh"));
        assert!(v.verify_at(&on_time, &target(None), NOW).is_ok());
    }

    #[test]
    fn with_a_nonce_key_proofs_need_a_fresh_nonce_from_any_replica() {
        let config = || DpopConfig {
            nonce: Some(NonceConfig::from_secret(
                b"a shared secret of enough entropy",
            )),
            ..DpopConfig::default()
        };
        let (a, b) = (DpopVerifier::new(config()), DpopVerifier::new(config()));
        let other = DpopVerifier::new(DpopConfig {
            nonce: Some(NonceConfig::from_secret(b"another secret")),
            ..DpopConfig::default()
        });
        let c = Client::new(SigningAlg::ES256);
        let from_a = a.nonce_at(NOW).unwrap();
        assert_ne!(from_a, a.nonce_at(NOW).unwrap(), "every nonce is new");
        let with = |nonce: &str| {
            let nonce = nonce.to_owned();
            c.proof(move |_, cl| cl["nonce"] = json!(nonce))
        };
        // Replica b takes replica a's nonce: no shared store.
        assert!(b.verify_at(&with(&from_a), &target(None), NOW + 10).is_ok());
        let cases = [
            ("no nonce", c.proof(|_, _| {})),
            ("stale", with(&a.nonce_at(NOW - 301).unwrap())),
            ("from the future", with(&a.nonce_at(NOW + 60).unwrap())),
            ("another key's", with(&other.nonce_at(NOW).unwrap())),
            ("garbage", with("bm90LWEtbm9uY2U")),
        ];
        for (name, proof) in cases {
            assert_eq!(
                b.verify_at(&proof, &target(None), NOW),
                Err(DpopError::UseNonce),
                "{name}"
            );
        }
        // Without a nonce key nothing is asked.
        assert_eq!(verifier().nonce_at(NOW), None);
    }

    #[test]
    fn small_rsa_keys_are_refused() {
        // A 1024-bit modulus, as a JWK (never generated: only its size matters).
        let mut jwk = Map::new();
        jwk.insert("kty".into(), json!("RSA"));
        jwk.insert("e".into(), json!("AQAB"));
        jwk.insert("n".into(), json!(URL_SAFE_NO_PAD.encode([0xC5u8; 128])));
        assert_eq!(
            public_key(&jwk, Algorithm::RS256).err(),
            Some(DpopError::Algorithm)
        );
    }

    #[test]
    fn thumbprints_follow_rfc_7638() {
        // RFC 7638 §3.1's example key and thumbprint.
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(
            jwk_thumbprint(jwk.as_object().unwrap()).as_deref(),
            Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        );
        // Members other than the required ones do not count; a missing one is no thumbprint.
        let mut trimmed = jwk.as_object().unwrap().clone();
        trimmed.remove("alg");
        trimmed.remove("kid");
        assert_eq!(
            jwk_thumbprint(&trimmed),
            jwk_thumbprint(jwk.as_object().unwrap())
        );
        trimmed.remove("e");
        assert_eq!(jwk_thumbprint(&trimmed), None);
        let oct = json!({"kty": "oct", "k": "c2VjcmV0"});
        assert_eq!(jwk_thumbprint(oct.as_object().unwrap()), None);
    }
}
