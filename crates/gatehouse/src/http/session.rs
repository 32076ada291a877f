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
//!   [`SessionBindingConfig::id_prefix`] names the replica in every session id it mints, so a
//!   load balancer can route by the `Mcp-Session-Id` header alone ([`RoutedSessionManager`],
//!   `deploy/nginx.conf`); a session whose replica is gone gets `404` from the balancer or from
//!   the replica that took over, and the client starts a new one (C9).
//! - It applies to every request that carries `Mcp-Session-Id`, whatever protocol version it
//!   declares: a 2026-07-28 client sends no session id, and ignoring the header there would let a
//!   crafted `initialize` reach a foreign session.

use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use moka::sync::Cache;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::WorkerTransport;
use rmcp::transport::common::server_side_http::{ServerSseMessage, SessionId, session_id};
use rmcp::transport::streamable_http_server::session::SessionManager;
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError, LocalSessionWorker, create_local_session,
};

use crate::caller::Caller;

/// Tuning of the session binding.
#[derive(Debug, Clone)]
pub struct SessionBindingConfig {
    /// Maximum number of bound sessions (default 100 000).
    pub max_sessions: u64,
    /// A binding not used for this long is dropped (default 1 hour). Keep it at least as long as
    /// rmcp's session keep-alive.
    pub idle_timeout: Duration,
    /// Names this replica in the session ids it mints: `<prefix>.<random>` instead of
    /// `<random>`, so that a load balancer routes each session to the replica that holds it by
    /// the `Mcp-Session-Id` header alone. 1–32 characters of `A-Z a-z 0-9 _ -`. Default: none.
    pub id_prefix: Option<String>,
}

impl SessionBindingConfig {
    /// True when `prefix` may start a session id: 1–32 of `A-Z a-z 0-9 _ -` (visible ASCII, as
    /// the transport requires of session ids, and no `.`, which ends the prefix).
    pub fn is_valid_id_prefix(prefix: &str) -> bool {
        (1..=32).contains(&prefix.len())
            && prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    }
}

impl Default for SessionBindingConfig {
    fn default() -> Self {
        Self {
            max_sessions: 100_000,
            idle_timeout: Duration::from_secs(3600),
            id_prefix: None,
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

/// rmcp's in-process session manager, minting ids that name this replica
/// ([`SessionBindingConfig::id_prefix`]); everything else is rmcp's own.
#[derive(Debug, Default)]
pub struct RoutedSessionManager {
    inner: LocalSessionManager,
    prefix: Option<Arc<str>>,
}

impl RoutedSessionManager {
    /// Session ids `<prefix>.<random>`, or rmcp's plain random ids without a prefix. The random
    /// part is rmcp's (a v4 UUID): possession of an id is never what authorizes (see above).
    pub fn new(prefix: Option<Arc<str>>) -> Self {
        Self {
            inner: LocalSessionManager::default(),
            prefix,
        }
    }

    fn mint(&self) -> SessionId {
        match &self.prefix {
            Some(prefix) => format!("{prefix}.{}", session_id()).into(),
            None => session_id(),
        }
    }
}

impl SessionManager for RoutedSessionManager {
    type Error = LocalSessionManagerError;
    type Transport = WorkerTransport<LocalSessionWorker>;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let id = self.mint();
        let (handle, worker) = create_local_session(id.clone(), self.inner.session_config.clone());
        self.inner.sessions.write().await.insert(id.clone(), handle);
        Ok((id, WorkerTransport::spawn(worker)))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        self.inner.initialize_session(id, message).await
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        self.inner.has_session(id).await
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        self.inner.close_session(id).await
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.create_stream(id, message).await
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        self.inner.accept_message(id, message).await
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.create_standalone_stream(id).await
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.resume(id, last_event_id).await
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

    #[test]
    fn id_prefixes_are_short_visible_and_dot_free() {
        for good in ["a", "replica-1", "R_2", &"x".repeat(32)] {
            assert!(SessionBindingConfig::is_valid_id_prefix(good), "{good}");
        }
        for bad in ["", "a.b", "a b", "é", "a/b", &"x".repeat(33)] {
            assert!(!SessionBindingConfig::is_valid_id_prefix(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn minted_ids_name_the_replica_and_stay_unique() {
        use rmcp::transport::streamable_http_server::session::SessionManager as _;
        let routed = RoutedSessionManager::new(Some("b".into()));
        let (first, _t1) = routed.create_session().await.unwrap();
        let (second, _t2) = routed.create_session().await.unwrap();
        assert!(
            first.starts_with("b.") && second.starts_with("b."),
            "{first}"
        );
        assert_ne!(first, second);
        assert!(routed.has_session(&first).await.unwrap());
        assert!(!routed.has_session(&first[2..].into()).await.unwrap());
        let (plain, _t3) = RoutedSessionManager::new(None)
            .create_session()
            .await
            .unwrap();
        assert!(!plain.contains('.'), "{plain}");
    }
}
