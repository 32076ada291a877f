//! Optional binding of rmcp sessions (stateful mode, protocol revisions before 2026-07-28) to the
//! principal that created them.
//!
//! Why: possession of a session id is not authentication (SBP25 §Session Hijacking, C11;
//! SBP26 §State Handle Hijacking, D4). Every request is authenticated anyway (A25), but without a
//! binding a valid token of principal B could drive a session that principal A created.
//!
//! Rules:
//! - The binding is recorded from the response that carries a new `Mcp-Session-Id`, keyed by the
//!   principal key of the request that created it: issuer, subject, client id
//!   ([`Caller::principal_key`]). A refreshed token of the same principal keeps the session
//!   (unlike bindings to token hashes, toolhive#5306).
//! - A request carrying a session id that is bound to another principal, **or not bound at all**,
//!   gets the same `404` as an unknown session (C9). Unbound includes bindings evicted for size or
//!   idleness: the session is then unusable and the client starts a new one — fail closed.
//! - `DELETE` with a session id removes the binding.
//! - Bounded (moka) with an idle timeout. Bindings live in this process only: with several
//!   replicas, route a session to the replica that created it (rmcp's sessions are local too).
//! - It applies to every request that carries `Mcp-Session-Id`, whatever protocol version it
//!   declares: a 2026-07-28 client sends no session id, and ignoring the header there would let a
//!   crafted `initialize` reach a foreign session.

use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;

use crate::caller::Caller;

/// Tuning of the session binding.
#[derive(Debug, Clone)]
pub struct SessionBindingConfig {
    /// Maximum number of bound sessions (default 100 000).
    pub max_sessions: u64,
    /// A binding not used for this long is dropped (default 1 hour). Keep it at least as long as
    /// rmcp's session keep-alive.
    pub idle_timeout: Duration,
}

impl Default for SessionBindingConfig {
    fn default() -> Self {
        Self {
            max_sessions: 100_000,
            idle_timeout: Duration::from_secs(3600),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Owner {
    issuer: Arc<str>,
    subject: Option<String>,
    client_id: Option<String>,
}

impl Owner {
    fn of(caller: &Caller) -> Self {
        let (issuer, subject, client_id) = caller.principal_key();
        Self {
            issuer,
            subject,
            client_id,
        }
    }

    /// Compares without allocating.
    fn is(&self, caller: &Caller) -> bool {
        *self.issuer == *caller.issuer
            && self.subject == caller.subject
            && self.client_id == caller.client_id
    }
}

/// Session id → owner.
#[derive(Clone)]
pub struct SessionBindings {
    cache: Cache<Box<str>, Arc<Owner>>,
}

impl std::fmt::Debug for SessionBindings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionBindings")
            .field("entries", &self.cache.entry_count())
            .finish()
    }
}

impl SessionBindings {
    /// An empty binding table.
    pub fn new(config: &SessionBindingConfig) -> Self {
        let cache = Cache::builder()
            .max_capacity(config.max_sessions)
            .time_to_idle(config.idle_timeout)
            .build();
        Self { cache }
    }

    /// True when `session_id` is bound to `caller`'s principal.
    pub fn is_owned_by(&self, session_id: &str, caller: &Caller) -> bool {
        self.cache
            .get(session_id)
            .is_some_and(|owner| owner.is(caller))
    }

    /// Binds a newly created session to `caller`. An existing binding is never replaced.
    pub fn bind(&self, session_id: &str, caller: &Caller) {
        let entry = self
            .cache
            .entry(Box::from(session_id))
            .or_insert_with(|| Arc::new(Owner::of(caller)));
        if !entry.is_fresh() && !entry.value().is(caller) {
            // rmcp minted an id that is already bound: never hand it to someone else.
            tracing::warn!("session id collision with a binding of another principal; kept");
        }
    }

    /// Removes a binding (on `DELETE`).
    pub fn unbind(&self, session_id: &str) {
        self.cache.invalidate(session_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caller::Principal;

    fn caller(iss: &str, sub: &str, client: &str, scopes: &str) -> Caller {
        Caller::new(Principal {
            issuer: iss.into(),
            subject: Some(sub.into()),
            client_id: Some(client.into()),
            ..Principal::for_test(scopes)
        })
    }

    // C11, D4: a session is usable only by the principal that created it, across token refresh.
    #[test]
    fn bound_sessions_follow_the_principal() {
        let b = SessionBindings::new(&SessionBindingConfig::default());
        let alice = caller("https://as", "alice", "app", "a");
        let alice_refreshed = caller("https://as", "alice", "app", "a b");
        let bob = caller("https://as", "bob", "app", "a");
        let alice_other_issuer = caller("https://other", "alice", "app", "a");
        let alice_other_client = caller("https://as", "alice", "evil-app", "a");
        b.bind("s1", &alice);
        assert!(b.is_owned_by("s1", &alice));
        assert!(b.is_owned_by("s1", &alice_refreshed));
        assert!(!b.is_owned_by("s1", &bob));
        assert!(!b.is_owned_by("s1", &alice_other_issuer));
        assert!(!b.is_owned_by("s1", &alice_other_client));
        assert!(!b.is_owned_by("unknown", &alice));
        // A second bind never steals the session.
        b.bind("s1", &bob);
        assert!(!b.is_owned_by("s1", &bob));
        b.unbind("s1");
        assert!(!b.is_owned_by("s1", &alice));
    }
}
