//! `failover`: three replicas behind nginx on PostgreSQL and Redis (started by `deploy/up`, the
//! script an operator runs), mixed traffic from both tenants, and failures under load (issue 14):
//! one replica `SIGKILL`ed, and in the long form PostgreSQL restarted and Redis stopped.
//!
//! What is judged, from what the clients saw and what the database holds afterwards:
//! - every void a client saw succeed exists exactly once, with exactly one history row; no
//!   invoice has two void rows (nginx never re-sends a request it has sent);
//! - errors only for requests in flight when a replica died (none for requests sent a second or
//!   more after it), and the killed replica restarts, passes its health check and serves again;
//! - the audit log's loss: tool calls a client saw answered that have no audit row (matched by
//!   the `x-request-id` each request carries), stated per replica kill;
//! - PostgreSQL restarted: requests fail with `503` while it is down, then recover without a
//!   Gatehouse restart; Redis stopped: no authentication or tool failure, and
//!   `gatehouse_rate_limit_unavailable_total` counts the requests let through.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::json;
use sqlx::{ConnectOptions as _, Connection as _, Row as _};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use crate::load::quantile_ms;

/// How to run the failover test.
#[derive(Debug, Clone)]
pub(crate) struct FailoverOptions {
    /// Directory holding the `gatehouse` binary.
    pub(crate) bin_dir: PathBuf,
    /// The repository's `deploy/up`.
    pub(crate) deploy: PathBuf,
    /// PostgreSQL database the run gets a fresh schema in.
    pub(crate) pg_url: String,
    pub(crate) conns: usize,
    /// Open invoices per tenant available to voids (the seed writes three times as many rows).
    pub(crate) invoices: i64,
    /// Load before the first failure, and between failures.
    pub(crate) settle: Duration,
    /// Also restart PostgreSQL and stop Redis (the long form).
    pub(crate) infrastructure: bool,
}

const TENANTS: [&str; 2] = ["acme", "globex"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Lookup,
    List,
    Void,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// 200 with a result (a tool error is a result too: "already void" is an answer).
    Answered,
    Status(u16),
    Transport,
}

#[derive(Debug, Clone)]
struct Event {
    sent: Duration,
    answered: Duration,
    op: Op,
    outcome: Outcome,
    request_id: String,
    /// For voids: the invoice and whether the tool said it voided it now.
    void: Option<(usize, String, bool)>,
    /// What went wrong, for the report's examples.
    detail: Option<String>,
}

/// `deploy/up` and what it printed.
struct Deployment {
    child: Child,
    stopped: bool,
    url: String,
    issuer: String,
    run: PathBuf,
    admins: BTreeMap<String, String>,
}

impl Deployment {
    async fn start(
        o: &FailoverOptions,
        database: &str,
        replicas: usize,
    ) -> anyhow::Result<Deployment> {
        let run = std::env::temp_dir().join(format!(
            "gatehouse-failover-{}-{}",
            std::process::id(),
            gatehouse_testkit::now()
        ));
        let mut child = Command::new(&o.deploy)
            .arg("--bin")
            .arg(&o.bin_dir)
            .args(["--database", database, "--run"])
            .arg(&run)
            .args(["--replicas", &replicas.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // Its own process group: should this run end without stopping it (an error), the
            // whole group — supervisors, replicas, nginx, issuer — is killed on drop.
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {}", o.deploy.display()))?;
        let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let ready = tokio::time::timeout(Duration::from_secs(120), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(rest) = line.strip_prefix("READY ") {
                    return Ok(rest.to_owned());
                }
            }
            anyhow::bail!("deploy/up exited before it was ready")
        })
        .await
        .context("deploy/up not ready within 120 s")??;
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let field = |name: &str| {
            ready
                .split(' ')
                .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
                .map(str::to_owned)
                .with_context(|| format!("no {name}= in {ready:?}"))
        };
        let admins: BTreeMap<String, String> = ready
            .split(' ')
            .filter_map(|w| {
                let (r, addr) = w.strip_prefix("admin_")?.split_once('=')?;
                Some((r.to_owned(), addr.to_owned()))
            })
            .collect();
        anyhow::ensure!(
            admins.len() == replicas,
            "{replicas} admin addresses in {ready:?}"
        );
        Ok(Deployment {
            url: field("url")?,
            issuer: field("issuer")?,
            run: field("run")?.into(),
            admins,
            child,
            stopped: false,
        })
    }

    fn pid(&self, replica: &str) -> anyhow::Result<String> {
        let path = self.run.join(format!("replica-{replica}.pid"));
        Ok(std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .trim()
            .to_owned())
    }

    /// Stops everything gracefully (SIGTERM to deploy/up: replicas drain and flush their audit
    /// queues), within 30 s.
    async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            signal("TERM", &pid.to_string()).await?;
        }
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .context("deploy/up did not stop within 30 s")??;
        self.stopped = true;
        let _ = std::fs::remove_dir_all(&self.run);
        Ok(())
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        if let (false, Some(pid)) = (self.stopped, self.child.id()) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &format!("-{pid}")])
                .status();
        }
    }
}

async fn signal(sig: &str, pid: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .args([format!("-{sig}"), pid.to_owned()])
        .status()
        .await?;
    anyhow::ensure!(status.success(), "kill -{sig} {pid} failed");
    Ok(())
}

/// `GET http://ADDR/PATH` → (status, body); `None` when nothing answers.
async fn get(http: &reqwest::Client, addr: &str, path: &str) -> Option<(u16, String)> {
    let r = http
        .get(format!("http://{addr}{path}"))
        .timeout(Duration::from_secs(1))
        .send()
        .await
        .ok()?;
    let status = r.status().as_u16();
    Some((status, r.text().await.unwrap_or_default()))
}

/// The sum of every sample of `metric` in a Prometheus text page.
fn metric_sum(page: &str, metric: &str) -> f64 {
    page.lines()
        .filter(|l| {
            l.strip_prefix(metric)
                .is_some_and(|rest| rest.starts_with([' ', '{']))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

struct Clients {
    url: String,
    http: reqwest::Client,
    tokens: [String; 2],
    next_void: [AtomicU64; 2],
    invoices: i64,
    events: Mutex<Vec<Event>>,
    epoch: Instant,
    seq: AtomicU64,
}

impl Clients {
    /// Clients of `deployment`, with a token of each tenant's client from its issuer.
    async fn connect(deployment: &Deployment, invoices: i64) -> anyhow::Result<Arc<Clients>> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(usize::MAX)
            .timeout(Duration::from_secs(40))
            .build()?;
        let (issuer, url) = (&deployment.issuer, &deployment.url);
        let tokens = [
            token(&http, issuer, TENANTS[0], url).await?,
            token(&http, issuer, TENANTS[1], url).await?,
        ];
        Ok(Arc::new(Clients {
            url: url.clone(),
            http,
            tokens,
            next_void: [AtomicU64::new(0), AtomicU64::new(0)],
            invoices,
            events: Mutex::new(Vec::new()),
            epoch: Instant::now(),
            seq: AtomicU64::new(0),
        }))
    }

    async fn one(&self, worker: usize, i: u64) {
        let tenant = worker % 2;
        let pick = i.wrapping_mul(2_654_435_761) % 20;
        let (op, name, args, void) = if pick < 3 {
            // Each open invoice is voided by one request at most: a success seen twice for one
            // invoice would be the balancer or a replica doing it twice.
            let k = self.next_void[tenant].fetch_add(1, Ordering::Relaxed) + 1;
            match gatehouse_bench::seed::open_invoice(k, self.invoices * 3) {
                Some(id) => (
                    Op::Void,
                    "void_invoice",
                    json!({"invoiceId": id, "reason": "failover run"}),
                    Some(id),
                ),
                None => (
                    Op::Lookup,
                    "lookup_invoice",
                    json!({"invoiceId": "BIG-0000001"}),
                    None,
                ),
            }
        } else if pick < 8 {
            (
                Op::List,
                "list_invoices",
                json!({"status": "open", "limit": 20}),
                None,
            )
        } else {
            let n = i % (self.invoices * 3).max(1) as u64 + 1;
            (
                Op::Lookup,
                "lookup_invoice",
                json!({"invoiceId": format!("BIG-{n:07}")}),
                None,
            )
        };
        let request_id = format!(
            "failover-{}-{}",
            std::process::id(),
            self.seq.fetch_add(1, Ordering::Relaxed)
        );
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                          "params": {"name": name, "arguments": args}});
        let sent = self.epoch.elapsed();
        let r = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .header("x-request-id", &request_id)
            .bearer_auth(&self.tokens[tenant])
            .body(body.to_string())
            .send()
            .await;
        let mut detail = None;
        let (outcome, voided) = match r {
            Ok(r) if r.status() == 200 => match r.json::<serde_json::Value>().await {
                Ok(v) if v.get("result").is_some() => {
                    let done = &v["result"]["structuredContent"];
                    let now = v["result"]["isError"] != true
                        && done["invoice"]["status"] == "void"
                        && done["alreadyVoid"] == false;
                    (Outcome::Answered, now)
                }
                _ => (Outcome::Status(200), false),
            },
            Ok(r) => {
                let status = r.status().as_u16();
                detail = r.text().await.ok().map(|b| b.chars().take(120).collect());
                (Outcome::Status(status), false)
            }
            Err(e) => {
                detail = Some(format!("{e:?}").chars().take(200).collect());
                (Outcome::Transport, false)
            }
        };
        let event = Event {
            sent,
            answered: self.epoch.elapsed(),
            op,
            outcome,
            request_id,
            void: void.map(|id| (tenant, id, voided)),
            detail,
        };
        self.events.lock().expect("lock").push(event);
    }
}

struct Load {
    clients: Arc<Clients>,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(clients: Arc<Clients>, conns: usize) -> Load {
        let stop = CancellationToken::new();
        let tasks = (0..conns)
            .map(|w| {
                let (clients, stop) = (clients.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut i = w as u64;
                    while !stop.is_cancelled() {
                        clients.one(w, i).await;
                        i += 1;
                    }
                })
            })
            .collect();
        Load {
            clients,
            stop,
            tasks,
        }
    }

    async fn stop(self) -> Vec<Event> {
        self.stop.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
        std::mem::take(&mut *self.clients.events.lock().expect("lock"))
    }
}

async fn token(
    http: &reqwest::Client,
    issuer: &str,
    tenant: &str,
    resource: &str,
) -> anyhow::Result<String> {
    let (id, secret) = (format!("{tenant}-app"), format!("{tenant}-secret"));
    let v: serde_json::Value = http
        .post(format!("{issuer}/token"))
        .basic_auth(id, Some(secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("resource", resource),
            ("scope", "invoices:read invoices:write"),
        ])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    v["access_token"]
        .as_str()
        .map(str::to_owned)
        .context("no access_token")
}

/// Removes the run's schema (`database` is its URL).
async fn drop_schema(database: &str, schema: &str) -> anyhow::Result<()> {
    let mut db = database
        .parse::<sqlx::postgres::PgConnectOptions>()?
        .connect()
        .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut db)
        .await?;
    db.close().await?;
    Ok(())
}

/// A fresh schema on `pg_url`, and its URL (search_path), seeded for both tenants.
async fn fresh_database(o: &FailoverOptions) -> anyhow::Result<(String, String)> {
    let schema = format!(
        "failover_{}_{}",
        std::process::id(),
        gatehouse_testkit::now()
    );
    let mut admin = o
        .pg_url
        .parse::<sqlx::postgres::PgConnectOptions>()?
        .connect()
        .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    let sep = if o.pg_url.contains('?') { '&' } else { '?' };
    let url = format!("{}{sep}options=-c%20search_path%3D{schema}", o.pg_url);
    for tenant in TENANTS {
        gatehouse_bench::seed::big_invoices(&url, o.invoices * 3, tenant).await?;
    }
    Ok((schema, url))
}

/// Polls `admin`'s /readyz until it answers 200 (at most `limit`); the time it took.
async fn until_ready(http: &reqwest::Client, admin: &str, limit: Duration) -> Option<Duration> {
    let t = Instant::now();
    while t.elapsed() < limit {
        if get(http, admin, "/readyz")
            .await
            .is_some_and(|(s, _)| s == 200)
        {
            return Some(t.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

enum FailureKind {
    ReplicaKilled,
    DatabaseDown,
    RedisDown { let_through: f64 },
}

/// A failure injected at `at` (since the load started), and what came of it.
struct Failure {
    kind: FailureKind,
    name: String,
    at: Duration,
    /// Back to normal (replica ready again, PostgreSQL answering, Redis up).
    recovered_after: Option<Duration>,
    note: String,
}

pub(crate) async fn run(o: &FailoverOptions) -> anyhow::Result<(String, bool)> {
    let (schema, database) = fresh_database(o).await.context("preparing PostgreSQL")?;
    let deployment = Deployment::start(o, &database, 3).await?;
    let clients = Clients::connect(&deployment, o.invoices).await?;
    let http = clients.http.clone();
    let epoch = clients.epoch;
    let load = Load::start(clients, o.conns);
    let mut failures = Vec::new();

    // 1. SIGKILL one replica under load.
    tokio::time::sleep(o.settle).await;
    let victim = "b";
    let before = deployment.pid(victim)?;
    let at = epoch.elapsed();
    signal("KILL", &before).await?;
    let admin = deployment.admins[victim].clone();
    // The supervisor restarts it; it is back when a new process passes its health check.
    let mut recovered_after = None;
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(60) {
        if deployment.pid(victim).is_ok_and(|p| p != before)
            && get(&http, &admin, "/readyz")
                .await
                .is_some_and(|(s, _)| s == 200)
        {
            recovered_after = Some(t.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(o.settle).await;
    let served = get(&http, &admin, "/metrics")
        .await
        .map(|(_, page)| metric_sum(&page, "gatehouse_tool_calls_total"))
        .unwrap_or(0.0);
    failures.push(Failure {
        kind: FailureKind::ReplicaKilled,
        name: format!("SIGKILL replica {victim}"),
        at,
        recovered_after,
        note: format!("tool calls served by the restarted replica since: {served}"),
    });

    if o.infrastructure {
        // 2. Restart PostgreSQL under load, down for a few seconds as a real restart may be.
        let at = epoch.elapsed();
        pg_ctl("stop").await?;
        tokio::time::sleep(o.settle / 4).await;
        pg_ctl("start").await?;
        let mut ready = Vec::new();
        for a in deployment.admins.values() {
            ready.push(until_ready(&http, a, Duration::from_secs(60)).await);
        }
        failures.push(Failure {
            kind: FailureKind::DatabaseDown,
            name: format!(
                "PostgreSQL stopped for {:.0} s",
                (o.settle / 4).as_secs_f64()
            ),
            at,
            recovered_after: ready
                .iter()
                .copied()
                .collect::<Option<Vec<_>>>()
                .and_then(|v| v.into_iter().max())
                .map(|d| d + o.settle / 4),
            note: "back after: from the stop until every replica is ready again, none restarted"
                .into(),
        });
        tokio::time::sleep(o.settle).await;

        // 3. Stop Redis under load, then start it again.
        let before_unavailable = unavailable(&http, &deployment).await;
        let at = epoch.elapsed();
        let status = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", "6379", "shutdown", "nosave"])
            .status()
            .await?;
        anyhow::ensure!(status.success(), "stopping Redis failed");
        tokio::time::sleep(o.settle).await;
        let during = unavailable(&http, &deployment).await - before_unavailable;
        let services = o
            .deploy
            .parent()
            .context("deploy dir")?
            .parent()
            .context("root")?;
        let status = Command::new(services.join("scripts/services"))
            .status()
            .await?;
        anyhow::ensure!(status.success(), "starting Redis again failed");
        failures.push(Failure {
            kind: FailureKind::RedisDown {
                let_through: during,
            },
            name: "Redis stopped".into(),
            at,
            // From the stop until Redis answers again (scripts/services returns once it does).
            recovered_after: Some(epoch.elapsed() - at),
            note: format!("requests let through without a limit check (gatehouse_rate_limit_unavailable_total, all replicas): {during}"),
        });
        tokio::time::sleep(o.settle).await;
    }

    let events = load.stop().await;
    let total = epoch.elapsed();
    deployment.stop().await?;
    let report = judge(o, &database, &schema, events, &failures, total).await?;
    Ok(report)
}

/// `pg_ctlcluster VERSION main ACTION` for the machine's (newest) PostgreSQL cluster.
async fn pg_ctl(action: &str) -> anyhow::Result<()> {
    let script = format!(
        "pg_ctlcluster --skip-systemctl-redirect \"$(ls /etc/postgresql | sort -V | tail -n1)\" \
         main {action}"
    );
    let status = Command::new("sh").args(["-c", &script]).status().await?;
    anyhow::ensure!(status.success(), "PostgreSQL {action} failed");
    Ok(())
}

/// Requests/s and p99 through nginx with 1, 2 and 3 replicas (same load, same machine: on two
/// cores this shows the balancer's and the shared stores' overhead, not scaling).
pub(crate) async fn scale(
    o: &FailoverOptions,
    seconds: Duration,
) -> anyhow::Result<(String, bool)> {
    let mut out = format!(
        "# Throughput behind nginx ({} clients, {} s each, mixed lookups, lists and voids)\n\n\
         | replicas | requests/s | p50 ms | p99 ms | errors |\n|--:|--:|--:|--:|--:|\n",
        o.conns,
        seconds.as_secs()
    );
    let mut pass = true;
    for replicas in 1..=3 {
        let (schema, database) = fresh_database(o).await.context("preparing PostgreSQL")?;
        let deployment = Deployment::start(o, &database, replicas).await?;
        let clients = Clients::connect(&deployment, o.invoices).await?;
        let load = Load::start(clients, o.conns);
        // A few seconds of warm-up (connections, caches) are not counted.
        let warm = Duration::from_secs(3);
        tokio::time::sleep(warm + seconds).await;
        let events = load.stop().await;
        deployment.stop().await?;
        drop_schema(&database, &schema).await?;
        let counted: Vec<&Event> = events
            .iter()
            .filter(|e| e.sent >= warm && e.sent < warm + seconds)
            .collect();
        let errors = counted
            .iter()
            .filter(|e| e.outcome != Outcome::Answered)
            .count();
        let mut lat: Vec<u32> = counted
            .iter()
            .map(|e| u32::try_from((e.answered - e.sent).as_micros()).unwrap_or(u32::MAX))
            .collect();
        let (p50, p99) = (quantile_ms(&mut lat, 0.5), quantile_ms(&mut lat, 0.99));
        writeln!(
            out,
            "| {replicas} | {:.0} | {p50:.2} | {p99:.2} | {errors} |",
            counted.len() as f64 / seconds.as_secs_f64()
        )?;
        pass &= errors == 0;
    }
    Ok((out, pass))
}

async fn unavailable(http: &reqwest::Client, d: &Deployment) -> f64 {
    let mut sum = 0.0;
    for a in d.admins.values() {
        if let Some((_, page)) = get(http, a, "/metrics").await {
            sum += metric_sum(&page, "gatehouse_rate_limit_unavailable_total");
        }
    }
    sum
}

async fn judge(
    o: &FailoverOptions,
    database: &str,
    schema: &str,
    events: Vec<Event>,
    failures: &[Failure],
    total: Duration,
) -> anyhow::Result<(String, bool)> {
    let mut db = database
        .parse::<sqlx::postgres::PgConnectOptions>()?
        .connect()
        .await?;
    // Void history rows per invoice, and the invoices that are void now.
    let mut history: BTreeMap<(String, String), i64> = BTreeMap::new();
    for row in sqlx::query(
        "SELECT tenant_id, invoice_id, count(*) AS n FROM invoice_events WHERE action = 'void' \
         GROUP BY tenant_id, invoice_id",
    )
    .fetch_all(&mut db)
    .await?
    {
        history.insert((row.get("tenant_id"), row.get("invoice_id")), row.get("n"));
    }
    let void_now: HashSet<(String, String)> = sqlx::query(
        "SELECT tenant_id, id FROM invoices WHERE status = 'void' AND voided_by IS NOT NULL",
    )
    .fetch_all(&mut db)
    .await?
    .into_iter()
    .map(|r| (r.get("tenant_id"), r.get("id")))
    .collect();
    let audited: HashSet<String> =
        sqlx::query("SELECT request_id FROM audit_log WHERE request_id IS NOT NULL")
            .fetch_all(&mut db)
            .await?
            .into_iter()
            .map(|r| r.get("request_id"))
            .collect();
    db.close().await?;
    drop_schema(database, schema).await?;

    let mut seen_ok = 0u64;
    let mut lost = 0u64;
    let mut twice = 0u64;
    let mut unknown_voids = (0u64, 0u64);
    let mut missing_audit = 0u64;
    for e in &events {
        let Some((tenant, id, voided)) = &e.void else {
            continue;
        };
        let key = (TENANTS[*tenant].to_owned(), id.clone());
        let rows = history.get(&key).copied().unwrap_or(0);
        if *voided {
            seen_ok += 1;
            if rows != 1 || !void_now.contains(&key) {
                lost += 1;
            }
        } else if e.outcome != Outcome::Answered {
            unknown_voids.0 += 1;
            if rows > 0 {
                unknown_voids.1 += 1;
            }
        }
    }
    for rows in history.values() {
        if *rows > 1 {
            twice += 1;
        }
    }
    // How long before the kill the calls whose audit row was lost were answered: the audit
    // writer's batching window bounds it.
    // Each missing row is put down to the failure it followed (the kill: calls answered just
    // before it, whose batch was not written yet).
    let kill_at = failures.first().map_or(total, |f| f.at);
    let end_of_kill = failures.get(1).map_or(total, |f| f.at);
    let mut oldest_lost = Duration::ZERO;
    let mut missing_later = 0u64;
    for e in &events {
        if e.outcome == Outcome::Answered && !audited.contains(&e.request_id) {
            if e.answered < end_of_kill {
                missing_audit += 1;
                oldest_lost = oldest_lost.max(kill_at.saturating_sub(e.answered));
            } else {
                missing_later += 1;
            }
        }
    }
    let mut by_op: BTreeMap<Op, (u64, u64)> = BTreeMap::new();
    for e in &events {
        let n = by_op.entry(e.op).or_default();
        n.0 += 1;
        if e.outcome != Outcome::Answered {
            n.1 += 1;
        }
    }

    // Errors, and which failure they follow.
    let mut out = String::new();
    let answered = events
        .iter()
        .filter(|e| e.outcome == Outcome::Answered)
        .count();
    let mut latencies: Vec<u32> = events
        .iter()
        .map(|e| u32::try_from((e.answered - e.sent).as_micros()).unwrap_or(u32::MAX))
        .collect();
    let p99 = quantile_ms(&mut latencies, 0.99);
    let rate = events.len() as f64 / total.as_secs_f64();
    writeln!(
        out,
        "# Failover under load ({} clients, 3 replicas behind nginx, PostgreSQL, Redis)\n",
        o.conns
    )?;
    writeln!(
        out,
        "{} requests in {:.1} s ({rate:.0}/s, p99 {p99:.2} ms), {answered} answered.\n",
        events.len(),
        total.as_secs_f64()
    )?;
    writeln!(out, "| operation | requests | errors |\n|---|--:|--:|")?;
    for (op, (n, errors)) in &by_op {
        writeln!(out, "| {op:?} | {n} | {errors} |")?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "| failure | at s | back after s | errors | last error answered after s | \
         of which sent ≥ 1 s after it | by kind | note |"
    )?;
    writeln!(out, "|---|--:|--:|--:|--:|--:|---|---|")?;
    let mut pass = true;
    let mut examples = Vec::new();
    for (i, f) in failures.iter().enumerate() {
        let end = failures.get(i + 1).map_or(Duration::MAX, |n| n.at);
        let errs: Vec<&Event> = events
            .iter()
            .filter(|e| e.outcome != Outcome::Answered && e.answered >= f.at && e.sent < end)
            .collect();
        let late = errs
            .iter()
            .filter(|e| e.sent >= f.at + Duration::from_secs(1))
            .count();
        let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
        for e in &errs {
            *kinds.entry(format!("{:?}", e.outcome)).or_default() += 1;
        }
        // The failover gap: from the failure to the last failed answer it caused.
        let gap = errs
            .iter()
            .map(|e| e.answered.saturating_sub(f.at))
            .max()
            .map_or("—".to_owned(), |d| format!("{:.2}", d.as_secs_f64()));
        writeln!(
            out,
            "| {} | {:.1} | {} | {} | {gap} | {late} | {kinds:?} | {} |",
            f.name,
            f.at.as_secs_f64(),
            f.recovered_after
                .map_or("not back".to_owned(), |d| format!("{:.2}", d.as_secs_f64())),
            errs.len(),
            f.note
        )?;
        for e in errs
            .iter()
            .filter(|e| e.sent >= f.at + Duration::from_secs(1))
            .take(3)
        {
            examples.push(format!(
                "{}: {:?} sent at {:.3} s, answered at {:.3} s: {:?} {}",
                f.name,
                e.op,
                e.sent.as_secs_f64(),
                e.answered.as_secs_f64(),
                e.outcome,
                e.detail.as_deref().unwrap_or("")
            ));
        }
        if f.recovered_after.is_none() {
            pass = false;
        }
        let only_503 = kinds.keys().all(|k| k == "Status(503)");
        pass &= match f.kind {
            // A replica kill may cost only what was in flight on it.
            FailureKind::ReplicaKilled => late == 0 && errs.len() <= o.conns,
            // While the database is down: 503 + Retry-After, from a replica or the balancer.
            FailureKind::DatabaseDown => only_503,
            // Limits fail open: nothing fails, and the metric counted what went through.
            FailureKind::RedisDown { let_through } => errs.is_empty() && let_through > 0.0,
        };
    }
    if !examples.is_empty() {
        writeln!(
            out,
            "\nErrors sent a second or more after a failure (examples):\n"
        )?;
        for x in &examples {
            writeln!(out, "- {x}")?;
        }
    }
    let before_first = failures.first().map_or(total, |f| f.at);
    let early_errors = events
        .iter()
        .filter(|e| e.outcome != Outcome::Answered && e.answered < before_first)
        .count();
    writeln!(out, "\n| check | count | target |\n|---|--:|---|")?;
    for (what, n, target) in [
        ("errors before the first failure", early_errors as u64, 0),
        ("voids a client saw succeed", seen_ok, u64::MAX),
        (
            "… of which not exactly once in the database (with one history row)",
            lost,
            0,
        ),
        ("invoices with more than one void history row", twice, 0),
        (
            "voids whose request failed (outcome unknown to the client)",
            unknown_voids.0,
            u64::MAX,
        ),
        (
            "… of which done anyway (at most once)",
            unknown_voids.1,
            u64::MAX,
        ),
        (
            "answered tool calls without an audit row (audit lost on SIGKILL)",
            missing_audit,
            u64::MAX,
        ),
        (
            "… answered at most this many ms before the kill",
            oldest_lost.as_millis() as u64,
            u64::MAX,
        ),
        (
            "answered tool calls without an audit row, later (database and Redis outages)",
            missing_later,
            0,
        ),
    ] {
        let shown = if target == u64::MAX {
            "—".to_owned()
        } else {
            target.to_string()
        };
        writeln!(out, "| {what} | {n} | {shown} |")?;
        if target != u64::MAX && n != target {
            pass = false;
        }
    }
    writeln!(out, "\nResult: {}", if pass { "PASS" } else { "FAIL" })?;
    Ok((out, pass))
}
