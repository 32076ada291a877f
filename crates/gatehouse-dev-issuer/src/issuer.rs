//! The issuer itself: validated configuration, token minting (RFC 9068 JWT access tokens),
//! token exchange (RFC 8693) and verification of its own tokens for introspection and exchange.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};
use url::Url;

use crate::clients::DEFAULT_METADATA_DOCUMENT_TIMEOUT;
use crate::config::{DevClient, DevIssuerConfig, DevResourceServer};
use crate::interactive::Interactive;
use crate::loopback::{DevIssuerError, ensure_loopback};
use crate::rules::{check_resource, is_scope_token, secret_matches};
use gatehouse::jws::SigningKey;

/// Claims the issuer sets itself; the tenant claim must not shadow one of them.
const RESERVED_CLAIMS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "client_id",
    "scope",
    "iat",
    "exp",
    "nbf",
    "jti",
    "typ",
    "act",
];

/// The RFC 8693 §2.1 grant type of token exchange.
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// The RFC 8693 §3 token type identifier of an OAuth access token: the only subject token type
/// accepted and the only token type issued by exchange here.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// Why a token could not be issued. Each maps to one RFC 6749 §5.2 / RFC 8707 §2 /
/// RFC 8693 §2.2.2 error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The client id is not configured (only [`DevIssuer::mint`] can see this; `/token` fails
    /// client authentication first).
    #[error("unknown client")]
    UnknownClient,
    /// A requested scope is malformed or not allowed for the client (`invalid_scope`).
    #[error("requested scope is invalid or not allowed for this client")]
    InvalidScope,
    /// The `resource` is missing, not an absolute URI, or has a fragment, or (token exchange)
    /// the client may not obtain a token for it (`invalid_target`).
    #[error("invalid resource: {0}")]
    InvalidTarget(&'static str),
    /// The client has no token exchange policy (`unauthorized_client`).
    #[error("client is not allowed to exchange tokens")]
    UnauthorizedClient,
    /// The subject token is not a valid, unexpired access token of this issuer, or was not
    /// addressed to the resource the exchanging client serves (`invalid_request`,
    /// RFC 8693 §2.2.2).
    #[error("unacceptable subject token: {0}")]
    InvalidSubjectToken(&'static str),
}

impl TokenError {
    /// The OAuth error code for this failure.
    pub fn error_code(&self) -> &'static str {
        match self {
            Self::UnknownClient => "invalid_client",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget(_) => "invalid_target",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::InvalidSubjectToken(_) => "invalid_request",
        }
    }
}

/// A freshly issued access token and the facts a token response reports (RFC 6749 §5.1).
#[derive(Clone)]
pub struct IssuedToken {
    /// The compact JWS.
    pub access_token: String,
    /// Lifetime in seconds.
    pub expires_in: u64,
    /// The granted scopes, space-separated (may be empty).
    pub scope: String,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("access_token", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish()
    }
}

/// The development authorization server. Cheap to clone (shared state).
#[derive(Clone)]
pub struct DevIssuer {
    pub(crate) inner: Arc<Inner>,
}

/// A source of the current time. Tests move it forward instead of sleeping (code and token
/// expiry); everything else uses [`Clock::system`].
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> SystemTime + Send + Sync>);

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self(Arc::new(SystemTime::now))
    }

    /// A clock that asks `now`.
    pub fn from_fn(now: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        Self(Arc::new(now))
    }

    fn unix(&self) -> u64 {
        (self.0)()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Clock")
    }
}

/// Builds a [`DevIssuer`] with the settings a configuration file has no business changing:
/// an explicit key, a clock, the metadata document fetch limit.
#[derive(Debug)]
pub struct DevIssuerBuilder {
    config: DevIssuerConfig,
    key: Option<SigningKey>,
    clock: Clock,
    metadata_document_timeout: Duration,
}

impl DevIssuerBuilder {
    /// Signs with `key` (its algorithm wins over `config.signing_alg`).
    pub fn key(mut self, key: SigningKey) -> Self {
        self.key = Some(key);
        self
    }

    /// Uses `clock` for every expiry decision of the issuer.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Bounds fetching one client ID metadata document (default: 3 s).
    pub fn metadata_document_timeout(mut self, timeout: Duration) -> Self {
        self.metadata_document_timeout = timeout;
        self
    }

    /// Validates the configuration and creates the issuer (generating or loading the key when
    /// none was given).
    pub fn build(self) -> Result<DevIssuer, DevIssuerError> {
        let key = match self.key {
            Some(k) => k,
            None => match &self.config.signing_key_pem {
                Some(path) => SigningKey::from_pem_file(self.config.signing_alg, path)?,
                None => SigningKey::generate(self.config.signing_alg)?,
            },
        };
        DevIssuer::build(self.config, key, self.clock, self.metadata_document_timeout)
    }
}

pub(crate) struct Inner {
    issuer: String,
    clients: HashMap<String, DevClient>,
    resource_servers: HashMap<String, DevResourceServer>,
    ttl: Duration,
    tenant_claim: String,
    key: SigningKey,
    scopes_supported: Vec<String>,
    /// Whether any client has a token exchange policy (then, and only then, the grant is
    /// supported and advertised).
    exchange_enabled: bool,
    /// Proofs at the token endpoint (RFC 9449 §5): a client that sends one gets a token bound
    /// to its key.
    dpop: gatehouse::verify::dpop::DpopVerifier,
    clock: Clock,
    /// The authorization code flow and its companions; `Some` exactly when users exist.
    pub(crate) interactive: Option<Interactive>,
}

impl fmt::Debug for DevIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevIssuer")
            .field("issuer", &self.inner.issuer)
            .field("clients", &self.inner.clients.keys().collect::<Vec<_>>())
            .field("kid", &self.inner.key.kid())
            .field(
                "users",
                &self.users().iter().map(|u| &u.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl DevIssuer {
    /// Validates `config` and creates the issuer. `config.issuer` must be set; use
    /// [`DevIssuer::for_listener`] to derive it from a bound socket. Generates or loads the key.
    pub fn new(config: DevIssuerConfig) -> Result<Self, DevIssuerError> {
        Self::builder(config).build()
    }

    /// Like [`DevIssuer::new`], with an explicit signing key (its algorithm wins over
    /// `config.signing_alg`).
    pub fn with_key(config: DevIssuerConfig, key: SigningKey) -> Result<Self, DevIssuerError> {
        Self::builder(config).key(key).build()
    }

    /// A builder for settings beyond the configuration (key, clock, fetch timeout).
    pub fn builder(config: DevIssuerConfig) -> DevIssuerBuilder {
        DevIssuerBuilder {
            config,
            key: None,
            clock: Clock::system(),
            metadata_document_timeout: DEFAULT_METADATA_DOCUMENT_TIMEOUT,
        }
    }

    fn build(
        config: DevIssuerConfig,
        key: SigningKey,
        clock: Clock,
        metadata_document_timeout: Duration,
    ) -> Result<Self, DevIssuerError> {
        let bad = |key: &str, why: String| DevIssuerError::Config {
            key: key.to_owned(),
            why,
        };
        let issuer = normalize_issuer(config.issuer.as_deref().ok_or_else(|| {
            bad(
                "issuer",
                "not set (use DevIssuer::for_listener to derive it)".into(),
            )
        })?)
        .map_err(|why| bad("issuer", why))?;
        if config.token_ttl.as_secs() == 0 {
            return Err(bad("token_ttl", "must be at least one second".into()));
        }
        if config.tenant_claim.is_empty() || RESERVED_CLAIMS.contains(&&*config.tenant_claim) {
            return Err(bad(
                "tenant_claim",
                "must be a non-empty, non-registered claim name".into(),
            ));
        }
        let mut clients = HashMap::new();
        let mut scopes = BTreeSet::new();
        let mut served = BTreeSet::new();
        for c in config.clients {
            if c.id.is_empty() || c.secret.expose().is_empty() {
                return Err(bad("clients", "a client has an empty id or secret".into()));
            }
            if let Some(s) = c.allowed_scopes.iter().find(|s| !is_scope_token(s)) {
                return Err(bad(
                    "clients.allowed_scopes",
                    format!("invalid scope {s:?}"),
                ));
            }
            if let Some(r) = &c.serves {
                check_resource(r).map_err(|why| bad("clients.serves", why.into()))?;
                // One resource, one client: "addressed to the exchanging client" must not be
                // ambiguous.
                if !served.insert(r.clone()) {
                    return Err(bad(
                        "clients.serves",
                        format!("resource {r:?} is served by two clients"),
                    ));
                }
            }
            for t in &c.may_exchange_for {
                check_resource(t).map_err(|why| bad("clients.may_exchange_for", why.into()))?;
            }
            if c.may_exchange() && c.serves.is_none() {
                return Err(bad(
                    "clients.may_exchange_for",
                    "requires `serves`: the resource whose tokens the client exchanges".into(),
                ));
            }
            scopes.extend(c.allowed_scopes.iter().cloned());
            let id = c.id.clone();
            if clients.insert(id.clone(), c).is_some() {
                return Err(bad("clients", format!("duplicate client id {id:?}")));
            }
        }
        let mut resource_servers = HashMap::new();
        for rs in config.resource_servers {
            if rs.id.is_empty() || rs.secret.expose().is_empty() {
                return Err(bad("resource_servers", "empty id or secret".into()));
            }
            if let Some(r) = &rs.resource {
                check_resource(r).map_err(|why| bad("resource_servers.resource", why.into()))?;
            }
            let id = rs.id.clone();
            if resource_servers.insert(id.clone(), rs).is_some() {
                return Err(bad("resource_servers", format!("duplicate id {id:?}")));
            }
        }
        let mut names = BTreeSet::new();
        for u in &config.users {
            if u.name.is_empty() || u.subject.as_deref() == Some("") {
                return Err(bad("users", "a user has an empty name or subject".into()));
            }
            if let Some(s) = u.allowed_scopes.iter().find(|s| !is_scope_token(s)) {
                return Err(bad("users.allowed_scopes", format!("invalid scope {s:?}")));
            }
            if !names.insert(u.name.clone()) {
                return Err(bad("users", format!("duplicate user name {:?}", u.name)));
            }
            scopes.extend(u.allowed_scopes.iter().cloned());
        }
        let interactive = (!config.users.is_empty()).then(|| {
            // OpenID Connect: `openid` is always grantable once users can sign in.
            scopes.insert("openid".to_owned());
            Interactive::new(config.users, metadata_document_timeout)
        });
        let exchange_enabled = clients.values().any(DevClient::may_exchange);
        Ok(Self {
            inner: Arc::new(Inner {
                issuer,
                exchange_enabled,
                clients,
                resource_servers,
                ttl: config.token_ttl,
                tenant_claim: config.tenant_claim,
                key,
                scopes_supported: scopes.into_iter().collect(),
                dpop: gatehouse::verify::dpop::DpopVerifier::new(Default::default()),
                clock,
                interactive,
            }),
        })
    }

    /// Creates the issuer for a bound listener: refuses a non-loopback address and, when
    /// `config.issuer` is unset, uses `http://<local address>` as the issuer.
    pub fn for_listener(
        listener: &tokio::net::TcpListener,
        mut config: DevIssuerConfig,
    ) -> Result<Self, DevIssuerError> {
        let addr = ensure_loopback(listener)?;
        config.issuer.get_or_insert_with(|| default_issuer(addr));
        Self::new(config)
    }

    /// The issuer identifier (no trailing slash).
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The signing key's `kid`.
    pub fn kid(&self) -> &str {
        self.inner.key.kid()
    }

    /// The token endpoint URL.
    pub fn token_endpoint(&self) -> String {
        format!("{}/token", self.inner.issuer)
    }

    /// The JWKS URL.
    pub fn jwks_uri(&self) -> String {
        format!("{}/jwks", self.inner.issuer)
    }

    /// The introspection endpoint URL, when resource servers are configured.
    pub fn introspection_endpoint(&self) -> Option<String> {
        (!self.inner.resource_servers.is_empty())
            .then(|| format!("{}/introspect", self.inner.issuer))
    }

    /// Whether the token exchange grant (RFC 8693) is supported: true when at least one client
    /// has an exchange policy.
    pub fn supports_token_exchange(&self) -> bool {
        self.inner.exchange_enabled
    }

    /// The JWK Set (RFC 7517 §5) with the one public signing key.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.inner.key.public_jwk()] })
    }

    /// The authorization server metadata (RFC 8414 §2), also served as OpenID discovery.
    ///
    /// Without users there is no `authorization_endpoint`, no `response_types_supported` and
    /// no `code_challenge_methods_supported`: the server then supports only
    /// `client_credentials` (plus token exchange, advertised only when some client may use it),
    /// and advertising an empty or false list would be worse than omitting the member. With
    /// users it adds the authorization code flow (PKCE S256 only), refresh tokens, dynamic
    /// registration, client ID metadata documents, RFC 9207 `iss` and the OpenID members its
    /// ID tokens make true.
    pub fn metadata(&self) -> Value {
        let mut grants = vec!["client_credentials"];
        if self.supports_token_exchange() {
            grants.push(TOKEN_EXCHANGE_GRANT);
        }
        let interactive = self.inner.interactive.is_some();
        if interactive {
            grants.extend(["authorization_code", "refresh_token"]);
        }
        let mut auth_methods = vec!["client_secret_basic", "client_secret_post"];
        if interactive {
            auth_methods.push("none");
        }
        let mut m = json!({
            "issuer": self.inner.issuer,
            "token_endpoint": self.token_endpoint(),
            "jwks_uri": self.jwks_uri(),
            "grant_types_supported": grants,
            "token_endpoint_auth_methods_supported": auth_methods,
            "scopes_supported": self.inner.scopes_supported,
            // RFC 9449 §5.1.
            "dpop_signing_alg_values_supported": self
                .inner
                .dpop
                .algorithms()
                .iter()
                .map(|a| format!("{a:?}"))
                .collect::<Vec<_>>(),
        });
        if let Some(ep) = self.introspection_endpoint() {
            let obj = m.as_object_mut().expect("object");
            obj.insert("introspection_endpoint".into(), json!(ep));
            obj.insert(
                "introspection_endpoint_auth_methods_supported".into(),
                json!(["client_secret_basic", "client_secret_post"]),
            );
        }
        if interactive {
            let obj = m.as_object_mut().expect("object");
            for (k, v) in [
                (
                    "authorization_endpoint",
                    json!(self.authorization_endpoint()),
                ),
                ("registration_endpoint", json!(self.registration_endpoint())),
                ("response_types_supported", json!(["code"])),
                ("response_modes_supported", json!(["query"])),
                // OAuth 2.1 §4.1.1: plain is not offered.
                ("code_challenge_methods_supported", json!(["S256"])),
                (
                    "authorization_response_iss_parameter_supported",
                    json!(true),
                ),
                ("client_id_metadata_document_supported", json!(true)),
                ("subject_types_supported", json!(["public"])),
                (
                    "id_token_signing_alg_values_supported",
                    json!([self.inner.key.alg().as_str()]),
                ),
            ] {
                obj.insert(k.into(), v);
            }
        }
        m
    }

    /// The authorization endpoint URL.
    pub fn authorization_endpoint(&self) -> String {
        format!("{}/authorize", self.inner.issuer)
    }

    /// The RFC 7591 registration endpoint URL.
    pub fn registration_endpoint(&self) -> String {
        format!("{}/register", self.inner.issuer)
    }

    /// Whether the interactive flows (authorization code, refresh, registration) run: exactly
    /// when users are configured.
    pub fn supports_user_login(&self) -> bool {
        self.inner.interactive.is_some()
    }

    /// The current time, in seconds since the epoch, by the issuer's clock.
    pub(crate) fn now(&self) -> u64 {
        self.inner.clock.unix()
    }

    /// An OpenID Connect ID token (Core §2): the client learns who signed in.
    pub(crate) fn id_token(
        &self,
        sub: &str,
        client_id: &str,
        nonce: Option<&str>,
        auth_time: u64,
    ) -> String {
        let now = self.now();
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(self.inner.issuer));
        claims.insert("sub".into(), json!(sub));
        claims.insert("aud".into(), json!(client_id));
        claims.insert("iat".into(), json!(now));
        claims.insert("exp".into(), json!(now + self.inner.ttl.as_secs()));
        claims.insert("auth_time".into(), json!(auth_time));
        if let Some(n) = nonce {
            claims.insert("nonce".into(), json!(n));
        }
        self.inner.key.sign_jwt("JWT", &Value::Object(claims))
    }

    /// Mints a token for a configured client without HTTP or client authentication (for demos
    /// and tests). `scopes` empty means all of the client's allowed scopes. The same code path
    /// as `POST /token` after authentication.
    pub fn mint(
        &self,
        client_id: &str,
        scopes: &[&str],
        resource: &str,
    ) -> Result<String, TokenError> {
        let client = self
            .inner
            .clients
            .get(client_id)
            .ok_or(TokenError::UnknownClient)?;
        if scopes.iter().any(|s| !is_scope_token(s)) {
            return Err(TokenError::InvalidScope);
        }
        let requested = (!scopes.is_empty()).then(|| scopes.join(" "));
        self.issue_for(client, requested.as_deref(), Some(resource), None)
            .map(|t| t.access_token)
    }

    /// Checks a DPoP proof sent to the token endpoint (RFC 9449 §4.3, no access token) and
    /// returns the thumbprint of its key, to bind the token to.
    pub(crate) fn dpop_key(
        &self,
        proof: &str,
    ) -> Result<String, gatehouse::verify::dpop::DpopError> {
        let endpoint = self.token_endpoint();
        let target = gatehouse::verify::dpop::ProofTarget {
            method: "POST",
            uri: &endpoint,
            access_token: None,
            bound_jkt: None,
        };
        self.inner.dpop.verify(proof, &target)
    }

    /// Issues a token to an already authenticated client. `scope` is the raw RFC 6749 §3.3
    /// parameter (space-delimited); `None` grants all allowed scopes.
    pub(crate) fn issue_for(
        &self,
        client: &DevClient,
        scope: Option<&str>,
        resource: Option<&str>,
        dpop_jkt: Option<&str>,
    ) -> Result<IssuedToken, TokenError> {
        // RFC 8707 §2: the resource is required here because the audience is what lets the
        // resource server reject tokens minted for someone else.
        let resource = resource.ok_or(TokenError::InvalidTarget("missing"))?;
        check_resource(resource).map_err(TokenError::InvalidTarget)?;

        let allowed = |s: &str| client.allowed_scopes.iter().any(|a| a == s);
        let granted = match scope {
            None => client.allowed_scopes.iter().map(String::as_str).collect(),
            Some(raw) => parse_scope(raw, allowed)?,
        };
        let scope = granted.join(" ");
        let sub = client.subject.as_deref().unwrap_or(&client.id);
        Ok(self.sign_token(
            sub,
            client.tenant.as_deref(),
            &client.id,
            &scope,
            resource,
            dpop_jkt,
        ))
    }

    /// Signs an access token with the configured lifetime (for clients and signed-in users).
    pub(crate) fn sign_token(
        &self,
        sub: &str,
        tenant: Option<&str>,
        client_id: &str,
        scope: &str,
        resource: &str,
        dpop_jkt: Option<&str>,
    ) -> IssuedToken {
        let now = self.now();
        let ttl = self.inner.ttl.as_secs();
        let mut claims = self.base_claims(sub, resource, client_id, scope, now, now + ttl);
        if let Some(t) = tenant {
            claims.insert(self.inner.tenant_claim.clone(), json!(t));
        }
        if let Some(jkt) = dpop_jkt {
            // RFC 9449 §6.1: bound to the key that signed the client's proof.
            claims.insert("cnf".into(), json!({ "jkt": jkt }));
        }
        let access_token = self.sign_access_token(claims);
        tracing::info!(%client_id, %sub, %scope, aud = %resource, "issued access token");
        IssuedToken {
            access_token,
            expires_in: ttl,
            scope: scope.to_owned(),
        }
    }

    /// Token exchange (RFC 8693) for the configured client `client_id`, which the caller has
    /// authenticated (tests and demos call this directly). `POST /token` with the token
    /// exchange grant is this function after client authentication and parameter checks.
    ///
    /// The rule: the client must have an exchange policy
    /// ([`DevClient::with_token_exchange`]); `subject_token` must be an unexpired access token
    /// signed by this issuer's key with this issuer's `iss`, whose `aud` is exactly the
    /// resource the client [serves](DevClient::serves) — a client can only exchange tokens
    /// that were addressed to it; `target` must be one of the client's
    /// [`may_exchange_for`](DevClient::may_exchange_for) audiences.
    ///
    /// `scope` is the raw RFC 6749 §3.3 parameter. Each requested scope must be in the subject
    /// token's `scope` and in the client's `allowed_scopes`, else `invalid_scope`; `None`
    /// grants every subject scope the client may request (and is `invalid_scope` when that is
    /// none: an exchange that delegates nothing is a misconfiguration).
    ///
    /// The issued token has `sub` and the tenant claim of the subject token, `aud` = `target`,
    /// `client_id` = the exchanging client and `act` = `{"sub": client_id}`, with the subject
    /// token's own `act` nested inside as the prior actor (RFC 8693 §4.1). It expires no later
    /// than the subject token and lives at most the configured TTL.
    pub fn exchange(
        &self,
        client_id: &str,
        subject_token: &str,
        target: &str,
        scope: Option<&str>,
    ) -> Result<IssuedToken, TokenError> {
        let client = self
            .inner
            .clients
            .get(client_id)
            .ok_or(TokenError::UnknownClient)?;
        let serves = match &client.serves {
            Some(serves) if client.may_exchange() => serves,
            _ => return Err(TokenError::UnauthorizedClient),
        };
        let subject = self
            .verify_own(subject_token)
            .ok_or(TokenError::InvalidSubjectToken("invalid"))?;
        if subject.get("aud").and_then(Value::as_str) != Some(serves.as_str()) {
            return Err(TokenError::InvalidSubjectToken(
                "not addressed to this client",
            ));
        }
        let (Some(sub), Some(subject_exp)) = (
            subject.get("sub").and_then(Value::as_str),
            subject.get("exp").and_then(Value::as_u64),
        ) else {
            return Err(TokenError::InvalidSubjectToken("invalid"));
        };
        check_resource(target).map_err(TokenError::InvalidTarget)?;
        if !client.may_exchange_for.iter().any(|t| t == target) {
            return Err(TokenError::InvalidTarget("not allowed for this client"));
        }

        // Never more than the subject token had, never more than the client may request.
        let subject_scopes: Vec<&str> = subject
            .get("scope")
            .and_then(Value::as_str)
            .unwrap_or("")
            .split(' ')
            .filter(|s| !s.is_empty())
            .collect();
        let allowed =
            |s: &str| subject_scopes.contains(&s) && client.allowed_scopes.iter().any(|a| a == s);
        let granted: Vec<&str> = match scope {
            None => subject_scopes
                .iter()
                .copied()
                .filter(|s| allowed(s))
                .collect(),
            Some(raw) => parse_scope(raw, allowed)?,
        };
        if granted.is_empty() {
            return Err(TokenError::InvalidScope);
        }
        let scope = granted.join(" ");

        let now = self.now();
        if subject_exp <= now {
            // Expired between verification and now (a second boundary).
            return Err(TokenError::InvalidSubjectToken("invalid"));
        }
        let exp = subject_exp.min(now + self.inner.ttl.as_secs());
        let mut claims = self.base_claims(sub, target, &client.id, &scope, now, exp);
        if let Some(t) = subject.get(&self.inner.tenant_claim) {
            claims.insert(self.inner.tenant_claim.clone(), t.clone());
        }
        // RFC 8693 §4.1: the current actor outermost, prior actors nested inside.
        let mut act = Map::new();
        act.insert("sub".into(), json!(client.id));
        if let Some(prior) = subject.get("act") {
            act.insert("act".into(), prior.clone());
        }
        claims.insert("act".into(), Value::Object(act));
        let access_token = self.sign_access_token(claims);
        tracing::info!(client_id = %client.id, %scope, aud = %target, "exchanged access token");
        Ok(IssuedToken {
            access_token,
            expires_in: exp - now,
            scope,
        })
    }

    /// The registered claims every access token of this issuer has (RFC 9068 §2.2).
    fn base_claims(
        &self,
        sub: &str,
        aud: &str,
        client_id: &str,
        scope: &str,
        iat: u64,
        exp: u64,
    ) -> Map<String, Value> {
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(self.inner.issuer));
        claims.insert("sub".into(), json!(sub));
        claims.insert("aud".into(), json!(aud));
        claims.insert("client_id".into(), json!(client_id));
        claims.insert("scope".into(), json!(scope));
        claims.insert("iat".into(), json!(iat));
        claims.insert("exp".into(), json!(exp));
        claims.insert("jti".into(), json!(random_id()));
        claims
    }

    fn sign_access_token(&self, claims: Map<String, Value>) -> String {
        // RFC 9068 §2.1: `typ` "at+jwt" separates access tokens from ID tokens.
        self.inner.key.sign_jwt("at+jwt", &Value::Object(claims))
    }

    /// Authenticates a client by id and secret in constant time.
    pub(crate) fn authenticate_client(&self, id: &str, secret: &str) -> Option<&DevClient> {
        let client = self.inner.clients.get(id);
        secret_matches(client.map(|c| &c.secret), secret)
            .then_some(client)
            .flatten()
    }

    /// Authenticates a resource server (introspection caller) in constant time.
    pub(crate) fn authenticate_resource_server(
        &self,
        id: &str,
        secret: &str,
    ) -> Option<&DevResourceServer> {
        let rs = self.inner.resource_servers.get(id);
        secret_matches(rs.map(|r| &r.secret), secret)
            .then_some(rs)
            .flatten()
    }

    /// RFC 7662 §2.2 answer for one of this issuer's own tokens, as seen by `caller`.
    /// Anything not verifiably issued here, expired, or meant for another resource is
    /// `{"active": false}` with no further detail.
    pub fn introspect(&self, token: &str, caller: Option<&DevResourceServer>) -> Value {
        let inactive = json!({"active": false});
        let Some(claims) = self.verify_own(token) else {
            return inactive;
        };
        if let Some(r) = caller.and_then(|c| c.resource.as_deref())
            && claims.get("aud").and_then(Value::as_str) != Some(r)
        {
            return inactive;
        }
        let mut out = claims;
        out.insert("active".into(), json!(true));
        out.insert("token_type".into(), json!("Bearer"));
        Value::Object(out)
    }

    fn verify_own(&self, token: &str) -> Option<Map<String, Value>> {
        let mut parts = token.split('.');
        let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).ok()?).ok()?;
        // The algorithm comes from our key, not the header (RFC 8725 §3.1); the header must
        // merely agree.
        if header.get("alg")?.as_str()? != self.inner.key.alg().as_str()
            || header.get("kid")?.as_str()? != self.kid()
            || header.get("typ")?.as_str()? != "at+jwt"
        {
            return None;
        }
        let sig = URL_SAFE_NO_PAD.decode(s).ok()?;
        if !self.inner.key.verify(format!("{h}.{p}").as_bytes(), &sig) {
            return None;
        }
        let claims: Map<String, Value> =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).ok()?).ok()?;
        let exp = claims.get("exp")?.as_u64()?;
        (claims.get("iss")?.as_str()? == self.inner.issuer && exp > self.now()).then_some(claims)
    }
}

/// `http://<addr>` for a bound socket address (IPv6 in brackets).
pub(crate) fn default_issuer(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

/// RFC 8414 §2: the issuer is an `https` (here also `http`, for loopback development) URL with
/// no query or fragment. Paths are refused because this server serves its metadata only at the
/// root well-known locations.
fn normalize_issuer(raw: &str) -> Result<String, String> {
    let url = Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("scheme must be http or https".into());
    }
    if url.query().is_some() || url.fragment().is_some() || raw.contains('#') {
        return Err("must not have a query or fragment".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain credentials".into());
    }
    if url.path() != "/" {
        return Err("must not have a path".into());
    }
    Ok(raw.trim_end_matches('/').to_owned())
}

/// Parses a raw RFC 6749 §3.3 `scope` parameter: scope tokens separated by single spaces,
/// duplicates collapsed. A token that is malformed or not `allowed` is `invalid_scope`, never
/// silently dropped (RFC 6749 §5.2).
fn parse_scope(raw: &str, allowed: impl Fn(&str) -> bool) -> Result<Vec<&str>, TokenError> {
    let mut out = Vec::new();
    for s in raw.split(' ') {
        if !is_scope_token(s) || !allowed(s) {
            return Err(TokenError::InvalidScope);
        }
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}

#[cfg(test)]
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// 128 random bits, base64url: unguessable and unique enough for `jti` (RFC 7519 §4.1.7).
use gatehouse::jws::random_id;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_normalization() {
        assert_eq!(
            normalize_issuer("http://127.0.0.1:8080/").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            normalize_issuer("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        for bad in [
            "ftp://x",
            "http://x/tenant",
            "http://x/?q=1",
            "http://x/#f",
            "http://u:p@x",
            "x",
        ] {
            assert!(normalize_issuer(bad).is_err(), "{bad}");
        }
    }

    fn test_issuer() -> DevIssuer {
        DevIssuer::new(DevIssuerConfig {
            issuer: Some("http://127.0.0.1:1".into()),
            clients: vec![DevClient::new("c", "s", ["a"])],
            ..DevIssuerConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn introspection_rejects_expired_wrong_issuer_and_wrong_header() {
        let iss = test_issuer();
        let now = unix_now();
        let claims = |exp: u64, issuer: &str| json!({"iss": issuer, "sub": "c", "aud": "http://r", "client_id": "c", "exp": exp});
        let good_header = json!({"alg": "ES256", "typ": "at+jwt", "kid": iss.kid()});
        let active = iss
            .inner
            .key
            .sign_jws(&good_header, &claims(now + 60, iss.issuer()));
        assert_eq!(
            iss.introspect(&active, None)["active"],
            true,
            "control case"
        );

        let expired = iss
            .inner
            .key
            .sign_jws(&good_header, &claims(now - 1, iss.issuer()));
        let wrong_iss = iss
            .inner
            .key
            .sign_jws(&good_header, &claims(now + 60, "http://127.0.0.1:2"));
        let id_token = iss.inner.key.sign_jws(
            &json!({"alg": "ES256", "typ": "JWT", "kid": iss.kid()}),
            &claims(now + 60, iss.issuer()),
        );
        let wrong_alg = iss.inner.key.sign_jws(
            &json!({"alg": "RS256", "typ": "at+jwt", "kid": iss.kid()}),
            &claims(now + 60, iss.issuer()),
        );
        for t in [
            expired,
            wrong_iss,
            id_token,
            wrong_alg,
            format!("{active}.x"),
        ] {
            assert_eq!(iss.introspect(&t, None), json!({"active": false}));
        }
    }

    #[test]
    fn issued_token_debug_is_redacted() {
        let iss = test_issuer();
        let client = iss.inner.clients.get("c").unwrap();
        let t = iss.issue_for(client, None, Some("http://r"), None).unwrap();
        assert!(!format!("{t:?}").contains(&t.access_token));
    }

    fn payload(token: &str) -> Value {
        let p = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
    }

    /// agent → (token for A) → rs-a exchanges for B → rs-b exchanges for C.
    fn chain_issuer() -> DevIssuer {
        DevIssuer::new(DevIssuerConfig {
            issuer: Some("http://127.0.0.1:1".into()),
            clients: vec![
                DevClient::new("agent", "s", ["a", "b"]).with_tenant("acme"),
                DevClient::new("rs-a", "s", ["a", "b"])
                    .with_token_exchange("http://a.test/", ["http://b.test/"]),
                DevClient::new("rs-b", "s", ["a"])
                    .with_token_exchange("http://b.test/", ["http://c.test/"]),
            ],
            ..DevIssuerConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn exchange_nests_prior_actors_and_keeps_subject_and_tenant() {
        let iss = chain_issuer();
        let t0 = iss.mint("agent", &[], "http://a.test/").unwrap();
        let t1 = iss.exchange("rs-a", &t0, "http://b.test/", None).unwrap();
        assert_eq!(t1.scope, "a b");
        let c1 = payload(&t1.access_token);
        assert_eq!(c1["act"], json!({"sub": "rs-a"}));
        let t2 = iss
            .exchange("rs-b", &t1.access_token, "http://c.test/", None)
            .unwrap();
        let c2 = payload(&t2.access_token);
        assert_eq!(c2["sub"], "agent");
        assert_eq!(c2["tenant"], "acme");
        assert_eq!(c2["client_id"], "rs-b");
        assert_eq!(c2["aud"], "http://c.test/");
        assert_eq!(c2["scope"], "a", "rs-b may not request b");
        assert_eq!(c2["act"], json!({"sub": "rs-b", "act": {"sub": "rs-a"}}));
        // rs-a's token is for B, not A: rs-a cannot exchange it again.
        assert_eq!(
            iss.exchange("rs-a", &t1.access_token, "http://b.test/", None)
                .unwrap_err(),
            TokenError::InvalidSubjectToken("not addressed to this client")
        );
    }

    #[test]
    fn exchanged_token_never_outlives_its_subject() {
        let iss = chain_issuer();
        let now = unix_now();
        let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": iss.kid()});
        let claims = |exp: u64| {
            json!({"iss": iss.issuer(), "sub": "agent", "aud": "http://a.test/",
                   "client_id": "agent", "scope": "a", "exp": exp})
        };
        let short = iss.inner.key.sign_jws(&header, &claims(now + 10));
        let t = iss
            .exchange("rs-a", &short, "http://b.test/", None)
            .unwrap();
        assert!(t.expires_in <= 10, "{}", t.expires_in);
        assert_eq!(payload(&t.access_token)["exp"], now + 10);

        let expired = iss.inner.key.sign_jws(&header, &claims(now - 1));
        assert_eq!(
            iss.exchange("rs-a", &expired, "http://b.test/", None)
                .unwrap_err(),
            TokenError::InvalidSubjectToken("invalid")
        );
    }

    #[test]
    fn exchange_that_would_delegate_nothing_is_invalid_scope() {
        let iss = chain_issuer();
        let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": iss.kid()});
        let unscoped = iss.inner.key.sign_jws(
            &header,
            &json!({"iss": iss.issuer(), "sub": "agent", "aud": "http://a.test/",
                    "client_id": "agent", "exp": unix_now() + 60}),
        );
        assert_eq!(
            iss.exchange("rs-a", &unscoped, "http://b.test/", None)
                .unwrap_err(),
            TokenError::InvalidScope
        );
    }
}
