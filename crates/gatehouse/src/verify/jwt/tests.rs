//! Tests of the JWT verifier against a test authorization server (gatehouse-testkit): the checks
//! of [`super`] in order (header, claims, key, signature), key rotation, configuration and
//! discovery errors.

use std::time::Duration;

use gatehouse_testkit::{Alg, AttackerServer, TestAuthServer, TestKey, TokenBuilder, b64url, now};
use serde_json::json;
use url::Url;

use super::*;
use crate::verify::UnavailableReason;
use crate::verify::discovery::DiscoveryError;
use crate::verify::fetch::FetchError;

const AUD: &str = "https://mcp.example/mcp";

struct Fixture {
    ts: TestAuthServer,
    key: TestKey,
    verifier: JwtVerifier,
}

impl Fixture {
    /// A valid token signed by the issuer's RSA key `k1` (RS256), to be edited.
    fn token(&self) -> TokenBuilder {
        self.ts.token().key(&self.key)
    }
}

/// An RSA key with this `kid`.
fn rsa(kid: &str) -> TestKey {
    TestKey::generate(Alg::RS256).with_kid(kid)
}

/// An issuer publishing exactly `keys`, without `alg` (so an RSA key serves every RSA
/// algorithm), whose tokens say `aud: AUD`, `sub: user-1`, `client_id: client-1`.
async fn server(keys: Vec<TestKey>) -> TestAuthServer {
    let ts = TestAuthServer::builder()
        .audience(AUD)
        .subject("user-1")
        .client_id("client-1")
        .keys(keys)
        .start()
        .await;
    ts.set_jwks_omit_alg(true);
    ts
}

fn jwks_url(ts: &TestAuthServer) -> Url {
    ts.jwks_uri().parse().unwrap()
}

async fn fixture_with(edit: impl FnOnce(&mut JwtIssuerConfig)) -> Fixture {
    let key = rsa("k1");
    let ts = server(vec![
        key.clone(),
        TestKey::generate(Alg::ES256).with_kid("ec1"),
        TestKey::generate(Alg::EdDSA).with_kid("ed1"),
    ])
    .await;
    let mut config = JwtIssuerConfig::new(ts.issuer(), AUD);
    config.jwks_uri = Some(jwks_url(&ts));
    edit(&mut config);
    let verifier = JwtVerifier::discover(config).await.unwrap();
    assert!(verifier.ready());
    Fixture { ts, key, verifier }
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
    let rsa = rsa("rsa");
    let ec = TestKey::generate(Alg::ES256).with_kid("ec");
    let ed = TestKey::generate(Alg::EdDSA).with_kid("ed");
    let ts = server(vec![rsa.clone(), ec.clone(), ed.clone()]).await;
    let mut config = JwtIssuerConfig::new(ts.issuer(), AUD);
    config.jwks_uri = Some(jwks_url(&ts));
    config.tenant_claim = Some("tid".into());
    let v = JwtVerifier::discover(config).await.unwrap();
    for key in [
        rsa.clone().with_alg(Alg::RS256),
        rsa.clone().with_alg(Alg::RS384),
        rsa.clone().with_alg(Alg::RS512),
        rsa.clone().with_alg(Alg::PS256),
        rsa.clone().with_alg(Alg::PS512),
        ec.clone(),
        ed.clone(),
    ] {
        let alg = key.alg();
        let token = ts
            .token()
            .key(&key)
            .claim("tid", "tenant-7")
            .claim("jti", "j-1");
        let caller = check(&v, &token.sign())
            .await
            .unwrap_or_else(|e| panic!("{alg}: {e:?}"));
        assert_eq!(caller.issuer.as_ref(), ts.issuer());
        assert_eq!(caller.subject.as_deref(), Some("user-1"));
        assert_eq!(caller.client_id.as_deref(), Some("client-1"));
        assert_eq!(caller.tenant.as_deref(), Some("tenant-7"));
        assert_eq!(
            caller.scopes.to_space_separated(),
            "invoices:read invoices:write"
        );
        assert_eq!(caller.audiences, [AUD]);
        assert_eq!(caller.kind, TokenKind::Jwt);
        assert_eq!(
            caller.expires_at_unix(),
            token.claims_json()["exp"].as_u64().unwrap()
        );
        assert_eq!(caller.claims["jti"], "j-1");
    }
    assert_eq!(v.jwks().unwrap().fetch_count(), 1);
}

#[tokio::test]
async fn alg_none_and_unknown_algs_refused() {
    // E8 / E14: `none` is never consumed.
    let f = fixture().await;
    let none = f.token().no_kid().sign_alg_none();
    expect(
        &f.verifier,
        &none,
        invalid(InvalidReason::AlgorithmNotAllowed),
    )
    .await;
    let none_kid = f.token().sign_alg_none();
    expect(
        &f.verifier,
        &none_kid,
        invalid(InvalidReason::AlgorithmNotAllowed),
    )
    .await;
    for alg in ["None", "NONE", "RSA-OAEP", "ES512", "", "HS256 "] {
        let t = f.token().header_alg(alg).sign();
        expect(&f.verifier, &t, invalid(InvalidReason::AlgorithmNotAllowed)).await;
    }
    // alg of the wrong JSON type: malformed header.
    let t = f.token().header("alg", 256).sign();
    expect(&f.verifier, &t, invalid(InvalidReason::Malformed)).await;
}

#[tokio::test]
async fn hs256_with_rsa_public_key_as_secret_refused() {
    // E14: the classic RS256→HS256 key confusion.
    let f = fixture().await;
    let der = f.key.rsa_public_key_pkcs1_der().unwrap();
    let t = f.token().hs256(der).sign();
    expect(&f.verifier, &t, invalid(InvalidReason::AlgorithmNotAllowed)).await;
    // Also with the JWK JSON and the modulus as "secret".
    let jwk = serde_json::to_vec(&f.key.public_jwk_without_alg()).unwrap();
    expect(
        &f.verifier,
        &f.token().hs256(jwk).sign(),
        invalid(InvalidReason::AlgorithmNotAllowed),
    )
    .await;
}

#[tokio::test]
async fn hmac_only_with_configured_secret() {
    let secret = b"0123456789abcdef0123456789abcdef".to_vec();
    let rsa = rsa("k1");
    let ts = server(vec![rsa.clone()]).await;
    let mut config = JwtIssuerConfig::new(ts.issuer(), AUD);
    config.jwks_uri = Some(jwks_url(&ts));
    config.algorithms = vec![Algorithm::HS256, Algorithm::RS256];
    config.dangerous_allow_hmac_secret = Some(HmacSecret::new(secret.clone()).unwrap());
    assert!(!format!("{config:?}").contains("0123456789"));
    let v = JwtVerifier::discover(config).await.unwrap();
    let hs256 = ts.token().hs256(secret.clone()).no_kid().sign();
    check(&v, &hs256).await.unwrap();
    // The RSA public key is never an HMAC secret, even when HS256 is allowed.
    let forged = ts
        .token()
        .key(&rsa)
        .hs256(rsa.rsa_public_key_pkcs1_der().unwrap())
        .sign();
    expect(&v, &forged, invalid(InvalidReason::BadSignature)).await;
    check(&v, &ts.token().key(&rsa).sign()).await.unwrap();

    // Configuration mistakes are caught.
    let mut c = JwtIssuerConfig::new(ts.issuer(), AUD);
    c.jwks_uri = Some(jwks_url(&ts));
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
    let t = f.token().kid("ec1").sign();
    expect(&f.verifier, &t, invalid(InvalidReason::AlgorithmNotAllowed)).await;
    // A correct header but signed by another RSA key: bad signature.
    let other = rsa("k1");
    expect(
        &f.verifier,
        &f.token().key(&other).sign(),
        invalid(InvalidReason::BadSignature),
    )
    .await;
}

#[tokio::test]
async fn unknown_kid_then_rotation() {
    let f = fixture_with(|c| c.jwks.min_refresh_interval = Duration::ZERO).await;
    let new_key = rsa("k2");
    // E8: a key the issuer does not publish → refresh once → 401.
    expect(
        &f.verifier,
        &f.token().key(&new_key).sign(),
        invalid(InvalidReason::UnknownKey),
    )
    .await;
    assert_eq!(f.verifier.jwks().unwrap().fetch_count(), 2);
    // Rotation: published now → accepted after exactly one more refresh.
    f.ts.set_keys(vec![f.key.clone(), new_key.clone()]);
    check(&f.verifier, &f.token().key(&new_key).sign())
        .await
        .unwrap();
    assert_eq!(f.verifier.jwks().unwrap().fetch_count(), 3);
    check(&f.verifier, &f.token().key(&new_key).sign())
        .await
        .unwrap();
    assert_eq!(f.verifier.jwks().unwrap().fetch_count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_verifications_after_rotation_fetch_once() {
    // peers.md gap 6: N concurrent callers with a new kid share one JWKS fetch.
    let f = fixture_with(|c| c.jwks.min_refresh_interval = Duration::ZERO).await;
    let new_key = rsa("k2");
    f.ts.set_keys(vec![f.key.clone(), new_key.clone()]);
    let token = AccessToken::new(f.token().key(&new_key).sign());
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
    assert_eq!(f.ts.jwks_fetches(), 2);
}

#[tokio::test]
async fn odd_kids_are_just_unknown() {
    // E14: kid with path or quote characters matches nothing; no panic, no file access.
    let f = fixture().await;
    for kid in [
        "../../../../etc/passwd",
        "k1' OR '1'='1",
        "\"k1\"",
        "k1/../k1",
        "%2e%2e",
    ] {
        let t = f.token().kid(kid).sign();
        expect(&f.verifier, &t, invalid(InvalidReason::UnknownKey)).await;
    }
    let t = f.token().header("kid", json!(["k1"])).sign();
    expect(&f.verifier, &t, invalid(InvalidReason::Malformed)).await;
}

#[tokio::test]
async fn issuer_checks() {
    // E6 / A23 / A30.
    let f = fixture().await;
    expect(
        &f.verifier,
        &f.token().iss("https://other.example").sign(),
        invalid(InvalidReason::IssuerMismatch),
    )
    .await;
    expect(
        &f.verifier,
        &f.token().iss(&format!("{}/", f.ts.issuer())).sign(),
        invalid(InvalidReason::IssuerMismatch),
    )
    .await;
    expect(
        &f.verifier,
        &f.token().iss(&f.ts.issuer().to_uppercase()).sign(),
        invalid(InvalidReason::IssuerMismatch),
    )
    .await;
    expect(
        &f.verifier,
        &f.token().claim("iss", json!([f.ts.issuer()])).sign(),
        invalid(InvalidReason::MissingClaim),
    )
    .await;
    expect(
        &f.verifier,
        &f.token().without("iss").sign(),
        invalid(InvalidReason::MissingClaim),
    )
    .await;
}

#[tokio::test]
async fn key_of_issuer_x_never_validates_a_token_claiming_y() {
    // RFC 8725 §3.8: X's verifier refuses a token that says iss=Y even when signed by X's key.
    let x = fixture().await;
    let y = server(vec![TestKey::generate(Alg::ES256)]).await;
    expect(
        &x.verifier,
        &y.token().key(&x.key).sign(),
        invalid(InvalidReason::IssuerMismatch),
    )
    .await;
}

#[tokio::test]
async fn an_exact_audience_policy_refuses_tokens_good_elsewhere_too() {
    let f = fixture_with(|c| c.audience_policy = AudiencePolicy::Exact).await;
    let with_aud = |aud: Value| f.token().aud(aud).sign();
    // Accepted by the default policy (audience_checks): here a token that also names another
    // service could be replayed there, so it is refused.
    expect(
        &f.verifier,
        &with_aud(json!(["https://other.example", AUD])),
        invalid(InvalidReason::AudienceMismatch),
    )
    .await;
    let c = check(&f.verifier, &with_aud(json!([AUD]))).await.unwrap();
    assert_eq!(c.audiences, [AUD]);
    check(&f.verifier, &with_aud(json!(AUD))).await.unwrap();
    expect(
        &f.verifier,
        &with_aud(json!([])),
        invalid(InvalidReason::MissingClaim),
    )
    .await;
}

#[tokio::test]
async fn audience_checks() {
    // E7 / A22.
    let f = fixture().await;
    let with_aud = |aud: Value| f.token().aud(aud).sign();
    expect(
        &f.verifier,
        &with_aud(json!("https://other.example/mcp")),
        invalid(InvalidReason::AudienceMismatch),
    )
    .await;
    let c = check(
        &f.verifier,
        &with_aud(json!(["https://other.example", AUD])),
    )
    .await
    .unwrap();
    assert_eq!(c.audiences, ["https://other.example", AUD]);
    expect(
        &f.verifier,
        &with_aud(json!(["https://other.example"])),
        invalid(InvalidReason::AudienceMismatch),
    )
    .await;
    expect(
        &f.verifier,
        &with_aud(json!([])),
        invalid(InvalidReason::MissingClaim),
    )
    .await;
    expect(
        &f.verifier,
        &with_aud(json!([AUD, 7])),
        invalid(InvalidReason::MissingClaim),
    )
    .await;
    expect(
        &f.verifier,
        &with_aud(json!(format!("{AUD}/"))),
        invalid(InvalidReason::AudienceMismatch),
    )
    .await;
    expect(
        &f.verifier,
        &f.token().without("aud").sign(),
        invalid(InvalidReason::MissingClaim),
    )
    .await;
}

#[tokio::test]
async fn time_checks() {
    // E9 and A21.
    let f = fixture().await;
    let n = now();
    let with = |k: &str, v: Value| f.token().claim(k, v).sign();
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
    expect(
        &f.verifier,
        &f.token().without("exp").sign(),
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
    expect(
        &f.verifier,
        &f.token().exp(now() - 5).sign(),
        invalid(InvalidReason::Expired),
    )
    .await;
    let mut bad = JwtIssuerConfig::new(f.ts.issuer(), AUD);
    bad.jwks_uri = Some(jwks_url(&f.ts));
    bad.leeway = Duration::from_secs(301);
    assert!(matches!(
        JwtVerifier::new(bad),
        Err(JwtConfigError::LeewayTooLarge(_))
    ));
}

/// A token of `f` with this header `typ` (`None`: no `typ`).
fn with_typ(f: &Fixture, typ: Option<&str>) -> String {
    match typ {
        Some(t) => f.token().header_typ(t).sign(),
        None => f.token().no_typ().sign(),
    }
}

#[tokio::test]
async fn typ_policy() {
    // E5 / E13: JWT (e.g. an ID token) refused by default; compat options relax it.
    let f = fixture().await;
    for ok in [
        "at+jwt",
        "AT+JWT",
        "application/at+jwt",
        "Application/AT+JWT",
    ] {
        check(&f.verifier, &with_typ(&f, Some(ok))).await.unwrap();
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
            &with_typ(&f, bad),
            invalid(InvalidReason::TypeNotAllowed),
        )
        .await;
    }
    let jwt_ok = fixture_with(|c| c.typ.accept_jwt = true).await;
    check(&jwt_ok.verifier, &with_typ(&jwt_ok, Some("JWT")))
        .await
        .unwrap();
    check(
        &jwt_ok.verifier,
        &with_typ(&jwt_ok, Some("application/jwt")),
    )
    .await
    .unwrap();
    expect(
        &jwt_ok.verifier,
        &with_typ(&jwt_ok, None),
        invalid(InvalidReason::TypeNotAllowed),
    )
    .await;
    let missing_ok = fixture_with(|c| c.typ.accept_missing = true).await;
    check(&missing_ok.verifier, &with_typ(&missing_ok, None))
        .await
        .unwrap();
}

#[tokio::test]
async fn key_bearing_headers_are_never_used_or_fetched() {
    // E14 / RFC 8725 §3.10: jku, x5u, jwk, x5c point at an attacker key; never fetched, never
    // trusted.
    let f = fixture().await;
    let attacker = AttackerServer::start().await;
    let evil = attacker.key(Alg::RS256);
    let jku = attacker.jwks_url();
    let tokens = [
        f.token().key(evil).jku(&jku),
        f.token().key(evil).x5u(&attacker.x5u_url()),
        f.token().key(evil).jwk(evil.public_jwk()),
        f.token().key(evil).no_kid().jwk(evil.public_jwk()),
        f.token().key(evil).header("x5c", json!(["MIIBIjANBg=="])),
        // Even naming our own kid, the attacker's key signs → signature fails.
        f.token().key(evil).kid("k1").jku(&jku),
    ];
    for (i, t) in tokens.iter().enumerate() {
        let r = check(&f.verifier, &t.sign()).await;
        // Without a kid (3), or with our kid (5), our own key is selected and the attacker's
        // signature fails; with the attacker's kid, nothing matches.
        let want = if i == 3 || i == 5 {
            InvalidReason::BadSignature
        } else {
            InvalidReason::UnknownKey
        };
        assert_eq!(r.map(|_| ()), invalid(want), "header {i}");
    }
    // The attacker server counts every request, on any path (its JWKS included).
    assert_eq!(attacker.hits(), 0);
}

#[tokio::test]
async fn crit_and_nonce_headers_refused() {
    let f = fixture().await;
    for t in [
        f.token().crit(&["exp"]),
        f.token().crit(&[]),
        f.token().header("b64", false).crit(&["b64"]),
        f.token().header_typ("JWT").header("nonce", "abc"),
    ] {
        expect(
            &f.verifier,
            &t.sign(),
            invalid(InvalidReason::ForbiddenHeader),
        )
        .await;
    }
}

#[tokio::test]
async fn malformed_tokens() {
    let f = fixture().await;
    let good = f.token().sign();
    let (head, sig) = good.rsplit_once('.').unwrap();
    let garbage_header = format!(
        "{}.{}",
        b64url(b"not json"),
        head.split_once('.').unwrap().1
    );
    let array_header = format!(
        "{}.{}.{sig}",
        b64url(b"[\"RS256\"]"),
        head.split_once('.').unwrap().1
    );
    let dup_claims = format!(
        "{}.{}.{sig}",
        head.split_once('.').unwrap().0,
        b64url(br#"{"aud":"x","aud":"https://mcp.example/mcp"}"#)
    );
    let array_payload = format!(
        "{}.{}.{sig}",
        head.split_once('.').unwrap().0,
        b64url(b"[1,2]")
    );
    let dup_header = format!(
        "{}.{}.{sig}",
        b64url(br#"{"alg":"RS256","alg":"none","typ":"at+jwt","kid":"k1"}"#),
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
    let t = f
        .token()
        .scope("a b")
        .claim("scp", json!(["c", "d e"]))
        .claim("permissions", json!(["read:x", 5, "bad\"scope"]))
        .sign();
    let caller = check(&f.verifier, &t).await.unwrap();
    assert_eq!(caller.scopes.to_space_separated(), "a b c d e read:x");
    let t = f
        .token()
        .without("scope")
        .claim("scp", "x y")
        .without("client_id")
        .claim("azp", "spa")
        .sign();
    let caller = check(&f.verifier, &t).await.unwrap();
    assert_eq!(caller.scopes.to_space_separated(), "x y");
    assert_eq!(caller.client_id.as_deref(), Some("spa"));
}

#[tokio::test]
async fn jwks_down_after_start() {
    let f = fixture_with(|c| c.jwks.min_refresh_interval = Duration::ZERO).await;
    f.ts.set_jwks_down(true);
    // Stale keys still accept known kids…
    check(&f.verifier, &f.token().sign()).await.unwrap();
    // …and an unknown kid cannot be decided.
    let t = f.token().key(&rsa("k2")).sign();
    assert_eq!(
        check(&f.verifier, &t).await.unwrap_err(),
        VerifyError::Unavailable(UnavailableReason::KeysUnavailable)
    );
}

#[tokio::test]
async fn discovery_and_config_errors() {
    let key = rsa("k1");
    let ts = server(vec![key.clone()]).await;
    // Discovery finds the jwks_uri.
    let v = JwtVerifier::discover(JwtIssuerConfig::new(ts.issuer(), AUD))
        .await
        .unwrap();
    assert_eq!(v.jwks().unwrap().uri(), &jwks_url(&ts));
    assert!(v.ready());
    assert_eq!(ts.metadata_fetches(), 1);
    // Issuer mismatch in the metadata.
    ts.set_metadata_issuer("https://evil.example");
    let e = JwtVerifier::discover(JwtIssuerConfig::new(ts.issuer(), AUD))
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
    ts.set_jwks_down(true);
    let mut c = JwtIssuerConfig::new(ts.issuer(), AUD);
    c.jwks_uri = Some(jwks_url(&ts));
    let v = JwtVerifier::discover(c.clone()).await.unwrap();
    assert!(!v.ready());
    let t = ts.token().key(&key).sign();
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
