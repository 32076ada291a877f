//! A running stack for one test: development issuer + billing server, each on 127.0.0.1:0.

use std::path::PathBuf;
use std::time::Duration;

use gatehouse_billing::{AuditLog, AuditRecord, Store};
use gatehouse_cli::app;
use gatehouse_cli::config::{Config, IssuerConfig};
use gatehouse_dev_issuer::{DevClient, DevIssuer, DevIssuerConfig, DevResourceServer};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The protocol revision of requests that do not name another.
pub(crate) const VERSION: &str = "2025-11-25";

/// Every billing tool, in the order [`Reply::tool_names`] returns them.
pub(crate) const ALL_TOOLS: [&str; 4] = [
    "invoice_history",
    "list_invoices",
    "lookup_invoice",
    "void_invoice",
];

/// Clients of the test issuer: (id, tenant, scopes).
pub(crate) const CLIENTS: [(&str, Option<&str>, &[&str]); 4] = [
    ("acme-reader", Some("acme"), &["invoices:read"]),
    (
        "acme-writer",
        Some("acme"),
        &["invoices:read", "invoices:write"],
    ),
    ("globex-reader", Some("globex"), &["invoices:read"]),
    ("no-tenant", None, &["invoices:read"]),
];

/// The billing server's client at the issuer's introspection endpoint: (id, secret).
const INTROSPECTION_CLIENT: (&str, &str) = ("billing-mcp-e2e", "introspection-secret");

/// Lets `config` decide opaque tokens by introspection at `issuer` (RFC 7662), as
/// `[[auth.introspection]]` would; the secret goes through a file, as in production.
pub(crate) fn with_introspection(config: &mut Config, issuer: &DevIssuer) {
    // Next to the stack's database, in the directory the stack removes when it stops.
    let db = PathBuf::from(config.database.url.trim_start_matches("sqlite://"));
    let file = db.with_file_name("introspection-secret");
    std::fs::write(&file, INTROSPECTION_CLIENT.1).unwrap();
    let mut introspection =
        gatehouse::settings::IntrospectionSettings::new(issuer.issuer(), INTROSPECTION_CLIENT.0);
    introspection.client_secret_file = Some(file);
    config.auth.introspection = vec![introspection];
}

pub(crate) struct Stack {
    pub(crate) url: String,
    /// `http://127.0.0.1:<port>` of the admin listener (`None` when `admin.enabled = false`).
    pub(crate) admin_url: Option<String>,
    pub(crate) metrics: std::sync::Arc<gatehouse_cli::metrics::Metrics>,
    pub(crate) summary: std::sync::Arc<gatehouse_cli::metrics::AuthFailureSummary>,
    pub(crate) issuer: DevIssuer,
    pub(crate) store: Store,
    pub(crate) audit: AuditLog,
    pub(crate) http: reqwest::Client,
    pub(crate) gatehouse: gatehouse::Gatehouse,
    cancel: CancellationToken,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: TempDir,
}

/// A temporary directory removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("gatehouse-e2e-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Stack {
    /// Starts a stack with the default (demo-like) configuration, adjusted by `tweak`.
    pub(crate) async fn start(tweak: impl FnOnce(&mut Config)) -> Stack {
        Self::start_with(|_| Vec::new(), |config, _| tweak(config)).await
    }

    /// [`Stack::start`] with more issuer clients (given the MCP URL) and a `tweak` that sees the
    /// issuer.
    pub(crate) async fn start_with(
        clients: impl FnOnce(&str) -> Vec<DevClient>,
        tweak: impl FnOnce(&mut Config, &DevIssuer),
    ) -> Stack {
        let cancel = CancellationToken::new();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let url = format!("http://{addr}/mcp");
        let issuer = start_issuer_with(cancel.clone(), clients(&url)).await;

        let dir = TempDir::new();
        let mut config = Config::default();
        config.server.listen = addr;
        config.server.resource = Some(url.clone());
        config.auth.issuers = vec![IssuerConfig::new(issuer.issuer().to_owned())];
        config.database.url = format!("sqlite://{}", dir.0.join("billing.db").display());
        config.database.seed_demo_data = true;
        config.admin.listen = "127.0.0.1:0".parse().unwrap();
        tweak(&mut config, &issuer);
        let mut app = app::build(config, addr).await.expect("build app");
        let admin_url = app
            .bind_admin()
            .await
            .expect("bind admin")
            .map(|a| format!("http://{a}"));
        let metrics = app.metrics().clone();
        let summary = app.auth_failure_summary().clone();
        let store = app.store().clone();
        let audit = app.audit().clone();
        let gatehouse = app.gatehouse().clone();
        let server = {
            let cancel = cancel.clone();
            tokio::spawn(async move {
                app.serve(listener, async move { cancel.cancelled().await })
                    .await
            })
        };
        Stack {
            url,
            admin_url,
            metrics,
            summary,
            issuer,
            store,
            audit,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            gatehouse,
            cancel,
            server,
            _dir: dir,
        }
    }

    /// A token for one of [`CLIENTS`] with all its scopes (or `scopes`).
    pub(crate) fn token(&self, client: &str, scopes: &[&str]) -> String {
        self.issuer.mint(client, scopes, &self.url).expect("mint")
    }

    /// POSTs a JSON-RPC message to the MCP endpoint with the JSON content headers, `token` as
    /// bearer token (if any) and `headers` (name, value).
    pub(crate) async fn send(
        &self,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> Reply {
        let mut req = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        Reply::from(req.json(body).send().await.expect("send")).await
    }

    /// POSTs a JSON-RPC message with the given protocol version header (if any).
    pub(crate) async fn post(
        &self,
        token: Option<&str>,
        version: Option<&str>,
        body: Value,
    ) -> Reply {
        let headers: Vec<_> = version
            .map(|v| ("mcp-protocol-version", v))
            .into_iter()
            .collect();
        self.send(token, &headers, &body).await
    }

    /// `tools/list` on [`VERSION`].
    pub(crate) async fn list_tools(&self, token: Option<&str>) -> Reply {
        self.post(token, Some(VERSION), tools_list()).await
    }

    /// `tools/call` on [`VERSION`].
    pub(crate) async fn call(&self, token: &str, tool: &str, args: Value) -> Reply {
        self.post(
            Some(token),
            Some(VERSION),
            json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":tool,"arguments":args}}),
        )
        .await
    }

    /// The audit log, newest first, after flushing pending records.
    pub(crate) async fn audit_records(&self) -> Vec<AuditRecord> {
        self.audit.flush().await;
        self.store.recent_audit(100).await.expect("audit rows")
    }

    pub(crate) async fn stop(self) {
        self.cancel.cancel();
        self.server.await.unwrap().unwrap();
    }
}

/// Starts the development issuer with [`CLIENTS`] on 127.0.0.1:0 until `cancel` fires.
pub(crate) async fn start_issuer(cancel: CancellationToken) -> DevIssuer {
    start_issuer_with(cancel, Vec::new()).await
}

/// [`start_issuer`] with `extra` clients.
pub(crate) async fn start_issuer_with(
    cancel: CancellationToken,
    extra: Vec<DevClient>,
) -> DevIssuer {
    let issuer_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = DevIssuer::for_listener(
        &issuer_listener,
        DevIssuerConfig {
            clients: CLIENTS
                .iter()
                .map(|(id, tenant, scopes)| {
                    let c = DevClient::new(*id, "secret", scopes.iter().copied());
                    match tenant {
                        Some(t) => c.with_tenant(*t),
                        None => c,
                    }
                })
                .chain(extra)
                .collect(),
            // The billing server may introspect (only stacks that configure it do).
            resource_servers: vec![DevResourceServer::new(
                INTROSPECTION_CLIENT.0,
                INTROSPECTION_CLIENT.1,
                None::<String>,
            )],
            ..DevIssuerConfig::default()
        },
    )
    .unwrap();
    {
        let issuer = issuer.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            gatehouse_dev_issuer::serve_issuer(issuer_listener, issuer, async move {
                cancel.cancelled().await
            })
            .await
        });
    }

    issuer
}

/// A reply: status, headers, body (JSON when it parses).
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: String,
}

impl Reply {
    pub(crate) async fn from(resp: reqwest::Response) -> Reply {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap();
        Reply {
            status,
            headers,
            body,
        }
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The JSON-RPC `result` of a successful reply.
    pub(crate) fn result(&self) -> Value {
        assert_eq!(self.status, 200, "{}", self.body);
        let v = self.json();
        v.get("result")
            .cloned()
            .unwrap_or_else(|| panic!("no result: {v}"))
    }

    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The names of the tools in a `tools/list` result.
    pub(crate) fn tool_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.result()["tools"]
            .as_array()
            .expect("tools")
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    }
}

pub(crate) fn tools_list() -> Value {
    json!({"jsonrpc":"2.0","id":1,"method":"tools/list"})
}

/// An `initialize` request for protocol revision `version`.
pub(crate) fn initialize(version: &str) -> Value {
    json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
        "protocolVersion": version, "capabilities": {}, "clientInfo": {"name":"e2e","version":"1"}}})
}
