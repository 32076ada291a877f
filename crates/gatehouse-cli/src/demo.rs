//! `gatehouse demo`: the development authorization server, the billing server and the ledger on
//! loopback, a seeded SQLite database, tokens for three callers and commands that work as
//! printed.
//!
//! The ledger is the API the billing server's tools call with their *own* credentials: a void
//! posts a credit note there with a token the development issuer minted for the ledger by token
//! exchange (RFC 8693: the user as `sub`, the billing server as `act`), never with the client's
//! token; retries after the user's request has ended use the billing server's own client
//! credentials.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use gatehouse_dev_issuer::{DevClient, DevIssuer, DevIssuerConfig, DevUser};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::app;
use crate::config::{Config, CreditNotesConfig, IssuerConfig};
use gatehouse::settings::{UpstreamMode, UpstreamSettings};

/// The billing server's own client at the development issuer: it serves the MCP resource and
/// may exchange tokens addressed to it for tokens addressed to the ledger.
pub const BILLING_CLIENT: &str = "billing-mcp";

/// The billing server's client: scope `invoices:write` (what a credit note needs at the ledger;
/// an exchange narrows to it), token exchange from `mcp_url` to `ledger_base`.
pub fn billing_client(mcp_url: &str, ledger_base: &str, secret: &str) -> DevClient {
    DevClient::new(BILLING_CLIENT, secret, [gatehouse_ledger::SCOPE_WRITE])
        .with_token_exchange(mcp_url, [ledger_base])
}

/// `[[upstreams]]` and `[credit_notes]` for a ledger at `ledger_base`: `ledger` (token exchange,
/// used inline as the user) and `ledger-service` (client credentials, used for retries), both
/// with [`BILLING_CLIENT`]'s secret read from `secret_file`.
pub fn ledger_settings(
    token_endpoint: &str,
    ledger_base: &str,
    secret_file: &std::path::Path,
) -> (Vec<UpstreamSettings>, CreditNotesConfig) {
    let upstream = |name: &str, mode| UpstreamSettings {
        name: name.into(),
        base_url: ledger_base.into(),
        audience: None,
        resource: None,
        scopes: vec![gatehouse_ledger::SCOPE_WRITE.into()],
        mode,
        token_endpoint: Some(token_endpoint.into()),
        client_id: Some(BILLING_CLIENT.into()),
        client_secret_file: Some(secret_file.to_owned()),
        client_secret_env: None,
        secret_file: None,
        secret_env: None,
        header: None,
    };
    let upstreams = vec![
        upstream("ledger", UpstreamMode::TokenExchange),
        upstream("ledger-service", UpstreamMode::ClientCredentials),
    ];
    let credit_notes = CreditNotesConfig {
        upstream: "ledger".into(),
        retry_upstream: "ledger-service".into(),
        path: "credit-notes".into(),
        grace_seconds: 30,
        min_backoff_ms: 1000,
        max_backoff_seconds: 60,
        poll_interval_ms: 1000,
    };
    (upstreams, credit_notes)
}

/// Writes `secret` to `path`, readable by the owner only.
pub fn write_secret(path: &std::path::Path, secret: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut f = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(secret.as_bytes())?;
    Ok(())
}

/// The demo's three clients: (client id, tenant, scopes).
pub const DEMO_CLIENTS: [(&str, &str, &[&str]); 3] = [
    ("acme-reader", "acme", &["invoices:read"]),
    ("acme-writer", "acme", &["invoices:read", "invoices:write"]),
    ("globex-reader", "globex", &["invoices:read"]),
];

/// The people who can log in at the development issuer's login page (interactive clients such
/// as MCP Inspector's web UI): (name, tenant, scopes they may hold). No passwords: it is a demo.
pub const DEMO_USERS: [(&str, &str, &[&str]); 3] = [
    ("alice", "acme", &["invoices:read", "invoices:write"]),
    ("bob", "acme", &["invoices:read"]),
    ("carol", "globex", &["invoices:read"]),
];

/// The MCP Inspector release the demo's instructions name (the one the browser tests run).
pub const INSPECTOR: &str = "@modelcontextprotocol/inspector@2.12.0";

/// Options of `gatehouse demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Port of the billing MCP server on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Port of the development authorization server on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8090)]
    pub issuer_port: u16,
    /// Port of the ledger API on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8091)]
    pub ledger_port: u16,
    /// SQLite database file. Default: a fresh file in a new temporary directory, so every demo
    /// starts from the same seeded data.
    #[arg(long)]
    pub database: Option<PathBuf>,
    /// Lifetime of the printed tokens, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub token_ttl: u64,
}

/// A running demo: addresses, tokens and the handles to stop it.
pub struct RunningDemo {
    /// `http://127.0.0.1:PORT/mcp`.
    pub mcp_url: String,
    /// The development issuer's URL.
    pub issuer_url: String,
    /// The ledger's base URL (`http://127.0.0.1:PORT/api`).
    pub ledger_url: String,
    /// A token for the ledger (acme-reader, `invoices:read`): lists credit notes.
    pub ledger_token: String,
    /// The SQLite file.
    pub database: PathBuf,
    /// The admin listener (`/metrics`, `/healthz`, `/readyz`).
    pub admin: Option<SocketAddr>,
    /// (client id, tenant, scopes, client secret, token) for each demo client.
    pub clients: Vec<DemoClient>,
    cancel: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// One demo client and a token minted for it.
pub struct DemoClient {
    /// Client id.
    pub id: &'static str,
    /// Tenant claim.
    pub tenant: &'static str,
    /// Granted scopes.
    pub scopes: &'static [&'static str],
    /// Client secret (random per run), for minting new tokens at the token endpoint.
    pub secret: String,
    /// An access token for the MCP URL.
    pub token: String,
}

impl RunningDemo {
    /// Stops both servers and waits for them.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.cancel.cancel();
        for t in self.tasks {
            t.await.context("demo task panicked")??;
        }
        Ok(())
    }

    /// The demo client with this id.
    pub fn client(&self, id: &str) -> &DemoClient {
        self.clients
            .iter()
            .find(|c| c.id == id)
            .expect("demo client")
    }
}

/// Starts the demo and returns once both servers accept connections.
pub async fn start(args: DemoArgs) -> anyhow::Result<RunningDemo> {
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let issuer_listener = TcpListener::bind(SocketAddr::new(loopback, args.issuer_port))
        .await
        .with_context(|| {
            format!(
                "binding the development issuer to 127.0.0.1:{} (use --issuer-port)",
                args.issuer_port
            )
        })?;
    let mcp_listener = TcpListener::bind(SocketAddr::new(loopback, args.port))
        .await
        .with_context(|| {
            format!(
                "binding the MCP server to 127.0.0.1:{} (use --port)",
                args.port
            )
        })?;
    let ledger_listener = TcpListener::bind(SocketAddr::new(loopback, args.ledger_port))
        .await
        .with_context(|| {
            format!(
                "binding the ledger to 127.0.0.1:{} (use --ledger-port)",
                args.ledger_port
            )
        })?;
    let mcp_addr = mcp_listener.local_addr()?;
    let mcp_url = format!("http://{mcp_addr}/mcp");
    let ledger_url = format!("http://{}/api", ledger_listener.local_addr()?);
    let billing_secret = random_secret();

    let clients: Vec<(&'static str, &'static str, &'static [&'static str], String)> = DEMO_CLIENTS
        .iter()
        .map(|(id, tenant, scopes)| (*id, *tenant, *scopes, random_secret()))
        .collect();
    let issuer_config = DevIssuerConfig {
        clients: clients
            .iter()
            .map(|(id, tenant, scopes, secret)| {
                DevClient::new(*id, secret.as_str(), scopes.iter().copied()).with_tenant(*tenant)
            })
            .chain([billing_client(&mcp_url, &ledger_url, &billing_secret)])
            .collect(),
        users: DEMO_USERS
            .iter()
            .map(|(name, tenant, scopes)| {
                DevUser::new(*name, scopes.iter().copied()).with_tenant(*tenant)
            })
            .collect(),
        token_ttl: Duration::from_secs(args.token_ttl),
        ..DevIssuerConfig::default()
    };
    let issuer = DevIssuer::for_listener(&issuer_listener, issuer_config)
        .context("starting the development issuer")?;
    let issuer_url = issuer.issuer().to_owned();
    let token_endpoint = issuer.token_endpoint();

    // A fresh directory per run: the default database, and the billing server's client secret.
    let dir = std::env::temp_dir().join(format!(
        "gatehouse-demo-{}-{}",
        std::process::id(),
        &random_secret()[..8]
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let database = args.database.unwrap_or_else(|| dir.join("billing.db"));
    let secret_file = dir.join("billing-mcp.secret");
    write_secret(&secret_file, &billing_secret)?;

    let mut demo_clients = Vec::new();
    for (id, tenant, scopes, secret) in clients {
        let token = issuer
            .mint(id, scopes, &mcp_url)
            .map_err(|e| anyhow::anyhow!("minting a demo token for {id}: {e:?}"))?;
        demo_clients.push(DemoClient {
            id,
            tenant,
            scopes,
            secret,
            token,
        });
    }
    let ledger_token = issuer
        .mint("acme-reader", &[gatehouse_ledger::SCOPE_READ], &ledger_url)
        .map_err(|e| anyhow::anyhow!("minting the ledger token: {e:?}"))?;

    let cancel = CancellationToken::new();
    let issuer_task = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            gatehouse_dev_issuer::serve_issuer(issuer_listener, issuer, async move {
                cancel.cancelled().await
            })
            .await
            .context("development issuer failed")
        })
    };

    let ledger = gatehouse_ledger::Ledger::start(&issuer_url, &ledger_url, cancel.child_token())
        .await
        .inspect_err(|_| cancel.cancel())
        .context("starting the ledger")?;
    let ledger_task = {
        let cancel = cancel.clone();
        let router = ledger.router();
        tokio::spawn(async move {
            axum::serve(ledger_listener, router)
                .with_graceful_shutdown(async move { cancel.cancelled().await })
                .await
                .context("ledger failed")
        })
    };

    let mut config = Config::default();
    let (upstreams, credit_notes) = ledger_settings(&token_endpoint, &ledger_url, &secret_file);
    config.upstreams = upstreams;
    config.credit_notes = Some(credit_notes);
    config.server.listen = mcp_addr;
    config.server.resource = Some(mcp_url.clone());
    config.server.resource_name = "Gatehouse Billing (demo)".into();
    config.auth.issuers = vec![IssuerConfig::new(issuer_url.clone())];
    config.database.url = format!("sqlite://{}", database.display());
    config.database.seed_demo_data = true;
    // `--port 0` (tests, several demos at once): the admin listener takes any free port too.
    if args.port == 0 {
        config.admin.listen = SocketAddr::new(loopback, 0);
    }
    let mut app = app::build(config, mcp_addr)
        .await
        .inspect_err(|_| cancel.cancel())?;
    let admin = app.bind_admin().await.inspect_err(|_| cancel.cancel())?;
    let server_task = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            app.serve(mcp_listener, async move { cancel.cancelled().await })
                .await
        })
    };

    Ok(RunningDemo {
        mcp_url,
        issuer_url,
        ledger_url,
        ledger_token,
        database,
        admin,
        clients: demo_clients,
        cancel,
        tasks: vec![issuer_task, ledger_task, server_task],
    })
}

/// `gatehouse demo`: start, print, wait for Ctrl-C.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let demo = start(args).await?;
    // The development issuer logs its warning banner itself when it starts serving.
    println!("{}", instructions(&demo));
    app::shutdown_signal().await;
    demo.stop().await
}

/// A random secret for a demo client (hex), new every run.
pub(crate) fn random_secret() -> String {
    use rand::Rng as _;
    let bytes: [u8; 24] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The text the demo prints: URLs, tokens and commands that work as printed.
pub fn instructions(demo: &RunningDemo) -> String {
    let url = &demo.mcp_url;
    let read = demo.client("acme-reader");
    let write = demo.client("acme-writer");
    let globex = demo.client("globex-reader");
    let headers = "-H 'content-type: application/json' -H 'accept: application/json, text/event-stream' \
                   -H 'mcp-protocol-version: 2025-11-25'";
    let call = |tool: &str, args: &str| {
        format!(
            r#"-d '{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{tool}","arguments":{args}}}}}'"#
        )
    };
    let lookup = call("lookup_invoice", r#"{"invoiceId":"INV-2041"}"#);
    let lookup_other = call("lookup_invoice", r#"{"invoiceId":"INV-2042"}"#);
    let void = call(
        "void_invoice",
        r#"{"invoiceId":"INV-2041","reason":"duplicate"}"#,
    );
    let history = call("invoice_history", r#"{"invoiceId":"INV-2041"}"#);
    let metadata = format!(
        "{}/.well-known/oauth-protected-resource{}",
        url.trim_end_matches("/mcp"),
        "/mcp"
    );
    format!(
        r#"
Gatehouse demo is running.

  MCP endpoint            {url}
  Resource metadata       {metadata}
  Authorization server    {issuer}   (development only)
  Ledger API              {ledger}   (what void_invoice posts credit notes to)
  Database (SQLite)       {db}

Tokens (tenant, scopes) — paste these into your shell:

  export READ_TOKEN={read_token}     # acme, invoices:read
  export WRITE_TOKEN={write_token}    # acme, invoices:read invoices:write
  export GLOBEX_TOKEN={globex_token}   # globex, invoices:read
  export LEDGER_TOKEN={ledger_token}   # for the ledger itself: acme-reader, invoices:read

1. No token: 401 with a challenge pointing at the metadata
   curl -i -X POST {url} {headers} -d '{{"jsonrpc":"2.0","id":1,"method":"tools/list"}}'

2. Look up an invoice with the read-only token
   curl -s -X POST {url} {headers} -H "authorization: Bearer $READ_TOKEN" {lookup}

3. Void it with the read-only token: 403 insufficient_scope, scope="invoices:write" (step-up)
   curl -i -X POST {url} {headers} -H "authorization: Bearer $READ_TOKEN" {void}

4. Void it with the read-write token, then see who did it. The void also posts a credit note
   to the ledger with a token minted for the ledger by token exchange (RFC 8693) — the user as
   `sub`, the billing server as actor — never with your token; the history shows its delivery
   and the ledger shows its record (user, actor)
   curl -s -X POST {url} {headers} -H "authorization: Bearer $WRITE_TOKEN" {void}
   curl -s -X POST {url} {headers} -H "authorization: Bearer $READ_TOKEN" {history}
   curl -s '{ledger}/credit-notes?invoice_id=INV-2041' -H "authorization: Bearer $LEDGER_TOKEN"

5. Tenant globex cannot see acme's INV-2042: the answer is the same as for an invoice that
   does not exist (and globex's own INV-2041 is a different invoice from acme's)
   curl -s -X POST {url} {headers} -H "authorization: Bearer $GLOBEX_TOKEN" {lookup_other}

6. A fresh token from the authorization server (client credentials, RFC 8707 resource)
   curl -s -X POST {issuer}/token -u acme-reader:{read_secret} -d grant_type=client_credentials \
        --data-urlencode resource={url} -d scope=invoices:read

7. MCP Inspector CLI (Node >= 22.19)
   npx -y @modelcontextprotocol/inspector --cli {url} --transport http --method tools/list \
       --header "Authorization: Bearer $READ_TOKEN"

8. Official TypeScript client (@modelcontextprotocol/sdk)
   new StreamableHTTPClientTransport(new URL("{url}"),
     {{ requestInit: {{ headers: {{ Authorization: `Bearer ${{process.env.READ_TOKEN}}` }} }} }})
   or give it a client-credentials authProvider for client id acme-reader and the secret above:
   it discovers {metadata} and {issuer} by itself.

9. Interactive clients: log in in the browser (authorization code + PKCE, no token to paste)
   MCP Inspector's web UI (Node >= 22.19), then switch the server on:
   npx -y {inspector} --web --transport http --server-url {url}
   Any MCP client that supports OAuth (IDEs, desktop assistants): add the server URL
     {url}
   It registers itself (dynamic client registration or a client ID metadata document) and
   opens the login page. Pick a user (no passwords, it is a demo) and approve:
{users}
   void_invoice as alice asks once more, for invoices:write (step-up), then succeeds.

10. Operations: health, readiness and Prometheus metrics (admin listener, loopback only)
   curl -s {healthz}
   curl -s {readyz}
   curl -s {metrics} | grep '^gatehouse_tool_calls_total'

Press Ctrl-C to stop.
"#,
        issuer = demo.issuer_url,
        ledger = demo.ledger_url,
        ledger_token = demo.ledger_token,
        db = demo.database.display(),
        read_token = read.token,
        write_token = write.token,
        globex_token = globex.token,
        read_secret = read.secret,
        inspector = INSPECTOR,
        users = DEMO_USERS
            .iter()
            .map(|(name, tenant, scopes)| format!(
                "     {name:<6} {tenant:<7} {}",
                scopes.join(" ")
            ))
            .collect::<Vec<_>>()
            .join("\n"),
        metrics = admin_url(demo.admin, "/metrics"),
        healthz = admin_url(demo.admin, "/healthz"),
        readyz = admin_url(demo.admin, "/readyz"),
    )
}

/// `http://ADMIN/path`, or a note that the admin listener is off.
fn admin_url(admin: Option<SocketAddr>, path: &str) -> String {
    admin.map_or_else(
        || "(admin listener off)".to_owned(),
        |a| format!("http://{a}{path}"),
    )
}
