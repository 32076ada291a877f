//! Every token a run sends: legitimate ones (reused, new per request, opaque) and the
//! attacker's (tampered, expired, for another audience, under a key nobody published, inactive).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use gatehouse_testkit::{Alg, TestAuthServer, TestKey, TokenBuilder};
use serde_json::json;

/// Who a token speaks for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct User {
    sub: &'static str,
    client_id: &'static str,
    scope: &'static str,
    tenant: &'static str,
}

/// Reads invoices of tenant acme.
pub(crate) const READER_ACME: User = User {
    sub: "alice",
    client_id: "reader-app",
    scope: "invoices:read",
    tenant: "acme",
};
/// Reads invoices of tenant globex.
pub(crate) const READER_GLOBEX: User = User {
    sub: "gina",
    client_id: "reader-app",
    scope: "invoices:read",
    tenant: "globex",
};
/// Voids invoices of tenant acme.
pub(crate) const WRITER_ACME: User = User {
    sub: "walter",
    client_id: "writer-app",
    scope: "invoices:read invoices:write",
    tenant: "acme",
};

/// Tokens that live for the whole run (each verified once, then served from the cache).
#[derive(Debug)]
pub(crate) struct Reused {
    pub(crate) reader_acme: String,
    pub(crate) reader_globex: String,
    pub(crate) writer_acme: String,
}

/// The token factory of a run.
pub(crate) struct Tokens {
    auth: Arc<TestAuthServer>,
    /// The key the server holds; legitimate JWTs are signed with it.
    held: RwLock<TestKey>,
    /// A key the issuer published after the server's last good fetch (fault runs).
    fresh: RwLock<Option<TestKey>>,
    /// Never published: its tokens carry a `kid` the issuer does not know.
    forged: TestKey,
    reused: RwLock<Arc<Reused>>,
    /// An opaque token introspection answers `active` for, for the whole run.
    pub(crate) opaque_reused: String,
    counter: AtomicU64,
}

impl Tokens {
    pub(crate) fn new(auth: Arc<TestAuthServer>) -> Arc<Tokens> {
        let held = auth.current_key(Alg::ES256);
        let reused = reused_under(&auth, &held);
        let opaque_reused = "opaque-reused-reader".to_owned();
        auth.set_introspection(&opaque_reused, introspection(&auth, READER_ACME, 7200));
        Arc::new(Tokens {
            auth,
            held: RwLock::new(held),
            fresh: RwLock::new(None),
            forged: TestKey::generate(Alg::ES256),
            reused: RwLock::new(Arc::new(reused)),
            opaque_reused,
            counter: AtomicU64::new(0),
        })
    }

    pub(crate) fn auth(&self) -> &TestAuthServer {
        &self.auth
    }

    /// The reused tokens (shared: a request clones only the one it sends).
    pub(crate) fn reused(&self) -> Arc<Reused> {
        self.reused.read().expect("lock").clone()
    }

    /// A new token (never sent before) under the key the server holds.
    pub(crate) fn new_jwt(&self, user: User) -> String {
        let key = self.held.read().expect("lock").clone();
        builder(&self.auth, key, user, 600).sign()
    }

    /// A new token under the freshly published key; `None` when there is none.
    pub(crate) fn fresh_jwt(&self, user: User) -> Option<String> {
        let key = self.fresh.read().expect("lock").clone()?;
        Some(builder(&self.auth, key, user, 600).sign())
    }

    /// The issuer publishes a new key next to the old ones (the server has not fetched it).
    pub(crate) fn publish_fresh(&self) -> String {
        let key = TestKey::generate(Alg::ES256);
        let kid = key.kid().to_owned();
        self.auth.publish_key(key.clone());
        *self.fresh.write().expect("lock") = Some(key);
        kid
    }

    /// The end of a rotation: the issuer's JWKS keeps only the freshly published key.
    pub(crate) fn retire_all_but_fresh(&self) {
        if let Some(key) = self.fresh.read().expect("lock").clone() {
            self.auth.set_keys(vec![key]);
        }
    }

    /// The server now holds the fresh key: it becomes the signing key of every legitimate token
    /// (and the reused ones are re-minted under it).
    pub(crate) fn adopt_fresh(&self) {
        let Some(key) = self.fresh.write().expect("lock").take() else {
            return;
        };
        *self.reused.write().expect("lock") = Arc::new(reused_under(&self.auth, &key));
        *self.held.write().expect("lock") = key;
    }

    pub(crate) fn tampered(&self) -> String {
        let key = self.held.read().expect("lock").clone();
        builder(&self.auth, key, READER_ACME, 600).sign_with_bad_signature()
    }

    pub(crate) fn expired(&self) -> String {
        let key = self.held.read().expect("lock").clone();
        // Past the default 60 s leeway.
        builder(&self.auth, key, READER_ACME, -600).sign()
    }

    pub(crate) fn wrong_audience(&self) -> String {
        let key = self.held.read().expect("lock").clone();
        builder(&self.auth, key, READER_ACME, 600)
            .aud("http://127.0.0.1:1/another-server/mcp")
            .sign()
    }

    pub(crate) fn forged_kid(&self) -> String {
        builder(&self.auth, self.forged.clone(), READER_ACME, 600).sign()
    }

    /// A new opaque token that introspection answers `active` for until [`Self::forget`].
    pub(crate) fn new_opaque(&self) -> String {
        let t = self.unique("opaque");
        self.auth
            .set_introspection(&t, introspection(&self.auth, READER_GLOBEX, 600));
        t
    }

    /// An opaque token introspection answers `{"active": false}` for.
    pub(crate) fn inactive_opaque(&self) -> String {
        self.unique("inactive")
    }

    /// Drops an opaque token from the issuer's table (keeps it bounded over a long run).
    pub(crate) fn forget(&self, opaque: &str) {
        self.auth.revoke(opaque);
    }

    fn unique(&self, what: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!(
            "{what}-{}-{n}-{}",
            std::process::id(),
            gatehouse_testkit::now()
        )
    }
}

fn reused_under(auth: &TestAuthServer, key: &TestKey) -> Reused {
    // Longer than any run: a reused token must never expire mid-run.
    let mint = |u| builder(auth, key.clone(), u, 4 * 3600).sign();
    Reused {
        reader_acme: mint(READER_ACME),
        reader_globex: mint(READER_GLOBEX),
        writer_acme: mint(WRITER_ACME),
    }
}

fn builder(auth: &TestAuthServer, key: TestKey, user: User, ttl: i64) -> TokenBuilder {
    TokenBuilder::with_defaults(
        key,
        Vec::new(),
        auth.issuer(),
        &auth.audience(),
        user.client_id,
        user.sub,
        user.scope,
    )
    .claim("tenant", user.tenant)
    .expires_in(ttl)
}

fn introspection(auth: &TestAuthServer, user: User, ttl: i64) -> serde_json::Value {
    let now = gatehouse_testkit::now();
    json!({
        "active": true,
        "iss": auth.issuer(),
        "sub": user.sub,
        "aud": auth.audience(),
        "client_id": user.client_id,
        "scope": user.scope,
        "tenant": user.tenant,
        "iat": now,
        "exp": now + ttl,
        "token_type": "Bearer",
    })
}
