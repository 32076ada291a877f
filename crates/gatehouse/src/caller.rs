//! The verified identity of a request, and the small value types it is made of.
//!
//! A [`Caller`] exists only after a token has been verified: verifiers build it, the HTTP edge puts
//! it into the request extensions, and tools receive it through the rmcp extractor in
//! [`crate::mcp`]. Nothing downstream of authentication parses headers or raw claims.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

/// A bearer access token as presented by a client.
///
/// Invariant: the token text never reaches a log line, an error message or a `Debug` dump. There is
/// deliberately no `Display` and `Debug` prints a fixed placeholder; the only way to the text is
/// [`AccessToken::expose`], which is greppable.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AccessToken(Box<str>);

impl AccessToken {
    /// Wraps a token string.
    pub fn new(token: impl Into<Box<str>>) -> Self {
        Self(token.into())
    }

    /// The raw token text, for the verifier (signature check, introspection request) only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length in bytes, so that size caps can be checked and logged without exposing the text.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when the token is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

/// One OAuth scope token (RFC 6749 §3.3: `%x21 / %x23-5B / %x5D-7E`, no spaces, quotes or
/// backslashes), so it can always be placed inside a quoted `WWW-Authenticate` parameter.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope(Arc<str>);

/// A scope string that is not a valid RFC 6749 §3.3 scope token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid scope {0:?}: a scope is one or more of the characters %x21 / %x23-5B / %x5D-7E")]
pub struct InvalidScope(pub String);

impl Scope {
    /// Parses one scope token, rejecting characters RFC 6749 §3.3 forbids.
    pub fn new(s: &str) -> Result<Self, InvalidScope> {
        let ok = !s.is_empty()
            && s.bytes()
                .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
        if ok {
            Ok(Self(Arc::from(s)))
        } else {
            Err(InvalidScope(s.to_owned()))
        }
    }

    /// The scope text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An ordered, de-duplicated set of scopes. Ordered so that challenges and metadata render the
/// same bytes every time (snapshot-testable, cache-friendly).
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct ScopeSet(BTreeSet<Scope>);

impl ScopeSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses a space-separated `scope` value (RFC 6749 §3.3). Tokens that are not valid scopes
    /// are dropped rather than failing the whole token: a provider that emits an odd scope must not
    /// lock its users out of the scopes that are well-formed.
    pub fn from_space_separated(s: &str) -> Self {
        Self(s.split(' ').filter_map(|t| Scope::new(t).ok()).collect())
    }

    /// Builds a set from strings, failing on the first invalid scope (for configuration).
    pub fn parse<I, S>(items: I) -> Result<Self, InvalidScope>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        items
            .into_iter()
            .map(|s| Scope::new(s.as_ref()))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// True when `scope` is in the set (exact match, no hierarchy; see [`crate::policy`]).
    pub fn contains(&self, scope: &Scope) -> bool {
        self.0.contains(scope)
    }

    /// True when the set holds a scope with this text.
    pub fn contains_str(&self, scope: &str) -> bool {
        self.0.iter().any(|s| s.as_str() == scope)
    }

    /// Adds a scope.
    pub fn insert(&mut self, scope: Scope) -> bool {
        self.0.insert(scope)
    }

    /// Iterates in order.
    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }

    /// Number of scopes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The set as a space-separated string, the wire form of `scope`.
    pub fn to_space_separated(&self) -> String {
        let mut out = String::new();
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(s.as_str());
        }
        out
    }

    /// The union of two sets.
    pub fn union(&self, other: &ScopeSet) -> ScopeSet {
        Self(self.0.union(&other.0).cloned().collect())
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<T: IntoIterator<Item = Scope>>(iter: T) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl fmt::Debug for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.iter()).finish()
    }
}

/// How the caller's token was verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A JWT access token verified locally against the issuer's keys.
    Jwt,
    /// An opaque token checked by RFC 7662 introspection.
    Introspected,
}

/// The verified identity behind a request. Cheap to clone (one `Arc`).
///
/// Tools take it as an argument (see [`crate::mcp`]); fields are read through `Deref` to
/// [`Principal`].
#[derive(Clone)]
pub struct Caller(Arc<Principal>);

/// The data of a [`Caller`].
#[derive(Clone)]
pub struct Principal {
    /// The issuer that vouched for the token (`iss`, exact as configured).
    pub issuer: Arc<str>,
    /// The subject (`sub`), when the token names one.
    pub subject: Option<String>,
    /// The OAuth client the token was issued to (`client_id`, else `azp`).
    pub client_id: Option<String>,
    /// Granted scopes (`scope`, or `scp` as string or array).
    pub scopes: ScopeSet,
    /// Every audience the token names (`aud` string or array).
    pub audiences: Vec<String>,
    /// The tenant, from the configured claim (or a client→tenant map applied later).
    pub tenant: Option<String>,
    /// When the token stops being valid (`exp`).
    pub expires_at: SystemTime,
    /// How the token was verified.
    pub kind: TokenKind,
    /// Claims of the token (or of the introspection response) for application-specific
    /// decisions: once verified, only `act`, `cnf` and those named by
    /// [`GatehouseBuilder::keep_claims`](crate::GatehouseBuilder::keep_claims) (`[auth.cache]
    /// keep_claims`) remain, so cached entries stay small. Never contains the token itself.
    pub claims: Map<String, Value>,
}

impl Caller {
    /// Wraps a verified principal. Only verifiers (and tests) should call this.
    pub fn new(principal: Principal) -> Self {
        Self(Arc::new(principal))
    }

    /// The thumbprint of the key the token is bound to (`cnf.jkt`, RFC 9449 §6), if any.
    pub fn dpop_jkt(&self) -> Option<&str> {
        self.0.claims.get("cnf")?.get("jkt")?.as_str()
    }

    /// The caller with `change` applied to its principal (for [`crate::tenancy::CallerEnricher`]s).
    /// Copies the principal only when it is shared.
    pub fn map(mut self, change: impl FnOnce(&mut Principal)) -> Self {
        change(Arc::make_mut(&mut self.0));
        self
    }

    /// Who acts on the subject's behalf in a delegated token: RFC 8693 §4.1 `act.sub` (the
    /// outermost, current actor). `None` for a token the subject uses itself.
    pub fn actor(&self) -> Option<&str> {
        self.claims.get("act")?.get("sub")?.as_str()
    }

    /// Seconds until expiry, zero when already expired.
    pub fn remaining(&self, now: SystemTime) -> Duration {
        self.expires_at
            .duration_since(now)
            .unwrap_or(Duration::ZERO)
    }

    /// `exp` as Unix seconds.
    pub fn expires_at_unix(&self) -> u64 {
        self.expires_at
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    /// Checks, inside a tool, that the token grants every scope in `required` (exact names; the
    /// route-level policy is where hierarchies apply). Defence in depth: the edge has already
    /// checked the tool's scopes before the tool runs.
    pub fn require_scopes(&self, required: &[&str]) -> Result<(), MissingScopes> {
        let missing: Vec<String> = required
            .iter()
            .filter(|r| !self.scopes.contains_str(r))
            .map(|r| (*r).to_owned())
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(MissingScopes(missing))
        }
    }

    /// The principal key used to bind sessions: issuer, subject and client id. Two tokens of the
    /// same principal (for example before and after a refresh) have the same key.
    pub fn principal_key(&self) -> (Arc<str>, Option<String>, Option<String>) {
        (
            self.issuer.clone(),
            self.subject.clone(),
            self.client_id.clone(),
        )
    }
}

/// Scopes a tool needed that the caller's token does not grant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("missing scopes: {}", .0.join(" "))]
pub struct MissingScopes(pub Vec<String>);

impl Deref for Caller {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.0
    }
}

#[cfg(test)]
impl Principal {
    /// A JWT principal for unit tests: issuer `https://as.example`, subject `u`, client `c`, the
    /// space-separated `scopes`, no audience, tenant or claims, expiring now. Change fields with
    /// struct update syntax.
    pub(crate) fn for_test(scopes: &str) -> Self {
        Self {
            issuer: "https://as.example".into(),
            subject: Some("u".into()),
            client_id: Some("c".into()),
            scopes: ScopeSet::from_space_separated(scopes),
            audiences: vec![],
            tenant: None,
            expires_at: SystemTime::now(),
            kind: TokenKind::Jwt,
            claims: Map::new(),
        }
    }
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Claims are left out on purpose: they can be large and may carry personal data.
        f.debug_struct("Caller")
            .field("issuer", &self.issuer)
            .field("subject", &self.subject)
            .field("client_id", &self.client_id)
            .field("tenant", &self.tenant)
            .field("scopes", &self.scopes)
            .field("kind", &self.kind)
            .field("expires_at", &self.expires_at_unix())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_actor_is_the_outermost_act_sub() {
        let mut claims = Map::new();
        let p = |claims: Map<String, Value>| {
            Caller::new(Principal {
                issuer: "https://as".into(),
                subject: Some("alice".into()),
                client_id: None,
                scopes: ScopeSet::new(),
                audiences: vec![],
                tenant: None,
                expires_at: SystemTime::now(),
                kind: TokenKind::Jwt,
                claims,
            })
        };
        assert_eq!(p(claims.clone()).actor(), None);
        claims.insert(
            "act".into(),
            serde_json::json!({"sub": "billing", "act": {"sub": "older"}}),
        );
        assert_eq!(p(claims.clone()).actor(), Some("billing"));
        claims.insert("act".into(), serde_json::json!("not an object"));
        assert_eq!(p(claims).actor(), None);
    }

    #[test]
    fn access_token_debug_is_redacted() {
        let t = AccessToken::new("eyJsecret.payload.sig");
        assert_eq!(format!("{t:?}"), "AccessToken(<redacted>)");
        assert!(!format!("{:?}", Some(&t)).contains("secret"));
    }

    #[test]
    fn scope_rejects_characters_that_break_challenges() {
        for bad in ["", "a b", "a\"b", "a\\b", "é", "a\u{7f}"] {
            assert!(Scope::new(bad).is_err(), "{bad:?} must be rejected");
        }
        for good in ["invoices:read", "api://x/.default", "a!#[]~"] {
            assert!(Scope::new(good).is_ok(), "{good:?} must be accepted");
        }
    }

    #[test]
    fn scope_set_parses_sorts_and_dedups() {
        let s = ScopeSet::from_space_separated("b a  b bad\"one c");
        assert_eq!(s.to_space_separated(), "a b c");
        assert!(s.contains_str("a"));
        assert!(!s.contains_str("bad\"one"));
    }
}
