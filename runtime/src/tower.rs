//! [`SessionLayer`]: a [`Session`] as a tower [`Layer`], for any service of
//! `http::Request<B>` — a hyper-util client, a tonic channel, a tower stack
//! (feature `tower`).
//!
//! ```no_run
//! use http_body_util::Full;
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use refresh_endpoint::tower::SessionLayer;
//! use tower::{Layer, Service, ServiceExt};
//! # use refresh_endpoint::session::{RefreshEndpoint, Session};
//! # async fn run<E: RefreshEndpoint>(session: Session<E>) -> Result<(), tower::BoxError> {
//! let hyper = Client::builder(TokioExecutor::new()).build_http::<Full<bytes::Bytes>>();
//! let mut api = SessionLayer::new(session).layer(hyper);
//! let request = http::Request::get("http://127.0.0.1:8080/files/1").body(Full::default())?;
//! let answer = api.ready().await?.call(request).await?; // its body streams
//! # let _ = answer; Ok(()) }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body::Body;
use reqwest::Url;
use tower_layer::Layer;
use tower_service::Service;

use crate::session::{RefreshEndpoint, Session};
use crate::{Error, ErrorKind, Secret};

pub use crate::peek::ResponseBody;

/// The error of a [`SessionService`]: the inner service's error or the
/// session's [`Error`], boxed (tower's convention).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Wraps a service so that every request carries the session's access token;
/// see [`SessionService`].
pub struct SessionLayer<E: RefreshEndpoint> {
    session: Session<E>,
    origin: Option<Arc<Url>>,
}

impl<E: RefreshEndpoint> SessionLayer<E> {
    /// A layer authorizing requests with `session`.
    pub fn new(session: Session<E>) -> Self {
        SessionLayer {
            session,
            origin: None,
        }
    }

    /// The origin that requests with a relative URI (a path only, as a tonic
    /// channel's layers see them) go to, so that the plain-http rule can be
    /// checked. Without it, such requests are refused.
    pub fn origin(mut self, origin: &str) -> Result<Self, Error> {
        let url = Url::parse(origin)
            .map_err(|e| ErrorKind::Invalid(format!("the origin is invalid: {e}")))?;
        self.origin = Some(Arc::new(url));
        Ok(self)
    }
}

impl<E: RefreshEndpoint> Clone for SessionLayer<E> {
    fn clone(&self) -> Self {
        SessionLayer {
            session: self.session.clone(),
            origin: self.origin.clone(),
        }
    }
}

impl<E: RefreshEndpoint> std::fmt::Debug for SessionLayer<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLayer")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl<S, E: RefreshEndpoint> Layer<S> for SessionLayer<E> {
    type Service = SessionService<S, E>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService {
            inner,
            session: self.session.clone(),
            origin: self.origin.clone(),
        }
    }
}

/// Adds the session's access token to every request; when the answer says
/// the token expired (per the refresh endpoint's envelope, from at most a
/// small prefix of an error answer's body), refreshes once — one refresh for
/// however many requests, retries included, saw the same token rejected —
/// and replays the request once if its body can be cloned
/// ([`ReplayBody`]). The answer streams: its body is the inner service's,
/// with any prefix read to classify it given back first ([`ResponseBody`]).
///
/// Credential rules: plain `http://` off this machine is refused; no
/// redirect is followed (a 3xx answer is returned as it is). Put a
/// redirect-following layer *inside* this one, never outside: outside, every
/// hop would be authorized wherever it points.
pub struct SessionService<S, E: RefreshEndpoint> {
    inner: S,
    session: Session<E>,
    origin: Option<Arc<Url>>,
}

impl<S: Clone, E: RefreshEndpoint> Clone for SessionService<S, E> {
    fn clone(&self) -> Self {
        SessionService {
            inner: self.inner.clone(),
            session: self.session.clone(),
            origin: self.origin.clone(),
        }
    }
}

impl<S, E: RefreshEndpoint> std::fmt::Debug for SessionService<S, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionService")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

/// A request body that may be cloned, so that a request can be replayed
/// after a refresh. Bodies that cannot (a stream) answer `None`: their
/// request is sent once, and an expiry answer is returned as it is.
pub trait ReplayBody: Sized {
    /// A copy of the body, if it can be made.
    fn try_clone_body(&self) -> Option<Self>;
}

impl<D: Clone> ReplayBody for http_body_util::Full<D> {
    fn try_clone_body(&self) -> Option<Self> {
        Some(self.clone())
    }
}

impl<D> ReplayBody for http_body_util::Empty<D> {
    fn try_clone_body(&self) -> Option<Self> {
        Some(http_body_util::Empty::new())
    }
}

impl ReplayBody for String {
    fn try_clone_body(&self) -> Option<Self> {
        Some(self.clone())
    }
}

impl ReplayBody for Vec<u8> {
    fn try_clone_body(&self) -> Option<Self> {
        Some(self.clone())
    }
}

impl ReplayBody for bytes::Bytes {
    fn try_clone_body(&self) -> Option<Self> {
        Some(self.clone())
    }
}

impl<D, Er> ReplayBody for http_body_util::combinators::BoxBody<D, Er> {
    fn try_clone_body(&self) -> Option<Self> {
        None
    }
}

impl<D, Er> ReplayBody for http_body_util::combinators::UnsyncBoxBody<D, Er> {
    fn try_clone_body(&self) -> Option<Self> {
        None
    }
}

impl<L: ReplayBody, R: ReplayBody> ReplayBody for http_body_util::Either<L, R> {
    fn try_clone_body(&self) -> Option<Self> {
        match self {
            http_body_util::Either::Left(body) => body.try_clone_body().map(Self::Left),
            http_body_util::Either::Right(body) => body.try_clone_body().map(Self::Right),
        }
    }
}

impl ReplayBody for reqwest::Body {
    fn try_clone_body(&self) -> Option<Self> {
        self.as_bytes()
            .map(|bytes| reqwest::Body::from(bytes::Bytes::copy_from_slice(bytes)))
    }
}

/// A copy of `request` when its body can be cloned.
fn try_clone_request<B: ReplayBody>(request: &Request<B>) -> Option<Request<B>> {
    let mut copy = Request::new(request.body().try_clone_body()?);
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    *copy.extensions_mut() = request.extensions().clone();
    Some(copy)
}

impl<S, E, B, RB> Service<Request<B>> for SessionService<S, E>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    E: RefreshEndpoint,
    B: ReplayBody + Send + 'static,
    RB: Body + Send + 'static,
    RB::Data: Send,
    RB::Error: Send,
{
    type Response = Response<ResponseBody<RB>>;
    type Error = BoxError;
    type Future = SessionFuture<S::Future, S, E, B, RB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The service that was made ready is the one that takes the call; it
        // is kept for a replay.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let Some(token) = self.session.fresh_token() else {
            // The token must be refreshed (or the session is signed out)
            // before anything is sent.
            let session = self.session.clone();
            let origin = self.origin.clone();
            return SessionFuture::boxed(async move {
                let token = session.access_token().await?;
                let replay = authorize(&session, origin.as_deref(), &mut request, &token)?;
                let answer = inner.call(request);
                SessionFuture::sent(answer, session, token, replay, inner).await
            });
        };
        match authorize(&self.session, self.origin.as_deref(), &mut request, &token) {
            Ok(replay) => {
                let answer = inner.call(request);
                SessionFuture::sent(answer, self.session.clone(), token, replay, inner)
            }
            Err(error) => SessionFuture::failed(error),
        }
    }
}

/// Checks where `request` goes and adds `token`; returns a copy made
/// before, for a replay, when its body can be cloned.
fn authorize<E: RefreshEndpoint, B: ReplayBody>(
    session: &Session<E>,
    origin: Option<&Url>,
    request: &mut Request<B>,
    token: &Secret,
) -> Result<Option<Request<B>>, Error> {
    check_destination(request, origin, session.client()).map_err(|e| {
        let mut scrubber = session.client().scrubber();
        scrubber.add(token);
        e.scrubbed(&scrubber)
    })?;
    let replay = try_clone_request(request);
    let value = session.token_header_value(token)?;
    session
        .token_placement()
        .apply(request.headers_mut(), &value);
    Ok(replay)
}

type Boxed<RB> = Pin<Box<dyn Future<Output = Result<Response<ResponseBody<RB>>, BoxError>> + Send>>;

pin_project_lite::pin_project! {
    /// The future of [`SessionService`]'s `call`: the inner service's
    /// answer, returned as it is unless it may say the token expired.
    ///
    /// With a fresh token, the request is handed to the inner service within
    /// `call`, and this future is the inner one's plus what a replay needs:
    /// no allocation of its own. A refresh, a classification and a replay
    /// run in a boxed future.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct SessionFuture<F, S, E, B, RB>
    where
        E: RefreshEndpoint,
        RB: Body,
    {
        #[pin]
        state: State<F, S, E, B, RB>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    #[project_replace = StateOwned]
    enum State<F, S, E, B, RB>
    where
        E: RefreshEndpoint,
        RB: Body,
    {
        // Sent with a fresh token; the rest is for a replay (boxed: the
        // future stays small to move).
        Sent {
            #[pin]
            answer: F,
            session: Session<E>,
            token: Secret,
            replay: Box<(S, Option<Request<B>>)>,
        },
        Boxed {
            future: Boxed<RB>,
        },
        Failed {
            error: Option<BoxError>,
        },
        Done,
    }
}

impl<F, S, E: RefreshEndpoint, B, RB: Body> SessionFuture<F, S, E, B, RB> {
    fn sent(
        answer: F,
        session: Session<E>,
        token: Secret,
        replay: Option<Request<B>>,
        inner: S,
    ) -> Self {
        SessionFuture {
            state: State::Sent {
                answer,
                session,
                token,
                replay: Box::new((inner, replay)),
            },
        }
    }

    fn boxed(
        future: impl Future<Output = Result<Response<ResponseBody<RB>>, BoxError>> + Send + 'static,
    ) -> Self {
        SessionFuture {
            state: State::Boxed {
                future: Box::pin(future),
            },
        }
    }

    fn failed(error: impl Into<BoxError>) -> Self {
        SessionFuture {
            state: State::Failed {
                error: Some(error.into()),
            },
        }
    }
}

impl<S, E, B, RB> Future for SessionFuture<S::Future, S, E, B, RB>
where
    S: Service<Request<B>, Response = Response<RB>> + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    E: RefreshEndpoint,
    B: Send + 'static,
    RB: Body + Send + 'static,
    RB::Data: Send,
    RB::Error: Send,
{
    type Output = Result<Response<ResponseBody<RB>>, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.as_mut().project().state;
        match state.as_mut().project() {
            StateProj::Sent { answer, .. } => {
                let answer = std::task::ready!(answer.poll(cx));
                let StateOwned::Sent {
                    session,
                    token,
                    replay,
                    ..
                } = state.as_mut().project_replace(State::Done)
                else {
                    unreachable!("the state was just matched")
                };
                let (parts, body) = answer.map_err(Into::into)?.into_parts();
                if !crate::peek::worth_reading::<E::Envelope>(parts.status, &parts.headers) {
                    return Poll::Ready(Ok(Response::from_parts(parts, ResponseBody::new(body))));
                }
                let (inner, replay) = *replay;
                let mut future: Boxed<RB> = Box::pin(classify_and_replay(
                    session, inner, token, replay, parts, body,
                ));
                let poll = future.as_mut().poll(cx);
                if poll.is_pending() {
                    state.set(State::Boxed { future });
                }
                poll
            }
            StateProj::Boxed { future } => {
                let output = std::task::ready!(future.as_mut().poll(cx));
                state.set(State::Done);
                Poll::Ready(output)
            }
            StateProj::Failed { error } => {
                let error = error.take().expect("a call polled after it completed");
                state.set(State::Done);
                Poll::Ready(Err(error))
            }
            StateProj::Done => panic!("a call polled after it completed"),
        }
    }
}

impl<F, S, E: RefreshEndpoint, B, RB: Body> std::fmt::Debug for SessionFuture<F, S, E, B, RB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Sent { .. } => "sent",
            State::Boxed { .. } => "refreshing or classifying",
            State::Failed { .. } => "failed",
            State::Done => "done",
        };
        f.debug_struct("SessionFuture")
            .field("state", &state)
            .finish()
    }
}

/// An answer worth classifying: returned as it is unless it says the token
/// expired and the request can be replayed; then one refresh and one replay.
async fn classify_and_replay<S, E, B, RB>(
    session: Session<E>,
    mut inner: S,
    token: Secret,
    replay: Option<Request<B>>,
    parts: http::response::Parts,
    body: RB,
) -> Result<Response<ResponseBody<RB>>, BoxError>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    E: RefreshEndpoint,
    RB: Body,
{
    let (expired, body) =
        crate::peek::classify::<E::Envelope, RB>(parts.status, &parts.headers, body).await;
    let (true, Some(mut replay)) = (expired, replay) else {
        return Ok(Response::from_parts(parts, body));
    };
    drop(body);
    tracing::debug!(
        endpoint = E::NAME,
        "access token rejected as expired; refreshing and replaying once"
    );
    let token = session.token_after_rejection(&token).await?;
    let value = session.token_header_value(&token)?;
    session
        .token_placement()
        .apply(replay.headers_mut(), &value);
    std::future::poll_fn(|cx| inner.poll_ready(cx))
        .await
        .map_err(Into::into)?;
    let response = inner.call(replay).await.map_err(Into::into)?;
    let (parts, body) = response.into_parts();
    Ok(Response::from_parts(parts, ResponseBody::new(body)))
}

/// Refuses a request whose destination — its URI, or `origin` joined with
/// its path — a credential may not travel to.
fn check_destination<B>(
    request: &Request<B>,
    origin: Option<&Url>,
    client: &crate::Client,
) -> Result<(), Error> {
    let uri = request.uri();
    if uri.scheme().is_some() && uri.authority().is_some() {
        return client.check_destination_uri(uri);
    }
    let origin = origin.ok_or_else(|| {
        ErrorKind::Invalid(
            "the request URI has no scheme and host; name the origin with SessionLayer::origin"
                .into(),
        )
    })?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let url = origin
        .join(path)
        .map_err(|e| ErrorKind::Invalid(format!("the request URI is invalid: {e}")))?;
    client.check_destination(&url)
}
