//! RFC 9728 OAuth 2.0 Protected Resource Metadata, served without a token.
//!
//! - Location: `ResourceUrl::metadata_path()` — the path-suffixed well-known URI (RFC 9728 §3.1,
//!   spec-requirements A7), so that `resource` matches the URL clients call (RFC 9728 §3.3, A6).
//! - `resource` is byte-for-byte the configured resource (RFC 9728 §3.3 compares code points).
//! - `authorization_servers` is non-empty (MCP ASD26, A4).
//! - `bearer_methods_supported: ["header"]`: MCP forbids query tokens (A12, A24).
//! - Fields without a value are omitted, never sent empty (RFC 9728 §3.2, A8).
//! - `offline_access` is never listed (AUTH26 §Refresh Tokens, A11).
//! - `Cache-Control: public, max-age=…` (RFC 9728 §7.10, E19).
//!
//! The document is serialized once at build time; the handler serves the same bytes.

use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response};
use serde::Serialize;

/// Default `max-age` of the metadata response.
pub const DEFAULT_METADATA_MAX_AGE: Duration = Duration::from_secs(3600);

/// The protected-resource metadata document (RFC 9728 §2). Only the fields Gatehouse sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProtectedResourceMetadata {
    /// The resource identifier, exactly as configured.
    pub resource: String,
    /// Issuer identifiers of the authorization servers that mint tokens for this resource.
    pub authorization_servers: Vec<String>,
    /// Scopes a client may request (RECOMMENDED; omitted when empty).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    /// Always `["header"]`.
    pub bearer_methods_supported: Vec<String>,
    /// Human-readable name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    /// URL of developer documentation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_documentation: Option<String>,
    /// DPoP proof algorithms accepted (RFC 9728 §2, RFC 9449 §5.1); absent without DPoP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dpop_signing_alg_values_supported: Option<Vec<String>>,
    /// `true` when every token must be DPoP-bound; absent otherwise (its default is false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dpop_bound_access_tokens_required: Option<bool>,
}

/// The serialized document and its response headers, ready to serve.
#[derive(Debug, Clone)]
pub struct MetadataDocument {
    document: ProtectedResourceMetadata,
    bytes: Bytes,
    cache_control: HeaderValue,
}

impl MetadataDocument {
    /// Serializes `document` once.
    pub fn new(document: ProtectedResourceMetadata, max_age: Duration) -> Self {
        // Serializing a struct of strings cannot fail.
        let bytes = Bytes::from(serde_json::to_vec(&document).unwrap_or_default());
        let cache_control = HeaderValue::try_from(format!("public, max-age={}", max_age.as_secs()))
            .unwrap_or_else(|_| HeaderValue::from_static("public, max-age=3600"));
        Self {
            document,
            bytes,
            cache_control,
        }
    }

    /// The document.
    pub fn document(&self) -> &ProtectedResourceMetadata {
        &self.document
    }

    /// The JSON bytes served.
    pub fn json(&self) -> &Bytes {
        &self.bytes
    }

    /// The `200 application/json` response (cheap: the body is a refcounted clone).
    pub fn response(&self) -> Response<Body> {
        Response::builder()
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(CACHE_CONTROL, self.cache_control.clone())
            .body(Body::from(self.bytes.clone()))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(scopes: &[&str], name: Option<&str>) -> MetadataDocument {
        MetadataDocument::new(
            ProtectedResourceMetadata {
                resource: "https://mcp.example.com/mcp".into(),
                authorization_servers: vec!["https://as.example.com".into()],
                scopes_supported: scopes.iter().map(|s| s.to_string()).collect(),
                bearer_methods_supported: vec!["header".into()],
                resource_name: name.map(str::to_owned),
                resource_documentation: None,
                dpop_signing_alg_values_supported: None,
                dpop_bound_access_tokens_required: None,
            },
            Duration::from_secs(600),
        )
    }

    // A4, A5, A8, A10, A12, E19: exact bytes; empty fields omitted.
    #[test]
    fn document_snapshot() {
        let d = doc(&["invoices:read"], Some("Billing"));
        insta::assert_snapshot!(std::str::from_utf8(d.json()).unwrap(), @r#"{"resource":"https://mcp.example.com/mcp","authorization_servers":["https://as.example.com"],"scopes_supported":["invoices:read"],"bearer_methods_supported":["header"],"resource_name":"Billing"}"#);
        let d = doc(&[], None);
        assert_eq!(
            std::str::from_utf8(d.json()).unwrap(),
            r#"{"resource":"https://mcp.example.com/mcp","authorization_servers":["https://as.example.com"],"bearer_methods_supported":["header"]}"#
        );
        let resp = d.response();
        assert_eq!(resp.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(resp.headers()[CACHE_CONTROL], "public, max-age=600");
    }
}
