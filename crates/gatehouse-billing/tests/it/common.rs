//! Shared fixtures: throwaway databases (a SQLite file in a temp dir, a fresh PostgreSQL schema)
//! and an in-process MCP endpoint that drives `BillingServer` through rmcp's real Streamable HTTP
//! service, with the `Caller` placed in the request extensions exactly as the Gatehouse edge does.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use gatehouse::mcp::{DependencyFailure, DependencySlot, Protected};
use gatehouse::policy::ScopePolicy;
use gatehouse::tenancy::CallerEnricher;
use gatehouse::{Caller, Principal, ScopeSet, TokenKind};
use gatehouse_billing::store::{Invoice, InvoiceStatus};
use gatehouse_billing::{AuditLog, BillingServer, Seed, Store, Tenancy, TenantId};
use http_body_util::{BodyExt, Full};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::{Value, json};
use sqlx::Connection as _;

/// The PostgreSQL server the suite uses (trust auth). Override with `GATEHOUSE_TEST_PG_URL`.
pub fn pg_url() -> String {
    std::env::var("GATEHOUSE_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Which engine a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// A database that exists for one test and is removed afterwards (also when the test panics).
pub struct TestDb {
    pub url: String,
    pub engine: Engine,
    dir: Option<PathBuf>,
    schema: Option<String>,
}

impl TestDb {
    pub async fn new(engine: Engine) -> Self {
        match engine {
            Engine::Sqlite => Self::sqlite(),
            Engine::Postgres => Self::postgres().await,
        }
    }

    /// A SQLite file path in a fresh temp directory (the file itself does not exist yet, so
    /// `create_if_missing` is exercised every time).
    pub fn sqlite() -> Self {
        let dir = std::env::temp_dir().join(format!("gatehouse-billing-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        let path = dir.join("billing.db");
        Self {
            url: path.to_str().expect("utf-8 temp path").to_owned(),
            engine: Engine::Sqlite,
            dir: Some(dir),
            schema: None,
        }
    }

    /// A fresh schema `t_<random>` on the test PostgreSQL server, selected through `search_path`.
    pub async fn postgres() -> Self {
        sqlx::any::install_default_drivers();
        let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::AnyConnection::connect(&pg_url())
            .await
            .unwrap_or_else(|e| {
                panic!("PostgreSQL at {} is required by this suite: {e}", pg_url())
            });
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut admin)
            .await
            .expect("schema");
        admin.close().await.ok();
        let sep = if pg_url().contains('?') { '&' } else { '?' };
        Self {
            url: format!("{}{sep}options=-c%20search_path%3D{schema}", pg_url()),
            engine: Engine::Postgres,
            dir: None,
            schema: Some(schema),
        }
    }

    pub async fn store(&self, seed: Seed) -> Store {
        Store::connect(&self.url, seed)
            .await
            .expect("connect store")
    }

    /// A separate raw connection (to install triggers, inspect rows), as an operator would.
    pub async fn raw(&self) -> sqlx::AnyConnection {
        sqlx::any::install_default_drivers();
        let url = match self.engine {
            Engine::Sqlite => format!("sqlite://{}", self.url),
            Engine::Postgres => self.url.clone(),
        };
        sqlx::AnyConnection::connect(&url)
            .await
            .expect("raw connection")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some(schema) = self.schema.take() {
            // Drop runs inside the test's runtime, which cannot be blocked on; a short-lived
            // runtime on its own thread does the async cleanup.
            let url = pg_url();
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                if let Ok(rt) = rt {
                    rt.block_on(async move {
                        if let Ok(mut c) = sqlx::AnyConnection::connect(&url).await {
                            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                                "DROP SCHEMA {schema} CASCADE"
                            )))
                            .execute(&mut c)
                            .await;
                            let _ = c.close().await;
                        }
                    });
                }
            })
            .join();
        }
    }
}

/// Runs each listed test body once per engine: `mod sqlite { … }` and `mod postgres { … }`.
#[macro_export]
macro_rules! on_both_engines {
    ($(async fn $name:ident($engine:ident) $body:block)*) => {
        mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let $engine = $crate::common::Engine::Sqlite;
                    $body
                }
            )*
        }
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let $engine = $crate::common::Engine::Postgres;
                    $body
                }
            )*
        }
    };
}

/// A verified caller as the edge would build it.
pub fn caller(subject: &str, client: &str, scopes: &str, tenant: Option<&str>) -> Caller {
    Caller::new(Principal {
        issuer: "https://as.example".into(),
        subject: Some(subject.to_owned()),
        client_id: Some(client.to_owned()),
        scopes: ScopeSet::from_space_separated(scopes),
        audiences: vec!["https://mcp.example/mcp".to_owned()],
        tenant: tenant.map(str::to_owned),
        expires_at: SystemTime::now() + Duration::from_secs(300),
        kind: TokenKind::Jwt,
        claims: Default::default(),
    })
}

/// A reader of tenant `t` (client `<t>-app`, `invoices:read`).
pub fn reader(t: &str) -> Caller {
    caller(
        &format!("reader@{t}"),
        &format!("{t}-app"),
        "invoices:read",
        Some(t),
    )
}

/// A writer of tenant `t` (client `<t>-backoffice`, `invoices:write`).
pub fn writer(t: &str) -> Caller {
    caller(
        &format!("writer@{t}"),
        &format!("{t}-backoffice"),
        "invoices:write",
        Some(t),
    )
}

pub fn tenant(s: &str) -> TenantId {
    TenantId::new(s).expect("tenant")
}

pub fn new_invoice(t: &str, id: &str, status: InvoiceStatus, created_at: i64) -> Invoice {
    Invoice {
        tenant: tenant(t),
        id: id.to_owned(),
        customer: format!("customer of {t}"),
        status,
        total_minor: 10_000,
        currency: "EUR".to_owned(),
        created_at,
        voided_at: None,
        voided_by: None,
    }
}

/// The demo data in a fresh database of `engine`, served by [`Mcp`] with the default policy;
/// the client `acme-reporting` belongs to tenant `acme`. Keep the [`TestDb`] alive as long as the
/// server.
pub async fn demo(engine: Engine) -> (TestDb, Mcp) {
    let db = TestDb::new(engine).await;
    let store = db.store(Seed::Demo).await;
    let tenants = Tenancy::new()
        .with_client("acme-reporting", "acme")
        .unwrap();
    let mcp = Mcp::new(store, gatehouse_billing::default_policy(), tenants);
    (db, mcp)
}

/// The billing server behind rmcp's Streamable HTTP service, driven without a socket.
pub struct Mcp {
    pub store: Store,
    pub audit: AuditLog,
    pub tenancy: Tenancy,
    service: StreamableHttpService<Protected<BillingServer>, NeverSessionManager>,
    /// The slot the edge would have put into the last request ([`Mcp::last_dependency_failure`]).
    last_slot: std::sync::Mutex<DependencySlot>,
}

impl Mcp {
    /// The billing server as the library mounts it: wrapped in [`Protected`] with `policy` and
    /// the audit log as observer; callers get their tenant from `tenancy` as the edge gives it.
    pub fn new(store: Store, policy: ScopePolicy, tenancy: Tenancy) -> Self {
        let audit = AuditLog::new(store.clone());
        let factory = Protected::new(
            BillingServer::new(store.clone()),
            policy,
            Arc::new(audit.clone()),
        );
        let service = StreamableHttpService::new(
            move || Ok(factory.clone()),
            Arc::new(NeverSessionManager::default()),
            StreamableHttpServerConfig::default()
                .with_legacy_session_mode(false)
                .with_json_response(true)
                .with_sse_keep_alive(None),
        );
        Self {
            store,
            audit,
            tenancy,
            service,
            last_slot: Default::default(),
        }
    }

    /// What the server reported to the edge about its own dependencies during the last request
    /// (the edge would answer `503`/`502` instead of the JSON-RPC answer).
    pub fn last_dependency_failure(&self) -> Option<DependencyFailure> {
        self.last_slot.lock().unwrap().get()
    }

    /// Sends one JSON-RPC request as `caller` (or unauthenticated) and returns the JSON-RPC
    /// response object.
    pub async fn rpc(
        &self,
        caller: Option<&Caller>,
        request_id: Option<&str>,
        body: Value,
    ) -> Value {
        let mut req = http::Request::builder()
            .method(http::Method::POST)
            .uri("http://localhost/mcp")
            .header("host", "localhost")
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25");
        if let Some(id) = request_id {
            req = req.header("x-request-id", id);
        }
        let mut req = req
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("request");
        if let Some(c) = caller {
            req.extensions_mut().insert(self.tenancy.enrich(c.clone()));
        }
        let slot = DependencySlot::default();
        req.extensions_mut().insert(slot.clone());
        *self.last_slot.lock().unwrap() = slot;
        let resp = self.service.handle(req).await;
        let status = resp.status();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(
            status,
            http::StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&bytes)
        );
        serde_json::from_slice(&bytes).expect("JSON-RPC response")
    }

    /// `tools/call`; returns the `CallToolResult` JSON (panics on a JSON-RPC error).
    pub async fn call(&self, caller: &Caller, tool: &str, args: Value) -> ToolReply {
        self.call_with_id(caller, None, tool, args).await
    }

    pub async fn call_with_id(
        &self,
        caller: &Caller,
        request_id: Option<&str>,
        tool: &str,
        args: Value,
    ) -> ToolReply {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                          "params": {"name": tool, "arguments": args}});
        let resp = self.rpc(Some(caller), request_id, body).await;
        let result = resp
            .get("result")
            .unwrap_or_else(|| panic!("no result: {resp}"))
            .clone();
        ToolReply(result)
    }

    /// Names listed by `tools/list` for `caller`.
    pub async fn list_tool_names(&self, caller: Option<&Caller>) -> Vec<String> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
        let resp = self.rpc(caller, None, body).await;
        let tools = resp["result"]["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("{resp}"));
        tools
            .iter()
            .map(|t| t["name"].as_str().expect("name").to_owned())
            .collect()
    }
}

/// A `CallToolResult` as JSON.
#[derive(Debug, Clone)]
pub struct ToolReply(pub Value);

impl ToolReply {
    pub fn is_error(&self) -> bool {
        self.0["isError"].as_bool().unwrap_or(false)
    }

    /// The first text block.
    pub fn text(&self) -> &str {
        self.0["content"][0]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("no text: {}", self.0))
    }

    pub fn structured(&self) -> &Value {
        &self.0["structuredContent"]
    }

    /// Asserts a tool error with exactly this text and no structured content.
    #[track_caller]
    pub fn assert_error(&self, text: &str) {
        assert!(self.is_error(), "expected a tool error, got {}", self.0);
        assert_eq!(self.text(), text);
        assert!(self.0.get("structuredContent").is_none(), "{}", self.0);
    }

    /// Asserts success and returns the structured content.
    #[track_caller]
    pub fn ok(&self) -> &Value {
        assert!(!self.is_error(), "expected success, got {}", self.0);
        assert!(self.structured().is_object(), "{}", self.0);
        self.structured()
    }
}
