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
    if !worth_reading::<Env>(status, headers) {
        return (false, ResponseBody::new(body));
    }
    let (body, prefix) = ResponseBody::read_prefix(body, CLASSIFY_PREFIX_BYTES).await;
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

pin_project_lite::pin_project! {
    /// A response body whose first frames may have been read already, to
    /// classify the answer: they come first, then the rest, so the caller
    /// gets every byte.
    ///
    /// It is `Unpin` when the inner body is.
    pub struct ResponseBody<B: Body> {
        read: VecDeque<Frame<B::Data>>,
        error: Option<B::Error>,
        ended: bool,
        #[pin]
        inner: Inner<B>,
    }
}

pin_project_lite::pin_project! {
    /// The inner body: in place for an answer handed back unread (no
    /// allocation), boxed once a prefix of it has been read.
    #[project = InnerProj]
    #[project_ref = InnerRef]
    enum Inner<B> {
        InPlace { #[pin] body: B },
        Boxed { body: Pin<Box<B>> },
    }
}

impl<B: Body> ResponseBody<B> {
    pub(crate) fn new(inner: B) -> Self {
        ResponseBody {
            read: VecDeque::new(),
            error: None,
            ended: false,
            inner: Inner::InPlace { body: inner },
        }
    }

    /// Reads frames of `inner` (boxed, to be read before it is handed back)
    /// until `limit` bytes of data, the end or an error; returns the body
    /// and a copy of at most `limit` bytes of the data read.
    async fn read_prefix(inner: B, limit: usize) -> (Self, Vec<u8>) {
        use bytes::Buf;
        let mut body = Box::pin(inner);
        let (mut read, mut error, mut ended) = (VecDeque::new(), None, false);
        let mut prefix = Vec::new();
        while prefix.len() < limit {
            match body.frame().await {
                None => {
                    ended = true;
                    break;
                }
                Some(Err(e)) => {
                    error = Some(e);
                    break;
                }
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        // The first chunk of the `Buf` (all of it for `Bytes`).
                        let chunk = data.chunk();
                        let take = chunk.len().min(limit - prefix.len());
                        prefix.extend_from_slice(&chunk[..take]);
                    }
                    read.push_back(frame);
                }
            }
        }
        let body = ResponseBody {
            read,
            error,
            ended,
            inner: Inner::Boxed { body },
        };
        (body, prefix)
    }

    fn buffered(&self) -> u64 {
        use bytes::Buf;
        self.read
            .iter()
            .filter_map(|f| f.data_ref())
            .map(|d| d.remaining() as u64)
            .sum()
    }

    fn inner_size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::InPlace { body } => body.size_hint(),
            Inner::Boxed { body } => body.size_hint(),
        }
    }

    fn inner_is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::InPlace { body } => body.is_end_stream(),
            Inner::Boxed { body } => body.is_end_stream(),
        }
    }
}

impl<B: Body> Body for ResponseBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        if let Some(frame) = this.read.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        if let Some(error) = this.error.take() {
            return Poll::Ready(Some(Err(error)));
        }
        if *this.ended {
            return Poll::Ready(None);
        }
        match this.inner.project() {
            InnerProj::InPlace { body } => body.poll_frame(cx),
            InnerProj::Boxed { body } => body.as_mut().poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.read.is_empty() && self.error.is_none() && (self.ended || self.inner_is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let buffered = self.buffered();
        if self.ended || self.error.is_some() {
            return SizeHint::with_exact(buffered);
        }
        let inner = self.inner_size_hint();
        let mut hint = SizeHint::new();
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper.saturating_add(buffered));
        }
        hint.set_lower(inner.lower().saturating_add(buffered));
        hint
    }
}

impl<B: Body> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("buffered_bytes", &self.buffered())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::StreamBody;

    type Chunks = StreamBody<
        futures_util::stream::Iter<
            std::vec::IntoIter<Result<Frame<Bytes>, std::convert::Infallible>>,
        >,
    >;

    fn chunks(parts: &[&'static [u8]]) -> Chunks {
        let frames: Vec<_> = parts
            .iter()
            .map(|part| Ok(Frame::data(Bytes::from_static(part))))
            .collect();
        StreamBody::new(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn the_frames_read_for_a_prefix_come_first_then_the_rest() {
        let (body, prefix) = ResponseBody::read_prefix(chunks(&[b"abc", b"def", b"ghi"]), 4).await;
        assert_eq!(prefix, b"abcd", "at most the limit is copied");
        assert_eq!(
            body.size_hint().lower(),
            6,
            "the two frames read are counted"
        );
        let all = body.collect().await.unwrap().to_bytes();
        assert_eq!(&all[..], b"abcdefghi");
    }

    #[tokio::test]
    async fn a_body_read_to_its_end_says_so_and_an_unread_one_passes_through() {
        let (body, prefix) = ResponseBody::read_prefix(chunks(&[b"ab"]), 16).await;
        assert_eq!(prefix, b"ab");
        assert_eq!(body.size_hint().exact(), Some(2));
        assert_eq!(&body.collect().await.unwrap().to_bytes()[..], b"ab");

        let body = ResponseBody::new(chunks(&[b"abc", b"def"]));
        assert_eq!(&body.collect().await.unwrap().to_bytes()[..], b"abcdef");
    }
}
