//! Invariant: the gateway rows' fixtures answer what `bench/run` loads them with — the echo
//! upstream answers a stateless `tools/call echo` (no initialize, no session) with a JSON
//! result, and the bare proxy in front of it returns the same answer byte for byte (and a 502
//! once the upstream is gone).

use axum::serve::ListenerExt as _;
use gatehouse_bench::{bare_proxy, upstream};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const CALL: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello through one hop"}}}"#;

async fn call(client: &reqwest::Client, url: &str) -> (u16, String, String) {
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .body(CALL)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, resp.text().await.unwrap())
}

#[tokio::test]
async fn the_bare_proxy_returns_the_upstreams_answer_unchanged() {
    let stop = CancellationToken::new();
    let up = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up_addr = up.local_addr().unwrap();
    let router = upstream::router(stop.child_token());
    let up_stop = stop.clone();
    tokio::spawn(async move {
        axum::serve(up.tap_io(|tcp| drop(tcp.set_nodelay(true))), router)
            .with_graceful_shutdown(async move { up_stop.cancelled().await })
            .await
            .unwrap();
    });
    let forwarder =
        bare_proxy::Forwarder::new(&format!("http://{up_addr}").parse().unwrap()).unwrap();
    let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let front_addr = front.local_addr().unwrap();
    tokio::spawn(bare_proxy::serve(front, forwarder, stop.clone()));

    let client = reqwest::Client::new();
    let direct = call(&client, &format!("http://{up_addr}/mcp")).await;
    assert_eq!(direct.0, 200, "{direct:?}");
    assert!(direct.1.starts_with("application/json"), "{direct:?}");
    let answer: serde_json::Value = serde_json::from_str(&direct.2).unwrap();
    assert_eq!(
        answer["result"]["content"][0]["text"], "hello through one hop",
        "{answer}"
    );
    assert_ne!(answer["result"]["isError"], true, "{answer}");

    let proxied = call(&client, &format!("http://{front_addr}/mcp")).await;
    assert_eq!(proxied, direct);

    // An upstream that is gone is a 502 from the proxy, not a hang.
    stop.cancel();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let forwarder =
        bare_proxy::Forwarder::new(&format!("http://{up_addr}").parse().unwrap()).unwrap();
    let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let front_addr = front.local_addr().unwrap();
    tokio::spawn(bare_proxy::serve(
        front,
        forwarder,
        CancellationToken::new(),
    ));
    let gone = call(&client, &format!("http://{front_addr}/mcp")).await;
    assert_eq!(gone.0, 502, "{gone:?}");
}
