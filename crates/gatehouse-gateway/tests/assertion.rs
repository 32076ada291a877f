//! Invariant: in `assertion` mode a Streamable HTTP upstream that is itself a resource server
//! receives, for each user, a short-lived JWT the gateway signed for **its** audience — the
//! user as `sub`, the client, the tenant and the scopes — verifiable with the keys the gateway
//! publishes; never the client's token. An assertion for another audience is refused by the
//! upstream, and the client gets `502`, never `401`.
//!
//! Real components: the development authorization server (the clients' tokens), the gateway
//! over TCP with its JWKS, and upstream MCP servers protected by Gatehouse that discover nothing
//! but the gateway's JWKS URL.

use std::sync::{Arc, Mutex};

use gatehouse::settings::{IssuerSettings, PolicySettings, Settings};
use gatehouse::verify::jwt::JwtIssuerConfig;
use gatehouse::{Gatehouse, ResourceUrl};
use gatehouse_dev_issuer::{DevClient, DevIssuer, DevIssuerConfig};
use gatehouse_gateway::{AssertionSettings, ProxiedServer};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

mod common;

use common::{WhoAmI, recording};

/// Serves an upstream at `listener` that trusts assertions from `gateway_base`, recording
/// every bearer token it is shown.
async fn upstream(
    listener: TcpListener,
    gateway_base: &str,
    seen: Arc<Mutex<Vec<String>>>,
    cancel: &CancellationToken,
) {
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let mut trust = JwtIssuerConfig::new(gateway_base, url.as_str());
    trust.jwks_uri = Some(
        format!("{gateway_base}/.well-known/jwks.json")
            .parse()
            .unwrap(),
    );
    trust.tenant_claim = Some("tenant".into());
    let protected = Gatehouse::builder(ResourceUrl::parse(&url).unwrap())
        .jwt_issuer_config(trust)
        .cancellation(cancel.child_token())
        .start()
        .await
        .expect("the upstream loads the gateway's keys");
    let router = recording(protected.mount(WhoAmI::new), seen);
    let stop = cancel.clone();
    tokio::spawn(gatehouse::serve(listener, router, async move {
        stop.cancelled().await
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_gets_an_assertion_for_its_audience_naming_the_user() {
    let cancel = CancellationToken::new();
    let as_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let wrong_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw_bound = gw_listener.local_addr().unwrap();
    let gateway_base = format!("http://{gw_bound}");
    let upstream_url = format!("http://{}/mcp", up_listener.local_addr().unwrap());
    let wrong_url = format!("http://{}/mcp", wrong_listener.local_addr().unwrap());

    let issuer = DevIssuer::for_listener(
        &as_listener,
        DevIssuerConfig {
            clients: vec![
                DevClient::new("alice-app", "a", ["crm", "crm:read"]).with_subject("alice"),
            ],
            ..DevIssuerConfig::default()
        },
    )
    .unwrap();
    let issuer_url = issuer.issuer().to_owned();
    let inbound = issuer
        .mint(
            "alice-app",
            &["crm", "crm:read"],
            &format!("{gateway_base}/crm/mcp"),
        )
        .unwrap();
    let for_wrong = issuer
        .mint("alice-app", &["crm"], &format!("{gateway_base}/wrong/mcp"))
        .unwrap();
    let stop = cancel.clone();
    tokio::spawn(gatehouse_dev_issuer::serve_issuer(
        as_listener,
        issuer,
        async move { stop.cancelled().await },
    ));

    // Two proxied servers: one whose assertions name the upstream, one whose assertions name
    // an audience that upstream is not (a misconfiguration the upstream must catch).
    let policy = PolicySettings {
        route_scopes: vec!["crm".into()],
        tools: [("whoami".to_owned(), vec![])].into(),
        ..PolicySettings::default()
    };
    let mut settings = Settings::default();
    settings.auth.issuers = vec![IssuerSettings::new(issuer_url.clone())];
    let crm = ProxiedServer {
        assertion: Some(AssertionSettings::default()),
        policy: policy.clone(),
        ..ProxiedServer::http("crm", "/crm/mcp", &upstream_url)
    };
    let wrong = ProxiedServer {
        assertion: Some(AssertionSettings {
            audience: Some("https://somewhere-else.example.com/mcp".into()),
            ..AssertionSettings::default()
        }),
        policy,
        ..ProxiedServer::http("wrong", "/wrong/mcp", &wrong_url)
    };
    let gateway = gatehouse_gateway::build(&settings, &[crm, wrong], gw_bound, &[], cancel.clone())
        .await
        .expect("no upstream is contacted before a user comes");
    let stop = cancel.clone();
    tokio::spawn(gatehouse::serve(gw_listener, gateway.router, async move {
        stop.cancelled().await
    }));

    // The published keys: public parts only.
    let jwks: Value = reqwest::get(format!("{gateway_base}/.well-known/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(1), "{jwks}");
    assert!(jwks["keys"][0].get("d").is_none());

    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    upstream(up_listener, &gateway_base, seen.clone(), &cancel).await;
    upstream(wrong_listener, &gateway_base, seen.clone(), &cancel).await;

    let call = |path: &str, token: &str| {
        reqwest::Client::new()
            .post(format!("{gateway_base}{path}"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            // A client trying to speak for someone else: the gateway relays no header.
            .header("x-gatehouse-sub", "mallory")
            .bearer_auth(token)
            .json(&json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
                          "params":{"name":"whoami","arguments":{}}}))
            .send()
    };
    let resp = call("/crm/mcp", &inbound).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let who: Value = serde_json::from_str(
        body["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("{body}")),
    )
    .unwrap();
    assert_eq!(who["iss"], gateway_base, "{who}");
    assert_eq!(who["sub"], "alice", "{who}");
    assert_eq!(who["client"], "alice-app", "{who}");
    assert_eq!(who["scopes"], "crm crm:read", "{who}");
    assert_eq!(who["aud"], json!([upstream_url]), "{who}");

    // An assertion for another audience: the upstream refuses it; the client's token was fine,
    // so the client gets 502 and no challenge.
    let resp = call("/wrong/mcp", &for_wrong).await.unwrap();
    assert_eq!(resp.status(), 502);
    assert!(resp.headers().get("www-authenticate").is_none());

    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.len() >= 2,
        "both upstreams were reached: {}",
        seen.len()
    );
    assert!(
        seen.iter()
            .all(|t| !t.contains(&inbound) && !t.contains(&for_wrong)),
        "a client's token reached an upstream"
    );
    cancel.cancel();
}
