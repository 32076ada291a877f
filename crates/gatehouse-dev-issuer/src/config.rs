//! Configuration of the development issuer: its clients, token lifetime and signing key.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Default access-token lifetime: five minutes, short enough that a leaked demo token expires soon.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(300);

/// Default name of the tenant claim put into tokens of clients that have a tenant.
pub const DEFAULT_TENANT_CLAIM: &str = "tenant";

/// Everything the development issuer needs to run.
///
/// Loadable from TOML/JSON (`serde`), e.g.
///
/// ```toml
/// token_ttl = 300            # seconds
/// signing_alg = "ES256"      # or "RS256"
///
/// [[clients]]
/// id = "billing-agent"
/// secret = "dev-secret"
/// allowed_scopes = ["invoices:read", "invoices:write"]
/// tenant = "acme"
///
/// [[clients]]                # a resource server that may exchange tokens (RFC 8693)
/// id = "billing-mcp"
/// secret = "dev-secret-2"
/// allowed_scopes = ["invoices:read"]
/// serves = "http://127.0.0.1:3000/mcp"
/// may_exchange_for = ["http://127.0.0.1:4000/ledger"]
///
/// [[users]]                  # a demo user for the browser login page (no password)
/// name = "alice"
/// tenant = "acme"
/// allowed_scopes = ["invoices:read", "invoices:write"]
/// ```
///
/// With at least one user the issuer also runs the interactive flows: the authorization
/// endpoint (code flow with PKCE), refresh tokens, dynamic client registration and client ID
/// metadata documents. Without users it is a client-credentials-only server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevIssuerConfig {
    /// The issuer identifier (RFC 8414 §2 `issuer`): an `http`/`https` origin with no path,
    /// query or fragment. Default (`None`): `http://<bound address>` of the listener.
    #[serde(default)]
    pub issuer: Option<String>,
    /// The clients allowed to obtain tokens with `client_credentials` (and, per their
    /// exchange policy, with token exchange).
    #[serde(default)]
    pub clients: Vec<DevClient>,
    /// Resource servers allowed to call the RFC 7662 introspection endpoint. Empty (the
    /// default) disables `/introspect` and leaves it out of the metadata.
    #[serde(default)]
    pub resource_servers: Vec<DevResourceServer>,
    /// Demo users who may sign in on the authorization page (no passwords: picking one is
    /// logging in). Empty (the default) disables the interactive flows altogether.
    #[serde(default)]
    pub users: Vec<DevUser>,
    /// Lifetime of issued access tokens (seconds in TOML). Default: [`DEFAULT_TOKEN_TTL`].
    #[serde(default = "default_ttl", with = "duration_secs")]
    pub token_ttl: Duration,
    /// Signature algorithm. Default: ES256.
    #[serde(default)]
    pub signing_alg: SigningAlg,
    /// A PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`) PEM file
    /// holding the signing key, so tokens survive a restart. Default (`None`): a fresh key is
    /// generated at start-up, which invalidates every earlier token.
    #[serde(default)]
    pub signing_key_pem: Option<PathBuf>,
    /// Name of the tenant claim. Default: [`DEFAULT_TENANT_CLAIM`].
    #[serde(default = "default_tenant_claim")]
    pub tenant_claim: String,
}

impl Default for DevIssuerConfig {
    fn default() -> Self {
        Self {
            issuer: None,
            clients: Vec::new(),
            resource_servers: Vec::new(),
            users: Vec::new(),
            token_ttl: DEFAULT_TOKEN_TTL,
            signing_alg: SigningAlg::default(),
            signing_key_pem: None,
            tenant_claim: DEFAULT_TENANT_CLAIM.to_owned(),
        }
    }
}

fn default_ttl() -> Duration {
    DEFAULT_TOKEN_TTL
}

fn default_tenant_claim() -> String {
    DEFAULT_TENANT_CLAIM.to_owned()
}

mod duration_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

/// A confidential client that may use the `client_credentials` grant (RFC 6749 §4.4) and, when
/// it is also a resource server with an exchange policy, the token exchange grant (RFC 8693).
///
/// The exchange rule: a client may exchange a subject token only if the token's `aud` is
/// exactly the resource it [`serves`](DevClient::serves) (the token was addressed to it), and
/// only for a target listed in [`may_exchange_for`](DevClient::may_exchange_for).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevClient {
    /// The `client_id`.
    pub id: String,
    /// The client secret (compared in constant time).
    pub secret: ClientSecret,
    /// Scopes this client may obtain; a token request without `scope` gets all of them.
    #[serde(default)]
    pub allowed_scopes: Vec<String>,
    /// Tenant put into the tenant claim of this client's tokens; no claim when `None`.
    #[serde(default)]
    pub tenant: Option<String>,
    /// The `sub` of this client's tokens. Default (`None`): the client id, as oidc-provider
    /// does for `client_credentials`.
    #[serde(default)]
    pub subject: Option<String>,
    /// The resource URI this client serves as a resource server: the only `aud` of subject
    /// tokens it may exchange. At most one client serves a given resource. `None` (the
    /// default): it serves nothing and may not exchange.
    #[serde(default)]
    pub serves: Option<String>,
    /// Target audiences (absolute URIs) this client may exchange subject tokens for (RFC 8693).
    /// Empty (the default): no token exchange for this client. Requires
    /// [`serves`](DevClient::serves).
    #[serde(default)]
    pub may_exchange_for: Vec<String>,
}

impl DevClient {
    /// A client with the given id, secret and allowed scopes, no tenant, `sub` = id.
    pub fn new(
        id: impl Into<String>,
        secret: impl Into<String>,
        allowed_scopes: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            id: id.into(),
            secret: ClientSecret::new(secret),
            allowed_scopes: allowed_scopes.into_iter().map(Into::into).collect(),
            tenant: None,
            subject: None,
            serves: None,
            may_exchange_for: Vec::new(),
        }
    }

    /// Sets the tenant claim value for this client's tokens.
    pub fn with_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// Sets the `sub` of this client's tokens.
    pub fn with_subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Lets this client, as the resource server for `serves`, exchange access tokens addressed
    /// to `serves` for tokens addressed to any of `targets` (RFC 8693).
    pub fn with_token_exchange(
        mut self,
        serves: impl Into<String>,
        targets: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.serves = Some(serves.into());
        self.may_exchange_for = targets.into_iter().map(Into::into).collect();
        self
    }

    /// Whether this client has an exchange policy at all.
    pub fn may_exchange(&self) -> bool {
        !self.may_exchange_for.is_empty()
    }
}

/// A demo user of the login page. There is no password: a development issuer that anyone on
/// the machine can reach only pretends to authenticate, and saying so is more honest than a
/// password everybody knows.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevUser {
    /// The login name shown on the page; also the `sub` unless [`subject`](DevUser::subject)
    /// is set. Unique among users.
    pub name: String,
    /// The `sub` of this user's tokens. Default (`None`): the name.
    #[serde(default)]
    pub subject: Option<String>,
    /// Tenant put into the tenant claim of this user's tokens; no claim when `None`.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Scopes this user may grant to a client; a request is granted its intersection with
    /// these (`openid` is always grantable and need not be listed).
    #[serde(default)]
    pub allowed_scopes: Vec<String>,
}

impl DevUser {
    /// A user with the given login name and allowed scopes, no tenant, `sub` = name.
    pub fn new(
        name: impl Into<String>,
        allowed_scopes: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            name: name.into(),
            subject: None,
            tenant: None,
            allowed_scopes: allowed_scopes.into_iter().map(Into::into).collect(),
        }
    }

    /// Sets the tenant claim value for this user's tokens.
    pub fn with_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// Sets the `sub` of this user's tokens.
    pub fn with_subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// The `sub` of this user's tokens.
    pub fn sub(&self) -> &str {
        self.subject.as_deref().unwrap_or(&self.name)
    }
}

/// A resource server allowed to introspect tokens (RFC 7662 §2.1 requires the caller to be
/// authorized).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevResourceServer {
    /// Its client id at this issuer.
    pub id: String,
    /// Its secret.
    pub secret: ClientSecret,
    /// The resource URI it serves. When set, tokens whose `aud` is another resource are reported
    /// `active: false` to it (RFC 7662 §4: the AS determines whether the token may be used at
    /// the calling resource server). `None`: it may introspect every token of this issuer.
    #[serde(default)]
    pub resource: Option<String>,
}

impl DevResourceServer {
    /// A resource server restricted to tokens for `resource`.
    pub fn new(
        id: impl Into<String>,
        secret: impl Into<String>,
        resource: Option<impl Into<String>>,
    ) -> Self {
        Self {
            id: id.into(),
            secret: ClientSecret::new(secret),
            resource: resource.map(Into::into),
        }
    }
}

/// A client secret. `Debug` is redacted so configurations can be logged.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret text (for sending it, e.g. in a demo client). Greppable on purpose.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(<redacted>)")
    }
}

/// JWS algorithm of issued tokens (RFC 7518 §3.1).
pub use gatehouse::jws::SigningAlg;
