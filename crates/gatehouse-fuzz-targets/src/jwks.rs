//! Target `jwks`: a JWKS document as an issuer's `jwks_uri` could serve it, parsed as the key
//! cache parses it ([`gatehouse::verify::jwks::parse_jwks`]: JSON, then key by key).
//!
//! Invariants:
//! - the whole set is the keys of its entries parsed one by one (one bad key never spoils the
//!   others, and nothing is invented);
//! - a kept key comes from an entry that is not symmetric (`kty: oct`), not for encryption, not
//!   restricted away from `verify`, names its `kid` exactly, and may only be used with allowed,
//!   asymmetric algorithms that suit its key type;
//! - a kept key never verifies a signature nobody made (its decoded material is usable without
//!   panicking).

use gatehouse::verify::jwks::{VerificationKey, parse_jwks};
use gatehouse::verify::jwt::{Algorithm, DEFAULT_ALGORITHMS};
use jsonwebtoken::AlgorithmFamily;
use serde_json::{Value, json};
use std::sync::Arc;

/// A signature nobody made, as long as a 2048-bit RSA signature.
fn forged_signature() -> &'static str {
    static SIG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SIG.get_or_init(|| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([1u8; 256])
    })
}

/// Fuzz target `jwks` (see the module docs).
pub fn jwks(data: &[u8]) {
    // The same parse as the fetcher's.
    let Ok(doc) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    // Half the inputs with a narrower allow-list, so that filtering by it is exercised.
    let allowed: &[Algorithm] = if data.len().is_multiple_of(2) {
        DEFAULT_ALGORITHMS
    } else {
        &[Algorithm::RS256, Algorithm::ES256, Algorithm::HS256]
    };
    let all = parse_jwks(&doc, allowed);
    let Some(entries) = doc.get("keys").and_then(Value::as_array) else {
        assert!(all.is_empty(), "keys without a keys array");
        return;
    };
    let mut one_by_one = Vec::new();
    for entry in entries {
        let kept = parse_jwks(&json!({ "keys": [entry] }), allowed);
        assert!(kept.len() <= 1);
        for key in &kept {
            check_key(entry, key, allowed);
        }
        one_by_one.extend(kept);
    }
    assert_eq!(
        describe(&all),
        describe(&one_by_one),
        "set ≠ its keys one by one"
    );
}

fn describe(keys: &[Arc<VerificationKey>]) -> Vec<(Option<String>, Vec<Algorithm>)> {
    keys.iter()
        .map(|k| (k.kid().map(str::to_owned), k.algorithms().to_vec()))
        .collect()
}

fn check_key(entry: &Value, key: &VerificationKey, allowed: &[Algorithm]) {
    let kty = entry["kty"].as_str().expect("a kept key has a string kty");
    assert_ne!(kty, "oct", "symmetric key kept");
    // JSON `null` members count as absent.
    let member = |name: &str| entry.get(name).filter(|v| !v.is_null());
    if let Some(u) = member("use") {
        assert_eq!(u, "sig", "non-signature key kept");
    }
    if let Some(ops) = member("key_ops") {
        let ops = ops.as_array().expect("key_ops is an array");
        assert!(
            ops.iter().any(|o| o == "verify"),
            "key_ops without verify kept"
        );
    }
    assert_eq!(
        key.kid(),
        entry.get("kid").and_then(Value::as_str),
        "kid changed"
    );
    assert!(!key.algorithms().is_empty(), "key without algorithms");
    let family = match kty {
        "RSA" => AlgorithmFamily::Rsa,
        "EC" => AlgorithmFamily::Ec,
        "OKP" => AlgorithmFamily::Ed,
        other => panic!("key of kty {other:?} kept"),
    };
    for alg in key.algorithms() {
        assert!(allowed.contains(alg), "{alg:?} not in the allow-list");
        assert_eq!(alg.family(), family, "{alg:?} for a {kty} key");
        if let Some(a) = member("alg") {
            assert_eq!(
                a.as_str(),
                Some(format!("{alg:?}").as_str()),
                "alg ≠ the JWK's"
            );
        }
        let forged = jsonwebtoken::crypto::verify(
            forged_signature(),
            b"eyJhbGciOiJub25lIn0.e30",
            key.decoding_key(),
            *alg,
        );
        assert!(!matches!(forged, Ok(true)), "a forged signature verified");
    }
}
