//! The rounds of SEP-2322 multi round-trip requests (protocol 2026-07-28), shared by the
//! input-required fixtures ([`crate::mrtr`]), the prompt and the task fixtures: what a client is
//! asked ([`elicit`], [`sample`], [`list_roots`], [`ask`]), what it answered ([`answer`],
//! [`elicited`], [`sampled`], [`roots`]), what it declared ([`Declared`]), and the sealed
//! `requestState` carried between rounds ([`StateSeal`]).
//!
//! The server keeps nothing between rounds: whatever a later round needs travels in
//! `requestState`, sealed with an HMAC key that lives only in this process
//! ([`rmcp::model::RequestStateCodec`]), because the client echoes it and MUST NOT be trusted
//! with it (SEP-2322 "requestState is untrusted"). A state that fails the check, or was minted
//! for another fixture, is refused with `-32602`.
//!
//! Answers are checked before use: an answer that is not a JSON object is a protocol error
//! (`-32602`); a missing answer is asked for again (a new `InputRequiredResult`, as SEP-2322
//! recommends); answers to keys the fixture never asked for are ignored.

use std::time::Duration;

use rmcp::ErrorData;
use rmcp::model::{
    ClientCapabilities, GetPromptResponse, GetPromptResult, InputRequest, InputRequests,
    InputRequiredResult, InputResponses, PromptMessage, RequestStateCodec, Role, SealOptions,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Builds an rmcp model value from its JSON form (many model structs are `#[non_exhaustive]`;
/// the JSON is exactly what the scenario descriptions specify).
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, ErrorData> {
    serde_json::from_value(value).map_err(|e| ErrorData::internal_error(e.to_string(), None))
}

/// How long a sealed `requestState` stays valid: far beyond any conformance round trip.
const STATE_TTL: Duration = Duration::from_secs(600);

/// What a fixture carries from one round to the next (sealed, so the client cannot forge it).
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct State {
    /// The fixture that minted it: a state is valid for that fixture only.
    pub(crate) fixture: String,
    /// The round that produced it (1 for the first `InputRequiredResult`).
    pub(crate) round: u32,
    /// Values gathered in earlier rounds.
    #[serde(default)]
    pub(crate) gathered: serde_json::Map<String, Value>,
}

/// Seals and opens [`State`]s with a key drawn at start-up.
pub(crate) struct StateSeal {
    codec: RequestStateCodec,
}

impl StateSeal {
    pub(crate) fn new() -> Self {
        let key: [u8; 32] = rand::random();
        let codec = RequestStateCodec::try_new(key.to_vec()).expect("a 32-byte key is long enough");
        Self { codec }
    }

    pub(crate) fn seal(&self, state: &State) -> Result<String, ErrorData> {
        self.codec
            .seal_json_with(state, &SealOptions::new().ttl(STATE_TTL))
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))
    }

    /// Opens `sealed` for `fixture`; `-32602` when it fails the integrity check, has expired
    /// or belongs to another fixture.
    pub(crate) fn open(&self, sealed: &str, fixture: &str) -> Result<State, ErrorData> {
        let refused = || ErrorData::invalid_params("requestState failed its integrity check", None);
        let state: State = self.codec.open_json(sealed).map_err(|_| refused())?;
        if state.fixture != fixture {
            return Err(refused());
        }
        Ok(state)
    }
}

/// `elicitation/create` for a form with one required `field` of JSON type `ty`.
pub(crate) fn elicit(message: &str, field: &str, ty: &str) -> Result<InputRequest, ErrorData> {
    from_json(json!({
        "method": "elicitation/create",
        "params": {
            "message": message,
            "requestedSchema": {
                "type": "object",
                "properties": { field: { "type": ty } },
                "required": [field],
            },
        },
    }))
}

/// `sampling/createMessage` asking the client's model `question`.
pub(crate) fn sample(question: &str, max_tokens: u32) -> Result<InputRequest, ErrorData> {
    from_json(json!({
        "method": "sampling/createMessage",
        "params": {
            "messages": [{ "role": "user", "content": { "type": "text", "text": question } }],
            "maxTokens": max_tokens,
        },
    }))
}

/// `roots/list`.
pub(crate) fn list_roots() -> Result<InputRequest, ErrorData> {
    from_json(json!({ "method": "roots/list", "params": {} }))
}

/// `InputRequiredResult` asking for `requests` (and carrying `state` when given).
pub(crate) fn ask(
    requests: impl IntoIterator<Item = (&'static str, InputRequest)>,
    state: Option<String>,
) -> InputRequiredResult {
    let requests: InputRequests = requests
        .into_iter()
        .map(|(k, r)| (k.to_owned(), r))
        .collect();
    InputRequiredResult::new(Some(requests), state)
}

/// The client's answer under `key`: `None` when it sent none (ask again), `-32602` when the
/// answer is not an object (every `inputResponses` value is an `ElicitResult`,
/// `CreateMessageResult` or `ListRootsResult`).
pub(crate) fn answer<'a>(
    answers: Option<&'a InputResponses>,
    key: &str,
) -> Result<Option<&'a serde_json::Map<String, Value>>, ErrorData> {
    match answers.and_then(|a| a.get(key)) {
        None => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => Err(ErrorData::invalid_params(
            "inputResponses: malformed response",
            Some(json!({ "key": key })),
        )),
    }
}

/// The `field` of an accepted elicitation answer; `Ok(None)` when the user declined or
/// cancelled; `-32602` when an accepted answer lacks the field.
pub(crate) fn elicited(
    answer: &serde_json::Map<String, Value>,
    field: &str,
) -> Result<Option<Value>, ErrorData> {
    match answer.get("action").and_then(Value::as_str) {
        Some("accept") => answer
            .get("content")
            .and_then(|c| c.get(field))
            .cloned()
            .map(Some)
            .ok_or_else(|| {
                ErrorData::invalid_params(
                    "inputResponses: accepted elicitation lacks a field",
                    Some(json!({ "field": field })),
                )
            }),
        Some("decline" | "cancel") => Ok(None),
        _ => Err(ErrorData::invalid_params(
            "inputResponses: elicitation answer without a valid action",
            None,
        )),
    }
}

/// The text of a `CreateMessageResult` answer; `-32602` when it has none.
pub(crate) fn sampled(answer: &serde_json::Map<String, Value>) -> Result<String, ErrorData> {
    answer
        .get("content")
        .and_then(|c| c.get("text"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| {
            ErrorData::invalid_params("inputResponses: sampling answer without text", None)
        })
}

/// The root URIs of a `ListRootsResult` answer; `-32602` when `roots` is not a list of roots.
pub(crate) fn roots(answer: &serde_json::Map<String, Value>) -> Result<Vec<String>, ErrorData> {
    let malformed =
        || ErrorData::invalid_params("inputResponses: roots answer without roots", None);
    answer
        .get("roots")
        .and_then(Value::as_array)
        .ok_or_else(malformed)?
        .iter()
        .map(|r| {
            r.get("uri")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(malformed)
        })
        .collect()
}

/// Which of the three input kinds the client declared (per request on 2026-07-28): a server
/// MUST NOT ask for one it did not (SEP-2322, `input-required-result-capability-check`).
pub(crate) struct Declared {
    pub(crate) sampling: bool,
    pub(crate) elicitation: bool,
    pub(crate) roots: bool,
}

impl Declared {
    pub(crate) fn from(caps: Option<&ClientCapabilities>) -> Self {
        Self {
            sampling: caps.is_some_and(|c| c.sampling.is_some()),
            elicitation: caps.is_some_and(|c| c.elicitation.is_some()),
            roots: caps.is_some_and(|c| c.roots.is_some()),
        }
    }
}

/// The prompt of `input-required-result-non-tool-request`.
pub(crate) const PROMPT: &str = "test_input_required_result_prompt";

/// `prompts/get` of [`PROMPT`]: asks what context to use, then returns a prompt built on it.
pub(crate) fn input_required_prompt(
    answers: Option<&InputResponses>,
) -> Result<GetPromptResponse, ErrorData> {
    let Some(a) = answer(answers, "user_context")? else {
        let request = elicit("What context should the prompt use?", "context", "string")?;
        return Ok(ask([("user_context", request)], None).into());
    };
    let context = match elicited(a, "context")? {
        Some(Value::String(c)) => c,
        Some(_) => return Err(ErrorData::invalid_params("context must be a string", None)),
        None => "(none given)".to_owned(),
    };
    Ok(GetPromptResult::new(vec![PromptMessage::new_text(
        Role::User,
        format!("Answer using this context: {context}"),
    )])
    .into())
}

impl State {
    pub(crate) fn first(fixture: &str) -> Self {
        Self {
            fixture: fixture.to_owned(),
            round: 1,
            gathered: serde_json::Map::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(fixture: &str, round: u32) -> State {
        State {
            fixture: fixture.into(),
            round,
            gathered: serde_json::Map::new(),
        }
    }

    // A sealed state opens for its own fixture only, and any change to it is refused.
    #[test]
    fn sealed_state_round_trips_and_refuses_tampering_and_other_fixtures() {
        let seal = StateSeal::new();
        let sealed = seal.seal(&state("a", 2)).unwrap();
        assert_eq!(seal.open(&sealed, "a").unwrap(), state("a", 2));
        let refused = |s: &str, f: &str| seal.open(s, f).unwrap_err().code.0;
        assert_eq!(refused(&sealed, "b"), -32602);
        assert_eq!(refused(&format!("{sealed}-TAMPERED"), "a"), -32602);
        let mut flipped = sealed.into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(refused(&String::from_utf8(flipped).unwrap(), "a"), -32602);
        // Another process's key: the same payload sealed elsewhere is refused.
        let other = StateSeal::new().seal(&state("a", 2)).unwrap();
        assert_eq!(refused(&other, "a"), -32602);
    }

    #[test]
    fn answers_are_checked_before_use() {
        let answers: InputResponses = serde_json::from_value(json!({
            "ok": { "action": "accept", "content": { "name": "Alice" } },
            "declined": { "action": "decline" },
            "number": 12345,
            "no_action": { "content": { "name": "x" } },
            "sampled": { "role": "assistant", "content": { "type": "text", "text": "Paris" } },
            "roots": { "roots": [{ "uri": "file:///r", "name": "R" }] },
        }))
        .unwrap();
        let a = Some(&answers);
        assert!(answer(a, "missing").unwrap().is_none());
        assert_eq!(answer(a, "number").unwrap_err().code.0, -32602);
        let ok = answer(a, "ok").unwrap().unwrap();
        assert_eq!(elicited(ok, "name").unwrap(), Some(json!("Alice")));
        assert_eq!(elicited(ok, "email").unwrap_err().code.0, -32602);
        assert_eq!(
            elicited(answer(a, "declined").unwrap().unwrap(), "name").unwrap(),
            None
        );
        assert!(elicited(answer(a, "no_action").unwrap().unwrap(), "name").is_err());
        assert_eq!(
            sampled(answer(a, "sampled").unwrap().unwrap()).unwrap(),
            "Paris"
        );
        assert_eq!(
            roots(answer(a, "roots").unwrap().unwrap()).unwrap(),
            ["file:///r"]
        );
        assert!(roots(ok).is_err());
    }

    // The requests serialize to exactly the wire shapes of the scenario descriptions.
    #[test]
    fn input_requests_have_the_wire_shapes() {
        let r =
            serde_json::to_value(elicit("What is your name?", "name", "string").unwrap()).unwrap();
        assert_eq!(r["method"], "elicitation/create");
        assert_eq!(r["params"]["requestedSchema"]["required"], json!(["name"]));
        let r = serde_json::to_value(sample("Q?", 100).unwrap()).unwrap();
        assert_eq!(r["method"], "sampling/createMessage");
        assert_eq!(r["params"]["maxTokens"], 100);
        let r = serde_json::to_value(list_roots().unwrap()).unwrap();
        assert_eq!(r["method"], "roots/list");
    }
}
