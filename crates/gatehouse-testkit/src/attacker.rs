//! An "attacker" server: serves its own JWKS at every path and counts every hit, to prove that
//! a verifier never dereferences `jku`, `x5u` or similar token-supplied URLs (RFC 8725 §3.10).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::{oneshot, watch};

use crate::keys::{Alg, TestKey};

struct Shared {
    keys: Vec<TestKey>,
    hits: watch::Sender<u64>,
    paths: Mutex<Vec<String>>,
}

/// A loopback server controlled by "the attacker". Stops when dropped.
///
/// Every request, on any path and method, is counted and answered with the attacker's JWKS
/// (an ES256 and an RS256 key), so a verifier that did follow `jku` would find a key that
/// verifies the attacker's token: the test then fails on the hit count *and* on acceptance.
pub struct AttackerServer {
    addr: SocketAddr,
    state: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Drop for AttackerServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl AttackerServer {
    /// Binds `127.0.0.1:0` and starts serving.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Shared {
            keys: vec![TestKey::generate(Alg::ES256), TestKey::generate(Alg::RS256)],
            hits: watch::channel(0).0,
            paths: Mutex::new(Vec::new()),
        });
        let app = Router::new().fallback(any).with_state(state.clone());
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Self {
            addr,
            state,
            shutdown: Some(tx),
        }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A URL to put in `jku`.
    pub fn jwks_url(&self) -> String {
        self.url("/jwks.json")
    }

    /// A URL to put in `x5u`.
    pub fn x5u_url(&self) -> String {
        self.url("/cert.pem")
    }

    /// The attacker's key for `alg` (ES256 or RS256), published at every URL of this server.
    ///
    /// # Panics
    /// For other algorithms.
    pub fn key(&self, alg: Alg) -> &TestKey {
        self.state
            .keys
            .iter()
            .find(|k| k.alg() == alg)
            .expect("attacker has ES256 and RS256 keys")
    }

    /// Requests received so far.
    pub fn hits(&self) -> u64 {
        *self.state.hits.borrow()
    }

    /// The paths requested so far, in order.
    pub fn paths(&self) -> Vec<String> {
        self.state.paths.lock().expect("lock").clone()
    }

    /// Waits until at least `n` requests have arrived.
    pub async fn wait_for_hits(&self, n: u64) {
        let mut rx = self.state.hits.subscribe();
        rx.wait_for(|v| *v >= n).await.expect("server state alive");
    }
}

async fn any(State(s): State<Arc<Shared>>, req: Request) -> Response {
    s.paths
        .lock()
        .expect("lock")
        .push(req.uri().path().to_owned());
    s.hits.send_modify(|n| *n += 1);
    let keys: Vec<_> = s.keys.iter().map(TestKey::public_jwk).collect();
    (
        [(CONTENT_TYPE, "application/json")],
        json!({ "keys": keys }).to_string(),
    )
        .into_response()
}
