//! `gatehouse`: the billing MCP server behind the Gatehouse resource-server layer, its
//! one-command demo, the development authorization server and a configuration checker.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc malloc: fewer CPU cycles per request under load (bench/README.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use gatehouse_cli::{app, config::Config, demo, dev_issuer_cmd, proxy_cmd, proxy_demo, telemetry};

#[derive(Debug, Parser)]
#[command(name = "gatehouse", version, about = "OAuth 2.1 resource server for MCP: the billing server, its demo and tools", long_about = None)]
struct Cli {
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, global = true, env = "GATEHOUSE_LOG_JSON")]
    log_json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a development authorization server and the billing server on loopback with a seeded
    /// SQLite database, and print tokens and ready-to-paste commands.
    Demo(demo::DemoArgs),
    /// Run the billing MCP server against a real authorization server.
    Serve(ServeArgs),
    /// Put the same protection in front of existing MCP servers (stdio, any language): one
    /// protected resource per `[[proxy]]` entry of the configuration file.
    Proxy(proxy_cmd::ProxyArgs),
    /// Run only the development authorization server (never for production).
    DevIssuer(dev_issuer_cmd::DevIssuerArgs),
    /// Validate a configuration file: fetch the authorization servers' metadata and keys and print
    /// what the server would use. Exits non-zero naming the key or endpoint at fault.
    Check(CheckArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Configuration file (TOML). Every key can also be set as GATEHOUSE_SECTION__KEY.
    #[arg(long, short, env = "GATEHOUSE_CONFIG")]
    config: Option<PathBuf>,
    /// Override `server.listen`.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Override `server.resource` (the canonical MCP URL tokens must name as audience).
    #[arg(long)]
    resource: Option<String>,
    /// Override `database.url`.
    #[arg(long)]
    database_url: Option<String>,
    /// Override `admin.listen` (metrics and health).
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    /// Override `tls.cert_file` (with --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Override `tls.key_file` (with --tls-cert).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

impl ServeArgs {
    fn apply(self, config: &mut Config) {
        if let Some(l) = self.listen {
            config.server.listen = l;
        }
        if let Some(r) = self.resource {
            config.server.resource = Some(r);
        }
        if let Some(d) = self.database_url {
            config.database.url = d;
        }
        if let Some(a) = self.admin_listen {
            config.admin.listen = a;
        }
        if let (Some(cert_file), Some(key_file)) = (self.tls_cert, self.tls_key) {
            config.tls = Some(gatehouse_cli::config::TlsConfig {
                cert_file,
                key_file,
            });
        }
    }
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// Configuration file (TOML).
    #[arg(long, short, env = "GATEHOUSE_CONFIG")]
    config: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let logs = telemetry::init(cli.log_json);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        match cli.command {
            Command::Demo(args) => demo::run(args).await,
            Command::DevIssuer(args) => dev_issuer_cmd::run(args).await,
            Command::Serve(args) => {
                let mut config = Config::load(args.config.as_deref())?;
                args.apply(&mut config);
                app::serve(config, app::shutdown_signal()).await
            }
            Command::Proxy(args) => match &args.config {
                _ if args.demo => proxy_demo::run(args.port, args.issuer_port, &args.command).await,
                Some(file) => {
                    let config = proxy_cmd::ProxyConfig::load(file)?;
                    proxy_cmd::serve(config, app::shutdown_signal()).await
                }
                None => Err(anyhow::anyhow!(
                    "give --config FILE, or --demo -- <command…>"
                )),
            },
            Command::Check(args) => {
                let config = Config::load(Some(&args.config))?;
                app::check(config).await
            }
        }
    });
    // Stop the runtime, then write out buffered log lines, so that the error below comes last.
    drop(rt);
    drop(logs);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
