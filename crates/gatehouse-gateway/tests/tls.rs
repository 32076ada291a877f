//! Invariant: an https upstream is reached with its certificate checked — against the system's
//! trust store, or only against a configured CA (`ca_file`) — by both of the gateway's clients:
//! rmcp's (the handshake, lists) and the forwarding path's (`tools/call` as bytes). An upstream
//! whose certificate the configured trust does not vouch for is never spoken to.
//!
//! Real pieces: a private CA and certificates made here (rcgen); rmcp Streamable HTTP servers
//! behind rustls on 127.0.0.1 — stateless answering in JSON, and with sessions answering in SSE —
//! recording every POST they receive.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use gatehouse::policy::UnnamedTools;
use gatehouse::{Gatehouse, ResourceUrl};
use gatehouse_gateway::{GatewayHandler, HttpTarget, Trust, UpstreamServer};
use http_body_util::BodyExt;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::StreamableHttpServerConfig;
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

mod common;

const RESOURCE: &str = "https://gw.example.com/mcp";

#[derive(Clone)]
struct Echo {
    tool_router: ToolRouter<Self>,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct EchoParams {
    /// What to say back.
    text: String,
}

#[tool_router]
impl Echo {
    #[tool(description = "Says the text back")]
    fn echo(&self, Parameters(p): Parameters<EchoParams>) -> String {
        p.text
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Echo {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// A certificate authority of our own.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    /// A server certificate for `names`, and its key.
    fn leaf(&self, names: &[&str]) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (
            cert.der().clone(),
            PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        )
    }

    /// The CA's certificate in a PEM file, as an operator would configure it.
    fn pem_file(&self, dir: &TempDir) -> PathBuf {
        let path = dir.0.join("ca.pem");
        std::fs::write(&path, self.issuer.pem()).unwrap();
        path
    }
}

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("gatehouse-gateway-tls-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The JSON-RPC bodies the upstream received.
type Seen = Arc<Mutex<Vec<Value>>>;

struct Served {
    url: String,
    seen: Seen,
    stop: CancellationToken,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// An rmcp upstream behind TLS with `cert` on 127.0.0.1: with sessions (SSE answers) or
/// stateless (JSON answers).
async fn upstream(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    sessions: bool,
) -> Served {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/mcp", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let make = || {
        Ok(Echo {
            tool_router: Echo::tool_router(),
        })
    };
    let config = StreamableHttpServerConfig::default().with_cancellation_token(stop.child_token());
    let (routes, _) = common::mcp_routes(make, sessions, config);
    let seen = Seen::default();
    let record = seen.clone();
    let app = routes.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let record = record.clone();
            async move {
                let (parts, body) = req.into_parts();
                let bytes = body.collect().await.unwrap().to_bytes();
                if let Ok(v) = serde_json::from_slice(&bytes) {
                    record.lock().unwrap().push(v);
                }
                next.run(axum::extract::Request::from_parts(parts, bytes.into()))
                    .await
            }
        },
    ));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let s = stop.clone();
    tokio::spawn(async move {
        loop {
            let tcp = tokio::select! {
                _ = s.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok((tcp, _)) => tcp,
                    Err(_) => continue,
                },
            };
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake here.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
            });
        }
    });
    Served { url, seen, stop }
}

/// The gateway in front of `url` trusting `trust`, with the forwarding path.
async fn gateway(url: &str, trust: Trust) -> Result<(Router, Gatehouse), String> {
    let handler = GatewayHandler::start(UpstreamServer::http(HttpTarget {
        trust,
        ..HttpTarget::new(url)
    }))
    .await
    .map_err(|e| e.to_string())?;
    let gatehouse = Gatehouse::builder(ResourceUrl::parse(RESOURCE).unwrap())
        .authorization_servers(["https://auth.example.com"])
        .verifier(Arc::new(common::Users::new(
            RESOURCE,
            &[("alice", "alice", "mcp")],
        )))
        .unnamed_tools(UnnamedTools::Deny)
        .tool_scopes("echo", Vec::<String>::new())
        .build()
        .unwrap();
    Ok((handler.mount(&gatehouse, true), gatehouse))
}

/// The answer's status, media type and last JSON-RPC message.
async fn post(app: &Router, body: Value) -> (u16, String, Value) {
    let req = common::mcp_post("alice", body.to_string(), &[]);
    let resp = tokio::time::timeout(Duration::from_secs(20), app.clone().oneshot(req))
        .await
        .expect("an answer")
        .unwrap();
    let status = resp.status().as_u16();
    let media = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, media, common::last_message(resp).await)
}

#[tokio::test]
async fn an_https_upstream_under_a_private_ca_is_reached_on_both_paths() {
    for sessions in [false, true] {
        reached_on_both_paths(sessions).await;
    }
}

async fn reached_on_both_paths(sessions: bool) {
    let dir = TempDir::new();
    let ca = Ca::new("Gatehouse test CA");
    let (cert, key) = ca.leaf(&["127.0.0.1"]);
    let up = upstream(cert, key, sessions).await;
    let trust = Trust::from_pem_file(&ca.pem_file(&dir)).unwrap();
    let (app, gatehouse) = gateway(&up.url, trust)
        .await
        .expect("the upstream is trusted");

    // rmcp's client over TLS: the list.
    let (status, _, list) = post(
        &app,
        json!({"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}),
    )
    .await;
    assert_eq!(status, 200, "sessions: {sessions}: {list}");
    assert_eq!(list["result"]["tools"][0]["name"], "echo", "{list}");

    // The forwarding path over TLS: the client's bytes with the gateway's id.
    let before = gatehouse.direct_answers();
    let (status, media, answer) = post(
        &app,
        json!({"jsonrpc":"2.0","id":"c-7","method":"tools/call",
               "params":{"name":"echo","arguments":{"text":"over tls"}}}),
    )
    .await;
    assert_eq!(status, 200, "sessions: {sessions}: {answer}");
    // An upstream with sessions answers in SSE, relayed event by event over the TLS connection.
    let expected = if sessions {
        "text/event-stream"
    } else {
        "application/json"
    };
    assert_eq!(media, expected);
    assert_eq!(answer["id"], "c-7");
    assert_eq!(
        answer["result"]["content"][0]["text"], "over tls",
        "{answer}"
    );
    assert_eq!(
        gatehouse.direct_answers() - before,
        1,
        "the forwarding path"
    );
    let seen = up.seen.lock().unwrap().clone();
    let call = seen
        .iter()
        .find(|m| m["method"] == "tools/call")
        .expect("the call reached the upstream");
    assert!(
        call["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("gatehouse-")),
        "sent as bytes by the forwarding path: {call}"
    );
}

#[tokio::test]
async fn an_https_upstream_the_configured_trust_does_not_vouch_for_is_never_spoken_to() {
    let dir = TempDir::new();
    let ca = Ca::new("Gatehouse test CA");
    let other = Ca::new("Someone else's CA");
    let cases = [
        // The system's store knows nothing of a private CA.
        (
            "system trust",
            ca.leaf(&["127.0.0.1"]),
            Trust::System,
            "UnknownIssuer",
        ),
        (
            "another CA",
            ca.leaf(&["127.0.0.1"]),
            Trust::from_pem_file(&other.pem_file(&dir)).unwrap(),
            "UnknownIssuer",
        ),
        (
            "the right CA, the wrong name",
            ca.leaf(&["mcp.example.com"]),
            Trust::from_pem_file(&ca.pem_file(&dir)).unwrap(),
            "not valid for name",
        ),
    ];
    for (case, (cert, key), trust, why) in cases {
        let up = upstream(cert, key, false).await;
        let Err(e) = gateway(&up.url, trust).await else {
            panic!("{case}: the gateway started against an untrusted upstream");
        };
        assert!(
            e.contains("invalid peer certificate") && e.contains(why),
            "{case}: the error says why: {e}"
        );
        assert!(
            up.seen.lock().unwrap().is_empty(),
            "{case}: nothing was sent to it"
        );
    }
}
