//! Invariant: when the forwarding path's strict parse accepts a body
//! (`gatehouse::mcp::forward::parse_call`), every other reading of those bytes agrees with it —
//! the edge's tool check (`policy::tool_name::from_body`), rmcp's typed parse (what an rmcp
//! upstream runs) and a plain last-member-wins JSON reading (what `JSON.parse` and Python's
//! `json` do) — on the method, the tool and the id. The upstream therefore runs the tool the
//! policy allowed. Bodies are generated from fragments that attack the parse: duplicate and
//! case-variant members, escaped names, `_meta`, odd ids, nesting, whitespace.

use gatehouse::mcp::forward::parse_call;
use gatehouse::policy::tool_name::{ToolTarget, from_body};
use proptest::prelude::*;
use rmcp::model::{ClientJsonRpcMessage, ClientRequest, NumberOrString};
use serde_json::Value;

fn member_name() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "\"jsonrpc\"",
        "\"id\"",
        "\"method\"",
        "\"params\"",
        "\"Method\"",
        "\"meth\\u006fd\"",
        "\"_meta\"",
        "\"extra\"",
    ])
}

fn param_name() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "\"name\"",
        "\"n\\u0061me\"",
        "\"Name\"",
        "\"arguments\"",
        "\"_meta\"",
        "\"task\"",
    ])
}

fn scalar() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "\"2.0\"",
        "\"tools/call\"",
        "\"tools/list\"",
        "\"echo\"",
        "\"ec\\u0068o\"",
        "\"admin\"",
        "\"admin\\u0000\"",
        "1",
        "-7",
        "1.5",
        "1e3",
        "null",
        "true",
        "\"a\"",
        "{}",
        "[]",
        "{\"progressToken\":1}",
        "{\"x\":1,\"x\":2}",
        "{\"text\":\"hi\"}",
        // Sequences where objects belong: serde's derive reads them as structs.
        "[\"echo\"]",
        "[\"echo\",{}]",
    ])
}

fn params() -> impl Strategy<Value = String> {
    prop::collection::vec((param_name(), scalar()), 0..4).prop_map(|members| {
        let inner: Vec<String> = members.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        format!("{{{}}}", inner.join(","))
    })
}

/// A body: mostly a well-formed call, with members added, repeated, renamed or replaced.
fn body() -> impl Strategy<Value = String> {
    let base = prop::sample::select(vec![
        r#""jsonrpc":"2.0""#,
        r#""id":1"#,
        r#""id":"x""#,
        r#""method":"tools/call""#,
    ]);
    (
        prop::collection::vec(base, 0..5),
        prop::collection::vec(
            prop_oneof![
                (member_name(), scalar()).prop_map(|(k, v)| format!("{k}:{v}")),
                params().prop_map(|p| format!("\"params\":{p}")),
            ],
            0..4,
        ),
        any::<bool>(),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(base, extra, spaced, at)| {
            let mut members: Vec<String> = base.into_iter().map(str::to_owned).collect();
            let i = at.index(members.len() + 1);
            for (n, e) in extra.into_iter().enumerate() {
                members.insert((i + n).min(members.len()), e);
            }
            let sep = if spaced { " , " } else { "," };
            format!("{{{}}}", members.join(sep))
        })
}

/// A well-formed call with a generated id, name and arguments (every object's members
/// distinct): each one is accepted.
fn plain_call() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec![
            "1",
            "\"id-1\"",
            "-3",
            "\"\\u00e9\"",
            "9007199254740993",
        ]),
        prop::sample::select(vec![
            "\"echo\"",
            "\"ec\\u0068o\"",
            "\"a/b\"",
            "\"\\u00fcber\"",
        ]),
        prop::sample::select(vec![
            "{}",
            r#"{"text":"hi"}"#,
            r#"{"a":1,"b":[1,{"c":null,"d":{"e":[]}}]}"#,
            r#"{"name":"admin","_meta":{},"method":"tools/list"}"#,
            r#"{"n\u0061me":"x","text":"\ud83d\ude00"}"#,
        ]),
        any::<bool>(),
    )
        .prop_map(|(id, name, args, with_args)| {
            let params = if with_args {
                format!(r#"{{"name":{name},"arguments":{args}}}"#)
            } else {
                format!(r#"{{"name":{name}}}"#)
            };
            format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{params}}}"#)
        })
}

fn check(body: &str) -> Result<(), TestCaseError> {
    let Some(parsed) = parse_call(body.as_bytes()) else {
        return Ok(());
    };
    // The edge's reading.
    prop_assert_eq!(
        from_body(body.as_bytes()),
        ToolTarget::Tool(parsed.tool.clone().into()),
        "edge: {}",
        body
    );
    // rmcp's reading: a tools/call of the same tool with the same id.
    let message: ClientJsonRpcMessage = serde_json::from_str(body)
        .map_err(|e| TestCaseError::fail(format!("rmcp: {e}: {body}")))?;
    let ClientJsonRpcMessage::Request(request) = message else {
        return Err(TestCaseError::fail(format!("rmcp: not a request: {body}")));
    };
    let ClientRequest::CallToolRequest(call) = &request.request else {
        return Err(TestCaseError::fail(format!("rmcp: not tools/call: {body}")));
    };
    prop_assert_eq!(call.params.name.as_ref(), parsed.tool.as_str());
    let id: Value = serde_json::from_str(&body[parsed.id.clone()]).unwrap();
    match (&request.id, &id) {
        (NumberOrString::Number(n), Value::Number(v)) => prop_assert_eq!(Some(*n), v.as_i64()),
        (NumberOrString::String(s), Value::String(v)) => prop_assert_eq!(s.as_ref(), v.as_str()),
        (theirs, ours) => prop_assert!(false, "id {:?} vs {:?}", theirs, ours),
    }
    // A last-member-wins reading (JSON.parse, Python's json).
    let v: Value = serde_json::from_str(body).unwrap();
    prop_assert_eq!(&v["method"], "tools/call");
    prop_assert_eq!(v["params"]["name"].as_str(), Some(parsed.tool.as_str()));
    prop_assert_eq!(&v["id"], &id);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn an_accepted_body_reads_the_same_to_everyone(body in body()) {
        check(&body)?;
    }

    #[test]
    fn plain_calls_are_accepted_and_read_the_same(body in plain_call()) {
        prop_assert!(parse_call(body.as_bytes()).is_some(), "{}", body);
        check(&body)?;
    }
}
