//! Clients of the interactive flows: dynamically registered ones (RFC 7591) and those whose
//! `client_id` is the URL of a client ID metadata document
//! (draft-ietf-oauth-client-id-metadata-document). Also the redirect URI rules of RFC 8252.

use std::time::Duration;

use serde_json::{Map, Value};
use url::Url;

use crate::config::ClientSecret;
use crate::rules::is_scope_token;

/// A refusal of the interactive flows: an OAuth error code with a fixed description (nothing
/// from the request is echoed). The HTTP layer turns it into JSON, a redirect or a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub code: &'static str,
    pub description: &'static str,
}

impl Refusal {
    pub(crate) const fn new(code: &'static str, description: &'static str) -> Self {
        Self { code, description }
    }
}

/// How a client authenticates at the token endpoint (RFC 7591 §2 `token_endpoint_auth_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthMethod {
    /// A public client: `client_id` in the form, no secret.
    None,
    ClientSecretBasic,
    ClientSecretPost,
}

impl AuthMethod {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Self::None),
            "client_secret_basic" => Some(Self::ClientSecretBasic),
            "client_secret_post" => Some(Self::ClientSecretPost),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
        }
    }
}

/// A client of the authorization code flow.
#[derive(Debug, Clone)]
pub(crate) struct OAuthClient {
    pub client_id: String,
    pub client_name: Option<String>,
    pub redirect_uris: Vec<String>,
    pub auth: AuthMethod,
    /// Set exactly for confidential clients.
    pub secret: Option<ClientSecret>,
    /// Whether `refresh_token` is among its grant types (RFC 7591 §2).
    pub refresh: bool,
    /// What the registration response reports back (RFC 7591 §3.2.1).
    pub grant_types: Vec<&'static str>,
    pub scope: Option<String>,
    pub issued_at: u64,
}

impl OAuthClient {
    /// The client as seen at the token endpoint when it presents a metadata document URL as
    /// `client_id`: public, and bound to its grants by that URL (the document was checked when
    /// the code was issued; whether it may refresh was recorded with the code).
    pub(crate) fn metadata_document_client(client_id: &str) -> Self {
        Self {
            client_id: client_id.to_owned(),
            client_name: None,
            redirect_uris: Vec::new(),
            auth: AuthMethod::None,
            secret: None,
            refresh: true,
            grant_types: vec!["authorization_code", "refresh_token"],
            scope: None,
            issued_at: 0,
        }
    }

    /// RFC 7591 §3.2.1 registration response.
    pub(crate) fn registration_response(&self) -> Value {
        let mut m = Map::new();
        m.insert("client_id".into(), self.client_id.clone().into());
        m.insert("client_id_issued_at".into(), self.issued_at.into());
        if let Some(s) = &self.secret {
            m.insert("client_secret".into(), s.expose().into());
            // 0: it does not expire (RFC 7591 §3.2.1).
            m.insert("client_secret_expires_at".into(), 0.into());
        }
        m.insert("redirect_uris".into(), self.redirect_uris.clone().into());
        m.insert(
            "token_endpoint_auth_method".into(),
            self.auth.as_str().into(),
        );
        m.insert("grant_types".into(), self.grant_types.clone().into());
        m.insert("response_types".into(), vec!["code"].into());
        if let Some(n) = &self.client_name {
            m.insert("client_name".into(), n.clone().into());
        }
        if let Some(s) = &self.scope {
            m.insert("scope".into(), s.clone().into());
        }
        Value::Object(m)
    }
}

const INVALID_REDIRECT: Refusal = Refusal::new(
    "invalid_redirect_uri",
    "redirect_uris must be https, http loopback or private-use scheme URIs without fragments",
);

fn invalid_metadata(description: &'static str) -> Refusal {
    Refusal::new("invalid_client_metadata", description)
}

/// Client metadata (RFC 7591 §2) as this server understands it. Known members it has no use
/// for (logo_uri, contacts, …) and unknown ones are ignored, as §3.1 allows.
pub(crate) fn parse_client_metadata(
    doc: &Map<String, Value>,
    default_auth: AuthMethod,
) -> Result<OAuthClient, Refusal> {
    let redirect_uris: Vec<String> = match doc.get("redirect_uris") {
        Some(Value::Array(a)) if !a.is_empty() => a
            .iter()
            .map(|v| {
                v.as_str()
                    .filter(|u| is_acceptable_redirect_uri(u))
                    .map(str::to_owned)
            })
            .collect::<Option<_>>()
            .ok_or(INVALID_REDIRECT)?,
        // The code flow needs somewhere to send the code.
        _ => return Err(INVALID_REDIRECT),
    };
    let auth = match doc.get("token_endpoint_auth_method") {
        None => default_auth,
        Some(v) => v.as_str().and_then(AuthMethod::parse).ok_or(invalid_metadata(
            "token_endpoint_auth_method must be none, client_secret_basic or client_secret_post",
        ))?,
    };
    let strings = |name: &str, default: &[&'static str], known: &[&'static str]| {
        let Some(v) = doc.get(name) else {
            return Some(default.to_vec());
        };
        let mut out: Vec<&'static str> = Vec::new();
        for s in v.as_array()? {
            let k = known.iter().copied().find(|k| Some(*k) == s.as_str())?;
            if !out.contains(&k) {
                out.push(k);
            }
        }
        Some(out)
    };
    // RFC 7591 §2: default grant_types ["authorization_code"], response_types ["code"].
    let grant_types = strings(
        "grant_types",
        &["authorization_code"],
        &["authorization_code", "refresh_token"],
    )
    .filter(|g| g.contains(&"authorization_code"))
    .ok_or(invalid_metadata(
        "grant_types must include authorization_code and may add refresh_token only",
    ))?;
    strings("response_types", &["code"], &["code"])
        .filter(|r| r == &["code"])
        .ok_or(invalid_metadata("response_types must be [\"code\"]"))?;
    let text = |name: &str| match doc.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid_metadata("client_name and scope must be strings")),
    };
    let client_name = text("client_name")?;
    let scope = text("scope")?;
    if scope
        .as_deref()
        .is_some_and(|s| !s.split(' ').all(is_scope_token))
    {
        return Err(invalid_metadata(
            "scope must be space-separated scope tokens",
        ));
    }
    Ok(OAuthClient {
        client_id: String::new(),
        client_name,
        redirect_uris,
        auth,
        secret: None,
        refresh: grant_types.contains(&"refresh_token"),
        grant_types,
        scope,
        issued_at: 0,
    })
}

/// The loopback host names of RFC 8252 §7.3 (plus `localhost`, which §8.3 discourages but real
/// clients such as MCP Inspector use).
const LOOPBACK_HOSTS: [&str; 3] = ["127.0.0.1", "[::1]", "localhost"];

/// Splits `http://<loopback host>[:port]<rest>` into host and rest, without normalizing
/// anything: redirect URIs are compared as strings (RFC 6749 §3.1.2.3, OAuth 2.1 §4.1.1), the
/// port being the one exception.
fn loopback_parts(uri: &str) -> Option<(&str, &str)> {
    let after = uri.strip_prefix("http://")?;
    let host = LOOPBACK_HOSTS.into_iter().find(|h| after.starts_with(h))?;
    let mut rest = &after[host.len()..];
    if let Some(port) = rest.strip_prefix(':') {
        let digits = port.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 5 {
            return None;
        }
        rest = &port[digits..];
    }
    (rest.is_empty() || rest.starts_with('/') || rest.starts_with('?')).then_some((host, rest))
}

/// RFC 8252 §7: `https` URIs, `http` loopback URIs (§7.3) and private-use schemes, which §7.1
/// wants in reverse domain name form (so: containing a dot). No fragments (RFC 6749 §3.1.2).
pub(crate) fn is_acceptable_redirect_uri(uri: &str) -> bool {
    if uri.contains('#') {
        return false;
    }
    let Ok(url) = Url::parse(uri) else {
        return false;
    };
    if !url.username().is_empty() || url.password().is_some() {
        return false;
    }
    match url.scheme() {
        "https" => url.host().is_some(),
        "http" => loopback_parts(uri).is_some(),
        scheme => scheme.contains('.'),
    }
}

/// Whether a presented redirect URI matches a registered one: exactly, or for loopback URIs
/// with any port (RFC 8252 §7.3: the port is chosen at request time).
pub(crate) fn redirect_uri_matches(registered: &str, presented: &str) -> bool {
    if registered == presented {
        return true;
    }
    match (loopback_parts(registered), loopback_parts(presented)) {
        (Some(r), Some(p)) => r == p,
        _ => false,
    }
}

/// The `form-action` source that lets the browser follow the consent form's redirect to
/// `redirect_uri` (Chromium applies form-action to redirects after a form submission).
pub(crate) fn form_action_source(redirect_uri: &str) -> Option<String> {
    let url = Url::parse(redirect_uri).ok()?;
    match url.scheme() {
        "http" | "https" => Some(url.origin().ascii_serialization()),
        scheme => Some(format!("{scheme}:")),
    }
}

/// The host shown on the consent page for a redirect URI (the scheme for private-use ones).
pub(crate) fn redirect_host(redirect_uri: &str) -> String {
    Url::parse(redirect_uri)
        .ok()
        .map(|u| match u.host_str() {
            Some(h) => match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_owned(),
            },
            None => format!("{}:", u.scheme()),
        })
        .unwrap_or_default()
}

/// Whether `client_id` is a client ID metadata document URL: `https` with a path, or — this
/// server being loopback-only — `http` on a loopback host. No fragment, no credentials, no dot
/// segments (draft-ietf-oauth-client-id-metadata-document §3).
pub(crate) fn is_metadata_document_url(client_id: &str) -> bool {
    let Ok(url) = Url::parse(client_id) else {
        return false;
    };
    let scheme_ok = match url.scheme() {
        "https" => true,
        "http" => loopback_parts(client_id).is_some(),
        _ => false,
    };
    scheme_ok
        && url.path() != "/"
        && !client_id.contains('#')
        && url.username().is_empty()
        && url.password().is_none()
        && !url.path().split('/').any(|seg| seg == "." || seg == "..")
        && !client_id.contains("/./")
        && !client_id.contains("/../")
        && !client_id.ends_with("/.")
        && !client_id.ends_with("/..")
}

/// Largest accepted metadata document.
pub(crate) const MAX_METADATA_DOCUMENT: usize = 5 * 1024;

/// Default limit on fetching one metadata document, connection to last byte.
pub const DEFAULT_METADATA_DOCUMENT_TIMEOUT: Duration = Duration::from_secs(3);

/// Fetches and checks a client ID metadata document. No redirects are followed (the client
/// builder disables them), the body is read at most to [`MAX_METADATA_DOCUMENT`] bytes and the
/// whole exchange is bounded by `timeout`. Only public clients may be described this way.
pub(crate) async fn fetch_metadata_document(
    http: &reqwest::Client,
    client_id: &str,
    timeout: Duration,
) -> Result<OAuthClient, &'static str> {
    const LATE: &str = "the client's metadata document could not be fetched in time";
    let failed = |e: reqwest::Error| {
        if e.is_timeout() {
            LATE
        } else {
            "the client's metadata document could not be fetched"
        }
    };
    let fetch = async {
        let mut resp = http
            .get(client_id)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(failed)?;
        if resp.status() != reqwest::StatusCode::OK {
            return Err("the client's metadata document could not be fetched");
        }
        if resp
            .content_length()
            .is_some_and(|l| l > MAX_METADATA_DOCUMENT as u64)
        {
            return Err("the client's metadata document is too large");
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(failed)? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_METADATA_DOCUMENT {
                return Err("the client's metadata document is too large");
            }
        }
        Ok(body)
    };
    let body = tokio::time::timeout(timeout, fetch)
        .await
        .map_err(|_| LATE)??;
    let invalid = "the client's metadata document is invalid";
    let Ok(Value::Object(doc)) = serde_json::from_slice::<Value>(&body) else {
        return Err(invalid);
    };
    // The document must name itself: otherwise anyone could point at someone else's document.
    if doc.get("client_id").and_then(Value::as_str) != Some(client_id) {
        return Err("the client's metadata document names another client_id");
    }
    // A public document cannot hold a secret; absent, the method is `none`.
    let mut client = parse_client_metadata(&doc, AuthMethod::None).map_err(|_| invalid)?;
    if client.auth != AuthMethod::None {
        return Err("a metadata document client must use token_endpoint_auth_method none");
    }
    client.client_id = client_id.to_owned();
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uri_rules() {
        for ok in [
            "https://app.example/cb",
            "http://127.0.0.1/cb",
            "http://127.0.0.1:6274/oauth/callback",
            "http://[::1]:8080/cb",
            "http://localhost:6274/oauth/callback?x=1",
            "com.example.app:/oauth2redirect",
        ] {
            assert!(is_acceptable_redirect_uri(ok), "{ok}");
        }
        for bad in [
            "http://example.com/cb",
            "http://127.0.0.1.evil.test/cb",
            "http://localhost.evil.test/cb",
            "https://app.example/cb#frag",
            "myapp:/cb",
            "javascript:alert(1)",
            "https://user:pw@app.example/cb",
            "/relative",
        ] {
            assert!(!is_acceptable_redirect_uri(bad), "{bad}");
        }
    }

    #[test]
    fn loopback_port_may_vary_nothing_else() {
        let reg = "http://127.0.0.1:6274/oauth/callback";
        assert!(redirect_uri_matches(reg, reg));
        assert!(redirect_uri_matches(
            reg,
            "http://127.0.0.1:9999/oauth/callback"
        ));
        assert!(redirect_uri_matches(reg, "http://127.0.0.1/oauth/callback"));
        for bad in [
            "http://127.0.0.1:6274/oauth/callback/x",
            "http://127.0.0.1:6274/oauth/Callback",
            "http://localhost:6274/oauth/callback",
            "http://127.0.0.1:6274/oauth/callback?x",
            "https://127.0.0.1:6274/oauth/callback",
        ] {
            assert!(!redirect_uri_matches(reg, bad), "{bad}");
        }
        let https = "https://app.example/cb";
        assert!(!redirect_uri_matches(https, "https://app.example:444/cb"));
    }

    #[test]
    fn metadata_document_urls() {
        for ok in [
            "https://app.example/client.json",
            "http://127.0.0.1:9/client",
            "http://localhost:9/c/d.json",
        ] {
            assert!(is_metadata_document_url(ok), "{ok}");
        }
        for bad in [
            "https://app.example",
            "https://app.example/",
            "http://app.example/client.json",
            "https://app.example/a/../client.json",
            "https://app.example/client.json#x",
            "https://u@app.example/client.json",
            "dcr-abc",
        ] {
            assert!(!is_metadata_document_url(bad), "{bad}");
        }
    }

    #[test]
    fn form_action_and_host() {
        assert_eq!(
            form_action_source("http://127.0.0.1:6274/cb").unwrap(),
            "http://127.0.0.1:6274"
        );
        assert_eq!(
            form_action_source("com.example.app:/cb").unwrap(),
            "com.example.app:"
        );
        assert_eq!(redirect_host("http://localhost:6274/cb"), "localhost:6274");
    }
}
