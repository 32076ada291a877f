//! The bare axum ceilings: what one core can do with HTTP alone, and with HTTP plus one JWT
//! verification per request. Gatehouse's figures are read as fractions of these.
//!
//! Both answer `POST /mcp` with the same fixed JSON-RPC result (the size of a `lookup_invoice`
//! answer) after reading the whole body, as an MCP server must. The verifying one checks the
//! bearer token with `jsonwebtoken::decode` — signature (ES256 through aws-lc-rs), `exp`, `iss`
//! and `aud` — on every request, with no cache.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// The fixed answer: a JSON-RPC result shaped like Gatehouse's `lookup_invoice` result.
pub const RESPONSE: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"{\"id\":\"INV-2041\",\"customer\":\"Initech\",\"status\":\"open\",\"total\":\"1250.00\",\"currency\":\"EUR\",\"created_at\":\"2025-01-01T00:00:00.000000Z\"}"}],"isError":false}}"#;

/// How the ceiling treats the bearer token.
pub enum Mode {
    /// No verification at all.
    None,
    /// `jsonwebtoken::decode` on every request.
    Verify {
        /// The issuer's public key.
        key: Box<DecodingKey>,
        /// `alg`, `iss`, `aud`, `exp` checks.
        validation: Box<Validation>,
    },
}

impl Mode {
    /// Verification of ES256 tokens from `issuer` for `audience` with the first key of `jwks`.
    pub fn verify_es256(
        jwks: &jsonwebtoken::jwk::JwkSet,
        issuer: &str,
        audience: &str,
    ) -> anyhow::Result<Self> {
        let jwk = jwks
            .keys
            .first()
            .ok_or_else(|| anyhow::anyhow!("empty JWKS"))?;
        let key = DecodingKey::from_jwk(jwk)?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        Ok(Self::Verify {
            key: Box::new(key),
            validation: Box::new(validation),
        })
    }
}

/// The claims the verifying ceiling deserializes (what a handler would use).
#[derive(Deserialize)]
#[allow(dead_code)]
struct Claims {
    sub: String,
    scope: String,
    client_id: String,
}

/// `POST /mcp` with the given mode.
pub fn router(mode: Mode) -> Router {
    Router::new()
        .route("/mcp", post(handle))
        .with_state(Arc::new(mode))
}

async fn handle(State(mode): State<Arc<Mode>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Mode::Verify { key, validation } = &*mode {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let Some(token) = token else {
            return StatusCode::UNAUTHORIZED.into_response();
        };
        if jsonwebtoken::decode::<Claims>(token, key, validation).is_err() {
            return StatusCode::UNAUTHORIZED.into_response();
        }
    }
    drop(body);
    ([(header::CONTENT_TYPE, "application/json")], RESPONSE).into_response()
}
