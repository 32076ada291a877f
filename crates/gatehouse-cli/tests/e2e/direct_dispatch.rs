//! The direct path answers exactly as rmcp would (issue 18, item 1): a generated corpus — every
//! billing tool and `tools/list` at every protocol revision, valid and malformed bodies and
//! headers, notifications, batches, step-up, unknown tools — sent in the same order to a stack
//! with `server.direct_dispatch = true` and to one with `false` gets the same status, the same
//! headers that matter and the same JSON body. The direct stack must have answered the eligible
//! requests itself (its counter), or the comparison would prove nothing.

use serde_json::{Value, json};

use super::stack::{ALL_TOOLS, Reply, Stack};

/// How a case names its protocol revision.
#[derive(Clone, Copy, Debug)]
enum Revision {
    /// No `MCP-Protocol-Version` header (rmcp assumes 2025-03-26).
    Absent,
    /// A revision before 2026-07-28: the header alone.
    Legacy(&'static str),
    /// 2026-07-28: the header, the SEP-2243 headers and the per-request `_meta`.
    Current,
    /// A revision nobody knows.
    Unknown,
}

const REVISIONS: [Revision; 6] = [
    Revision::Absent,
    Revision::Legacy("2025-03-26"),
    Revision::Legacy("2025-06-18"),
    Revision::Legacy("2025-11-25"),
    Revision::Current,
    Revision::Unknown,
];

/// A client of the test issuer and the scopes its token gets.
type Token = (&'static str, &'static [&'static str]);
/// Request headers, in order (a name may repeat).
type Headers = Vec<(&'static str, String)>;

/// A change to a request's headers.
type Change = Box<dyn Fn(&mut Headers)>;

/// One request of the corpus.
#[derive(Clone, Debug)]
struct Case {
    what: String,
    /// Which client's token: (client, scopes).
    token: Token,
    headers: Headers,
    body: String,
    /// Whether the direct stack must answer it itself (`mcp::direct`'s rules).
    direct: bool,
}

const WRITER: Token = ("acme-writer", &["invoices:read", "invoices:write"]);
const READER: Token = ("acme-reader", &["invoices:read"]);

fn base_headers() -> Headers {
    vec![
        ("content-type", "application/json".into()),
        ("accept", "application/json, text/event-stream".into()),
    ]
}

/// A request `method` with `params` at `revision`.
fn request(revision: Revision, id: Value, method: &str, mut params: Value) -> (Headers, Value) {
    let mut headers = base_headers();
    match revision {
        Revision::Absent => {}
        Revision::Legacy(v) => headers.push(("mcp-protocol-version", v.into())),
        Revision::Unknown => headers.push(("mcp-protocol-version", "1999-01-01".into())),
        Revision::Current => {
            headers.push(("mcp-protocol-version", "2026-07-28".into()));
            headers.push(("mcp-method", method.into()));
            if let Some(name) = params.get("name").and_then(Value::as_str) {
                headers.push(("mcp-name", name.into()));
            }
            params["_meta"] = json!({
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {}
            });
        }
    }
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    (headers, body)
}

/// The tool calls of the corpus: every tool with good arguments, bad arguments and none, a tool
/// that does not exist, and step-up (a reader voiding).
fn tool_calls() -> Vec<(String, Token, Value)> {
    let mut calls = vec![];
    for tool in ALL_TOOLS {
        let good = match tool {
            "list_invoices" => json!({}),
            _ => json!({"invoiceId": "INV-2040"}),
        };
        calls.push((
            format!("{tool} good"),
            WRITER,
            json!({"name": tool, "arguments": good}),
        ));
        calls.push((
            format!("{tool} wrong type"),
            WRITER,
            json!({"name": tool, "arguments": {"invoiceId": 42, "limit": "x"}}),
        ));
        calls.push((
            format!("{tool} no arguments"),
            WRITER,
            json!({"name": tool}),
        ));
    }
    calls.push((
        "lookup of another tenant's invoice".into(),
        READER,
        json!({"name": "lookup_invoice", "arguments": {"invoiceId": "INV-9999"}}),
    ));
    calls.push((
        "unknown tool".into(),
        WRITER,
        json!({"name": "drop_tables", "arguments": {}}),
    ));
    calls.push((
        "void without write scope".into(),
        READER,
        json!({"name": "void_invoice", "arguments": {"invoiceId": "INV-2041"}}),
    ));
    // Voids the invoice for the rest of the corpus: the second one answers "already void".
    for round in ["first", "second"] {
        calls.push((
            format!("void INV-2041 ({round})"),
            WRITER,
            json!({"name": "void_invoice", "arguments": {"invoiceId": "INV-2041"}}),
        ));
    }
    calls
}

fn corpus() -> Vec<Case> {
    let mut cases = vec![];
    let mut push = |what: String, token, (headers, body): (Vec<_>, Value), direct: bool| {
        // A string stands for raw bytes (malformed bodies); anything else is sent as JSON.
        let body = match body {
            Value::String(raw) => raw,
            json => json.to_string(),
        };
        cases.push(Case {
            what,
            token,
            headers,
            body,
            direct,
        })
    };
    for revision in REVISIONS {
        let r = format!("{revision:?}");
        // Direct: a legacy revision in the header alone, and nothing else unusual.
        let legacy = matches!(revision, Revision::Legacy(_));
        let list = |id, params| request(revision, id, "tools/list", params);
        push(
            format!("{r}: tools/list"),
            READER,
            list(json!(1), json!({})),
            legacy,
        );
        push(
            format!("{r}: tools/list, string id"),
            READER,
            list(json!("a"), json!({})),
            legacy,
        );
        push(
            format!("{r}: tools/list, bogus cursor"),
            READER,
            list(json!(2), json!({"cursor": "nope"})),
            legacy,
        );
        push(
            format!("{r}: tools/list, progress token"),
            READER,
            list(json!(3), json!({"_meta": {"progressToken": 7}})),
            false,
        );
        for (what, token, params) in tool_calls() {
            // The edge refuses the reader's void (403) before anything reaches the server.
            let direct = legacy && what != "void without write scope";
            let call = request(revision, json!(4), "tools/call", params);
            push(format!("{r}: {what}"), token, call, direct);
        }
        push(
            format!("{r}: ping"),
            READER,
            request(revision, json!(5), "ping", json!({})),
            false,
        );
        push(
            format!("{r}: unknown method"),
            READER,
            request(revision, json!(6), "invoices/teleport", json!({})),
            false,
        );
        let (headers, _) = request(revision, json!(0), "tools/list", json!({}));
        for (what, body) in [
            (
                "notification",
                json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            ),
            (
                "batch",
                json!([{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}]),
            ),
            ("response", json!({"jsonrpc": "2.0", "id": 1, "result": {}})),
            (
                "no jsonrpc member",
                json!({"id": 1, "method": "tools/list"}),
            ),
            (
                "null id",
                json!({"jsonrpc": "2.0", "id": null, "method": "tools/list"}),
            ),
            // Raw bytes from here on.
            (
                "malformed JSON",
                json!("{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": "),
            ),
            (
                "duplicate method key",
                json!(
                    r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"void_invoice"}}"#
                ),
            ),
            ("empty body", json!("")),
        ] {
            push(
                format!("{r}: {what}"),
                READER,
                (headers.clone(), body),
                false,
            );
        }
    }
    // Header shapes around a direct-eligible request (2025-11-25 tools/list and lookup).
    let revision = Revision::Legacy("2025-11-25");
    for (what, params, method) in [
        ("list", json!({}), "tools/list"),
        (
            "lookup",
            json!({"name": "lookup_invoice", "arguments": {"invoiceId": "INV-2040"}}),
            "tools/call",
        ),
    ] {
        let (headers, body) = request(revision, json!(9), method, params);
        // (variant, direct, change)
        let variants: Vec<(&str, bool, Change)> = vec![
            (
                "accept JSON only",
                false,
                Box::new(|h| set(h, "accept", "application/json")),
            ),
            (
                "accept SSE only",
                false,
                Box::new(|h| set(h, "accept", "text/event-stream")),
            ),
            (
                "accept with weights",
                false,
                Box::new(|h| set(h, "accept", "application/json;q=0.9, text/event-stream;q=0")),
            ),
            (
                "accept with parameters",
                false,
                Box::new(|h| {
                    set(
                        h,
                        "accept",
                        "application/json; charset=utf-8, text/event-stream",
                    )
                }),
            ),
            (
                "accept on two lines",
                true,
                Box::new(|h| {
                    set(h, "accept", "application/json");
                    h.push(("accept", "text/event-stream".into()));
                }),
            ),
            (
                "accept missing",
                false,
                Box::new(|h| h.retain(|(n, _)| *n != "accept")),
            ),
            (
                "content type with charset",
                true,
                Box::new(|h| set(h, "content-type", "application/json; charset=utf-8")),
            ),
            (
                "content type upper case",
                true,
                Box::new(|h| set(h, "content-type", "APPLICATION/JSON")),
            ),
            (
                "content type text",
                false,
                Box::new(|h| set(h, "content-type", "text/plain")),
            ),
            (
                "content type missing",
                false,
                Box::new(|h| h.retain(|(n, _)| *n != "content-type")),
            ),
            (
                "session id",
                false,
                Box::new(|h| h.push(("mcp-session-id", "abc".into()))),
            ),
            (
                "mcp-method header",
                false,
                Box::new(|h| h.push(("mcp-method", "tools/list".into()))),
            ),
            (
                "two version headers",
                false,
                Box::new(|h| h.push(("mcp-protocol-version", "2025-06-18".into()))),
            ),
        ];
        for (variant, direct, apply) in variants {
            let mut h = headers.clone();
            apply(&mut h);
            push(
                format!("{what}: {variant}"),
                WRITER,
                (h, body.clone()),
                direct,
            );
        }
    }
    cases
}

fn set(headers: &mut Headers, name: &'static str, value: &str) {
    headers.retain(|(n, _)| *n != name);
    headers.push((name, value.into()));
}

async fn send(stack: &Stack, case: &Case) -> Reply {
    let (client, scopes) = case.token;
    let mut req = stack.http.post(&stack.url).header(
        "authorization",
        format!("Bearer {}", stack.token(client, scopes)),
    );
    for (name, value) in &case.headers {
        req = req.header(*name, value);
    }
    Reply::from(req.body(case.body.clone()).send().await.expect("send")).await
}

/// What must agree between the two answers: the status, the headers a client acts on, and the
/// body (as JSON when it is JSON), with each stack's own address replaced by a placeholder.
fn comparable(stack: &Stack, reply: &Reply) -> (u16, Vec<(String, String)>, Value) {
    let base = stack.url.trim_end_matches("/mcp");
    let local = |s: &str| {
        s.replace(base, "BASE")
            .replace(stack.issuer.issuer(), "ISSUER")
    };
    let headers = [
        "content-type",
        "www-authenticate",
        "retry-after",
        "allow",
        "cache-control",
        "mcp-session-id",
    ]
    .into_iter()
    .filter_map(|name| {
        reply
            .headers
            .get(name)
            .map(|v| (name.to_owned(), local(v.to_str().unwrap_or("<binary>"))))
    })
    .collect();
    let text = without_timestamps(&local(&reply.body));
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (reply.status, headers, body)
}

/// `text` with every timestamp of the billing server's form (`2026-01-08T09:00:00.000000Z`)
/// replaced by `TIME`: the two stacks void the same invoice a few milliseconds apart.
fn without_timestamps(text: &str) -> String {
    const SHAPE: &[u8] = b"dddd-dd-ddTdd:dd:dd.ddddddZ";
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let matches = bytes.len() - i >= SHAPE.len()
            && SHAPE.iter().zip(&bytes[i..]).all(|(shape, b)| match shape {
                b'd' => b.is_ascii_digit(),
                other => other == b,
            });
        if matches {
            out.push_str("TIME");
            i += SHAPE.len();
        } else {
            let c = text[i..].chars().next().expect("in bounds");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_direct_path_answers_as_rmcp_does() {
    let direct = Stack::start(|c| c.server.direct_dispatch = true).await;
    let rmcp = Stack::start(|c| c.server.direct_dispatch = false).await;
    let cases = corpus();
    assert!(cases.len() > 150, "the corpus shrank: {}", cases.len());
    let mut differences = vec![];
    for case in &cases {
        let before = direct.gatehouse.direct_answers();
        let a = comparable(&direct, &send(&direct, case).await);
        let b = comparable(&rmcp, &send(&rmcp, case).await);
        // The comparison proves something only where the direct stack answered itself.
        let answered = direct.gatehouse.direct_answers() - before == 1;
        if answered != case.direct {
            differences.push(format!("{}: answered directly: {answered}", case.what));
        } else if a != b {
            differences.push(format!("{}:\n  direct: {a:?}\n  rmcp:   {b:?}", case.what));
            if differences.len() == 5 {
                break;
            }
        }
    }
    assert!(
        differences.is_empty(),
        "cases differ (the first {} of {} shown):\n{}",
        differences.len(),
        cases.len(),
        differences.join("\n")
    );
    let answered = cases.iter().filter(|c| c.direct).count();
    assert!(answered >= 60, "only {answered} cases are direct");
    assert_eq!(rmcp.gatehouse.direct_answers(), 0);
    direct.stop().await;
    rmcp.stop().await;
}
