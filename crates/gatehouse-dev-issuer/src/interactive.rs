//! The interactive flows' server-side state: pending authorization requests, issued codes,
//! refresh token families, registered clients and cached client ID metadata documents, with the
//! bounds that keep a development server from becoming a memory sink, and the PKCE rules. The
//! flows themselves are in `grants.rs`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::clients::OAuthClient;
use crate::config::DevUser;

/// Pending authorization requests (waiting for the user's decision).
pub(crate) const MAX_PENDING: usize = 1_000;
/// How long the consent page stays valid.
pub(crate) const PENDING_TTL: u64 = 600;
/// Authorization code lifetime (OAuth 2.1 §4.1.2: short; 60 s is the usual ceiling).
pub const CODE_TTL: u64 = 60;
/// Codes remembered (issued, used or not) at once.
pub(crate) const MAX_CODES: usize = 1_000;
/// How long a code is remembered after issuance, so that a replay still finds it and revokes
/// what it produced (RFC 6749 §4.1.2).
pub(crate) const CODE_MEMORY: u64 = 600;
/// Refresh tokens remembered at once (active and rotated ones: the latter detect reuse).
pub(crate) const MAX_REFRESH: usize = 10_000;
/// Refresh token lifetime: a working day of demos.
pub const REFRESH_TTL: u64 = 8 * 3600;
/// Dynamically registered clients kept in memory.
pub const MAX_REGISTERED_CLIENTS: usize = 1_000;
/// Fetched client ID metadata documents cached at once, and for how long.
pub(crate) const MAX_CACHED_DOCUMENTS: usize = 100;
pub(crate) const DOCUMENT_CACHE_TTL: u64 = 300;

/// The interactive part of the issuer; present exactly when users are configured.
pub(crate) struct Interactive {
    pub(crate) users: Vec<DevUser>,
    pub(crate) http: reqwest::Client,
    pub(crate) document_timeout: Duration,
    pub(crate) state: Mutex<State>,
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) registered: HashMap<String, Arc<OAuthClient>>,
    pub(crate) documents: HashMap<String, (u64, Arc<OAuthClient>)>,
    pub(crate) pending: HashMap<String, Pending>,
    pub(crate) codes: HashMap<String, CodeGrant>,
    /// Keyed by the SHA-256 of the token: the store never holds a usable refresh token.
    pub(crate) refresh: HashMap<String, RefreshGrant>,
}

/// A validated authorization request waiting for the user (also the facts a code binds).
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub(crate) client_id: String,
    pub(crate) client_label: String,
    /// The redirect URI codes and errors go to (the presented one, or the only registered one).
    pub(crate) redirect_uri: String,
    /// Whether `redirect_uri` was a request parameter: then the token request must repeat it
    /// (RFC 6749 §4.1.3).
    pub(crate) redirect_uri_sent: bool,
    pub(crate) state: Option<String>,
    pub(crate) code_challenge: String,
    pub(crate) resource: String,
    pub(crate) scopes: Option<Vec<String>>,
    pub(crate) nonce: Option<String>,
    pub(crate) refresh: bool,
    pub(crate) expires_at: u64,
}

pub(crate) struct CodeGrant {
    pub(crate) request: Pending,
    pub(crate) user: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) auth_time: u64,
    pub(crate) expires_at: u64,
    pub(crate) forget_at: u64,
    pub(crate) used: bool,
    /// The refresh token family issued from this code, revoked if the code is replayed.
    pub(crate) family: Option<String>,
}

#[derive(Clone)]
pub(crate) struct RefreshGrant {
    pub(crate) family: String,
    pub(crate) client_id: String,
    pub(crate) user: String,
    pub(crate) resource: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) expires_at: u64,
    /// Already exchanged for a successor: presenting it again means it leaked.
    pub(crate) rotated: bool,
    /// The DPoP key a public client proved when the family began (RFC 9449 §5): every refresh
    /// must prove the same key. `None` for confidential clients (client authentication already
    /// constrains the sender) and for public clients that sent no proof.
    pub(crate) jkt: Option<String>,
}

/// The outcome of the user's decision: where to send the browser and with what.
pub(crate) struct Decision {
    pub(crate) redirect_uri: String,
    pub(crate) params: Vec<(&'static str, String)>,
}

/// 256 random bits, base64url: codes, refresh tokens, transaction ids.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).expect("system RNG");
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, token.as_bytes()))
}

/// RFC 7636 §4.1: `code-verifier = 43*128unreserved`.
pub(crate) fn is_code_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// An S256 challenge is the base64url (no padding) of a SHA-256 digest: 43 characters.
pub(crate) fn is_s256_challenge(c: &str) -> bool {
    c.len() == 43
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// RFC 7636 §4.6: `BASE64URL(SHA256(ASCII(code_verifier))) == code_challenge`.
pub(crate) fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let computed = URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes()));
    verify_slices_are_equal(computed.as_bytes(), challenge.as_bytes()).is_ok()
}

impl Interactive {
    pub(crate) fn new(users: Vec<DevUser>, document_timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            // The draft forbids following redirects: the document must live at its URL.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(document_timeout)
            .build()
            .expect("HTTP client");
        Self {
            users,
            http,
            document_timeout,
            state: Mutex::new(State::default()),
        }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves maps that are still consistent one by one.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn user(&self, name: &str) -> Option<&DevUser> {
        self.users.iter().find(|u| u.name == name)
    }
}

/// Removes entries for which `expired` holds; then, if `map` is still at `cap`, reports so.
pub(crate) fn make_room<V>(
    map: &mut HashMap<String, V>,
    cap: usize,
    expired: impl Fn(&V) -> bool,
) -> bool {
    if map.len() >= cap {
        map.retain(|_, v| !expired(v));
    }
    map.len() < cap
}
