//! Opt-in CORS for browser-based MCP clients (tower-http `CorsLayer`).
//!
//! Browsers can only read a `401`'s `WWW-Authenticate` (and so find the metadata) when the
//! response exposes it; without that, web clients report "cannot reach the server"
//! (github-mcp-server#3148). So, for the configured origins:
//! - the metadata document is readable cross-origin (`GET`, `HEAD`, preflight `OPTIONS`);
//! - MCP responses expose `WWW-Authenticate`, `Mcp-Session-Id` and `Retry-After`, **including
//!   refusals**: the CORS layer wraps the authentication layer;
//! - preflight for the MCP route allows `Authorization`, `Content-Type`, `Mcp-Protocol-Version`,
//!   `Mcp-Session-Id`, `Mcp-Method`, `Mcp-Name`, `Last-Event-ID` (plus configured extras, e.g.
//!   `Mcp-Param-*` names your tools declare).
//!
//! No `Access-Control-Allow-Credentials`: bearer tokens travel in a header the script sets, not in
//! cookies, so credentialed CORS is never needed. The configured origins are also added to the
//! Host/Origin guard's allowed origins, since a browser request from an origin the guard refuses
//! could never succeed.

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// CORS settings. CORS is off unless a `CorsConfig` is given to the builder.
#[derive(Debug, Clone)]
pub struct CorsConfig {
    /// Exact origins allowed, as browsers send them (`https://app.example.com`, no trailing `/`).
    pub allowed_origins: Vec<String>,
    /// Extra request headers allowed on the MCP route (e.g. `Mcp-Param-Region`).
    pub extra_allowed_headers: Vec<String>,
    /// How long browsers may cache a preflight answer (default 10 minutes).
    pub max_age: Duration,
}

impl CorsConfig {
    /// CORS for these origins with default settings.
    pub fn new<I, S>(origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            allowed_origins: origins.into_iter().map(Into::into).collect(),
            extra_allowed_headers: Vec::new(),
            max_age: Duration::from_secs(600),
        }
    }
}

/// A CORS setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CorsConfigError {
    /// An origin is not a valid header value or has a path.
    #[error("invalid CORS origin {0:?}: expected scheme://host[:port]")]
    Origin(String),
    /// A header name is invalid.
    #[error("invalid CORS header name {0:?}")]
    Header(String),
    /// `*` would allow every site to call the server with a user's token.
    #[error("CORS origin \"*\" is not supported; list the origins")]
    Wildcard,
}

/// The two CORS layers, built once.
#[derive(Debug, Clone)]
pub struct Cors {
    metadata: CorsLayer,
    mcp: CorsLayer,
}

const MCP_REQUEST_HEADERS: [&str; 8] = [
    "authorization",
    // RFC 9449: a browser client's proof travels in its own header.
    "dpop",
    "content-type",
    "mcp-protocol-version",
    "mcp-session-id",
    "mcp-method",
    "mcp-name",
    "last-event-id",
];

impl Cors {
    /// Validates `config` and builds the layers.
    pub fn new(config: &CorsConfig) -> Result<Self, CorsConfigError> {
        let mut origins = Vec::with_capacity(config.allowed_origins.len());
        for o in &config.allowed_origins {
            if o == "*" {
                return Err(CorsConfigError::Wildcard);
            }
            let path_free = o
                .split_once("://")
                .is_some_and(|(_, rest)| !rest.contains('/'));
            let v = HeaderValue::from_str(o)
                .ok()
                .filter(|_| path_free)
                .ok_or_else(|| CorsConfigError::Origin(o.clone()))?;
            origins.push(v);
        }
        let mut headers: Vec<HeaderName> = MCP_REQUEST_HEADERS
            .iter()
            .map(|h| HeaderName::from_static(h))
            .collect();
        for h in &config.extra_allowed_headers {
            headers.push(
                HeaderName::try_from(h.as_str()).map_err(|_| CorsConfigError::Header(h.clone()))?,
            );
        }
        let metadata = CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins.clone()))
            .allow_methods([Method::GET, Method::HEAD, Method::OPTIONS])
            // Discovery clients send the protocol version on metadata fetches too.
            .allow_headers([HeaderName::from_static("mcp-protocol-version")])
            .max_age(config.max_age);
        let mcp = CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
            .allow_headers(headers)
            .expose_headers([
                http::header::WWW_AUTHENTICATE,
                HeaderName::from_static("mcp-session-id"),
                http::header::RETRY_AFTER,
                // A browser client reads the revision the server answered with.
                HeaderName::from_static("mcp-protocol-version"),
                // … and the DPoP nonce to retry with (RFC 9449 §9).
                HeaderName::from_static("dpop-nonce"),
            ])
            .max_age(config.max_age);
        Ok(Self { metadata, mcp })
    }

    /// The layer for the metadata route.
    pub fn metadata_layer(&self) -> CorsLayer {
        self.metadata.clone()
    }

    /// The layer for the MCP route (wrap it around the authentication layer).
    pub fn mcp_layer(&self) -> CorsLayer {
        self.mcp.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_validation() {
        assert!(Cors::new(&CorsConfig::new(["https://app.example.com"])).is_ok());
        assert_eq!(
            Cors::new(&CorsConfig::new(["*"])).unwrap_err(),
            CorsConfigError::Wildcard
        );
        assert!(matches!(
            Cors::new(&CorsConfig::new(["https://app.example.com/path"])),
            Err(CorsConfigError::Origin(_))
        ));
        assert!(matches!(
            Cors::new(&CorsConfig::new(["app.example.com"])),
            Err(CorsConfigError::Origin(_))
        ));
        let mut c = CorsConfig::new(["https://a.example"]);
        c.extra_allowed_headers.push("bad header".into());
        assert!(matches!(Cors::new(&c), Err(CorsConfigError::Header(_))));
    }
}
