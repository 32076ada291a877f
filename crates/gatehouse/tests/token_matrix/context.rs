//! The whole stack, on loopback: a `TestAuthServer` X (JWKS + introspection), optionally a
//! second trusted issuer Y, an `AttackerServer`, a `VerifierChain` started by discovery from the
//! issuer URLs, the `Authenticator`, and `Gatehouse` in front of a real rmcp
//! `StreamableHttpService` whose tools echo the `Caller` they receive. Requests go through
//! reqwest over real sockets.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gatehouse::ResourceUrl;
use gatehouse::http::Gatehouse;
use gatehouse::observe::{Observer, ToolCall};
use gatehouse::verify::cache::{Authenticator, CacheStats};
use gatehouse::verify::chain::{ChainConfig, VerifierChain};
use gatehouse::verify::introspection::{ClientSecret, IntrospectionConfig};
use gatehouse::verify::jwt::{JwtIssuerConfig, TypPolicy};
use gatehouse_testkit::{
    Alg, AttackerServer, DEFAULT_INTROSPECTION_CLIENT_ID, DEFAULT_INTROSPECTION_CLIENT_SECRET,
    TestAuthServer,
};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use tokio_util::sync::CancellationToken;

use crate::common::{call_body, policy, service, stateless_config, tool_text};

/// Subject and client of issuer Y's default tokens (X uses the testkit defaults).
pub(crate) const Y_SUBJECT: &str = "yuki";
pub(crate) const Y_CLIENT: &str = "y-client";
/// The claim the verifiers read the tenant from.
pub(crate) const TENANT_CLAIM: &str = "tenant";
/// `Retry-After` configured for 503 (not the library default, so the test sees the setting).
pub(crate) const RETRY_AFTER_SECS: u64 = 7;
/// Introspection fetch timeout (the "slow endpoint" case waits far longer than this).
pub(crate) const INTROSPECTION_TIMEOUT: Duration = Duration::from_millis(300);

// ---------------------------------------------------------------------------------------------
// Observer: the edge's reason codes, so each case can assert *why* it was refused (the client
// only ever sees the same terse challenge).

#[derive(Default)]
pub(crate) struct Recorder {
    reasons: Mutex<Vec<&'static str>>,
    denials: Mutex<Vec<String>>,
}

impl Recorder {
    /// Reason codes recorded since the last call.
    pub(crate) fn take_reasons(&self) -> Vec<&'static str> {
        std::mem::take(&mut *self.reasons.lock().unwrap())
    }

    /// Tool denials (`tool:required scopes`) recorded since the last call.
    pub(crate) fn take_denials(&self) -> Vec<String> {
        std::mem::take(&mut *self.denials.lock().unwrap())
    }
}

impl Observer for Recorder {
    fn tool_call(&self, call: &ToolCall<'_>) {
        if let Some(required) = call.required {
            self.denials.lock().unwrap().push(format!(
                "{}:{}",
                call.tool.unwrap_or("?"),
                required.to_space_separated()
            ));
        }
    }

    fn rejected(&self, reason: &'static str) {
        self.reasons.lock().unwrap().push(reason);
    }
}

// ---------------------------------------------------------------------------------------------
// Context

/// How a context differs from the default.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// `TypPolicy::accept_jwt` (IdP-compatibility option).
    pub(crate) accept_jwt: bool,
    /// `JwksConfig::min_refresh_interval` for every JWT issuer.
    pub(crate) min_refresh_interval: Duration,
    /// Start a second trusted issuer Y.
    pub(crate) second_issuer: bool,
    /// Publish RS256, PS256 and EdDSA keys too (costs two RSA key generations).
    pub(crate) all_algs: bool,
    /// Issuer X's JWKS answers 503 while the chain starts.
    pub(crate) jwks_down_at_start: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            accept_jwt: false,
            // Every unknown kid may refresh, so "exactly one refresh" is observable per request.
            min_refresh_interval: Duration::ZERO,
            second_issuer: false,
            all_algs: false,
            jwks_down_at_start: false,
        }
    }
}

/// Counter readings that a case compares before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Counters {
    pub(crate) jwks_x: u64,
    pub(crate) jwks_y: u64,
    pub(crate) introspection: u64,
    pub(crate) attacker: u64,
    pub(crate) cache: CacheStats,
}

pub(crate) struct TestContext {
    /// Issuer X: trusted for JWTs and the introspection endpoint for opaque tokens.
    pub(crate) x: TestAuthServer,
    /// Issuer Y: a second trusted JWT issuer (when configured).
    pub(crate) y: Option<TestAuthServer>,
    pub(crate) attacker: AttackerServer,
    /// `http://127.0.0.1:PORT` of the resource server.
    pub(crate) base: String,
    /// The resource URL (`{base}/mcp`), the audience of valid tokens.
    pub(crate) resource: String,
    pub(crate) gatehouse: Gatehouse,
    pub(crate) authenticator: Arc<Authenticator>,
    pub(crate) observer: Arc<Recorder>,
    client: reqwest::Client,
    cancel: CancellationToken,
}

impl Drop for TestContext {
    fn drop(&mut self) {
        // Stops the resource server and the JWKS refresh tasks.
        self.cancel.cancel();
    }
}

async fn auth_server(opts: &Options, subject: Option<(&str, &str)>) -> TestAuthServer {
    let mut b = TestAuthServer::builder();
    if opts.all_algs {
        b = b.algs(&Alg::PUBLISHED);
    } else {
        b = b.algs(&[Alg::ES256]);
    }
    if let Some((sub, client)) = subject {
        b = b.subject(sub).client_id(client);
    }
    b.start().await
}

impl TestContext {
    pub(crate) async fn start(opts: Options) -> Self {
        let (x, y, attacker) = tokio::join!(
            auth_server(&opts, None),
            async {
                if opts.second_issuer {
                    Some(auth_server(&opts, Some((Y_SUBJECT, Y_CLIENT))).await)
                } else {
                    None
                }
            },
            AttackerServer::start(),
        );

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");
        let resource = format!("{base}/mcp");
        x.set_audience(&resource);
        if let Some(y) = &y {
            y.set_audience(&resource);
        }

        let jwt = |issuer: &str| {
            let mut c = JwtIssuerConfig::new(issuer, &resource);
            c.typ = TypPolicy {
                accept_jwt: opts.accept_jwt,
                accept_missing: false,
            };
            c.tenant_claim = Some(TENANT_CLAIM.into());
            c.jwks.min_refresh_interval = opts.min_refresh_interval;
            c
        };
        let mut jwt_issuers = vec![jwt(x.issuer())];
        if let Some(y) = &y {
            jwt_issuers.push(jwt(y.issuer()));
        }
        // Endpoint discovered from X's metadata, like the jwks_uri.
        let mut introspection = IntrospectionConfig::new(
            x.issuer(),
            DEFAULT_INTROSPECTION_CLIENT_ID,
            ClientSecret::new(DEFAULT_INTROSPECTION_CLIENT_SECRET),
            &resource,
        );
        introspection.tenant_claim = Some(TENANT_CLAIM.into());
        introspection.fetch.timeout = INTROSPECTION_TIMEOUT;

        let cancel = CancellationToken::new();
        if opts.jwks_down_at_start {
            x.set_jwks_down(true);
        }
        let chain = VerifierChain::start(
            ChainConfig {
                jwt_issuers,
                introspection: vec![introspection],
                ..Default::default()
            },
            cancel.clone(),
        )
        .await
        .expect("chain starts (discovery from the issuer URLs)");

        let observer = Arc::new(Recorder::default());
        let mut servers = vec![x.issuer().to_owned()];
        if let Some(y) = &y {
            servers.push(y.issuer().to_owned());
        }
        let gatehouse = Gatehouse::builder(ResourceUrl::parse(&resource).unwrap())
            .authorization_servers(servers)
            .verifier(Arc::new(chain))
            .policy(policy(&[("void_invoice", "invoices:write")]))
            .resource_name("Invoices (token matrix)")
            .listen_addr(addr)
            .unavailable_retry_after(Duration::from_secs(RETRY_AFTER_SECS))
            .observer(observer.clone())
            .build()
            .unwrap();
        let authenticator = gatehouse.authenticator().clone();
        let config = gatehouse.configure_rmcp(stateless_config());
        let app = gatehouse.router(service(NeverSessionManager::default(), config));
        let stop = cancel.clone();
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
            .unwrap();
        });

        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        Self {
            x,
            y,
            attacker,
            base,
            resource,
            gatehouse,
            authenticator,
            observer,
            client,
            cancel,
        }
    }

    pub(crate) fn y(&self) -> &TestAuthServer {
        self.y
            .as_ref()
            .expect("context started with a second issuer")
    }

    /// `resource_metadata` of every challenge.
    pub(crate) fn metadata_url(&self) -> String {
        format!("{}/.well-known/oauth-protected-resource/mcp", self.base)
    }

    pub(crate) fn counters(&self) -> Counters {
        Counters {
            jwks_x: self.x.jwks_fetches(),
            jwks_y: self.y.as_ref().map_or(0, TestAuthServer::jwks_fetches),
            introspection: self.x.introspection_calls(),
            attacker: self.attacker.hits(),
            cache: self.authenticator.stats(),
        }
    }

    /// An HTTP client for this context (HTTP/1.1, connection pool).
    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// A `tools/call` of `tool` with `auth`.
    pub(crate) async fn call(&self, tool: &str, auth: &Auth) -> Reply {
        self.call_with(&self.client, tool, auth).await
    }

    /// A `lookup_invoice` call per token in `auths`, all at once over one HTTP/2 connection (so
    /// at most 200 requests in flight at a time, hyper's default stream limit).
    pub(crate) async fn lookup_all_over_h2(&self, auths: &[Auth]) -> Vec<Reply> {
        let h2 = reqwest::Client::builder()
            .no_proxy()
            .http2_prior_knowledge()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        let calls = auths
            .iter()
            .map(|auth| self.call_with(&h2, "lookup_invoice", auth));
        futures::future::join_all(calls).await
    }

    async fn call_with(&self, client: &reqwest::Client, tool: &str, auth: &Auth) -> Reply {
        let mut url = self.resource.clone();
        if let Auth::Query(t) | Auth::BearerAndQuery(t) = auth {
            url = format!("{url}?access_token={t}");
        }
        let mut req = client
            .post(url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .body(call_body(tool));
        match auth {
            Auth::None | Auth::Query(_) => {}
            Auth::Bearer(t) | Auth::BearerAndQuery(t) => {
                req = req.header("authorization", format!("Bearer {t}"));
            }
            Auth::Raw(values) => {
                // reqwest appends: several values become several header lines.
                for v in values {
                    req = req.header("authorization", v.as_str());
                }
            }
        }
        Reply::read(req.send().await.expect("request reaches the server")).await
    }
}

/// How the request presents its credentials.
#[derive(Debug, Clone)]
pub(crate) enum Auth {
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// These exact `Authorization` header values, one header line each.
    Raw(Vec<String>),
    /// `?access_token=<token>` only.
    Query(String),
    /// The header and the query string at once.
    BearerAndQuery(String),
}

/// What came back.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    /// Every `WWW-Authenticate` header value, in order.
    pub(crate) www_authenticate: Vec<String>,
    pub(crate) retry_after: Option<String>,
    pub(crate) content_type: Option<String>,
    pub(crate) cache_control: Option<String>,
    pub(crate) body: String,
}

impl Reply {
    async fn read(resp: reqwest::Response) -> Self {
        let h = resp.headers();
        let text = |name: &str| {
            h.get(name)
                .map(|v| v.to_str().expect("ASCII header").to_owned())
        };
        let www_authenticate = h
            .get_all("www-authenticate")
            .iter()
            .map(|v| v.to_str().expect("ASCII challenge").to_owned())
            .collect();
        let retry_after = text("retry-after");
        let content_type = text("content-type");
        let cache_control = text("cache-control");
        Self {
            status: resp.status().as_u16(),
            www_authenticate,
            retry_after,
            content_type,
            cache_control,
            body: resp.text().await.expect("body"),
        }
    }

    /// The text a tool returned, or an explanation of why there is none.
    pub(crate) fn tool_text(&self) -> Result<String, String> {
        tool_text(&self.body)
    }
}
