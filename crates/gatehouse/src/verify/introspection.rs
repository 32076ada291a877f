//! RFC 7662 token introspection, for opaque access tokens (and JWE tokens we cannot read).
//!
//! The request (RFC 7662 §2.1): `POST` form `token=…&token_type_hint=access_token`,
//! authenticated with this resource server's own client credentials (`client_secret_basic` by
//! default, or `client_secret_post`). The response (§2.2): `active` is REQUIRED and decides;
//! everything else is optional, so the resource server still checks what it can itself
//! (spec rows E15, A22): `aud` when present must contain an accepted audience, `iss` when present
//! must equal the configured issuer, `exp` when present must be in the future.
//!
//! Failures to *reach* or *understand* the endpoint are "unavailable" (503), never "invalid"
//! (401): a client must not be sent to re-authenticate because our AS is down.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};
use url::Url;

use crate::caller::{AccessToken, Caller, Principal, TokenKind};
use crate::verify::discovery::{DiscoveryError, discover};
use crate::verify::fetch::{FetchConfig, FetchError, Fetcher, FormAuth};
use crate::verify::jwt::{
    AudiencePolicy, DEFAULT_LEEWAY, DEFAULT_MAX_TOKEN_BYTES, MAX_LEEWAY, audiences, collect_scopes,
    now_secs, system_time_from_secs,
};
use crate::verify::{BoxFuture, InvalidReason, TokenVerifier, UnavailableReason, VerifyError};

/// The resource server's client secret at the introspection endpoint. `Debug` is redacted.
#[derive(Clone)]
pub struct ClientSecret(Arc<str>);

impl ClientSecret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(Arc::from(secret.into()))
    }

    /// The secret text, for the request only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(<redacted>)")
    }
}

/// How the resource server authenticates to the introspection endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ClientAuthMethod {
    /// HTTP Basic with the form-urlencoded id and secret (`client_secret_basic`). Default.
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body (`client_secret_post`).
    ClientSecretPost,
}

/// Configuration of an introspection verifier.
#[derive(Debug, Clone)]
pub struct IntrospectionConfig {
    /// The issuer whose tokens this endpoint decides. Used for discovery, compared with the
    /// response `iss` when present, and reported as [`Principal::issuer`].
    pub issuer: String,
    /// The introspection endpoint. `None`: taken from the issuer's metadata.
    pub endpoint: Option<Url>,
    /// This resource server's client id at the AS.
    pub client_id: String,
    /// This resource server's client secret.
    pub client_secret: ClientSecret,
    /// Client authentication method. Default: `client_secret_basic`.
    pub auth_method: ClientAuthMethod,
    /// Accepted audiences: a response `aud` (string or array), when present, must contain one.
    /// Must not be empty.
    pub audiences: Vec<String>,
    /// Whether a response `aud` may name other audiences too. Default
    /// [`AudiencePolicy::Includes`].
    pub audience_policy: AudiencePolicy,
    /// Accept `active` responses that carry no `aud`. Default: `false` — such a response is
    /// refused. RFC 7662 makes `aud` optional and leaves it to the AS to check that the token may
    /// be used here, but real servers answer `active: true` for tokens minted for no resource at
    /// all (oidc-provider, for a token requested without RFC 8707 `resource`), and MCP requires
    /// proof that the token was issued for this server (spec-requirements A22, D1). Turn on only
    /// for an AS that audience-restricts introspection itself (ZITADEL does); logs a warning.
    pub dangerous_accept_missing_audience: bool,
    /// Clock-skew allowance for `exp`/`nbf`. Default 60 s, at most 300 s.
    pub leeway: Duration,
    /// How long an active response without `exp` counts as valid (bounds the cache entry).
    /// Default: 60 s.
    pub missing_exp_ttl: Duration,
    /// Claims read as scopes besides `scope`. Default: none.
    pub extra_scope_claims: Vec<String>,
    /// Claim holding the tenant. Default: none.
    pub tenant_claim: Option<String>,
    /// Limits of the introspection request (timeout, size).
    pub fetch: FetchConfig,
    /// Longer tokens are refused without a request. Default [`DEFAULT_MAX_TOKEN_BYTES`]; the
    /// builder sets it from its one `max_token_bytes` ([`crate::GatehouseBuilder::max_token_bytes`]).
    pub max_token_bytes: usize,
}

impl IntrospectionConfig {
    /// A configuration with defaults.
    pub fn new(
        issuer: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: ClientSecret,
        audience: impl Into<String>,
    ) -> Self {
        Self {
            issuer: issuer.into(),
            endpoint: None,
            client_id: client_id.into(),
            client_secret,
            auth_method: ClientAuthMethod::default(),
            audiences: vec![audience.into()],
            audience_policy: AudiencePolicy::default(),
            dangerous_accept_missing_audience: false,
            leeway: DEFAULT_LEEWAY,
            missing_exp_ttl: Duration::from_secs(60),
            extra_scope_claims: Vec::new(),
            tenant_claim: None,
            fetch: FetchConfig::default(),
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
        }
    }
}

/// Why an introspection verifier could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntrospectionSetupError {
    /// No endpoint configured or discovered.
    #[error("issuer {0:?}: no introspection endpoint")]
    NoEndpoint(String),
    /// `audiences` is empty.
    #[error("issuer {0:?}: at least one accepted audience is required")]
    NoAudience(String),
    /// Leeway above 300 s.
    #[error("issuer {0:?}: leeway above 300 s")]
    LeewayTooLarge(String),
    /// The endpoint URL is refused or the client cannot be built.
    #[error("introspection endpoint: {0}")]
    Fetch(FetchError),
    /// Discovery failed.
    #[error("issuer discovery: {0}")]
    Discovery(#[from] DiscoveryError),
}

/// Verifies tokens by asking the authorization server (RFC 7662).
pub struct IntrospectionVerifier {
    issuer: Arc<str>,
    endpoint: Url,
    client_id: String,
    client_secret: ClientSecret,
    auth_method: ClientAuthMethod,
    audiences: Vec<String>,
    audience_policy: AudiencePolicy,
    require_audience: bool,
    leeway: f64,
    missing_exp_ttl: Duration,
    scope_claims: Vec<String>,
    tenant_claim: Option<String>,
    fetcher: Fetcher,
    requests: AtomicU64,
    max_token_bytes: usize,
}

impl fmt::Debug for IntrospectionVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntrospectionVerifier")
            .field("issuer", &self.issuer)
            .field("endpoint", &self.endpoint.as_str())
            .field("client_id", &self.client_id)
            .finish()
    }
}

impl IntrospectionVerifier {
    /// Builds a verifier from a configuration with an `endpoint`.
    pub fn new(config: IntrospectionConfig) -> Result<Self, IntrospectionSetupError> {
        let iss = || config.issuer.clone();
        if config.audiences.is_empty() {
            return Err(IntrospectionSetupError::NoAudience(iss()));
        }
        if config.leeway > MAX_LEEWAY {
            return Err(IntrospectionSetupError::LeewayTooLarge(iss()));
        }
        let endpoint = config
            .endpoint
            .clone()
            .ok_or_else(|| IntrospectionSetupError::NoEndpoint(iss()))?;
        let fetcher = Fetcher::new(config.fetch.clone()).map_err(IntrospectionSetupError::Fetch)?;
        if config.dangerous_accept_missing_audience {
            tracing::warn!(
                issuer = %config.issuer,
                "dangerous_accept_missing_audience: introspection responses without `aud` are \
                 accepted; tokens minted for no resource (or another one) may pass"
            );
        }
        fetcher
            .check_url(&endpoint)
            .map_err(IntrospectionSetupError::Fetch)?;
        let mut scope_claims = vec!["scope".to_owned()];
        scope_claims.extend(config.extra_scope_claims);
        Ok(Self {
            issuer: config.issuer.into(),
            endpoint,
            client_id: config.client_id,
            client_secret: config.client_secret,
            auth_method: config.auth_method,
            audiences: config.audiences,
            audience_policy: config.audience_policy,
            require_audience: !config.dangerous_accept_missing_audience,
            leeway: config.leeway.as_secs_f64(),
            missing_exp_ttl: config.missing_exp_ttl,
            scope_claims,
            tenant_claim: config.tenant_claim,
            fetcher,
            requests: AtomicU64::new(0),
            max_token_bytes: config.max_token_bytes,
        })
    }

    /// Builds a verifier, discovering the endpoint from the issuer's metadata when not configured.
    pub async fn discover(
        mut config: IntrospectionConfig,
    ) -> Result<Self, IntrospectionSetupError> {
        if config.endpoint.is_none() {
            let fetcher =
                Fetcher::new(config.fetch.clone()).map_err(IntrospectionSetupError::Fetch)?;
            let meta = discover(&fetcher, &config.issuer).await?;
            config.endpoint = Some(
                meta.introspection_endpoint
                    .ok_or_else(|| IntrospectionSetupError::NoEndpoint(config.issuer.clone()))?,
            );
        }
        Self::new(config)
    }

    /// The issuer this verifier speaks for.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The endpoint in use.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// Number of introspection requests sent (for tests and metrics).
    pub fn request_count(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    async fn introspect(&self, token: &AccessToken) -> Result<Caller, VerifyError> {
        if token.len() > self.max_token_bytes {
            return Err(InvalidReason::TooLarge.into());
        }
        if token.is_empty() {
            return Err(InvalidReason::Malformed.into());
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut form = vec![
            ("token", token.expose()),
            ("token_type_hint", "access_token"),
        ];
        let auth = match self.auth_method {
            ClientAuthMethod::ClientSecretBasic => FormAuth::Basic {
                id: &self.client_id,
                secret: self.client_secret.expose(),
            },
            ClientAuthMethod::ClientSecretPost => {
                form.push(("client_id", &self.client_id));
                form.push(("client_secret", self.client_secret.expose()));
                FormAuth::None
            }
        };
        let resp = self
            .fetcher
            .post_form_json::<Value>(&self.endpoint, &form, auth)
            .await
            .map_err(|e| {
                tracing::warn!(issuer = %self.issuer, error = %e, "introspection failed");
                match e {
                    FetchError::Timeout | FetchError::Transport(_) | FetchError::InsecureUrl(_) => {
                        UnavailableReason::IntrospectionUnreachable
                    }
                    FetchError::Status(_) | FetchError::TooLarge(_) | FetchError::BadJson(_) => {
                        UnavailableReason::IntrospectionBadResponse
                    }
                }
            })?;
        self.decide_value(resp.value)
    }

    /// Decides from the raw body of a `200` introspection response, as [`TokenVerifier::verify`]
    /// does after the request: JSON that does not parse is a bad response (`503`), like one that
    /// is not an object. Not an API for applications: it lets the fuzz targets
    /// (`crates/gatehouse-fuzz-targets`) feed responses without a server.
    #[doc(hidden)]
    pub fn decide_response(&self, body: &[u8]) -> Result<Caller, VerifyError> {
        // The same parse as `Fetcher::post_form_json`.
        let value: Value = serde_json::from_slice(body)
            .map_err(|_| UnavailableReason::IntrospectionBadResponse)?;
        self.decide_value(value)
    }

    fn decide_value(&self, value: Value) -> Result<Caller, VerifyError> {
        let Value::Object(body) = value else {
            return Err(UnavailableReason::IntrospectionBadResponse.into());
        };
        self.decide(body)
    }

    /// Applies RFC 7662 §2.2 and the resource server's own checks to a response body.
    fn decide(&self, body: Map<String, Value>) -> Result<Caller, VerifyError> {
        match body.get("active") {
            Some(Value::Bool(true)) => {}
            Some(Value::Bool(false)) => return Err(InvalidReason::Inactive.into()),
            _ => {
                tracing::warn!(issuer = %self.issuer, "introspection response without boolean active");
                return Err(UnavailableReason::IntrospectionBadResponse.into());
            }
        }
        match body.get("iss") {
            None => {}
            Some(Value::String(iss)) if **iss == *self.issuer => {}
            Some(_) => return Err(InvalidReason::IssuerMismatch.into()),
        }
        let now = now_secs();
        let exp = match body.get("exp") {
            None => None,
            Some(v) => Some(lenient_number(v).ok_or(InvalidReason::MissingClaim)?),
        };
        if let Some(exp) = exp
            && now >= exp + self.leeway
        {
            return Err(InvalidReason::Expired.into());
        }
        if let Some(v) = body.get("nbf") {
            let nbf = lenient_number(v).ok_or(InvalidReason::MissingClaim)?;
            if nbf > now + self.leeway {
                return Err(InvalidReason::NotYetValid.into());
            }
        }
        let auds = match body.get("aud") {
            None if self.require_audience => return Err(InvalidReason::MissingClaim.into()),
            None => Vec::new(),
            Some(v) => {
                let auds = audiences(v).ok_or(InvalidReason::MissingClaim)?;
                if !self
                    .audience_policy
                    .admits(&auds, |a| self.audiences.iter().any(|x| x == a))
                {
                    return Err(InvalidReason::AudienceMismatch.into());
                }
                auds
            }
        };
        let str_claim = |n: &str| body.get(n).and_then(Value::as_str).map(str::to_owned);
        let expires_at = match exp {
            Some(exp) => system_time_from_secs(exp),
            None => SystemTime::now() + self.missing_exp_ttl,
        };
        Ok(Caller::new(Principal {
            issuer: self.issuer.clone(),
            subject: str_claim("sub"),
            client_id: str_claim("client_id"),
            scopes: collect_scopes(&body, self.scope_claims.iter().map(String::as_str)),
            audiences: auds,
            tenant: self.tenant_claim.as_deref().and_then(str_claim),
            expires_at,
            kind: TokenKind::Introspected,
            claims: body,
        }))
    }
}

/// A NumericDate that may arrive as a JSON string (Google `tokeninfo` sends `"exp": "1700000000"`).
fn lenient_number(v: &Value) -> Option<f64> {
    match v {
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(|n| crate::verify::jwt::numeric_date(&n.into())),
        other => crate::verify::jwt::numeric_date(other),
    }
}

impl TokenVerifier for IntrospectionVerifier {
    fn verify<'a>(&'a self, token: &'a AccessToken) -> BoxFuture<'a, Result<Caller, VerifyError>> {
        Box::pin(self.introspect(token))
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use gatehouse_testkit::{TestAuthServer, now};
    use serde_json::json;

    use super::*;

    const AUD: &str = "https://mcp.example/mcp";

    /// An authorization server (no signing keys) whose introspection endpoint accepts the
    /// client `rs-client` / `s3cret:x`.
    async fn server() -> TestAuthServer {
        TestAuthServer::builder()
            .keys(Vec::new())
            .introspection_client("rs-client", "s3cret:x")
            .start()
            .await
    }

    fn config(ts: &TestAuthServer) -> IntrospectionConfig {
        let mut c =
            IntrospectionConfig::new(ts.issuer(), "rs-client", ClientSecret::new("s3cret:x"), AUD);
        c.endpoint = Some(ts.introspection_endpoint().parse().unwrap());
        c.fetch.timeout = Duration::from_millis(500);
        c
    }

    #[test]
    fn response_bodies_are_decided_without_a_request() {
        // The fuzz target's entry point: the same outcomes as the request path, body by body.
        let mut c = IntrospectionConfig::new(
            "https://as.example",
            "rs-client",
            ClientSecret::new("s"),
            AUD,
        );
        c.endpoint = Some("https://as.example/introspect".parse().unwrap());
        let v = IntrospectionVerifier::new(c).unwrap();
        let outcome = |body: &[u8]| v.decide_response(body).map(|c| c.subject.clone());
        for body in [&b"<html>"[..], b"[true]", b"null", br#"{"active":"true"}"#] {
            assert_eq!(
                outcome(body),
                Err(UnavailableReason::IntrospectionBadResponse.into()),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert_eq!(
            outcome(br#"{"active":false}"#),
            Err(InvalidReason::Inactive.into())
        );
        assert_eq!(
            outcome(br#"{"active":true,"aud":"https://mcp.example/mcp","sub":"u"}"#),
            Ok(Some("u".into()))
        );
    }

    async fn run(v: &IntrospectionVerifier, token: &str) -> Result<Caller, VerifyError> {
        v.verify(&AccessToken::new(token)).await
    }

    #[tokio::test]
    async fn active_token_builds_caller_and_request_is_rfc7662() {
        let ts = server().await;
        ts.set_introspection(
            "opaque-abc",
            json!({
                "active": true, "iss": ts.issuer(), "aud": [AUD, "other"], "sub": "u1",
                "client_id": "c1", "scope": "a b", "exp": now() + 300, "org": "t1",
            }),
        );
        let mut c = config(&ts);
        c.tenant_claim = Some("org".into());
        let v = IntrospectionVerifier::new(c).unwrap();
        let caller = run(&v, "opaque-abc").await.unwrap();
        assert_eq!(caller.kind, TokenKind::Introspected);
        assert_eq!(caller.subject.as_deref(), Some("u1"));
        assert_eq!(caller.client_id.as_deref(), Some("c1"));
        assert_eq!(caller.tenant.as_deref(), Some("t1"));
        assert_eq!(caller.scopes.to_space_separated(), "a b");
        assert_eq!(caller.issuer.as_ref(), ts.issuer());
        let request = ts.last_introspection_request().unwrap();
        assert_eq!(
            request.body,
            "token=opaque-abc&token_type_hint=access_token"
        );
        let auth = request.authorization.unwrap();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(raw, b"rs-client:s3cret%3Ax");
        assert_eq!(v.request_count(), 1);
        assert!(!format!("{v:?}").contains("s3cret"));
    }

    #[tokio::test]
    async fn client_secret_post() {
        let ts = server().await;
        ts.set_introspection("tok", json!({"active": true, "aud": AUD}));
        let mut c = config(&ts);
        c.auth_method = ClientAuthMethod::ClientSecretPost;
        let v = IntrospectionVerifier::new(c).unwrap();
        let caller = run(&v, "tok").await.unwrap();
        // No exp: bounded by missing_exp_ttl.
        assert!(caller.remaining(SystemTime::now()) <= Duration::from_secs(60));
        let request = ts.last_introspection_request().unwrap();
        assert!(request.authorization.is_none());
        assert_eq!(
            request.body,
            "token=tok&token_type_hint=access_token&client_id=rs-client&client_secret=s3cret%3Ax"
        );
    }

    #[tokio::test]
    async fn an_exact_audience_policy_refuses_responses_naming_other_audiences() {
        let ts = server().await;
        let mut exact = config(&ts);
        exact.audience_policy = AudiencePolicy::Exact;
        let exact = IntrospectionVerifier::new(exact).unwrap();
        let includes = IntrospectionVerifier::new(config(&ts)).unwrap();
        ts.set_introspection(
            "both",
            json!({"active": true, "aud": [AUD, "https://other"]}),
        );
        ts.set_introspection("ours", json!({"active": true, "aud": [AUD]}));
        assert!(run(&includes, "both").await.is_ok());
        assert_eq!(
            run(&exact, "both").await.unwrap_err(),
            VerifyError::Invalid(InvalidReason::AudienceMismatch)
        );
        assert!(run(&exact, "ours").await.is_ok());
    }

    #[tokio::test]
    async fn refusals() {
        // E15 / A21 / A22.
        let ts = server().await;
        let v = IntrospectionVerifier::new(config(&ts)).unwrap();
        let cases = [
            (json!({"active": false}), InvalidReason::Inactive),
            (
                json!({"active": false, "aud": AUD}),
                InvalidReason::Inactive,
            ),
            (
                json!({"active": true, "aud": "https://other.example"}),
                InvalidReason::AudienceMismatch,
            ),
            (
                json!({"active": true, "aud": ["x", "y"]}),
                InvalidReason::AudienceMismatch,
            ),
            (
                json!({"active": true, "aud": 5}),
                InvalidReason::MissingClaim,
            ),
            (
                json!({"active": true, "iss": "https://evil.example"}),
                InvalidReason::IssuerMismatch,
            ),
            (
                json!({"active": true, "iss": format!("{}/", ts.issuer())}),
                InvalidReason::IssuerMismatch,
            ),
            (
                json!({"active": true, "exp": now() - 600}),
                InvalidReason::Expired,
            ),
            (
                json!({"active": true, "exp": (now() - 600).to_string()}),
                InvalidReason::Expired,
            ),
            (
                json!({"active": true, "exp": "soon"}),
                InvalidReason::MissingClaim,
            ),
            (
                json!({"active": true, "nbf": now() + 600}),
                InvalidReason::NotYetValid,
            ),
        ];
        for (body, want) in cases {
            ts.set_introspection("t", body.clone());
            assert_eq!(
                run(&v, "t").await.unwrap_err(),
                VerifyError::Invalid(want),
                "{body}"
            );
        }
        // A22: by default an active response without `aud` is refused (oidc-provider answers
        // so for a token requested without `resource`) …
        ts.set_introspection("t", json!({"active": true}));
        assert_eq!(
            run(&v, "t").await.unwrap_err(),
            InvalidReason::MissingClaim.into()
        );
        // … and accepted only through the explicitly dangerous switch.
        let mut c = config(&ts);
        c.dangerous_accept_missing_audience = true;
        let lenient = IntrospectionVerifier::new(c).unwrap();
        assert!(run(&lenient, "t").await.is_ok());
    }

    #[tokio::test]
    async fn google_style_string_numbers_accepted() {
        let ts = server().await;
        let exp = now() + 300;
        ts.set_introspection(
            "ya29.opaque",
            json!({"active": true, "exp": exp.to_string(), "aud": AUD, "scope": "openid x"}),
        );
        let v = IntrospectionVerifier::new(config(&ts)).unwrap();
        let caller = run(&v, "ya29.opaque").await.unwrap();
        assert_eq!(caller.expires_at_unix(), exp as u64);
    }

    #[tokio::test]
    async fn endpoint_failures_are_unavailable() {
        let ts = server().await;
        let v = IntrospectionVerifier::new(config(&ts)).unwrap();
        let bad_raw = [
            (500, "oops"),
            (401, "{\"error\":\"invalid_client\"}"),
            (200, "not json"),
        ];
        for raw in bad_raw {
            ts.set_introspection_raw(Some(raw));
            assert_eq!(
                run(&v, "t").await.unwrap_err(),
                UnavailableReason::IntrospectionBadResponse.into()
            );
        }
        ts.set_introspection_raw(None);
        let bad_json = [
            json!(["active", true]),
            json!({"active": "true"}),
            json!({"sub": "x"}),
        ];
        for body in bad_json {
            ts.set_introspection("t", body);
            assert_eq!(
                run(&v, "t").await.unwrap_err(),
                UnavailableReason::IntrospectionBadResponse.into()
            );
        }
        // Slow → timeout → unavailable.
        ts.set_introspection_hang(true);
        assert_eq!(
            run(&v, "t").await.unwrap_err(),
            UnavailableReason::IntrospectionUnreachable.into()
        );
        // Down (nothing listening).
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut c = config(&ts);
        c.endpoint = Some(Url::parse(&format!("http://{closed}/introspect")).unwrap());
        let down = IntrospectionVerifier::new(c).unwrap();
        assert_eq!(
            run(&down, "t").await.unwrap_err(),
            UnavailableReason::IntrospectionUnreachable.into()
        );
    }

    #[tokio::test]
    async fn discovery_and_setup() {
        let ts = server().await;
        let mut c = config(&ts);
        c.endpoint = None;
        let v = IntrospectionVerifier::discover(c.clone()).await.unwrap();
        assert_eq!(v.endpoint().as_str(), ts.introspection_endpoint());
        assert!(matches!(
            IntrospectionVerifier::new(c.clone()),
            Err(IntrospectionSetupError::NoEndpoint(_))
        ));
        let mut bad = config(&ts);
        bad.audiences.clear();
        assert!(matches!(
            IntrospectionVerifier::new(bad),
            Err(IntrospectionSetupError::NoAudience(_))
        ));
        let mut bad = config(&ts);
        bad.endpoint = Some(Url::parse("http://as.example/introspect").unwrap());
        assert!(matches!(
            IntrospectionVerifier::new(bad),
            Err(IntrospectionSetupError::Fetch(_))
        ));
        ts.set_metadata_issuer("https://evil.example");
        assert!(matches!(
            IntrospectionVerifier::discover(c).await,
            Err(IntrospectionSetupError::Discovery(
                DiscoveryError::IssuerMismatch { .. }
            ))
        ));
    }
}
