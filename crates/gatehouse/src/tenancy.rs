//! Which tenant a caller acts for, and the hook that lets an application enrich the [`Caller`]
//! once, right after authentication.
//!
//! Scopes say *what* a caller may do; the tenant says *to which rows* ("the middleware guards the
//! door, it does not partition the room"). The tenant is derived once per verified token — not
//! once per tool, rate limiter and audit record — by the [`Tenancy`] rules: the configured tenant
//! claim when the token carries one (validated as a [`TenantId`]; a malformed claim gives no
//! tenant, never a fallback), else a configured client → tenant map for client-credentials tokens
//! that carry no tenant claim. The result is stored on the [`Caller`] (`caller.tenant`), where
//! rate limits, the audit trail and tools all read the same value ([`Caller::tenant_id`]).
//!
//! Applications that derive more (a tenant from a directory lookup, an organisation from a
//! custom claim) implement [`CallerEnricher`]; it runs after [`Tenancy`], once per token (the
//! result is what the verified-token cache keeps).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::caller::{Caller, Principal};

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
        if is_valid_tenant(s) {
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

fn is_valid_tenant(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_TENANT_LEN
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
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

/// Derives what an application needs from a verified caller, once per token.
///
/// Runs after the built-in [`Tenancy`] rules and before the result is cached, rate-limited,
/// authorized and handed to tools. Must be cheap and must not block: it runs on the request
/// path of every cache miss.
pub trait CallerEnricher: Send + Sync + 'static {
    /// Returns the caller to use from now on (change fields with [`Caller::map`]).
    fn enrich(&self, caller: Caller) -> Caller;
}

/// The tenant rules: a claim (extracted by the verifiers from the configured `tenant_claim`),
/// else a client → tenant map. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Tenancy {
    by_client: Arc<HashMap<String, TenantId>>,
}

impl Tenancy {
    /// Rules that use only the tenant claim.
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

    /// Rules from a whole client → tenant map (for configuration).
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
    pub fn resolve(&self, caller: &Principal) -> Option<TenantId> {
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

impl CallerEnricher for Tenancy {
    fn enrich(&self, caller: Caller) -> Caller {
        let tenant = self.resolve(&caller);
        if tenant.as_ref().map(TenantId::as_str) == caller.tenant.as_deref() {
            return caller;
        }
        caller.map(|p| p.tenant = tenant.map(|t| t.as_str().to_owned()))
    }
}

/// The enrichers of one server, in order: [`Tenancy`] first, then the application's.
#[derive(Clone)]
pub(crate) struct Enrichers(Arc<[Arc<dyn CallerEnricher>]>);

impl Enrichers {
    pub(crate) fn new(list: Vec<Arc<dyn CallerEnricher>>) -> Self {
        Self(list.into())
    }
}

impl CallerEnricher for Enrichers {
    fn enrich(&self, caller: Caller) -> Caller {
        self.0.iter().fold(caller, |c, e| e.enrich(c))
    }
}

impl Caller {
    /// The tenant this caller acts for, as resolved after authentication ([`Tenancy`]).
    pub fn tenant_id(&self) -> Option<TenantId> {
        // Validated when it was set; validating again costs a scan of a short string and keeps
        // a hand-built `Caller` (tests, custom verifiers) from smuggling in a bad one.
        self.tenant.as_deref().and_then(|t| TenantId::new(t).ok())
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::caller::{ScopeSet, TokenKind};

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
        let r = Tenancy::from_client_map([("bot", "globex")]).unwrap();
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
            // The enricher stores exactly that on the caller.
            let enriched = r.enrich(caller(client, claim));
            assert_eq!(enriched.tenant.as_deref(), want, "{client:?} {claim:?}");
            assert_eq!(enriched.tenant_id().as_ref().map(TenantId::as_str), want);
        }
    }

    #[test]
    fn client_map_rejects_invalid_tenants() {
        assert!(Tenancy::new().with_client("bot", "has space").is_err());
    }

    #[test]
    fn enrichers_run_in_order() {
        struct Suffix(&'static str);
        impl CallerEnricher for Suffix {
            fn enrich(&self, caller: Caller) -> Caller {
                let s = format!("{}{}", caller.tenant.as_deref().unwrap_or(""), self.0);
                caller.map(|p| p.tenant = Some(s))
            }
        }
        let e = Enrichers::new(vec![Arc::new(Suffix("-a")), Arc::new(Suffix("-b"))]);
        assert_eq!(
            e.enrich(caller(None, Some("t"))).tenant.as_deref(),
            Some("t-a-b")
        );
    }
}
