//! The upstream's connections — child processes for stdio, MCP sessions for Streamable HTTP —
//! one per isolation key, started on first use (single-flight: a burst of first requests starts
//! one), reused while in use, stopped when idle or when the bound needs room, replaced when it
//! has died. Never one per request.
//!
//! A stopped process is stopped with its whole process group, so servers started through
//! `npx`, `uvx` or a shell leave nothing behind.

#![allow(
    deprecated,
    reason = "the gateway bridges sampling, logging and resource subscriptions, which rmcp marks \
              deprecated (SEP-2577) but which the 2025-06-18 and 2025-11-25 revisions it serves have"
)]
use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gatehouse::Caller;
use gatehouse::mcp::DependencyFailure;
use gatehouse::upstream::UpstreamAccess;
use moka::future::Cache;
use process_wrap::tokio::{CommandWrap, ProcessGroup};
use rmcp::ErrorData;
use rmcp::model::{
    ClientCapabilities, ClientConfig, CreateMessageRequestParams, CreateMessageResult,
    ElicitRequestParams, ElicitResult, ElicitationCapability, Implementation,
    ResourceUpdatedNotificationParam, ServerPeerInfo,
};
use rmcp::service::{NotificationContext, Peer, RequestContext, RoleClient, RunningService};
use rmcp::{ClientHandler, ServiceExt};
use tokio::io::AsyncBufReadExt;

use crate::config::{HttpTarget, Isolation, StdioCommand, Transport, UpstreamServer};
use crate::relay::{Relay, Unbridgeable};

/// Which process serves a caller.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// [`Isolation::PerPrincipal`]: issuer, subject (else client id) and tenant.
    Principal(Arc<str>, Option<String>, Option<String>),
    /// [`Isolation::PerSession`]: the MCP session's number (see `GatewayHandler::for_session`).
    Session(u64),
    /// [`Isolation::Shared`].
    Shared,
}

impl Key {
    fn of(isolation: Isolation, caller: &Caller, session: Option<u64>) -> Self {
        let principal = || {
            Key::Principal(
                caller.issuer.clone(),
                caller.subject.clone().or_else(|| caller.client_id.clone()),
                caller.tenant.clone(),
            )
        };
        match (isolation, session) {
            (Isolation::PerPrincipal, _) => principal(),
            (Isolation::PerSession, Some(n)) => Key::Session(n),
            // A handler used outside a session (mounted without `for_session`): the narrowest
            // sharing that is still safe is the principal's.
            (Isolation::PerSession, None) => principal(),
            (Isolation::Shared, _) => Key::Shared,
        }
    }
}

/// Why no upstream connection could serve a request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PoolError {
    /// The process or session could not be started (the command, its handshake, its start
    /// timeout).
    #[error("the upstream could not be started: {0}")]
    Start(String),
    /// The upstream refused the gateway's credential or assertion (`401`/`403`).
    #[error("the upstream refused the gateway's credential")]
    Refused,
    /// No credential for the upstream: the authorization server refused or is down.
    #[error("no credential for the upstream: {0}")]
    Credential(Arc<gatehouse::upstream::UpstreamError>),
    /// Recent attempts failed; the next is not before `retry_after`.
    #[error("the upstream is failing; next attempt in {retry_after:?}")]
    Backoff {
        /// Time until the next attempt.
        retry_after: Duration,
    },
}

/// An upstream that is down for now (it would not start, is unreachable or has ended): `503`,
/// try again in a second.
pub(crate) const RETRY_SOON: DependencyFailure = DependencyFailure::Unavailable {
    retry_after: Duration::from_secs(1),
};

impl PoolError {
    /// The dependency failure this means to the edge: `502` for a refusal, else `503` with
    /// its retry time. The same on rmcp's path (`handler.rs`) and the forwarding path.
    pub fn failure(&self) -> DependencyFailure {
        match self {
            PoolError::Backoff { retry_after } => DependencyFailure::Unavailable {
                retry_after: *retry_after,
            },
            PoolError::Refused => DependencyFailure::Refused,
            PoolError::Credential(c)
                if matches!(**c, gatehouse::upstream::UpstreamError::Refused { .. }) =>
            {
                DependencyFailure::Refused
            }
            PoolError::Credential(_) | PoolError::Start(_) => RETRY_SOON,
        }
    }
}

impl Connection {
    /// What a forwarded request to this connection's upstream session carries, when the
    /// session was started by rmcp's HTTP client and has been initialized.
    pub(crate) fn session_headers(&self) -> Option<&crate::recorder::SessionHeaders> {
        self.recorded.as_ref().and_then(|r| r.get())
    }
}

/// The first restart after a failure is immediate; then 1 s, doubling, at most this.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A connection that lived this long before failing was healthy: its failure starts afresh.
const HEALTHY_UPTIME: Duration = Duration::from_secs(60);

/// Recent failures of one key (starts that failed, connections that died young).
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    next_attempt: Instant,
}

impl Failures {
    fn after(previous: Option<Failures>) -> Failures {
        let count = previous.map_or(1, |f| f.count.saturating_add(1));
        let delay = match count {
            0 | 1 => Duration::ZERO,
            n => Duration::from_secs(1u64 << (n - 2).min(5)).min(MAX_BACKOFF),
        };
        Failures {
            count,
            next_attempt: Instant::now() + delay,
        }
    }
}

/// The gateway's side of the upstream connection: it identifies itself, declares sampling and
/// elicitation when its [`Relay`] can pass them to a client, and hands what the upstream sends on
/// its own (resource updates, server-to-client requests) to the relay; progress and log
/// messages reach the relay straight from the transport, in order ([`Relay::tap`]).
#[derive(Clone)]
pub struct GatewayClient {
    relay: Arc<Relay>,
}

impl ClientHandler for GatewayClient {
    fn get_info(&self) -> ClientConfig {
        let mut caps = ClientCapabilities::default();
        if self.relay.relays_requests() {
            caps.sampling = Some(Default::default());
            let mut elicitation = ElicitationCapability::default();
            elicitation.form = Some(Default::default());
            caps.elicitation = Some(elicitation);
        }
        ClientConfig::new(
            caps,
            Implementation::new("gatehouse-gateway", env!("CARGO_PKG_VERSION")),
        )
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        self.relay.create_message(params).await
    }

    async fn create_elicitation(
        &self,
        params: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        self.relay.create_elicitation(params).await
    }

    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.relay.resource_updated(params).await;
    }
}

/// One connection to the upstream (for stdio: a running process) and its rmcp client.
pub struct Connection {
    service: RunningService<RoleClient, GatewayClient>,
    relay: Arc<Relay>,
    pid: Option<u32>,
    started: Instant,
    /// When its credential stops being usable (a session is not used past it).
    good_until: Option<Instant>,
    /// HTTP: what the session's requests carry, for the forwarding path
    /// ([`crate::forward`]).
    pub(crate) recorded: Option<Arc<std::sync::OnceLock<crate::recorder::SessionHeaders>>>,
    /// stdio: the forwarding path's way to the child ([`crate::child`]).
    pub(crate) stdio: Option<Arc<crate::child::StdioLink>>,
    /// Requests using the connection now ([`Lease`]s).
    users: AtomicUsize,
    /// Set when the pool let the connection go; the last lease then stops it.
    retired: AtomicBool,
}

/// A connection in use by one request. A connection the pool lets go (evicted over the bound,
/// idle, forgotten after a failure, its session ended) keeps running while a request holds a
/// lease on it, and is stopped when the last lease is dropped — not whenever the cache frees
/// its entry (moka frees removed entries lazily, at some later cache operation: an idle
/// gateway would keep an evicted process, over `max_connections`, until the next request).
pub struct Lease(Arc<Connection>);

impl Lease {
    fn new(up: Arc<Connection>) -> Self {
        up.users.fetch_add(1, Ordering::SeqCst);
        Self(up)
    }
}

impl std::ops::Deref for Lease {
    type Target = Arc<Connection>;

    fn deref(&self) -> &Arc<Connection> {
        &self.0
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // SeqCst with `Connection::retire`: of the last lease and the retirement, whichever
        // comes second sees the other and stops the connection (both may; stopping twice is
        // harmless).
        if self.0.users.fetch_sub(1, Ordering::SeqCst) == 1 && self.0.retired.load(Ordering::SeqCst)
        {
            self.0.stop();
        }
    }
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("pid", &self.pid)
            .finish()
    }
}

impl Connection {
    /// The client side of the connection.
    pub fn peer(&self) -> &Peer<RoleClient> {
        self.service.peer()
    }

    /// The process id (stdio).
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// True once the connection to the process is gone (it exited or was stopped).
    pub fn is_closed(&self) -> bool {
        self.service.is_closed()
            || self.service.peer().is_transport_closed()
            || self.good_until.is_some_and(|t| Instant::now() >= t)
    }

    /// The pool let the connection go: it stops now, or when the last request using it ends.
    fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
        if self.users.load(Ordering::SeqCst) == 0 {
            self.stop();
        }
    }

    /// Ends the rmcp client, which closes its transport: for stdio the MCP shutdown sequence
    /// (stdin closed, then `SIGTERM`, then kill, for the whole process group).
    fn stop(&self) {
        tracing::info!(pid = ?self.pid, "upstream connection stopped");
        self.service.cancellation_token().cancel();
    }

    /// Routes what the upstream sends on its own back to the requests it belongs to.
    pub(crate) fn relay(&self) -> &Arc<Relay> {
        &self.relay
    }

    /// What the upstream said of itself in the handshake.
    pub fn server_info(&self) -> Option<Arc<ServerPeerInfo>> {
        self.service.peer_info()
    }
}

/// The connections to one upstream. Share it with an `Arc`.
pub struct Pool {
    upstream: UpstreamServer,
    processes: Cache<Key, Arc<Connection>>,
    /// Keys whose recent attempts failed (bounded by the number of principals that failed; an
    /// entry is removed by the next success).
    failures: Mutex<HashMap<Key, Failures>>,
    /// Whether the last attempt to start a connection (for anyone) failed: what readiness shows.
    last_start_failed: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("transport", &self.upstream.transport)
            .field("processes", &self.processes.entry_count())
            .finish()
    }
}

impl Pool {
    /// A pool for `upstream`; no connection starts until one is needed.
    pub fn new(upstream: UpstreamServer) -> Self {
        let processes = Cache::builder()
            .max_capacity(upstream.max_connections)
            // Least recently used goes first. (moka's default TinyLFU may refuse to admit a new
            // key instead, which would leave a new principal's process unpooled: one process
            // per request for them.)
            .eviction_policy(moka::policy::EvictionPolicy::lru())
            .time_to_idle(upstream.idle_timeout)
            // An evicted process is stopped when the last request using it lets go (`Lease`).
            .eviction_listener(|_key, up: Arc<Connection>, cause| {
                tracing::info!(pid = ?up.pid, ?cause, "upstream process released");
                up.retire();
            })
            .build();
        Self {
            upstream,
            processes,
            failures: Mutex::default(),
            last_start_failed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The upstream's configuration.
    pub fn upstream(&self) -> &UpstreamServer {
        &self.upstream
    }

    /// Number of connections held (approximate until [`Pool::run_pending_tasks`]).
    pub fn process_count(&self) -> u64 {
        self.processes.entry_count()
    }

    /// False while the last attempt to start a connection failed (the upstream looks down);
    /// true again after one succeeds. What `/readyz` reports for this upstream.
    pub fn healthy(&self) -> bool {
        !self
            .last_start_failed
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs pending evictions now (idle timeouts, the bound), for tests and metrics.
    pub async fn run_pending_tasks(&self) {
        self.processes.run_pending_tasks().await;
    }

    /// The process that serves `caller`, started if there is none or if it has died.
    /// The connection that serves `caller`, started if there is none or if it has died —
    /// unless recent attempts for this key failed and the backoff has not passed (the first
    /// restart is immediate; then 1 s, doubling, up to 30 s), so a crashing upstream is not
    /// restarted on every request.
    pub async fn get(&self, caller: &Caller) -> Result<Lease, PoolError> {
        self.get_with(caller, None, None).await
    }

    /// [`Pool::get`] for the MCP session numbered `session` (per-session isolation) and with
    /// the request's upstream credentials, for an HTTP upstream whose credential comes from the
    /// library's upstreams ([`HttpTarget::via_upstream`]).
    pub async fn get_with(
        &self,
        caller: &Caller,
        session: Option<u64>,
        access: Option<&UpstreamAccess>,
    ) -> Result<Lease, PoolError> {
        let key = Key::of(self.upstream.isolation, caller, session);
        if let Some(up) = self.processes.get(&key).await.map(Lease::new) {
            if up.retired.load(Ordering::SeqCst) {
                // Let go by the pool in the meantime (a concurrent eviction): a new one.
            } else if !up.is_closed() {
                return Ok(up);
            } else {
                tracing::warn!(pid = ?up.pid, "upstream connection is gone; starting a new one");
                self.note_failure(&key, &up);
                self.processes.invalidate(&key).await;
            }
        }
        if let Some(f) = self.failures_of(&key) {
            let now = Instant::now();
            if f.next_attempt > now {
                return Err(PoolError::Backoff {
                    retry_after: f.next_attempt - now,
                });
            }
        }
        let started = self
            .processes
            .try_get_with(key.clone(), async {
                self.start(Some(caller), access).await.map(Arc::new)
            })
            .await
            .map_err(|e: Arc<PoolError>| (*e).clone());
        self.last_start_failed
            .store(started.is_err(), std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut failures) = self.failures.lock() {
            match &started {
                Ok(_) => {
                    failures.remove(&key);
                }
                Err(_) => {
                    let previous = failures.get(&key).copied();
                    failures.insert(key, Failures::after(previous));
                }
            }
        }
        started.map(Lease::new)
    }

    /// Forgets the connection serving `caller` when it is `up` (it failed): the next request
    /// starts a new one, after the backoff if it failed young.
    pub async fn discard(&self, caller: &Caller, session: Option<u64>, up: &Arc<Connection>) {
        let key = Key::of(self.upstream.isolation, caller, session);
        if let Some(current) = self.processes.get(&key).await
            && Arc::ptr_eq(&current, up)
        {
            self.note_failure(&key, up);
            self.processes.invalidate(&key).await;
        }
    }

    /// Stops the connection of the MCP session numbered `session` (the session ended).
    pub async fn end_session(&self, session: u64) {
        let key = Key::Session(session);
        self.processes.invalidate(&key).await;
        // moka hands the removed value over (and drops it: the process stops) at its next
        // housekeeping; run it now rather than whenever the next request comes.
        self.processes.run_pending_tasks().await;
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(&key);
        }
    }

    fn failures_of(&self, key: &Key) -> Option<Failures> {
        self.failures.lock().ok()?.get(key).copied()
    }

    fn note_failure(&self, key: &Key, up: &Connection) {
        if let Ok(mut failures) = self.failures.lock() {
            let previous = if up.started.elapsed() >= HEALTHY_UPTIME {
                None
            } else {
                failures.get(key).copied()
            };
            failures.insert(key.clone(), Failures::after(previous));
        }
    }

    /// Starts one process outside the pool, for what the upstream says of itself.
    pub async fn probe(&self) -> Result<ServerPeerInfo, PoolError> {
        let up = self.start(None, None).await?;
        let info = up
            .server_info()
            .map(|i| (*i).clone())
            .ok_or_else(|| PoolError::Start("no initialize result".into()));
        let _ = up.service.cancel().await;
        info
    }

    async fn start(
        &self,
        caller: Option<&Caller>,
        access: Option<&UpstreamAccess>,
    ) -> Result<Connection, PoolError> {
        let relay = Arc::new(Relay::new(match self.upstream.isolation {
            Isolation::Shared => Err(Unbridgeable::Shared),
            _ if !self.upstream.sessions => Err(Unbridgeable::NoSessions),
            _ => Ok(()),
        }));
        let client = GatewayClient {
            relay: relay.clone(),
        };
        let (service, pid, good_until, recorded, stdio) = match &self.upstream.transport {
            Transport::Stdio(c) => {
                let (service, pid, link) = self.start_stdio(c, client).await?;
                (service, pid, None, None, Some(link))
            }
            Transport::Http(t) => {
                let (service, good_until, recorded) =
                    self.start_http(t, caller, access, client).await?;
                (service, None, good_until, Some(recorded), None)
            }
        };
        // Every answer comes from the upstream, never from a cache of another request's (rmcp's
        // client cache would serve stale lists on errors, and a shared connection serves many).
        service
            .peer()
            .set_response_cache_config(rmcp::service::ClientCacheConfig::disabled())
            .await;
        Ok(Connection {
            service,
            relay,
            pid,
            started: Instant::now(),
            good_until,
            recorded,
            stdio,
            users: AtomicUsize::new(0),
            retired: AtomicBool::new(false),
        })
    }

    async fn handshake<T>(
        &self,
        transport: T,
        client: GatewayClient,
    ) -> Result<RunningService<RoleClient, GatewayClient>, PoolError>
    where
        T: rmcp::transport::Transport<RoleClient> + 'static,
    {
        let relay = client.relay.clone();
        tokio::time::timeout(
            self.upstream.start_timeout,
            client.serve(relay.tap(transport)),
        )
        .await
        .map_err(|_| PoolError::Start("the MCP handshake timed out".into()))?
        .map_err(|e| {
            if e.auth_challenge().is_some() {
                PoolError::Refused
            } else {
                PoolError::Start(format!("the MCP handshake failed: {e}"))
            }
        })
    }

    async fn start_stdio(
        &self,
        c: &StdioCommand,
        client: GatewayClient,
    ) -> Result<
        (
            RunningService<RoleClient, GatewayClient>,
            Option<u32>,
            Arc<crate::child::StdioLink>,
        ),
        PoolError,
    > {
        let mut cmd = tokio::process::Command::new(&c.command);
        cmd.args(&c.args)
            .env_clear()
            .envs(c.environment(std::env::vars()));
        if let Some(dir) = &c.cwd {
            cmd.current_dir(dir);
        }
        let mut wrap = CommandWrap::from(cmd);
        wrap.wrap(ProcessGroup::leader());
        let crate::child::Spawned {
            transport,
            link,
            stderr,
            pid,
        } = crate::child::spawn(wrap, Stdio::piped())
            .map_err(|e| PoolError::Start(format!("{}: {e}", c.command)))?;
        if let Some(stderr) = stderr {
            // The upstream's diagnostics go to the log, line by line, marked with its pid.
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    tracing::info!(target: "gatehouse_gateway::upstream", pid, "{line}");
                }
            });
        }
        let service = self.handshake(transport, client).await?;
        tracing::info!(pid, command = %c.command, "upstream process started");
        Ok((service, pid, link))
    }

    async fn start_http(
        &self,
        t: &HttpTarget,
        caller: Option<&Caller>,
        access: Option<&UpstreamAccess>,
        client: GatewayClient,
    ) -> Result<
        (
            RunningService<RoleClient, GatewayClient>,
            Option<Instant>,
            Arc<std::sync::OnceLock<crate::recorder::SessionHeaders>>,
        ),
        PoolError,
    > {
        use rmcp::transport::StreamableHttpClientTransport;
        use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
        let mut config = StreamableHttpClientTransportConfig::with_uri(t.url.as_str());
        let mut good_until = None;
        if let Some(name) = &t.via_upstream {
            // Without the request's access (the start-up probe), no identity: the probe then
            // fails if the upstream insists on one, which start-up reports.
            if let Some(access) = access {
                let c = access
                    .credential(name)
                    .await
                    .map_err(|e| PoolError::Credential(Arc::new(e)))?;
                if !t
                    .url
                    .starts_with(c.base_url().as_str().trim_end_matches('/'))
                {
                    return Err(PoolError::Start(format!(
                        "url is outside the base of upstream {name:?}"
                    )));
                }
                if c.header() == http::header::AUTHORIZATION {
                    let v = c.value().to_str().unwrap_or_default();
                    config = config.auth_header(v.strip_prefix("Bearer ").unwrap_or(v));
                } else {
                    config =
                        config.custom_headers([(c.header().clone(), c.value().clone())].into());
                }
                good_until = c.good_until();
            }
        }
        if let (Some(asserter), Some(caller)) = (&t.assertion, caller) {
            let (jwt, expires) = asserter.issue(caller);
            config = config.auth_header(jwt);
            // The session ends a little before its assertion does: the next request starts a
            // new one with a fresh assertion instead of being refused upstream.
            let left = expires
                .duration_since(std::time::SystemTime::now())
                .unwrap_or_default();
            good_until = Some(Instant::now() + left - (left / 5).min(Duration::from_secs(30)));
        }
        if let Some((header, secret)) = &t.credential {
            if header.eq_ignore_ascii_case("authorization") {
                config = config.auth_header(secret.expose());
            } else {
                let name = http::HeaderName::try_from(header.as_str())
                    .map_err(|e| PoolError::Start(format!("credential header: {e}")))?;
                let mut value = http::HeaderValue::try_from(secret.expose())
                    .map_err(|_| PoolError::Start("credential is not a header value".into()))?;
                value.set_sensitive(true);
                config = config.custom_headers([(name, value)].into());
            }
        }
        // No redirects: the destination is fixed by configuration.
        let http = t
            .trust
            .apply(reqwest::Client::builder())
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(self.upstream.start_timeout)
            .build()
            .map_err(|e| PoolError::Start(e.to_string()))?;
        // rmcp's client, recording the session's headers for the forwarding path.
        let http = crate::recorder::Recorder::new(http);
        let recorded = http.seen();
        let cause = http.cause();
        let service = self
            .handshake(
                StreamableHttpClientTransport::with_client(http, config),
                client,
            )
            .await
            .map_err(|e| {
                // rmcp's error ends at "error sending request"; what the operator can act on
                // (an untrusted certificate, a refused connection) is under it.
                match (e, cause.lock().expect("not poisoned").take()) {
                    (PoolError::Start(m), Some(c)) => PoolError::Start(format!("{m} ({c})")),
                    (e, _) => e,
                }
            })?;
        tracing::info!(url = %t.url, "upstream session started");
        Ok((service, good_until, recorded))
    }
}
