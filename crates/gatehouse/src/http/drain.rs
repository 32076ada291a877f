//! Keep-alive after a refusal. The edge often refuses a POST before reading its body (no
//! token: the `401` that starts every client's discovery). HTTP/1.1 then cannot reuse the
//! connection — the unread body would be read as the next request — so hyper closes it after the
//! response, but without saying so: a client that sends its next request on that connection at
//! once (the Python SDK after its first `401`) sees it reset. Seen in interop as an intermittent
//! `ReadError` right after the challenge.
//!
//! So the edge holds the body aside until something reads it ([`hold`]); on a refusal
//! ([`Held::settle`]) a small unread body (declared `Content-Length` up to [`DRAIN_LIMIT`]) is read
//! and dropped, so the connection stays usable, and anything else — a large or unknown-length
//! body, one cut off part way — gets `Connection: close`, so the client knows not to reuse it.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderValue, Request, Response, Version};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;

/// Largest unread body read (and dropped) after a refusal to keep the connection.
pub(crate) const DRAIN_LIMIT: u64 = 64 * 1024;
/// Longest wait for that body: a client that does not send it loses the connection instead.
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// The request's body, until a reader takes it.
pub(crate) struct Held {
    slot: Mutex<Option<Body>>,
    /// The body was read to its end.
    finished: AtomicBool,
    /// Its declared length (`None`: chunked).
    declared: Option<u64>,
}

/// Puts the body of an HTTP/1.x request that has one aside, behind a body that takes it on
/// first read. Requests without a body (and HTTP/2, whose streams end on their own) are left
/// alone.
pub(crate) fn hold(req: Request<Body>) -> (Request<Body>, Option<Arc<Held>>) {
    if req.version() > Version::HTTP_11 {
        return (req, None);
    }
    let headers = req.headers();
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let chunked = headers.contains_key(TRANSFER_ENCODING);
    if !chunked && declared.unwrap_or(0) == 0 {
        return (req, None);
    }
    let (parts, body) = req.into_parts();
    let held = Arc::new(Held {
        slot: Mutex::new(Some(body)),
        finished: AtomicBool::new(false),
        declared: if chunked { None } else { declared },
    });
    let lazy = Lazy {
        held: held.clone(),
        body: None,
    };
    (Request::from_parts(parts, Body::new(lazy)), Some(held))
}

impl Held {
    fn take(&self) -> Option<Body> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// After a refusal: reads a small unread body so the connection can be reused, or marks
    /// the response `Connection: close`.
    pub(crate) async fn settle(&self, response: &mut Response<Body>) {
        if self.finished.load(Ordering::Acquire) {
            return;
        }
        if let Some(body) = self.take()
            && self.declared.is_some_and(|n| n <= DRAIN_LIMIT)
        {
            let limited = http_body_util::Limited::new(body, DRAIN_LIMIT as usize);
            if let Ok(Ok(_)) = tokio::time::timeout(DRAIN_TIME, limited.collect()).await {
                return;
            }
        }
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
}

/// The body handed on: takes the held one on first read.
struct Lazy {
    held: Arc<Held>,
    body: Option<Body>,
}

impl http_body::Body for Lazy {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.body.is_none() {
            this.body = this.held.take();
        }
        let Some(body) = this.body.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(body).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            this.held.finished.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.body {
            Some(b) => b.is_end_stream(),
            None => self
                .held
                .slot
                .lock()
                .map(|s| s.as_ref().is_none_or(http_body::Body::is_end_stream))
                .unwrap_or(true),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.body {
            Some(b) => b.size_hint(),
            None => self
                .held
                .slot
                .lock()
                .ok()
                .and_then(|s| s.as_ref().map(http_body::Body::size_hint))
                .unwrap_or_default(),
        }
    }
}
