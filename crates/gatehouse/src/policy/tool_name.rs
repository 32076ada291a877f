//! Finding the tool a `tools/call` request targets, without building the request.
//!
//! Two sources, in order:
//!
//! 1. **Headers** (MCP SHTTP26 §Standard Request Headers, SEP-2243): `Mcp-Method` and `Mcp-Name`.
//!    They are trusted **only** when `MCP-Protocol-Version >= "2026-07-28"`, because only then
//!    does rmcp 3.11 reject a request whose headers disagree with its body (400 / -32020) before
//!    any handler runs; for older revisions it never compares them, so a client could name a
//!    cheap tool in the header and call an expensive one in the body. The version comparison is
//!    rmcp's own (a string `>=`), so the two can never disagree about which requests are checked.
//!    `Mcp-Name` values wrapped as `=?base64?…?=` are decoded (SHTTP26 §Value Encoding).
//! 2. **Body**: a minimal JSON parse that reads only `method` and `params.name` with borrowed
//!    strings (escapes decoded) and skips everything else — no `Value` of the arguments is built.
//!
//! Fail-closed rules, because the policy must never see a different tool from the one rmcp will
//! call (a parser differential would be an authorization bypass):
//! - A body that is not a JSON object (array, garbage, not UTF-8) is [`ToolTarget::NotAnObject`]:
//!   rmcp refuses it with its own protocol error, so only route scopes apply.
//! - A JSON object we cannot read unambiguously — duplicate `method`/`params`/`name` keys, a
//!   non-string `method` or `name`, `params` that is not an object, trailing garbage — is
//!   [`ToolTarget::Ambiguous`] when it may be a `tools/call`. The caller must then demand the
//!   scopes of *every* tool.

use std::borrow::Cow;
use std::fmt;

use serde::Deserializer;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};

/// The first protocol revision whose `Mcp-Method`/`Mcp-Name` headers rmcp validates.
pub const STANDARD_HEADERS_VERSION: &str = "2026-07-28";

/// The JSON-RPC method whose target matters to per-tool policy.
pub const TOOLS_CALL: &str = "tools/call";

const BASE64_PREFIX: &str = "=?base64?";
const BASE64_SUFFIX: &str = "?=";

/// What a request targets, as far as per-tool policy is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolTarget<'a> {
    /// Not a `tools/call` (another method, or a response).
    NotToolCall,
    /// A `tools/call` of this tool.
    Tool(Cow<'a, str>),
    /// Not a JSON object at all: rmcp will refuse it; route scopes suffice.
    NotAnObject,
    /// A JSON object that may be a `tools/call` but cannot be read unambiguously: demand the
    /// scopes of every tool.
    Ambiguous,
}

/// True when headers of a request declaring `protocol_version` are validated by rmcp against
/// the body, and may therefore be trusted.
pub fn headers_are_authoritative(protocol_version: &str) -> bool {
    protocol_version >= STANDARD_HEADERS_VERSION
}

/// Decides from the SEP-2243 headers, for a request whose version makes them authoritative
/// (see [`headers_are_authoritative`]). `method` and `name` are the single header values (the
/// caller passes `None` for absent, repeated or non-text headers). `None` means "cannot decide
/// from headers; parse the body".
pub fn from_headers<'a>(method: Option<&'a str>, name: Option<&'a str>) -> Option<ToolTarget<'a>> {
    match method? {
        TOOLS_CALL => decode_header_value(name?).map(ToolTarget::Tool),
        // rmcp rejects a body whose method differs from this header.
        _ => Some(ToolTarget::NotToolCall),
    }
}

/// Decodes an SEP-2243 header value: `=?base64?<standard base64 of UTF-8>?=` or the plain value.
pub fn decode_header_value(raw: &str) -> Option<Cow<'_, str>> {
    use base64::Engine;
    use base64::prelude::BASE64_STANDARD;
    match raw
        .strip_prefix(BASE64_PREFIX)
        .and_then(|r| r.strip_suffix(BASE64_SUFFIX))
    {
        Some(inner) => {
            let bytes = BASE64_STANDARD.decode(inner).ok()?;
            String::from_utf8(bytes).ok().map(Cow::Owned)
        }
        None => Some(Cow::Borrowed(raw)),
    }
}

/// Reads the target from a JSON-RPC request body.
pub fn from_body(body: &[u8]) -> ToolTarget<'_> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return ToolTarget::NotAnObject;
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = de
        .deserialize_map(MessageVisitor)
        .and_then(|m| de.end().map(|()| m));
    match parsed {
        Ok(Message {
            method: Some(m),
            name,
            params_ok,
        }) if m == TOOLS_CALL => match name {
            Some(n) if params_ok => ToolTarget::Tool(n),
            _ => ToolTarget::Ambiguous,
        },
        Ok(Message {
            method: Some(_), ..
        }) => ToolTarget::NotToolCall,
        // No method: a JSON-RPC response or error, not a call.
        Ok(Message { method: None, .. }) => ToolTarget::NotToolCall,
        Err(_) => ToolTarget::Ambiguous,
    }
}

struct Message<'a> {
    method: Option<Cow<'a, str>>,
    name: Option<Cow<'a, str>>,
    /// False when `params` was present but unusable (not an object, duplicate or odd `name`).
    params_ok: bool,
}

/// A string that borrows from the input when it has no escapes.
struct BorrowedStr<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for BorrowedStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = BorrowedStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(BorrowedStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(BorrowedStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(BorrowedStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

struct MessageVisitor;

impl<'de> Visitor<'de> for MessageVisitor {
    type Value = Message<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON-RPC message object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut method: Option<Cow<'de, str>> = None;
        let mut params: Option<Params<'de>> = None;
        while let Some(BorrowedStr(key)) = map.next_key::<BorrowedStr<'de>>()? {
            match &*key {
                "method" => {
                    if method.is_some() {
                        return Err(de::Error::duplicate_field("method"));
                    }
                    method = Some(map.next_value::<BorrowedStr<'de>>()?.0);
                }
                "params" => {
                    if params.is_some() {
                        return Err(de::Error::duplicate_field("params"));
                    }
                    params = Some(map.next_value_seed(ParamsSeed)?);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let (name, params_ok) = match params {
            Some(Params::Object { name }) => (name, true),
            Some(Params::NotObject) => (None, false),
            None => (None, true),
        };
        Ok(Message {
            method,
            name,
            params_ok,
        })
    }
}

enum Params<'a> {
    Object { name: Option<Cow<'a, str>> },
    NotObject,
}

struct ParamsSeed;

impl<'de> DeserializeSeed<'de> for ParamsSeed {
    type Value = Params<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(ParamsVisitor)
    }
}

struct ParamsVisitor;

impl<'de> Visitor<'de> for ParamsVisitor {
    type Value = Params<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("params")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut name: Option<Cow<'de, str>> = None;
        while let Some(BorrowedStr(key)) = map.next_key::<BorrowedStr<'de>>()? {
            if key == "name" {
                if name.is_some() {
                    return Err(de::Error::duplicate_field("name"));
                }
                // A non-string name fails here, making the whole message ambiguous.
                name = Some(map.next_value::<BorrowedStr<'de>>()?.0);
            } else {
                // `arguments` and `_meta` are skipped without building values.
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Params::Object { name })
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Params::NotObject)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Params::NotObject)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Params::NotObject)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Params::NotObject)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Params::NotObject)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Params::NotObject)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Params::NotObject)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(name: &str) -> ToolTarget<'static> {
        ToolTarget::Tool(Cow::Owned(name.to_owned()))
    }

    // A17/A18 per-tool policy input; B17 header decoding; B5 arrays.
    #[test]
    fn body_table() {
        use ToolTarget::*;
        let cases: &[(&[u8], ToolTarget<'static>)] = &[
            (br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"void_invoice","arguments":{"id":7}}}"#, tool("void_invoice")),
            // Key order does not matter; params before method.
            (br#"{"params":{"arguments":{},"name":"a"},"method":"tools/call","id":1}"#, tool("a")),
            // Escapes in names and methods are decoded, as rmcp decodes them.
            (br#"{"method":"tools\/call","params":{"name":"void\u005finvoice"}}"#, tool("void_invoice")),
            (br#"{"m\u0065thod":"tools/call","params":{"n\u0061me":"x"}}"#, tool("x")),
            (br#"{"method":"tools/call","params":{"name":"caf\u00e9 \"q\""}}"#, tool("café \"q\"")),
            (br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#, NotToolCall),
            (br#"{"jsonrpc":"2.0","id":1,"result":{}}"#, NotToolCall),
            (br#"{"method":"tools/call","params":{"name":"x"},"extra":[1,{"a":null}]}"#, tool("x")),
            // Not objects: rmcp refuses them itself.
            (br#"[{"method":"tools/call","params":{"name":"x"}}]"#, NotAnObject),
            (b"garbage", NotAnObject),
            (b"", NotAnObject),
            (b"  \n", NotAnObject),
            (b"\xff\xfe{", NotAnObject),
            // Objects we cannot read unambiguously: fail closed.
            (br#"{"method":"tools/call","method":"tools/list"}"#, Ambiguous),
            (br#"{"method":"tools/call","params":{"name":"cheap","name":"costly"}}"#, Ambiguous),
            (br#"{"method":"tools/call","params":{"name":"a"},"params":{"name":"b"}}"#, Ambiguous),
            (br#"{"method":"tools/call","params":{"name":7}}"#, Ambiguous),
            (br#"{"method":"tools/call","params":["x"]}"#, Ambiguous),
            (br#"{"method":"tools/call"}"#, Ambiguous),
            (br#"{"method":"tools/call","params":{}}"#, Ambiguous),
            (br#"{"method":7}"#, Ambiguous),
            (br#"{"method":"tools/call","params":{"name":"x"}} trailing"#, Ambiguous),
            (br#"{"method":"tools/call","params":{"name":"x"}"#, Ambiguous),
            (b"{\"method\":\"tools/call\",\"params\":{\"name\":\"\xff\"}}", Ambiguous),
        ];
        for (body, want) in cases {
            assert_eq!(&from_body(body), want, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn names_without_escapes_are_borrowed() {
        let body = br#"{"method":"tools/call","params":{"name":"plain"}}"#;
        assert!(matches!(
            from_body(body),
            ToolTarget::Tool(Cow::Borrowed("plain"))
        ));
    }

    #[test]
    fn huge_arguments_are_skipped() {
        let big = "x".repeat(2 * 1024 * 1024);
        let body = format!(
            r#"{{"method":"tools/call","params":{{"arguments":{{"blob":"{big}","list":[{}]}},"name":"t"}}}}"#,
            vec!["1"; 10_000].join(",")
        );
        assert_eq!(from_body(body.as_bytes()), tool("t"));
        // Skipping is iterative in serde_json, so deep nesting in the arguments neither overflows
        // the stack nor hides the name (rmcp then refuses the body at its recursion limit).
        let deep = format!(
            r#"{{"method":"tools/call","params":{{"name":"t","arguments":{}{}}}}}"#,
            "[".repeat(1000),
            "]".repeat(1000)
        );
        assert_eq!(from_body(deep.as_bytes()), tool("t"));
    }

    #[test]
    fn header_rules() {
        assert!(headers_are_authoritative("2026-07-28"));
        assert!(headers_are_authoritative("2027-01-01"));
        assert!(!headers_are_authoritative("2025-11-25"));
        assert!(!headers_are_authoritative("2025-06-18"));
        assert_eq!(from_headers(Some("tools/call"), Some("t")), Some(tool("t")));
        assert_eq!(
            from_headers(Some("tools/list"), None),
            Some(ToolTarget::NotToolCall)
        );
        assert_eq!(from_headers(None, Some("t")), None);
        assert_eq!(from_headers(Some("tools/call"), None), None);
        // SEP-2243 base64 sentinel: decoded; invalid base64 or UTF-8 → decide from the body.
        assert_eq!(
            from_headers(Some("tools/call"), Some("=?base64?Y2Fmw6k=?=")),
            Some(tool("café"))
        );
        assert_eq!(
            from_headers(Some("tools/call"), Some("=?base64?!!?=")),
            None
        );
        assert_eq!(
            from_headers(Some("tools/call"), Some("=?base64?/w==?=")),
            None
        );
        // Values are case-sensitive (B17): `Tools/Call` is not tools/call, and rmcp refuses a
        // body whose method differs from the header.
        assert_eq!(
            from_headers(Some("Tools/Call"), Some("t")),
            Some(ToolTarget::NotToolCall)
        );
    }
}
