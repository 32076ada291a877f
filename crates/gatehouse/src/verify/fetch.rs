//! Bounded HTTP fetches for metadata, JWKS and introspection.
//!
//! Every outbound request the verifier makes goes through [`Fetcher`], so the limits live in one
//! place:
//! - a per-request timeout (connect + headers + body);
//! - a response-size cap, enforced while streaming the body (a hostile or broken endpoint cannot
//!   make us buffer an unbounded document);
//! - redirects disabled: a metadata or JWKS endpoint that redirects elsewhere is an error, never a
//!   hop to an address we were not configured for (SSRF);
//! - `https` only, except loopback hosts (OAuth 2.1 §1.5 allows plain http only on loopback);
//!   `dangerous_allow_http` lifts this for other hosts and logs a warning.

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine as _;
use bytes::BytesMut;
use serde::de::DeserializeOwned;
use url::{Host, Url};

/// Limits for outbound fetches.
#[derive(Debug, Clone)]
pub struct FetchConfig {
    /// Deadline for one whole request (connect, headers and body). Default: 5 s.
    pub timeout: Duration,
    /// Largest response body accepted, in bytes. Default: 256 KiB (real JWKS and metadata
    /// documents are a few KiB).
    pub max_body_bytes: usize,
    /// Allow plain `http://` URLs on non-loopback hosts. Default: `false`. Keys or introspection
    /// answers fetched over plain http can be forged by anyone on the path; only for closed test
    /// networks. Logs a warning when a fetcher is built with it.
    pub dangerous_allow_http: bool,
}

impl Default for FetchConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            max_body_bytes: 256 * 1024,
            dangerous_allow_http: false,
        }
    }
}

/// Why a fetch failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The URL is not acceptable: not `https` outside loopback, or not http(s) at all.
    #[error("refusing to fetch {0}: https is required except for loopback hosts")]
    InsecureUrl(String),
    /// The request did not complete within the timeout.
    #[error("request timed out")]
    Timeout,
    /// The server answered with a status other than 200 (redirects included: they are not
    /// followed).
    #[error("unexpected HTTP status {0}")]
    Status(u16),
    /// The body exceeded the configured size cap.
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
    /// Connection or protocol failure.
    #[error("transport error: {0}")]
    Transport(String),
    /// The body was not the JSON document expected.
    #[error("response is not the expected JSON: {0}")]
    BadJson(String),
}

/// A fetched, parsed document and its freshness lifetime from `Cache-Control: max-age`.
#[derive(Debug, Clone)]
pub struct Fetched<T> {
    /// The parsed body.
    pub value: T,
    /// `max-age` of the response, when the server sent one.
    pub max_age: Option<Duration>,
}

/// How a client authenticates to an endpoint with a shared secret (RFC 6749 §2.3.1).
#[derive(Clone, Copy)]
pub(crate) enum FormAuth<'a> {
    /// HTTP Basic with form-urlencoded id and secret.
    Basic { id: &'a str, secret: &'a str },
    /// No authentication header (credentials, if any, are in the form).
    None,
}

/// An HTTP client with the limits of [`FetchConfig`]. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Fetcher {
    client: reqwest::Client,
    config: FetchConfig,
}

impl Fetcher {
    /// Builds a fetcher (rustls, no redirects, timeouts from `config`).
    pub fn new(config: FetchConfig) -> Result<Self, FetchError> {
        if config.dangerous_allow_http {
            tracing::warn!(
                "dangerous_allow_http is set: keys and introspection answers may be fetched over \
                 plain http from non-loopback hosts"
            );
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .user_agent(concat!("gatehouse/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FetchError::Transport(e.to_string()))?;
        Ok(Self { client, config })
    }

    /// The limits this fetcher applies.
    pub fn config(&self) -> &FetchConfig {
        &self.config
    }

    /// Checks the URL rule: `https`, or `http` to a loopback host (or any host with
    /// `dangerous_allow_http`).
    pub fn check_url(&self, url: &Url) -> Result<(), FetchError> {
        match url.scheme() {
            "https" => Ok(()),
            "http" if is_loopback(url) || self.config.dangerous_allow_http => Ok(()),
            _ => Err(FetchError::InsecureUrl(redact_url(url))),
        }
    }

    /// GETs `url` and parses the body as JSON.
    pub async fn get_json<T: DeserializeOwned>(&self, url: &Url) -> Result<Fetched<T>, FetchError> {
        self.check_url(url)?;
        let req = self
            .client
            .get(url.clone())
            .header(http::header::ACCEPT, "application/json");
        self.send_json(req).await
    }

    /// POSTs a form to `url` and parses the JSON answer (used by RFC 7662 introspection).
    pub(crate) async fn post_form_json<T: DeserializeOwned>(
        &self,
        url: &Url,
        form: &[(&str, &str)],
        auth: FormAuth<'_>,
    ) -> Result<Fetched<T>, FetchError> {
        self.check_url(url)?;
        self.send_json(self.form_request(url, form, auth)).await
    }

    /// POSTs a form like [`Fetcher::post_form_json`], and also reads a `4xx` answer's body as
    /// `E` (an RFC 6749 §5.2 error), for token requests whose refusals carry a reason.
    pub(crate) async fn post_form_json_or_error<T: DeserializeOwned, E: DeserializeOwned>(
        &self,
        url: &Url,
        form: &[(&str, &str)],
        auth: FormAuth<'_>,
    ) -> Result<T, FetchOrOAuth<E>> {
        self.check_url(url).map_err(FetchOrOAuth::Fetch)?;
        let resp = self
            .form_request(url, form, auth)
            .send()
            .await
            .map_err(|e| FetchOrOAuth::Fetch(map_reqwest_error(e)))?;
        let status = resp.status().as_u16();
        let body = self.read_bounded(resp).await.map_err(FetchOrOAuth::Fetch)?;
        match status {
            200 => serde_json::from_slice(&body)
                .map_err(|e| FetchOrOAuth::Fetch(FetchError::BadJson(e.to_string()))),
            400..=499 => match serde_json::from_slice(&body) {
                Ok(body) => Err(FetchOrOAuth::OAuth { status, body }),
                Err(_) => Err(FetchOrOAuth::Fetch(FetchError::Status(status))),
            },
            _ => Err(FetchOrOAuth::Fetch(FetchError::Status(status))),
        }
    }

    /// A form POST expecting JSON, with client authentication when given.
    fn form_request(
        &self,
        url: &Url,
        form: &[(&str, &str)],
        auth: FormAuth<'_>,
    ) -> reqwest::RequestBuilder {
        let req = self
            .client
            .post(url.clone())
            .header(http::header::ACCEPT, "application/json")
            .form(form);
        match auth {
            FormAuth::Basic { id, secret } => {
                req.header(http::header::AUTHORIZATION, basic_auth_value(id, secret))
            }
            FormAuth::None => req,
        }
    }

    async fn send_json<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<Fetched<T>, FetchError> {
        let resp = req.send().await.map_err(map_reqwest_error)?;
        let status = resp.status();
        if status != reqwest::StatusCode::OK {
            return Err(FetchError::Status(status.as_u16()));
        }
        let max_age = resp
            .headers()
            .get_all(http::header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(parse_max_age);
        let body = self.read_bounded(resp).await?;
        let value =
            serde_json::from_slice(&body).map_err(|e| FetchError::BadJson(e.to_string()))?;
        Ok(Fetched { value, max_age })
    }

    /// The body, refused as soon as it passes `max_body_bytes`.
    async fn read_bounded(&self, mut resp: reqwest::Response) -> Result<BytesMut, FetchError> {
        let cap = self.config.max_body_bytes;
        if resp.content_length().is_some_and(|len| len > cap as u64) {
            return Err(FetchError::TooLarge(cap));
        }
        // Stream the body and stop as soon as it passes the cap: Content-Length may be absent
        // (chunked) or lie.
        let mut body = BytesMut::new();
        while let Some(chunk) = resp.chunk().await.map_err(map_reqwest_error)? {
            if body.len() + chunk.len() > cap {
                return Err(FetchError::TooLarge(cap));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// The result of a token request that may be a well-formed OAuth error.
pub(crate) enum FetchOrOAuth<E> {
    /// Transport, a status without an OAuth body, size, JSON.
    Fetch(FetchError),
    /// An RFC 6749 §5.2 error response.
    OAuth {
        /// Its status.
        status: u16,
        /// Its body.
        body: E,
    },
}

fn map_reqwest_error(e: reqwest::Error) -> FetchError {
    if e.is_timeout() {
        FetchError::Timeout
    } else {
        // Strip the URL: error text goes to logs, and introspection URLs are not secret, but
        // keeping messages short and uniform keeps log lines low-cardinality.
        FetchError::Transport(e.without_url().to_string())
    }
}

/// `Authorization: Basic` with the id and secret form-urlencoded first, as RFC 6749 §2.3.1
/// requires (a secret containing `:` or non-ASCII would otherwise be split or mangled).
fn basic_auth_value(id: &str, secret: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let raw = format!("{}:{}", enc(id), enc(secret));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// True for `localhost`, 127.0.0.0/8 and `::1`.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// The URL without query and fragment, for error messages.
fn redact_url(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

/// Parses the `max-age` directive of one `Cache-Control` header value (RFC 9111 §5.2.2.1).
/// `no-store` / `no-cache` count as `max-age=0` (the caller clamps to its minimum TTL).
pub fn parse_max_age(header: &str) -> Option<Duration> {
    let mut result = None;
    for directive in header.split(',') {
        let directive = directive.trim();
        let (name, value) = match directive.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (directive, None),
        };
        if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
            return Some(Duration::ZERO);
        }
        if name.eq_ignore_ascii_case("max-age")
            && let Some(secs) = value.and_then(|v| v.parse::<u64>().ok())
        {
            result = Some(Duration::from_secs(secs));
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Router;
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::{get, post};

    use super::*;

    async fn serve(app: Router) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    }

    fn fetcher(timeout_ms: u64, cap: usize) -> Fetcher {
        Fetcher::new(FetchConfig {
            timeout: Duration::from_millis(timeout_ms),
            max_body_bytes: cap,
            dangerous_allow_http: false,
        })
        .unwrap()
    }

    #[test]
    fn max_age_parsing() {
        assert_eq!(
            parse_max_age("public, max-age=300"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            parse_max_age("Max-Age=\"60\", must-revalidate"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(parse_max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(parse_max_age("private"), None);
        assert_eq!(parse_max_age("max-age=abc"), None);
        assert_eq!(parse_max_age("s-maxage=10"), None);
    }

    #[test]
    fn url_rule_https_or_loopback() {
        let f = fetcher(1000, 1024);
        for ok in [
            "https://idp.example/jwks",
            "http://127.0.0.1:8080/jwks",
            "http://127.9.9.9/jwks",
            "http://[::1]:9000/jwks",
            "http://localhost/jwks",
            "http://LOCALHOST/jwks",
        ] {
            assert!(
                f.check_url(&Url::parse(ok).unwrap()).is_ok(),
                "{ok} must be allowed"
            );
        }
        for bad in [
            "http://idp.example/jwks",
            "http://10.0.0.1/jwks",
            "http://localhost.evil.example/jwks",
            "ftp://127.0.0.1/jwks",
            "file:///etc/passwd",
        ] {
            assert!(
                matches!(
                    f.check_url(&Url::parse(bad).unwrap()),
                    Err(FetchError::InsecureUrl(_))
                ),
                "{bad} must be refused"
            );
        }
        let dangerous = Fetcher::new(FetchConfig {
            dangerous_allow_http: true,
            ..Default::default()
        })
        .unwrap();
        assert!(
            dangerous
                .check_url(&Url::parse("http://idp.example/x").unwrap())
                .is_ok()
        );
        assert!(
            dangerous
                .check_url(&Url::parse("ftp://idp.example/x").unwrap())
                .is_err()
        );
    }

    #[test]
    fn basic_auth_form_encodes_credentials() {
        // RFC 6749 §2.3.1: "client:id" / "s3cr:t é" are urlencoded before base64.
        let v = basic_auth_value("client:id", "s3cr:t é");
        let b64 = v.strip_prefix("Basic ").unwrap();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert_eq!(
            std::str::from_utf8(&raw).unwrap(),
            "client%3Aid:s3cr%3At+%C3%A9"
        );
    }

    #[tokio::test]
    async fn fetches_json_with_max_age() {
        let app = Router::new().route(
            "/doc",
            get(|| async {
                (
                    [("cache-control", "public, max-age=123")],
                    axum::Json(serde_json::json!({"a": 1})),
                )
            }),
        );
        let addr = serve(app).await;
        let f = fetcher(2000, 1024);
        let got: Fetched<serde_json::Value> = f
            .get_json(&Url::parse(&format!("http://{addr}/doc")).unwrap())
            .await
            .unwrap();
        assert_eq!(got.value["a"], 1);
        assert_eq!(got.max_age, Some(Duration::from_secs(123)));
    }

    #[tokio::test]
    async fn typed_errors_status_redirect_size_json_timeout_transport() {
        let (release_tx, release_rx) = tokio::sync::watch::channel(false);
        let app = Router::new()
            .route("/404", get(|| async { StatusCode::NOT_FOUND }))
            .route(
                "/redirect",
                get(|| async {
                    (
                        StatusCode::FOUND,
                        [("location", "http://127.0.0.1:1/elsewhere")],
                    )
                        .into_response()
                }),
            )
            .route("/big", get(|| async { "x".repeat(4096) }))
            .route(
                "/chunked-big",
                get(|| async {
                    // No Content-Length: the cap must be enforced while streaming.
                    let chunks = futures::stream::iter(
                        (0..64)
                            .map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'a'; 256]))),
                    );
                    axum::body::Body::from_stream(chunks)
                }),
            )
            .route("/garbage", get(|| async { "not json" }))
            .route(
                "/slow",
                get(move || {
                    let mut rx = release_rx.clone();
                    async move {
                        // Held until the test ends: the client must give up on its own.
                        let _ = rx.wait_for(|v| *v).await;
                        "{}"
                    }
                }),
            );
        let addr = serve(app).await;
        let f = fetcher(300, 1024);
        let url = |p: &str| Url::parse(&format!("http://{addr}{p}")).unwrap();
        let get = |p: &'static str| {
            let f = f.clone();
            let u = url(p);
            async move { f.get_json::<serde_json::Value>(&u).await.map(|_| ()) }
        };
        assert_eq!(get("/404").await, Err(FetchError::Status(404)));
        assert_eq!(get("/redirect").await, Err(FetchError::Status(302)));
        assert_eq!(get("/big").await, Err(FetchError::TooLarge(1024)));
        assert_eq!(get("/chunked-big").await, Err(FetchError::TooLarge(1024)));
        assert!(matches!(get("/garbage").await, Err(FetchError::BadJson(_))));
        assert_eq!(get("/slow").await, Err(FetchError::Timeout));
        release_tx.send(true).unwrap();

        // Nothing listens on a freshly closed port.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let r = f
            .get_json::<serde_json::Value>(&Url::parse(&format!("http://{closed}/x")).unwrap())
            .await;
        assert!(matches!(r, Err(FetchError::Transport(_))), "{r:?}");
    }

    #[tokio::test]
    async fn post_form_sends_basic_auth_and_form() {
        let seen = Arc::new(AtomicUsize::new(0));
        let seen2 = seen.clone();
        let app = Router::new().route(
            "/introspect",
            post(move |headers: HeaderMap, body: String| {
                let seen = seen2.clone();
                async move {
                    let auth = headers
                        .get("authorization")
                        .unwrap()
                        .to_str()
                        .unwrap()
                        .to_owned();
                    assert_eq!(auth, basic_auth_value("rs", "pw"));
                    assert_eq!(body, "token=abc&token_type_hint=access_token");
                    seen.fetch_add(1, Ordering::SeqCst);
                    axum::Json(serde_json::json!({"active": true}))
                }
            }),
        );
        let addr = serve(app).await;
        let f = fetcher(2000, 1024);
        let got: Fetched<serde_json::Value> = f
            .post_form_json(
                &Url::parse(&format!("http://{addr}/introspect")).unwrap(),
                &[("token", "abc"), ("token_type_hint", "access_token")],
                FormAuth::Basic {
                    id: "rs",
                    secret: "pw",
                },
            )
            .await
            .unwrap();
        assert_eq!(got.value["active"], true);
        assert_eq!(seen.load(Ordering::SeqCst), 1);
    }
}
