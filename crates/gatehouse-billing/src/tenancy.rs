//! Which tenant a caller acts for.
//!
//! Scopes say *what* a caller may do; the tenant says *to which rows* (the tutorial's "the
//! middleware guards the door, it does not partition the room"). Every [`crate::Store`] query
//! that touches invoices takes a [`TenantId`], and the only way a tool obtains one is
//! [`TenantResolver::resolve`] on the verified [`Caller`]. A caller without a tenant gets a tool
//! error and no data.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use gatehouse::Caller;

/// Longest accepted tenant identifier, in bytes. Tenants are identifiers, not prose; a bound keeps
/// them out of trouble in logs and indexes.
pub const MAX_TENANT_LEN: usize = 128;

/// A validated tenant identifier: 1..=128 bytes, no whitespace or control characters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(Arc<str>);

/// A string that is not an acceptable tenant identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid tenant id: 1 to {MAX_TENANT_LEN} bytes without whitespace or control characters")]
pub struct InvalidTenant;

impl TenantId {
    /// Validates a tenant identifier.
    pub fn new(s: &str) -> Result<Self, InvalidTenant> {
        let ok = !s.is_empty()
            && s.len() <= MAX_TENANT_LEN
            && !s.chars().any(|c| c.is_whitespace() || c.is_control());
        if ok {
            Ok(Self(Arc::from(s)))
        } else {
            Err(InvalidTenant)
        }
    }

    /// The identifier text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Resolves the tenant of a caller: the tenant claim the verifier extracted
/// ([`gatehouse::Principal::tenant`]) when present, else a configured client → tenant map (for
/// client-credentials tokens that carry no tenant claim). Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct TenantResolver {
    by_client: Arc<HashMap<String, TenantId>>,
}

impl TenantResolver {
    /// A resolver that uses only the tenant claim.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a client → tenant mapping used when the token carries no tenant claim.
    pub fn with_client(
        mut self,
        client_id: impl Into<String>,
        tenant: &str,
    ) -> Result<Self, InvalidTenant> {
        let tenant = TenantId::new(tenant)?;
        Arc::make_mut(&mut self.by_client).insert(client_id.into(), tenant);
        Ok(self)
    }

    /// Builds a resolver from a whole client → tenant map (for configuration).
    pub fn from_client_map<I, K, V>(map: I) -> Result<Self, InvalidTenant>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: AsRef<str>,
    {
        map.into_iter()
            .try_fold(Self::new(), |r, (k, v)| r.with_client(k, v.as_ref()))
    }

    /// The tenant `caller` acts for, or `None` when it has none.
    ///
    /// A tenant claim that is present but malformed yields `None` (logged), never a fallback to
    /// the client map: a token that names a tenant must not silently act for another one.
    pub fn resolve(&self, caller: &Caller) -> Option<TenantId> {
        if let Some(claim) = caller.tenant.as_deref() {
            return match TenantId::new(claim) {
                Ok(t) => Some(t),
                Err(_) => {
                    tracing::warn!(
                        subject = caller.subject.as_deref(),
                        client_id = caller.client_id.as_deref(),
                        "ignoring malformed tenant claim"
                    );
                    None
                }
            };
        }
        caller
            .client_id
            .as_deref()
            .and_then(|c| self.by_client.get(c))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use gatehouse::{Principal, ScopeSet, TokenKind};

    use super::*;

    fn caller(client: Option<&str>, tenant: Option<&str>) -> Caller {
        Caller::new(Principal {
            issuer: "https://as.example".into(),
            subject: Some("alice".into()),
            client_id: client.map(str::to_owned),
            scopes: ScopeSet::new(),
            audiences: vec![],
            tenant: tenant.map(str::to_owned),
            expires_at: SystemTime::now(),
            kind: TokenKind::Jwt,
            claims: Default::default(),
        })
    }

    #[test]
    fn tenant_ids_are_validated() {
        for bad in [
            "",
            " ",
            "a b",
            "a\nb",
            "a\u{0}b",
            &"x".repeat(MAX_TENANT_LEN + 1),
        ] {
            assert_eq!(TenantId::new(bad), Err(InvalidTenant), "{bad:?}");
        }
        assert_eq!(TenantId::new("acme").unwrap().as_str(), "acme");
    }

    #[test]
    fn claim_wins_then_client_map_then_nothing() {
        let r = TenantResolver::from_client_map([("bot", "globex")]).unwrap();
        let cases = [
            (Some("bot"), Some("acme"), Some("acme")), // the claim wins over the map
            (Some("bot"), None, Some("globex")),       // map for claimless tokens
            (Some("other"), None, None),               // unknown client: no tenant
            (None, None, None),                        // nothing at all
            (Some("bot"), Some(""), None),             // malformed claim never falls back
            (Some("bot"), Some("a b"), None),
        ];
        for (client, claim, want) in cases {
            let got = r.resolve(&caller(client, claim));
            assert_eq!(
                got.as_ref().map(TenantId::as_str),
                want,
                "{client:?} {claim:?}"
            );
        }
    }

    #[test]
    fn client_map_rejects_invalid_tenants() {
        assert!(
            TenantResolver::new()
                .with_client("bot", "has space")
                .is_err()
        );
    }
}
