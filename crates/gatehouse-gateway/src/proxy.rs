//! Configuration of a gateway process (`gatehouse proxy`): the library's settings shared by every
//! proxied server (listener, issuers, tenancy, rate limits, request limits), and one `[[proxy]]`
//! entry per upstream MCP server — its path, command and policy. Each upstream is its own
//! protected resource: its resource URL is the server's base URL plus its path, with its own
//! RFC 9728 document, audience and scopes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use gatehouse::observe::Observer;
use gatehouse::settings::{PolicySettings, Settings, SettingsError};
use gatehouse::{Gatehouse, ResourceUrl};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::assertion::{Asserter, AssertionSettings};
use crate::config::{
    HttpTarget, Isolation, Secret, StdioCommand, Transport, Trust, UpstreamServer,
};
use crate::handler::GatewayHandler;

/// One `[[proxy]]` entry: an upstream MCP server and how it is exposed. Either `command`
/// (stdio) or `url` (Streamable HTTP).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxiedServer {
    /// A name for logs, the audit trail and the ready line.
    pub name: String,
    /// Where clients reach it (`/fs/mcp`); its resource URL is the server's base plus this.
    pub path: String,
    /// stdio: the program that starts it.
    #[serde(default)]
    pub command: Option<String>,
    /// stdio: its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// stdio: its working directory.
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// stdio: variables of the gateway's environment it may see. Default `PATH`, `HOME`.
    #[serde(default = "crate::config::default_env_allow")]
    pub env_allow: Vec<String>,
    /// stdio: variables set for it.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Streamable HTTP: its MCP endpoint (https; http only on loopback, unless
    /// `dangerous_allow_insecure_http`).
    #[serde(default)]
    pub url: Option<String>,
    /// Streamable HTTP: allow a plain-http `url` on another host (a container network, a
    /// service mesh that encrypts for you). Off by default: the requests — and the
    /// gateway's credential for the upstream, if any — cross the network unencrypted. Warned
    /// at start-up.
    #[serde(default)]
    pub dangerous_allow_insecure_http: bool,
    /// Streamable HTTP: a PEM file of the certificate authorities an https `url` is checked
    /// against instead of the system's (a private CA). Default: the system's trust store.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Streamable HTTP: the header carrying the upstream's own credential. Default
    /// `authorization` (sent as `Bearer <credential>`).
    #[serde(default)]
    pub credential_header: Option<String>,
    /// Streamable HTTP: the credential, from an environment variable …
    #[serde(default)]
    pub credential_env: Option<String>,
    /// … or a file. Never the client's token.
    #[serde(default)]
    pub credential_file: Option<PathBuf>,
    /// Streamable HTTP: or the credential of this `[[upstreams]]` entry — RFC 8693 token
    /// exchange of the caller's token for one minted for the upstream (the user as `sub`, the
    /// gateway as `act`), or the gateway's client credentials — per user, cached until shortly
    /// before it expires. The entry's `base_url` must contain `url`.
    #[serde(default)]
    pub credential_upstream: Option<String>,
    /// Streamable HTTP: or, per user, a short-lived JWT the gateway signs for the upstream
    /// (`[proxy.assertion]`: audience, lifetime, key file), verifiable with the gateway's
    /// published keys at `/.well-known/jwks.json`.
    #[serde(default)]
    pub assertion: Option<AssertionSettings>,
    /// `per_principal` (default: one process or session per user), `per_session` (one per MCP
    /// session; needs `server.stateful_sessions`) or `shared` (an upstream that gets no
    /// per-user identity and holds no per-user state).
    #[serde(default)]
    pub isolation: Isolation,
    /// Most processes (sessions) at once. Default 100.
    #[serde(default = "default_max_processes", alias = "max_connections")]
    pub max_processes: u64,
    /// A process (session) unused this long is stopped. Default 600.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_seconds: u64,
    /// Scopes per tool (names or globs), the route scopes, the hierarchy, list filtering.
    /// `unnamed_tools` defaults to `deny` here: a tool the upstream adds stays hidden until the
    /// policy names it.
    #[serde(default)]
    pub policy: PolicySettings,
}

fn default_max_processes() -> u64 {
    100
}
fn default_idle_timeout() -> u64 {
    600
}

impl ProxiedServer {
    fn base(name: &str, path: &str) -> Self {
        Self {
            name: name.into(),
            path: path.into(),
            command: None,
            args: Vec::new(),
            cwd: None,
            env_allow: crate::config::default_env_allow(),
            env: BTreeMap::new(),
            url: None,
            dangerous_allow_insecure_http: false,
            ca_file: None,
            credential_header: None,
            credential_env: None,
            credential_file: None,
            credential_upstream: None,
            assertion: None,
            isolation: Isolation::default(),
            max_processes: default_max_processes(),
            idle_timeout_seconds: default_idle_timeout(),
            policy: PolicySettings::default(),
        }
    }

    /// A stdio entry with the defaults.
    pub fn stdio(name: &str, path: &str, command: StdioCommand) -> Self {
        Self {
            command: Some(command.command),
            args: command.args,
            cwd: command.cwd,
            env_allow: command.env_allow,
            env: command.env,
            ..Self::base(name, path)
        }
    }

    /// A Streamable HTTP entry with the defaults (no credential).
    pub fn http(name: &str, path: &str, url: &str) -> Self {
        Self {
            url: Some(url.into()),
            ..Self::base(name, path)
        }
    }

    /// The upstream this entry describes; errors name the key (`proxy[i].…`).
    pub fn upstream(&self, index: usize) -> Result<UpstreamServer, SettingsError> {
        let key = |k: &str| format!("proxy[{index}].{k}");
        if self.command.is_some() && self.assertion.is_some() {
            return Err(SettingsError::new(
                key("assertion"),
                "only for a Streamable HTTP upstream (url)",
            ));
        }
        if self.command.is_some() && self.dangerous_allow_insecure_http {
            return Err(SettingsError::new(
                key("dangerous_allow_insecure_http"),
                "only for a Streamable HTTP upstream (url)",
            ));
        }
        if self.command.is_some() && self.ca_file.is_some() {
            return Err(SettingsError::new(
                key("ca_file"),
                "only for a Streamable HTTP upstream (url)",
            ));
        }
        let transport = match (&self.command, &self.url) {
            (Some(command), None) => Transport::Stdio(StdioCommand {
                command: command.clone(),
                args: self.args.clone(),
                cwd: self.cwd.clone(),
                env_allow: self.env_allow.clone(),
                env: self.env.clone(),
            }),
            (None, Some(url)) => {
                let parsed = url::Url::parse(url).map_err(|e| SettingsError::new(key("url"), e))?;
                match parsed.scheme() {
                    "https" => {}
                    // The library's rule for its own outbound URLs: `localhost`, 127.0.0.0/8, `::1`.
                    "http" if gatehouse::verify::fetch::is_loopback(&parsed) => {}
                    "http" if self.dangerous_allow_insecure_http => tracing::warn!(
                        name = %self.name,
                        url = %url,
                        "dangerous_allow_insecure_http: requests to this upstream, and the \
                         gateway's credential for it, cross the network unencrypted"
                    ),
                    _ => {
                        return Err(SettingsError::new(
                            key("url"),
                            "must be https (http only on loopback, unless \
                             dangerous_allow_insecure_http)",
                        ));
                    }
                }
                let trust = match &self.ca_file {
                    None => Trust::System,
                    Some(_) if parsed.scheme() != "https" => {
                        return Err(SettingsError::new(key("ca_file"), "only for an https url"));
                    }
                    Some(file) => Trust::from_pem_file(file)
                        .map_err(|e| SettingsError::new(key("ca_file"), e))?,
                };
                let identities = [
                    self.credential_upstream.is_some(),
                    self.credential_env.is_some() || self.credential_file.is_some(),
                    self.assertion.is_some(),
                ];
                if identities.iter().filter(|set| **set).count() > 1 {
                    return Err(SettingsError::new(
                        key("assertion"),
                        "set one of assertion, credential_upstream or a static credential",
                    ));
                }
                if self.isolation == Isolation::Shared
                    && (self.credential_upstream.is_some() || self.assertion.is_some())
                {
                    return Err(SettingsError::new(
                        key("isolation"),
                        "shared cannot carry a per-user identity (assertion, credential_upstream)",
                    ));
                }
                if let Some(a) = &self.assertion
                    && !(30..=3600).contains(&a.lifetime_seconds)
                {
                    return Err(SettingsError::new(
                        key("assertion.lifetime_seconds"),
                        "must be between 30 and 3600",
                    ));
                }
                if self.credential_upstream.is_some()
                    && (self.credential_env.is_some() || self.credential_file.is_some())
                {
                    return Err(SettingsError::new(
                        key("credential_upstream"),
                        "set credential_upstream or a static credential, not both",
                    ));
                }
                let secret = match (&self.credential_env, &self.credential_file) {
                    (None, None) => None,
                    (Some(var), None) => Some(std::env::var(var).map_err(|_| {
                        SettingsError::new(key("credential_env"), format!("{var} is not set"))
                    })?),
                    (None, Some(file)) => Some(
                        std::fs::read_to_string(file)
                            .map_err(|e| SettingsError::new(key("credential_file"), e))?
                            .trim()
                            .to_owned(),
                    ),
                    (Some(_), Some(_)) => {
                        return Err(SettingsError::new(
                            key("credential_file"),
                            "set credential_env or credential_file, not both",
                        ));
                    }
                };
                Transport::Http(HttpTarget {
                    url: url.clone(),
                    credential: secret.map(|s| {
                        let header = self
                            .credential_header
                            .clone()
                            .unwrap_or_else(|| "authorization".into());
                        (header, Secret::new(s))
                    }),
                    via_upstream: self.credential_upstream.clone(),
                    // Signed with a key and issuer that `build` knows.
                    assertion: None,
                    trust,
                })
            }
            _ => {
                return Err(SettingsError::new(
                    key("command"),
                    "set exactly one of command (stdio) or url (Streamable HTTP)",
                ));
            }
        };
        Ok(UpstreamServer {
            isolation: self.isolation,
            max_connections: self.max_processes.max(1),
            idle_timeout: Duration::from_secs(self.idle_timeout_seconds.max(1)),
            ..UpstreamServer::new(transport)
        })
    }
}

/// A built gateway: the router serving every proxied server, and their handlers.
#[derive(Debug)]
pub struct Gateway {
    /// Serve with `gatehouse::serve` (or any server that provides `ConnectInfo`).
    pub router: Router,
    /// (name, resource URL, handler, protection) per proxied server, in configuration order.
    pub servers: Vec<(String, ResourceUrl, GatewayHandler, Gatehouse)>,
}

impl Gateway {
    /// Readiness, per proxied server: its issuers' keys are loaded, and its upstream is not
    /// failing to start. `(all ready, details)`; serve it as `/readyz`.
    pub fn readiness(&self) -> (bool, serde_json::Value) {
        let mut all = true;
        let mut servers = serde_json::Map::new();
        for (name, _, handler, gatehouse) in &self.servers {
            let keys = gatehouse.authenticator().ready();
            let upstream = handler.pool().healthy();
            all &= keys && upstream;
            servers.insert(
                name.clone(),
                serde_json::json!({ "keys": keys, "upstream": upstream }),
            );
        }
        (all, serde_json::json!({ "servers": servers }))
    }
}

/// Builds every proxied server for a listener bound to `bound`: per entry, the library's
/// settings with the entry's resource (`server.resource` as base + `path`, or the loopback URL)
/// and policy, then its upstream (one process is started and stopped to learn what it offers).
/// Every server's tool calls go to the audit trail ([`crate::audit`]); `observers` see them too,
/// and every refusal. Errors name the key at fault.
pub async fn build(
    settings: &Settings,
    proxied: &[ProxiedServer],
    bound: SocketAddr,
    observers: &[Arc<dyn Observer>],
    cancel: CancellationToken,
) -> Result<Gateway, SettingsError> {
    if proxied.is_empty() {
        return Err(SettingsError::new(
            "proxy",
            "configure at least one [[proxy]] server",
        ));
    }
    let base = match &settings.server.resource {
        Some(r) => r.trim_end_matches('/').to_owned(),
        None => format!("http://{bound}"),
    };
    let mut paths = BTreeMap::new();
    let mut servers = Vec::new();
    let mut generated_key = None;
    let mut asserters = Vec::new();
    let mut router = Router::new();
    let mut fallback = None;
    for (i, p) in proxied.iter().enumerate() {
        let key = |k: &str| format!("proxy[{i}].{k}");
        if !p.path.starts_with('/') || p.path.len() < 2 {
            return Err(SettingsError::new(
                key("path"),
                "must start with / and name a path",
            ));
        }
        if let Some(other) = paths.insert(p.path.clone(), p.name.clone()) {
            return Err(SettingsError::new(
                key("path"),
                format!("{} is already used by {other:?}", p.path),
            ));
        }
        if p.isolation == Isolation::PerSession && !settings.server.stateful_sessions {
            return Err(SettingsError::new(
                key("isolation"),
                "per_session needs server.stateful_sessions = true (without sessions every \
                 request would start its own process)",
            ));
        }
        let mut s = settings.clone();
        s.server.resource = Some(format!("{base}{}", p.path));
        s.policy = p.policy.clone();
        let mut builder = s.builder(bound).map_err(|e| SettingsError {
            key: e.key.replacen("policy", &key("policy"), 1),
            message: e.message,
        })?;
        if p.policy.unnamed_tools.is_none() {
            // Tools someone else writes: hidden until the policy names them.
            builder = builder.unnamed_tools(gatehouse::policy::UnnamedTools::Deny);
        }
        builder = builder.observer(Arc::new(crate::audit::AuditTrace::new(&p.name)));
        for o in observers {
            builder = builder.observer(o.clone());
        }
        if settings.server.direct_dispatch && !settings.server.stateful_sessions {
            // Without sessions the gateway's handler never uses its client's stream (log
            // messages are dropped, server requests refused, progress only with a token — which
            // direct dispatch leaves to rmcp), so every tool may be answered directly.
            builder = builder.direct_tools(gatehouse::mcp::DirectTools::All);
        }
        let gatehouse = builder
            .cancellation(cancel.child_token())
            .start()
            .await
            .map_err(|e| SettingsError::new("auth", e))?;
        let mut upstream = p.upstream(i)?;
        upstream.sessions = settings.server.stateful_sessions;
        if let (Some(a), Transport::Http(t)) = (&p.assertion, &mut upstream.transport) {
            let signing = crate::assertion::key_for(a, &mut generated_key)
                .map_err(|e| SettingsError::new(key("assertion.key_file"), e))?;
            let asserter = Asserter::new(
                signing,
                base.clone(),
                a.audience.clone().unwrap_or_else(|| t.url.clone()),
                Duration::from_secs(a.lifetime_seconds),
            );
            asserters.push(asserter.clone());
            t.assertion = Some(asserter);
        }
        let at = match upstream.transport {
            Transport::Stdio(_) => key("command"),
            Transport::Http(_) => key("url"),
        };
        let handler = GatewayHandler::start(upstream)
            .await
            .map_err(|e| SettingsError::new(at, e))?;
        let resource = gatehouse.resource().clone();
        let mounted = handler.mount(&gatehouse, settings.server.direct_dispatch);
        // Each server's whole stack (limits, request ids, edge) behind its two paths.
        let service = mounted.clone().into_service::<axum::body::Body>();
        router = router
            .route_service(resource.path(), service.clone())
            .route_service(&resource.metadata_path(), service);
        fallback.get_or_insert(mounted);
        tracing::info!(name = %p.name, %resource, "proxying");
        servers.push((p.name.clone(), resource, handler, gatehouse));
    }
    if !asserters.is_empty() {
        // The public keys of the assertions, for upstreams to verify them (no token needed).
        let document = crate::assertion::jwks(&asserters).to_string();
        router = router.route(
            crate::assertion::JWKS_PATH,
            axum::routing::get(move || {
                let body = document.clone();
                async move {
                    (
                        [
                            (http::header::CONTENT_TYPE, "application/jwk-set+json"),
                            (http::header::CACHE_CONTROL, "public, max-age=300"),
                        ],
                        body,
                    )
                }
            }),
        );
    }
    // Any other path: the library's own JSON 404, from the first server's stack.
    if let Some(f) = fallback {
        router = router.fallback_service(f);
    }
    Ok(Gateway { router, servers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proxy_entry_parses_with_safe_defaults() {
        let p: ProxiedServer = toml::from_str(
            r#"
            name = "fs"
            path = "/fs/mcp"
            command = "npx"
            args = ["-y", "server"]
            [policy]
            tools = { "read_*" = ["fs:read"] }
            "#,
        )
        .unwrap();
        assert_eq!(p.isolation, Isolation::PerPrincipal);
        assert_eq!(
            p.policy.unnamed_tools, None,
            "the gateway's default (deny) applies"
        );
        assert_eq!(p.env_allow, ["PATH", "HOME"]);
        let u = p.upstream(0).unwrap();
        assert_eq!((u.max_connections, u.idle_timeout.as_secs()), (100, 600));
        let key = |p: ProxiedServer| p.upstream(3).unwrap_err().key;
        let mut both = p.clone();
        both.url = Some("https://up.example.com/mcp".into());
        assert_eq!(key(both), "proxy[3].command");
        assert_eq!(
            key(ProxiedServer::http("h", "/h", "http://up.example.com/mcp")),
            "proxy[3].url"
        );
        let mut unset = ProxiedServer::http("h", "/h", "https://up.example.com/mcp");
        unset.credential_env = Some("GATEHOUSE_TEST_UNSET_VARIABLE".into());
        assert_eq!(key(unset), "proxy[3].credential_env");
        assert!(
            ProxiedServer::http("h", "/h", "http://127.0.0.1:9/mcp")
                .upstream(0)
                .is_ok()
        );
        let e =
            toml::from_str::<ProxiedServer>("name='x'\npath='/x'\ncommand='y'\nisolaton='shared'");
        assert!(e.is_err(), "unknown keys are refused");
    }

    #[test]
    fn plain_http_to_another_host_is_refused_unless_dangerously_allowed_and_then_warned() {
        let key = |p: ProxiedServer| p.upstream(1).unwrap_err().key;
        for url in [
            "http://up.example.com/mcp",
            "http://10.0.0.7:8080/mcp",
            "http://[fd00::1]/mcp",
            "http://localhost.example.com/mcp",
            "ftp://127.0.0.1/mcp",
        ] {
            assert_eq!(
                key(ProxiedServer::http("h", "/h", url)),
                "proxy[1].url",
                "{url}"
            );
        }
        for url in [
            "http://127.0.0.1:9/mcp",
            "http://127.0.0.53/mcp",
            "http://[::1]:9/mcp",
            "http://LOCALHOST:9/mcp",
            "https://up.example.com/mcp",
        ] {
            assert!(
                ProxiedServer::http("h", "/h", url).upstream(0).is_ok(),
                "{url}"
            );
        }
        let allowed: ProxiedServer = toml::from_str(
            "name='crm'\npath='/crm'\nurl='http://crm:8080/mcp'\ndangerous_allow_insecure_http=true",
        )
        .unwrap();
        let out = Captured::default();
        let sink = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .finish();
        let built = tracing::subscriber::with_default(subscriber, || allowed.upstream(0));
        assert!(built.is_ok());
        let logged = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert!(
            logged.contains("WARN")
                && logged.contains("dangerous_allow_insecure_http")
                && logged.contains("crm:8080"),
            "{logged}"
        );
        let silent = Captured::default();
        let sink = silent.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            ProxiedServer::http("h", "/h", "http://127.0.0.1:9/mcp").upstream(0)
        })
        .unwrap();
        assert!(
            silent.0.lock().unwrap().is_empty(),
            "loopback is not warned"
        );
        let stdio = ProxiedServer {
            dangerous_allow_insecure_http: true,
            ..ProxiedServer::stdio("s", "/s", StdioCommand::new("srv", ["x"]))
        };
        assert_eq!(key(stdio), "proxy[1].dangerous_allow_insecure_http");
    }

    #[test]
    fn a_ca_file_is_for_an_https_url_and_must_be_readable() {
        let key = |p: ProxiedServer| p.upstream(4).unwrap_err().key;
        let with = |url: &str, file: &str| ProxiedServer {
            ca_file: Some(file.into()),
            ..ProxiedServer::http("h", "/h", url)
        };
        assert_eq!(
            key(with("https://up.example.com/mcp", "/nonexistent/ca.pem")),
            "proxy[4].ca_file"
        );
        assert_eq!(
            key(with("http://127.0.0.1:9/mcp", "/nonexistent/ca.pem")),
            "proxy[4].ca_file",
            "plain http has no certificate to check"
        );
        let stdio = ProxiedServer {
            ca_file: Some("/etc/ssl/ca.pem".into()),
            ..ProxiedServer::stdio("s", "/s", StdioCommand::new("srv", ["x"]))
        };
        assert_eq!(key(stdio), "proxy[4].ca_file");
        let parsed: ProxiedServer =
            toml::from_str("name='h'\npath='/h'\nurl='https://up.example.com/mcp'").unwrap();
        let Transport::Http(t) = parsed.upstream(0).unwrap().transport else {
            panic!("an http upstream");
        };
        assert_eq!(t.trust, Trust::System, "the system's store by default");
    }

    /// Log output of a test subscriber.
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn an_assertion_is_one_identity_per_user_for_an_http_upstream_only() {
        let key = |p: ProxiedServer| p.upstream(2).unwrap_err().key;
        let with = |a: AssertionSettings| ProxiedServer {
            assertion: Some(a),
            ..ProxiedServer::http("h", "/h", "https://up.example.com/mcp")
        };
        let ok = with(AssertionSettings::default());
        assert!(ok.upstream(0).is_ok());
        let parsed: ProxiedServer = toml::from_str(
            "name='h'\npath='/h'\nurl='https://up.example.com/mcp'\n\
             [assertion]\naudience='https://crm'\nlifetime_seconds=120",
        )
        .unwrap();
        assert_eq!(
            parsed
                .assertion
                .as_ref()
                .map(|a| (a.audience.as_deref(), a.lifetime_seconds)),
            Some((Some("https://crm"), 120))
        );
        let mut both = ok.clone();
        both.credential_upstream = Some("up".into());
        assert_eq!(key(both), "proxy[2].assertion");
        let mut shared = ok.clone();
        shared.isolation = Isolation::Shared;
        assert_eq!(key(shared), "proxy[2].isolation");
        for lifetime in [0, 29, 3601] {
            assert_eq!(
                key(with(AssertionSettings {
                    lifetime_seconds: lifetime,
                    ..AssertionSettings::default()
                })),
                "proxy[2].assertion.lifetime_seconds"
            );
        }
        let stdio = ProxiedServer {
            assertion: Some(AssertionSettings::default()),
            ..ProxiedServer::stdio("s", "/s", StdioCommand::new("srv", ["x"]))
        };
        assert_eq!(key(stdio), "proxy[2].assertion");
    }

    #[tokio::test]
    async fn per_session_isolation_without_sessions_is_refused_at_start() {
        // Without sessions rmcp calls the handler factory per request: a process per request.
        let p: ProxiedServer =
            toml::from_str("name='x'\npath='/x/mcp'\ncommand='y'\nisolation='per_session'")
                .unwrap();
        assert_eq!(p.isolation, Isolation::PerSession);
        let mut settings = Settings::default();
        settings.auth.issuers = vec![gatehouse::settings::IssuerSettings::new(
            "https://auth.example.com".to_owned(),
        )];
        let bound: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let built = build(&settings, &[p], bound, &[], CancellationToken::new()).await;
        let Err(e) = built else {
            panic!("per_session without sessions must be refused");
        };
        assert_eq!(e.key, "proxy[0].isolation");
        assert!(e.message.contains("stateful_sessions"), "{}", e.message);
    }
}
