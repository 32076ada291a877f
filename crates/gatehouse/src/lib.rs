//! # Gatehouse
//!
//! An OAuth 2.1 resource server for MCP servers built on [rmcp] and axum: every request to the MCP
//! endpoint must carry a bearer token minted for this server, with the scopes the operation needs.
//!
//! The modules follow the path of a request:
//!
//! 1. [`http`] — the edge: Host/Origin guard, CORS, bearer extraction, challenges
//!    (`401`/`403`/`400`/`503`), RFC 9728 protected-resource metadata, the tower layer;
//! 2. [`verify`] — authentication: token → [`Caller`] (JWT via JWKS, RFC 7662 introspection,
//!    caches), HTTP-agnostic;
//! 3. [`policy`] — authorization: route scopes, scope hierarchy, per-tool scopes;
//! 4. [`mcp`] — rmcp glue: tools take `caller: Caller` as an argument.
#![warn(missing_docs)]

pub mod caller;
pub mod http;
pub mod mcp;
pub mod observe;
pub mod policy;
pub mod resource;
pub mod settings;
pub mod tenancy;
pub mod verify;

pub use caller::{AccessToken, Caller, Principal, Scope, ScopeSet, TokenKind};
pub use http::{Gatehouse, GatehouseBuilder, serve};
pub use resource::ResourceUrl;
pub use tenancy::TenantId;
pub use verify::{TokenVerifier, VerifyError};

/// Default cap on bearer tokens, in bytes (16 KiB): larger tokens are refused with `400` at the
/// edge before any parsing. One limit for the edge, the verifier chain and the cache
/// ([`GatehouseBuilder::max_token_bytes`]).
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 16 * 1024;

#[cfg(test)]
mod readme {
    /// The README's "Use the library" code is `examples/protect.rs` verbatim, so the README's
    /// example is the one the test suite compiles.
    #[test]
    fn readme_example_is_the_compiled_example() {
        let example = include_str!("../examples/protect.rs");
        let body = example
            .split("// README:begin\n")
            .nth(1)
            .and_then(|s| s.split("// README:end").next())
            .expect("markers in examples/protect.rs");
        let readme = include_str!("../../../README.md");
        assert!(
            readme.contains(body),
            "README.md's library example differs from examples/protect.rs"
        );
    }
}
