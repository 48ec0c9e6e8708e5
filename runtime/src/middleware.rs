//! [`SessionMiddleware`]: a [`Session`] as a `reqwest-middleware`
//! [`Middleware`], for applications built on a `ClientWithMiddleware`
//! (feature `middleware`).
//!
//! ```no_run
//! use refresh_endpoint::middleware::SessionMiddleware;
//! # use refresh_endpoint::session::{RefreshEndpoint, Session};
//! # async fn run<E: RefreshEndpoint>(session: Session<E>) -> Result<(), Box<dyn std::error::Error>> {
//! // The session's own reqwest client follows no redirect; the middleware
//! // follows same-origin ones itself.
//! let http = reqwest_middleware::ClientBuilder::new(session.client().http().clone())
//!     .with(SessionMiddleware::new(session.clone()))
//!     .build();
//! let answer = http.get("https://api.example.com/files/1").send().await?;
//! let mut answer = answer; // a streaming reqwest::Response
//! while let Some(chunk) = answer.chunk().await? {
//!     let _ = chunk;
//! }
//! # Ok(()) }
//! ```

use http::Extensions;
use reqwest_middleware::{Middleware, Next};

use crate::client::{MAX_REDIRECTS, location_of, redirected, same_origin};
use crate::session::{RefreshEndpoint, Session};
use crate::{Error, ErrorKind, Secret};

/// Adds the session's access token to every request; when the answer says
/// the token expired (per the refresh endpoint's envelope, from at most a
/// small prefix of an error answer's body), refreshes once — one refresh for
/// however many requests saw the same token rejected — and replays the
/// request once if it can be cloned. The answer is the real streaming
/// `reqwest::Response`, whole.
///
/// The credential rules of the session hold: plain `http://` off this
/// machine is refused ([`ErrorKind::InsecureUrl`]); a 3xx answer is followed
/// within the same origin only, and returned as it is when it points to
/// another scheme, host or port. Build the `ClientWithMiddleware` on a
/// `reqwest::Client` that follows no redirect itself
/// (`redirect::Policy::none()`, as [`Client::http`](crate::Client::http)
/// has): a client that follows redirects sends the request, token included,
/// wherever the server points before any middleware sees the answer (reqwest
/// drops `Authorization` across hosts, but not another header).
///
/// Errors of the session (a refresh that failed, a session signed out) are
/// [`reqwest_middleware::Error::Middleware`] holding an [`Error`], scrubbed
/// of the token and the client's secrets.
pub struct SessionMiddleware<E: RefreshEndpoint> {
    session: Session<E>,
}

impl<E: RefreshEndpoint> SessionMiddleware<E> {
    /// A middleware authorizing requests with `session`.
    pub fn new(session: Session<E>) -> Self {
        SessionMiddleware { session }
    }

    /// The session.
    pub fn session(&self) -> &Session<E> {
        &self.session
    }

    /// Sends `request` with `token` down the chain, following same-origin
    /// redirects. `copy` is a copy of `request` as it was before the token
    /// was added (none when its body cannot be cloned): the next hop of a
    /// redirect is made from it, so the request is copied once, not per hop.
    async fn send(
        &self,
        mut request: reqwest::Request,
        copy: Option<&reqwest::Request>,
        token: &Secret,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let client = self.session.client();
        let placement = self.session.token_placement();
        // Errors only: the scrubber is built when one happens.
        let fail = |error: Error| {
            let mut scrubber = client.scrubber();
            scrubber.add(token);
            reqwest_middleware::Error::middleware(error.scrubbed(&scrubber))
        };
        let value = self.session.token_header_value(token).map_err(fail)?;
        // The copy of each hop after the first.
        let mut hop: Option<reqwest::Request> = None;
        for first in std::iter::once(true).chain(std::iter::repeat_n(false, MAX_REDIRECTS)) {
            client.check_destination(request.url()).map_err(fail)?;
            placement.apply(request.headers_mut(), &value);
            let copy = if first { copy } else { hop.as_ref() };
            let own_url = copy.is_none().then(|| request.url().clone());
            let response = next.clone().run(request, extensions).await?;
            let url = copy.map_or_else(|| own_url.as_ref().expect("kept"), |c| c.url());
            if !same_origin(response.url(), url) {
                tracing::warn!(
                    "the HTTP client under the session middleware followed a redirect to another origin; build it with redirect::Policy::none()"
                );
            }
            let status = response.status().as_u16();
            let next_request = match (location_of(status, response.headers(), url), copy) {
                (Some(next), Some(copy)) if same_origin(&next, url) => copy
                    .try_clone()
                    .and_then(|copy| redirected(copy, status, next)),
                _ => None,
            };
            let Some(next_request) = next_request else {
                return Ok(response);
            };
            hop = next_request.try_clone();
            request = next_request;
        }
        Err(fail(
            ErrorKind::Invalid(format!("more than {MAX_REDIRECTS} redirects")).into(),
        ))
    }

    /// An answer worth classifying: returned as it is unless it says the
    /// token expired and the request can be replayed; then one refresh and
    /// one replay.
    async fn classify_and_replay(
        &self,
        response: reqwest::Response,
        replay: Option<reqwest::Request>,
        token: Secret,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let (expired, response) = crate::peek::classify_reqwest::<E::Envelope>(response).await;
        let (true, Some(replay)) = (expired, replay) else {
            return Ok(response);
        };
        drop(response);
        tracing::debug!(
            endpoint = E::NAME,
            "access token rejected as expired; refreshing and replaying once"
        );
        let token = self
            .session
            .token_after_rejection(&token)
            .await
            .map_err(reqwest_middleware::Error::middleware)?;
        let copy = replay.try_clone();
        self.send(replay, copy.as_ref(), &token, extensions, next)
            .await
    }
}

impl<E: RefreshEndpoint> Clone for SessionMiddleware<E> {
    fn clone(&self) -> Self {
        SessionMiddleware {
            session: self.session.clone(),
        }
    }
}

impl<E: RefreshEndpoint> std::fmt::Debug for SessionMiddleware<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionMiddleware")
            .field("session", &self.session)
            .finish()
    }
}

#[async_trait::async_trait]
impl<E: RefreshEndpoint> Middleware for SessionMiddleware<E> {
    async fn handle(
        &self,
        request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let session = &self.session;
        let token = session
            .access_token()
            .await
            .map_err(reqwest_middleware::Error::middleware)?;
        // One copy, for a redirect's next hop or a replay after a refresh.
        let replay = request.try_clone();
        let response = self
            .send(request, replay.as_ref(), &token, extensions, next.clone())
            .await?;
        if !crate::peek::worth_reading::<E::Envelope>(response.status(), response.headers()) {
            return Ok(response);
        }
        // Boxed: the common path's future stays small.
        Box::pin(self.classify_and_replay(response, replay, token, extensions, next)).await
    }
}
