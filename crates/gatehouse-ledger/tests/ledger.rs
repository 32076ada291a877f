//! Invariant: the ledger accepts only tokens minted for its own audience, records who asked (the
//! user and the service acting for them) and creates one credit note per idempotency key.

use gatehouse_ledger::{Ledger, fingerprint};
use gatehouse_testkit::TestAuthServer;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

struct Running {
    issuer: TestAuthServer,
    ledger: Ledger,
    url: String,
    audience: String,
    client: reqwest::Client,
}

async fn start() -> Running {
    let issuer = TestAuthServer::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let audience = format!("{base}/api");
    let ledger = Ledger::start(issuer.issuer(), &audience, CancellationToken::new())
        .await
        .unwrap();
    let router = ledger.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    Running {
        issuer,
        ledger,
        url: format!("{base}/api/credit-notes"),
        audience,
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
    }
}

fn note(invoice: &str) -> Value {
    json!({"invoiceId": invoice, "tenant": "acme", "amountMinor": 125000, "currency": "EUR",
           "reason": "duplicate"})
}

impl Running {
    async fn post(&self, token: Option<&str>, key: Option<&str>, body: &Value) -> (u16, Value) {
        let mut req = self.client.post(&self.url).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(k) = key {
            req = req.header("idempotency-key", k);
        }
        let resp = req.send().await.unwrap();
        (
            resp.status().as_u16(),
            resp.json().await.unwrap_or(Value::Null),
        )
    }

    fn delegated(&self) -> String {
        self.issuer
            .token()
            .aud(self.audience.as_str())
            .subject("alice")
            .client_id("billing")
            .claim("act", json!({"sub": "billing-mcp"}))
            .sign()
    }
}

#[tokio::test]
async fn records_user_and_actor_once_per_key_for_its_own_audience_only() {
    let r = start().await;
    let token = r.delegated();

    let (status, first) = r
        .post(Some(&token), Some("void-INV-1"), &note("INV-1"))
        .await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["user"], "alice");
    assert_eq!(first["userVerified"], true);
    assert_eq!(first["actor"], "billing-mcp");
    assert_eq!(first["invoiceId"], "INV-1");

    // A retry with the same key and body is the same note; another body under it is refused.
    let (status, again) = r
        .post(Some(&token), Some("void-INV-1"), &note("INV-1"))
        .await;
    assert_eq!((status, &again["id"]), (200, &first["id"]));
    let (status, _) = r
        .post(Some(&token), Some("void-INV-1"), &note("INV-2"))
        .await;
    assert_eq!(status, 409);
    assert_eq!(r.ledger.notes().len(), 1);

    // Without an act claim the actor is the token's client.
    let plain = r
        .issuer
        .token()
        .aud(r.audience.as_str())
        .client_id("billing")
        .sign();
    let (status, n) = r.post(Some(&plain), Some("k2"), &note("INV-3")).await;
    assert_eq!(status, 201);
    assert_eq!(n["actor"], "billing");

    // A service's own token (sub = its client id) names no user: the body's onBehalfOf is
    // recorded as asserted, never as verified; a user's token ignores it.
    let service = r
        .issuer
        .token()
        .aud(r.audience.as_str())
        .subject("billing")
        .client_id("billing")
        .sign();
    let mut asserted = note("INV-5");
    asserted["onBehalfOf"] = json!({"subject": "alice", "clientId": "acme-writer"});
    let (status, n) = r.post(Some(&service), Some("k5"), &asserted).await;
    assert_eq!(status, 201, "{n}");
    assert_eq!(
        (&n["user"], &n["userVerified"], &n["actor"]),
        (&json!("alice"), &json!(false), &json!("billing"))
    );
    let mut claimed = note("INV-6");
    claimed["onBehalfOf"] = json!({"subject": "mallory"});
    let (status, n) = r.post(Some(&token), Some("k6"), &claimed).await;
    assert_eq!(status, 201, "{n}");
    assert_eq!(
        (&n["user"], &n["userVerified"]),
        (&json!("alice"), &json!(true))
    );

    // Writing needs invoices:write; a read-only token may list but not post.
    let reader = r
        .issuer
        .token()
        .aud(r.audience.as_str())
        .scope("invoices:read")
        .sign();
    let (status, body) = r.post(Some(&reader), Some("k7"), &note("INV-7")).await;
    assert_eq!(
        (status, &body["error"]),
        (403, &json!("insufficient_scope"))
    );
    let listed = r
        .client
        .get(&r.url)
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    let nothing = r
        .issuer
        .token()
        .aud(r.audience.as_str())
        .scope("profile")
        .sign();
    let listed = r
        .client
        .get(&r.url)
        .bearer_auth(&nothing)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 403);

    // A token for another audience (the MCP server's) is refused and records nothing.
    let inbound = r.issuer.token().aud("http://127.0.0.1:1/mcp").sign();
    let (status, _) = r.post(Some(&inbound), Some("k3"), &note("INV-4")).await;
    assert_eq!(status, 401);
    let (status, _) = r.post(None, Some("k4"), &note("INV-4")).await;
    assert_eq!(status, 401);
    let (status, _) = r.post(Some(&token), None, &note("INV-4")).await;
    assert_eq!(status, 400);
    assert_eq!(r.ledger.notes().len(), 4);

    // It remembers fingerprints of what it was shown, never the tokens.
    let seen = r.ledger.tokens_seen();
    assert!(seen.contains(&fingerprint(&inbound)));
    assert!(seen.contains(&fingerprint(&token)));
    assert!(seen.iter().all(|s| s.len() == 64 && !s.contains('.')));

    // Listing needs a token for the ledger too.
    let listed: Value = r
        .client
        .get(format!("{}?invoice_id=INV-1", r.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["creditNotes"].as_array().unwrap().len(), 1);
    let status = r
        .client
        .get(&r.url)
        .bearer_auth(&inbound)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);
}
