//! Authorization-server metadata discovery: RFC 8414 and OpenID Connect Discovery 1.0.
//!
//! For an issuer `https://host/path` the candidates are tried in this order (the order MCP asks
//! clients to use, ASD26 §Authorization Server Metadata Discovery; spec row A29):
//! 1. `https://host/.well-known/oauth-authorization-server/path` (RFC 8414 §3.1, path inserted);
//! 2. `https://host/.well-known/openid-configuration/path` (RFC 8414 §5 applied to OIDC);
//! 3. `https://host/path/.well-known/openid-configuration` (OIDC Discovery §4, path appended —
//!    the form Keycloak < 26.4 and Okta answer).
//!
//! A terminating `/` of the issuer path is removed before building either form (RFC 8414 §3.1,
//! OIDC Discovery §4.1). The document's `issuer` must equal the configured issuer byte for byte
//! (RFC 8414 §3.3): a mismatch is an error, never silently accepted.

use serde::Deserialize;
use url::Url;

use crate::verify::fetch::{FetchError, Fetcher};

/// The parts of RFC 8414 / OIDC metadata a resource server uses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AuthorizationServerMetadata {
    /// The issuer identifier (equal to the configured issuer once returned by [`discover`]).
    pub issuer: String,
    /// Where the signing keys are published.
    #[serde(default, deserialize_with = "lenient_url")]
    pub jwks_uri: Option<Url>,
    /// RFC 7662 introspection endpoint.
    #[serde(default, deserialize_with = "lenient_url")]
    pub introspection_endpoint: Option<Url>,
    /// Token endpoint.
    #[serde(default, deserialize_with = "lenient_url")]
    pub token_endpoint: Option<Url>,
    /// Authorization endpoint.
    #[serde(default, deserialize_with = "lenient_url")]
    pub authorization_endpoint: Option<Url>,
    /// Registration endpoint (RFC 7591), if any.
    #[serde(default, deserialize_with = "lenient_url")]
    pub registration_endpoint: Option<Url>,
    /// Scopes the AS advertises.
    #[serde(default)]
    pub scopes_supported: Vec<String>,
    /// PKCE methods (an OIDC AS used with MCP must list `S256`).
    #[serde(default)]
    pub code_challenge_methods_supported: Vec<String>,
    /// Client authentication methods accepted at the introspection endpoint.
    #[serde(default)]
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
}

/// An optional URL field: absent, null or unparseable all read as `None` (an odd optional field
/// must not make the whole document unusable; required ones are checked by the caller).
fn lenient_url<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Url>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(v.as_ref()
        .and_then(|v| v.as_str())
        .and_then(|s| Url::parse(s).ok()))
}

/// Why discovery failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    /// The configured issuer is not an absolute `https` (or loopback) URL without query and
    /// fragment (RFC 8414 §2).
    #[error("invalid issuer identifier {0:?}")]
    InvalidIssuer(String),
    /// A metadata document was found but its `issuer` differs from the configured one.
    #[error("metadata at {url} names issuer {found:?}, expected {expected:?}")]
    IssuerMismatch {
        /// The document URL.
        url: String,
        /// The configured issuer.
        expected: String,
        /// The issuer in the document.
        found: String,
    },
    /// No candidate URL returned a usable document; carries the last failure.
    #[error("no metadata document found for issuer {issuer:?}: {last}")]
    NotFound {
        /// The configured issuer.
        issuer: String,
        /// The failure of the last candidate.
        last: FetchError,
    },
    /// The AS could not be reached (timeout or transport error): the remaining candidates are on
    /// the same host, so they are not tried.
    #[error("metadata fetch failed: {0}")]
    Fetch(FetchError),
}

/// The candidate metadata URLs for `issuer`, in the order they are tried (deduplicated).
pub fn well_known_urls(issuer: &str) -> Result<Vec<Url>, DiscoveryError> {
    let invalid = || DiscoveryError::InvalidIssuer(issuer.to_owned());
    let url = Url::parse(issuer).map_err(|_| invalid())?;
    if url.query().is_some()
        || url.fragment().is_some()
        || !matches!(url.scheme(), "https" | "http")
        || url.host().is_none()
    {
        return Err(invalid());
    }
    let origin = url.origin().ascii_serialization();
    let path = url.path().trim_end_matches('/');
    let candidates = [
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
        format!("{origin}/.well-known/openid-configuration{path}"),
        format!("{origin}{path}/.well-known/openid-configuration"),
    ];
    let mut out: Vec<Url> = Vec::with_capacity(3);
    for c in candidates {
        let u = Url::parse(&c).map_err(|_| invalid())?;
        if !out.contains(&u) {
            out.push(u);
        }
    }
    Ok(out)
}

/// Discovers the metadata of `issuer`, trying [`well_known_urls`] in order.
///
/// A candidate answering with an error status or an unparseable document is skipped; a timeout
/// or transport failure stops the search; a document whose `issuer` differs is an error.
pub async fn discover(
    fetcher: &Fetcher,
    issuer: &str,
) -> Result<AuthorizationServerMetadata, DiscoveryError> {
    let urls = well_known_urls(issuer)?;
    let mut last = FetchError::Status(404);
    for url in urls {
        match fetcher.get_json::<AuthorizationServerMetadata>(&url).await {
            Ok(doc) => {
                let meta = doc.value;
                // RFC 8414 §3.3: "The "issuer" value returned MUST be identical to the
                // authorization server's issuer identifier value into which the well-known URI
                // string was inserted". Byte-exact: no slash or case normalisation.
                if meta.issuer != issuer {
                    return Err(DiscoveryError::IssuerMismatch {
                        url: url.to_string(),
                        expected: issuer.to_owned(),
                        found: meta.issuer,
                    });
                }
                tracing::debug!(issuer, %url, "authorization server metadata discovered");
                return Ok(meta);
            }
            Err(
                e @ (FetchError::Timeout | FetchError::Transport(_) | FetchError::InsecureUrl(_)),
            ) => {
                return Err(DiscoveryError::Fetch(e));
            }
            Err(e) => {
                tracing::debug!(issuer, %url, error = %e, "metadata candidate skipped");
                last = e;
            }
        }
    }
    Err(DiscoveryError::NotFound {
        issuer: issuer.to_owned(),
        last,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::extract::{Request, State};
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};

    use super::*;
    use crate::verify::fetch::FetchConfig;

    fn urls(issuer: &str) -> Vec<String> {
        well_known_urls(issuer)
            .unwrap()
            .into_iter()
            .map(|u| u.to_string())
            .collect()
    }

    #[test]
    fn candidate_order_path_insert_then_append() {
        // A29: path-aware insertion first (RFC 8414), then OIDC insertion, then OIDC append.
        assert_eq!(
            urls("https://kc.example/realms/acme"),
            [
                "https://kc.example/.well-known/oauth-authorization-server/realms/acme",
                "https://kc.example/.well-known/openid-configuration/realms/acme",
                "https://kc.example/realms/acme/.well-known/openid-configuration",
            ]
        );
        // No path: the two OIDC forms coincide and are tried once.
        assert_eq!(
            urls("https://tenant.auth0.example/"),
            [
                "https://tenant.auth0.example/.well-known/oauth-authorization-server",
                "https://tenant.auth0.example/.well-known/openid-configuration",
            ]
        );
        // Terminating slash removed before insertion (Hydra-style issuer).
        assert_eq!(
            urls("https://h.example/oauth/")[0],
            "https://h.example/.well-known/oauth-authorization-server/oauth"
        );
    }

    #[test]
    fn invalid_issuers_refused() {
        for bad in [
            "not a url",
            "https://x.example/?q=1",
            "https://x.example/#f",
            "ftp://x.example",
        ] {
            assert!(
                matches!(well_known_urls(bad), Err(DiscoveryError::InvalidIssuer(_))),
                "{bad}"
            );
        }
    }

    #[derive(Clone)]
    struct Md {
        /// Path that answers, and the issuer it claims (None: answer with `{base}{issuer_path}`).
        serve_at: &'static str,
        issuer_override: Option<String>,
        hits: Arc<Mutex<Vec<String>>>,
        base: Arc<Mutex<String>>,
    }

    async fn handler(State(md): State<Md>, req: Request) -> Response {
        let path = req.uri().path().to_owned();
        md.hits.lock().unwrap().push(path.clone());
        if path != md.serve_at {
            return StatusCode::NOT_FOUND.into_response();
        }
        let base = md.base.lock().unwrap().clone();
        let issuer = md
            .issuer_override
            .clone()
            .unwrap_or(format!("{base}/realms/acme"));
        axum::Json(serde_json::json!({
            "issuer": issuer,
            "jwks_uri": format!("{base}/realms/acme/certs"),
            "introspection_endpoint": format!("{base}/realms/acme/introspect"),
            "token_endpoint": format!("{base}/realms/acme/token"),
            "code_challenge_methods_supported": ["S256"],
        }))
        .into_response()
    }

    async fn start(serve_at: &'static str, issuer_override: Option<String>) -> (String, Md) {
        let md = Md {
            serve_at,
            issuer_override,
            hits: Arc::default(),
            base: Arc::default(),
        };
        let app = Router::new().fallback(handler).with_state(md.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        *md.base.lock().unwrap() = base.clone();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (base, md)
    }

    fn fetcher() -> Fetcher {
        Fetcher::new(FetchConfig::default()).unwrap()
    }

    #[tokio::test]
    async fn falls_back_to_append_form_and_returns_endpoints() {
        let (base, md) = start("/realms/acme/.well-known/openid-configuration", None).await;
        let issuer = format!("{base}/realms/acme");
        let meta = discover(&fetcher(), &issuer).await.unwrap();
        assert_eq!(meta.issuer, issuer);
        assert_eq!(
            meta.jwks_uri.unwrap().as_str(),
            format!("{base}/realms/acme/certs")
        );
        assert_eq!(
            meta.introspection_endpoint.unwrap().as_str(),
            format!("{base}/realms/acme/introspect")
        );
        assert_eq!(meta.code_challenge_methods_supported, ["S256"]);
        assert_eq!(
            *md.hits.lock().unwrap(),
            [
                "/.well-known/oauth-authorization-server/realms/acme",
                "/.well-known/openid-configuration/realms/acme",
                "/realms/acme/.well-known/openid-configuration",
            ]
        );
    }

    #[tokio::test]
    async fn rfc8414_form_wins_when_present() {
        let (base, md) = start("/.well-known/oauth-authorization-server/realms/acme", None).await;
        discover(&fetcher(), &format!("{base}/realms/acme"))
            .await
            .unwrap();
        assert_eq!(md.hits.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn issuer_mismatch_is_an_error() {
        // A29 / RFC 8414 §3.3: a trailing-slash difference is already a mismatch.
        let (base, _md) = start("/.well-known/oauth-authorization-server/realms/acme", None).await;
        let err = discover(&fetcher(), &format!("{base}/realms/acme/"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, DiscoveryError::IssuerMismatch { .. }),
            "{err:?}"
        );

        let (base, _md) = start(
            "/.well-known/oauth-authorization-server/realms/acme",
            Some("https://evil.example/realms/acme".into()),
        )
        .await;
        let err = discover(&fetcher(), &format!("{base}/realms/acme"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, DiscoveryError::IssuerMismatch { found, .. } if found.contains("evil"))
        );
    }

    #[tokio::test]
    async fn nothing_found_reports_last_status() {
        let (base, _md) = start("/nowhere", None).await;
        let err = discover(&fetcher(), &format!("{base}/realms/acme"))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                DiscoveryError::NotFound {
                    last: FetchError::Status(404),
                    ..
                }
            ),
            "{err:?}"
        );
    }
}
