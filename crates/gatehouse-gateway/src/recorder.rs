//! What an HTTP upstream session's requests carry — its `Mcp-Session-Id`, the negotiated
//! `MCP-Protocol-Version`, the gateway's credential — recorded from what rmcp's own client sends
//! with `notifications/initialized` ([`Recorder`]), for the forwarding path
//! ([`crate::forward`]) to send the same.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use futures::stream::BoxStream;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderName, HeaderValue};
use rmcp::model::ClientJsonRpcMessage;
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
    StreamableHttpResponseLimits,
};
use sse_stream::Sse;

/// What an upstream session's requests carry, as rmcp's client sent them with
/// `notifications/initialized`.
#[derive(Clone)]
pub(crate) struct SessionHeaders {
    pub(crate) session_id: Option<Arc<str>>,
    /// `Authorization`, and the other headers rmcp added (the credential in its own header,
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
}

impl Recorder {
    pub(crate) fn new(inner: reqwest::Client) -> Self {
        Self {
            inner,
            seen: Arc::default(),
        }
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
        let mut headers = HeaderMap::new();
        for (name, value) in custom {
            headers.insert(name.clone(), value.clone());
        }
        if let Some(token) = auth {
            // As reqwest's `bearer_auth` sends it.
            match HeaderValue::try_from(format!("Bearer {token}")) {
                Ok(mut v) => {
                    v.set_sensitive(true);
                    headers.insert(AUTHORIZATION, v);
                }
                Err(_) => return,
            }
        }
        let _ = self.seen.set(SessionHeaders {
            session_id: session_id.clone(),
            headers,
        });
    }
}

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
        self.inner
            .post_message(uri, message, session_id, auth, custom)
            .await
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
        self.inner
            .post_message_with_max_sse_event_size(
                uri,
                message,
                session_id,
                auth,
                custom,
                max_sse_event_size,
            )
            .await
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
        self.inner
            .post_message_with_response_limits(uri, message, session_id, auth, custom, limits)
            .await
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth: Option<String>,
        custom: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), StreamableHttpError<Self::Error>> {
        self.inner
            .delete_session(uri, session_id, auth, custom)
            .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth: Option<String>,
        custom: HashMap<HeaderName, HeaderValue>,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, StreamableHttpError<Self::Error>> {
        self.inner
            .get_stream(uri, session_id, last_event_id, auth, custom)
            .await
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
        self.inner
            .get_stream_with_max_sse_event_size(
                uri,
                session_id,
                last_event_id,
                auth,
                custom,
                max_sse_event_size,
            )
            .await
    }
}
