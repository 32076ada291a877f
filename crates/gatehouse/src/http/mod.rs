//! The HTTP edge: Host/Origin guard, CORS, bearer extraction, challenges, RFC 9728 metadata,
//! request limits, and the tower layer that ties them together in front of an rmcp server.
//!
//! Only this module knows status codes and `WWW-Authenticate` ([`challenge`] is the one place
//! they are produced, for every refusal the edge makes: guard, authentication, policy, sessions,
//! bodies, rate and request limits, unknown paths). Verification ([`crate::verify`]) and policy
//! ([`crate::policy`]) stay HTTP-agnostic.
//!
//! [`Gatehouse::mount`] is the one call that puts an rmcp server behind all of it; see the
//! crate documentation for the short path, and [`Gatehouse::layer`] / [`Gatehouse::router`] for
//! mounting by hand.

pub mod bearer;
mod builder;
pub mod challenge;
pub mod cors;
mod dpop;
mod drain;
pub mod guard;
pub mod layer;
pub mod limits;
pub mod metadata;
mod server;
pub mod session;

pub use bearer::{BearerError, DEFAULT_MAX_TOKEN_BYTES, MalformedReason, extract_bearer};
pub use builder::{BuildError, GatehouseBuilder};
pub use challenge::{Challenges, DEFAULT_UNAVAILABLE_RETRY_AFTER, Rejection};
pub use cors::{CorsConfig, CorsConfigError};
pub use guard::{GuardConfig, GuardConfigError, HostGuard};
pub use layer::{GatehouseLayer, GatehouseService};
pub use limits::{DEFAULT_MAX_BODY_BYTES, RequestLimits};
pub use metadata::{DEFAULT_METADATA_MAX_AGE, MetadataDocument, ProtectedResourceMetadata};
pub use server::{Gatehouse, serve};
pub use session::SessionBindingConfig;
