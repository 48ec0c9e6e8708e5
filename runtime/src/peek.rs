//! Classifying an API answer ("has the access token expired?") from a small
//! bounded prefix of its body, then handing back the whole answer.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderMap, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use crate::envelope::{Envelope, RawResponse};

/// The most bytes of an answer's body read to classify it.
pub(crate) const CLASSIFY_PREFIX_BYTES: usize = 16 * 1024;

/// Whether an answer's body is worth reading to classify it: every error
/// answer (a prefix of it), and, for envelopes that say "expired" with HTTP
/// 200 (Cloudreve), a success whose whole body is declared small. A success of
/// unknown or large length — a download, a stream — is never read.
pub(crate) fn worth_reading<Env: Envelope + ?Sized>(
    status: StatusCode,
    headers: &HeaderMap,
) -> bool {
    if !status.is_success() {
        return true;
    }
    if !Env::EXPIRY_ON_SUCCESS {
        return false;
    }
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|length| length > 0 && length <= CLASSIFY_PREFIX_BYTES as u64)
}

/// Whether `Env` says the answer means "the access token has expired".
fn expired<Env: Envelope + ?Sized>(
    status: StatusCode,
    headers: &HeaderMap,
    prefix: Vec<u8>,
) -> bool {
    Env::access_token_expired(&RawResponse {
        endpoint: "authorized",
        status: status.as_u16(),
        headers: headers.clone(),
        body: prefix,
    })
}

/// Classifies an answer, reading at most [`CLASSIFY_PREFIX_BYTES`] of its
/// body; the body handed back yields every byte, the ones read first.
pub(crate) async fn classify<Env: Envelope + ?Sized, B: Body>(
    status: StatusCode,
    headers: &HeaderMap,
    body: B,
) -> (bool, ResponseBody<B>) {
    let mut body = ResponseBody::new(body);
    if !worth_reading::<Env>(status, headers) {
        return (false, body);
    }
    let prefix = body.read_prefix(CLASSIFY_PREFIX_BYTES).await;
    (expired::<Env>(status, headers, prefix), body)
}

/// [`classify`] for a `reqwest::Response`; an answer not worth reading is
/// handed back untouched.
pub(crate) async fn classify_reqwest<Env: Envelope + ?Sized>(
    response: reqwest::Response,
) -> (bool, reqwest::Response) {
    if !worth_reading::<Env>(response.status(), response.headers()) {
        return (false, response);
    }
    let (parts, body) = http::Response::<reqwest::Body>::from(response).into_parts();
    let (expired, body) = classify::<Env, _>(parts.status, &parts.headers, body).await;
    let response = http::Response::from_parts(parts, reqwest::Body::wrap(body));
    (expired, reqwest::Response::from(response))
}

/// A response body whose first frames may have been read already, to
/// classify the answer: they come first, then the rest, so the caller gets
/// every byte.
pub struct ResponseBody<B: Body> {
    read: VecDeque<Frame<B::Data>>,
    error: Option<B::Error>,
    ended: bool,
    inner: Pin<Box<B>>,
}

impl<B: Body> ResponseBody<B> {
    pub(crate) fn new(inner: B) -> Self {
        ResponseBody {
            read: VecDeque::new(),
            error: None,
            ended: false,
            inner: Box::pin(inner),
        }
    }

    /// Reads frames until `limit` bytes of data, the end or an error; returns
    /// a copy of at most `limit` bytes of the data read.
    async fn read_prefix(&mut self, limit: usize) -> Vec<u8> {
        use bytes::Buf;
        let mut prefix = Vec::new();
        while prefix.len() < limit {
            match self.inner.frame().await {
                None => {
                    self.ended = true;
                    break;
                }
                Some(Err(error)) => {
                    self.error = Some(error);
                    break;
                }
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        // The first chunk of the `Buf` (all of it for `Bytes`).
                        let chunk = data.chunk();
                        let take = chunk.len().min(limit - prefix.len());
                        prefix.extend_from_slice(&chunk[..take]);
                    }
                    self.read.push_back(frame);
                }
            }
        }
        prefix
    }

    fn buffered(&self) -> u64 {
        use bytes::Buf;
        self.read
            .iter()
            .filter_map(|f| f.data_ref())
            .map(|d| d.remaining() as u64)
            .sum()
    }
}

impl<B: Body> Body for ResponseBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        // No field is structurally pinned: `inner` is boxed.
        let this = self.get_mut();
        if let Some(frame) = this.read.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        if let Some(error) = this.error.take() {
            return Poll::Ready(Some(Err(error)));
        }
        if this.ended {
            return Poll::Ready(None);
        }
        this.inner.as_mut().poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.read.is_empty() && self.error.is_none() && (self.ended || self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let buffered = self.buffered();
        if self.ended || self.error.is_some() {
            return SizeHint::with_exact(buffered);
        }
        let inner = self.inner.size_hint();
        let mut hint = SizeHint::new();
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper.saturating_add(buffered));
        }
        hint.set_lower(inner.lower().saturating_add(buffered));
        hint
    }
}

// No field is structurally pinned (the inner body is boxed).
impl<B: Body> Unpin for ResponseBody<B> {}

impl<B: Body> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("buffered_bytes", &self.buffered())
            .finish_non_exhaustive()
    }
}
