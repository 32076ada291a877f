//! Invariant: the testkit does what it claims, so that a passing negative test in the library
//! means the library rejected a token, not that the testkit forged garbage by accident. Every
//! published key verifies its tokens through an independent JOSE library; toggles, rotation and
//! counters change what the server observably serves.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_testkit::{
    Alg, AttackerServer, TestAuthServer, TestKey, junk_enc_rsa_jwk, malformed_tokens, now,
    unknown_kty_jwk,
};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

const AUD: &str = "http://127.0.0.1:4000/mcp";

fn segment(token: &str, i: usize) -> Value {
    serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(i).unwrap())
            .unwrap(),
    )
    .unwrap()
}

async fn get(url: &str) -> (u16, Value) {
    let r = reqwest::get(url).await.unwrap();
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn validation(alg: Algorithm, ts: &TestAuthServer) -> Validation {
    let mut v = Validation::new(alg);
    v.set_audience(&[AUD]);
    v.set_issuer(&[ts.issuer()]);
    v
}

async fn verify(
    ts: &TestAuthServer,
    token: &str,
    alg: Algorithm,
) -> Result<Value, jsonwebtoken::errors::Error> {
    let (_, jwks) = get(&ts.jwks_uri()).await;
    let set: JwkSet = serde_json::from_value(jwks).unwrap();
    let kid = jsonwebtoken::decode_header(token)?.kid.unwrap_or_default();
    let Some(jwk) = set.find(&kid) else {
        return Err(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat.into());
    };
    let key = DecodingKey::from_jwk(jwk)?;
    jsonwebtoken::decode::<Value>(token, &key, &validation(alg, ts)).map(|d| d.claims)
}

#[tokio::test]
async fn every_published_algorithm_verifies_with_an_independent_library() {
    let ts = TestAuthServer::builder().audience(AUD).start().await;
    for (alg, jalg) in [
        (Alg::RS256, Algorithm::RS256),
        (Alg::PS256, Algorithm::PS256),
        (Alg::ES256, Algorithm::ES256),
        (Alg::EdDSA, Algorithm::EdDSA),
    ] {
        let t = ts.token().alg(alg).sign();
        let header = segment(&t, 0);
        assert_eq!(header["alg"], alg.as_str());
        assert_eq!(header["kid"], ts.current_key(alg).kid());
        verify(&ts, &t, jalg)
            .await
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        // A flipped bit must fail, or the check above proves nothing.
        assert!(
            verify(&ts, &ts.token().alg(alg).sign_with_bad_signature(), jalg)
                .await
                .is_err()
        );
    }
}

#[tokio::test]
async fn one_rsa_key_published_without_alg_signs_every_rsa_algorithm() {
    let rsa = TestKey::generate(Alg::RS256).with_kid("rsa");
    let ts = TestAuthServer::builder()
        .audience(AUD)
        .keys(vec![rsa.clone()])
        .start()
        .await;
    ts.set_jwks_omit_alg(true);
    assert_eq!(ts.jwks_json()["keys"][0], rsa.public_jwk_without_alg());
    assert!(rsa.public_jwk_without_alg().get("alg").is_none());
    for (alg, jalg) in [
        (Alg::RS256, Algorithm::RS256),
        (Alg::RS384, Algorithm::RS384),
        (Alg::RS512, Algorithm::RS512),
        (Alg::PS256, Algorithm::PS256),
        (Alg::PS384, Algorithm::PS384),
        (Alg::PS512, Algorithm::PS512),
    ] {
        let key = rsa.clone().with_alg(alg);
        assert_eq!((key.alg(), key.kid()), (alg, "rsa"));
        let t = ts.token().key(&key).sign();
        assert_eq!(segment(&t, 0)["alg"], alg.as_str());
        assert_eq!(segment(&t, 0)["kid"], "rsa");
        verify(&ts, &t, jalg)
            .await
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        let bad = ts.token().key(&key).sign_with_bad_signature();
        assert!(verify(&ts, &bad, jalg).await.is_err(), "{alg}");
    }
    // The PKCS#1 DER is the body of the PKCS#1 PEM.
    let der = rsa.rsa_public_key_pkcs1_der().unwrap();
    let pem = rsa.rsa_public_key_pkcs1_pem().unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap(),
        der
    );
    assert!(
        TestKey::generate(Alg::ES256)
            .rsa_public_key_pkcs1_der()
            .is_none()
    );
}

#[test]
#[should_panic(expected = "cannot sign RS256")]
fn with_alg_refuses_another_key_type() {
    let _ = TestKey::generate(Alg::ES256).with_alg(Alg::RS256);
}

#[tokio::test]
async fn fixed_keys_replace_generated_ones() {
    let rsa = TestKey::generate(Alg::RS256).with_kid("k1");
    let ts = TestAuthServer::builder()
        .keys(vec![rsa.clone()])
        .start()
        .await;
    let kids = |ts: &TestAuthServer| -> Vec<String> {
        ts.jwks_json()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(kids(&ts), ["k1"]);
    // No ES256 key: the first published key signs the default token.
    assert_eq!(
        segment(&ts.valid_token(), 0),
        json!({"alg": "RS256", "typ": "at+jwt", "kid": "k1"})
    );
    let ec = TestKey::generate(Alg::ES256).with_kid("ec");
    ts.set_keys(vec![rsa, ec]);
    assert_eq!(kids(&ts), ["k1", "ec"]);
    assert_eq!(segment(&ts.valid_token(), 0)["kid"], "ec");
    ts.publish_extra_jwk(unknown_kty_jwk());
    ts.set_keys(Vec::new());
    assert_eq!(kids(&ts), ["unknown-kty"], "extra JWKs stay");

    let empty = TestAuthServer::builder().keys(Vec::new()).start().await;
    assert_eq!(empty.jwks_json(), json!({"keys": []}));
}

#[tokio::test]
async fn default_token_shape() {
    let ts = TestAuthServer::start().await;
    ts.set_audience(AUD);
    let t = ts.valid_token();
    assert_eq!(
        segment(&t, 0),
        json!({"alg": "ES256", "typ": "at+jwt", "kid": ts.current_kid()})
    );
    let c = segment(&t, 1);
    assert_eq!(c["iss"], ts.issuer());
    assert_eq!(c["aud"], AUD);
    assert_eq!(c["client_id"], "test-client");
    assert_eq!(c["sub"], "test-user");
    assert_eq!(c["scope"], "invoices:read invoices:write");
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 300);
    assert!((c["iat"].as_i64().unwrap() - now()).abs() <= 5);
    assert_ne!(
        c["jti"],
        segment(&ts.valid_token(), 1)["jti"],
        "jti is unique"
    );
}

#[tokio::test]
async fn forge_edits_header_and_claims() {
    let ts = TestAuthServer::builder().audience(AUD).start().await;
    let t = ts
        .token()
        .header_typ("JWT")
        .kid("../../etc/passwd")
        .jku("http://attacker/jwks")
        .x5u("http://attacker/cert")
        .crit(&["exp"])
        .without("exp")
        .claims(json!({"aud": ["a", "b"], "tenant": "acme"}))
        .sign();
    let h = segment(&t, 0);
    assert_eq!(h["typ"], "JWT");
    assert_eq!(h["kid"], "../../etc/passwd");
    assert_eq!(h["jku"], "http://attacker/jwks");
    assert_eq!(h["x5u"], "http://attacker/cert");
    assert_eq!(h["crit"], json!(["exp"]));
    let c = segment(&t, 1);
    assert!(c.get("exp").is_none());
    assert_eq!(c["aud"], json!(["a", "b"]));
    assert_eq!(c["tenant"], "acme");

    let rogue = TestKey::generate(Alg::ES256);
    let t = ts.token().key(&rogue).jwk(rogue.public_jwk()).sign();
    assert_eq!(
        segment(&t, 0)["jwk"],
        rogue.public_jwk(),
        "embedded jwk header"
    );

    let t = ts.token().no_typ().no_kid().sign();
    let h = segment(&t, 0);
    assert!(h.get("typ").is_none() && h.get("kid").is_none());

    // Header `alg` can lie about the key; the signature is still the ES256 key's.
    let t = ts.token().header_alg("RS256").sign();
    assert_eq!(segment(&t, 0)["alg"], "RS256");
    assert!(verify(&ts, &t, Algorithm::RS256).await.is_err());

    // Byte-exact header (Keycloak spacing) survives.
    let raw = br#"{"alg" : "ES256","typ" : "JWT","kid" : "x"}"#;
    let t = ts.token().raw_header(raw.to_vec()).sign();
    assert_eq!(
        URL_SAFE_NO_PAD
            .decode(t.split('.').next().unwrap())
            .unwrap(),
        raw
    );
}

#[tokio::test]
async fn expired_and_wrong_audience_tokens_fail_independent_validation() {
    let ts = TestAuthServer::builder().audience(AUD).start().await;
    assert!(
        verify(&ts, &ts.valid_token(), Algorithm::ES256)
            .await
            .is_ok(),
        "control"
    );
    assert!(
        verify(&ts, &ts.token().expires_in(-600).sign(), Algorithm::ES256)
            .await
            .is_err()
    );
    assert!(
        verify(
            &ts,
            &ts.token().aud("https://other.example").sign(),
            Algorithm::ES256
        )
        .await
        .is_err()
    );
    assert!(
        verify(
            &ts,
            &ts.token().iss(&format!("{}/", ts.issuer())).sign(),
            Algorithm::ES256
        )
        .await
        .is_err()
    );
}

#[tokio::test]
async fn key_confusion_alg_none_and_unpublished_keys() {
    let ts = TestAuthServer::builder().audience(AUD).start().await;
    let rsa = ts.current_key(Alg::RS256);
    let pem = rsa.public_key_pem();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
    assert!(
        rsa.rsa_public_key_pkcs1_pem()
            .unwrap()
            .starts_with("-----BEGIN RSA PUBLIC KEY-----")
    );

    // The confusion token is a genuine HMAC over the PEM bytes, with the RSA key's kid.
    let t = ts.token().alg(Alg::RS256).hs256(pem.clone()).sign();
    let h = segment(&t, 0);
    assert_eq!(h["alg"], "HS256");
    assert_eq!(h["kid"], rsa.kid());
    let key = DecodingKey::from_secret(pem.as_bytes());
    let mut v = validation(Algorithm::HS256, &ts);
    v.set_required_spec_claims(&["exp"]);
    assert!(jsonwebtoken::decode::<Value>(&t, &key, &v).is_ok());

    // alg: none — header says none, signature empty.
    let t = ts.token().sign_alg_none();
    assert!(t.ends_with('.'));
    assert_eq!(t.split('.').count(), 3);
    assert_eq!(segment(&t, 0)["alg"], "none");

    // A key that is not published: its kid is unknown to the JWKS…
    let rogue = TestKey::generate(Alg::ES256);
    let t = ts.token().key(&rogue).sign();
    assert_eq!(segment(&t, 0)["kid"], rogue.kid());
    assert!(verify(&ts, &t, Algorithm::ES256).await.is_err());
    // …and claiming the published kid does not make its signature verify.
    let t = ts.token().key(&rogue).kid(&ts.current_kid()).sign();
    assert!(verify(&ts, &t, Algorithm::ES256).await.is_err());
}

#[tokio::test]
async fn rotation_changes_kid_and_the_served_jwks() {
    let ts = TestAuthServer::builder().audience(AUD).start().await;
    let old = ts.current_kid();
    let before = ts.valid_token();
    assert!(verify(&ts, &before, Algorithm::ES256).await.is_ok());
    let new = ts.rotate();
    assert_ne!(old, new);
    assert_eq!(ts.current_kid(), new);
    assert_eq!(segment(&ts.valid_token(), 0)["kid"], new.as_str());
    let (_, jwks) = get(&ts.jwks_uri()).await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(
        kids.contains(&new.as_str()) && !kids.contains(&old.as_str()),
        "{kids:?}"
    );
    assert!(
        verify(&ts, &before, Algorithm::ES256).await.is_err(),
        "old key is gone"
    );
    assert!(
        verify(&ts, &ts.valid_token(), Algorithm::ES256)
            .await
            .is_ok()
    );

    // Overlap: add_key keeps the old one; unpublish removes it.
    let extra = ts.add_key(Alg::ES256);
    assert_eq!(ts.current_kid(), extra, "newest key signs by default");
    assert_eq!(
        ts.published_keys()
            .iter()
            .filter(|k| k.alg() == Alg::ES256)
            .count(),
        2
    );
    ts.unpublish(&extra);
    assert_eq!(ts.current_kid(), new);
}

#[tokio::test]
async fn jwks_shapes_junk_omit_alg_and_raw() {
    let ts = TestAuthServer::start().await;
    let (_, jwks) = get(&ts.jwks_uri()).await;
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 4);
    for k in keys {
        assert_eq!(k["use"], "sig");
        assert!(k["alg"].is_string() && k["kid"].is_string());
        assert!(k.get("d").is_none(), "no private parts");
    }
    let kty: Vec<&str> = keys.iter().map(|k| k["kty"].as_str().unwrap()).collect();
    assert_eq!(kty, ["RSA", "RSA", "EC", "OKP"]);

    ts.add_junk_keys();
    ts.set_jwks_omit_alg(true);
    let (_, jwks) = get(&ts.jwks_uri()).await;
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 6);
    assert!(
        keys.iter()
            .any(|k| k["use"] == "enc" && k["alg"] == "RSA-OAEP")
    );
    assert!(keys.iter().any(|k| k["kty"] == "XYZ"));
    assert!(
        keys.iter()
            .filter(|k| k["use"] == "sig" && k["kty"] != "XYZ")
            .all(|k| k.get("alg").is_none())
    );

    ts.set_jwks_raw(Some("not json"));
    let r = reqwest::get(ts.jwks_uri()).await.unwrap();
    assert_eq!(r.text().await.unwrap(), "not json");
    ts.set_jwks_raw(None);
    assert_eq!(
        get(&ts.jwks_uri()).await.1["keys"]
            .as_array()
            .unwrap()
            .len(),
        6
    );

    assert_eq!(junk_enc_rsa_jwk()["use"], "enc");
    assert_eq!(unknown_kty_jwk()["kty"], "XYZ");
}

#[tokio::test]
async fn metadata_with_root_issuer() {
    let ts = TestAuthServer::start().await;
    assert_eq!(ts.issuer(), ts.base_url());
    for url in [ts.metadata_url(), ts.openid_configuration_url()] {
        let (status, m) = get(&url).await;
        assert_eq!(status, 200, "{url}");
        assert_eq!(m["issuer"], ts.issuer());
        assert_eq!(m["jwks_uri"], ts.jwks_uri());
        assert_eq!(m["introspection_endpoint"], ts.introspection_endpoint());
        assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
    }
    assert_eq!(ts.metadata_fetches(), 2);
    ts.wait_for_metadata_fetches(2).await;
}

#[tokio::test]
async fn metadata_with_path_issuer_uses_path_aware_well_known_urls() {
    let ts = TestAuthServer::builder()
        .issuer_path("tenant-a/")
        .start()
        .await;
    assert_eq!(ts.issuer(), format!("{}/tenant-a", ts.base_url()));
    let base = ts.base_url();
    for url in [
        format!("{base}/.well-known/oauth-authorization-server/tenant-a"),
        format!("{base}/.well-known/openid-configuration/tenant-a"),
        format!("{base}/tenant-a/.well-known/openid-configuration"),
    ] {
        let (status, m) = get(&url).await;
        assert_eq!(status, 200, "{url}");
        assert_eq!(m["issuer"], ts.issuer());
        assert_eq!(m["jwks_uri"], format!("{base}/tenant-a/jwks"));
    }
    assert_eq!(
        ts.metadata_url(),
        format!("{base}/.well-known/oauth-authorization-server/tenant-a")
    );
    // The root well-known URL and the RFC 8414-incorrect appended form do not exist.
    for url in [
        format!("{base}/.well-known/oauth-authorization-server"),
        format!("{base}/tenant-a/.well-known/oauth-authorization-server"),
    ] {
        assert_eq!(get(&url).await.0, 404, "{url}");
    }
    assert_eq!(get(&ts.jwks_uri()).await.0, 200);
    assert_eq!(ts.metadata_fetches(), 3, "404s are not metadata fetches");
}

#[tokio::test]
async fn metadata_override_and_down() {
    let ts = TestAuthServer::start().await;
    ts.set_metadata(Some(json!({"issuer": "https://evil.example"})));
    assert_eq!(
        get(&ts.metadata_url()).await.1["issuer"],
        "https://evil.example"
    );
    ts.set_metadata(None);
    assert_eq!(get(&ts.metadata_url()).await.1["issuer"], ts.issuer());
    ts.set_metadata_down(true);
    assert_eq!(get(&ts.metadata_url()).await.0, 503);
    ts.set_metadata_down(false);
    assert_eq!(get(&ts.metadata_url()).await.0, 200);
    assert_eq!(ts.metadata_fetches(), 4);
}

#[tokio::test]
async fn metadata_issuer_override_and_jwks_cache_control() {
    let ts = TestAuthServer::start().await;
    ts.set_metadata_issuer("https://evil.example");
    let (_, m) = get(&ts.metadata_url()).await;
    assert_eq!(m["issuer"], "https://evil.example");
    assert_eq!(m["jwks_uri"], ts.jwks_uri(), "the rest is unchanged");
    ts.set_metadata(None);
    assert_eq!(get(&ts.metadata_url()).await.1["issuer"], ts.issuer());

    let cache_control = || async {
        let r = reqwest::get(ts.jwks_uri()).await.unwrap();
        r.headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(cache_control().await, None);
    ts.set_jwks_cache_control(Some("max-age=0"));
    assert_eq!(cache_control().await.as_deref(), Some("max-age=0"));
    ts.set_jwks_cache_control(None);
    assert_eq!(cache_control().await, None);
}

#[tokio::test]
async fn jwks_down_toggle_and_counter() {
    let ts = TestAuthServer::start().await;
    assert_eq!(ts.jwks_fetches(), 0);
    ts.set_jwks_down(true);
    assert_eq!(get(&ts.jwks_uri()).await.0, 503);
    ts.set_jwks_down(false);
    assert_eq!(get(&ts.jwks_uri()).await.0, 200);
    assert_eq!(ts.jwks_fetches(), 2, "failed fetches count too");
    ts.wait_for_jwks_fetches(2).await;
}

async fn introspect(
    ts: &TestAuthServer,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(ts.introspection_endpoint())
        .form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// An authenticated introspection request from a client that gives up after 200 ms; the
/// server must not answer in time.
async fn introspect_giving_up(ts: &TestAuthServer, token: &str) -> reqwest::Error {
    let (id, secret) = ts.introspection_client();
    reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap()
        .post(ts.introspection_endpoint())
        .basic_auth(id, Some(secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap_err()
}

#[tokio::test]
async fn introspection_is_programmable_and_authenticated() {
    let ts = TestAuthServer::builder()
        .introspection_client("rs", "pw")
        .start()
        .await;
    assert_eq!(ts.introspection_client(), ("rs", "pw"));
    let answer = ts.active_introspection(60);
    ts.set_introspection("opaque-1", answer.clone());

    let (s, body) = introspect(
        &ts,
        &[("token", "opaque-1"), ("token_type_hint", "access_token")],
        Some(("rs", "pw")),
    )
    .await;
    assert_eq!((s, body), (200, answer.clone()));
    let last = ts.last_introspection_request().unwrap();
    assert_eq!(last.token.as_deref(), Some("opaque-1"));
    assert_eq!(last.token_type_hint.as_deref(), Some("access_token"));
    assert_eq!(last.auth_method, "client_secret_basic");
    assert_eq!(last.authenticated_client.as_deref(), Some("rs"));

    let (s, body) = introspect(
        &ts,
        &[
            ("token", "opaque-1"),
            ("client_id", "rs"),
            ("client_secret", "pw"),
        ],
        None,
    )
    .await;
    assert_eq!((s, body["active"].clone()), (200, json!(true)));
    assert_eq!(
        ts.last_introspection_request().unwrap().auth_method,
        "client_secret_post"
    );

    let (s, body) = introspect(&ts, &[("token", "unknown")], Some(("rs", "pw"))).await;
    assert_eq!((s, body), (200, json!({"active": false})));

    ts.revoke("opaque-1");
    let (_, body) = introspect(&ts, &[("token", "opaque-1")], Some(("rs", "pw"))).await;
    assert_eq!(body, json!({"active": false}));

    let (s, body) = introspect(&ts, &[("token", "opaque-1")], Some(("rs", "wrong"))).await;
    assert_eq!((s, body["error"].clone()), (401, json!("invalid_client")));
    let (s, _) = introspect(&ts, &[("token", "opaque-1")], None).await;
    assert_eq!(s, 401);
    assert_eq!(ts.last_introspection_request().unwrap().auth_method, "none");
    let (s, body) = introspect(&ts, &[], Some(("rs", "pw"))).await;
    assert_eq!((s, body["error"].clone()), (400, json!("invalid_request")));

    assert_eq!(ts.introspection_calls(), 7);
}

#[tokio::test]
async fn introspection_records_the_request_as_received() {
    let ts = TestAuthServer::builder()
        .introspection_client("rs:id", "pw")
        .start()
        .await;
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("rs%3Aid:pw")
    );
    let r = reqwest::Client::new()
        .post(ts.introspection_endpoint())
        .header("authorization", &auth)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=a%2Bb&token_type_hint=access_token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let last = ts.last_introspection_request().unwrap();
    assert_eq!(last.body, "token=a%2Bb&token_type_hint=access_token");
    assert_eq!(last.token.as_deref(), Some("a+b"));
    assert_eq!(last.authorization.as_deref(), Some(auth.as_str()));
    assert_eq!(last.authenticated_client.as_deref(), Some("rs:id"));
}

#[tokio::test]
async fn introspection_raw_answers_and_hang() {
    let ts = TestAuthServer::start().await;
    let (id, secret) = ts.introspection_client();
    let (id, secret) = (id.to_owned(), secret.to_owned());
    let raw = || async {
        let r = reqwest::Client::new()
            .post(ts.introspection_endpoint())
            .form(&[("token", "t")])
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    ts.set_introspection_raw(Some((200, "not json")));
    assert_eq!(
        raw().await,
        (200, "not json".to_owned()),
        "even unauthenticated"
    );
    ts.set_introspection_raw(Some((500, "oops")));
    assert_eq!(raw().await, (500, "oops".to_owned()));
    ts.set_introspection_raw(None);
    assert_eq!(raw().await.0, 401);
    assert_eq!(ts.last_introspection_request().unwrap().body, "token=t");

    // Hang: the client gives up on its own; the request arrived and was recorded.
    ts.set_introspection_hang(true);
    let err = introspect_giving_up(&ts, "hung").await;
    assert!(err.is_timeout(), "{err}");
    assert_eq!(
        ts.last_introspection_request().unwrap().token.as_deref(),
        Some("hung")
    );
    // Released: a held request completes once the toggle is off.
    let held = tokio::spawn(
        reqwest::Client::new()
            .post(ts.introspection_endpoint())
            .basic_auth(&id, Some(&secret))
            .form(&[("token", "held")])
            .send(),
    );
    ts.wait_for_introspection_calls(5).await;
    ts.set_introspection_hang(false);
    assert_eq!(held.await.unwrap().unwrap().status(), 200);
    assert_eq!(ts.introspection_calls(), 5);
}

#[tokio::test]
async fn introspection_down_and_delay() {
    let ts = TestAuthServer::start().await;
    let (id, secret) = ts.introspection_client();
    let (id, secret) = (id.to_owned(), secret.to_owned());
    ts.set_introspection_down(true);
    assert_eq!(
        introspect(&ts, &[("token", "t")], Some((&id, &secret)))
            .await
            .0,
        503
    );
    ts.set_introspection_down(false);
    assert_eq!(
        introspect(&ts, &[("token", "t")], Some((&id, &secret)))
            .await
            .0,
        200
    );

    // A delay longer than the client's timeout makes the client time out; the call still
    // reached the server (counted), which is what timeout tests need.
    ts.set_introspection_delay(Duration::from_secs(30));
    let err = introspect_giving_up(&ts, "t").await;
    assert!(err.is_timeout(), "{err}");
    ts.wait_for_introspection_calls(3).await;
    assert_eq!(ts.introspection_calls(), 3);
}

#[tokio::test]
async fn token_endpoint_issues_default_tokens_for_the_resource() {
    let ts = TestAuthServer::builder()
        .audience("http://default/mcp")
        .start()
        .await;
    let r = reqwest::Client::new()
        .post(ts.token_endpoint())
        .basic_auth("any-client", Some("any"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("resource", AUD),
            ("scope", "invoices:read"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let t = body["access_token"].as_str().unwrap();
    let c = verify(&ts, t, Algorithm::ES256).await.unwrap();
    assert_eq!(c["aud"], AUD);
    assert_eq!(c["client_id"], "any-client");
    assert_eq!(c["scope"], "invoices:read");
    assert_eq!(ts.token_requests(), 1);

    let r = reqwest::Client::new()
        .post(ts.token_endpoint())
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn attacker_counts_hits_and_serves_its_own_keys() {
    let attacker = AttackerServer::start().await;
    assert_eq!(attacker.hits(), 0);
    let (status, jwks) = get(&attacker.jwks_url()).await;
    assert_eq!(status, 200);
    assert_eq!(jwks["keys"][0]["kid"], attacker.key(Alg::ES256).kid());
    let _ = reqwest::Client::new()
        .post(attacker.x5u_url())
        .send()
        .await
        .unwrap();
    attacker.wait_for_hits(2).await;
    assert_eq!(attacker.hits(), 2);
    assert_eq!(attacker.paths(), ["/jwks.json", "/cert.pem"]);

    // A jku token signed by the attacker really verifies against the attacker's JWKS, so a
    // verifier that followed jku would accept it.
    let ts = TestAuthServer::builder().audience(AUD).start().await;
    let t = ts
        .token()
        .key(attacker.key(Alg::ES256))
        .jku(&attacker.jwks_url())
        .sign();
    let set: JwkSet = serde_json::from_value(jwks).unwrap();
    let key = DecodingKey::from_jwk(set.find(attacker.key(Alg::ES256).kid()).unwrap()).unwrap();
    assert!(jsonwebtoken::decode::<Value>(&t, &key, &validation(Algorithm::ES256, &ts)).is_ok());
    assert!(
        verify(&ts, &t, Algorithm::ES256).await.is_err(),
        "not by the real issuer's keys"
    );
}

#[test]
fn malformed_tokens_are_all_undecodable() {
    let list = malformed_tokens();
    assert!(list.len() >= 10);
    let key = DecodingKey::from_secret(b"k");
    for (name, t) in list {
        let v = Validation::new(Algorithm::HS256);
        assert!(
            jsonwebtoken::decode::<Value>(&t, &key, &v).is_err(),
            "{name}"
        );
    }
}

#[test]
fn test_keys_round_trip_through_pkcs8_pem() {
    for alg in [Alg::RS256, Alg::PS256, Alg::ES256, Alg::EdDSA] {
        let k = TestKey::generate(alg);
        let pem = k.private_key_pkcs8_pem().unwrap();
        let back = TestKey::from_pkcs8_pem(alg, &pem, k.kid()).unwrap();
        let mut a = k.public_jwk();
        let mut b = back.public_jwk();
        a.as_object_mut().unwrap().remove("kid");
        b.as_object_mut().unwrap().remove("kid");
        assert_eq!(a, b, "{alg}");
    }
    assert!(
        TestKey::generate(Alg::HS256)
            .private_key_pkcs8_pem()
            .is_none()
    );
    assert!(TestKey::from_pkcs8_pem(Alg::ES256, "junk", "k").is_err());
}
