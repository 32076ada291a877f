//! What a run runs against: the programmable test authorization server (in this process) and
//! the real `gatehouse serve` binary (a child process) with the default configuration, apart
//! from what the run needs to name (its issuer, its introspection client, a seeded database).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use gatehouse_testkit::{Alg, TestAuthServer};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// How to start a [`Stack`].
#[derive(Debug, Clone)]
pub(crate) struct StackOptions {
    /// The `gatehouse` binary (release for the long runs).
    pub(crate) bin: PathBuf,
    /// Invoices seeded for tenant `acme` besides the demo rows (a third of them open: voids).
    pub(crate) invoices: i64,
    /// `jwks_refresh_cooldown_seconds` (the default, 30, unless a short run shortens it).
    pub(crate) cooldown_seconds: u64,
}

/// The authorization server and the server under test.
pub(crate) struct Stack {
    pub(crate) auth: Arc<TestAuthServer>,
    pub(crate) server: Child,
    pub(crate) pid: u32,
    /// The MCP endpoint, e.g. `http://127.0.0.1:41234/mcp` (also every token's audience).
    pub(crate) url: String,
    /// The server's log file (`warn` and above).
    pub(crate) log: PathBuf,
    pub(crate) dir: PathBuf,
}

/// The introspection client secret reaches the server through its environment, as in
/// production (`client_secret_env`), never through the configuration file.
const SECRET_ENV: &str = "HARDENING_INTROSPECTION_SECRET";

impl Stack {
    pub(crate) async fn start(opts: &StackOptions) -> anyhow::Result<Stack> {
        let dir = std::env::temp_dir().join(format!(
            "gatehouse-hardening-{}-{}",
            std::process::id(),
            gatehouse_testkit::now()
        ));
        std::fs::create_dir_all(&dir)?;
        let db = format!("sqlite://{}", dir.join("billing.db").display());
        gatehouse_bench::seed::big_invoices(&db, opts.invoices, "acme").await?;

        let auth = Arc::new(TestAuthServer::builder().algs(&[Alg::ES256]).start().await);
        let config = dir.join("gatehouse.toml");
        std::fs::write(&config, config_toml(&auth, &db, opts.cooldown_seconds))?;
        let log = dir.join("gatehouse.log");
        let (_, secret) = auth.introspection_client();
        let mut server = Command::new(&opts.bin)
            .args(["--log-json", "serve", "--config"])
            .arg(&config)
            // The default log level writes a line per request; a 30-minute run keeps what an
            // operator would alert on (warnings and errors), and the report counts them.
            .env("RUST_LOG", "warn")
            .env(SECRET_ENV, secret)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", opts.bin.display()))?;
        let pid = server.id().context("the server's pid")?;
        let mut stdout = BufReader::new(server.stdout.take().context("stdout")?).lines();
        // The ready line: `gatehouse ready mcp=URL metadata=URL admin=ADDR`.
        let ready = tokio::time::timeout(Duration::from_secs(60), stdout.next_line())
            .await
            .context("no ready line within 60 s")??
            .with_context(|| format!("the server exited; see {}", log.display()))?;
        let url = ready
            .split(' ')
            .find_map(|w| w.strip_prefix("mcp="))
            .with_context(|| format!("no mcp= in {ready:?}"))?
            .to_owned();
        tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
        auth.set_audience(&url);
        Ok(Stack {
            auth,
            server,
            pid,
            url,
            log,
            dir,
        })
    }

    /// Lines of the server log at `level` (`"WARN"`, `"ERROR"`), and up to three examples.
    pub(crate) fn log_lines(&self, level: &str) -> (usize, Vec<String>) {
        count_level(&self.log, level)
    }

    /// Stops the server (SIGKILL via `kill_on_drop` if it is still up) and removes the files.
    pub(crate) async fn stop(mut self) {
        let _ = self.server.start_kill();
        let _ = self.server.wait().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn config_toml(auth: &TestAuthServer, db: &str, cooldown: u64) -> String {
    let (client_id, _) = auth.introspection_client();
    format!(
        r#"[server]
listen = "127.0.0.1:0"
shutdown_grace_seconds = 5

[admin]
listen = "127.0.0.1:0"

[[auth.issuers]]
issuer = "{iss}"
jwks_refresh_cooldown_seconds = {cooldown}

[[auth.introspection]]
issuer = "{iss}"
endpoint = "{introspection}"
client_id = "{client_id}"
client_secret_env = "{SECRET_ENV}"

[policy]
route_scopes = ["invoices:read"]

[policy.tools]
void_invoice = ["invoices:write"]

[policy.hierarchy]
"invoices:write" = ["invoices:read"]

[tenancy]
claim = "tenant"

[database]
url = "{db}"
seed_demo_data = true
"#,
        iss = auth.issuer(),
        introspection = auth.introspection_endpoint(),
    )
}

fn count_level(log: &Path, level: &str) -> (usize, Vec<String>) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let needle = format!("\"level\":\"{level}\"");
    let hits: Vec<&str> = text.lines().filter(|l| l.contains(&needle)).collect();
    let examples = hits.iter().take(3).map(|l| (*l).to_owned()).collect();
    (hits.len(), examples)
}
