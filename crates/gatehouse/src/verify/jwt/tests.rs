//! Tests of the JWT verifier against a mock identity provider: the checks of [`super`] in
//! order (header, claims, key, signature), key rotation, configuration and discovery errors.

use std::time::Duration;

use serde_json::json;
use url::Url;

use super::*;
use crate::verify::UnavailableReason;
use crate::verify::discovery::DiscoveryError;
use crate::verify::fetch::FetchError;
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
