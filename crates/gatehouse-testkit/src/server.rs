//! The programmable test authorization server.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};
use url::form_urlencoded;

use crate::forge::TokenBuilder;
use crate::keys::{Alg, TestKey, junk_enc_rsa_jwk, unknown_kty_jwk};

/// Default audience of forged tokens until [`TestAuthServer::set_audience`] is called.
pub const DEFAULT_AUDIENCE: &str = "http://127.0.0.1:1/mcp";
/// Default `scope` claim of forged tokens.
pub const DEFAULT_SCOPE: &str = "invoices:read invoices:write";
/// Default `client_id` claim of forged tokens.
pub const DEFAULT_CLIENT_ID: &str = "test-client";
/// Default `sub` claim of forged tokens.
pub const DEFAULT_SUBJECT: &str = "test-user";
/// Default introspection client id.
pub const DEFAULT_INTROSPECTION_CLIENT_ID: &str = "gatehouse-rs";
/// Default introspection client secret.
pub const DEFAULT_INTROSPECTION_CLIENT_SECRET: &str = "rs-secret";

/// What the resource server sent to the introspection endpoint (RFC 7662 §2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntrospectionRequest {
    /// The `token` parameter.
    pub token: Option<String>,
    /// The `token_type_hint` parameter.
    pub token_type_hint: Option<String>,
    /// The client id it authenticated with (`None` when authentication failed).
    pub authenticated_client: Option<String>,
    /// `"client_secret_basic"` or `"client_secret_post"` (or `"none"`).
    pub auth_method: &'static str,
    /// The `Authorization` header exactly as received.
    pub authorization: Option<String>,
    /// The form body exactly as received (parameter order and encoding included).
    pub body: String,
}

/// Configures a [`TestAuthServer`] before it starts.
#[derive(Debug, Clone)]
pub struct TestAuthServerBuilder {
    issuer_path: String,
    audience: String,
    scope: String,
    client_id: String,
    subject: String,
    introspection_client: (String, String),
    algs: Vec<Alg>,
    keys: Option<Vec<TestKey>>,
}

impl Default for TestAuthServerBuilder {
    fn default() -> Self {
        Self {
            issuer_path: String::new(),
            audience: DEFAULT_AUDIENCE.into(),
            scope: DEFAULT_SCOPE.into(),
            client_id: DEFAULT_CLIENT_ID.into(),
            subject: DEFAULT_SUBJECT.into(),
            introspection_client: (
                DEFAULT_INTROSPECTION_CLIENT_ID.into(),
                DEFAULT_INTROSPECTION_CLIENT_SECRET.into(),
            ),
            algs: Alg::PUBLISHED.to_vec(),
            keys: None,
        }
    }
}

impl TestAuthServerBuilder {
    /// Gives the issuer a path, e.g. `"/tenant-a"` → issuer `http://127.0.0.1:PORT/tenant-a`,
    /// with path-aware well-known URLs (RFC 8414 §3.1 and OIDC Discovery §4).
    pub fn issuer_path(mut self, path: &str) -> Self {
        let p = path.trim_end_matches('/');
        self.issuer_path = if p.is_empty() || p.starts_with('/') {
            p.into()
        } else {
            format!("/{p}")
        };
        self
    }

    /// Default `aud` of forged tokens (change later with [`TestAuthServer::set_audience`]).
    pub fn audience(mut self, aud: &str) -> Self {
        self.audience = aud.into();
        self
    }

    /// Default `scope` of forged tokens.
    pub fn scope(mut self, scope: &str) -> Self {
        self.scope = scope.into();
        self
    }

    /// Default `client_id` of forged tokens.
    pub fn client_id(mut self, client_id: &str) -> Self {
        self.client_id = client_id.into();
        self
    }

    /// Default `sub` of forged tokens.
    pub fn subject(mut self, sub: &str) -> Self {
        self.subject = sub.into();
        self
    }

    /// Credentials the introspection endpoint accepts.
    pub fn introspection_client(mut self, id: &str, secret: &str) -> Self {
        self.introspection_client = (id.into(), secret.into());
        self
    }

    /// Publishes keys only for these algorithms (default: RS256, PS256, ES256, EdDSA). Fewer
    /// RSA keys start faster. ES256 is always included because it is the default.
    pub fn algs(mut self, algs: &[Alg]) -> Self {
        self.algs = algs.iter().copied().filter(|a| *a != Alg::HS256).collect();
        if !self.algs.contains(&Alg::ES256) {
            self.algs.push(Alg::ES256);
        }
        self
    }

    /// Publishes exactly these keys (in this order) instead of generating one per algorithm:
    /// fixed `kid`s, an RSA key [without `alg`](TestKey::with_alg) serving several algorithms,
    /// or no key at all for an introspection-only server. Overrides [`Self::algs`].
    pub fn keys(mut self, keys: Vec<TestKey>) -> Self {
        self.keys = Some(keys);
        self
    }

    /// Binds `127.0.0.1:0` and starts serving.
    pub async fn start(self) -> TestAuthServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let base = format!("http://{addr}");
        let issuer = format!("{base}{}", self.issuer_path);
        let published = match self.keys {
            Some(keys) => keys,
            None => generate_keys(&self.algs).await,
        };
        let state = Arc::new(Shared {
            issuer,
            path: self.issuer_path,
            audience: RwLock::new(self.audience),
            scope: self.scope,
            client_id: self.client_id,
            subject: self.subject,
            introspection_client: self.introspection_client,
            jwks: RwLock::new(JwksState {
                keys: published,
                extra: Vec::new(),
                omit_alg: false,
                raw: None,
                cache_control: None,
            }),
            introspection: Mutex::new(HashMap::new()),
            metadata_override: RwLock::new(None),
            jwks_down: Default::default(),
            introspection_down: Default::default(),
            metadata_down: Default::default(),
            introspection_delay: Mutex::new(Duration::ZERO),
            introspection_raw: Mutex::new(None),
            introspection_hang: watch::channel(false).0,
            jwks_hang: watch::channel(false).0,
            last_introspection: Mutex::new(None),
            counters: Counters::default(),
        });
        let app = router(state.clone());
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = rx.await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "test authorization server stopped");
            }
        });
        TestAuthServer {
            addr,
            base,
            state,
            shutdown: Some(tx),
        }
    }
}

/// RSA key generation takes ~100 ms each; generate the keys side by side.
async fn generate_keys(algs: &[Alg]) -> Vec<TestKey> {
    let jobs: Vec<_> = algs
        .iter()
        .map(|&a| tokio::task::spawn_blocking(move || TestKey::generate(a)))
        .collect();
    let mut keys = Vec::with_capacity(jobs.len());
    for job in jobs {
        keys.push(job.await.expect("key generation"));
    }
    keys
}

struct JwksState {
    keys: Vec<TestKey>,
    extra: Vec<Value>,
    omit_alg: bool,
    raw: Option<String>,
    cache_control: Option<String>,
}

struct Counters {
    jwks: watch::Sender<u64>,
    introspection: watch::Sender<u64>,
    metadata: watch::Sender<u64>,
    token: watch::Sender<u64>,
}

impl Default for Counters {
    fn default() -> Self {
        let c = || watch::channel(0).0;
        Self {
            jwks: c(),
            introspection: c(),
            metadata: c(),
            token: c(),
        }
    }
}

fn bump(c: &watch::Sender<u64>) {
    c.send_modify(|n| *n += 1);
}

async fn wait_for(c: &watch::Sender<u64>, n: u64) {
    let mut rx = c.subscribe();
    rx.wait_for(|v| *v >= n)
        .await
        .expect("sender lives as long as the server");
}

struct Shared {
    issuer: String,
    path: String,
    audience: RwLock<String>,
    scope: String,
    client_id: String,
    subject: String,
    introspection_client: (String, String),
    jwks: RwLock<JwksState>,
    introspection: Mutex<HashMap<String, Value>>,
    metadata_override: RwLock<Option<Value>>,
    jwks_down: std::sync::atomic::AtomicBool,
    introspection_down: std::sync::atomic::AtomicBool,
    metadata_down: std::sync::atomic::AtomicBool,
    introspection_delay: Mutex<Duration>,
    introspection_raw: Mutex<Option<(StatusCode, String)>>,
    introspection_hang: watch::Sender<bool>,
    jwks_hang: watch::Sender<bool>,
    last_introspection: Mutex<Option<IntrospectionRequest>>,
    counters: Counters,
}

impl Shared {
    fn metadata(&self) -> Value {
        if let Some(v) = self.metadata_override.read().expect("lock").clone() {
            return v;
        }
        let i = &self.issuer;
        // Shaped like oidc-provider's discovery document (test-peers.md), including the
        // authorization-code members a real AS advertises; only the endpoints the tests use
        // (token, jwks, introspection) are actually served.
        json!({
            "issuer": i,
            "authorization_endpoint": format!("{i}/auth"),
            "token_endpoint": format!("{i}/token"),
            "jwks_uri": format!("{i}/jwks"),
            "introspection_endpoint": format!("{i}/introspect"),
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "client_credentials"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": self.scope.split(' ').filter(|s| !s.is_empty()).collect::<Vec<_>>(),
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256", "RS256", "PS256", "EdDSA"],
        })
    }

    fn jwks_body(&self) -> String {
        let j = self.jwks.read().expect("lock");
        if let Some(raw) = &j.raw {
            return raw.clone();
        }
        let mut keys: Vec<Value> = j
            .keys
            .iter()
            .map(|k| {
                if j.omit_alg {
                    k.public_jwk_without_alg()
                } else {
                    k.public_jwk()
                }
            })
            .collect();
        keys.extend(j.extra.iter().cloned());
        json!({ "keys": keys }).to_string()
    }
}

/// A test authorization server on `127.0.0.1:<ephemeral>`. Stops when dropped.
///
/// Serves, under its issuer `I` (base URL, optionally with a path):
/// - metadata at `/.well-known/oauth-authorization-server{path}`,
///   `/.well-known/openid-configuration{path}` and `{I}/.well-known/openid-configuration`;
/// - `{I}/jwks`, `{I}/introspect` (client-authenticated, programmable), `{I}/token` (a
///   permissive `client_credentials` endpoint that returns a default forged token).
pub struct TestAuthServer {
    addr: SocketAddr,
    base: String,
    state: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Drop for TestAuthServer {
    fn drop(&mut self) {
        // Release hanging introspection requests so the graceful shutdown can finish.
        self.state.introspection_hang.send_replace(false);
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl std::fmt::Debug for TestAuthServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestAuthServer")
            .field("issuer", &self.state.issuer)
            .finish()
    }
}

impl TestAuthServer {
    /// Starts a server with all defaults (issuer = base URL, keys for RS256, PS256, ES256,
    /// EdDSA).
    pub async fn start() -> Self {
        Self::builder().start().await
    }

    /// A builder for a customised server.
    pub fn builder() -> TestAuthServerBuilder {
        TestAuthServerBuilder::default()
    }

    // ---- addresses ----

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (no path).
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The issuer identifier (base URL plus the optional path; no trailing slash).
    pub fn issuer(&self) -> &str {
        &self.state.issuer
    }

    /// The RFC 8414 §3.1 metadata URL: `/.well-known/oauth-authorization-server{path}`.
    pub fn metadata_url(&self) -> String {
        format!(
            "{}/.well-known/oauth-authorization-server{}",
            self.base, self.state.path
        )
    }

    /// The OIDC Discovery §4 URL: `{issuer}/.well-known/openid-configuration`.
    pub fn openid_configuration_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.state.issuer)
    }

    /// `{issuer}/jwks`.
    pub fn jwks_uri(&self) -> String {
        format!("{}/jwks", self.state.issuer)
    }

    /// `{issuer}/introspect`.
    pub fn introspection_endpoint(&self) -> String {
        format!("{}/introspect", self.state.issuer)
    }

    /// `{issuer}/token`.
    pub fn token_endpoint(&self) -> String {
        format!("{}/token", self.state.issuer)
    }

    /// The introspection client credentials `(id, secret)`.
    pub fn introspection_client(&self) -> (&str, &str) {
        (
            &self.state.introspection_client.0,
            &self.state.introspection_client.1,
        )
    }

    // ---- forging ----

    /// Sets the default `aud` of forged tokens (usually the resource server's URL, known only
    /// after it starts).
    pub fn set_audience(&self, aud: &str) {
        *self.state.audience.write().expect("lock") = aud.to_owned();
    }

    /// The default `aud` of forged tokens.
    pub fn audience(&self) -> String {
        self.state.audience.read().expect("lock").clone()
    }

    /// A token builder with defaults: header `{alg: ES256, typ: at+jwt, kid: <current ES256
    /// kid>}`, claims `{iss, sub, aud, client_id, scope, iat: now, exp: now+300, jti}`. On a
    /// server that publishes no ES256 key (see [`TestAuthServerBuilder::keys`]) the first
    /// published key signs instead.
    ///
    /// # Panics
    /// If no key is published.
    pub fn token(&self) -> TokenBuilder {
        let keys = self.published_keys();
        let key = keys
            .iter()
            .rev()
            .find(|k| k.alg() == Alg::ES256)
            .or(keys.first())
            .cloned()
            .expect("no published key; use TokenBuilder::new with a key");
        TokenBuilder::with_defaults(
            key,
            keys,
            &self.state.issuer,
            &self.audience(),
            &self.state.client_id,
            &self.state.subject,
            &self.state.scope,
        )
    }

    /// A valid default token (shorthand for `token().sign()`).
    pub fn valid_token(&self) -> String {
        self.token().sign()
    }

    // ---- keys and JWKS ----

    /// The published key for `alg` (the newest one if several).
    ///
    /// # Panics
    /// If no key for `alg` is published.
    pub fn current_key(&self, alg: Alg) -> TestKey {
        let j = self.state.jwks.read().expect("lock");
        j.keys
            .iter()
            .rev()
            .find(|k| k.alg() == alg)
            .cloned()
            .unwrap_or_else(|| panic!("no published {alg} key"))
    }

    /// The `kid` of the current ES256 key (the default signing key).
    pub fn current_kid(&self) -> String {
        self.current_key(Alg::ES256).kid().to_owned()
    }

    /// All published signing keys, in JWKS order.
    pub fn published_keys(&self) -> Vec<TestKey> {
        self.state.jwks.read().expect("lock").keys.clone()
    }

    /// Replaces the ES256 key with a new one (new `kid`); the old key leaves the JWKS.
    /// Returns the new `kid`.
    pub fn rotate(&self) -> String {
        self.rotate_alg(Alg::ES256)
    }

    /// Replaces every published key of `alg` with one new key. Returns the new `kid`.
    pub fn rotate_alg(&self, alg: Alg) -> String {
        let new = TestKey::generate(alg);
        let kid = new.kid().to_owned();
        let mut j = self.state.jwks.write().expect("lock");
        j.keys.retain(|k| k.alg() != alg);
        j.keys.push(new);
        kid
    }

    /// Adds a new key for `alg` while keeping the old ones (rotation overlap). Returns its `kid`.
    pub fn add_key(&self, alg: Alg) -> String {
        let new = TestKey::generate(alg);
        let kid = new.kid().to_owned();
        self.publish_key(new);
        kid
    }

    /// Replaces every published signing key with these (raw JWKs from
    /// [`Self::publish_extra_jwk`] stay).
    pub fn set_keys(&self, keys: Vec<TestKey>) {
        self.state.jwks.write().expect("lock").keys = keys;
    }

    /// Publishes any key (an HS256 key becomes an `oct` JWK: a hostile JWKS).
    pub fn publish_key(&self, key: TestKey) {
        self.state.jwks.write().expect("lock").keys.push(key);
    }

    /// Removes the key with this `kid` from the JWKS.
    pub fn unpublish(&self, kid: &str) {
        self.state
            .jwks
            .write()
            .expect("lock")
            .keys
            .retain(|k| k.kid() != kid);
    }

    /// Appends a raw JWK object to the set (kept across rotations).
    pub fn publish_extra_jwk(&self, jwk: Value) {
        self.state.jwks.write().expect("lock").extra.push(jwk);
    }

    /// Adds the junk a verifier must skip: an RSA-OAEP `use: enc` key and an unknown `kty`.
    pub fn add_junk_keys(&self) {
        self.publish_extra_jwk(junk_enc_rsa_jwk());
        self.publish_extra_jwk(unknown_kty_jwk());
    }

    /// Leaves `alg` out of every published signing JWK (oidc-provider, Entra style).
    pub fn set_jwks_omit_alg(&self, omit: bool) {
        self.state.jwks.write().expect("lock").omit_alg = omit;
    }

    /// Serves this exact body at the JWKS URL instead of the key set (`None` restores it).
    pub fn set_jwks_raw(&self, body: Option<&str>) {
        self.state.jwks.write().expect("lock").raw = body.map(str::to_owned);
    }

    /// Sends this `Cache-Control` header with the JWKS (`None`: no header), e.g. `max-age=0` to
    /// test a verifier's refresh clamps.
    pub fn set_jwks_cache_control(&self, value: Option<&str>) {
        self.state.jwks.write().expect("lock").cache_control = value.map(str::to_owned);
    }

    /// The JWKS document currently served (when not down).
    pub fn jwks_json(&self) -> Value {
        serde_json::from_str(&self.state.jwks_body()).unwrap_or(Value::Null)
    }

    // ---- metadata ----

    /// The metadata document currently served (when not down).
    pub fn metadata(&self) -> Value {
        self.state.metadata()
    }

    /// Serves this document instead of the generated metadata (`None` restores it), e.g. one
    /// with a wrong `issuer`.
    pub fn set_metadata(&self, doc: Option<Value>) {
        *self.state.metadata_override.write().expect("lock") = doc;
    }

    /// Serves the metadata currently served, but with this `issuer` (the RFC 8414 §3.3
    /// mismatch a client must refuse). [`Self::set_metadata`]`(None)` restores it.
    pub fn set_metadata_issuer(&self, issuer: &str) {
        let mut doc = self.metadata();
        doc["issuer"] = json!(issuer);
        self.set_metadata(Some(doc));
    }

    // ---- introspection ----

    /// Programs the introspection answer for `token`. Unknown tokens get `{"active":false}`.
    pub fn set_introspection(&self, token: &str, response: Value) {
        self.state
            .introspection
            .lock()
            .expect("lock")
            .insert(token.to_owned(), response);
    }

    /// Forgets the programmed answer for `token` (it becomes `{"active":false}`), as after a
    /// revocation.
    pub fn revoke(&self, token: &str) {
        self.state.introspection.lock().expect("lock").remove(token);
    }

    /// An `active: true` answer with the server's default claims for `aud`, expiring in
    /// `expires_in` seconds: `{active, iss, sub, aud, client_id, scope, exp, iat,
    /// token_type}`.
    pub fn active_introspection(&self, expires_in: i64) -> Value {
        let now = crate::forge::now();
        json!({
            "active": true,
            "iss": self.state.issuer,
            "sub": self.state.subject,
            "aud": self.audience(),
            "client_id": self.state.client_id,
            "scope": self.state.scope,
            "iat": now,
            "exp": now + expires_in,
            "token_type": "Bearer",
        })
    }

    /// The last request the introspection endpoint received.
    pub fn last_introspection_request(&self) -> Option<IntrospectionRequest> {
        self.state.last_introspection.lock().expect("lock").clone()
    }

    // ---- failure toggles ----

    /// While `true`, the JWKS URL answers 503.
    pub fn set_jwks_down(&self, down: bool) {
        self.state
            .jwks_down
            .store(down, std::sync::atomic::Ordering::SeqCst);
    }

    /// While `true`, the introspection endpoint answers 503.
    pub fn set_introspection_down(&self, down: bool) {
        self.state
            .introspection_down
            .store(down, std::sync::atomic::Ordering::SeqCst);
    }

    /// While `true`, every metadata URL answers 503.
    pub fn set_metadata_down(&self, down: bool) {
        self.state
            .metadata_down
            .store(down, std::sync::atomic::Ordering::SeqCst);
    }

    /// The introspection endpoint waits this long before answering (timeout tests; combine
    /// with `tokio::time::pause` in the caller where possible).
    pub fn set_introspection_delay(&self, delay: Duration) {
        *self.state.introspection_delay.lock().expect("lock") = delay;
    }

    /// While `Some((status, body))`, the introspection endpoint answers every request with this
    /// status and raw body, whatever the credentials and token (bad-response tests). The request
    /// is still counted and recorded.
    pub fn set_introspection_raw(&self, answer: Option<(u16, &str)>) {
        *self.state.introspection_raw.lock().expect("lock") = answer.map(|(status, body)| {
            (
                StatusCode::from_u16(status).expect("valid status"),
                body.to_owned(),
            )
        });
    }

    /// While `true`, the introspection endpoint holds every request without answering (counted
    /// and recorded first); setting it back to `false`, or dropping the server, releases them.
    /// For timeout tests that must not depend on how long a delay is.
    pub fn set_introspection_hang(&self, hang: bool) {
        self.state.introspection_hang.send_replace(hang);
    }

    /// While `true`, the JWKS URL accepts every request and holds it without answering (counted
    /// first); setting it back to `false`, or dropping the server, releases them with the keys
    /// published then. For fetch-deadline tests and the hanging-JWKS fault run.
    pub fn set_jwks_hang(&self, hang: bool) {
        self.state.jwks_hang.send_replace(hang);
    }

    // ---- counters ----

    /// JWKS requests received (including those answered 503).
    pub fn jwks_fetches(&self) -> u64 {
        *self.state.counters.jwks.borrow()
    }

    /// Introspection requests received (including failed or refused ones).
    pub fn introspection_calls(&self) -> u64 {
        *self.state.counters.introspection.borrow()
    }

    /// Metadata requests received on any of the well-known URLs.
    pub fn metadata_fetches(&self) -> u64 {
        *self.state.counters.metadata.borrow()
    }

    /// Token endpoint requests received.
    pub fn token_requests(&self) -> u64 {
        *self.state.counters.token.borrow()
    }

    /// Waits until at least `n` JWKS requests have arrived (no sleeping or polling).
    pub async fn wait_for_jwks_fetches(&self, n: u64) {
        wait_for(&self.state.counters.jwks, n).await;
    }

    /// Waits until at least `n` introspection requests have arrived.
    pub async fn wait_for_introspection_calls(&self, n: u64) {
        wait_for(&self.state.counters.introspection, n).await;
    }

    /// Waits until at least `n` metadata requests have arrived.
    pub async fn wait_for_metadata_fetches(&self, n: u64) {
        wait_for(&self.state.counters.metadata, n).await;
    }
}

fn router(state: Arc<Shared>) -> Router {
    let p = state.path.clone();
    let mut r = Router::new()
        .route(
            &format!("/.well-known/oauth-authorization-server{p}"),
            get(metadata),
        )
        .route(&format!("{p}/jwks"), get(jwks))
        .route(&format!("{p}/introspect"), post(introspect))
        .route(&format!("{p}/token"), post(token));
    // RFC 8414 §3.1 inserts the well-known segment before the path; OIDC Discovery §4 appends
    // it. With no path the two coincide.
    r = r.route(
        &format!("{p}/.well-known/openid-configuration"),
        get(metadata),
    );
    if !p.is_empty() {
        r = r.route(
            &format!("/.well-known/openid-configuration{p}"),
            get(metadata),
        );
    }
    r.with_state(state)
}

fn unavailable() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, "temporarily unavailable").into_response()
}

fn json_response(body: String) -> Response {
    ([(CONTENT_TYPE, "application/json")], body).into_response()
}

async fn metadata(State(s): State<Arc<Shared>>) -> Response {
    bump(&s.counters.metadata);
    if s.metadata_down.load(std::sync::atomic::Ordering::SeqCst) {
        return unavailable();
    }
    json_response(s.metadata().to_string())
}

async fn jwks(State(s): State<Arc<Shared>>) -> Response {
    bump(&s.counters.jwks);
    let mut hang = s.jwks_hang.subscribe();
    let _ = hang.wait_for(|h| !*h).await;
    if s.jwks_down.load(std::sync::atomic::Ordering::SeqCst) {
        return unavailable();
    }
    let mut r = json_response(s.jwks_body());
    if let Some(cc) = s.jwks.read().expect("lock").cache_control.as_deref() {
        r.headers_mut()
            .insert(CACHE_CONTROL, cc.parse().expect("header value"));
    }
    r
}

fn oauth_error(status: StatusCode, code: &str) -> Response {
    let mut r = (status, axum::Json(json!({"error": code}))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            WWW_AUTHENTICATE,
            "Basic realm=\"test-as\"".parse().expect("static"),
        );
    }
    r
}

/// Client credentials from `client_secret_basic` or `client_secret_post` (RFC 6749 §2.3.1).
fn client_credentials(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Option<(String, String, &'static str)> {
    if let Some(v) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let (scheme, rest) = v.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = String::from_utf8(STANDARD.decode(rest.trim()).ok()?).ok()?;
        let (id, secret) = decoded.split_once(':')?;
        let dec = |s: &str| {
            form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        return Some((dec(id), dec(secret), "client_secret_basic"));
    }
    Some((
        form.get("client_id")?.clone(),
        form.get("client_secret")?.clone(),
        "client_secret_post",
    ))
}

fn parse_form(body: &Bytes) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

async fn introspect(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    bump(&s.counters.introspection);
    let delay = *s.introspection_delay.lock().expect("lock");
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if s.introspection_down
        .load(std::sync::atomic::Ordering::SeqCst)
    {
        return unavailable();
    }
    let form = parse_form(&body);
    let creds = client_credentials(&headers, &form);
    let (id, secret) = (&s.introspection_client.0, &s.introspection_client.1);
    let ok = creds
        .as_ref()
        .is_some_and(|(i, sec, _)| i == id && sec == secret);
    *s.last_introspection.lock().expect("lock") = Some(IntrospectionRequest {
        token: form.get("token").cloned(),
        token_type_hint: form.get("token_type_hint").cloned(),
        authenticated_client: ok.then(|| id.clone()),
        auth_method: creds.as_ref().map_or("none", |c| c.2),
        authorization: headers
            .get(AUTHORIZATION)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let mut hang = s.introspection_hang.subscribe();
    let _ = hang.wait_for(|h| !*h).await;
    if let Some((status, body)) = s.introspection_raw.lock().expect("lock").clone() {
        return (status, body).into_response();
    }
    // RFC 7662 §2.1: the endpoint MUST require authorization of the caller.
    if !ok {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let Some(token) = form.get("token") else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    };
    let answer = s
        .introspection
        .lock()
        .expect("lock")
        .get(token)
        .cloned()
        .unwrap_or_else(|| json!({"active": false}));
    ([(CACHE_CONTROL, "no-store")], axum::Json(answer)).into_response()
}

/// A permissive token endpoint (like oauth2-mock-server): any client, `resource` becomes `aud`.
async fn token(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    bump(&s.counters.token);
    let form = parse_form(&body);
    let Some((client_id, _, _)) = client_credentials(&headers, &form) else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    };
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    let aud = form
        .get("resource")
        .cloned()
        .unwrap_or_else(|| s.audience.read().expect("lock").clone());
    let scope = form
        .get("scope")
        .cloned()
        .unwrap_or_else(|| s.scope.clone());
    let keys = s.jwks.read().expect("lock").keys.clone();
    let key = keys
        .iter()
        .rev()
        .find(|k| k.alg() == Alg::ES256)
        .cloned()
        .expect("ES256 key");
    let token =
        TokenBuilder::with_defaults(key, keys, &s.issuer, &aud, &client_id, &client_id, &scope)
            .sign();
    (
        [(CACHE_CONTROL, "no-store")],
        axum::Json(json!({"access_token": token, "token_type": "Bearer", "expires_in": 300, "scope": scope})),
    )
        .into_response()
}
