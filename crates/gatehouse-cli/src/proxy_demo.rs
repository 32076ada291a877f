//! `gatehouse proxy --demo -- <command…>`: try the gateway in front of any stdio MCP server in
//! one command. The development authorization server and the gateway start on loopback; the
//! server the command starts is proxied at `/mcp`, with every one of its tools callable by a
//! token holding `mcp:tools` (an explicit `"*"` rule: in production, name the tools) and none
//! by a token holding only `mcp` (it gets the `403` step-up challenge). Tokens and commands that
//! work as printed come out on stdout.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context as _;
use gatehouse::settings::{IssuerSettings, PolicySettings, Settings};
use gatehouse_dev_issuer::{DevClient, DevIssuer, DevIssuerConfig};
use gatehouse_gateway::{ProxiedServer, StdioCommand};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::demo::random_secret;

/// The scope every request needs.
pub const SCOPE_USE: &str = "mcp";
/// The scope every tool needs, in the demo's policy.
pub const SCOPE_TOOLS: &str = "mcp:tools";

/// A running proxy demo.
pub struct RunningProxyDemo {
    /// `http://127.0.0.1:PORT/mcp`.
    pub mcp_url: String,
    /// The development issuer.
    pub issuer_url: String,
    /// A token with `mcp` and `mcp:tools`.
    pub user_token: String,
    /// A token with `mcp` only.
    pub viewer_token: String,
    /// The upstream's tools, as the user sees them through the gateway.
    pub tools: Vec<String>,
    cancel: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl RunningProxyDemo {
    /// Stops everything and waits for it.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.cancel.cancel();
        for t in self.tasks {
            t.await.context("demo task panicked")??;
        }
        Ok(())
    }
}

/// Starts the issuer and the gateway in front of `command` and returns once both serve.
pub async fn start(
    port: u16,
    issuer_port: u16,
    command: &[String],
) -> anyhow::Result<RunningProxyDemo> {
    let (program, args) = command
        .split_first()
        .context("give the stdio server's command after `--`")?;
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let issuer_listener = TcpListener::bind(SocketAddr::new(loopback, issuer_port))
        .await
        .with_context(|| {
            format!("binding the development issuer to 127.0.0.1:{issuer_port} (use --issuer-port)")
        })?;
    let listener = TcpListener::bind(SocketAddr::new(loopback, port))
        .await
        .with_context(|| format!("binding the gateway to 127.0.0.1:{port} (use --port)"))?;
    let bound = listener.local_addr()?;
    let mcp_url = format!("http://{bound}/mcp");

    let issuer = DevIssuer::for_listener(
        &issuer_listener,
        DevIssuerConfig {
            clients: vec![
                DevClient::new("demo-user", random_secret(), [SCOPE_USE, SCOPE_TOOLS])
                    .with_subject("demo-user"),
                DevClient::new("demo-viewer", random_secret(), [SCOPE_USE])
                    .with_subject("demo-viewer"),
            ],
            token_ttl: Duration::from_secs(3600),
            ..DevIssuerConfig::default()
        },
    )
    .context("starting the development issuer")?;
    let issuer_url = issuer.issuer().to_owned();
    let mint = |client: &str, scopes: &[&str]| {
        issuer
            .mint(client, scopes, &mcp_url)
            .map_err(|e| anyhow::anyhow!("minting a demo token: {e:?}"))
    };
    let user_token = mint("demo-user", &[SCOPE_USE, SCOPE_TOOLS])?;
    let viewer_token = mint("demo-viewer", &[SCOPE_USE])?;

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

    let mut settings = Settings::default();
    settings.server.listen = bound;
    settings.auth.issuers = vec![IssuerSettings::new(issuer_url.clone())];
    let proxied = ProxiedServer {
        max_processes: 10,
        policy: PolicySettings {
            route_scopes: vec![SCOPE_USE.into()],
            tools: [("*".to_owned(), vec![SCOPE_TOOLS.to_owned()])].into(),
            ..PolicySettings::default()
        },
        ..ProxiedServer::stdio(
            "demo",
            "/mcp",
            StdioCommand::new(program.clone(), args.iter().cloned()),
        )
    };
    let gateway = gatehouse_gateway::build(&settings, &[proxied], bound, &[], cancel.child_token())
        .await
        .inspect_err(|_| cancel.cancel())
        .map_err(|e| anyhow::anyhow!("`{}`: {e}", command.join(" ")))?;
    let tools = list_tools(&gateway.router, &bound, &user_token).await;
    let server_task = {
        let cancel = cancel.clone();
        let router = gateway.router;
        tokio::spawn(async move {
            gatehouse::serve(listener, router, async move { cancel.cancelled().await })
                .await
                .context("gateway failed")
        })
    };
    Ok(RunningProxyDemo {
        mcp_url,
        issuer_url,
        user_token,
        viewer_token,
        tools,
        cancel,
        tasks: vec![issuer_task, server_task],
    })
}

/// `tools/list` through the whole gateway (edge, token, policy) in process, for the printed
/// commands.
async fn list_tools(router: &axum::Router, bound: &SocketAddr, token: &str) -> Vec<String> {
    use tower::ServiceExt as _;
    let req = http::Request::post("/mcp")
        .header("host", bound.to_string())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .header("authorization", format!("Bearer {token}"))
        .body(axum::body::Body::from(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        ));
    let Ok(req) = req else { return Vec::new() };
    let Ok(resp) = router.clone().oneshot(req).await;
    let Ok(bytes) = axum::body::to_bytes(resp.into_body(), 4 << 20).await else {
        return Vec::new();
    };
    serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v["result"]["tools"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect()
}

/// What the demo prints.
pub fn instructions(demo: &RunningProxyDemo) -> String {
    let url = &demo.mcp_url;
    let headers = "-H 'content-type: application/json' -H 'accept: application/json, text/event-stream' \
                   -H 'mcp-protocol-version: 2025-11-25'";
    let tool = demo.tools.first().map(String::as_str).unwrap_or("TOOL");
    let call = format!(
        r#"-d '{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{tool}","arguments":{{}}}}}}'"#
    );
    format!(
        r#"
Gatehouse gateway demo is running, in front of a stdio MCP server.

  MCP endpoint            {url}
  Authorization server    {issuer}   (development only)
  Upstream tools          {tools}

Tokens — paste these into your shell:

  export USER_TOKEN={user}     # mcp mcp:tools: may list and call every tool
  export VIEWER_TOKEN={viewer}   # mcp: may list; a call gets the 403 step-up challenge

1. No token: 401 with a challenge pointing at the gateway's metadata
   curl -i -X POST {url} {headers} -d '{{"jsonrpc":"2.0","id":1,"method":"tools/list"}}'

2. The upstream's tools, through the gateway
   curl -s -X POST {url} {headers} -H "authorization: Bearer $USER_TOKEN" -d '{{"jsonrpc":"2.0","id":1,"method":"tools/list"}}'

3. Call {tool} (arguments may need filling in)
   curl -s -X POST {url} {headers} -H "authorization: Bearer $USER_TOKEN" {call}

4. The same call with the viewer's token: 403 insufficient_scope, scope="mcp:tools mcp"
   curl -i -X POST {url} {headers} -H "authorization: Bearer $VIEWER_TOKEN" {call}

Each user gets their own upstream process; it sees PATH and HOME, never the gateway's environment.
The policy here allows every tool ("*" = ["mcp:tools"]); in production name the tools, and any
tool the policy does not name stays hidden. Press Ctrl-C to stop.
"#,
        issuer = demo.issuer_url,
        tools = if demo.tools.is_empty() {
            "(none listed)".to_owned()
        } else {
            demo.tools.join(", ")
        },
        user = demo.user_token,
        viewer = demo.viewer_token,
    )
}

/// `gatehouse proxy --demo`: start, print, wait for Ctrl-C.
pub async fn run(port: u16, issuer_port: u16, command: &[String]) -> anyhow::Result<()> {
    let demo = start(port, issuer_port, command).await?;
    println!("{}", instructions(&demo));
    crate::app::shutdown_signal().await;
    demo.stop().await
}
