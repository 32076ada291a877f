//! What an HTTP upstream session's requests carry — its `Mcp-Session-Id`, the negotiated
//! `MCP-Protocol-Version`, the gateway's credential — recorded from what rmcp's own client sends
//! with `notifications/initialized` ([`Recorder`]), for the forwarding path
//! ([`crate::forward`]) to send the same.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use futures::stream::BoxStream;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue};
use rmcp::model::ClientJsonRpcMessage;
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
    StreamableHttpResponseLimits,
};
use sse_stream::Sse;

const MCP_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
const MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");

/// What an upstream session's requests carry, as rmcp's client sent them with
/// `notifications/initialized`, recorded only for a revision before 2026-07-28 (from then on
/// some headers depend on each message: SEP-2243).
#[derive(Clone)]
pub(crate) struct SessionHeaders {
    /// Whether the upstream gave the session an id (`Mcp-Session-Id`).
    pub(crate) has_id: bool,
    /// Every header of a request in the session: `Content-Type`, `Accept`, `Mcp-Session-Id`,
    /// `Authorization`, and the others rmcp added (the credential in its own header,
    /// `MCP-Protocol-Version`).
    pub(crate) headers: HeaderMap,
}

impl std::fmt::Debug for SessionHeaders {
    // The headers hold the gateway's credential.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionHeaders").finish_non_exhaustive()
    }
}

/// rmcp's reqwest client, recording what the session's requests carry ([`SessionHeaders`]).
#[derive(Clone)]
pub(crate) struct Recorder {
    inner: reqwest::Client,
    seen: Arc<OnceLock<SessionHeaders>>,
    /// The causes of the last request that failed in reqwest (see [`Recorder::cause`]).
    cause: Arc<Mutex<Option<String>>>,
}

impl Recorder {
    pub(crate) fn new(inner: reqwest::Client) -> Self {
        Self {
            inner,
            seen: Arc::default(),
            cause: Arc::default(),
        }
    }

    /// Why the last request reqwest could not complete failed, down to the bottom cause (rmcp's
    /// error keeps only reqwest's top line, "error sending request").
    pub(crate) fn cause(&self) -> Arc<Mutex<Option<String>>> {
        self.cause.clone()
    }

    /// `result`, its client error's causes kept for [`Recorder::cause`].
    fn noted<T>(
        &self,
        result: Result<T, StreamableHttpError<reqwest::Error>>,
    ) -> Result<T, StreamableHttpError<reqwest::Error>> {
        if let Err(StreamableHttpError::Client(e)) = &result {
            *self.cause.lock().expect("not poisoned") = Some(causes(e));
        }
        result
    }

    /// Where the session's headers will be, once it has started.
    pub(crate) fn seen(&self) -> Arc<OnceLock<SessionHeaders>> {
        self.seen.clone()
    }

    fn record(
        &self,
        message: &ClientJsonRpcMessage,
        session_id: &Option<Arc<str>>,
        auth: &Option<String>,
        custom: &HashMap<HeaderName, HeaderValue>,
    ) {
        let ClientJsonRpcMessage::Notification(n) = message else {
            return;
        };
        if !matches!(
            n.notification,
            rmcp::model::ClientNotification::InitializedNotification(_)
        ) {
            return;
        }
        let forwardable = custom
            .get(&MCP_PROTOCOL_VERSION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| !gatehouse::policy::tool_name::headers_are_authoritative(v));
        if !forwardable {
            return;
        }
        let mut headers = HeaderMap::new();
        for (name, value) in custom {
            headers.insert(name.clone(), value.clone());
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        if let Some(id) = session_id {
            let Ok(v) = HeaderValue::from_str(id) else {
                return;
            };
            headers.insert(MCP_SESSION_ID, v);
        }
        if let Some(token) = auth {
            // As reqwest's `bearer_auth` sends it.
            let Ok(mut v) = HeaderValue::try_from(format!("Bearer {token}")) else {
                return;
            };
            v.set_sensitive(true);
            headers.insert(AUTHORIZATION, v);
        }
        let _ = self.seen.set(SessionHeaders {
            has_id: session_id.is_some(),
            headers,
        });
    }
}

/// `e` and the errors under it, each once.
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let t = c.to_string();
        if !text.contains(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        cause = c.source();
    }
    text
}

// Every method is passed on explicitly, not left to the trait's defaults: those fall back to
// `post_message` / `get_stream` and would drop the SSE and response limits rmcp's transport
// asks reqwest's client to enforce.
impl StreamableHttpClient for Recorder {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth: Option<String>,
        custom: HashMap<HeaderName, HeaderValue>,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        self.record(&message, &session_id, &auth, &custom);
        let result = self
            .inner
            .post_message(uri, message, session_id, auth, custom)
            .await;
        self.noted(result)
    }

    async fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth: Option<String>,
        custom: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        self.record(&message, &session_id, &auth, &custom);
        let result = self
            .inner
            .post_message_with_max_sse_event_size(
                uri,
                message,
                session_id,
                auth,
                custom,
                max_sse_event_size,
            )
            .await;
        self.noted(result)
    }

    async fn post_message_with_response_limits(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth: Option<String>,
        custom: HashMap<HeaderName, HeaderValue>,
        limits: StreamableHttpResponseLimits,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        self.record(&message, &session_id, &auth, &custom);
        let result = self
            .inner
            .post_message_with_response_limits(uri, message, session_id, auth, custom, limits)
            .await;
        self.noted(result)
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth: Option<String>,
        custom: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), StreamableHttpError<Self::Error>> {
        let result = self
            .inner
            .delete_session(uri, session_id, auth, custom)
            .await;
        self.noted(result)
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth: Option<String>,
        custom: HashMap<HeaderName, HeaderValue>,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, StreamableHttpError<Self::Error>> {
        let result = self
            .inner
            .get_stream(uri, session_id, last_event_id, auth, custom)
            .await;
        self.noted(result)
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth: Option<String>,
        custom: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, StreamableHttpError<Self::Error>> {
        let result = self
            .inner
            .get_stream_with_max_sse_event_size(
                uri,
                session_id,
                last_event_id,
                auth,
                custom,
                max_sse_event_size,
            )
            .await;
        self.noted(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::{ClientNotification, InitializedNotification};

    fn initialized() -> ClientJsonRpcMessage {
        ClientJsonRpcMessage::notification(ClientNotification::InitializedNotification(
            InitializedNotification::default(),
        ))
    }

    fn version(v: &'static str) -> HashMap<HeaderName, HeaderValue> {
        [(MCP_PROTOCOL_VERSION, HeaderValue::from_static(v))].into()
    }

    #[test]
    fn a_session_before_2026_07_28_is_recorded_with_every_header() {
        let r = Recorder::new(reqwest::Client::new());
        r.record(
            &initialized(),
            &Some("sess-1".into()),
            &Some("key".into()),
            &version("2025-11-25"),
        );
        let s = r.seen().get().cloned().expect("recorded");
        assert!(s.has_id);
        assert_eq!(s.headers[MCP_SESSION_ID], "sess-1");
        assert_eq!(s.headers[AUTHORIZATION], "Bearer key");
        assert!(s.headers[AUTHORIZATION].is_sensitive());
        assert_eq!(s.headers[MCP_PROTOCOL_VERSION], "2025-11-25");
        assert_eq!(s.headers[CONTENT_TYPE], "application/json");
        assert_eq!(s.headers[ACCEPT], "application/json, text/event-stream");
        assert!(
            format!("{s:?}").find("key").is_none(),
            "no credential in Debug"
        );
    }

    #[test]
    fn what_cannot_be_forwarded_is_not_recorded() {
        let refused = [
            // Headers that depend on each message from this revision on.
            (initialized(), None, version("2026-07-28")),
            // No revision at all.
            (initialized(), None, HashMap::new()),
            // A session id that is no header value.
            (initialized(), Some("a\nb".into()), version("2025-11-25")),
        ];
        for (message, session, custom) in refused {
            let r = Recorder::new(reqwest::Client::new());
            r.record(&message, &session, &None, &custom);
            assert!(r.seen().get().is_none(), "{custom:?} {session:?}");
        }
        // Only `notifications/initialized` is recorded.
        let r = Recorder::new(reqwest::Client::new());
        let ping = ClientJsonRpcMessage::request(
            rmcp::model::ClientRequest::PingRequest(Default::default()),
            rmcp::model::NumberOrString::Number(1),
        );
        r.record(&ping, &None, &None, &version("2025-11-25"));
        assert!(r.seen().get().is_none());
    }
}
