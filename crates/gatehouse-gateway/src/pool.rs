//! The upstream's processes: one per isolation key, started on first use (single-flight: a burst
//! of first requests starts one process), reused while in use, stopped when idle or when the
//! bound on processes needs room, replaced when it has died. Never one per request.
//!
//! A stopped process is stopped with its whole process group, so servers started through
//! `npx`, `uvx` or a shell leave nothing behind.

use std::process::Stdio;
use std::sync::Arc;

use gatehouse::Caller;
use moka::future::Cache;
use process_wrap::tokio::{CommandWrap, ProcessGroup};
use rmcp::model::{ClientCapabilities, ClientConfig, Implementation, ServerPeerInfo};
use rmcp::service::{Peer, RoleClient, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, ServiceExt};
use tokio::io::AsyncBufReadExt;

use crate::config::{Isolation, StdioUpstream};

/// Which process serves a caller.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// [`Isolation::PerPrincipal`]: issuer, subject (else client id) and tenant.
    Principal(Arc<str>, Option<String>, Option<String>),
    /// [`Isolation::Shared`].
    Shared,
}

impl Key {
    fn of(isolation: Isolation, caller: &Caller) -> Self {
        match isolation {
            Isolation::PerPrincipal => Key::Principal(
                caller.issuer.clone(),
                caller.subject.clone().or_else(|| caller.client_id.clone()),
                caller.tenant.clone(),
            ),
            Isolation::Shared => Key::Shared,
        }
    }
}

/// Why no upstream process could serve a request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PoolError {
    /// The process could not be started (the command, its handshake, its start timeout).
    #[error("the upstream could not be started: {0}")]
    Start(String),
}

/// The gateway's side of the upstream connection: it identifies itself and, for now, answers
/// server-to-client requests with rmcp's defaults (sampling and elicitation declined, no roots).
#[derive(Debug, Clone, Default)]
pub struct GatewayClient;

impl ClientHandler for GatewayClient {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("gatehouse-gateway", env!("CARGO_PKG_VERSION")),
        )
    }
}

/// One running upstream process and the rmcp client connected to it.
pub struct Upstream {
    service: RunningService<RoleClient, GatewayClient>,
    pid: Option<u32>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream").field("pid", &self.pid).finish()
    }
}

impl Upstream {
    /// The client side of the connection.
    pub fn peer(&self) -> &Peer<RoleClient> {
        self.service.peer()
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// True once the connection to the process is gone (it exited or was stopped).
    pub fn is_closed(&self) -> bool {
        self.service.is_closed() || self.service.peer().is_transport_closed()
    }

    /// What the upstream said of itself in the handshake.
    pub fn server_info(&self) -> Option<Arc<ServerPeerInfo>> {
        self.service.peer_info()
    }
}

/// The processes of one upstream. Cheap to share (`Arc`).
pub struct Pool {
    upstream: StdioUpstream,
    processes: Cache<Key, Arc<Upstream>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("command", &self.upstream.command.command)
            .field("processes", &self.processes.entry_count())
            .finish()
    }
}

impl Pool {
    /// A pool for `upstream`; no process starts until one is needed.
    pub fn new(upstream: StdioUpstream) -> Self {
        let processes = Cache::builder()
            .max_capacity(upstream.max_processes)
            // Least recently used goes first. (moka's default TinyLFU may refuse to admit a new
            // key instead, which would leave a new principal's process unpooled: one process
            // per request for them.)
            .eviction_policy(moka::policy::EvictionPolicy::lru())
            .time_to_idle(upstream.idle_timeout)
            // An evicted process is stopped when the last request using it lets go: dropping
            // the rmcp service closes the transport, and the transport kills the process group.
            .eviction_listener(|_key, up: Arc<Upstream>, cause| {
                tracing::info!(pid = ?up.pid, ?cause, "upstream process released");
            })
            .build();
        Self {
            upstream,
            processes,
        }
    }

    /// The upstream's configuration.
    pub fn upstream(&self) -> &StdioUpstream {
        &self.upstream
    }

    /// Number of processes held (approximate until [`Pool::run_pending_tasks`]).
    pub fn process_count(&self) -> u64 {
        self.processes.entry_count()
    }

    /// Runs pending evictions now (idle timeouts, the bound), for tests and metrics.
    pub async fn run_pending_tasks(&self) {
        self.processes.run_pending_tasks().await;
    }

    /// The process that serves `caller`, started if there is none or if it has died.
    pub async fn get(&self, caller: &Caller) -> Result<Arc<Upstream>, PoolError> {
        let key = Key::of(self.upstream.isolation, caller);
        if let Some(up) = self.processes.get(&key).await {
            if !up.is_closed() {
                return Ok(up);
            }
            tracing::warn!(pid = ?up.pid, "upstream process has exited; starting a new one");
            self.processes.invalidate(&key).await;
        }
        self.processes
            .try_get_with(key, async { self.start().await.map(Arc::new) })
            .await
            .map_err(|e: Arc<PoolError>| (*e).clone())
    }

    /// Forgets the process serving `caller` when it is `up` (it failed): the next request
    /// starts a new one.
    pub async fn discard(&self, caller: &Caller, up: &Arc<Upstream>) {
        let key = Key::of(self.upstream.isolation, caller);
        if let Some(current) = self.processes.get(&key).await
            && Arc::ptr_eq(&current, up)
        {
            self.processes.invalidate(&key).await;
        }
    }

    /// Starts one process outside the pool, for what the upstream says of itself.
    pub async fn probe(&self) -> Result<ServerPeerInfo, PoolError> {
        let up = self.start().await?;
        let info = up
            .server_info()
            .map(|i| (*i).clone())
            .ok_or_else(|| PoolError::Start("no initialize result".into()));
        let _ = up.service.cancel().await;
        info
    }

    async fn start(&self) -> Result<Upstream, PoolError> {
        let c = &self.upstream.command;
        let mut cmd = tokio::process::Command::new(&c.command);
        cmd.args(&c.args)
            .env_clear()
            .envs(c.environment(std::env::vars()));
        if let Some(dir) = &c.cwd {
            cmd.current_dir(dir);
        }
        let mut wrap = CommandWrap::from(cmd);
        wrap.wrap(ProcessGroup::leader());
        let (transport, stderr) = TokioChildProcess::builder(wrap)
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| PoolError::Start(format!("{}: {e}", c.command)))?;
        let pid = transport.id();
        if let Some(stderr) = stderr {
            // The upstream's diagnostics go to the log, line by line, marked with its pid.
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    tracing::info!(target: "gatehouse_gateway::upstream", pid, "{line}");
                }
            });
        }
        let service =
            tokio::time::timeout(self.upstream.start_timeout, GatewayClient.serve(transport))
                .await
                .map_err(|_| PoolError::Start("the MCP handshake timed out".into()))?
                .map_err(|e| PoolError::Start(format!("the MCP handshake failed: {e}")))?;
        // Every answer comes from the upstream, never from a cache of another request's (rmcp's
        // client cache would serve stale lists on errors, and a shared process serves many).
        service
            .peer()
            .set_response_cache_config(rmcp::service::ClientCacheConfig::disabled())
            .await;
        tracing::info!(pid, command = %c.command, "upstream process started");
        Ok(Upstream { service, pid })
    }
}
