//! The verifier chain: one resource server, several trusted issuers, JWT and opaque tokens.
//!
//! Routing (peers.md gap 4):
//! - a token shaped like a compact JWS (three base64url segments, JSON header) goes to the
//!   [`JwtVerifier`] of its **unverified** `iss`. The payload is only used to pick the verifier;
//!   that verifier then checks `iss` again and uses only its own issuer's keys, so naming another
//!   issuer cannot borrow that issuer's keys (RFC 8725 §3.8). An `iss` nobody is configured for is
//!   `UnknownIssuer` (spec rows A23, A30);
//! - anything else — opaque strings, five-segment JWE such as Auth0's "no audience" tokens — goes
//!   to the introspection verifiers, tried in order. With none configured it is `Malformed`.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::caller::{AccessToken, Caller};
use crate::verify::introspection::{
    IntrospectionConfig, IntrospectionSetupError, IntrospectionVerifier,
};
use crate::verify::jwt::{
    DEFAULT_MAX_TOKEN_BYTES, JwtIssuerConfig, JwtSetupError, JwtVerifier, looks_like_jws, parse_jws,
};
use crate::verify::{BoxFuture, InvalidReason, TokenVerifier, VerifyError};

/// Everything the chain needs to start.
#[derive(Debug, Clone)]
pub struct ChainConfig {
    /// JWT issuers (one verifier each; issuers must be distinct).
    pub jwt_issuers: Vec<JwtIssuerConfig>,
    /// Introspection endpoints for opaque tokens, tried in order.
    pub introspection: Vec<IntrospectionConfig>,
    /// Tokens longer than this are refused before any parsing. Default: 16 KiB.
    pub max_token_bytes: usize,
}

impl Default for ChainConfig {
    fn default() -> Self {
        Self {
            jwt_issuers: Vec::new(),
            introspection: Vec::new(),
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
        }
    }
}

/// Why the chain could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// Neither JWT issuers nor introspection configured.
    #[error("no token verifier configured")]
    Empty,
    /// Two JWT verifiers for the same issuer.
    #[error("issuer {0:?} configured twice")]
    DuplicateIssuer(String),
    /// A JWT issuer failed to set up.
    #[error("issuer {issuer:?}: {source}")]
    Jwt {
        /// The issuer.
        issuer: String,
        /// The failure.
        source: JwtSetupError,
    },
    /// An introspection verifier failed to set up.
    #[error("introspection for {issuer:?}: {source}")]
    Introspection {
        /// The issuer.
        issuer: String,
        /// The failure.
        source: IntrospectionSetupError,
    },
}

/// Routes tokens to the right verifier; implements [`TokenVerifier`].
pub struct VerifierChain {
    jwt: HashMap<Arc<str>, Arc<JwtVerifier>>,
    introspection: Vec<Arc<IntrospectionVerifier>>,
    max_token_bytes: usize,
    tasks: Vec<JoinHandle<()>>,
    /// Cancels the background tasks when the chain is dropped.
    _stop: Option<DropGuard>,
}

impl fmt::Debug for VerifierChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifierChain")
            .field("jwt_issuers", &self.jwt.keys().collect::<Vec<_>>())
            .field("introspection", &self.introspection)
            .finish()
    }
}

impl VerifierChain {
    /// Assembles a chain from built verifiers (no background tasks; see
    /// [`VerifierChain::spawn_refresh`]).
    pub fn new(
        jwt: Vec<Arc<JwtVerifier>>,
        introspection: Vec<Arc<IntrospectionVerifier>>,
        max_token_bytes: usize,
    ) -> Result<Self, ChainError> {
        if jwt.is_empty() && introspection.is_empty() {
            return Err(ChainError::Empty);
        }
        let mut map = HashMap::with_capacity(jwt.len());
        for v in jwt {
            let iss: Arc<str> = v.issuer().into();
            if map.insert(iss.clone(), v).is_some() {
                return Err(ChainError::DuplicateIssuer(iss.to_string()));
            }
        }
        Ok(Self {
            jwt: map,
            introspection,
            max_token_bytes,
            tasks: Vec::new(),
            _stop: None,
        })
    }

    /// Builds every verifier (running discovery where endpoints are not configured and the
    /// first JWKS load for each issuer), then spawns the JWKS background refresh tasks. The
    /// tasks stop when `cancel` fires or when the chain is dropped.
    ///
    /// A discovery failure is an error (the issuer is misconfigured or unreachable at start); a
    /// failed first JWKS load is not: the chain starts, [`TokenVerifier::ready`] stays false, and
    /// keys are retried in the background and on demand.
    pub async fn start(config: ChainConfig, cancel: CancellationToken) -> Result<Self, ChainError> {
        let jwt_futs = config.jwt_issuers.into_iter().map(|c| async move {
            let issuer = c.issuer.clone();
            JwtVerifier::discover(c)
                .await
                .map(Arc::new)
                .map_err(|source| ChainError::Jwt { issuer, source })
        });
        let jwt = futures::future::try_join_all(jwt_futs).await?;
        let intro_futs = config.introspection.into_iter().map(|c| async move {
            let issuer = c.issuer.clone();
            IntrospectionVerifier::discover(c)
                .await
                .map(Arc::new)
                .map_err(|source| ChainError::Introspection { issuer, source })
        });
        let introspection = futures::future::try_join_all(intro_futs).await?;
        let mut chain = Self::new(jwt, introspection, config.max_token_bytes)?;
        chain.spawn_refresh(cancel);
        Ok(chain)
    }

    /// Spawns the JWKS refresh task of every JWT issuer, tied to a child of `cancel` and to the
    /// lifetime of the chain.
    pub fn spawn_refresh(&mut self, cancel: CancellationToken) {
        let stop = cancel.child_token();
        for v in self.jwt.values() {
            if let Some(jwks) = v.jwks() {
                self.tasks.push(jwks.spawn_refresh(stop.clone()));
            }
        }
        self._stop = Some(stop.drop_guard());
    }

    /// The JWT verifier of `issuer`, if configured.
    pub fn jwt_verifier(&self, issuer: &str) -> Option<&Arc<JwtVerifier>> {
        self.jwt.get(issuer)
    }

    /// The JWT verifiers, ordered by issuer.
    pub fn jwt_verifiers(&self) -> Vec<&Arc<JwtVerifier>> {
        let mut all: Vec<_> = self.jwt.values().collect();
        all.sort_by(|a, b| a.issuer().cmp(b.issuer()));
        all
    }

    /// The introspection verifiers, in order.
    pub fn introspection_verifiers(&self) -> &[Arc<IntrospectionVerifier>] {
        &self.introspection
    }

    /// Handles of the background tasks (for orderly shutdown in tests or servers).
    pub fn take_tasks(&mut self) -> Vec<JoinHandle<()>> {
        std::mem::take(&mut self.tasks)
    }

    async fn route(&self, token: &AccessToken) -> Result<Caller, VerifyError> {
        let text = token.expose();
        if text.len() > self.max_token_bytes {
            return Err(InvalidReason::TooLarge.into());
        }
        if looks_like_jws(text) {
            let jws = parse_jws(text)?;
            let verifier = match jws.unverified_issuer() {
                Some(iss) => self.jwt.get(iss).ok_or(InvalidReason::UnknownIssuer)?,
                None => return Err(InvalidReason::MissingClaim.into()),
            };
            return verifier.verify_parsed(jws).await;
        }
        self.introspect(token).await
    }

    /// [`VerifierChain::route`] without introspection or key refreshes.
    fn route_locally(&self, token: &AccessToken) -> Option<Result<Caller, VerifyError>> {
        let text = token.expose();
        if text.len() > self.max_token_bytes {
            return Some(Err(InvalidReason::TooLarge.into()));
        }
        if looks_like_jws(text) {
            let jws = match parse_jws(text) {
                Ok(jws) => jws,
                Err(e) => return Some(Err(e.into())),
            };
            let verifier = match jws.unverified_issuer() {
                Some(iss) => match self.jwt.get(iss) {
                    Some(v) => v,
                    None => return Some(Err(InvalidReason::UnknownIssuer.into())),
                },
                None => return Some(Err(InvalidReason::MissingClaim.into())),
            };
            return verifier.verify_parsed_locally(jws);
        }
        if self.introspection.is_empty() {
            return Some(Err(InvalidReason::Malformed.into()));
        }
        None
    }

    /// Tries each introspection verifier: the first that accepts wins; otherwise a definitive
    /// refusal wins over "unavailable" only when every endpoint answered.
    async fn introspect(&self, token: &AccessToken) -> Result<Caller, VerifyError> {
        let mut first_err: Option<VerifyError> = None;
        let mut unavailable: Option<VerifyError> = None;
        for v in &self.introspection {
            match v.verify(token).await {
                Ok(caller) => return Ok(caller),
                Err(e @ VerifyError::Unavailable(_)) => {
                    unavailable.get_or_insert(e);
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        // If any endpoint could not answer, the token might be valid there: undecided.
        match (unavailable, first_err) {
            (Some(u), _) => Err(u),
            (None, Some(e)) => Err(e),
            (None, None) => Err(InvalidReason::Malformed.into()),
        }
    }
}

impl TokenVerifier for VerifierChain {
    fn verify<'a>(&'a self, token: &'a AccessToken) -> BoxFuture<'a, Result<Caller, VerifyError>> {
        Box::pin(self.route(token))
    }

    fn verify_locally(&self, token: &AccessToken) -> Option<Result<Caller, VerifyError>> {
        self.route_locally(token)
    }

    fn ready(&self) -> bool {
        self.jwt.values().all(|v| v.ready())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use gatehouse_testkit::{Alg, TestAuthServer, TestKey, b64url};
    use serde_json::json;

    use super::*;
    use crate::caller::TokenKind;
    use crate::verify::UnavailableReason;
    use crate::verify::introspection::ClientSecret;

    const AUD: &str = "https://mcp.example/mcp";

    /// An issuer publishing exactly `keys`, whose tokens say `aud: AUD`.
    async fn server(keys: &[&TestKey]) -> TestAuthServer {
        TestAuthServer::builder()
            .audience(AUD)
            .keys(keys.iter().map(|&k| k.clone()).collect())
            .start()
            .await
    }

    fn jwt_config(ts: &TestAuthServer) -> JwtIssuerConfig {
        JwtIssuerConfig::new(ts.issuer(), AUD)
    }

    fn intro_config(ts: &TestAuthServer) -> IntrospectionConfig {
        let (id, secret) = ts.introspection_client();
        let mut c = IntrospectionConfig::new(ts.issuer(), id, ClientSecret::new(secret), AUD);
        c.fetch.timeout = Duration::from_millis(500);
        c
    }

    #[tokio::test]
    async fn routes_by_issuer_and_opaque_to_introspection() {
        let ka = TestKey::generate(Alg::RS256).with_kid("ka");
        let kb = TestKey::generate(Alg::ES256).with_kid("kb");
        let a = server(&[&ka]).await;
        let b = server(&[&kb]).await;
        let opaque_token = "2YotnFZFEjr1zCsicMWpAA";
        // Five-segment JWE: not a JWS, so also introspected.
        let jwe = format!("{}.a.b.c.d", b64url(br#"{"alg":"dir","enc":"A256GCM"}"#));
        for token in [opaque_token, &jwe] {
            b.set_introspection(
                token,
                json!({"active": true, "sub": "opaque-user", "aud": AUD}),
            );
        }
        let chain = VerifierChain::start(
            ChainConfig {
                jwt_issuers: vec![jwt_config(&a), jwt_config(&b)],
                introspection: vec![intro_config(&b)],
                ..Default::default()
            },
            CancellationToken::new(),
        )
        .await
        .unwrap();
        assert!(chain.ready());
        let ta = AccessToken::new(a.token().key(&ka).sign());
        let tb = AccessToken::new(b.token().key(&kb).sign());
        assert_eq!(chain.verify(&ta).await.unwrap().issuer.as_ref(), a.issuer());
        assert_eq!(chain.verify(&tb).await.unwrap().issuer.as_ref(), b.issuer());
        // A's key with B's iss: routed to B, whose keys do not include A's.
        let cross = AccessToken::new(b.token().key(&ka).sign());
        assert_eq!(
            chain.verify(&cross).await.unwrap_err(),
            InvalidReason::UnknownKey.into()
        );
        // Opaque → introspection.
        let opaque = chain.verify(&AccessToken::new(opaque_token)).await.unwrap();
        assert_eq!(opaque.kind, TokenKind::Introspected);
        assert_eq!(b.introspection_calls(), 1);
        // Five-segment JWE → introspection as well.
        chain.verify(&AccessToken::new(jwe)).await.unwrap();
        assert_eq!(b.introspection_calls(), 2);
        assert_eq!(a.introspection_calls(), 0);
    }

    #[tokio::test]
    async fn unknown_or_missing_issuer_and_no_introspection() {
        // A23 / A30: an issuer that is not configured is refused.
        let ka = TestKey::generate(Alg::RS256).with_kid("ka");
        let a = server(&[&ka]).await;
        let chain = VerifierChain::start(
            ChainConfig {
                jwt_issuers: vec![jwt_config(&a)],
                ..Default::default()
            },
            CancellationToken::new(),
        )
        .await
        .unwrap();
        let t = AccessToken::new(a.token().iss("https://unknown.example").sign());
        assert_eq!(
            chain.verify(&t).await.unwrap_err(),
            InvalidReason::UnknownIssuer.into()
        );
        // Trailing slash variant of a known issuer is another issuer (E6).
        let t = AccessToken::new(a.token().iss(&format!("{}/", a.issuer())).sign());
        assert_eq!(
            chain.verify(&t).await.unwrap_err(),
            InvalidReason::UnknownIssuer.into()
        );
        let t = AccessToken::new(a.token().without("iss").sign());
        assert_eq!(
            chain.verify(&t).await.unwrap_err(),
            InvalidReason::MissingClaim.into()
        );
        // Opaque without introspection: malformed.
        let t = AccessToken::new("opaque");
        assert_eq!(
            chain.verify(&t).await.unwrap_err(),
            InvalidReason::Malformed.into()
        );
        // Too large.
        let t = AccessToken::new("a".repeat(DEFAULT_MAX_TOKEN_BYTES + 1));
        assert_eq!(
            chain.verify(&t).await.unwrap_err(),
            InvalidReason::TooLarge.into()
        );
        // JWS-shaped but truncated payload.
        let good = a.token().sign();
        let mut parts: Vec<&str> = good.split('.').collect();
        let short = &parts[1][..parts[1].len() - 5];
        parts[1] = short;
        let t = AccessToken::new(parts.join("."));
        assert_eq!(
            chain.verify(&t).await.unwrap_err(),
            InvalidReason::Malformed.into()
        );
    }

    // What the per-address limit may not withhold is decided here, without the network: a JWT
    // whose key is held (valid or not) and every refusal by shape; only introspection and
    // unknown kids are left to `verify`, and the two paths agree.
    #[tokio::test]
    async fn local_decisions_leave_only_the_issuer_bound_tokens() {
        let ka = TestKey::generate(Alg::ES256).with_kid("ka");
        let a = server(&[&ka]).await;
        let chain = VerifierChain::start(
            ChainConfig {
                jwt_issuers: vec![jwt_config(&a)],
                introspection: vec![intro_config(&a)],
                ..Default::default()
            },
            CancellationToken::new(),
        )
        .await
        .unwrap();
        let fetches = a.jwks_fetches();
        let rogue = TestKey::generate(Alg::ES256).with_kid("rogue");
        let local = [
            (a.token().sign(), None),
            (
                a.token().sign_with_bad_signature(),
                Some(InvalidReason::BadSignature),
            ),
            (
                a.token().expires_in(-600).sign(),
                Some(InvalidReason::Expired),
            ),
            (
                a.token().iss("https://unknown.example").sign(),
                Some(InvalidReason::UnknownIssuer),
            ),
            (
                a.token().sign_alg_none(),
                Some(InvalidReason::AlgorithmNotAllowed),
            ),
            (
                "x".repeat(DEFAULT_MAX_TOKEN_BYTES + 1),
                Some(InvalidReason::TooLarge),
            ),
        ];
        for (token, want) in local {
            let token = AccessToken::new(token);
            let decided = chain.verify_locally(&token).expect("decided locally");
            assert_eq!(decided.as_ref().err(), want.map(VerifyError::from).as_ref());
            let verified = chain.verify(&token).await;
            assert_eq!(verified.as_ref().err(), decided.as_ref().err());
            assert_eq!(
                verified.map(|c| c.subject.clone()).ok(),
                decided.map(|c| c.subject.clone()).ok()
            );
        }
        assert_eq!(a.jwks_fetches(), fetches);
        assert_eq!(a.introspection_calls(), 0);
        // An unknown kid right after a good fetch is decided with the keys held (the refresh
        // cooldown forbids looking again); an opaque token needs introspection.
        let unknown = AccessToken::new(a.token().key(&rogue).sign());
        assert_eq!(
            chain.verify_locally(&unknown).expect("decided").err(),
            Some(InvalidReason::UnknownKey.into())
        );
        assert!(chain.verify_locally(&AccessToken::new("opaque")).is_none());
        assert_eq!(a.jwks_fetches(), fetches);
        assert_eq!(a.introspection_calls(), 0);
    }

    #[tokio::test]
    async fn multiple_introspection_endpoints() {
        let a = server(&[]).await;
        let b = server(&[]).await;
        a.set_introspection("tok", json!({"active": false}));
        b.set_introspection("tok", json!({"active": true, "aud": AUD}));
        let chain = VerifierChain::start(
            ChainConfig {
                introspection: vec![intro_config(&a), intro_config(&b)],
                ..Default::default()
            },
            CancellationToken::new(),
        )
        .await
        .unwrap();
        let c = chain.verify(&AccessToken::new("tok")).await.unwrap();
        assert_eq!(c.issuer.as_ref(), b.issuer());
        b.set_introspection("tok", json!({"active": false}));
        assert_eq!(
            chain.verify(&AccessToken::new("tok")).await.unwrap_err(),
            InvalidReason::Inactive.into()
        );
        b.set_introspection_raw(Some((503, "")));
        assert_eq!(
            chain.verify(&AccessToken::new("tok")).await.unwrap_err(),
            UnavailableReason::IntrospectionBadResponse.into()
        );
    }

    #[tokio::test]
    async fn setup_errors() {
        assert!(matches!(
            VerifierChain::start(ChainConfig::default(), CancellationToken::new()).await,
            Err(ChainError::Empty)
        ));
        let a = server(&[&TestKey::generate(Alg::RS256).with_kid("k")]).await;
        assert!(matches!(
            VerifierChain::start(
                ChainConfig {
                    jwt_issuers: vec![jwt_config(&a), jwt_config(&a)],
                    ..Default::default()
                },
                CancellationToken::new()
            )
            .await,
            Err(ChainError::DuplicateIssuer(_))
        ));
        a.set_metadata_issuer("https://evil.example");
        assert!(matches!(
            VerifierChain::start(
                ChainConfig {
                    jwt_issuers: vec![jwt_config(&a)],
                    ..Default::default()
                },
                CancellationToken::new()
            )
            .await,
            Err(ChainError::Jwt {
                source: JwtSetupError::Discovery(_),
                ..
            })
        ));
    }

    #[tokio::test]
    async fn not_ready_until_keys_and_tasks_stop_on_cancel_and_drop() {
        let a = server(&[&TestKey::generate(Alg::RS256).with_kid("k")]).await;
        a.set_jwks_down(true);
        let mut cfg = jwt_config(&a);
        cfg.jwks_uri = Some(a.jwks_uri().parse().unwrap());
        cfg.jwks.retry_interval = Duration::from_millis(10);
        cfg.jwks.min_refresh_interval = Duration::ZERO;
        // Keep the schedule short so the hit counter keeps moving while we wait.
        cfg.jwks.min_ttl = Duration::from_millis(10);
        cfg.jwks.max_ttl = Duration::from_millis(10);
        let cancel = CancellationToken::new();
        let mut chain = VerifierChain::start(
            ChainConfig {
                jwt_issuers: vec![cfg.clone()],
                ..Default::default()
            },
            cancel.clone(),
        )
        .await
        .unwrap();
        assert!(!chain.ready());
        // The background task retries; once the JWKS is back the chain becomes ready.
        let mut hits = a.jwks_fetches();
        a.set_jwks_down(false);
        tokio::time::timeout(Duration::from_secs(10), async {
            while !chain.ready() {
                hits += 1;
                a.wait_for_jwks_fetches(hits).await;
            }
        })
        .await
        .unwrap();
        let tasks = chain.take_tasks();
        assert_eq!(tasks.len(), 1);
        cancel.cancel();
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .unwrap()
                .unwrap();
        }

        let mut chain = VerifierChain::start(
            ChainConfig {
                jwt_issuers: vec![cfg],
                ..Default::default()
            },
            CancellationToken::new(),
        )
        .await
        .unwrap();
        let tasks = chain.take_tasks();
        drop(chain);
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .unwrap()
                .unwrap();
        }
    }
}
