//! Shared helpers of the interactive-flow tests: an issuer with demo users and a clock the
//! test moves, requests through the real router, the sign-in page's form, PKCE.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use aws_lc_rs::digest::{SHA256, digest};
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use gatehouse_dev_issuer::{Clock, DevClient, DevIssuer, DevIssuerConfig, DevUser, router};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

pub(crate) const ISSUER: &str = "http://127.0.0.1:9400";
pub(crate) const RESOURCE: &str = "http://127.0.0.1:3000/mcp";
pub(crate) const REDIRECT: &str = "http://127.0.0.1:6274/oauth/callback";
pub(crate) const VERIFIER: &str = "a-verifier-of-more-than-forty-three-characters_0123456789";

pub(crate) fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes()))
}

pub(crate) fn users() -> Vec<DevUser> {
    vec![
        DevUser::new("alice", ["invoices:read", "invoices:write"]).with_tenant("acme"),
        DevUser::new("bob", ["invoices:read"]).with_subject("user-bob"),
    ]
}

pub(crate) fn config() -> DevIssuerConfig {
    DevIssuerConfig {
        issuer: Some(ISSUER.into()),
        clients: vec![DevClient::new("agent", "s3cret", ["invoices:read"])],
        users: users(),
        ..DevIssuerConfig::default()
    }
}

/// An issuer whose clock the test advances (`Env::advance`) instead of sleeping.
pub(crate) struct Env {
    pub iss: DevIssuer,
    offset: Arc<AtomicU64>,
}

impl Env {
    pub(crate) fn new() -> Self {
        Self::with_config(config())
    }

    pub(crate) fn with_config(config: DevIssuerConfig) -> Self {
        let offset = Arc::new(AtomicU64::new(0));
        let o = offset.clone();
        let clock = Clock::from_fn(move || {
            SystemTime::now() + Duration::from_secs(o.load(Ordering::SeqCst))
        });
        let iss = DevIssuer::builder(config).clock(clock).build().unwrap();
        Self { iss, offset }
    }

    pub(crate) fn advance(&self, secs: u64) {
        self.offset.fetch_add(secs, Ordering::SeqCst);
    }
}

#[derive(Debug)]
pub(crate) struct Resp {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

impl Resp {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    pub(crate) fn location(&self) -> Option<&str> {
        self.headers.get("location").map(|v| v.to_str().unwrap())
    }

    /// The query parameters of the redirect (panics without one).
    pub(crate) fn redirect_params(&self) -> HashMap<String, String> {
        let loc = self
            .location()
            .unwrap_or_else(|| panic!("no redirect: {self:?}"));
        let url = url::Url::parse(loc).unwrap();
        url.query_pairs().into_owned().collect()
    }

    /// The redirect's target without its query.
    pub(crate) fn redirect_base(&self) -> String {
        let mut url = url::Url::parse(self.location().unwrap()).unwrap();
        url.set_query(None);
        url.to_string()
    }

    /// The consent form's transaction id.
    pub(crate) fn transaction(&self) -> String {
        let marker = "name=\"transaction\" value=\"";
        let start = self
            .body
            .find(marker)
            .unwrap_or_else(|| panic!("no form: {self:?}"))
            + marker.len();
        let end = start + self.body[start..].find('"').unwrap();
        self.body[start..end].to_owned()
    }
}

pub(crate) async fn call(iss: &DevIssuer, req: Request<Body>) -> Resp {
    let resp = router(iss.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

pub(crate) fn encode(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// `client_secret_basic` credentials (RFC 6749 §2.3.1: form-urlencode, then Basic).
pub(crate) fn basic(id: &str, secret: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", enc(id), enc(secret)))
    )
}

pub(crate) async fn post_form(
    iss: &DevIssuer,
    path: &str,
    pairs: &[(&str, &str)],
    auth: Option<String>,
) -> Resp {
    call(iss, form_req(path, &encode(pairs), auth)).await
}

/// A form-encoded `POST` of `body` to `path`, with an `Authorization` header when given.
pub(crate) fn form_req(path: &str, body: &str, auth: Option<String>) -> Request<Body> {
    let mut b = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(a) = auth {
        b = b.header("authorization", a);
    }
    b.body(Body::from(body.to_owned())).unwrap()
}

pub(crate) async fn post_json(iss: &DevIssuer, path: &str, body: &Value) -> Resp {
    let req = Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    call(iss, req).await
}

/// Registers a client (RFC 7591) and returns the registration response.
pub(crate) async fn register(iss: &DevIssuer, metadata: Value) -> Value {
    let r = post_json(iss, "/register", &metadata).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.json()
}

/// A public client with authorization_code + refresh_token and one loopback redirect URI.
pub(crate) async fn public_client(iss: &DevIssuer) -> String {
    let info = register(
        iss,
        serde_json::json!({
            "client_name": "MCP Inspector",
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
        }),
    )
    .await;
    info["client_id"].as_str().unwrap().to_owned()
}

pub(crate) async fn authorize(iss: &DevIssuer, pairs: &[(&str, &str)]) -> Resp {
    call(
        iss,
        Request::get(format!("/authorize?{}", encode(pairs)))
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

/// The parameters of a well-formed authorization request; tests override or drop some.
pub(crate) fn auth_params<'a>(client_id: &'a str, challenge: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
        ("resource", RESOURCE),
        ("scope", "invoices:read"),
        ("state", "st-123"),
    ]
}

pub(crate) fn without<'a>(params: &[(&'a str, &'a str)], key: &str) -> Vec<(&'a str, &'a str)> {
    params.iter().copied().filter(|(k, _)| *k != key).collect()
}

pub(crate) fn with<'a>(
    params: &[(&'a str, &'a str)],
    key: &'a str,
    value: &'a str,
) -> Vec<(&'a str, &'a str)> {
    let mut p = without(params, key);
    p.push((key, value));
    p
}

pub(crate) async fn decide(iss: &DevIssuer, txn: &str, user: &str, decision: &str) -> Resp {
    post_form(
        iss,
        "/authorize",
        &[("transaction", txn), ("user", user), ("decision", decision)],
        None,
    )
    .await
}

/// Authorization request → page → approve as `user` → the code.
pub(crate) async fn code_for(iss: &DevIssuer, params: &[(&str, &str)], user: &str) -> String {
    let page = authorize(iss, params).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let r = decide(iss, &page.transaction(), user, "approve").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    r.redirect_params()
        .remove("code")
        .unwrap_or_else(|| panic!("no code: {:?}", r.location()))
}

/// Redeems `code` as the public client `client_id` with the default verifier and redirect.
pub(crate) async fn redeem(iss: &DevIssuer, client_id: &str, code: &str) -> Resp {
    post_form(
        iss,
        "/token",
        &[
            ("grant_type", "authorization_code"),
            ("client_id", client_id),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
        None,
    )
    .await
}

pub(crate) fn assert_token_error(r: &Resp, code: &str) {
    let status = if code == "invalid_client" { 401 } else { 400 };
    assert_eq!(r.status.as_u16(), status, "{}", r.body);
    assert_eq!(r.json()["error"], code, "{}", r.body);
    assert_eq!(r.headers["cache-control"], "no-store");
}

/// An authorization error delivered by redirect: error, state and iss (RFC 9207).
pub(crate) fn assert_redirected_error(r: &Resp, code: &str) {
    assert!(
        r.status == StatusCode::FOUND || r.status == StatusCode::SEE_OTHER,
        "{r:?}"
    );
    assert_eq!(r.redirect_base(), REDIRECT);
    let p = r.redirect_params();
    assert_eq!(p.get("error").map(String::as_str), Some(code), "{p:?}");
    assert_eq!(p.get("state").map(String::as_str), Some("st-123"));
    assert_eq!(p.get("iss").map(String::as_str), Some(ISSUER));
    assert!(!p.contains_key("code"));
}

/// An error page: 400 HTML, no redirect.
pub(crate) fn assert_error_page(r: &Resp) {
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{r:?}");
    assert!(r.location().is_none(), "{r:?}");
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(r.headers["cache-control"], "no-store");
    assert!(r.body.contains("Authorization request refused"));
}

/// The claims of a JWT, verified against the issuer's served JWKS.
pub(crate) async fn verify(iss: &DevIssuer, token: &str, aud: &str) -> Value {
    use jsonwebtoken::jwk::JwkSet;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    let r = call(iss, Request::get("/jwks").body(Body::empty()).unwrap()).await;
    let set: JwkSet = serde_json::from_str(&r.body).unwrap();
    let kid = jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    let key = DecodingKey::from_jwk(set.find(&kid).expect("kid published")).unwrap();
    let mut v = Validation::new(Algorithm::ES256);
    v.set_issuer(&[ISSUER]);
    v.set_audience(&[aud]);
    jsonwebtoken::decode::<Value>(token, &key, &v)
        .unwrap()
        .claims
}

pub(crate) fn header_typ(token: &str) -> String {
    let h = token.split('.').next().unwrap();
    let v: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap();
    v["typ"].as_str().unwrap().to_owned()
}

/// A DPoP proof for the token endpoint by `key` (RFC 9449 §4.2), with `htu` as given.
pub(crate) fn dpop_proof(key: &gatehouse::jws::SigningKey, htu: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    key.sign_jws(
        &serde_json::json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_jwk()}),
        &serde_json::json!({"jti": gatehouse::jws::random_id(), "htm": "POST", "htu": htu, "iat": now}),
    )
}
