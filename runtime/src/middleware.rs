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

    /// The session's error as the middleware's, scrubbed of `token` and the
    /// client's secrets.
    fn fail(&self, token: &Secret, error: Error) -> reqwest_middleware::Error {
        let mut scrubber = self.session.client().scrubber();
        scrubber.add(token);
        reqwest_middleware::Error::middleware(error.scrubbed(&scrubber))
    }

    /// Checks where `request` goes and adds `token`.
    fn authorize(&self, request: &mut reqwest::Request, token: &Secret) -> Result<(), Error> {
        self.session.client().check_destination(request.url())?;
        let value = self.session.token_header_value(token)?;
        self.session
            .token_placement()
            .apply(request.headers_mut(), &value);
        Ok(())
    }

    /// Sends `request` with `token` down the chain, following same-origin
    /// redirects for at most `hops` requests. `copy` is a copy of `request`
    /// as it was before the token was added (none when its body cannot be
    /// cloned): a redirect's next hop is made from it.
    async fn send(
        &self,
        mut request: reqwest::Request,
        copy: Option<&reqwest::Request>,
        token: &Secret,
        extensions: &mut Extensions,
        next: Next<'_>,
        hops: usize,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        // The copy of each hop after the first.
        let mut hop: Option<reqwest::Request> = None;
        for first in std::iter::once(true).chain(std::iter::repeat_n(false, hops - 1)) {
            self.authorize(&mut request, token)
                .map_err(|e| self.fail(token, e))?;
            let copy = if first { copy } else { hop.as_ref() };
            let own_url = copy.is_none().then(|| request.url().clone());
            let response = next.clone().run(request, extensions).await?;
            let url = copy.map_or_else(|| own_url.as_ref().expect("kept"), |c| c.url());
            let Some(next_request) = next_hop(&response, copy, url) else {
                return Ok(response);
            };
            hop = next_request.try_clone();
            request = next_request;
        }
        Err(self.fail(
            token,
            ErrorKind::Invalid(format!("more than {MAX_REDIRECTS} redirects")).into(),
        ))
    }

    /// After a first answer that is a redirect or worth classifying: the
    /// redirects followed, then the answer returned as it is unless it says
    /// the token expired and the request can be replayed; then one refresh
    /// and one replay.
    async fn after_first_answer(
        &self,
        response: reqwest::Response,
        copy: Option<reqwest::Request>,
        url: reqwest::Url,
        token: Secret,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let response = match next_hop(&response, copy.as_ref(), &url) {
            Some(hop) => {
                let hop_copy = hop.try_clone();
                let hops = MAX_REDIRECTS;
                self.send(
                    hop,
                    hop_copy.as_ref(),
                    &token,
                    extensions,
                    next.clone(),
                    hops,
                )
                .await?
            }
            None => response,
        };
        let (expired, response) = crate::peek::classify_reqwest::<E::Envelope>(response).await;
        let (true, Some(replay)) = (expired, copy) else {
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
        let hops = MAX_REDIRECTS + 1;
        self.send(replay, copy.as_ref(), &token, extensions, next, hops)
            .await
    }
}

/// Warns when the HTTP client under the middleware followed a redirect to
/// another origin itself.
fn warn_if_followed(response: &reqwest::Response, url: &reqwest::Url) {
    if response.url() != url && !same_origin(response.url(), url) {
        tracing::warn!(
            "the HTTP client under the session middleware followed a redirect to another origin; build it with redirect::Policy::none()"
        );
    }
}

/// The next request of a same-origin redirect, made from `copy`; none for
/// an answer that is not a redirect, points to another origin, or answers a
/// request that cannot be copied.
fn next_hop(
    response: &reqwest::Response,
    copy: Option<&reqwest::Request>,
    url: &reqwest::Url,
) -> Option<reqwest::Request> {
    warn_if_followed(response, url);
    let status = response.status().as_u16();
    let next = location_of(status, response.headers(), url)?;
    if !same_origin(&next, url) {
        return None;
    }
    redirected(copy?.try_clone()?, status, next)
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
        mut request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let token = self
            .session
            .access_token()
            .await
            .map_err(reqwest_middleware::Error::middleware)?;
        // One copy, for a redirect's next hop or a replay after a refresh.
        let copy = request.try_clone();
        let own_url = copy.is_none().then(|| request.url().clone());
        self.authorize(&mut request, &token)
            .map_err(|e| self.fail(&token, e))?;
        let response = next.clone().run(request, extensions).await?;
        let status = response.status();
        if !status.is_redirection()
            && !crate::peek::worth_reading::<E::Envelope>(status, response.headers())
        {
            // The common case, kept small: an answer that is neither a
            // redirect nor worth classifying is the caller's.
            let url = copy
                .as_ref()
                .map_or_else(|| own_url.as_ref().expect("kept"), |c| c.url());
            warn_if_followed(&response, url);
            return Ok(response);
        }
        let url = match (&copy, own_url) {
            (Some(copy), _) => copy.url().clone(),
            (None, url) => url.expect("kept"),
        };
        Box::pin(self.after_first_answer(response, copy, url, token, extensions, next)).await
    }
}
