//! The token forge: build any JWS (well-formed, subtly wrong or hostile) and sign it with any key.
//!
//! The header is computed as `{alg: <key alg>, typ: "at+jwt", kid: <key kid>}`, then explicit
//! header settings are applied, then removals; so `.header("alg", "none")` or `.without_header
//! ("typ")` always win. Claims work the same way.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use crate::keys::{Alg, TestKey, b64url, hex, random_bytes};

/// Current Unix time in seconds.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Builds one token. Get one from `TestAuthServer::token()` (defaults filled from the
/// server) or [`TokenBuilder::new`] (bare: no claims).
#[derive(Debug, Clone)]
pub struct TokenBuilder {
    key: TestKey,
    published: Vec<TestKey>,
    header_set: Map<String, Value>,
    header_removed: Vec<String>,
    claims: Map<String, Value>,
    raw_header: Option<Vec<u8>>,
    raw_payload: Option<Vec<u8>>,
}

impl TokenBuilder {
    /// A builder signing with `key`, with no claims.
    pub fn new(key: TestKey) -> Self {
        Self {
            key,
            published: Vec::new(),
            header_set: Map::new(),
            header_removed: Vec::new(),
            claims: Map::new(),
            raw_header: None,
            raw_payload: None,
        }
    }

    /// A builder with the usual RFC 9068 claims: `iss, sub, aud, client_id, scope, iat: now,
    /// exp: now + 300, jti` (random).
    pub fn with_defaults(
        key: TestKey,
        published: Vec<TestKey>,
        iss: &str,
        aud: &str,
        client_id: &str,
        sub: &str,
        scope: &str,
    ) -> Self {
        let mut b = Self::new(key);
        b.published = published;
        let t = now();
        b.claims = json!({
            "iss": iss,
            "sub": sub,
            "aud": aud,
            "client_id": client_id,
            "scope": scope,
            "iat": t,
            "exp": t + 300,
            "jti": hex(&random_bytes(16)),
        })
        .as_object()
        .expect("object")
        .clone();
        b
    }

    // ---- choosing the key ----

    /// Signs with the server's published key for `alg` (header `alg` and `kid` follow).
    ///
    /// # Panics
    /// If the builder has no published key for `alg` (e.g. HS256: use [`Self::hs256`]).
    pub fn alg(mut self, alg: Alg) -> Self {
        self.key = self
            .published
            .iter()
            .find(|k| k.alg() == alg)
            .unwrap_or_else(|| panic!("no published {alg} key; use .key() or .hs256()"))
            .clone();
        self
    }

    /// Signs with `key` (published or not); header `alg` and `kid` follow the key unless set.
    pub fn key(mut self, key: &TestKey) -> Self {
        self.key = key.clone();
        self
    }

    /// Signs with HS256 and `secret`, keeping the `kid` of the key chosen so far, which is how
    /// an RS256→HS256 confusion token looks: `.alg(Alg::RS256).hs256(rsa_key.public_key_pem())`.
    pub fn hs256(mut self, secret: impl Into<Vec<u8>>) -> Self {
        let kid = self.key.kid().to_owned();
        self.key = TestKey::hmac(secret).with_kid(kid);
        self
    }

    // ---- header ----

    /// Sets any header parameter (overrides computed `alg`/`typ`/`kid`).
    pub fn header(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.header_removed.retain(|n| n != name);
        self.header_set.insert(name.to_owned(), value.into());
        self
    }

    /// Removes a header parameter (computed or set).
    pub fn without_header(mut self, name: &str) -> Self {
        self.header_set.remove(name);
        self.header_removed.push(name.to_owned());
        self
    }

    /// Sets the header `alg` string without changing the signing key (mismatch tests).
    pub fn header_alg(self, alg: &str) -> Self {
        self.header("alg", alg)
    }

    /// Sets `typ` (e.g. `"JWT"` for an ID-token-shaped token, RFC 9068 §4).
    pub fn header_typ(self, typ: &str) -> Self {
        self.header("typ", typ)
    }

    /// Removes `typ` (Okta custom AS and Cognito send none).
    pub fn no_typ(self) -> Self {
        self.without_header("typ")
    }

    /// Sets `kid`.
    pub fn kid(self, kid: &str) -> Self {
        self.header("kid", kid)
    }

    /// Removes `kid`.
    pub fn no_kid(self) -> Self {
        self.without_header("kid")
    }

    /// Sets `jku` (RFC 7515 §4.1.2), which a verifier must never follow.
    pub fn jku(self, url: &str) -> Self {
        self.header("jku", url)
    }

    /// Sets `x5u` (RFC 7515 §4.1.5), which a verifier must never follow.
    pub fn x5u(self, url: &str) -> Self {
        self.header("x5u", url)
    }

    /// Embeds a `jwk` header (RFC 7515 §4.1.3), which a verifier must never trust.
    pub fn jwk(self, jwk: Value) -> Self {
        self.header("jwk", jwk)
    }

    /// Sets `crit` (RFC 7515 §4.1.11): unknown critical extensions must make a verifier reject.
    pub fn crit(self, names: &[&str]) -> Self {
        self.header("crit", json!(names))
    }

    /// Uses these exact header bytes (before base64url) instead of the computed header, e.g.
    /// Keycloak's `{"alg" : "RS256","typ" : "JWT"}` spacing or invalid JSON.
    pub fn raw_header(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.raw_header = Some(bytes.into());
        self
    }

    // ---- claims ----

    /// Sets (merges) every member of a JSON object into the claims.
    ///
    /// # Panics
    /// If `claims` is not a JSON object.
    pub fn claims(mut self, claims: Value) -> Self {
        let Value::Object(map) = claims else {
            panic!("claims must be a JSON object")
        };
        self.claims.extend(map);
        self
    }

    /// Sets one claim.
    pub fn claim(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.claims.insert(name.to_owned(), value.into());
        self
    }

    /// Removes a claim.
    pub fn without(mut self, name: &str) -> Self {
        self.claims.remove(name);
        self
    }

    /// Sets `iss`.
    pub fn iss(self, iss: &str) -> Self {
        self.claim("iss", iss)
    }

    /// Sets `sub`.
    pub fn subject(self, sub: &str) -> Self {
        self.claim("sub", sub)
    }

    /// Sets `aud` (a string, an array, anything).
    pub fn aud(self, aud: impl Into<Value>) -> Self {
        self.claim("aud", aud)
    }

    /// Sets `client_id`.
    pub fn client_id(self, client_id: &str) -> Self {
        self.claim("client_id", client_id)
    }

    /// Sets `scope`.
    pub fn scope(self, scope: &str) -> Self {
        self.claim("scope", scope)
    }

    /// Sets `exp` to `now + secs` (negative: already expired).
    pub fn expires_in(self, secs: i64) -> Self {
        self.claim("exp", now() + secs)
    }

    /// Sets `exp` to an absolute Unix time.
    pub fn exp(self, exp: i64) -> Self {
        self.claim("exp", exp)
    }

    /// Sets `iat`.
    pub fn iat(self, iat: i64) -> Self {
        self.claim("iat", iat)
    }

    /// Sets `nbf` to `now + secs`.
    pub fn not_before_in(self, secs: i64) -> Self {
        self.claim("nbf", now() + secs)
    }

    /// Uses these exact payload bytes (before base64url), e.g. invalid JSON or invalid UTF-8.
    pub fn raw_payload(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.raw_payload = Some(bytes.into());
        self
    }

    // ---- inspection ----

    /// The header that [`Self::sign`] will produce (ignoring `raw_header`).
    pub fn header_json(&self) -> Value {
        let mut h = Map::new();
        h.insert("alg".into(), json!(self.key.alg().as_str()));
        h.insert("typ".into(), json!("at+jwt"));
        h.insert("kid".into(), json!(self.key.kid()));
        h.extend(self.header_set.clone());
        for name in &self.header_removed {
            h.remove(name);
        }
        Value::Object(h)
    }

    /// The claims that [`Self::sign`] will produce (ignoring `raw_payload`).
    pub fn claims_json(&self) -> Value {
        Value::Object(self.claims.clone())
    }

    /// The key that will sign.
    pub fn signing_key(&self) -> &TestKey {
        &self.key
    }

    // ---- output ----

    fn signing_input(&self, header: Value) -> String {
        let h = self
            .raw_header
            .clone()
            .unwrap_or_else(|| header.to_string().into_bytes());
        let p = self
            .raw_payload
            .clone()
            .unwrap_or_else(|| self.claims_json().to_string().into_bytes());
        format!("{}.{}", b64url(&h), b64url(&p))
    }

    /// Produces the compact JWS `header.payload.signature`.
    pub fn sign(&self) -> String {
        let input = self.signing_input(self.header_json());
        let sig = self.key.sign(input.as_bytes());
        format!("{input}.{}", b64url(&sig))
    }

    /// Produces an unsecured JWS (RFC 7515 Appendix A.5): header `alg: "none"`, empty
    /// signature, i.e. `header.payload.`.
    pub fn sign_alg_none(&self) -> String {
        let mut header = self.header_json();
        header["alg"] = json!("none");
        format!("{}.", self.signing_input(header))
    }

    /// A correctly shaped token whose signature has one bit flipped.
    pub fn sign_with_bad_signature(&self) -> String {
        let input = self.signing_input(self.header_json());
        let mut sig = self.key.sign(input.as_bytes());
        sig[0] ^= 0x01;
        format!("{input}.{}", b64url(&sig))
    }
}

/// Named strings that are not valid compact JWS tokens; a verifier must answer each with a
/// plain 401 and must not panic.
pub fn malformed_tokens() -> Vec<(&'static str, String)> {
    let h = b64url(br#"{"alg":"ES256","typ":"at+jwt","kid":"k"}"#);
    let p = b64url(br#"{"sub":"x"}"#);
    vec![
        ("empty", String::new()),
        ("one segment", "abc".into()),
        ("two segments", format!("{h}.{p}")),
        ("four segments", format!("{h}.{p}.c2ln.ZXh0cmE")),
        (
            "five segments (JWE-shaped)",
            format!("{h}.{p}.aXY.Y3Q.dGFn"),
        ),
        ("only dots", "..".into()),
        ("empty header", format!(".{p}.c2ln")),
        ("header not base64url", format!("!!!.{p}.c2ln")),
        ("padded base64", format!("{h}==.{p}.c2ln")),
        (
            "header not JSON",
            format!("{}.{p}.c2ln", b64url(b"not json")),
        ),
        (
            "header JSON array",
            format!("{}.{p}.c2ln", b64url(b"[1,2]")),
        ),
        ("payload not JSON", format!("{h}.{}.c2ln", b64url(b"{oops"))),
        (
            "payload not UTF-8",
            format!("{h}.{}.c2ln", b64url(&[0xff, 0xfe, 0x7b])),
        ),
        ("whitespace inside", format!("{h} .{p}.c2ln")),
        ("non-ASCII", "é.é.é".into()),
        ("oversized", format!("{h}.{}.c2ln", "A".repeat(64 * 1024))),
    ]
}
