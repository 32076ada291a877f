//! Invariant, end to end with real components: when a tool calls the ledger, the ledger receives
//! a token minted for the ledger by RFC 8693 token exchange at the development authorization
//! server — naming the user as `sub` and the MCP server as actor — and never the MCP client's
//! token, which the ledger refuses when it is replayed to it.

use std::sync::Arc;

use gatehouse::upstream::{
    CredentialMode, TokenEndpointClient, UpstreamAccess, UpstreamConfig, Upstreams,
};
use gatehouse::verify::fetch::FetchConfig;
use gatehouse::verify::introspection::ClientSecret;
use gatehouse::{Caller, Gatehouse, ResourceUrl};
use gatehouse_dev_issuer::{DevClient, DevIssuer, DevIssuerConfig};
use gatehouse_ledger::{Ledger, fingerprint};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
struct Billing {
    tool_router: Arc<ToolRouter<Self>>,
}

#[tool_router]
impl Billing {
    #[tool(description = "Posts a credit note for INV-1 to the ledger")]
    async fn credit(&self, caller: Caller, upstreams: UpstreamAccess) -> String {
        let body = json!({"invoiceId": "INV-1", "tenant": caller.tenant.clone().unwrap_or_default(),
                          "amountMinor": 100, "currency": "EUR"});
        let sent = match upstreams.client("ledger") {
            Ok(c) => {
                c.send(
                    http::Method::POST,
                    "credit-notes",
                    Some(&body),
                    &[("idempotency-key", "void-INV-1")],
                )
                .await
            }
            Err(e) => Err(e),
        };
        match sent {
            Ok(r) => format!("ledger {}", r.status().as_u16()),
            Err(e) => format!("error {e}"),
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Billing {}

#[tokio::test]
async fn the_ledger_sees_the_user_and_the_actor_never_the_clients_token() {
    let cancel = CancellationToken::new();
    let as_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mcp_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ledger_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mcp = format!("http://{}/mcp", mcp_listener.local_addr().unwrap());
    let ledger_base = format!("http://{}/api", ledger_listener.local_addr().unwrap());

    // The authorization server: a user-facing client, and the billing server's own client,
    // which serves the MCP resource and may exchange its tokens for the ledger.
    let issuer = DevIssuer::for_listener(
        &as_listener,
        DevIssuerConfig {
            clients: vec![
                DevClient::new("acme-writer", "w", ["invoices:read", "invoices:write"])
                    .with_subject("alice")
                    .with_tenant("acme"),
                DevClient::new("billing-mcp", "b", ["invoices:write"])
                    .with_token_exchange(mcp.as_str(), [ledger_base.as_str()]),
            ],
            ..DevIssuerConfig::default()
        },
    )
    .unwrap();
    let issuer_url = issuer.issuer().to_owned();
    let token_endpoint = issuer.token_endpoint();
    let inbound = issuer
        .mint("acme-writer", &["invoices:read", "invoices:write"], &mcp)
        .unwrap();
    let stop = cancel.clone();
    tokio::spawn(gatehouse_dev_issuer::serve_issuer(
        as_listener,
        issuer,
        async move { stop.cancelled().await },
    ));

    let ledger = Ledger::start(&issuer_url, &ledger_base, cancel.clone())
        .await
        .unwrap();
    let router = ledger.router();
    tokio::spawn(async move { axum::serve(ledger_listener, router).await });

    let upstreams = Upstreams::new(
        vec![UpstreamConfig {
            name: "ledger".into(),
            base_url: ledger_base.parse().unwrap(),
            audience: None,
            resource: None,
            scopes: vec![],
            mode: CredentialMode::TokenExchange(TokenEndpointClient {
                token_endpoint: token_endpoint.parse().unwrap(),
                client_id: "billing-mcp".into(),
                client_secret: ClientSecret::new("b"),
            }),
        }],
        FetchConfig::default(),
    )
    .unwrap();
    let gatehouse = Gatehouse::builder(ResourceUrl::parse(&mcp).unwrap())
        .jwt_issuer(issuer_url.clone())
        .tenant_claim("tenant")
        .upstreams(upstreams)
        .cancellation(cancel.clone())
        .start()
        .await
        .unwrap();
    let billing = Billing {
        tool_router: Arc::new(Billing::tool_router()),
    };
    let app = gatehouse.mount(move || billing.clone());
    let stop = cancel.clone();
    tokio::spawn(gatehouse::serve(mcp_listener, app, async move {
        stop.cancelled().await
    }));

    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let reply: Value = client
        .post(&mcp)
        .bearer_auth(&inbound)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": "credit", "arguments": {}}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        reply["result"]["content"][0]["text"], "ledger 201",
        "{reply}"
    );

    let notes = ledger.notes();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].user.as_deref(), Some("alice"));
    assert_eq!(notes[0].actor.as_deref(), Some("billing-mcp"));
    assert_eq!(notes[0].request.tenant, "acme");
    assert!(
        !ledger.tokens_seen().contains(&fingerprint(&inbound)),
        "the MCP client's token reached the ledger"
    );

    // Replaying the client's token to the ledger is refused: it was minted for the MCP server.
    let status = client
        .post(format!("{ledger_base}/credit-notes"))
        .bearer_auth(&inbound)
        .header("idempotency-key", "replay")
        .json(&json!({"invoiceId": "INV-2", "tenant": "acme", "amountMinor": 1, "currency": "EUR"}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);
    assert_eq!(ledger.notes().len(), 1);
    cancel.cancel();
}
