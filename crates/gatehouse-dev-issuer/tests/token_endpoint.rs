//! Invariant: the development issuer's token endpoint issues RFC 9068 access tokens only to
//! authenticated clients, only with the scopes they are allowed and only for an explicit,
//! well-formed resource; every other request gets the RFC 6749 §5.2 / RFC 8707 §2 error, and
//! nothing it answers is cacheable. Its JWKS and metadata describe exactly what it does.

mod common;
use common::{basic, dpop_proof, form_req};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use gatehouse_dev_issuer::{
    DevClient, DevIssuer, DevIssuerConfig, DevIssuerError, DevResourceServer, SigningAlg,
    TokenError, router,
};
use http_body_util::BodyExt;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use tower::ServiceExt;

const ISSUER: &str = "http://127.0.0.1:9400";
const RESOURCE: &str = "http://127.0.0.1:3000/mcp";

fn config() -> DevIssuerConfig {
    DevIssuerConfig {
        issuer: Some(format!("{ISSUER}/")),
        clients: vec![
            DevClient::new("agent", "s3cret", ["invoices:read", "invoices:write"])
                .with_tenant("acme"),
            DevClient::new("p@ss:user", "a b:c+d%e", ["audit:read"]).with_subject("robot-7"),
        ],
        resource_servers: vec![
            DevResourceServer::new("billing-rs", "rs-secret", Some(RESOURCE)),
            DevResourceServer::new("any-rs", "any-secret", None::<String>),
        ],
        ..DevIssuerConfig::default()
    }
}

fn issuer() -> DevIssuer {
    DevIssuer::new(config()).unwrap()
}

struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    json: Value,
}

async fn send(app: Router, req: Request<Body>) -> Resp {
    let resp = app.oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Resp {
        status,
        headers,
        json,
    }
}

async fn token(issuer: &DevIssuer, body: &str, auth: Option<String>) -> Resp {
    send(router(issuer.clone()), form_req("/token", body, auth)).await
}

fn resource_param() -> String {
    format!(
        "resource={}",
        url::form_urlencoded::byte_serialize(RESOURCE.as_bytes()).collect::<String>()
    )
}

fn assert_error(r: &Resp, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "{:?}", r.json);
    assert_eq!(r.json["error"], code, "{:?}", r.json);
    assert!(r.json["error_description"].is_string());
    assert_eq!(r.headers["cache-control"], "no-store");
    if status == StatusCode::UNAUTHORIZED {
        let www = r.headers["www-authenticate"].to_str().unwrap();
        assert!(www.starts_with("Basic "), "{www}");
    } else {
        assert!(r.headers.get("www-authenticate").is_none());
    }
}

fn decode_segment(seg: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(seg).unwrap()).unwrap()
}

/// Verifies a token independently (jsonwebtoken, keys from the served JWKS).
async fn verify_with_jwks(issuer: &DevIssuer, token: &str, alg: Algorithm) -> Value {
    let r = send(
        router(issuer.clone()),
        Request::get("/jwks").body(Body::empty()).unwrap(),
    )
    .await;
    let set: JwkSet = serde_json::from_value(r.json).unwrap();
    let kid = jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    let key = DecodingKey::from_jwk(set.find(&kid).expect("kid published")).unwrap();
    let mut v = Validation::new(alg);
    v.set_audience(&[RESOURCE]);
    v.set_issuer(&[ISSUER]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    jsonwebtoken::decode::<Value>(token, &key, &v)
        .unwrap()
        .claims
}

#[tokio::test]
async fn client_secret_basic_issues_an_rfc9068_token() {
    let iss = issuer();
    let r = token(
        &iss,
        &format!("grant_type=client_credentials&{}", resource_param()),
        Some(basic("agent", "s3cret")),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
    assert_eq!(r.headers["cache-control"], "no-store");
    assert_eq!(r.headers["pragma"], "no-cache");
    assert_eq!(r.json["token_type"], "Bearer");
    assert_eq!(r.json["expires_in"], 300);
    assert_eq!(r.json["scope"], "invoices:read invoices:write");

    let t = r.json["access_token"].as_str().unwrap();
    let parts: Vec<&str> = t.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header = decode_segment(parts[0]);
    assert_eq!(
        header,
        serde_json::json!({"alg": "ES256", "typ": "at+jwt", "kid": iss.kid()})
    );

    let claims = verify_with_jwks(&iss, t, Algorithm::ES256).await;
    let mut names: Vec<&str> = claims
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "aud",
            "client_id",
            "exp",
            "iat",
            "iss",
            "jti",
            "scope",
            "sub",
            "tenant"
        ]
    );
    assert_eq!(claims["iss"], ISSUER, "issuer without trailing slash");
    assert_eq!(claims["aud"], RESOURCE, "aud is the resource, as a string");
    assert_eq!(claims["sub"], "agent", "sub defaults to the client id");
    assert_eq!(claims["client_id"], "agent");
    assert_eq!(claims["tenant"], "acme");
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        300
    );
    assert!(claims["jti"].as_str().unwrap().len() >= 20);
}

#[tokio::test]
async fn client_secret_post_and_urlencoded_basic_credentials_work() {
    let iss = issuer();
    let body = format!(
        "grant_type=client_credentials&client_id=agent&client_secret=s3cret&{}",
        resource_param()
    );
    let r = token(&iss, &body, None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);

    // Special characters survive the RFC 6749 §2.3.1 encoding; no tenant → no tenant claim.
    let r = token(
        &iss,
        &format!("grant_type=client_credentials&{}", resource_param()),
        Some(basic("p@ss:user", "a b:c+d%e")),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
    let claims = verify_with_jwks(
        &iss,
        r.json["access_token"].as_str().unwrap(),
        Algorithm::ES256,
    )
    .await;
    assert_eq!(claims["sub"], "robot-7");
    assert!(claims.get("tenant").is_none());

    // Basic plus a matching client_id in the body is allowed (RFC 6749 §3.2.1).
    let r = token(
        &iss,
        &format!(
            "grant_type=client_credentials&client_id=agent&{}",
            resource_param()
        ),
        Some(basic("agent", "s3cret")),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn two_tokens_have_distinct_jti() {
    let iss = issuer();
    let a = iss.mint("agent", &[], RESOURCE).unwrap();
    let b = iss.mint("agent", &[], RESOURCE).unwrap();
    let jti = |t: &str| decode_segment(t.split('.').nth(1).unwrap())["jti"].clone();
    assert_ne!(jti(&a), jti(&b));
}

#[tokio::test]
async fn client_authentication_failures_are_invalid_client() {
    let iss = issuer();
    let ok_body = format!("grant_type=client_credentials&{}", resource_param());
    let cases: Vec<(&str, String, Option<String>)> = vec![
        (
            "wrong secret (basic)",
            ok_body.clone(),
            Some(basic("agent", "nope")),
        ),
        (
            "secret prefix (basic)",
            ok_body.clone(),
            Some(basic("agent", "s3cre")),
        ),
        (
            "unknown client",
            ok_body.clone(),
            Some(basic("ghost", "s3cret")),
        ),
        (
            "resource server is not a client",
            ok_body.clone(),
            Some(basic("billing-rs", "rs-secret")),
        ),
        (
            "wrong secret (post)",
            format!("{ok_body}&client_id=agent&client_secret=x"),
            None,
        ),
        (
            "client_id without secret",
            format!("{ok_body}&client_id=agent"),
            None,
        ),
        ("no credentials", ok_body.clone(), None),
        ("not base64", ok_body.clone(), Some("Basic !!!".into())),
        (
            "no colon",
            ok_body.clone(),
            Some(format!("Basic {}", STANDARD.encode("agent"))),
        ),
        ("bearer scheme", ok_body.clone(), Some("Bearer abc".into())),
    ];
    for (name, body, auth) in cases {
        let r = token(&iss, &body, auth).await;
        assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
        assert!(r.json.get("access_token").is_none(), "{name}");
    }
}

#[tokio::test]
async fn malformed_requests_are_invalid_request() {
    let iss = issuer();
    let auth = || Some(basic("agent", "s3cret"));
    let rp = resource_param();
    // Two authentication methods at once (RFC 6749 §2.3).
    let r = token(
        &iss,
        &format!("grant_type=client_credentials&client_secret=s3cret&{rp}"),
        auth(),
    )
    .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    // Body client_id disagreeing with Basic.
    let r = token(
        &iss,
        &format!("grant_type=client_credentials&client_id=other&{rp}"),
        auth(),
    )
    .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    // Missing grant_type.
    let r = token(&iss, &rp, auth()).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    // Repeated parameter (RFC 6749 §3.2).
    let r = token(
        &iss,
        &format!("grant_type=client_credentials&grant_type=client_credentials&{rp}"),
        auth(),
    )
    .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    // JSON instead of a form.
    let req = Request::post("/token")
        .header("content-type", "application/json")
        .header("authorization", basic("agent", "s3cret"))
        .body(Body::from(r#"{"grant_type":"client_credentials"}"#))
        .unwrap();
    let r = send(router(iss.clone()), req).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
}

#[tokio::test]
async fn only_client_credentials_is_supported() {
    let iss = issuer();
    for gt in [
        "authorization_code",
        "password",
        "refresh_token",
        "urn:ietf:params:oauth:grant-type:token-exchange",
    ] {
        let body = format!("grant_type={gt}&{}", resource_param());
        let r = token(&iss, &body, Some(basic("agent", "s3cret"))).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
}

#[tokio::test]
async fn resource_is_required_and_must_be_absolute_without_fragment() {
    let iss = issuer();
    let auth = || Some(basic("agent", "s3cret"));
    for body in [
        "grant_type=client_credentials".to_owned(),
        "grant_type=client_credentials&resource=".to_owned(),
        "grant_type=client_credentials&resource=%2Fmcp".to_owned(),
        "grant_type=client_credentials&resource=http%3A%2F%2F127.0.0.1%3A3000%2Fmcp%23frag"
            .to_owned(),
        format!(
            "grant_type=client_credentials&{}&resource=https%3A%2F%2Fother.example",
            resource_param()
        ),
    ] {
        let r = token(&iss, &body, auth()).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_target");
    }
}

#[tokio::test]
async fn scope_defaults_narrows_and_never_widens() {
    let iss = issuer();
    let auth = || Some(basic("agent", "s3cret"));
    let rp = resource_param();
    let r = token(
        &iss,
        &format!("grant_type=client_credentials&scope=invoices%3Aread&{rp}"),
        auth(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["scope"], "invoices:read");
    let claims = verify_with_jwks(
        &iss,
        r.json["access_token"].as_str().unwrap(),
        Algorithm::ES256,
    )
    .await;
    assert_eq!(claims["scope"], "invoices:read");

    for scope in [
        "admin",                             // not allowed
        "invoices%3Aread+admin",             // one allowed, one not: no silent drop
        "audit%3Aread",                      // another client's scope
        "invoices%3Aread++invoices%3Awrite", // double space: empty scope token
        "",                                  // empty
    ] {
        let r = token(
            &iss,
            &format!("grant_type=client_credentials&scope={scope}&{rp}"),
            auth(),
        )
        .await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_scope");
    }
}

#[tokio::test]
async fn wrong_method_and_oversized_body_are_refused() {
    let iss = issuer();
    let r = send(
        router(iss.clone()),
        Request::get("/token").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    let huge = format!(
        "grant_type=client_credentials&scope={}",
        "a".repeat(64 * 1024)
    );
    let r = token(&iss, &huge, Some(basic("agent", "s3cret"))).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn rs256_and_custom_tenant_claim() {
    let iss = DevIssuer::new(DevIssuerConfig {
        signing_alg: SigningAlg::RS256,
        tenant_claim: "org_id".into(),
        ..config()
    })
    .unwrap();
    let t = iss.mint("agent", &["invoices:write"], RESOURCE).unwrap();
    let header = decode_segment(t.split('.').next().unwrap());
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["typ"], "at+jwt");
    let claims = verify_with_jwks(&iss, &t, Algorithm::RS256).await;
    assert_eq!(claims["org_id"], "acme");
    assert!(claims.get("tenant").is_none());
    assert_eq!(claims["scope"], "invoices:write");
}

#[tokio::test]
async fn mint_follows_the_same_rules() {
    let iss = issuer();
    assert_eq!(
        iss.mint("ghost", &[], RESOURCE),
        Err(TokenError::UnknownClient)
    );
    assert_eq!(
        iss.mint("agent", &["admin"], RESOURCE),
        Err(TokenError::InvalidScope)
    );
    assert_eq!(
        iss.mint("agent", &["invoices:read invoices:write"], RESOURCE),
        Err(TokenError::InvalidScope)
    );
    assert!(matches!(
        iss.mint("agent", &[], "relative/path"),
        Err(TokenError::InvalidTarget(_))
    ));
    assert!(matches!(
        iss.mint("agent", &[], "http://x/#f"),
        Err(TokenError::InvalidTarget(_))
    ));
    let t = iss.mint("agent", &["invoices:read"], RESOURCE).unwrap();
    let claims = verify_with_jwks(&iss, &t, Algorithm::ES256).await;
    assert_eq!(claims["scope"], "invoices:read");
    assert_eq!(claims["aud"], RESOURCE);
}

#[tokio::test]
async fn jwks_publishes_one_signing_key_without_private_parts() {
    let iss = issuer();
    let r = send(
        router(iss.clone()),
        Request::get("/jwks").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let keys = r.json["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let k = &keys[0];
    assert_eq!(k["kty"], "EC");
    assert_eq!(k["crv"], "P-256");
    assert_eq!(k["use"], "sig");
    assert_eq!(k["alg"], "ES256");
    assert_eq!(k["kid"], iss.kid());
    assert_eq!(
        URL_SAFE_NO_PAD
            .decode(k["x"].as_str().unwrap())
            .unwrap()
            .len(),
        32
    );
    assert_eq!(
        URL_SAFE_NO_PAD
            .decode(k["y"].as_str().unwrap())
            .unwrap()
            .len(),
        32
    );
    assert!(k.get("d").is_none());
}

#[tokio::test]
async fn metadata_documents_are_identical_and_truthful() {
    let iss = issuer();
    let get = |p: &'static str| {
        send(
            router(iss.clone()),
            Request::get(p).body(Body::empty()).unwrap(),
        )
    };
    let a = get("/.well-known/oauth-authorization-server").await;
    let b = get("/.well-known/openid-configuration").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json, b.json);
    let m = a.json;
    assert_eq!(m["issuer"], ISSUER);
    assert_eq!(m["token_endpoint"], format!("{ISSUER}/token"));
    assert_eq!(m["jwks_uri"], format!("{ISSUER}/jwks"));
    assert_eq!(m["introspection_endpoint"], format!("{ISSUER}/introspect"));
    assert_eq!(
        m["grant_types_supported"],
        serde_json::json!(["client_credentials"])
    );
    assert_eq!(
        m["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post"])
    );
    assert_eq!(
        m["scopes_supported"],
        serde_json::json!(["audit:read", "invoices:read", "invoices:write"])
    );
    for absent in [
        "authorization_endpoint",
        "response_types_supported",
        "code_challenge_methods_supported",
    ] {
        assert!(m.get(absent).is_none(), "{absent} must not be advertised");
    }
}

#[tokio::test]
async fn introspection_for_resource_servers_only() {
    let iss = issuer();
    let t = iss.mint("agent", &[], RESOURCE).unwrap();
    let other = iss.mint("agent", &[], "https://other.example/api").unwrap();
    let intro = |body: String, auth: Option<String>| {
        send(router(iss.clone()), form_req("/introspect", &body, auth))
    };
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();

    let r = intro(
        format!("token={t}&token_type_hint=access_token"),
        Some(basic("billing-rs", "rs-secret")),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["cache-control"], "no-store");
    assert_eq!(r.json["active"], true);
    assert_eq!(r.json["aud"], RESOURCE);
    assert_eq!(r.json["client_id"], "agent");
    assert_eq!(r.json["scope"], "invoices:read invoices:write");
    assert_eq!(r.json["tenant"], "acme");

    // Post authentication works too.
    let r = intro(
        format!("token={t}&client_id=any-rs&client_secret=any-secret"),
        None,
    )
    .await;
    assert_eq!(r.json["active"], true);

    // A token for another resource is inactive for the restricted RS (RFC 7662 §4)…
    let r = intro(
        format!("token={other}"),
        Some(basic("billing-rs", "rs-secret")),
    )
    .await;
    assert_eq!(r.json, serde_json::json!({"active": false}));
    // …but active for an unrestricted one.
    let r = intro(
        format!("token={other}"),
        Some(basic("any-rs", "any-secret")),
    )
    .await;
    assert_eq!(r.json["active"], true);

    // Tampered, foreign and garbage tokens are inactive.
    let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
    let mut claims = decode_segment(&parts[1]);
    claims["scope"] = "admin".into();
    parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
    let tampered = parts.join(".");
    let foreign = issuer().mint("agent", &[], RESOURCE).unwrap();
    for bad in [tampered.as_str(), foreign.as_str(), "garbage", "a.b.c", ""] {
        let r = intro(
            format!("token={}", enc(bad)),
            Some(basic("billing-rs", "rs-secret")),
        )
        .await;
        assert_eq!(r.json, serde_json::json!({"active": false}), "{bad}");
    }

    // Caller authentication and the token parameter are required.
    let r = intro(format!("token={t}"), Some(basic("billing-rs", "wrong"))).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
    let r = intro(format!("token={t}"), Some(basic("agent", "s3cret"))).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
    let r = intro(format!("token={t}"), None).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
    let r = intro(String::new(), Some(basic("billing-rs", "rs-secret"))).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
}

#[tokio::test]
async fn introspection_is_absent_without_resource_servers() {
    let iss = DevIssuer::new(DevIssuerConfig {
        resource_servers: vec![],
        ..config()
    })
    .unwrap();
    let r = send(
        router(iss.clone()),
        form_req("/introspect", "token=x", Some(basic("agent", "s3cret"))),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(iss.metadata().get("introspection_endpoint").is_none());
}

#[test]
fn invalid_configurations_name_the_key() {
    let cases: Vec<(&str, DevIssuerConfig)> = vec![
        (
            "issuer",
            DevIssuerConfig {
                issuer: None,
                ..config()
            },
        ),
        (
            "issuer",
            DevIssuerConfig {
                issuer: Some("http://127.0.0.1:1/tenant".into()),
                ..config()
            },
        ),
        (
            "token_ttl",
            DevIssuerConfig {
                token_ttl: std::time::Duration::ZERO,
                ..config()
            },
        ),
        (
            "tenant_claim",
            DevIssuerConfig {
                tenant_claim: "sub".into(),
                ..config()
            },
        ),
        (
            "clients",
            DevIssuerConfig {
                clients: vec![
                    DevClient::new("a", "x", ["s"]),
                    DevClient::new("a", "y", ["s"]),
                ],
                ..config()
            },
        ),
        (
            "clients",
            DevIssuerConfig {
                clients: vec![DevClient::new("a", "", ["s"])],
                ..config()
            },
        ),
        (
            "clients.allowed_scopes",
            DevIssuerConfig {
                clients: vec![DevClient::new("a", "x", ["bad scope"])],
                ..config()
            },
        ),
        (
            "resource_servers.resource",
            DevIssuerConfig {
                resource_servers: vec![DevResourceServer::new("r", "x", Some("/rel"))],
                ..config()
            },
        ),
    ];
    for (key, cfg) in cases {
        match DevIssuer::new(cfg) {
            Err(DevIssuerError::Config { key: k, .. }) => assert_eq!(k, key),
            other => panic!("{key}: expected a config error, got {other:?}"),
        }
    }
}

#[test]
fn config_loads_from_toml_and_debug_hides_secrets() {
    let cfg: DevIssuerConfig = toml::from_str(
        r#"
        issuer = "http://localhost:9000"
        token_ttl = 60
        signing_alg = "RS256"
        [[clients]]
        id = "agent"
        secret = "toml-secret-value"
        allowed_scopes = ["invoices:read"]
        tenant = "acme"
        "#,
    )
    .unwrap();
    assert_eq!(cfg.token_ttl.as_secs(), 60);
    assert_eq!(cfg.signing_alg, SigningAlg::RS256);
    assert_eq!(cfg.tenant_claim, "tenant");
    let dbg = format!("{cfg:?}");
    assert!(!dbg.contains("toml-secret-value"), "{dbg}");
    assert!(dbg.contains("<redacted>"));
    let bad: Result<DevIssuerConfig, _> = toml::from_str("unknown_key = 1");
    assert!(bad.is_err(), "unknown keys are refused");
}

// RFC 9449 §5, §6.1: a proof at the token endpoint binds the token to its key (`cnf.jkt`,
// `token_type` DPoP); a bad proof is `invalid_dpop_proof`; without one, nothing changes.
#[tokio::test]
async fn a_dpop_proof_at_the_token_endpoint_binds_the_token_to_its_key() {
    let iss = issuer();
    let app = router(iss.clone());
    let key = gatehouse::jws::SigningKey::generate(SigningAlg::ES256).unwrap();
    let jkt =
        gatehouse::verify::dpop::jwk_thumbprint(key.public_jwk().as_object().unwrap()).unwrap();
    let body = format!("grant_type=client_credentials&resource={RESOURCE}");
    let with_proof = |proof: String| {
        let mut req = form_req("/token", &body, Some(basic("agent", "s3cret")));
        req.headers_mut().insert("dpop", proof.parse().unwrap());
        req
    };
    let r = send(
        app.clone(),
        with_proof(dpop_proof(&key, &iss.token_endpoint())),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["token_type"], "DPoP");
    let token = r.json["access_token"].as_str().unwrap();
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["cnf"]["jkt"], jkt);

    // A proof for another endpoint, and garbage: refused, nothing issued.
    for proof in [
        dpop_proof(&key, "http://127.0.0.1:9400/elsewhere"),
        "garbage".to_owned(),
    ] {
        let r = send(app.clone(), with_proof(proof)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.json["error"], "invalid_dpop_proof");
        assert!(r.json.get("access_token").is_none());
    }
    // Without a proof: a Bearer token, unbound.
    let r = send(
        app.clone(),
        form_req("/token", &body, Some(basic("agent", "s3cret"))),
    )
    .await;
    assert_eq!(r.json["token_type"], "Bearer");
    let meta = send(
        app,
        Request::get("/.well-known/oauth-authorization-server")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert!(
        meta.json["dpop_signing_alg_values_supported"]
            .as_array()
            .is_some_and(|a| a.contains(&Value::from("ES256"))),
        "{}",
        meta.json
    );
}
