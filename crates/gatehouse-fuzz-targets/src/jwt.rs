//! Target `jwt`: the JWT verifier of one issuer with a fixed key set ([`crate::FIXED_JWKS`]),
//! signature included, on arbitrary token text.
//!
//! Invariants:
//! - the fast path that never fetches ([`TokenVerifier::verify_locally`]) and the full path
//!   ([`TokenVerifier::verify`]) agree, and the full path calls a key the set lacks unknown;
//! - an accepted token carries a signature that one of the fixed public keys verifies (checked
//!   here with keys decoded independently of the verifier), names the issuer and the audience,
//!   is not expired, and is typed `at+jwt`.

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse::verify::InvalidReason;
use gatehouse::verify::jwt::{Algorithm, JwtIssuerConfig, JwtVerifier};
use gatehouse::{AccessToken, Caller, TokenKind, TokenVerifier, VerifyError};
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::JwkSet;
use serde_json::Value;

use crate::{AUDIENCE, FIXED_JWKS, ISSUER};

/// The verifier of the `jwt` target: issuer [`ISSUER`], audience [`AUDIENCE`], the keys of
/// [`FIXED_JWKS`], default algorithms and `typ` policy, `tid` as the tenant claim and
/// `permissions` as extra scopes.
pub fn fixed_jwt_verifier() -> &'static JwtVerifier {
    static VERIFIER: OnceLock<JwtVerifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        let mut config = JwtIssuerConfig::new(ISSUER, AUDIENCE);
        config.tenant_claim = Some("tid".into());
        config.extra_scope_claims = vec!["permissions".into()];
        let jwks: Value = serde_json::from_str(FIXED_JWKS).expect("fixtures/jwks.json is JSON");
        let v = JwtVerifier::with_fixed_keys(config, &jwks).expect("a valid configuration");
        assert_eq!(
            v.jwks().and_then(|j| j.current()).map(|s| s.keys().len()),
            Some(3),
            "all three fixture keys are usable"
        );
        v
    })
}

/// The fixture's public keys, decoded by jsonwebtoken alone.
fn independent_keys() -> &'static [DecodingKey] {
    static KEYS: OnceLock<Vec<DecodingKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let set: JwkSet = serde_json::from_str(FIXED_JWKS).expect("fixtures/jwks.json");
        set.keys
            .iter()
            .map(|k| DecodingKey::from_jwk(k).expect("fixture key"))
            .collect()
    })
}

/// Fuzz target `jwt` (see the module docs).
pub fn jwt(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let token = AccessToken::new(text);
    let v = fixed_jwt_verifier();
    let full = futures::executor::block_on(v.verify(&token));
    match v.verify_locally(&token) {
        Some(local) => assert_eq!(
            summary(&local),
            summary(&full),
            "fast and full paths differ"
        ),
        None => assert_eq!(
            full.as_ref().err(),
            Some(&VerifyError::Invalid(InvalidReason::UnknownKey)),
            "a key the fixed set lacks"
        ),
    }
    if let Ok(caller) = &full {
        check_accepted(text, caller);
    }
}

type Summary = (
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    Vec<String>,
    u64,
);

fn summary(r: &Result<Caller, VerifyError>) -> Result<Summary, VerifyError> {
    r.as_ref()
        .map(|c| {
            (
                c.subject.clone(),
                c.client_id.clone(),
                c.scopes.to_space_separated(),
                c.tenant.clone(),
                c.audiences.clone(),
                c.expires_at_unix(),
            )
        })
        .map_err(Clone::clone)
}

fn check_accepted(token: &str, caller: &Caller) {
    assert_eq!(&*caller.issuer, ISSUER);
    assert!(caller.audiences.iter().any(|a| a == AUDIENCE));
    assert_eq!(caller.kind, TokenKind::Jwt);

    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        panic!("accepted token is not three segments");
    };
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).expect("header b64"))
        .expect("header JSON");
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).expect("payload b64"))
        .expect("payload JSON");
    let alg: Algorithm = header["alg"]
        .as_str()
        .expect("alg")
        .parse()
        .expect("known alg");
    let typ = header["typ"].as_str().expect("typ").to_ascii_lowercase();
    assert!(
        typ == "at+jwt" || typ == "application/at+jwt",
        "typ {typ:?} accepted"
    );
    assert_eq!(claims["iss"], ISSUER);
    let exp = claims["exp"].as_f64().expect("numeric exp");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64();
    assert!(exp + 60.0 > now, "expired token accepted");
    let signing_input = &token[..h.len() + 1 + p.len()];
    assert!(
        independent_keys().iter().any(|k| {
            jsonwebtoken::crypto::verify(sig, signing_input.as_bytes(), k, alg).unwrap_or(false)
        }),
        "accepted a token no fixed key signed"
    );
}
