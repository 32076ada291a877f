//! The `assertion` identity mode: for each user, the gateway signs a short-lived JWT for one
//! Streamable HTTP upstream — `iss` the gateway, `aud` the upstream, `sub`, `client_id`,
//! `tenant` and `scope` from the verified caller — and sends it as the upstream's bearer token.
//! The upstream verifies it like any access token (RFC 9068 `at+jwt`) with the keys the gateway
//! publishes at [`JWKS_PATH`]. The client's own token never leaves the gateway.
//!
//! An assertion lives at most `lifetime` and never past the client's token; the upstream
//! session that carries it is replaced shortly before it expires.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gatehouse::Caller;
use gatehouse::jws::{SigningAlg, SigningKey};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Where the gateway publishes the public keys of its assertions.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// `[proxy.assertion]`: identity to a Streamable HTTP upstream as a JWT the gateway signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssertionSettings {
    /// The upstream's audience (its resource URL). Default: the upstream's `url`.
    #[serde(default)]
    pub audience: Option<String>,
    /// Longest life of one assertion, in seconds, 30–3600. Default 300.
    #[serde(default = "default_lifetime")]
    pub lifetime_seconds: u64,
    /// The signing key (PKCS#8 PEM, ES256). Default: a key generated at start, shared by every
    /// `[[proxy]]` without a file — enough for one gateway process; replicas behind a load
    /// balancer need the same file so that each publishes the others' keys.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

fn default_lifetime() -> u64 {
    300
}

impl Default for AssertionSettings {
    fn default() -> Self {
        Self {
            audience: None,
            lifetime_seconds: default_lifetime(),
            key_file: None,
        }
    }
}

/// Signs assertions for one upstream.
#[derive(Clone)]
pub struct Asserter {
    key: Arc<SigningKey>,
    issuer: String,
    audience: String,
    lifetime: Duration,
}

impl std::fmt::Debug for Asserter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Asserter")
            .field("kid", &self.key.kid())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

impl PartialEq for Asserter {
    fn eq(&self, other: &Self) -> bool {
        self.key.kid() == other.key.kid()
            && self.issuer == other.issuer
            && self.audience == other.audience
            && self.lifetime == other.lifetime
    }
}

impl Eq for Asserter {}

impl Asserter {
    /// Assertions signed with `key`, issued by `issuer` (the gateway's base URL) for
    /// `audience`, each living at most `lifetime`.
    pub fn new(
        key: Arc<SigningKey>,
        issuer: impl Into<String>,
        audience: impl Into<String>,
        lifetime: Duration,
    ) -> Self {
        Self {
            key,
            issuer: issuer.into(),
            audience: audience.into(),
            lifetime,
        }
    }

    /// The key's public JWK.
    pub fn public_jwk(&self) -> &Value {
        self.key.public_jwk()
    }

    /// An assertion for `caller` and when it expires.
    pub fn issue(&self, caller: &Caller) -> (String, SystemTime) {
        let now = SystemTime::now();
        let expires = (now + self.lifetime).min(caller.expires_at);
        let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut claims = json!({
            "iss": self.issuer,
            "aud": self.audience,
            "sub": caller.subject.as_ref().or(caller.client_id.as_ref()),
            "client_id": caller.client_id,
            "scope": caller.scopes.to_space_separated(),
            "iat": secs(now),
            "exp": secs(expires),
            "jti": gatehouse::jws::random_id(),
        });
        if let Some(tenant) = &caller.tenant {
            claims["tenant"] = json!(tenant);
        }
        // RFC 9068 §2.1: an access token for the upstream, so any resource server accepts it.
        (self.key.sign_jwt("at+jwt", &claims), expires)
    }
}

/// The keys of every asserter, deduplicated, as a JWKS document.
pub fn jwks<'a>(asserters: impl IntoIterator<Item = &'a Asserter>) -> Value {
    let mut keys: Vec<Value> = Vec::new();
    for a in asserters {
        let jwk = a.public_jwk();
        if !keys.iter().any(|k| k["kid"] == jwk["kid"]) {
            keys.push(jwk.clone());
        }
    }
    json!({ "keys": keys })
}

/// Loads the key of `settings` (ES256 PEM) or returns `generated`, made on first use.
pub fn key_for(
    settings: &AssertionSettings,
    generated: &mut Option<Arc<SigningKey>>,
) -> Result<Arc<SigningKey>, gatehouse::jws::KeyError> {
    match &settings.key_file {
        Some(path) => Ok(Arc::new(SigningKey::from_pem_file(
            SigningAlg::ES256,
            path,
        )?)),
        None => match generated {
            Some(k) => Ok(k.clone()),
            None => {
                let k = Arc::new(SigningKey::generate(SigningAlg::ES256)?);
                *generated = Some(k.clone());
                Ok(k)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse::{Principal, ScopeSet, TokenKind};

    fn caller(expires_in: Duration) -> Caller {
        Caller::new(Principal {
            issuer: "https://auth.example.com".into(),
            subject: Some("alice".into()),
            client_id: Some("app".into()),
            scopes: ScopeSet::from_space_separated("crm:read crm:write"),
            audiences: vec!["https://gw.example.com/crm/mcp".into()],
            tenant: Some("acme".into()),
            expires_at: SystemTime::now() + expires_in,
            kind: TokenKind::Jwt,
            claims: Default::default(),
        })
    }

    fn claims(jwt: &str) -> Value {
        use base64::Engine;
        let part = jwt.split('.').nth(1).unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part)
                .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn an_assertion_names_the_user_for_the_upstream_only_and_expires_with_the_token() {
        let key = Arc::new(SigningKey::generate(SigningAlg::ES256).unwrap());
        let a = Asserter::new(
            key.clone(),
            "https://gw.example.com",
            "https://crm.internal/mcp",
            Duration::from_secs(300),
        );
        let (jwt, _) = a.issue(&caller(Duration::from_secs(3600)));
        let c = claims(&jwt);
        assert_eq!(c["iss"], "https://gw.example.com");
        assert_eq!(c["aud"], "https://crm.internal/mcp");
        assert_eq!(
            (&c["sub"], &c["client_id"], &c["tenant"]),
            (&json!("alice"), &json!("app"), &json!("acme"))
        );
        assert_eq!(c["scope"], "crm:read crm:write");
        assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 300);
        // Signed with the published key.
        let (input, sig) = jwt.rsplit_once('.').unwrap();
        use base64::Engine;
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sig)
            .unwrap();
        assert!(key.verify(input.as_bytes(), &sig));
        // Never past the client's own token.
        let (jwt, expires) = a.issue(&caller(Duration::from_secs(20)));
        let c = claims(&jwt);
        assert!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap() <= 20);
        assert!(expires <= SystemTime::now() + Duration::from_secs(20));
        // Two assertions are two tokens.
        assert_ne!(a.issue(&caller(Duration::from_secs(60))).0, jwt);
    }

    #[test]
    fn the_jwks_lists_each_key_once_and_no_private_part() {
        let k = Arc::new(SigningKey::generate(SigningAlg::ES256).unwrap());
        let a = Asserter::new(k.clone(), "i", "a", Duration::from_secs(60));
        let b = Asserter::new(k, "i", "b", Duration::from_secs(60));
        let doc = jwks([&a, &b]);
        assert_eq!(doc["keys"].as_array().unwrap().len(), 1);
        assert!(doc["keys"][0].get("d").is_none());
    }
}
