//! # gatehouse-testkit — a hostile-capable test authorization server and JWT forge
//!
//! Test support only (`publish = false`). Everything binds `127.0.0.1:0`.
//!
//! - [`TestAuthServer`]: RFC 8414 / OIDC discovery metadata (optionally with a path issuer or a
//!   wrong `issuer`), a JWKS with RS256, PS256, ES256 and EdDSA keys (or exactly the keys a test
//!   gives it, with an optional `Cache-Control`), a programmable client-authenticated RFC 7662
//!   introspection endpoint that records each request as received, failure toggles
//!   (`set_jwks_down`, `set_introspection_down`, `set_introspection_raw`,
//!   `set_introspection_hang`, …), rotation, junk keys, and request counters with async waits.
//! - [`TokenBuilder`] (from [`TestAuthServer::token`]): any header and claims, signed with any
//!   [`TestKey`] (published or not; an RSA key with any of RS256/384/512 and PS256/384/512),
//!   HS256 with any secret, `alg: none`, broken signatures; [`malformed_tokens`] for strings
//!   that are not JWS at all.
//! - [`AttackerServer`]: counts hits, to prove `jku`/`x5u` are never fetched.
//!
//! ```no_run
//! # async fn t() {
//! use gatehouse_testkit::{Alg, TestAuthServer};
//! let ts = TestAuthServer::start().await;
//! ts.set_audience("http://127.0.0.1:4000/mcp");
//! let ok = ts.token().sign();                                    // ES256, typ at+jwt
//! let id_token = ts.token().header_typ("JWT").sign();            // wrong typ
//! let expired = ts.token().expires_in(-600).sign();
//! let no_client = ts.token().without("client_id").sign();
//! let ps = ts.token().alg(Alg::PS256).sign();
//! let confused = ts.token().alg(Alg::RS256)
//!     .hs256(ts.current_key(Alg::RS256).public_key_pem()).sign(); // RS256→HS256 confusion
//! # }
//! ```
//!
//! Keys are generated at start-up with aws-lc-rs (RSA 2048, P-256, Ed25519), so every server
//! has its own keys and `kid`s; nothing is read from disk.

#![warn(missing_docs)]

mod attacker;
mod forge;
mod keys;
mod server;

pub use attacker::AttackerServer;
pub use forge::{TokenBuilder, malformed_tokens, now};
pub use keys::{Alg, TestKey, b64url, junk_enc_rsa_jwk, unknown_kty_jwk};
pub use server::{
    DEFAULT_AUDIENCE, DEFAULT_CLIENT_ID, DEFAULT_INTROSPECTION_CLIENT_ID,
    DEFAULT_INTROSPECTION_CLIENT_SECRET, DEFAULT_SCOPE, DEFAULT_SUBJECT, IntrospectionRequest,
    TestAuthServer, TestAuthServerBuilder,
};
