//! Credentials for the APIs that tools call: a separate, audience-restricted credential for every
//! upstream — never the client's token.
//!
//! Forwarding the inbound token to another API is what the MCP security best practices call
//! *token passthrough*; sending a held credential to a URL that tool arguments influenced is
//! *credential destination injection*. This module makes both impossible by construction:
//!
//! - every upstream is **named in configuration** with a fixed destination ([`UpstreamConfig::base_url`])
//!   and the audience its credentials must carry; a tool asks for an upstream by name and gets an
//!   [`UpstreamClient`] that refuses any URL outside that base — redirects included — before a
//!   credential is attached;
//! - the credential is obtained for that upstream alone ([`CredentialMode`]):
//!   - `TokenExchange` — RFC 8693 at the authorization server: the caller's verified inbound token
//!     is the `subject_token`, the upstream is the `audience`/`resource`, the scopes are narrowed;
//!     the result names the user as `sub` and this server as actor (`act`) where the AS supports it;
//!   - `ClientCredentials` — this server's own identity, for upstreams that trust the service, not
//!     the user (the caller's identity then travels as data, never as a credential);
//!   - `Static` — an API key from a file or an environment variable;
//! - tokens are **cached per (upstream, principal)** until shortly before they expire, fetched
//!   single-flight, bounded in number, never shared between principals, and never shown by
//!   `Debug` or in logs;
//! - when the authorization server refuses or is down, the tool gets a typed [`UpstreamError`]
//!   (and answers with a tool error), never a `401` that would make the MCP client re-authenticate.
//!
//! The inbound token reaches this module only through the edge, in a value tools cannot read
//! ([`UpstreamAccess`]); tools never see it.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;
use serde::Deserialize;
use url::Url;

use crate::caller::{AccessToken, Caller};
use crate::verify::fetch::{FetchConfig, FetchError, FetchOrOAuth, Fetcher, FormAuth};
use crate::verify::introspection::ClientSecret;

/// RFC 8693 §2.1 grant type.
const GRANT_TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693 §3 token type of an OAuth access token.
const TOKEN_TYPE_ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";

/// Tokens are renewed this long before they expire (at most half their lifetime), so that a
/// request started with a cached token does not arrive with an expired one.
const RENEW_BEFORE: Duration = Duration::from_secs(30);

/// Most cached upstream tokens (per process).
pub const DEFAULT_MAX_CACHED_TOKENS: u64 = 10_000;

/// This server's client registration at the authorization server (for token exchange and client
/// credentials).
#[derive(Clone)]
pub struct TokenEndpointClient {
    /// The authorization server's token endpoint.
    pub token_endpoint: Url,
    /// This server's client id there.
    pub client_id: String,
    /// Its secret (sent with HTTP Basic, RFC 6749 §2.3.1).
    pub client_secret: ClientSecret,
}

impl fmt::Debug for TokenEndpointClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenEndpointClient")
            .field("token_endpoint", &self.token_endpoint.as_str())
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// A secret sent as-is to an upstream that only takes API keys. Redacted in `Debug`.
#[derive(Clone)]
pub struct StaticSecret(Arc<str>);

impl StaticSecret {
    /// Wraps a secret value.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(Arc::from(secret.into()))
    }
}

impl fmt::Debug for StaticSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StaticSecret(<redacted>)")
    }
}

/// How an upstream's credential is obtained.
#[derive(Debug, Clone)]
pub enum CredentialMode {
    /// RFC 8693 token exchange of the caller's inbound token (the user's delegated access).
    TokenExchange(TokenEndpointClient),
    /// OAuth client credentials: this server's own identity.
    ClientCredentials(TokenEndpointClient),
    /// A fixed secret in a header (`Authorization: Bearer <secret>` unless `header` says
    /// otherwise, e.g. `x-api-key`).
    Static {
        /// The header that carries it.
        header: http::HeaderName,
        /// The value (`Bearer ` is prepended when the header is `Authorization`).
        secret: StaticSecret,
    },
}

/// One named upstream API.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// The name tools use.
    pub name: String,
    /// The fixed destination: every request goes to this origin, under this path.
    pub base_url: Url,
    /// `audience` of requested tokens (RFC 8693 §2.1), when the AS uses logical names.
    pub audience: Option<String>,
    /// `resource` of requested tokens (RFC 8707): the upstream's own identifier. Default: the
    /// base URL.
    pub resource: Option<String>,
    /// Scopes to ask for (token exchange narrows to these). Default: none requested.
    pub scopes: Vec<String>,
    /// How the credential is obtained.
    pub mode: CredentialMode,
}

/// Why a tool could not reach an upstream. Display text is fixed and safe for logs; tools turn it
/// into a tool error with their own text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// No upstream of that name is configured.
    #[error("no upstream named {0:?} is configured")]
    Unknown(String),
    /// The URL is outside the upstream's base (or a redirect left it).
    #[error("refused: the URL is outside the upstream's base")]
    OutsideBase,
    /// Token exchange needs the caller's inbound token and the request carried none (a server
    /// mounted without the edge).
    #[error("no inbound token to exchange")]
    NoSubjectToken,
    /// The authorization server refused to issue a token (status and OAuth error code).
    #[error("the authorization server refused the token request ({status} {code})")]
    Refused {
        /// HTTP status of the refusal.
        status: u16,
        /// The RFC 6749 `error` code, when it sent one.
        code: String,
    },
    /// The authorization server could not be reached or answered nonsense.
    #[error("the authorization server is unavailable: {0}")]
    Unavailable(String),
    /// The upstream itself could not be reached.
    #[error("the upstream could not be reached: {0}")]
    Request(String),
}

/// A credential ready to attach.
#[derive(Clone)]
struct Credential {
    header: http::HeaderName,
    value: http::HeaderValue,
    /// When it must no longer be used (`None`: does not expire).
    good_until: Option<Instant>,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credential(<redacted>)")
    }
}

/// (issuer, subject, client, tenant): whose delegated access an exchanged token carries.
type PrincipalKey = (Arc<str>, Option<String>, Option<String>, Option<String>);

/// Whose token a cached credential is: an upstream and, for exchanged tokens, the principal.
#[derive(Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    upstream: Arc<str>,
    /// The principal for exchanged tokens; `None` for the service's own.
    principal: Option<PrincipalKey>,
}

struct UntilRenewal;

impl Expiry<CacheKey, Arc<Credential>> for UntilRenewal {
    fn expire_after_create(
        &self,
        _key: &CacheKey,
        value: &Arc<Credential>,
        created_at: Instant,
    ) -> Option<Duration> {
        value
            .good_until
            .map(|t| t.saturating_duration_since(created_at))
    }
}

struct Entry {
    config: UpstreamConfig,
    name: Arc<str>,
    /// Requests to the upstream: redirects followed only within the base.
    http: reqwest::Client,
}

/// The configured upstreams and their token cache. Cheap to clone.
#[derive(Clone)]
pub struct Upstreams {
    entries: Arc<HashMap<String, Entry>>,
    /// Some upstream exchanges the caller's token (decided once; read on every request).
    exchanges: bool,
    cache: Cache<CacheKey, Arc<Credential>>,
    token_client: Fetcher,
}

impl fmt::Debug for Upstreams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<_> = self.entries.keys().collect();
        names.sort();
        f.debug_struct("Upstreams").field("names", &names).finish()
    }
}

/// A configuration [`Upstreams::new`] refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamConfigError {
    /// Two upstreams share a name.
    #[error("upstream {0:?} configured twice")]
    Duplicate(String),
    /// The base URL is not https (http only on loopback), or has a query, fragment or userinfo.
    #[error(
        "upstream {0:?}: base_url must be an https URL without query, fragment or credentials (http only on loopback)"
    )]
    BaseUrl(String),
    /// The token endpoint is not https (http only on loopback).
    #[error("upstream {0:?}: token_endpoint must be https (http only on loopback)")]
    TokenEndpoint(String),
    /// The HTTP client could not be built.
    #[error("http client: {0}")]
    Client(String),
}

fn is_secure(url: &Url) -> bool {
    url.scheme() == "https" || (url.scheme() == "http" && crate::verify::fetch::is_loopback(url))
}

/// The base, normalised to end with `/`, so that `/api` does not admit `/api-admin`.
fn base_prefix(base: &Url) -> Url {
    let mut b = base.clone();
    if !b.path().ends_with('/') {
        let p = format!("{}/", b.path());
        b.set_path(&p);
    }
    b
}

/// True when `url` is under `base` (same scheme, host and port; path below the base path).
fn within(base: &Url, url: &Url) -> bool {
    let base = base_prefix(base);
    url.scheme() == base.scheme()
        && url.host_str() == base.host_str()
        && url.port_or_known_default() == base.port_or_known_default()
        && url.username().is_empty()
        && url.password().is_none()
        && (url.path().starts_with(base.path()) || format!("{}/", url.path()) == base.path())
}

impl Upstreams {
    /// Validates `configs` and builds one HTTP client per upstream (timeouts from `fetch`).
    pub fn new(
        configs: Vec<UpstreamConfig>,
        fetch: FetchConfig,
    ) -> Result<Self, UpstreamConfigError> {
        let mut entries = HashMap::new();
        for config in configs {
            if entries.contains_key(&config.name) {
                return Err(UpstreamConfigError::Duplicate(config.name));
            }
            let b = &config.base_url;
            if !is_secure(b)
                || b.query().is_some()
                || b.fragment().is_some()
                || !b.username().is_empty()
                || b.password().is_some()
            {
                return Err(UpstreamConfigError::BaseUrl(config.name));
            }
            if let CredentialMode::TokenExchange(c) | CredentialMode::ClientCredentials(c) =
                &config.mode
                && !is_secure(&c.token_endpoint)
            {
                return Err(UpstreamConfigError::TokenEndpoint(config.name));
            }
            let base = base_prefix(b);
            let policy = reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= 5 {
                    attempt.error("too many redirects")
                } else if within(&base, attempt.url()) {
                    attempt.follow()
                } else {
                    // A redirect out of the base would carry the credential elsewhere.
                    attempt.error("redirect outside the upstream's base")
                }
            });
            let http = reqwest::Client::builder()
                .redirect(policy)
                .timeout(fetch.timeout)
                .connect_timeout(fetch.timeout)
                .user_agent(concat!("gatehouse/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| UpstreamConfigError::Client(e.to_string()))?;
            let name: Arc<str> = config.name.as_str().into();
            entries.insert(config.name.clone(), Entry { name, config, http });
        }
        let token_client =
            Fetcher::new(fetch).map_err(|e| UpstreamConfigError::Client(e.to_string()))?;
        let exchanges = entries
            .values()
            .any(|e| matches!(e.config.mode, CredentialMode::TokenExchange(_)));
        Ok(Self {
            entries: Arc::new(entries),
            exchanges,
            cache: Cache::builder()
                .max_capacity(DEFAULT_MAX_CACHED_TOKENS)
                .expire_after(UntilRenewal)
                .build(),
            token_client,
        })
    }

    /// True when some upstream exchanges the caller's token (the edge then keeps it for this
    /// module, out of the tools' reach).
    pub fn needs_subject_token(&self) -> bool {
        self.exchanges
    }

    /// Number of cached upstream tokens (approximate).
    pub fn cached_tokens(&self) -> u64 {
        self.cache.entry_count()
    }

    /// Access for one request: `caller` and, for token exchange, its verified inbound token.
    pub(crate) fn access(&self, caller: Caller, subject: Option<AccessToken>) -> UpstreamAccess {
        UpstreamAccess {
            upstreams: self.clone(),
            caller: Some(caller),
            subject,
        }
    }

    /// The empty registry (every name unknown), built once per process: what a tool gets when
    /// no upstreams are configured. `None` only if no HTTP client can be built at all.
    pub(crate) fn none() -> Option<Self> {
        static NONE: std::sync::OnceLock<Option<Upstreams>> = std::sync::OnceLock::new();
        NONE.get_or_init(|| Upstreams::new(Vec::new(), FetchConfig::default()).ok())
            .clone()
    }

    /// Access as this server itself, outside any request: for background work (an outbox
    /// delivered after the request that filled it has ended). Upstreams whose credential does
    /// not depend on a caller (`client_credentials`, `static`) work; a `token_exchange` upstream
    /// refuses with [`UpstreamError::NoSubjectToken`], because no user's token is at hand — and
    /// none should be kept for later.
    pub fn service_access(&self) -> UpstreamAccess {
        UpstreamAccess {
            upstreams: self.clone(),
            caller: None,
            subject: None,
        }
    }

    /// Whether the upstream `name` needs a caller's token (`token_exchange`): `None` when no
    /// upstream has that name. Lets an application check at start-up that background work names
    /// an upstream [`Upstreams::service_access`] can use.
    pub fn needs_caller(&self, name: &str) -> Option<bool> {
        self.entries
            .get(name)
            .map(|e| matches!(e.config.mode, CredentialMode::TokenExchange(_)))
    }

    async fn credential(
        &self,
        entry: &Entry,
        caller: Option<&Caller>,
        subject: Option<&AccessToken>,
        fresh: bool,
    ) -> Result<Arc<Credential>, UpstreamError> {
        let (client, exchange) = match &entry.config.mode {
            CredentialMode::Static { header, secret } => {
                let value = if header == http::header::AUTHORIZATION {
                    format!("Bearer {}", secret.0)
                } else {
                    secret.0.to_string()
                };
                let mut value = http::HeaderValue::from_str(&value).map_err(|_| {
                    UpstreamError::Unavailable("static secret is not a header value".into())
                })?;
                value.set_sensitive(true);
                return Ok(Arc::new(Credential {
                    header: header.clone(),
                    value,
                    good_until: None,
                }));
            }
            CredentialMode::TokenExchange(c) => (c, true),
            CredentialMode::ClientCredentials(c) => (c, false),
        };
        let (principal, subject) = match (exchange, caller, subject) {
            (true, Some(c), Some(s)) => (
                Some((
                    c.issuer.clone(),
                    c.subject.clone(),
                    c.client_id.clone(),
                    c.tenant.clone(),
                )),
                Some(s.clone()),
            ),
            (true, _, _) => return Err(UpstreamError::NoSubjectToken),
            (false, _, _) => (None, None),
        };
        let key = CacheKey {
            upstream: entry.name.clone(),
            principal,
        };
        if fresh {
            self.cache.invalidate(&key).await;
        }
        let fetcher = self.token_client.clone();
        let config = entry.config.clone();
        let client = client.clone();
        // Single flight: concurrent calls for the same (upstream, principal) share one request.
        self.cache
            .try_get_with(key, async move {
                request_token(&fetcher, &config, &client, subject.as_ref())
                    .await
                    .map(Arc::new)
            })
            .await
            .map_err(|e: Arc<UpstreamError>| (*e).clone())
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct OAuthErrorBody {
    error: String,
}

async fn request_token(
    fetcher: &Fetcher,
    config: &UpstreamConfig,
    client: &TokenEndpointClient,
    subject: Option<&AccessToken>,
) -> Result<Credential, UpstreamError> {
    let scope = config.scopes.join(" ");
    let resource = config
        .resource
        .clone()
        .unwrap_or_else(|| config.base_url.as_str().to_owned());
    let mut form: Vec<(&str, &str)> = Vec::with_capacity(6);
    match subject {
        Some(s) => {
            form.push(("grant_type", GRANT_TOKEN_EXCHANGE));
            form.push(("subject_token", s.expose()));
            form.push(("subject_token_type", TOKEN_TYPE_ACCESS_TOKEN));
            form.push(("requested_token_type", TOKEN_TYPE_ACCESS_TOKEN));
        }
        None => form.push(("grant_type", "client_credentials")),
    }
    form.push(("resource", &resource));
    if let Some(a) = &config.audience {
        form.push(("audience", a));
    }
    if !scope.is_empty() {
        form.push(("scope", &scope));
    }
    let auth = FormAuth::Basic {
        id: &client.client_id,
        secret: client.client_secret.expose(),
    };
    let started = Instant::now();
    let result = fetcher
        .post_form_json_or_error::<TokenResponse, OAuthErrorBody>(
            &client.token_endpoint,
            &form,
            auth,
        )
        .await;
    let token = match result {
        Ok(t) => t,
        Err(FetchOrOAuth::OAuth { status, body }) => {
            tracing::warn!(upstream = %config.name, status, error = %body.error, "token request refused");
            return Err(UpstreamError::Refused {
                status,
                code: body.error.chars().take(64).collect(),
            });
        }
        Err(FetchOrOAuth::Fetch(FetchError::Status(status))) if (400..500).contains(&status) => {
            tracing::warn!(upstream = %config.name, status, "token request refused");
            return Err(UpstreamError::Refused {
                status,
                code: String::new(),
            });
        }
        Err(FetchOrOAuth::Fetch(e)) => {
            tracing::warn!(upstream = %config.name, error = %e, "token endpoint unavailable");
            return Err(UpstreamError::Unavailable(e.to_string()));
        }
    };
    if token
        .token_type
        .as_deref()
        .is_some_and(|t| !t.eq_ignore_ascii_case("bearer"))
    {
        return Err(UpstreamError::Unavailable(
            "token_type is not Bearer".into(),
        ));
    }
    let mut value = http::HeaderValue::from_str(&format!("Bearer {}", token.access_token))
        .map_err(|_| UpstreamError::Unavailable("access_token is not a header value".into()))?;
    value.set_sensitive(true);
    // Renew RENEW_BEFORE ahead of expiry, or at half-life for short tokens; an answer without
    // `expires_in` is used for one minute.
    let lifetime = Duration::from_secs(token.expires_in.unwrap_or(60));
    let margin = RENEW_BEFORE.min(lifetime / 2);
    Ok(Credential {
        header: http::header::AUTHORIZATION,
        value,
        good_until: Some(started + lifetime - margin),
    })
}

/// What a tool holds to call upstreams for the current request: the registry, the caller and
/// (kept out of reach) the caller's inbound token. Take it as a tool argument. `Debug` shows no
/// token.
#[derive(Clone)]
pub struct UpstreamAccess {
    upstreams: Upstreams,
    /// `None`: [`Upstreams::service_access`], the server acting as itself.
    caller: Option<Caller>,
    subject: Option<AccessToken>,
}

impl fmt::Debug for UpstreamAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamAccess")
            .field("upstreams", &self.upstreams)
            .field("caller", &self.caller)
            .finish_non_exhaustive()
    }
}

impl UpstreamAccess {
    /// The client of the upstream named `name`.
    pub fn client(&self, name: &str) -> Result<UpstreamClient<'_>, UpstreamError> {
        let entry = self
            .upstreams
            .entries
            .get(name)
            .ok_or_else(|| UpstreamError::Unknown(name.chars().take(64).collect()))?;
        Ok(UpstreamClient {
            access: self,
            entry,
        })
    }

    /// The credential for the upstream named `name`, for a transport that makes its own
    /// requests (a gateway's MCP client session to that upstream, whose base URL it must be):
    /// the header to send, its value (marked sensitive; `Debug` hides it) and until when it may
    /// be used. Fetched and cached exactly as for [`UpstreamAccess::client`].
    pub async fn credential(&self, name: &str) -> Result<UpstreamCredential, UpstreamError> {
        let entry = self
            .upstreams
            .entries
            .get(name)
            .ok_or_else(|| UpstreamError::Unknown(name.chars().take(64).collect()))?;
        let c = self
            .upstreams
            .credential(entry, self.caller.as_ref(), self.subject.as_ref(), false)
            .await?;
        Ok(UpstreamCredential {
            header: c.header.clone(),
            value: c.value.clone(),
            good_until: c.good_until,
            base_url: entry.config.base_url.clone(),
        })
    }
}

/// A credential for one upstream ([`UpstreamAccess::credential`]). `Debug` shows no secret.
#[derive(Clone)]
pub struct UpstreamCredential {
    header: http::HeaderName,
    value: http::HeaderValue,
    good_until: Option<Instant>,
    base_url: Url,
}

impl fmt::Debug for UpstreamCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamCredential")
            .field("header", &self.header)
            .field("good_until", &self.good_until)
            .finish_non_exhaustive()
    }
}

impl UpstreamCredential {
    /// The header that carries it.
    pub fn header(&self) -> &http::HeaderName {
        &self.header
    }

    /// Its value (sensitive: never log it).
    pub fn value(&self) -> &http::HeaderValue {
        &self.value
    }

    /// When it must no longer be used (`None`: it does not expire).
    pub fn good_until(&self) -> Option<Instant> {
        self.good_until
    }

    /// The upstream's base URL: the only destination this credential is for.
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }
}

/// Requests to one upstream, with its credential attached. Every URL is checked against the
/// upstream's base before anything is sent.
pub struct UpstreamClient<'a> {
    access: &'a UpstreamAccess,
    entry: &'a Entry,
}

impl fmt::Debug for UpstreamClient<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamClient")
            .field("upstream", &self.entry.name)
            .finish()
    }
}

impl UpstreamClient<'_> {
    /// The upstream's base URL.
    pub fn base_url(&self) -> &Url {
        &self.entry.config.base_url
    }

    /// The absolute URL for `path` (relative to the base), refused when it leaves the base —
    /// an absolute URL, `//host`, `..` or an encoded trick in a tool argument cannot steer the
    /// credential elsewhere.
    pub fn url(&self, path: &str) -> Result<Url, UpstreamError> {
        let base = base_prefix(&self.entry.config.base_url);
        let url = base
            .join(path.trim_start_matches('/'))
            .map_err(|_| UpstreamError::OutsideBase)?;
        if within(&base, &url) {
            Ok(url)
        } else {
            tracing::warn!(upstream = %self.entry.name, "refused a URL outside the upstream's base");
            Err(UpstreamError::OutsideBase)
        }
    }

    /// Sends `method path` with an optional JSON body and extra headers, the credential
    /// attached. A `401` from the upstream with a cached token fetches a fresh one and retries
    /// once (the token may have been revoked).
    pub async fn send(
        &self,
        method: http::Method,
        path: &str,
        json: Option<&serde_json::Value>,
        headers: &[(&str, &str)],
    ) -> Result<reqwest::Response, UpstreamError> {
        let url = self.url(path)?;
        let mut fresh = false;
        loop {
            let credential = self
                .access
                .upstreams
                .credential(
                    self.entry,
                    self.access.caller.as_ref(),
                    self.access.subject.as_ref(),
                    fresh,
                )
                .await?;
            let mut req = self
                .entry
                .http
                .request(method.clone(), url.clone())
                .header(credential.header.clone(), credential.value.clone());
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            if let Some(body) = json {
                req = req.json(body);
            }
            let resp = req
                .send()
                .await
                .map_err(|e| UpstreamError::Request(e.without_url().to_string()))?;
            let retry = resp.status() == reqwest::StatusCode::UNAUTHORIZED
                && !fresh
                && credential.good_until.is_some();
            if !retry {
                return Ok(resp);
            }
            fresh = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchanging_ledger() -> Upstreams {
        Upstreams::new(
            vec![UpstreamConfig {
                name: "ledger".into(),
                base_url: Url::parse("https://ledger.example.com/api").unwrap(),
                audience: None,
                resource: None,
                scopes: vec![],
                mode: CredentialMode::TokenExchange(TokenEndpointClient {
                    token_endpoint: Url::parse("https://as.example.com/token").unwrap(),
                    client_id: "billing".into(),
                    client_secret: ClientSecret::new("client-secret-xyz"),
                }),
            }],
            FetchConfig::default(),
        )
        .unwrap()
    }

    fn alice() -> Caller {
        Caller::new(crate::caller::Principal {
            issuer: "https://as.example.com".into(),
            subject: Some("alice".into()),
            client_id: None,
            scopes: Default::default(),
            audiences: vec![],
            tenant: None,
            expires_at: std::time::SystemTime::now(),
            kind: crate::caller::TokenKind::Jwt,
            claims: Default::default(),
        })
    }

    #[test]
    fn no_token_or_secret_in_debug() {
        let ups = exchanging_ledger();
        assert!(ups.needs_subject_token());
        let access = ups.access(alice(), Some(AccessToken::new("inbound-token-abc")));
        let shown = format!("{access:?} {ups:?} {:?}", ups.entries["ledger"].config);
        assert!(!shown.contains("inbound-token-abc"), "{shown}");
        assert!(!shown.contains("client-secret-xyz"), "{shown}");
        assert!(format!("{:?}", StaticSecret::new("k")).contains("redacted"));
    }

    // Refused before anything is sent: an upstream nobody configured, and an exchange without
    // the caller's token (a server mounted without the edge).
    #[tokio::test]
    async fn unknown_upstreams_and_missing_subject_tokens_are_refused() {
        let access = exchanging_ledger().access(alice(), None);
        assert_eq!(
            access.client("search").unwrap_err(),
            UpstreamError::Unknown("search".into())
        );
        let sent = access
            .client("ledger")
            .unwrap()
            .send(http::Method::POST, "notes", None, &[])
            .await;
        assert_eq!(sent.unwrap_err(), UpstreamError::NoSubjectToken);
    }

    // Background work acts as the server itself: an exchange needs a user's token it does not
    // have, so it is refused before anything is sent; the registry says which names need one.
    #[tokio::test]
    async fn service_access_cannot_exchange() {
        let ups = exchanging_ledger();
        assert_eq!(ups.needs_caller("ledger"), Some(true));
        assert_eq!(ups.needs_caller("search"), None);
        let sent = ups
            .service_access()
            .client("ledger")
            .unwrap()
            .send(http::Method::POST, "notes", None, &[])
            .await;
        assert_eq!(sent.unwrap_err(), UpstreamError::NoSubjectToken);
        assert_eq!(Upstreams::none().unwrap().needs_caller("ledger"), None);
    }

    #[test]
    fn bad_configurations_are_refused() {
        let cfg = |name: &str, base: &str, endpoint: &str| UpstreamConfig {
            name: name.into(),
            base_url: Url::parse(base).unwrap(),
            audience: None,
            resource: None,
            scopes: vec![],
            mode: CredentialMode::ClientCredentials(TokenEndpointClient {
                token_endpoint: Url::parse(endpoint).unwrap(),
                client_id: "c".into(),
                client_secret: ClientSecret::new("s"),
            }),
        };
        let ok = "https://as.example.com/token";
        let err = |c: Vec<UpstreamConfig>| Upstreams::new(c, FetchConfig::default()).unwrap_err();
        assert_eq!(
            err(vec![cfg("a", "http://api.example.com/", ok)]),
            UpstreamConfigError::BaseUrl("a".into())
        );
        assert_eq!(
            err(vec![cfg("a", "https://api.example.com/?x=1", ok)]),
            UpstreamConfigError::BaseUrl("a".into())
        );
        assert_eq!(
            err(vec![cfg(
                "a",
                "https://api.example.com/",
                "http://as.example.com/t"
            )]),
            UpstreamConfigError::TokenEndpoint("a".into())
        );
        assert_eq!(
            err(vec![
                cfg("a", "https://api.example.com/", ok),
                cfg("a", "https://other.example.com/", ok)
            ]),
            UpstreamConfigError::Duplicate("a".into())
        );
        assert!(
            Upstreams::new(
                vec![cfg("a", "http://127.0.0.1:9/api", ok)],
                FetchConfig::default()
            )
            .is_ok()
        );
    }

    #[test]
    fn urls_stay_under_the_base() {
        let base = Url::parse("https://ledger.example.com/api").unwrap();
        let ok = |u: &str| within(&base, &Url::parse(u).unwrap());
        assert!(ok("https://ledger.example.com/api/notes"));
        assert!(ok("https://ledger.example.com/api"));
        assert!(ok("https://ledger.example.com:443/api/x"));
        for bad in [
            "https://ledger.example.com/api-admin/x",
            "https://ledger.example.com/other",
            "http://ledger.example.com/api/x",
            "https://ledger.example.com:8443/api/x",
            "https://evil.example.com/api/x",
            "https://user:pw@ledger.example.com/api/x",
        ] {
            assert!(!ok(bad), "{bad}");
        }
    }
}
