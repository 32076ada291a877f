//! What an upstream is: a stdio command (the environment it gets) or a Streamable HTTP URL (the
//! credential it takes), and how its connections are shared.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use serde::{Deserialize, Serialize};

/// How an upstream's processes are shared between callers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// One process per principal (issuer, subject, tenant): one user's identity, state and
    /// files are never another's (default).
    #[default]
    PerPrincipal,
    /// One process per MCP session: a user's two clients (or two conversations) never share
    /// an upstream's state. Needs `server.stateful_sessions` (without sessions every request
    /// would start a process, which the gateway refuses to do); the process stops when its
    /// session ends (DELETE, expiry) or when it idles.
    PerSession,
    /// One process for everyone: only for an upstream that holds no per-user state and gets no
    /// per-user identity.
    Shared,
}

/// The command that starts a stdio MCP server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdioCommand {
    /// The program (a path, or a name looked up in the allowed `PATH`).
    pub command: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Its working directory. Default: the gateway's.
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// Variables of the gateway's environment the child may see (by name). Default: `PATH`
    /// and `HOME` only — never everything, so the gateway's secrets stay its own.
    #[serde(default = "default_env_allow")]
    pub env_allow: Vec<String>,
    /// Variables set for the child (override allowed ones).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// `PATH` and `HOME`: what a child may see of the gateway's environment unless configured.
pub(crate) fn default_env_allow() -> Vec<String> {
    vec!["PATH".into(), "HOME".into()]
}

impl StdioCommand {
    /// `command` with `args`, the default allow-list and no extra variables.
    pub fn new(
        command: impl Into<String>,
        args: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            command: command.into(),
            args: args.into_iter().map(Into::into).collect(),
            cwd: None,
            env_allow: default_env_allow(),
            env: BTreeMap::new(),
        }
    }

    /// The child's whole environment: the allowed variables of `parent`, then `env`.
    pub fn environment(
        &self,
        parent: impl IntoIterator<Item = (String, String)>,
    ) -> BTreeMap<String, String> {
        let mut out: BTreeMap<String, String> = parent
            .into_iter()
            .filter(|(k, _)| self.env_allow.iter().any(|a| a == k))
            .collect();
        out.extend(self.env.clone());
        out
    }
}

/// A secret (an upstream's own API key), redacted in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

/// A Streamable HTTP MCP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarget {
    /// Its MCP endpoint (https; http only on loopback). Fixed by configuration, never by a
    /// request.
    pub url: String,
    /// The upstream's own credential, sent on every request to it: `(header, value)`; an
    /// `authorization` header gets `Bearer value`. Never the client's token.
    pub credential: Option<(String, Secret)>,
    /// Or: the credential of the library's upstream of this name
    /// ([`gatehouse::upstream`]: RFC 8693 token exchange of the caller's token, or client
    /// credentials), obtained per principal; a session lives no longer than its token. The
    /// upstream's base URL must contain `url`.
    pub via_upstream: Option<String>,
    /// Or: a short-lived JWT the gateway signs per user ([`crate::assertion`]).
    pub assertion: Option<crate::assertion::Asserter>,
    /// Which certificates an https `url` may present.
    pub trust: Trust,
}

/// The certificate authorities an https upstream is checked against, by both of the gateway's
/// clients (rmcp's, and the forwarding path's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Trust {
    /// The platform's verifier and trust store, as reqwest uses them (default).
    #[default]
    System,
    /// Only these roots (a private CA): the system's are not consulted.
    Only(Arc<[CertificateDer<'static>]>),
}

impl Trust {
    /// The certificates of a PEM file (`ca_file`); an error names what is wrong with it.
    pub fn from_pem_file(path: &Path) -> Result<Self, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let certs = CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("{}: no PEM certificate in it", path.display()));
        }
        // Each must serve as a root for both clients: refused here rather than skipped by one.
        let mut roots = rustls::RootCertStore::empty();
        for (i, cert) in certs.iter().enumerate() {
            roots.add(cert.clone()).map_err(|e| {
                format!(
                    "{}: certificate {} is not usable as a root: {e}",
                    path.display(),
                    i + 1
                )
            })?;
        }
        Ok(Self::Only(certs.into()))
    }

    /// The TLS configuration of the forwarding path's client (no ALPN: it speaks HTTP/1.1).
    pub(crate) fn client_config(&self) -> Result<rustls::ClientConfig, String> {
        // The provider the rest of Gatehouse uses (TLS termination, reqwest), named rather than
        // taken from the process default, which is unset when two providers are linked.
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        Ok(match self {
            Self::System => {
                use rustls_platform_verifier::BuilderVerifierExt;
                builder
                    .with_platform_verifier()
                    .map_err(|e| e.to_string())?
                    .with_no_client_auth()
            }
            Self::Only(certs) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in certs.iter() {
                    roots.add(cert.clone()).map_err(|e| e.to_string())?;
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
        })
    }

    /// `builder` (rmcp's client) checking certificates this way.
    pub(crate) fn apply(&self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        match self {
            Self::System => builder,
            Self::Only(certs) => builder.tls_certs_only(
                certs
                    .iter()
                    .filter_map(|c| reqwest::Certificate::from_der(c).ok()),
            ),
        }
    }
}

impl HttpTarget {
    /// `url` with no credential, trusting the system's certificate authorities.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            credential: None,
            via_upstream: None,
            assertion: None,
            trust: Trust::System,
        }
    }

    /// Whether the upstream is reached with a per-user identity (then there is no connection
    /// without a user: nothing to probe at start-up, nothing to share).
    pub fn per_user(&self) -> bool {
        self.via_upstream.is_some() || self.assertion.is_some()
    }
}

/// How the gateway reaches an upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// A child process speaking MCP on stdin/stdout.
    Stdio(StdioCommand),
    /// A Streamable HTTP endpoint.
    Http(HttpTarget),
}

/// An upstream server and the bounds on its connections (processes, for stdio).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamServer {
    /// How to reach it.
    pub transport: Transport,
    /// How connections are shared.
    pub isolation: Isolation,
    /// Most connections at once; the least recently used idle one is stopped to make room.
    pub max_connections: u64,
    /// A connection unused this long is stopped.
    pub idle_timeout: Duration,
    /// Longest wait for a new connection to finish the MCP handshake.
    pub start_timeout: Duration,
    /// Whether downstream clients have MCP sessions (`server.stateful_sessions`): only then is
    /// there a stream to carry the upstream's requests (sampling, elicitation) and log messages
    /// to them, and only then does the gateway declare sampling and elicitation upstream.
    pub sessions: bool,
}

impl UpstreamServer {
    /// `transport` per principal, at most 100 connections, stopped after 10 minutes idle, 20 s
    /// to start.
    pub fn new(transport: Transport) -> Self {
        Self {
            transport,
            isolation: Isolation::PerPrincipal,
            max_connections: 100,
            idle_timeout: Duration::from_secs(600),
            start_timeout: Duration::from_secs(20),
            sessions: false,
        }
    }

    /// A stdio upstream with the defaults of [`UpstreamServer::new`].
    pub fn stdio(command: StdioCommand) -> Self {
        Self::new(Transport::Stdio(command))
    }

    /// A Streamable HTTP upstream with the defaults of [`UpstreamServer::new`].
    pub fn http(target: HttpTarget) -> Self {
        Self::new(Transport::Http(target))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

    fn ca() -> CertifiedIssuer<'static, KeyPair> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
    }

    /// Whether a TLS client configured by `trust` completes a handshake with a server on
    /// 127.0.0.1 presenting a certificate for `name` from `issuer`.
    async fn handshake(
        trust: &Trust,
        issuer: &CertifiedIssuer<'static, KeyPair>,
        name: &str,
    ) -> bool {
        use rustls::pki_types::{PrivatePkcs8KeyDer, ServerName};
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .signed_by(&key, issuer)
            .unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
            )
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        tokio::spawn(async move {
            if let Ok((tcp, _)) = listener.accept().await {
                let _ = acceptor.accept(tcp).await;
            }
        });
        let connector = tokio_rustls::TlsConnector::from(Arc::new(trust.client_config().unwrap()));
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let host = ServerName::try_from("127.0.0.1").unwrap();
        connector.connect(host, tcp).await.is_ok()
    }

    #[tokio::test]
    async fn the_forwarding_paths_tls_trusts_what_the_configuration_names_and_nothing_else() {
        let ours = ca();
        let theirs = ca();
        let only_ours = Trust::Only(vec![ours.der().clone()].into());
        assert!(handshake(&only_ours, &ours, "127.0.0.1").await);
        assert!(
            !handshake(&only_ours, &theirs, "127.0.0.1").await,
            "another CA"
        );
        assert!(
            !handshake(&only_ours, &ours, "mcp.example.com").await,
            "another name"
        );
        assert!(
            !handshake(&Trust::System, &ours, "127.0.0.1").await,
            "a private CA is not in the system's store"
        );
    }

    #[test]
    fn a_ca_file_must_hold_certificates() {
        let dir = std::env::temp_dir().join(format!("gatehouse-trust-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("ca.pem");
        std::fs::write(&good, ca().pem()).unwrap();
        let Ok(Trust::Only(certs)) = Trust::from_pem_file(&good) else {
            panic!("a PEM certificate is read");
        };
        assert_eq!(certs.len(), 1);
        let key_only = dir.join("key.pem");
        std::fs::write(&key_only, KeyPair::generate().unwrap().serialize_pem()).unwrap();
        let e = Trust::from_pem_file(&key_only).unwrap_err();
        assert!(e.contains("no PEM certificate"), "{e}");
        let garbled = dir.join("garbled.pem");
        std::fs::write(
            &garbled,
            "-----BEGIN CERTIFICATE-----\nAAECAwQ=\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = Trust::from_pem_file(&garbled).unwrap_err();
        assert!(e.contains("certificate 1 is not usable as a root"), "{e}");
        let e = Trust::from_pem_file(&dir.join("missing.pem")).unwrap_err();
        assert!(e.contains("missing.pem"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_child_sees_only_allowed_and_set_variables() {
        let mut c = StdioCommand::new("srv", ["--x"]);
        c.env.insert("API_URL".into(), "https://api".into());
        c.env.insert("HOME".into(), "/srv".into());
        let parent = [
            ("PATH".to_owned(), "/bin".to_owned()),
            ("HOME".to_owned(), "/root".to_owned()),
            ("GATEHOUSE_CLIENT_SECRET".to_owned(), "s3cret".to_owned()),
            ("AWS_SECRET_ACCESS_KEY".to_owned(), "k".to_owned()),
        ];
        let env = c.environment(parent);
        assert_eq!(
            env.into_iter().collect::<Vec<_>>(),
            [
                ("API_URL".to_owned(), "https://api".to_owned()),
                ("HOME".to_owned(), "/srv".to_owned()),
                ("PATH".to_owned(), "/bin".to_owned()),
            ]
        );
    }
}
