//! [`Exchange`]: one request sent and its whole answer read, as a future
//! written by hand.
//!
//! Every call goes through here, so its shape matters: one flat state
//! machine holding reqwest's boxed request future, then the body being read,
//! with the deadline beside them. Nested `async fn`s would each copy the
//! request and the inner future into their own state and lay out kilobytes
//! of states that a call writes once and never reads.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use http_body::Body as _;
use reqwest::Url;
use tokio::time::Sleep;
use tracing::Span;

use crate::envelope::RawResponse;
use crate::{Error, ErrorKind};

/// reqwest's future of a sent request (`Client::execute`'s), by its name.
type Pending = <reqwest::Client as tower_service::Service<reqwest::Request>>::Future;

/// Where an answer came from, when that matters: a 3xx answer, or one that
/// came through a redirect the HTTP client followed.
pub(crate) struct Fetched {
    /// The URL the answer came from, for a 3xx answer or a `moved` one;
    /// `None` otherwise. Boxed: every answer's result is moved a few times,
    /// and rarely holds one.
    pub(crate) url: Option<Box<Url>>,
    /// Whether the HTTP client followed a redirect to get the answer.
    pub(crate) moved: bool,
}

pin_project_lite::pin_project! {
    /// Sends a request and reads its whole body within the client's size
    /// cap, before an optional deadline covering both.
    pub(crate) struct Exchange {
        endpoint: &'static str,
        limit: usize,
        // The request's URL, when the HTTP client may follow a redirect:
        // an answer from elsewhere came through one.
        sent_to: Option<Url>,
        stage: Stage,
        // The `refresh_endpoint.http` span and when the request started,
        // when the span is enabled.
        traced: Option<(Span, Instant)>,
        #[pin]
        deadline: Option<Sleep>,
    }
}

// The answer is held inline: the exchange is one allocation-free state
// machine, whatever the stage.
#[allow(clippy::large_enum_variant)]
enum Stage {
    Sending(Pending),
    Reading {
        response: http::Response<reqwest::Body>,
        fetched: Fetched,
        bytes: Vec<u8>,
    },
    Done,
}

impl Exchange {
    /// Starts sending `request` on `client`'s connection pool. Must be
    /// called within a Tokio runtime when `timeout` is set. `may_follow`:
    /// whether `http` may follow redirects.
    pub(crate) fn new(
        mut http: &reqwest::Client,
        limit: usize,
        endpoint: &'static str,
        request: reqwest::Request,
        timeout: Option<Duration>,
        may_follow: bool,
    ) -> Self {
        let span = tracing::debug_span!(
            "refresh_endpoint.http",
            endpoint,
            method = %request.method(),
            status = tracing::field::Empty,
        );
        let traced = (!span.is_disabled()).then(|| (span, Instant::now()));
        let sent_to = may_follow.then(|| request.url().clone());
        let pending = {
            let _entered = traced.as_ref().map(|(span, _)| span.enter());
            tower_service::Service::call(&mut http, request)
        };
        Exchange {
            endpoint,
            limit,
            sent_to,
            stage: Stage::Sending(pending),
            traced,
            deadline: timeout.map(tokio::time::sleep),
        }
    }
}

impl Future for Exchange {
    type Output = Result<(RawResponse, Fetched), Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let (endpoint, limit) = (*this.endpoint, *this.limit);
        let result = {
            let _entered = this.traced.as_ref().map(|(span, _)| span.enter());
            match advance(this.stage, endpoint, limit, this.sent_to.as_ref(), cx) {
                Poll::Ready(result) => result,
                Poll::Pending => {
                    let expired = this
                        .deadline
                        .as_pin_mut()
                        .is_some_and(|deadline| deadline.poll(cx).is_ready());
                    if !expired {
                        return Poll::Pending;
                    }
                    *this.stage = Stage::Done;
                    Err(ErrorKind::Timeout { endpoint }.into())
                }
            }
        };
        if let Some((span, started)) = this.traced.take() {
            trace_end(&span, started, &result);
        }
        Poll::Ready(result)
    }
}

/// Moves the exchange on: the answer's head, then each chunk of its body.
fn advance(
    stage: &mut Stage,
    endpoint: &'static str,
    limit: usize,
    sent_to: Option<&Url>,
    cx: &mut Context<'_>,
) -> Poll<Result<(RawResponse, Fetched), Error>> {
    loop {
        match stage {
            Stage::Sending(pending) => {
                let response = match ready!(Pin::new(pending).poll(cx)) {
                    Ok(response) => response,
                    Err(error) => return finish(stage, Err(Error::transport(endpoint, error))),
                };
                if response
                    .content_length()
                    .is_some_and(|length| length > limit as u64)
                {
                    return finish(stage, Err(ErrorKind::TooLarge { endpoint, limit }.into()));
                }
                let moved = sent_to.is_some_and(|url| response.url() != url);
                let fetched = Fetched {
                    url: (moved || response.status().is_redirection())
                        .then(|| Box::new(response.url().clone())),
                    moved,
                };
                *stage = Stage::Reading {
                    response: response.into(),
                    fetched,
                    bytes: Vec::new(),
                };
            }
            Stage::Reading {
                response, bytes, ..
            } => match ready!(Pin::new(response.body_mut()).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    let Ok(chunk) = frame.into_data() else {
                        continue; // trailers
                    };
                    if bytes.len() + chunk.len() > limit {
                        return finish(stage, Err(ErrorKind::TooLarge { endpoint, limit }.into()));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Some(Err(error)) => {
                    return finish(stage, Err(Error::transport(endpoint, error)));
                }
                None => {
                    let Stage::Reading {
                        response,
                        fetched,
                        bytes,
                    } = std::mem::replace(stage, Stage::Done)
                    else {
                        unreachable!("the stage was just matched")
                    };
                    let (head, _) = response.into_parts();
                    let response = RawResponse {
                        endpoint,
                        status: head.status.as_u16(),
                        headers: head.headers,
                        body: bytes,
                    };
                    return Poll::Ready(Ok((response, fetched)));
                }
            },
            Stage::Done => panic!("an exchange polled after it completed"),
        }
    }
}

/// Ends the exchange with `result`, dropping the request or the body.
fn finish<T>(stage: &mut Stage, result: Result<T, Error>) -> Poll<Result<T, Error>> {
    *stage = Stage::Done;
    Poll::Ready(result)
}

/// Records the status on the span and the time the exchange took.
fn trace_end(span: &Span, started: Instant, result: &Result<(RawResponse, Fetched), Error>) {
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match result {
        Ok((response, _)) => {
            span.record("status", response.status);
            tracing::debug!(parent: span, elapsed_ms, "response received");
        }
        Err(error) => tracing::debug!(parent: span, elapsed_ms, %error, "request failed"),
    }
}
