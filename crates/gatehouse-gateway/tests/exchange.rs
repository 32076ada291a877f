//! Invariant: behind the gateway, a Streamable HTTP upstream that is itself a resource server
//! receives, for each user, a token minted for **its own** audience by RFC 8693 token exchange —
//! the user as `sub`, the gateway as actor — and never the client's token (which it would
//! refuse: wrong audience).
//!
//! Real components: the development authorization server (token exchange with its per-client
//! policy), the gateway over TCP, and an upstream MCP server protected by Gatehouse.

use std::sync::{Arc, Mutex};

use gatehouse::settings::{
    IssuerSettings, PolicySettings, Settings, UpstreamMode, UpstreamSettings,
};
use gatehouse::{Gatehouse, ResourceUrl};
use gatehouse_dev_issuer::{DevClient, DevIssuer, DevIssuerConfig};
use gatehouse_gateway::ProxiedServer;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

mod common;

use common::{WhoAmI, recording};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_gets_a_token_for_its_own_audience_naming_the_user() {
    let cancel = CancellationToken::new();
    let as_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw_bound = gw_listener.local_addr().unwrap();
    let gateway_url = format!("http://{gw_bound}/mcp");
    let upstream_url = format!("http://{}/mcp", up_listener.local_addr().unwrap());

    let issuer = DevIssuer::for_listener(
        &as_listener,
        DevIssuerConfig {
            clients: vec![
                DevClient::new("alice-app", "a", ["mcp"]).with_subject("alice"),
                // Holds only a scope the gateway may not delegate: its exchange is refused.
                DevClient::new("bob-app", "b", ["other"]).with_subject("bob"),
                DevClient::new("gateway", "g", ["mcp"])
                    .with_token_exchange(gateway_url.as_str(), [upstream_url.as_str()]),
            ],
            ..DevIssuerConfig::default()
        },
    )
    .unwrap();
    let issuer_url = issuer.issuer().to_owned();
    let token_endpoint = issuer.token_endpoint();
    let inbound = issuer.mint("alice-app", &["mcp"], &gateway_url).unwrap();
    let undelegable = issuer.mint("bob-app", &["other"], &gateway_url).unwrap();
    let stop = cancel.clone();
    tokio::spawn(gatehouse_dev_issuer::serve_issuer(
        as_listener,
        issuer,
        async move { stop.cancelled().await },
    ));

    // The upstream: a resource server of its own, recording every bearer token it is shown.
    let seen_tokens: Arc<Mutex<Vec<String>>> = Arc::default();
    let upstream = Gatehouse::builder(ResourceUrl::parse(&upstream_url).unwrap())
        .jwt_issuer(issuer_url.clone())
        .cancellation(cancel.child_token())
        .start()
        .await
        .unwrap();
    let up_router = recording(upstream.mount(WhoAmI::new), seen_tokens.clone());
    let stop = cancel.clone();
    tokio::spawn(gatehouse::serve(up_listener, up_router, async move {
        stop.cancelled().await
    }));

    // The gateway: the upstream's credential comes from token exchange at the issuer.
    let dir = std::env::temp_dir().join(format!("gw-exchange-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret_file = dir.join("gateway.secret");
    std::fs::write(&secret_file, "g").unwrap();
    let mut settings = Settings::default();
    settings.auth.issuers = vec![IssuerSettings::new(issuer_url.clone())];
    settings.upstreams = vec![UpstreamSettings {
        name: "up".into(),
        base_url: upstream_url.clone(),
        audience: None,
        resource: None,
        scopes: vec!["mcp".into()],
        mode: UpstreamMode::TokenExchange,
        token_endpoint: Some(token_endpoint),
        client_id: Some("gateway".into()),
        client_secret_file: Some(secret_file),
        client_secret_env: None,
        secret_file: None,
        secret_env: None,
        header: None,
    }];
    let proxied = ProxiedServer {
        credential_upstream: Some("up".into()),
        policy: PolicySettings {
            tools: [("whoami".to_owned(), vec![])].into(),
            ..PolicySettings::default()
        },
        ..ProxiedServer::http("up", "/mcp", &upstream_url)
    };
    let gateway = gatehouse_gateway::build(&settings, &[proxied], gw_bound, &[], cancel.clone())
        .await
        .unwrap();
    let stop = cancel.clone();
    tokio::spawn(gatehouse::serve(gw_listener, gateway.router, async move {
        stop.cancelled().await
    }));

    let call = |token: &str| {
        reqwest::Client::new()
            .post(&gateway_url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .bearer_auth(token)
            .json(&json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
                          "params":{"name":"whoami","arguments":{}}}))
            .send()
    };
    let resp = call(&inbound).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let who: Value = serde_json::from_str(
        body["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("{body}")),
    )
    .unwrap();
    assert_eq!(who["sub"], "alice", "{who}");
    assert_eq!(who["actor"], "gateway", "{who}");
    assert_eq!(who["aud"], json!([upstream_url]), "{who}");

    // Every token the upstream saw was an exchanged one, never the client's.
    let seen = seen_tokens.lock().unwrap().clone();
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|t| !t.contains(&inbound)),
        "the inbound token reached the upstream"
    );

    // The authorization server refuses to exchange bob's token (nothing it may delegate): the
    // client gets 502 — the upstream is out of reach, its own token was fine — never a 401.
    let resp = call(&undelegable).await.unwrap();
    assert_eq!(resp.status(), 502);
    assert!(resp.headers().get("www-authenticate").is_none());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "bad_gateway");
    assert!(
        seen_tokens
            .lock()
            .unwrap()
            .iter()
            .all(|t| !t.contains(&undelegable))
    );

    let _ = std::fs::remove_dir_all(&dir);
    cancel.cancel();
}
