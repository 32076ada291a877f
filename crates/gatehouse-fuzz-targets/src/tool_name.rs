//! Target `tool_name`: which tool a `tools/call` targets, from a JSON-RPC body
//! ([`tool_name::from_body`]) and from the SEP-2243 `Mcp-*` headers (the edge's
//! [`header_target`]).
//!
//! Input: the whole input is the body; its first three lines are also the values of
//! `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` (a value `http` refuses is left out).
//!
//! Invariants:
//! - **no parser differential with rmcp**: when rmcp reads the body as a `tools/call` of tool
//!   `N`, the policy sees `N` or demands every tool's scopes (`Ambiguous`) — never another tool,
//!   "not a call" or "not an object";
//! - the policy's `Tool(N)` is what a strict JSON parse of the body says (`method` is
//!   `tools/call`, `params.name` is `N`);
//! - headers decide only at revisions ≥ 2026-07-28, `Tool(N)` only for `Mcp-Method:
//!   tools/call` with `N` the decoded `Mcp-Name`, and a body built from that name reads back as
//!   the same tool, for the policy and for rmcp.

use gatehouse::http::layer::header_target;
use gatehouse::policy::tool_name::{self, ToolTarget};
use http::{HeaderMap, HeaderName, HeaderValue};
use rmcp::model::{ClientJsonRpcMessage, ClientRequest, JsonRpcMessage};
use serde_json::{Value, json};

/// Fuzz target `tool_name` (see the module docs).
pub fn tool_name(data: &[u8]) {
    check_body(data);
    check_headers(data);
    check_forward(data);
}

fn check_forward(body: &[u8]) {
    use gatehouse::mcp::forward::{AnswerKind, parse_answer, parse_call, splice};
    let Some(call) = parse_call(body) else {
        return;
    };
    assert_eq!(
        tool_name::from_body(body),
        ToolTarget::Tool(call.tool.clone().into()),
        "the policy reads another tool"
    );
    let message = serde_json::from_slice::<ClientJsonRpcMessage>(body).expect("rmcp refuses it");
    let JsonRpcMessage::Request(request) = message else {
        panic!("rmcp reads no request");
    };
    let ClientRequest::CallToolRequest(rmcp_call) = request.request else {
        panic!("rmcp reads another method");
    };
    assert_eq!(rmcp_call.params.name, call.tool);
    let v: Value = serde_json::from_slice(body).expect("JSON");
    let id: Value = serde_json::from_slice(&body[call.id.clone()]).expect("the id is JSON");
    assert_eq!(v["id"], id);
    assert_eq!(
        serde_json::to_value(&request.id).expect("id"),
        id,
        "rmcp reads another id"
    );
    assert_eq!(v["params"]["name"].as_str(), Some(call.tool.as_str()));
    let ours = br#""gatehouse-7""#;
    let spliced = splice(body, call.id.clone(), ours);
    let again = parse_call(&spliced).expect("the spliced body parses");
    assert_eq!(again.tool, call.tool);
    assert_eq!(&spliced[again.id.clone()], ours);
    let answer = format!(
        r#"{{"jsonrpc":"2.0","id":{},"result":{{"content":[],"isError":true}}}}"#,
        std::str::from_utf8(ours).expect("text")
    );
    let a = parse_answer(answer.as_bytes()).expect("an answer");
    assert_eq!(a.kind, AnswerKind::Result { is_error: true });
    let back = splice(answer.as_bytes(), a.id, &body[call.id.clone()]);
    let back: Value = serde_json::from_slice(&back).expect("JSON");
    assert_eq!(back["id"], id);
}

/// The tool rmcp would call for this body: `Some(Some(name))` for a `tools/call`,
/// `Some(None)` for any other message, `None` when rmcp refuses the body.
fn rmcp_tool(body: &[u8]) -> Option<Option<String>> {
    let message = serde_json::from_slice::<ClientJsonRpcMessage>(body).ok()?;
    Some(match message {
        JsonRpcMessage::Request(r) => match r.request {
            ClientRequest::CallToolRequest(call) => Some(call.params.name.into_owned()),
            _ => None,
        },
        _ => None,
    })
}

fn check_body(body: &[u8]) {
    let target = tool_name::from_body(body);
    if let Some(Some(rmcp_name)) = rmcp_tool(body) {
        match &target {
            ToolTarget::Tool(n) => assert_eq!(*n, rmcp_name, "policy and rmcp see different tools"),
            ToolTarget::Ambiguous => {}
            other => panic!("rmcp calls tool {rmcp_name:?}, the policy sees {other:?}"),
        }
    }
    let strict: Option<Value> = serde_json::from_slice(body).ok();
    match &target {
        // A body serde_json cannot read as a value (the policy's skipping parse is more
        // lenient inside ignored members) is refused by rmcp too: nothing to compare.
        ToolTarget::Tool(n) => {
            if let Some(v) = strict {
                assert_eq!(v["method"], tool_name::TOOLS_CALL);
                assert_eq!(v["params"]["name"].as_str(), Some(&**n));
            }
        }
        ToolTarget::NotToolCall => {
            if let Some(v) = strict {
                assert_ne!(
                    v["method"],
                    tool_name::TOOLS_CALL,
                    "a tools/call read as another method"
                );
            }
        }
        ToolTarget::NotAnObject => {
            assert!(
                !strict.is_some_and(|v| v.is_object()),
                "an object read as not an object"
            );
        }
        ToolTarget::Ambiguous => {}
    }
}

fn check_headers(data: &[u8]) {
    let names = [
        HeaderName::from_static("mcp-protocol-version"),
        HeaderName::from_static("mcp-method"),
        HeaderName::from_static("mcp-name"),
    ];
    let mut headers = HeaderMap::new();
    let mut values: [Option<&str>; 3] = [None; 3];
    for ((name, line), slot) in names
        .iter()
        .zip(data.split(|&b| b == b'\n'))
        .zip(&mut values)
    {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            *slot = std::str::from_utf8(line)
                .ok()
                .filter(|_| v.to_str().is_ok());
            headers.insert(name.clone(), v);
        }
    }
    let Some(target) = header_target(&headers) else {
        return;
    };
    let [version, method, name] = values;
    let version = version.expect("headers decided without a text version");
    assert!(
        tool_name::headers_are_authoritative(version) && version >= "2026-07-28",
        "headers trusted at revision {version:?}"
    );
    let method = method.expect("headers decided without a text Mcp-Method");
    match target {
        ToolTarget::Tool(n) => {
            assert_eq!(method, tool_name::TOOLS_CALL);
            let name = name.expect("a tool without a text Mcp-Name");
            assert_eq!(tool_name::decode_header_value(name).as_deref(), Some(&*n));
            // The same call as a body: the policy and rmcp read the header's tool back.
            let body = serde_json::to_vec(&json!({
                "jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": &*n, "arguments": {}},
            }))
            .expect("serialisable");
            assert_eq!(tool_name::from_body(&body), ToolTarget::Tool(n.clone()));
            assert_eq!(rmcp_tool(&body), Some(Some(n.into_owned())));
        }
        ToolTarget::NotToolCall => assert_ne!(method, tool_name::TOOLS_CALL),
        other => panic!("headers decided {other:?}"),
    }
}
