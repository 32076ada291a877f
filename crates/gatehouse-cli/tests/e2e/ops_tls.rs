//! Issue 6: TLS termination with PEM files, HTTP/1.1 and HTTP/2 negotiated by ALPN, with a
//! self-signed certificate generated here and a client that trusts only it.

use std::time::Duration;

use gatehouse_cli::config::TlsConfig;
use serde_json::json;

use super::stack::{Stack, TempDir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_http1_and_http2_over_tls() {
    let dir = TempDir::new();
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let cert_file = dir.0.join("cert.pem");
    let key_file = dir.0.join("key.pem");
    std::fs::write(&cert_file, cert.cert.pem()).unwrap();
    std::fs::write(&key_file, cert.signing_key.serialize_pem()).unwrap();

    let tls = TlsConfig {
        cert_file: cert_file.clone(),
        key_file: key_file.clone(),
    };
    let stack = Stack::start(move |c| {
        c.server.resource = c
            .server
            .resource
            .as_ref()
            .map(|r| r.replace("http://", "https://"));
        c.tls = Some(tls);
    })
    .await;
    let url = stack.url.replace("http://", "https://");
    let token = stack.issuer.mint("acme-reader", &[], &url).unwrap();
    let trust = reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap();

    for (client, version) in [
        (
            reqwest::Client::builder().http1_only(),
            reqwest::Version::HTTP_11,
        ),
        (reqwest::Client::builder(), reqwest::Version::HTTP_2),
    ] {
        let client = client
            .tls_certs_only([trust.clone()])
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        let r = client
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .header("authorization", format!("Bearer {token}"))
            .json(&json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
                "params":{"name":"lookup_invoice","arguments":{"invoiceId":"INV-2041"}}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.version(), version);
        assert_eq!(r.status(), 200);
        assert!(r.text().await.unwrap().contains("INV-2041"));
        // The metadata document names the https resource.
        let meta = client
            .get(url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp"))
            .send()
            .await
            .unwrap();
        assert_eq!(meta.version(), version);
        let doc: serde_json::Value = meta.json().await.unwrap();
        assert_eq!(doc["resource"], url.as_str());
    }

    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_tls_files_are_named() {
    let dir = TempDir::new();
    let tls = TlsConfig {
        cert_file: dir.0.join("missing.pem"),
        key_file: dir.0.join("key.pem"),
    };
    let err = gatehouse_cli::serve::tls_acceptor(&tls)
        .err()
        .expect("missing file refused")
        .to_string();
    assert!(err.contains("tls.cert_file"), "{err}");
}
