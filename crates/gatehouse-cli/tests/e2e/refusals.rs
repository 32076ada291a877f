//! Issue 15: every refusal the binary makes on its MCP listener is JSON with a `Content-Type`,
//! whoever decides it — the edge, or rmcp's transport checks, whose plain-text answers the edge
//! answers first or rewrites — at every protocol revision it serves. A JSON-RPC batch and a body
//! that is not one JSON-RPC message are `400` at every revision (batching was removed in
//! 2025-06-18; MCP SHTTP §Sending Messages: "MUST return an HTTP error status code (e.g., 400
//! Bad Request)").
//!
//! Elsewhere: the `503`/`408` of the request limits (`ops_limits.rs`), the session `404`
//! (`sessions.rs`), the rate limits' `429` (`ops_rate_limits.rs`). The listener's own `431`
//! for an oversized head is hyper's, before any service: it has no body.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::stack::Stack;

const REVISIONS: [&str; 3] = ["2025-06-18", "2025-11-25", "2026-07-28"];
const MAX_BODY: usize = 4096;

/// One request: method, path, headers (besides Host), body.
struct Case {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    /// Send the body chunked, without `Content-Length`.
    chunked: bool,
    status: u16,
}

/// The headers of a well-formed `tools/list` at `version` (2026-07-28 also names the method).
fn mcp_headers(version: &str, token: Option<&str>) -> Vec<(&'static str, String)> {
    let mut h = vec![
        ("content-type", "application/json".to_owned()),
        ("accept", "application/json, text/event-stream".to_owned()),
        ("mcp-protocol-version", version.to_owned()),
    ];
    if version == "2026-07-28" {
        h.push(("mcp-method", "tools/list".to_owned()));
    }
    if let Some(t) = token {
        h.push(("authorization", format!("Bearer {t}")));
    }
    h
}

fn set(
    mut h: Vec<(&'static str, String)>,
    name: &'static str,
    value: &str,
) -> Vec<(&'static str, String)> {
    h.retain(|(n, _)| *n != name);
    h.push((name, value.to_owned()));
    h
}

fn tools_list_body(version: &str) -> Vec<u8> {
    let mut params = json!({});
    if version == "2026-07-28" {
        params["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {}
        });
    }
    serde_json::to_vec(&json!({"jsonrpc":"2.0","id":1,"method":"tools/list","params":params}))
        .unwrap()
}

/// `writer` holds every scope, so a body the edge cannot read a tool name from reaches rmcp
/// (for a caller without all tool scopes the edge answers such a body `403` itself).
fn cases(version: &str, writer: &str, reader: &str, void_body: Vec<u8>) -> Vec<Case> {
    let ok = mcp_headers(version, Some(writer));
    let list = tools_list_body(version);
    let case = |name, headers, body: Vec<u8>, status| Case {
        name,
        method: "POST",
        path: "/mcp",
        headers,
        body,
        chunked: false,
        status,
    };
    let oversized = {
        let mut v: Value = serde_json::from_slice(&list).unwrap();
        v["params"]["cursor"] = json!("x".repeat(MAX_BODY));
        serde_json::to_vec(&v).unwrap()
    };
    vec![
        case("no token", mcp_headers(version, None), list.clone(), 401),
        case(
            "invalid token",
            mcp_headers(version, Some("not-a-valid-token")),
            list.clone(),
            401,
        ),
        case(
            "malformed credentials",
            set(ok.clone(), "authorization", "Bearer a b"),
            list.clone(),
            400,
        ),
        case(
            "foreign Host",
            set(ok.clone(), "host", "evil.example"),
            list.clone(),
            421,
        ),
        case(
            "foreign Origin",
            set(ok.clone(), "origin", "https://evil.example"),
            list.clone(),
            403,
        ),
        case(
            "insufficient scope",
            mcp_headers(version, Some(reader)),
            void_body,
            403,
        ),
        case(
            "wrong Accept",
            set(ok.clone(), "accept", "application/json"),
            list.clone(),
            406,
        ),
        case(
            "wrong Content-Type",
            set(ok.clone(), "content-type", "text/plain"),
            list.clone(),
            415,
        ),
        case("malformed JSON", ok.clone(), b"{\"jsonrpc\":".to_vec(), 400),
        case(
            "JSON-RPC batch",
            ok.clone(),
            format!("[{}]", String::from_utf8(list.clone()).unwrap()).into_bytes(),
            400,
        ),
        case(
            "not a JSON-RPC message",
            ok.clone(),
            b"{\"hello\":1}".to_vec(),
            400,
        ),
        case(
            "unsupported protocol version",
            set(ok.clone(), "mcp-protocol-version", "1999-01-01"),
            list.clone(),
            400,
        ),
        case(
            "declared body over the limit",
            ok.clone(),
            oversized.clone(),
            413,
        ),
        Case {
            chunked: true,
            ..case("chunked body over the limit", ok.clone(), oversized, 413)
        },
        Case {
            method: "GET",
            ..case(
                "GET",
                set(ok.clone(), "accept", "text/event-stream"),
                vec![],
                405,
            )
        },
        Case {
            method: "DELETE",
            ..case("DELETE", ok.clone(), vec![], 405)
        },
        Case {
            path: "/elsewhere",
            ..case("unknown path", ok.clone(), list, 404)
        },
    ]
}

/// Sends `case` over a fresh connection and returns (status, headers, body) of the answer.
async fn send(stack: &Stack, case: &Case) -> (u16, String, String) {
    let addr = stack
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/mcp");
    let mut head = format!(
        "{} {} HTTP/1.1\r\nconnection: close\r\n",
        case.method, case.path
    );
    if !case.headers.iter().any(|(n, _)| *n == "host") {
        head.push_str(&format!("host: {addr}\r\n"));
    }
    for (n, v) in &case.headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    let mut wire = Vec::new();
    if case.chunked {
        head.push_str("transfer-encoding: chunked\r\n\r\n");
        wire.extend_from_slice(head.as_bytes());
        for chunk in case.body.chunks(1024) {
            wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            wire.extend_from_slice(chunk);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"0\r\n\r\n");
    } else {
        head.push_str(&format!("content-length: {}\r\n\r\n", case.body.len()));
        wire.extend_from_slice(head.as_bytes());
        wire.extend_from_slice(&case.body);
    }
    tokio::time::timeout(Duration::from_secs(20), async {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        // The server may answer before reading everything (413): a reset write is fine.
        let _ = tcp.write_all(&wire).await;
        let mut out = Vec::new();
        let _ = tcp.read_to_end(&mut out).await;
        let text = String::from_utf8_lossy(&out).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
        let status = head[9..12].parse().unwrap();
        (status, head.to_ascii_lowercase(), body.to_owned())
    })
    .await
    .expect("bounded exchange")
}

/// The body of a `Content-Length` or chunked HTTP/1.1 response (one chunk is all the edge sends).
fn decoded(head: &str, body: &str) -> String {
    if head.contains("transfer-encoding: chunked") {
        let (_, rest) = body.split_once("\r\n").unwrap_or(("", body));
        rest.split("\r\n").next().unwrap_or_default().to_owned()
    } else {
        body.to_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_is_json_at_every_revision() {
    let stack = Stack::start(|c| c.server.max_body_bytes = MAX_BODY).await;
    let reader = stack.token("acme-reader", &[]);
    let writer = stack.token("acme-writer", &[]);
    for version in REVISIONS {
        let mut void = serde_json::from_slice::<Value>(&tools_list_body(version)).unwrap();
        void["method"] = json!("tools/call");
        void["params"]["name"] = json!("void_invoice");
        void["params"]["arguments"] = json!({"invoice_id": "inv_1"});
        let mut cases = cases(
            version,
            &writer,
            &reader,
            serde_json::to_vec(&void).unwrap(),
        );
        if version == "2026-07-28" {
            let scoped = cases
                .iter_mut()
                .find(|c| c.name == "insufficient scope")
                .unwrap();
            scoped.headers = set(scoped.headers.clone(), "mcp-method", "tools/call");
            scoped.headers.push(("mcp-name", "void_invoice".to_owned()));
        }
        for case in &cases {
            let (status, head, body) = send(&stack, case).await;
            let what = format!("{version} {}: {status} {head}\n{body}", case.name);
            assert_eq!(status, case.status, "{what}");
            assert!(
                head.contains("content-type: application/json\r\n"),
                "{what}"
            );
            let body = decoded(&head, &body);
            let json: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {what}"));
            assert!(json.is_object(), "{what}");
            if status == 405 {
                assert!(head.contains("allow: post\r\n"), "{what}");
            }
            if matches!(
                case.name,
                "malformed JSON" | "JSON-RPC batch" | "not a JSON-RPC message"
            ) {
                assert_eq!(json["error"]["code"], -32600, "{what}");
                assert_eq!(json["id"], Value::Null, "{what}");
            }
        }
    }
    // The server still serves.
    let r = stack.list_tools(Some(&reader)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    stack.stop().await;
}
