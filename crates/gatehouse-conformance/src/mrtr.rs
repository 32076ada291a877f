//! The SEP-2322 fixtures (multi round-trip requests, protocol 2026-07-28): tools that answer
//! with an `InputRequiredResult` (`resultType: "input_required"`) naming what the client must
//! supply, then complete once the client retries with `inputResponses` (and the `requestState`
//! it was given). Names and shapes are those of the suite's `input-required-result-*` scenario
//! descriptions; the rounds themselves are [`crate::rounds`].

use rmcp::handler::server::tool::{
    InputResponses as InputResponsesPart, RequestState as RequestStatePart,
};
use rmcp::model::CallToolResponse;
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, tool, tool_router};
use serde_json::Value;

use crate::fixtures::{Fixtures, text};
use crate::rounds::{
    Declared, State, StateSeal, answer, ask, elicit, elicited, list_roots, roots, sample, sampled,
};

/// `CallToolResponse::Complete` with one text block.
fn done(message: impl Into<String>) -> CallToolResponse {
    text(message).into()
}

/// The sealed state a retry must carry, opened for `fixture`; `-32602` when it is absent.
fn require_state(seal: &StateSeal, state: Option<&str>, fixture: &str) -> Result<State, ErrorData> {
    let sealed =
        state.ok_or_else(|| ErrorData::invalid_params("requestState is required", None))?;
    seal.open(sealed, fixture)
}

const REQUEST_STATE: &str = "test_input_required_result_request_state";
const MULTIPLE: &str = "test_input_required_result_multiple_inputs";
const MULTI_ROUND: &str = "test_input_required_result_multi_round";
const TAMPERED: &str = "test_input_required_result_tampered_state";

#[tool_router(router = mrtr_router, vis = "pub(crate)")]
impl Fixtures {
    #[tool(
        name = "test_input_required_result_elicitation",
        description = "Asks for the user's name through an input-required result (SEP-2322)"
    )]
    async fn input_required_elicitation(
        &self,
        InputResponsesPart(answers): InputResponsesPart,
    ) -> Result<CallToolResponse, ErrorData> {
        let Some(a) = answer(answers.as_ref(), "user_name")? else {
            let request = elicit("What is your name?", "name", "string")?;
            return Ok(ask([("user_name", request)], None).into());
        };
        Ok(match elicited(a, "name")? {
            Some(Value::String(name)) => done(format!("Hello, {name}!")),
            Some(_) => return Err(ErrorData::invalid_params("name must be a string", None)),
            None => done("The user declined to give a name"),
        })
    }

    #[tool(
        name = "test_input_required_result_sampling",
        description = "Asks the client's model a question through an input-required result"
    )]
    async fn input_required_sampling(
        &self,
        InputResponsesPart(answers): InputResponsesPart,
    ) -> Result<CallToolResponse, ErrorData> {
        match answer(answers.as_ref(), "capital_question")? {
            None => {
                let request = sample("What is the capital of France?", 100)?;
                Ok(ask([("capital_question", request)], None).into())
            }
            Some(a) => Ok(done(format!("LLM response: {}", sampled(a)?))),
        }
    }

    #[tool(
        name = "test_input_required_result_list_roots",
        description = "Asks for the client's roots through an input-required result"
    )]
    async fn input_required_list_roots(
        &self,
        InputResponsesPart(answers): InputResponsesPart,
    ) -> Result<CallToolResponse, ErrorData> {
        match answer(answers.as_ref(), "client_roots")? {
            None => Ok(ask([("client_roots", list_roots()?)], None).into()),
            Some(a) => Ok(done(format!("Client roots: {}", roots(a)?.join(", ")))),
        }
    }

    #[tool(
        name = "test_input_required_result_request_state",
        description = "Asks for a confirmation, carrying sealed requestState between rounds"
    )]
    async fn input_required_request_state(
        &self,
        InputResponsesPart(answers): InputResponsesPart,
        RequestStatePart(state): RequestStatePart,
    ) -> Result<CallToolResponse, ErrorData> {
        let Some(a) = answer(answers.as_ref(), "confirm")? else {
            let sealed = self.shared.seal.seal(&State::first(REQUEST_STATE))?;
            let request = elicit("Please confirm", "ok", "boolean")?;
            return Ok(ask([("confirm", request)], Some(sealed)).into());
        };
        let state = require_state(&self.shared.seal, state.as_deref(), REQUEST_STATE)?;
        let ok = elicited(a, "ok")?;
        Ok(done(format!(
            "state-ok: round {} verified, confirmed: {}",
            state.round,
            ok.unwrap_or(Value::Bool(false))
        )))
    }

    #[tool(
        name = "test_input_required_result_multiple_inputs",
        description = "Asks for an elicitation, a sampling and the roots in one input-required result"
    )]
    async fn input_required_multiple_inputs(
        &self,
        InputResponsesPart(answers): InputResponsesPart,
        RequestStatePart(state): RequestStatePart,
    ) -> Result<CallToolResponse, ErrorData> {
        let answers = answers.as_ref();
        let (name, greeting, client_roots) = (
            answer(answers, "user_name")?,
            answer(answers, "greeting")?,
            answer(answers, "client_roots")?,
        );
        let (Some(name), Some(greeting), Some(client_roots)) = (name, greeting, client_roots)
        else {
            // Anything missing: ask for all three again, with a fresh state.
            let sealed = self.shared.seal.seal(&State::first(MULTIPLE))?;
            let requests = [
                ("user_name", elicit("What is your name?", "name", "string")?),
                ("greeting", sample("Generate a greeting", 50)?),
                ("client_roots", list_roots()?),
            ];
            return Ok(ask(requests, Some(sealed)).into());
        };
        require_state(&self.shared.seal, state.as_deref(), MULTIPLE)?;
        Ok(done(format!(
            "name: {}, greeting: {}, roots: {}",
            elicited(name, "name")?.unwrap_or(Value::Null),
            sampled(greeting)?,
            roots(client_roots)?.join(", ")
        )))
    }

    #[tool(
        name = "test_input_required_result_multi_round",
        description = "Asks for a name, then a colour, in two input-required rounds"
    )]
    async fn input_required_multi_round(
        &self,
        InputResponsesPart(answers): InputResponsesPart,
        RequestStatePart(state): RequestStatePart,
    ) -> Result<CallToolResponse, ErrorData> {
        let seal = &self.shared.seal;
        let step1 = || -> Result<CallToolResponse, ErrorData> {
            let sealed = seal.seal(&State::first(MULTI_ROUND))?;
            let request = elicit("Step 1: What is your name?", "name", "string")?;
            Ok(ask([("step1", request)], Some(sealed)).into())
        };
        let Some(sealed) = state.as_deref() else {
            return step1();
        };
        let mut state = seal.open(sealed, MULTI_ROUND)?;
        match state.round {
            1 => {
                let Some(a) = answer(answers.as_ref(), "step1")? else {
                    return step1();
                };
                let name = elicited(a, "name")?.unwrap_or(Value::Null);
                state.round = 2;
                state.gathered.insert("name".into(), name);
                let request = elicit("Step 2: What is your favorite color?", "color", "string")?;
                Ok(ask([("step2", request)], Some(seal.seal(&state)?)).into())
            }
            2 => {
                let Some(a) = answer(answers.as_ref(), "step2")? else {
                    let request =
                        elicit("Step 2: What is your favorite color?", "color", "string")?;
                    return Ok(ask([("step2", request)], Some(sealed.to_owned())).into());
                };
                let color = elicited(a, "color")?.unwrap_or(Value::Null);
                let name = state.gathered.get("name").cloned().unwrap_or(Value::Null);
                Ok(done(format!("name: {name}, favorite color: {color}")))
            }
            _ => Err(ErrorData::invalid_params(
                "requestState failed its integrity check",
                None,
            )),
        }
    }

    #[tool(
        name = "test_input_required_result_capabilities",
        description = "Asks only for the inputs the request's client capabilities declare"
    )]
    async fn input_required_capabilities(
        &self,
        context: RequestContext<RoleServer>,
        InputResponsesPart(answers): InputResponsesPart,
    ) -> Result<CallToolResponse, ErrorData> {
        let declared = Declared::from(context.client_capabilities().as_ref());
        let mut requests = Vec::new();
        if declared.sampling {
            requests.push((
                "capital_question",
                sample("What is the capital of France?", 100)?,
            ));
        }
        if declared.elicitation {
            requests.push(("user_name", elicit("What is your name?", "name", "string")?));
        }
        if declared.roots {
            requests.push(("client_roots", list_roots()?));
        }
        if requests.is_empty() {
            return Ok(done(
                "The client declared none of sampling, elicitation, roots",
            ));
        }
        let mut got = Vec::new();
        for (key, _) in &requests {
            if answer(answers.as_ref(), key)?.is_some() {
                got.push(*key);
            }
        }
        if got.len() < requests.len() {
            return Ok(ask(requests, None).into());
        }
        Ok(done(format!("answered: {}", got.join(", "))))
    }

    #[tool(
        name = "test_input_required_result_tampered_state",
        description = "Refuses a requestState that fails its integrity check (-32602)"
    )]
    async fn input_required_tampered_state(
        &self,
        InputResponsesPart(answers): InputResponsesPart,
        RequestStatePart(state): RequestStatePart,
    ) -> Result<CallToolResponse, ErrorData> {
        match (answer(answers.as_ref(), "confirm")?, state.as_deref()) {
            (Some(a), sealed) => {
                require_state(&self.shared.seal, sealed, TAMPERED)?;
                Ok(done(format!(
                    "state verified, confirmed: {}",
                    elicited(a, "ok")?.unwrap_or(Value::Bool(false))
                )))
            }
            (None, _) => {
                let sealed = self.shared.seal.seal(&State::first(TAMPERED))?;
                let request = elicit("Please confirm", "ok", "boolean")?;
                Ok(ask([("confirm", request)], Some(sealed)).into())
            }
        }
    }
}
