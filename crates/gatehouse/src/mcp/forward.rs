//! The forwarding fast path (issue 13): a `tools/call` an application sends on as bytes
//! instead of handling it — a gateway in front of another MCP server — without rmcp's server on
//! one side and rmcp's client on the other.
//!
//! [`crate::Gatehouse::mount_forwarding`] puts [`Forwarding`] behind the edge, in front of
//! rmcp's stateless service. For a request the edge admitted (token, guard, limits, route and
//! tool scopes: all unchanged), it takes the same plain shape as direct dispatch
//! ([`super::direct`]: `POST`, a `Content-Length`, one revision before 2026-07-28, no other
//! `Mcp-*` header) and then **one strict parse** of the body ([`parse_call`]):
//!
//! - a single JSON-RPC request object, `"jsonrpc": "2.0"`, an integer or string `id`, the
//!   method `tools/call`, `params` with a string `name` and, optionally, an object
//!   `arguments`; **nothing else** — no `_meta` (a progress token would invite notifications;
//!   a per-request revision is rmcp's to check), no other member at either level;
//! - no duplicate member name anywhere in the document, `arguments` included, and no member
//!   spelled differently from the above (names are compared after JSON unescaping, exactly);
//! - the tool allowed to this caller by the policy (a hidden tool is rmcp's to answer as a
//!   missing one, a refused one the edge already answered).
//!
//! Whatever fails a rule goes to rmcp, which parses it into its types and re-serialises what it
//! forwards: the upstream never sees bytes that could read differently to it and to the policy
//! (the issue's "the bytes that were authorized are the bytes that are forwarded"). A batch,
//! a `Content-Encoding`d body (not JSON), an oversize body (the edge's `413`), a case variant
//! of a member (`"Method"`) and a duplicate key all fail the parse.
//!
//! What passes is handed to the application's [`Forward`] as a [`ForwardCall`]: the caller, the
//! request's parts, the exact bytes, the byte range of the client's `id` (so the application can
//! give the upstream an id of its own and put the client's back: [`ForwardCall::body_with_id`],
//! [`parse_answer`], [`splice`]), and the call's audit record ([`CallRecord`], one observation,
//! as [`crate::mcp::Protected`] makes on rmcp's path — an unfinished record is written as
//! `interrupted` when dropped, so a call is never missing from the trail). The application may
//! decline, before it has sent anything; the request then takes rmcp's path unchanged.

use std::borrow::Cow;
use std::convert::Infallible;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use http::{Request, Response};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use tower_service::Service;

use crate::Caller;
use crate::http::layer::Shared;
use crate::mcp::DependencyFailure;
use crate::mcp::DependencySlot;
use crate::observe::{Observer, Outcome, Stage, ToolCall};

/// An application that forwards `tools/call` requests as bytes (see the module docs).
pub trait Forward: Send + Sync + 'static {
    /// Sends `call` on and answers it, or gives it back ([`Forwarded::Declined`]) before
    /// anything was sent, for rmcp's path to handle.
    fn forward(&self, call: ForwardCall) -> BoxFuture<'static, Forwarded>;
}

/// What [`Forward::forward`] did with a call.
pub enum Forwarded {
    /// Nothing was sent: rmcp's path answers it, as if there were no fast path.
    Declined(Box<ForwardCall>),
    /// The answer to the client. A dependency failure reported on the call
    /// ([`ForwardCall::report`]) replaces it at the edge (`503`/`502`), as on rmcp's path.
    Answered(Response<Body>),
}

impl fmt::Debug for Forwarded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Declined(_) => f.write_str("Declined"),
            Self::Answered(r) => f.debug_tuple("Answered").field(&r.status()).finish(),
        }
    }
}

/// A `tools/call` admitted by the edge and parsed strictly, for [`Forward::forward`].
pub struct ForwardCall {
    parts: http::request::Parts,
    body: Bytes,
    id: Range<usize>,
    tool: String,
    revision: &'static str,
    record: Option<CallRecord>,
}

impl fmt::Debug for ForwardCall {
    // The body is the user's data and the parts hold the caller: neither is printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForwardCall")
            .field("tool", &self.tool)
            .field("revision", &self.revision)
            .finish_non_exhaustive()
    }
}

impl ForwardCall {
    /// The verified caller.
    pub fn caller(&self) -> &Caller {
        self.parts
            .extensions
            .get::<Caller>()
            .expect("the edge admitted the call")
    }

    /// The HTTP request's parts (its extensions hold the [`Caller`] and, with upstream
    /// credentials configured, the `UpstreamAccess`). The client's `Authorization` is gone.
    pub fn parts(&self) -> &http::request::Parts {
        &self.parts
    }

    /// The tool called, allowed to this caller.
    pub fn tool(&self) -> &str {
        &self.tool
    }

    /// The protocol revision the client named (`MCP-Protocol-Version`).
    pub fn revision(&self) -> &'static str {
        self.revision
    }

    /// The client's JSON-RPC id, as the JSON text it sent (`7`, `"a"`).
    pub fn client_id(&self) -> &[u8] {
        &self.body[self.id.clone()]
    }

    /// The request exactly as the client sent it and the policy read it.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The request with its id replaced by the JSON text `id`, every other byte as sent.
    pub fn body_with_id(&self, id: &[u8]) -> Bytes {
        splice(&self.body, self.id.clone(), id)
    }

    /// Tells the edge that what the call depends on failed: it answers `503` + `Retry-After`
    /// or `502` instead of the application's answer.
    pub fn report(&self, failure: DependencyFailure) {
        if let Some(slot) = self.parts.extensions.get::<DependencySlot>() {
            slot.set(failure);
        }
    }

    /// The call's audit record, taken once the call is sent (after which the call must not be
    /// declined: it would be recorded twice).
    pub fn take_record(&mut self) -> CallRecord {
        self.record.take().expect("the record is taken once")
    }
}

/// One forwarded call's observation, written once: by [`CallRecord::finish`], or as
/// `error`/`interrupted` when dropped unfinished (the client went away, the upstream broke off).
pub struct CallRecord {
    observer: Arc<dyn Observer>,
    caller: Caller,
    tool: String,
    request_id: Option<String>,
    started: Instant,
    done: bool,
}

impl fmt::Debug for CallRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallRecord")
            .field("tool", &self.tool)
            .finish_non_exhaustive()
    }
}

impl CallRecord {
    /// Records how the call ended, with a short stable code (`ok`, `tool_error`, …).
    pub fn finish(mut self, outcome: Outcome, reason: &'static str) {
        self.write(outcome, reason, false);
    }

    /// Records the answer `answer` (the upstream's, parsed with [`parse_answer`]) as rmcp's
    /// path would: `ok`, `tool_error` for a result with `isError: true`, `unknown_tool` for a
    /// JSON-RPC error (the forwarding server knows no tools of its own). A tool that answered
    /// is one the upstream knows (`ToolCall::known_tool`: metrics keep its name), as on rmcp's
    /// path.
    pub fn finish_with(mut self, answer: &Answer) {
        match answer.kind {
            AnswerKind::Result { is_error: false } => self.write(Outcome::Allowed, "ok", true),
            AnswerKind::Result { is_error: true } => self.finish(Outcome::Error, "tool_error"),
            AnswerKind::Error => self.finish(Outcome::Error, "unknown_tool"),
        }
    }

    fn write(&mut self, outcome: Outcome, reason: &str, known_tool: bool) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        self.observer.tool_call(&ToolCall {
            caller: Some(&self.caller),
            tool: Some(&self.tool),
            known_tool,
            required: None,
            outcome,
            reason,
            latency: self.started.elapsed(),
            request_id: self.request_id.as_deref(),
            stage: Stage::Server,
        });
    }
}

impl Drop for CallRecord {
    fn drop(&mut self) {
        self.write(Outcome::Error, "interrupted", false);
    }
}

/// `bytes` with `range` replaced by `with`.
pub fn splice(bytes: &[u8], range: Range<usize>, with: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(bytes.len() - range.len() + with.len());
    out.extend_from_slice(&bytes[..range.start]);
    out.extend_from_slice(with);
    out.extend_from_slice(&bytes[range.end..]);
    out.freeze()
}

/// A strictly parsed `tools/call` ([`parse_call`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCall {
    /// Where the client's `id` is in the body.
    pub id: Range<usize>,
    /// The tool's name, unescaped.
    pub tool: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallEnvelope<'a> {
    #[serde(borrow)]
    jsonrpc: Cow<'a, str>,
    #[serde(borrow)]
    id: &'a RawValue,
    #[serde(borrow)]
    method: Cow<'a, str>,
    #[serde(borrow)]
    params: Object<CallParams<'a>>,
}

/// `T` read from a JSON object only. serde's derive also reads a struct from a sequence
/// (`"params":["echo"]`), which no other reader takes for a `tools/call` or its parameters.
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Fields<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer
            .deserialize_map(Fields(std::marker::PhantomData))
            .map(Object)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallParams<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    arguments: Option<&'a RawValue>,
}

/// Reads `body` as a `tools/call` under the rules of the module docs, or `None`.
pub fn parse_call(body: &[u8]) -> Option<ParsedCall> {
    // serde's derive refuses a duplicate of the envelope's and `params`' own members (and, with
    // `deny_unknown_fields`, any other member); inside `arguments` every member name must be
    // unique too, at every depth.
    // Objects only, at both levels ([`Object`]).
    let Object(call) = serde_json::from_slice::<Object<CallEnvelope<'_>>>(body).ok()?;
    if call.jsonrpc != "2.0" || call.method != crate::policy::tool_name::TOOLS_CALL {
        return None;
    }
    let Object(params) = call.params;
    if let Some(arguments) = params.arguments.map(RawValue::get)
        && !(arguments.starts_with('{') && unique_keys(arguments.as_bytes()))
    {
        return None;
    }
    let id = call.id.get();
    if !is_plain_id(id) {
        return None;
    }
    Some(ParsedCall {
        id: span_of(body, id),
        tool: params.name.into_owned(),
    })
}

/// A string, or an integer rmcp reads as one (`i64`): the ids every peer agrees on.
fn is_plain_id(id: &str) -> bool {
    id.starts_with('"') || id.parse::<i64>().is_ok()
}

/// Where `part` (a slice borrowed from `whole`) lies in `whole`.
fn span_of(whole: &[u8], part: &str) -> Range<usize> {
    let start = part.as_ptr() as usize - whole.as_ptr() as usize;
    start..start + part.len()
}

/// An upstream's answer to a forwarded call, parsed for its id and outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Where the `id` is in the answer.
    pub id: Range<usize>,
    /// The id's JSON text.
    pub id_text: String,
    /// Result or error.
    pub kind: AnswerKind,
}

/// What an [`Answer`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerKind {
    /// A result; `is_error` when the tool reported a failure (`isError: true`).
    Result {
        /// The result's `isError`.
        is_error: bool,
    },
    /// A JSON-RPC error.
    Error,
}

/// One JSON-RPC message from an upstream, as the forwarding path sorts it ([`parse_message`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamMessage {
    /// An answer to a request.
    Answer(Answer),
    /// A notification (progress, a log message): no id.
    Notification,
    /// A request from the server (sampling, elicitation, roots, ping).
    Request {
        /// The request's id, as JSON text.
        id: String,
        /// Its method.
        method: String,
    },
}

#[derive(Deserialize)]
struct MessageEnvelope<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    /// Read in the same pass: only `isError` is kept.
    #[serde(default)]
    result: Option<ResultFlags>,
    #[serde(default)]
    error: Option<de::IgnoredAny>,
}

#[derive(Deserialize)]
struct ResultFlags {
    #[serde(rename = "isError", default)]
    is_error: Option<bool>,
}

/// Sorts one message an upstream sent; `None` for anything that is not one JSON-RPC message.
pub fn parse_message(bytes: &[u8]) -> Option<UpstreamMessage> {
    let m: MessageEnvelope<'_> = serde_json::from_slice(bytes).ok()?;
    match (m.method, m.id, m.result, m.error) {
        (Some(_), None, None, None) => Some(UpstreamMessage::Notification),
        (Some(method), Some(id), None, None) => Some(UpstreamMessage::Request {
            id: id.get().to_owned(),
            method: method.into_owned(),
        }),
        (None, Some(id), Some(flags), None) => Some(UpstreamMessage::Answer(Answer {
            id: span_of(bytes, id.get()),
            id_text: id.get().to_owned(),
            kind: AnswerKind::Result {
                is_error: flags.is_error == Some(true),
            },
        })),
        (None, Some(id), None, Some(_)) => Some(UpstreamMessage::Answer(Answer {
            id: span_of(bytes, id.get()),
            id_text: id.get().to_owned(),
            kind: AnswerKind::Error,
        })),
        _ => None,
    }
}

/// An upstream's answer (not a notification or request), or `None`.
pub fn parse_answer(bytes: &[u8]) -> Option<Answer> {
    match parse_message(bytes)? {
        UpstreamMessage::Answer(a) => Some(a),
        _ => None,
    }
}

/// True when no JSON object in `bytes` has two members of the same (unescaped) name. False
/// for anything that is not one JSON document.
fn unique_keys(bytes: &[u8]) -> bool {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    UniqueValue.deserialize(&mut de).is_ok() && de.end().is_ok()
}

/// Walks one JSON value, failing on a duplicate member name.
struct UniqueValue;

impl<'de> DeserializeSeed<'de> for UniqueValue {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for UniqueValue {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(UniqueValue)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Objects in MCP requests have a handful of members: a list beats a set.
        let mut seen: Vec<Cow<'de, str>> = Vec::new();
        while let Some(key) = map.next_key_seed(Key)? {
            if seen.contains(&key) {
                return Err(de::Error::custom("duplicate member"));
            }
            seen.push(key);
            map.next_value_seed(UniqueValue)?;
        }
        Ok(())
    }
}

/// A member name, borrowed when it has no escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

/// The MCP endpoint with the forwarding fast path in front of rmcp's service `S`.
pub(crate) struct Forwarding<S> {
    /// Cloned only for a request that goes through rmcp: a clone of rmcp's service costs a
    /// cancellation-token node and several `Arc`s, for nothing on the forwarded path.
    rmcp: Arc<S>,
    forward: Arc<dyn Forward>,
    shared: Arc<Shared>,
}

impl<S> Clone for Forwarding<S> {
    fn clone(&self) -> Self {
        Self {
            rmcp: self.rmcp.clone(),
            forward: self.forward.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S, B> Forwarding<S>
where
    S: Service<Request<Body>, Response = Response<B>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    pub(crate) fn new(rmcp: S, forward: Arc<dyn Forward>, shared: Arc<Shared>) -> Self {
        Self {
            rmcp: Arc::new(rmcp),
            forward,
            shared,
        }
    }

    async fn answer(self, req: Request<Body>) -> Response<Body> {
        let Some(revision) = super::direct::plain_shape(&req) else {
            return self.through_rmcp(req).await;
        };
        let (parts, body) = req.into_parts();
        let bytes = match super::direct::read_plain_body(body).await {
            Ok(bytes) => bytes,
            Err(body) => return self.through_rmcp(Request::from_parts(parts, body)).await,
        };
        let call = parse_call(&bytes).and_then(|parsed| {
            let caller = parts.extensions.get::<Caller>()?;
            // Only what this caller may call: a hidden tool is answered as a missing one by
            // the wrapper on rmcp's path, and the edge refused what needs more scopes.
            self.shared.policy.check_tool(caller, &parsed.tool).ok()?;
            Some(parsed)
        });
        let Some(parsed) = call else {
            return self
                .through_rmcp(Request::from_parts(parts, Body::from(bytes)))
                .await;
        };
        let record = CallRecord {
            observer: self.shared.observer.clone(),
            caller: parts
                .extensions
                .get::<Caller>()
                .cloned()
                .expect("checked above"),
            tool: parsed.tool.clone(),
            request_id: parts
                .headers
                .get(crate::mcp::REQUEST_ID_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            started: Instant::now(),
            done: false,
        };
        let call = ForwardCall {
            parts,
            body: bytes,
            id: parsed.id,
            tool: parsed.tool,
            revision: super::direct::DIRECT_REVISION_NAMES[revision],
            record: Some(record),
        };
        match self.forward.forward(call).await {
            Forwarded::Answered(response) => {
                self.shared.direct_answers.fetch_add(1, Ordering::Relaxed);
                response
            }
            Forwarded::Declined(call) => {
                let mut call = *call;
                if let Some(mut record) = call.record.take() {
                    // rmcp's wrapper writes this call's record.
                    record.done = true;
                }
                self.through_rmcp(Request::from_parts(call.parts, Body::from(call.body)))
                    .await
            }
        }
    }

    async fn through_rmcp(&self, req: Request<Body>) -> Response<Body> {
        let Ok(response) = S::clone(&self.rmcp).call(req).await;
        response.map(Body::new)
    }
}

impl<S, B> Service<Request<Body>> for Forwarding<S>
where
    S: Service<Request<Body>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<Body>, Infallible>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        // rmcp's service is always ready; it is called (and made ready) per request.
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.answer(req).await) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(body: &str) -> Option<ParsedCall> {
        parse_call(body.as_bytes())
    }

    #[test]
    fn a_plain_call_parses_with_the_id_span() {
        let body = r#"{"jsonrpc":"2.0","id":17,"method":"tools/call","params":{"name":"echo","arguments":{"m":"x"}}}"#;
        let p = parsed(body).expect("plain call");
        assert_eq!(p.tool, "echo");
        assert_eq!(&body[p.id.clone()], "17");
        let spliced = splice(body.as_bytes(), p.id, br#""gw-1""#);
        assert_eq!(
            std::str::from_utf8(&spliced).unwrap(),
            body.replace("17", r#""gw-1""#)
        );
        let s = r#"{ "id" : "a b" , "jsonrpc":"2.0","method":"tools/call","params":{"name":"e\u0063ho"}}"#;
        let p = parsed(s).expect("string id, escaped name, no arguments");
        assert_eq!(p.tool, "echo");
        assert_eq!(&s[p.id], r#""a b""#);
    }

    #[test]
    fn anything_ambiguous_or_unusual_is_refused() {
        for body in [
            // duplicates, at each level, also through escapes
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","method":"tools/call","params":{"name":"a"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","n\u0061me":"b"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{"x":1,"x":2}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{"x":[{"y":1,"y":2}]}}}"#,
            // case variants and extra members
            r#"{"jsonrpc":"2.0","id":1,"Method":"tools/call","params":{"name":"a"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"Name":"a"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","_meta":{"progressToken":1}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"},"extra":1}"#,
            // shapes: sequences where objects belong (serde's derive would read them)
            r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}}]"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["a"]}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["a",{}]}"#,
            r#"["2.0",1,"tools/call",{"name":"a"}]"#,
            r#"  ["2.0",1,"tools/call",["a"]]"#,
            r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"a"}}"#,
            r#"{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"a"}}"#,
            r#"{"jsonrpc":"2.0","id":1.5,"method":"tools/call","params":{"name":"a"}}"#,
            r#"{"jsonrpc":"2.0","id":{"a":1},"method":"tools/call","params":{"name":"a"}}"#,
            r#"{"jsonrpc":"1.0","id":1,"method":"tools/call","params":{"name":"a"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"name":"a"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":[1]}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}} x"#,
            "\u{feff}{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\"}}",
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\ud800"}}"#,
            "",
            "\x1f\u{8b}\u{8}",
        ] {
            assert_eq!(parsed(body), None, "{body}");
        }
    }

    #[test]
    fn upstream_messages_are_sorted() {
        let ok = br#"{"jsonrpc":"2.0","id":"gw-3","result":{"content":[],"isError":false}}"#;
        let a = parse_answer(ok).expect("answer");
        assert_eq!(a.id_text, r#""gw-3""#);
        assert_eq!(a.kind, AnswerKind::Result { is_error: false });
        assert_eq!(
            &splice(ok, a.id, b"9")[..],
            &br#"{"jsonrpc":"2.0","id":9,"result":{"content":[],"isError":false}}"#[..]
        );
        let failed = br#"{"jsonrpc":"2.0","id":1,"result":{"isError":true,"content":[]}}"#;
        assert_eq!(
            parse_answer(failed).unwrap().kind,
            AnswerKind::Result { is_error: true }
        );
        let error = br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"no"}}"#;
        assert_eq!(parse_answer(error).unwrap().kind, AnswerKind::Error);
        assert_eq!(
            parse_message(br#"{"jsonrpc":"2.0","method":"notifications/message","params":{}}"#),
            Some(UpstreamMessage::Notification)
        );
        assert_eq!(
            parse_message(br#"{"jsonrpc":"2.0","id":4,"method":"sampling/createMessage"}"#),
            Some(UpstreamMessage::Request {
                id: "4".into(),
                method: "sampling/createMessage".into()
            })
        );
        assert_eq!(parse_message(br#"{"jsonrpc":"2.0","id":4}"#), None);
        assert_eq!(
            parse_message(br#"{"jsonrpc":"2.0","id":4,"result":{},"error":{}}"#),
            None
        );
        assert_eq!(parse_answer(b"nope"), None);
    }
}
