//! Configuration of a gateway process (`gatehouse proxy`): the library's settings shared by every
//! proxied server (listener, issuers, tenancy, rate limits, request limits), and one `[[proxy]]`
//! entry per upstream MCP server — its path, command and policy. Each upstream is its own
//! protected resource: its resource URL is the server's base URL plus its path, with its own
//! RFC 9728 document, audience and scopes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use gatehouse::observe::Observer;
use gatehouse::settings::{PolicySettings, Settings, SettingsError};
use gatehouse::{Gatehouse, ResourceUrl};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::config::{Isolation, StdioCommand, StdioUpstream};
use crate::handler::GatewayHandler;

/// One `[[proxy]]` entry: an upstream MCP server and how it is exposed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxiedServer {
    /// A name for logs and the ready line.
    pub name: String,
    /// Where clients reach it (`/fs/mcp`); its resource URL is the server's base plus this.
    pub path: String,
    /// The stdio command that starts it.
    #[serde(flatten)]
    pub command: StdioCommand,
    /// `per_principal` (default: one process per user) or `shared` (an upstream that gets no
    /// per-user identity and holds no per-user state).
    #[serde(default)]
    pub isolation: Isolation,
    /// Most processes at once. Default 100.
    #[serde(default = "default_max_processes")]
    pub max_processes: u64,
    /// A process unused this long is stopped. Default 600.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_seconds: u64,
    /// Scopes per tool (names or globs), the route scopes, the hierarchy, list filtering.
    /// `unnamed_tools` defaults to `deny` here: a tool the upstream adds stays hidden until the
    /// policy names it.
    #[serde(default)]
    pub policy: PolicySettings,
}

fn default_max_processes() -> u64 {
    100
}
fn default_idle_timeout() -> u64 {
    600
}

impl ProxiedServer {
    /// The stdio upstream this entry describes.
    pub fn upstream(&self) -> StdioUpstream {
        StdioUpstream {
            isolation: self.isolation,
            max_processes: self.max_processes.max(1),
            idle_timeout: Duration::from_secs(self.idle_timeout_seconds.max(1)),
            ..StdioUpstream::new(self.command.clone())
        }
    }
}

/// A built gateway: the router serving every proxied server, and their handlers.
#[derive(Debug)]
pub struct Gateway {
    /// Serve with `gatehouse::serve` (or any server that provides `ConnectInfo`).
    pub router: Router,
    /// (name, resource URL, handler, protection) per proxied server, in configuration order.
    pub servers: Vec<(String, ResourceUrl, GatewayHandler, Gatehouse)>,
}

/// Builds every proxied server for a listener bound to `bound`: per entry, the library's
/// settings with the entry's resource (`server.resource` as base + `path`, or the loopback URL)
/// and policy, then its upstream (one process is started and stopped to learn what it offers).
/// Every server's tool calls go to the audit trail ([`crate::audit`]); `observers` see them too,
/// and every refusal. Errors name the key at fault.
pub async fn build(
    settings: &Settings,
    proxied: &[ProxiedServer],
    bound: SocketAddr,
    observers: &[Arc<dyn Observer>],
    cancel: CancellationToken,
) -> Result<Gateway, SettingsError> {
    if proxied.is_empty() {
        return Err(SettingsError::new(
            "proxy",
            "configure at least one [[proxy]] server",
        ));
    }
    let base = match &settings.server.resource {
        Some(r) => r.trim_end_matches('/').to_owned(),
        None => format!("http://{bound}"),
    };
    let mut paths = BTreeMap::new();
    let mut servers = Vec::new();
    let mut router = Router::new();
    let mut fallback = None;
    for (i, p) in proxied.iter().enumerate() {
        let key = |k: &str| format!("proxy[{i}].{k}");
        if !p.path.starts_with('/') || p.path.len() < 2 {
            return Err(SettingsError::new(
                key("path"),
                "must start with / and name a path",
            ));
        }
        if let Some(other) = paths.insert(p.path.clone(), p.name.clone()) {
            return Err(SettingsError::new(
                key("path"),
                format!("{} is already used by {other:?}", p.path),
            ));
        }
        let mut s = settings.clone();
        s.server.resource = Some(format!("{base}{}", p.path));
        s.policy = p.policy.clone();
        let mut builder = s.builder(bound).map_err(|e| SettingsError {
            key: e.key.replacen("policy", &key("policy"), 1),
            message: e.message,
        })?;
        if p.policy.unnamed_tools.is_none() {
            // Tools someone else writes: hidden until the policy names them.
            builder = builder.unnamed_tools(gatehouse::policy::UnnamedTools::Deny);
        }
        builder = builder.observer(Arc::new(crate::audit::AuditTrace::new(&p.name)));
        for o in observers {
            builder = builder.observer(o.clone());
        }
        let gatehouse = builder
            .cancellation(cancel.child_token())
            .start()
            .await
            .map_err(|e| SettingsError::new("auth", e))?;
        let handler = GatewayHandler::start(p.upstream())
            .await
            .map_err(|e| SettingsError::new(key("command"), e))?;
        let resource = gatehouse.resource().clone();
        let h = handler.clone();
        let mounted = gatehouse.mount(move || h.clone());
        // Each server's whole stack (limits, request ids, edge) behind its two paths.
        let service = mounted.clone().into_service::<axum::body::Body>();
        router = router
            .route_service(resource.path(), service.clone())
            .route_service(&resource.metadata_path(), service);
        fallback.get_or_insert(mounted);
        tracing::info!(name = %p.name, %resource, command = %p.command.command, "proxying");
        servers.push((p.name.clone(), resource, handler, gatehouse));
    }
    // Any other path: the library's own JSON 404, from the first server's stack.
    if let Some(f) = fallback {
        router = router.fallback_service(f);
    }
    Ok(Gateway { router, servers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proxy_entry_parses_with_safe_defaults() {
        let p: ProxiedServer = toml::from_str(
            r#"
            name = "fs"
            path = "/fs/mcp"
            command = "npx"
            args = ["-y", "server"]
            [policy]
            tools = { "read_*" = ["fs:read"] }
            "#,
        )
        .unwrap();
        assert_eq!(p.isolation, Isolation::PerPrincipal);
        assert_eq!(
            p.policy.unnamed_tools, None,
            "the gateway's default (deny) applies"
        );
        assert_eq!(p.command.env_allow, ["PATH", "HOME"]);
        let u = p.upstream();
        assert_eq!((u.max_processes, u.idle_timeout.as_secs()), (100, 600));
        let e =
            toml::from_str::<ProxiedServer>("name='x'\npath='/x'\ncommand='y'\nisolaton='shared'");
        assert!(e.is_err(), "unknown keys are refused");
    }
}
