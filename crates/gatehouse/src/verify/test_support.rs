//! Test helpers for the verifier: signing keys generated at runtime with aws-lc-rs, a hand-rolled
//! JWS encoder (so tests can write any header, including hostile ones), and a mock identity
//! provider on `127.0.0.1:0` serving metadata, JWKS and introspection with counters and toggles.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair,
};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tokio::sync::watch;
use url::Url;

pub(crate) fn b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `header.payload` (the JWS signing input) for arbitrary JSON values.
pub(crate) fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64(serde_json::to_string(header).unwrap().as_bytes()),
        b64(serde_json::to_string(claims).unwrap().as_bytes())
    )
}

enum Material {
    Rsa(Arc<RsaKeyPair>),
    Ec256(Arc<EcdsaKeyPair>),
    Ed(Arc<Ed25519KeyPair>),
}

/// A signing key with a `kid`.
pub(crate) struct TestKey {
    pub(crate) kid: String,
    material: Material,
}

/// RSA generation is the slow part; a few keys are made once per test binary and shared.
fn rsa_pool() -> &'static [Arc<RsaKeyPair>] {
    static POOL: OnceLock<Vec<Arc<RsaKeyPair>>> = OnceLock::new();
    POOL.get_or_init(|| {
        (0..3)
            .map(|_| Arc::new(RsaKeyPair::generate(KeySize::Rsa2048).unwrap()))
            .collect()
    })
}

impl TestKey {
    /// RSA key number `index` (0..3) of the shared pool.
    pub(crate) fn rsa(index: usize, kid: &str) -> Self {
        Self {
            kid: kid.into(),
            material: Material::Rsa(rsa_pool()[index].clone()),
        }
    }

    pub(crate) fn ec256(kid: &str) -> Self {
        let kp = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        Self {
            kid: kid.into(),
            material: Material::Ec256(Arc::new(kp)),
        }
    }

    pub(crate) fn ed25519(kid: &str) -> Self {
        let kp = Ed25519KeyPair::generate().unwrap();
        Self {
            kid: kid.into(),
            material: Material::Ed(Arc::new(kp)),
        }
    }

    /// The algorithm a well-behaved issuer uses with this key.
    pub(crate) fn default_alg(&self) -> &'static str {
        match self.material {
            Material::Rsa(_) => "RS256",
            Material::Ec256(_) => "ES256",
            Material::Ed(_) => "EdDSA",
        }
    }

    /// The public JWK (`alg` included only when given).
    pub(crate) fn jwk(&self, alg: Option<&str>) -> Value {
        let mut v = match &self.material {
            Material::Rsa(kp) => {
                let pk = kp.public_key();
                json!({
                    "kty": "RSA",
                    "n": b64(pk.modulus().big_endian_without_leading_zero()),
                    "e": b64(pk.exponent().big_endian_without_leading_zero()),
                })
            }
            Material::Ec256(kp) => {
                let pt = kp.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "x": b64(&pt[1..33]), "y": b64(&pt[33..65])})
            }
            Material::Ed(kp) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64(kp.public_key().as_ref())})
            }
        };
        v["kid"] = json!(self.kid);
        if let Some(a) = alg {
            v["alg"] = json!(a);
        }
        v
    }

    /// The RSA public key in PKCS#1 DER (what a naive HS256 verifier might use as "secret").
    pub(crate) fn rsa_public_der(&self) -> Vec<u8> {
        match &self.material {
            Material::Rsa(kp) => kp.public_key().as_ref().to_vec(),
            _ => panic!("not an RSA key"),
        }
    }

    /// Signs `header.claims` with the algorithm named in `header["alg"]`.
    pub(crate) fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = signing_input(header, claims);
        let alg = header["alg"].as_str().unwrap_or(self.default_alg());
        let rng = SystemRandom::new();
        let sig = match (&self.material, alg) {
            (Material::Rsa(kp), a) => {
                let pad: &'static dyn signature::RsaEncoding = match a {
                    "RS256" => &signature::RSA_PKCS1_SHA256,
                    "RS384" => &signature::RSA_PKCS1_SHA384,
                    "RS512" => &signature::RSA_PKCS1_SHA512,
                    "PS256" => &signature::RSA_PSS_SHA256,
                    "PS384" => &signature::RSA_PSS_SHA384,
                    "PS512" => &signature::RSA_PSS_SHA512,
                    // Any other name: sign with RS256 anyway (the header lies).
                    _ => &signature::RSA_PKCS1_SHA256,
                };
                let mut sig = vec![0; kp.public_modulus_len()];
                kp.sign(pad, &rng, input.as_bytes(), &mut sig).unwrap();
                sig
            }
            (Material::Ec256(kp), _) => kp.sign(&rng, input.as_bytes()).unwrap().as_ref().to_vec(),
            (Material::Ed(kp), _) => kp.sign(input.as_bytes()).as_ref().to_vec(),
        };
        format!("{input}.{}", b64(&sig))
    }

    /// An RFC 9068 header for this key: `{"alg", "typ": "at+jwt", "kid"}`.
    pub(crate) fn header(&self) -> Value {
        json!({"alg": self.default_alg(), "typ": "at+jwt", "kid": self.kid})
    }

    /// A token with the standard header.
    pub(crate) fn token(&self, claims: &Value) -> String {
        self.sign(&self.header(), claims)
    }
}

/// HS256 over `header.claims` with `secret`.
pub(crate) fn sign_hs256(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let input = signing_input(header, claims);
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", b64(tag.as_ref()))
}

/// What the mock introspection endpoint does.
#[derive(Clone)]
pub(crate) enum IntrospectionMode {
    /// 200 with this JSON.
    Json(Value),
    /// This status and raw body.
    Raw(u16, &'static str),
    /// Never answers (until the IdP is dropped).
    Hang,
}

struct IdpState {
    base: Mutex<String>,
    issuer_override: Mutex<Option<String>>,
    jwks: Mutex<Value>,
    attacker_jwks: Mutex<Value>,
    down: AtomicBool,
    cache_control: Mutex<Option<String>>,
    jwks_hits: watch::Sender<u64>,
    attacker_hits: AtomicU64,
    metadata_hits: AtomicU64,
    introspection: Mutex<IntrospectionMode>,
    introspection_hits: AtomicU64,
    last_introspection: Mutex<Option<(HeaderMap, String)>>,
    hang: watch::Receiver<bool>,
    _hang_tx: watch::Sender<bool>,
}

/// A mock identity provider. Its issuer is its base URL (`http://127.0.0.1:port`).
#[derive(Clone)]
pub(crate) struct MockIdp {
    state: Arc<IdpState>,
}

impl MockIdp {
    pub(crate) async fn start() -> Self {
        let (hang_tx, hang_rx) = watch::channel(false);
        let state = Arc::new(IdpState {
            base: Mutex::default(),
            issuer_override: Mutex::default(),
            jwks: Mutex::new(json!({"keys": []})),
            attacker_jwks: Mutex::new(json!({"keys": []})),
            down: AtomicBool::new(false),
            cache_control: Mutex::default(),
            jwks_hits: watch::channel(0).0,
            attacker_hits: AtomicU64::new(0),
            metadata_hits: AtomicU64::new(0),
            introspection: Mutex::new(IntrospectionMode::Json(json!({"active": false}))),
            introspection_hits: AtomicU64::new(0),
            last_introspection: Mutex::default(),
            hang: hang_rx,
            _hang_tx: hang_tx,
        });
        let app = Router::new()
            .route("/jwks", get(jwks))
            .route("/.well-known/oauth-authorization-server", get(metadata))
            .route("/introspect", post(introspect))
            .route("/attacker/{*rest}", any(attacker))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        *state.base.lock().unwrap() = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { state }
    }

    pub(crate) fn issuer(&self) -> String {
        self.state.base.lock().unwrap().clone()
    }

    pub(crate) fn url(&self, path: &str) -> Url {
        Url::parse(&format!("{}{path}", self.issuer())).unwrap()
    }

    pub(crate) fn jwks_url(&self) -> Url {
        self.url("/jwks")
    }

    pub(crate) fn introspection_url(&self) -> Url {
        self.url("/introspect")
    }

    pub(crate) fn set_keys(&self, keys: &[&TestKey]) {
        self.set_jwks(json!({"keys": keys.iter().map(|k| k.jwk(None)).collect::<Vec<_>>()}));
    }

    pub(crate) fn set_jwks(&self, doc: Value) {
        *self.state.jwks.lock().unwrap() = doc;
    }

    pub(crate) fn set_attacker_keys(&self, keys: &[&TestKey]) {
        *self.state.attacker_jwks.lock().unwrap() =
            json!({"keys": keys.iter().map(|k| k.jwk(None)).collect::<Vec<_>>()});
    }

    pub(crate) fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    pub(crate) fn set_cache_control(&self, v: &str) {
        *self.state.cache_control.lock().unwrap() = Some(v.into());
    }

    pub(crate) fn set_metadata_issuer(&self, issuer: &str) {
        *self.state.issuer_override.lock().unwrap() = Some(issuer.into());
    }

    pub(crate) fn set_introspection(&self, mode: IntrospectionMode) {
        *self.state.introspection.lock().unwrap() = mode;
    }

    pub(crate) fn jwks_hits(&self) -> u64 {
        *self.state.jwks_hits.borrow()
    }

    pub(crate) fn subscribe_jwks_hits(&self) -> watch::Receiver<u64> {
        self.state.jwks_hits.subscribe()
    }

    pub(crate) fn attacker_hits(&self) -> u64 {
        self.state.attacker_hits.load(Ordering::SeqCst)
    }

    pub(crate) fn metadata_hits(&self) -> u64 {
        self.state.metadata_hits.load(Ordering::SeqCst)
    }

    pub(crate) fn introspection_hits(&self) -> u64 {
        self.state.introspection_hits.load(Ordering::SeqCst)
    }

    /// Headers and form body of the last introspection request.
    pub(crate) fn last_introspection(&self) -> Option<(HeaderMap, String)> {
        self.state.last_introspection.lock().unwrap().clone()
    }

    /// Standard valid claims for this issuer and `aud`.
    pub(crate) fn claims(&self, aud: &str) -> Value {
        let now = now();
        json!({
            "iss": self.issuer(),
            "sub": "user-1",
            "aud": aud,
            "client_id": "client-1",
            "scope": "invoices:read invoices:write",
            "iat": now,
            "exp": now + 600,
            "jti": "j-1",
        })
    }
}

async fn jwks(State(s): State<Arc<IdpState>>) -> Response {
    s.jwks_hits.send_modify(|n| *n += 1);
    if s.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let body = s.jwks.lock().unwrap().clone();
    let cc = s.cache_control.lock().unwrap().clone();
    let mut resp = axum::Json(body).into_response();
    if let Some(cc) = cc {
        resp.headers_mut()
            .insert("cache-control", cc.parse().unwrap());
    }
    resp
}

async fn metadata(State(s): State<Arc<IdpState>>) -> Response {
    s.metadata_hits.fetch_add(1, Ordering::SeqCst);
    let base = s.base.lock().unwrap().clone();
    let issuer = s
        .issuer_override
        .lock()
        .unwrap()
        .clone()
        .unwrap_or(base.clone());
    axum::Json(json!({
        "issuer": issuer,
        "jwks_uri": format!("{base}/jwks"),
        "introspection_endpoint": format!("{base}/introspect"),
        "token_endpoint": format!("{base}/token"),
        "code_challenge_methods_supported": ["S256"],
    }))
    .into_response()
}

async fn introspect(State(s): State<Arc<IdpState>>, headers: HeaderMap, body: String) -> Response {
    s.introspection_hits.fetch_add(1, Ordering::SeqCst);
    *s.last_introspection.lock().unwrap() = Some((headers, body));
    let mode = s.introspection.lock().unwrap().clone();
    match mode {
        IntrospectionMode::Json(v) => axum::Json(v).into_response(),
        IntrospectionMode::Raw(status, body) => {
            (StatusCode::from_u16(status).unwrap(), body).into_response()
        }
        IntrospectionMode::Hang => {
            let mut rx = s.hang.clone();
            let _ = rx.wait_for(|v| *v).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
    }
}

async fn attacker(State(s): State<Arc<IdpState>>) -> Response {
    s.attacker_hits.fetch_add(1, Ordering::SeqCst);
    axum::Json(s.attacker_jwks.lock().unwrap().clone()).into_response()
}
