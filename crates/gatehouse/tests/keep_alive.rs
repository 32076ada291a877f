//! Invariant: a request the edge refuses before reading its body leaves the HTTP/1.1 connection
//! usable (a small body is read and dropped) or says `Connection: close` (a large or
//! unknown-length one) — never closes it silently, which made clients that reuse it at once
//! fail right after their first `401` (the Python SDK in interop).
//!
//! Raw HTTP/1.1 over TCP on 127.0.0.1, so the connection itself is what is tested.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use gatehouse::verify::BoxFuture;
use gatehouse::{
    AccessToken, Caller, Gatehouse, Principal, ResourceUrl, ScopeSet, TokenKind, TokenVerifier,
    VerifyError,
};
use rmcp::model::{ServerCapabilities, ServerConfig};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

struct NoToken;

impl TokenVerifier for NoToken {
    fn verify<'a>(&'a self, _: &'a AccessToken) -> BoxFuture<'a, Result<Caller, VerifyError>> {
        Box::pin(async {
            Ok(Caller::new(Principal {
                issuer: "https://auth.example.com".into(),
                subject: Some("alice".into()),
                client_id: None,
                scopes: ScopeSet::from_space_separated("mcp"),
                audiences: vec![],
                tenant: None,
                expires_at: SystemTime::now() + Duration::from_secs(60),
                kind: TokenKind::Jwt,
                claims: Default::default(),
            }))
        })
    }
}

#[derive(Clone)]
struct Empty;

impl rmcp::ServerHandler for Empty {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

async fn serve() -> (std::net::SocketAddr, CancellationToken) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let gatehouse = Gatehouse::builder(ResourceUrl::parse(&format!("http://{addr}/mcp")).unwrap())
        .authorization_servers(["https://auth.example.com"])
        .verifier(Arc::new(NoToken))
        .listen_addr(addr)
        .build()
        .unwrap();
    let app = gatehouse.mount(|| Empty);
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(gatehouse::serve(listener, app, async move {
        s.cancelled().await
    }));
    (addr, stop)
}

/// Status line's code, headers (lower-cased names), body.
async fn read_response(r: &mut BufReader<TcpStream>) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut line = String::new();
    r.read_line(&mut line).await.unwrap();
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no status line: {line:?}"))
        .parse()
        .unwrap();
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).await.unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').unwrap();
        headers.push((k.to_ascii_lowercase(), v.trim().to_owned()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0; len];
    r.read_exact(&mut body).await.unwrap();
    (status, headers, body)
}

fn head(addr: std::net::SocketAddr, framing: &str) -> String {
    format!(
        "POST /mcp HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         accept: application/json, text/event-stream\r\nmcp-protocol-version: 2025-11-25\r\n\
         {framing}\r\n"
    )
}

fn closes(headers: &[(String, String)]) -> bool {
    headers
        .iter()
        .any(|(k, v)| k == "connection" && v.eq_ignore_ascii_case("close"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_small_request_keeps_the_connection() {
    let (addr, stop) = serve().await;
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let stream = TcpStream::connect(addr).await.unwrap();
    // Head and body in separate segments, as clients send them: the edge may have refused the
    // request before the body arrives.
    stream.set_nodelay(true).unwrap();
    let mut conn = BufReader::new(stream);
    for round in 0..3 {
        let request = head(addr, &format!("content-length: {}\r\n", body.len()));
        conn.get_mut().write_all(request.as_bytes()).await.unwrap();
        conn.get_mut().flush().await.unwrap();
        conn.get_mut().write_all(body.as_bytes()).await.unwrap();
        let (status, headers, answer) = read_response(&mut conn).await;
        assert_eq!(status, 401, "round {round}");
        assert!(!closes(&headers), "round {round}: {headers:?}");
        assert!(String::from_utf8_lossy(&answer).contains("unauthorized"));
    }
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_large_or_unsized_request_says_the_connection_closes() {
    let (addr, stop) = serve().await;
    for framing in [
        "content-length: 200000\r\n".to_owned(),
        "transfer-encoding: chunked\r\n".to_owned(),
    ] {
        let mut conn = BufReader::new(TcpStream::connect(addr).await.unwrap());
        // Only the start of the body is sent: the rest would be read as the next request.
        let request = format!("{}{}", head(addr, &framing), "10\r\n{\"jsonrpc\":\"2.0\"");
        conn.get_mut().write_all(request.as_bytes()).await.unwrap();
        let (status, headers, _) = read_response(&mut conn).await;
        assert_eq!(status, 401, "{framing}");
        assert!(closes(&headers), "{framing}: {headers:?}");
        // And it does close.
        let mut rest = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut rest))
            .await
            .expect("the server closes the connection")
            .unwrap_or(0);
        assert_eq!(n, 0, "{framing}");
    }
    stop.cancel();
}
