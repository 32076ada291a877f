//! Invariant: the short path of the README (`examples/protect.rs`, compiled here verbatim) is a
//! complete resource server. Started against a real issuer (the testkit's, with discovery and
//! JWKS on loopback) and driven over real HTTP: no token → `401` with the RFC 9728 challenge; the
//! metadata names the issuer once; a `greet` token calls `hello` and sees its own subject;
//! `reset` without `admin` → `403 insufficient_scope` naming `admin` (step-up); an `admin` token
//! (which implies `greet`) calls it.

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/protect.rs"]
mod protect;

use gatehouse_testkit::TestAuthServer;
use serde_json::{Value, json};

struct Running {
    base: String,
    issuer: TestAuthServer,
    client: reqwest::Client,
    stop: tokio_util::sync::CancellationToken,
}

async fn start() -> Running {
    let issuer = TestAuthServer::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let resource = format!("{base}/mcp");
    issuer.set_audience(&resource);
    let (_gatehouse, app) = protect::protect(&resource, issuer.issuer()).await.unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let until = stop.clone();
    tokio::spawn(gatehouse::serve(listener, app, async move {
        until.cancelled().await
    }));
    Running {
        base,
        issuer,
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
        stop,
    }
}

impl Running {
    async fn call(&self, token: Option<&str>, tool: &str) -> (u16, Option<String>, Value) {
        let mut req = self
            .client
            .post(format!("{}/mcp", self.base))
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .json(&json!({
                "jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": tool, "arguments": {}}
            }));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let www = resp
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = resp.json().await.unwrap_or(Value::Null);
        (status, www, body)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[tokio::test]
async fn the_readme_example_protects_its_tools_end_to_end() {
    let r = start().await;

    // 401 with the challenge that starts discovery.
    let (status, www, _) = r.call(None, "hello").await;
    assert_eq!(status, 401);
    let www = www.expect("WWW-Authenticate");
    let metadata_url = format!("{}/.well-known/oauth-protected-resource/mcp", r.base);
    assert!(
        www.contains(&format!("resource_metadata=\"{metadata_url}\"")),
        "{www}"
    );
    assert!(www.contains("scope=\"greet\""), "{www}");

    // The metadata document names the issuer (once) and the resource.
    let doc: Value = r
        .client
        .get(&metadata_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["resource"], format!("{}/mcp", r.base));
    assert_eq!(doc["authorization_servers"], json!([r.issuer.issuer()]));

    // A `greet` token calls `hello`; the tool sees the verified subject.
    let greet = r.issuer.token().scope("greet").subject("alice").sign();
    let (status, _, body) = r.call(Some(&greet), "hello").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["content"][0]["text"], "hello, alice");

    // Step-up: `reset` needs `admin`; the 403 names it.
    let (status, www, _) = r.call(Some(&greet), "reset").await;
    assert_eq!(status, 403);
    let www = www.expect("WWW-Authenticate");
    assert!(www.contains("error=\"insufficient_scope\""), "{www}");
    assert!(www.contains("scope=\"admin\""), "{www}");

    // An `admin` token (admin implies greet) is enough for both.
    let admin = r.issuer.token().scope("admin").sign();
    let (status, _, body) = r.call(Some(&admin), "reset").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["content"][0]["text"], "forgotten");
    let (status, _, _) = r.call(Some(&admin), "hello").await;
    assert_eq!(status, 200);

    // Paths the server does not serve: the same JSON refusal format as every other, with the
    // request id the client sent echoed back.
    let resp = r
        .client
        .get(format!("{}/nope", r.base))
        .header("x-request-id", "rid-7")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(resp.headers()["x-request-id"], "rid-7");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "not_found");

    // A token for another audience is refused.
    let other = r
        .issuer
        .token()
        .scope("admin")
        .aud("https://other.example/mcp")
        .sign();
    let (status, _, _) = r.call(Some(&other), "hello").await;
    assert_eq!(status, 401);
}
