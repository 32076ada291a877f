//! # gatehouse-ledger
//!
//! The demo's "ledger": a small, separate API that the billing server posts a credit note to when
//! an invoice is voided. It is a resource server in its own right — it accepts only tokens minted
//! for **its own** audience, so the MCP client's token (minted for the billing server) is refused
//! here — and it records who asked: the user (`sub`) and the service acting for them (`act.sub`,
//! RFC 8693 §4.1, else the token's client).
//!
//! A service may also post with its *own* token (client credentials: no user in it), naming the
//! user in the body (`onBehalfOf`). The ledger then records that user as **asserted** by the
//! service (`userVerified: false`), never as if a token had proved it. Billing does this when it
//! retries a delivery after the user's request is over (it keeps no user's token for later).
//!
//! Writing a note needs the scope [`SCOPE_WRITE`] (whoever may void invoices may credit them);
//! reading needs [`SCOPE_READ`] or [`SCOPE_WRITE`].
//!
//! `POST {base}/credit-notes` with `Idempotency-Key` creates a note once per key: a retry with
//! the same key and body returns the first note (`200`), the same key with another body is a
//! conflict (`409`). `GET {base}/credit-notes?invoice_id=…` lists notes (same token rules).
//!
//! For tests, the ledger keeps the SHA-256 of every bearer token it received (never the token),
//! so a test can prove which token arrived without the ledger holding one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use gatehouse::Caller;
use gatehouse::http::extract_bearer;
use gatehouse::verify::cache::{Authenticator, CacheConfig};
use gatehouse::verify::chain::{ChainConfig, VerifierChain};
use gatehouse::verify::jwt::JwtIssuerConfig;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// Scope needed to post a credit note.
pub const SCOPE_WRITE: &str = "invoices:write";
/// Scope that lets a caller list credit notes (as does [`SCOPE_WRITE`]).
pub const SCOPE_READ: &str = "invoices:read";

/// The body of a credit note, as billing sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreditNoteRequest {
    /// The voided invoice.
    pub invoice_id: String,
    /// Its tenant.
    pub tenant: String,
    /// Amount in minor units.
    pub amount_minor: i64,
    /// ISO 4217 currency.
    pub currency: String,
    /// Why (the void's reason).
    #[serde(default)]
    pub reason: Option<String>,
    /// The user the sender acts for, as the sender states it (data, not a credential).
    #[serde(default)]
    pub on_behalf_of: Option<OnBehalfOf>,
}

/// Who a service says it acts for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OnBehalfOf {
    /// The user (subject).
    #[serde(default)]
    pub subject: Option<String>,
    /// The client the user used.
    #[serde(default)]
    pub client_id: Option<String>,
}

/// A recorded credit note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreditNote {
    /// The ledger's id (`CN-1`, `CN-2`, …).
    pub id: String,
    /// The idempotency key it was created with.
    pub idempotency_key: String,
    /// What billing sent.
    #[serde(flatten)]
    pub request: CreditNoteRequest,
    /// The user: the token's `sub` when the token names a user, else the body's `onBehalfOf`.
    pub user: Option<String>,
    /// True when the token proved the user; false when the sending service asserted it.
    pub user_verified: bool,
    /// Who acted for the user: `act.sub`, else the token's client.
    pub actor: Option<String>,
    /// The issuer that vouched for the token.
    pub issuer: String,
    /// Seconds since the Unix epoch.
    pub received_at: u64,
}

#[derive(Default)]
struct Book {
    notes: Vec<CreditNote>,
    by_key: HashMap<String, usize>,
    /// SHA-256 (hex) of every bearer token presented, accepted or not.
    tokens_seen: Vec<String>,
}

/// The ledger's state. Cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    book: Arc<Mutex<Book>>,
    authenticator: Arc<Authenticator>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").finish_non_exhaustive()
    }
}

/// SHA-256 of a token, hex: how the ledger remembers which tokens it saw.
pub fn fingerprint(token: &str) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Ledger {
    /// A ledger that accepts JWTs from `issuer` whose `aud` names `audience` (its own base URL).
    /// Fetches the issuer's metadata and keys.
    pub async fn start(
        issuer: &str,
        audience: &str,
        cancel: CancellationToken,
    ) -> anyhow::Result<Self> {
        let chain = VerifierChain::start(
            ChainConfig {
                jwt_issuers: vec![JwtIssuerConfig::new(issuer, audience)],
                ..ChainConfig::default()
            },
            cancel,
        )
        .await?;
        Ok(Self {
            book: Arc::default(),
            authenticator: Arc::new(Authenticator::new(Arc::new(chain), CacheConfig::default())),
        })
    }

    /// Every note, oldest first.
    pub fn notes(&self) -> Vec<CreditNote> {
        self.book
            .lock()
            .map(|b| b.notes.clone())
            .unwrap_or_default()
    }

    /// Fingerprints ([`fingerprint`]) of every bearer token presented, in order.
    pub fn tokens_seen(&self) -> Vec<String> {
        self.book
            .lock()
            .map(|b| b.tokens_seen.clone())
            .unwrap_or_default()
    }

    /// The router: `POST|GET /api/credit-notes`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/api/credit-notes", post(create).get(list))
            .with_state(self.clone())
    }

    /// Authenticates the request and requires one of `scopes`.
    async fn authorize(&self, headers: &HeaderMap, scopes: &[&str]) -> Result<Caller, Response> {
        let caller = self.authenticate(headers).await?;
        if scopes.iter().any(|s| caller.scopes.contains_str(s)) {
            Ok(caller)
        } else {
            tracing::info!(needed = ?scopes, "ledger refused a token without the scope");
            Err(refuse(StatusCode::FORBIDDEN, "insufficient_scope"))
        }
    }

    async fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, Response> {
        let token = extract_bearer(headers, None, gatehouse::DEFAULT_MAX_TOKEN_BYTES)
            .map_err(|_| refuse(StatusCode::UNAUTHORIZED, "invalid_token"))?;
        if let Ok(mut b) = self.book.lock() {
            b.tokens_seen.push(fingerprint(token.expose()));
        }
        self.authenticator.authenticate(&token).await.map_err(|e| {
            tracing::info!(reason = e.reason(), "ledger refused a token");
            match e {
                gatehouse::VerifyError::Invalid(_) => {
                    refuse(StatusCode::UNAUTHORIZED, "invalid_token")
                }
                gatehouse::VerifyError::Unavailable(_) => {
                    refuse(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable")
                }
            }
        })
    }
}

fn refuse(status: StatusCode, error: &'static str) -> Response {
    let mut r = (status, axum::Json(json!({ "error": error }))).into_response();
    let challenge = match status {
        StatusCode::UNAUTHORIZED => Some("Bearer error=\"invalid_token\""),
        StatusCode::FORBIDDEN => Some("Bearer error=\"insufficient_scope\""),
        _ => None,
    };
    if let Some(c) = challenge {
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
    }
    r
}

async fn create(
    State(ledger): State<Ledger>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let caller = match ledger.authorize(&headers, &[SCOPE_WRITE]).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Some(key) = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty() && k.len() <= 200)
    else {
        return refuse(StatusCode::BAD_REQUEST, "idempotency_key_required");
    };
    let Ok(request) = serde_json::from_slice::<CreditNoteRequest>(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "invalid_request");
    };
    let Ok(mut book) = ledger.book.lock() else {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal");
    };
    if let Some(&i) = book.by_key.get(key) {
        let existing = book.notes[i].clone();
        return if existing.request == request {
            (StatusCode::OK, axum::Json(existing)).into_response()
        } else {
            refuse(StatusCode::CONFLICT, "idempotency_key_reused")
        };
    }
    let (user, user_verified) = who(&caller, &request);
    let note = CreditNote {
        id: format!("CN-{}", book.notes.len() + 1),
        idempotency_key: key.to_owned(),
        request,
        user,
        user_verified,
        actor: caller
            .actor()
            .map(str::to_owned)
            .or_else(|| caller.client_id.clone()),
        issuer: caller.issuer.to_string(),
        received_at: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    tracing::info!(id = %note.id, invoice = %note.request.invoice_id, user = ?note.user,
                   user_verified = note.user_verified, actor = ?note.actor, "credit note recorded");
    let i = book.notes.len();
    book.by_key.insert(key.to_owned(), i);
    book.notes.push(note.clone());
    (StatusCode::CREATED, axum::Json(note)).into_response()
}

/// The user a note is for, and whether the token proved it: a delegated token (`act`) or a user's
/// own token names the user in `sub`; a service's own token (`sub` is the client itself, or
/// absent) names nobody, and the body's `onBehalfOf` is recorded as asserted.
fn who(caller: &Caller, request: &CreditNoteRequest) -> (Option<String>, bool) {
    let service_token = caller.actor().is_none()
        && (caller.subject.is_none() || caller.subject == caller.client_id);
    if service_token {
        let asserted = request
            .on_behalf_of
            .as_ref()
            .and_then(|o| o.subject.clone());
        (asserted, false)
    } else {
        (caller.subject.clone(), true)
    }
}

#[derive(Deserialize)]
struct ListQuery {
    invoice_id: Option<String>,
}

async fn list(
    State(ledger): State<Ledger>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    if let Err(r) = ledger.authorize(&headers, &[SCOPE_READ, SCOPE_WRITE]).await {
        return r;
    }
    let notes: Vec<CreditNote> = ledger
        .notes()
        .into_iter()
        .filter(|n| {
            q.invoice_id
                .as_ref()
                .is_none_or(|i| *i == n.request.invoice_id)
        })
        .collect();
    axum::Json(json!({ "creditNotes": notes })).into_response()
}
