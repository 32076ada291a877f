//! Invariant: each proxied server is its own protected resource — its own path, RFC 9728
//! document, audience and policy — so a token minted for one is refused by another, and every
//! request reaches its upstream only through the library's edge.
//!
//! Real components: the development authorization server (ES256 JWTs, JWKS, RFC 8414), the
//! gateway served over TCP on 127.0.0.1 by `gatehouse::serve`, stdio fixture servers as children.

use gatehouse::settings::{IssuerSettings, PolicySettings, Settings};
use gatehouse_dev_issuer::{DevClient, DevIssuer, DevIssuerConfig};
use gatehouse_gateway::{Isolation, ProxiedServer, StdioCommand};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn proxied(
    name: &str,
    path: &str,
    isolation: Isolation,
    tools: &[(&str, &[&str])],
) -> ProxiedServer {
    ProxiedServer {
        isolation,
        max_processes: 10,
        idle_timeout_seconds: 60,
        policy: PolicySettings {
            route_scopes: vec!["mcp".into()],
            tools: tools
                .iter()
                .map(|(t, s)| (t.to_string(), s.iter().map(|s| s.to_string()).collect()))
                .collect(),
            ..PolicySettings::default()
        },
        ..ProxiedServer::stdio(
            name,
            path,
            StdioCommand::new(
                env!("CARGO_BIN_EXE_gatehouse-stdio-fixture"),
                Vec::<String>::new(),
            ),
        )
    }
}

async fn rpc(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: Value,
) -> (u16, String, Value) {
    let mut req = http
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let www = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, www, body)
}

fn call(tool: &str, args: Value) -> Value {
    json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":tool,"arguments":args}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_proxied_server_is_its_own_resource() {
    let cancel = CancellationToken::new();
    let as_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = DevIssuer::for_listener(
        &as_listener,
        DevIssuerConfig {
            clients: vec![
                DevClient::new("alice-app", "a", ["mcp"]).with_subject("alice"),
                DevClient::new("admin-app", "b", ["mcp", "admin"]).with_subject("root"),
            ],
            ..DevIssuerConfig::default()
        },
    )
    .unwrap();
    let stop = cancel.clone();
    let served_issuer = issuer.clone();
    tokio::spawn(gatehouse_dev_issuer::serve_issuer(
        as_listener,
        served_issuer,
        async move { stop.cancelled().await },
    ));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bound = listener.local_addr().unwrap();
    let mut settings = Settings::default();
    settings.auth.issuers = vec![IssuerSettings::new(issuer.issuer().to_owned())];
    let servers = [
        proxied(
            "a",
            "/a/mcp",
            Isolation::PerPrincipal,
            &[("whoami", &[]), ("e*", &[])],
        ),
        proxied("b", "/b/mcp", Isolation::Shared, &[("*", &["admin"])]),
    ];
    let gateway = gatehouse_gateway::build(&settings, &servers, bound, &[], cancel.clone())
        .await
        .unwrap();
    assert_eq!(gateway.servers.len(), 2);
    let (ready, details) = gateway.readiness();
    assert!(ready, "{details}");
    assert_eq!(
        details["servers"]["a"],
        json!({"keys": true, "upstream": true})
    );
    let stop = cancel.clone();
    tokio::spawn(gatehouse::serve(listener, gateway.router, async move {
        stop.cancelled().await
    }));

    let http = reqwest::Client::new();
    let base = format!("http://{bound}");
    let (a, b) = (format!("{base}/a/mcp"), format!("{base}/b/mcp"));

    // Each has its own metadata document naming its own resource.
    for url in [&a, &b] {
        let path = url.trim_start_matches(&base);
        let doc: Value = http
            .get(format!("{base}/.well-known/oauth-protected-resource{path}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(doc["resource"], json!(url));
    }

    // No token: the challenge points at that server's document.
    let list = json!({"jsonrpc":"2.0","id":1,"method":"tools/list"});
    let (status, www, _) = rpc(&http, &a, None, list.clone()).await;
    assert_eq!(status, 401);
    assert!(
        www.contains("/.well-known/oauth-protected-resource/a/mcp"),
        "{www}"
    );

    // A token for /a/mcp is refused at /b/mcp (audience), and the other way round.
    let alice_a = issuer.mint("alice-app", &["mcp"], &a).unwrap();
    let root_b = issuer.mint("admin-app", &["mcp", "admin"], &b).unwrap();
    assert_eq!(rpc(&http, &b, Some(&alice_a), list.clone()).await.0, 401);
    assert_eq!(rpc(&http, &a, Some(&root_b), list.clone()).await.0, 401);

    // /a: the policy's tools only; /b: everything, for admins.
    let (status, _, body) = rpc(&http, &a, Some(&alice_a), list.clone()).await;
    assert_eq!(status, 200, "{body}");
    let names: Vec<&str> = body["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}"); // whoami, echo, exit
    assert!(!names.contains(&"admin_reset"));
    let (status, _, body) = rpc(
        &http,
        &a,
        Some(&alice_a),
        call("echo", json!({"text":"hi"})),
    )
    .await;
    assert_eq!(
        (status, &body["result"]["content"][0]["text"]),
        (200, &json!("hi"))
    );
    let (status, _, body) = rpc(&http, &b, Some(&root_b), call("admin_reset", json!({}))).await;
    assert_eq!(
        (status, &body["result"]["content"][0]["text"]),
        (200, &json!("reset")),
        "{body}"
    );
    let alice_b = issuer.mint("alice-app", &["mcp"], &b).unwrap();
    let (status, www, _) = rpc(&http, &b, Some(&alice_b), call("echo", json!({"text":"x"}))).await;
    assert_eq!(status, 403);
    assert!(
        www.contains("insufficient_scope") && www.contains("admin"),
        "{www}"
    );

    // Anything else: the library's JSON 404.
    let resp = http.get(format!("{base}/elsewhere")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["content-type"], "application/json");

    cancel.cancel();
}
