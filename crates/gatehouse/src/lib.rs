#![doc = include_str!("../GUIDE.md")]
#![deny(missing_docs)]

pub mod caller;
pub mod http;
pub mod jws;
pub mod mcp;
pub mod observe;
pub mod policy;
pub mod presets;
pub mod resource;
pub mod settings;
pub mod tenancy;
pub mod upstream;
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
