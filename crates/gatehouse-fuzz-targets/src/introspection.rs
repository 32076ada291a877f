//! Target `introspection`: the body of an RFC 7662 introspection response, decided as the
//! verifier decides it after its request ([`IntrospectionVerifier::decide_response`]).
//!
//! Invariants:
//! - an accepted response is a JSON object with `"active": true`, an `iss` that is absent or
//!   exactly the issuer, an `aud` naming this resource (absent only when the configuration
//!   dangerously allows it), and the caller carries the issuer and the kind `Introspected`;
//! - `inactive` only for `"active": false`; a response that is not an object with a boolean
//!   `active` is a bad response (`503`), never a refusal of the token (`401`);
//! - the configuration that accepts a missing `aud` accepts everything the strict one does.

use std::sync::OnceLock;

use gatehouse::verify::introspection::{ClientSecret, IntrospectionConfig, IntrospectionVerifier};
use gatehouse::verify::{InvalidReason, UnavailableReason};
use gatehouse::{Caller, TokenKind, VerifyError};
use serde_json::Value;

use crate::{AUDIENCE, ISSUER};

fn verifier(dangerous_accept_missing_audience: bool) -> &'static IntrospectionVerifier {
    static STRICT: OnceLock<IntrospectionVerifier> = OnceLock::new();
    static LENIENT: OnceLock<IntrospectionVerifier> = OnceLock::new();
    let cell = if dangerous_accept_missing_audience {
        &LENIENT
    } else {
        &STRICT
    };
    cell.get_or_init(|| {
        let mut c = IntrospectionConfig::new(
            ISSUER,
            "fuzz-client",
            ClientSecret::new("fuzz-secret"),
            AUDIENCE,
        );
        c.endpoint = Some(format!("{ISSUER}/introspect").parse().expect("a valid URL"));
        c.tenant_claim = Some("tenant".into());
        c.extra_scope_claims = vec!["permissions".into()];
        c.dangerous_accept_missing_audience = dangerous_accept_missing_audience;
        IntrospectionVerifier::new(c).expect("a valid configuration")
    })
}

/// Fuzz target `introspection` (see the module docs).
pub fn introspection(data: &[u8]) {
    let strict = verifier(false).decide_response(data);
    let lenient = verifier(true).decide_response(data);
    let parsed: Option<Value> = serde_json::from_slice(data).ok();
    let active = parsed.as_ref().and_then(|v| v.get("active"));
    for (result, require_aud) in [(&strict, true), (&lenient, false)] {
        match result {
            Ok(caller) => check_accepted(parsed.as_ref(), caller, require_aud),
            Err(VerifyError::Invalid(InvalidReason::Inactive)) => {
                assert_eq!(
                    active,
                    Some(&Value::Bool(false)),
                    "inactive without active: false"
                );
            }
            Err(VerifyError::Unavailable(UnavailableReason::IntrospectionBadResponse)) => {
                assert!(
                    !matches!(active, Some(Value::Bool(_))),
                    "a well-formed answer called a bad response"
                );
            }
            Err(VerifyError::Invalid(_)) => {
                assert_eq!(
                    active,
                    Some(&Value::Bool(true)),
                    "refused for a claim while not active"
                );
            }
            Err(other) => panic!("unexpected outcome {other:?}"),
        }
    }
    if strict.is_ok() {
        assert!(
            lenient.is_ok(),
            "the lenient configuration refused what the strict one accepted"
        );
    }
}

fn check_accepted(parsed: Option<&Value>, caller: &Caller, require_aud: bool) {
    let body = parsed
        .and_then(Value::as_object)
        .expect("accepted a response that is not a JSON object");
    assert_eq!(
        body.get("active"),
        Some(&Value::Bool(true)),
        "accepted without active: true"
    );
    if let Some(iss) = body.get("iss") {
        assert_eq!(iss, ISSUER, "accepted another issuer's answer");
    }
    match body.get("aud") {
        Some(_) => assert!(
            caller.audiences.iter().any(|a| a == AUDIENCE),
            "accepted an answer for another audience"
        ),
        None => assert!(!require_aud, "accepted an answer without aud"),
    }
    assert_eq!(&*caller.issuer, ISSUER);
    assert_eq!(caller.kind, TokenKind::Introspected);
}
