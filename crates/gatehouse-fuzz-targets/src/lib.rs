//! The bodies of Gatehouse's fuzz targets, one plain `pub fn <target>(data: &[u8])` each.
//!
//! `fuzz/` (a cargo-fuzz project outside the workspace, built with the nightly toolchain) wraps
//! each function in a three-line libFuzzer target; `tests/replay.rs` runs every committed corpus
//! input and every crash input through the same functions with the stable toolchain, so CI
//! replays them without a sanitizer build. See `fuzz/README.md` for the campaigns.
//!
//! Every function drives the library's real code path with the input, and asserts what must hold
//! whatever the input: **a panic is a finding**. The invariants are written next to each target.
//! Nothing here touches the network or the file system (except what the configuration itself
//! names, as `gatehouse check` would).

#![deny(missing_docs)]

mod bearer;
mod config;
mod introspection;
mod jwks;
mod jwt;
mod tool_name;

pub use bearer::bearer;
pub use config::config;
pub use introspection::introspection;
pub use jwks::jwks;
pub use jwt::{fixed_jwt_verifier, jwt};
pub use tool_name::tool_name;

/// The body of a fuzz target.
pub type Target = fn(&[u8]);

/// The fuzz targets by name, as `fuzz/fuzz_targets/<name>.rs` and `fuzz/corpus/<name>/` name
/// them.
pub const TARGETS: &[(&str, Target)] = &[
    ("bearer", bearer),
    ("jwt", jwt),
    ("jwks", jwks),
    ("introspection", introspection),
    ("tool_name", tool_name),
    ("config", config),
];

/// The issuer of the fixed key set (the JWT target) and of the introspection responses.
pub const ISSUER: &str = "https://issuer.fuzz.example";

/// The audience (this resource server) every accepted token must name.
pub const AUDIENCE: &str = "https://mcp.fuzz.example/mcp";

/// The fixed JWKS of the JWT target: an RSA key (`kid: rsa`, no `alg`, so all six RSA
/// algorithms), a P-256 key (`ec`, ES256) and an Ed25519 key (`ed`, EdDSA). The private keys
/// beside it (`fixtures/*.pem`) sign the seed tokens; see `fixtures/README.md`.
pub const FIXED_JWKS: &str = include_str!("../fixtures/jwks.json");
