//! The protected resource's canonical URL (MCP "Canonical Server URI", RFC 8707 §2, RFC 9728 §1.2).

use std::fmt;

use url::Url;

/// The canonical URL of the protected MCP endpoint, e.g. `https://mcp.example.com/mcp`.
///
/// Validated once at start-up: absolute `http`/`https`, a host, no fragment (MUST, RFC 8707 §2),
/// no query (SHOULD NOT, spec-requirements A28), no userinfo, and no trailing slash unless
/// explicitly allowed. The original string is kept byte-for-byte because RFC 9728 §3.3 compares
/// `resource` by code points and tokens' `aud` must equal it.
#[derive(Clone, PartialEq, Eq)]
pub struct ResourceUrl {
    text: String,
    url: Url,
}

/// Why a resource URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceUrlError {
    /// Not an absolute URL.
    #[error("resource URL is not an absolute URL: {0}")]
    NotAbsolute(String),
    /// Scheme other than http/https.
    #[error("resource URL must use https (or http for local development), got {0:?}")]
    Scheme(String),
    /// No host.
    #[error("resource URL has no host")]
    NoHost,
    /// Has a `#fragment`.
    #[error("resource URL must not have a fragment (RFC 8707 §2)")]
    Fragment,
    /// Has a `?query`.
    #[error("resource URL should not have a query (RFC 8707 §2)")]
    Query,
    /// Has `user:pass@`.
    #[error("resource URL must not carry credentials")]
    Userinfo,
    /// Plain `http` on a host that is not loopback: bearer tokens would cross the network in
    /// the clear (OAuth 2.1 §1.5, A26).
    #[error(
        "resource URL must use https outside loopback (OAuth 2.1 §1.5); plain http is only \
         acceptable behind a TLS-terminating proxy, through the dangerous_allow_insecure_http \
         option"
    )]
    InsecureHttp,
    /// Ends with `/` while that was not allowed.
    #[error("resource URL ends with '/'; drop it or set allow_trailing_slash (MCP canonical URI)")]
    TrailingSlash,
    /// The URL differs from its normalised form (upper-case host or scheme, default port, …).
    #[error("resource URL is not in canonical form; use {0}")]
    NotCanonical(String),
}

/// Options of [`ResourceUrl::parse_with`]; the defaults are what [`ResourceUrl::parse`] applies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParseOptions {
    /// Permit a path ending in `/`. Default false.
    pub allow_trailing_slash: bool,
    /// Permit plain `http` on a host that is not loopback. Default false; only for a server
    /// behind a TLS-terminating proxy. Logs a warning when it is what made a URL acceptable.
    pub dangerous_allow_insecure_http: bool,
}

impl ResourceUrl {
    /// Validates a resource URL with the default rules: https (http on loopback only), no
    /// trailing slash.
    pub fn parse(s: &str) -> Result<Self, ResourceUrlError> {
        Self::parse_with(s, ParseOptions::default())
    }

    /// Validates a resource URL with `options`.
    pub fn parse_with(s: &str, options: ParseOptions) -> Result<Self, ResourceUrlError> {
        let allow_trailing_slash = options.allow_trailing_slash;
        let url = Url::parse(s).map_err(|_| ResourceUrlError::NotAbsolute(s.to_owned()))?;
        if url.scheme() != "https" && url.scheme() != "http" {
            return Err(ResourceUrlError::Scheme(url.scheme().to_owned()));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(ResourceUrlError::NoHost);
        }
        if url.fragment().is_some() || s.contains('#') {
            return Err(ResourceUrlError::Fragment);
        }
        if url.query().is_some() || s.contains('?') {
            return Err(ResourceUrlError::Query);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ResourceUrlError::Userinfo);
        }
        // `Url` renders the origin-only form with a '/' path; compare against that only when the
        // input had a path at all.
        let canonical = url.as_str();
        let input_has_path = s.splitn(4, '/').nth(3).is_some();
        if input_has_path {
            if canonical != s {
                return Err(ResourceUrlError::NotCanonical(canonical.to_owned()));
            }
        } else if canonical.trim_end_matches('/') != s {
            return Err(ResourceUrlError::NotCanonical(
                canonical.trim_end_matches('/').to_owned(),
            ));
        }
        if input_has_path && s.ends_with('/') && !allow_trailing_slash {
            return Err(ResourceUrlError::TrailingSlash);
        }
        let parsed = Self {
            text: s.to_owned(),
            url,
        };
        if parsed.url.scheme() == "http" && !parsed.is_loopback() {
            if !options.dangerous_allow_insecure_http {
                return Err(ResourceUrlError::InsecureHttp);
            }
            tracing::warn!(
                resource = s,
                "dangerous_allow_insecure_http: a non-loopback resource served over plain http"
            );
        }
        Ok(parsed)
    }

    /// The URL exactly as configured.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The parsed URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The path of the MCP endpoint on this server (`/mcp`; `/` for an origin-only resource).
    pub fn path(&self) -> &str {
        self.url.path()
    }

    /// `host[:port]` as clients send it in `Host` (default ports omitted).
    pub fn authority(&self) -> String {
        let host = self.url.host_str().unwrap_or_default();
        match self.url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        }
    }

    /// The path of the protected-resource metadata document on this server, by RFC 9728 §3.1:
    /// `/.well-known/oauth-protected-resource` followed by the resource's path, with the path's
    /// trailing `/` (for an origin-only resource) removed.
    pub fn metadata_path(&self) -> String {
        let path = self.path().trim_end_matches('/');
        format!("/.well-known/oauth-protected-resource{path}")
    }

    /// The absolute URL of the metadata document, advertised as `resource_metadata`.
    pub fn metadata_url(&self) -> String {
        let mut origin = self.url.origin().ascii_serialization();
        origin.push_str(&self.metadata_path());
        origin
    }

    /// True when the host is a loopback name or address.
    pub fn is_loopback(&self) -> bool {
        match self.url.host() {
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(a)) => a.is_loopback(),
            Some(url::Host::Ipv6(a)) => a.is_loopback(),
            None => false,
        }
    }
}

impl fmt::Debug for ResourceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResourceUrl({:?})", self.text)
    }
}

impl fmt::Display for ResourceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for ResourceUrl {
    type Err = ResourceUrlError;
    /// [`ResourceUrl::parse`] with the default rules.
    fn from_str(s: &str) -> Result<Self, ResourceUrlError> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // spec-requirements A5, A7, A28.
    #[test]
    fn accepts_canonical_urls_and_derives_metadata_location() {
        let r = ResourceUrl::parse("https://mcp.example.com/mcp").unwrap();
        assert_eq!(
            r.metadata_path(),
            "/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            r.metadata_url(),
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(r.authority(), "mcp.example.com");

        let r = ResourceUrl::parse("http://127.0.0.1:8080/a/b").unwrap();
        assert_eq!(
            r.metadata_url(),
            "http://127.0.0.1:8080/.well-known/oauth-protected-resource/a/b"
        );
        assert_eq!(r.authority(), "127.0.0.1:8080");
        assert!(r.is_loopback());

        let r = ResourceUrl::parse("https://mcp.example.com").unwrap();
        assert_eq!(r.metadata_path(), "/.well-known/oauth-protected-resource");
        assert_eq!(r.as_str(), "https://mcp.example.com");
    }

    #[test]
    fn rejects_each_bad_form_with_its_reason() {
        use ResourceUrlError::*;
        let cases: &[(&str, ResourceUrlError)] = &[
            ("/mcp", NotAbsolute("/mcp".into())),
            ("ftp://h/mcp", Scheme("ftp".into())),
            ("https://h/mcp#x", Fragment),
            ("https://h/mcp?x=1", Query),
            ("https://u:p@h/mcp", Userinfo),
            ("https://h/mcp/", TrailingSlash),
            (
                "https://H.example/mcp",
                NotCanonical("https://h.example/mcp".into()),
            ),
            ("https://h:443/mcp", NotCanonical("https://h/mcp".into())),
        ];
        for (input, want) in cases {
            assert_eq!(&ResourceUrl::parse(input).unwrap_err(), want, "{input}");
        }
        let slash = ParseOptions {
            allow_trailing_slash: true,
            ..ParseOptions::default()
        };
        assert!(ResourceUrl::parse_with("https://h/mcp/", slash).is_ok());
    }

    // A26 / OAuth 2.1 §1.5: a public resource must be https; plain http only on loopback or
    // through the explicitly dangerous option.
    #[test]
    fn plain_http_only_on_loopback_unless_dangerously_allowed() {
        for ok in [
            "https://mcp.example.com/mcp",
            "http://127.0.0.1:8080/mcp",
            "http://localhost:9/mcp",
            "http://[::1]:9/mcp",
        ] {
            assert!(ResourceUrl::parse(ok).is_ok(), "{ok}");
        }
        for public in ["http://mcp.example.com/mcp", "http://10.0.0.1:8080/mcp"] {
            assert_eq!(
                ResourceUrl::parse(public).unwrap_err(),
                ResourceUrlError::InsecureHttp,
                "{public}"
            );
            let dangerous = ParseOptions {
                dangerous_allow_insecure_http: true,
                ..ParseOptions::default()
            };
            assert!(
                ResourceUrl::parse_with(public, dangerous).is_ok(),
                "{public}"
            );
        }
    }
}
