//! [`Session`]: keeps an access token fresh with a declared refresh endpoint.
//!
//! - **Lock-free reads.** While the token is fresh, [`Session::access_token`]
//!   takes no lock and writes nothing another thread reads: each thread
//!   keeps a copy of the token, checked against the session's version
//!   counter and a coarse clock reading (see `hot.rs`). A few nanoseconds a
//!   call, on any number of threads (BENCHMARKS.md).
//! - **Proactive refresh** when the access token is within the skew window of
//!   its expiry (the provider's expiry field, else the JWT `exp` claim, else
//!   never); **reactive refresh** when an [`Session::authorized`] call comes
//!   back "access token expired", replayed once.
//! - **Single-flight.** However many callers need a refresh, one request is
//!   sent; it runs in its own task, so a caller that gives up (its future
//!   dropped) cannot cancel it or leave it half-applied.
//! - **Rotation.** A new refresh token is saved to the [`Store`] (compare-and-
//!   swap) before any caller is handed the new access token.
//! - **Failures.** Retryable ones are retried with backoff and keep the
//!   tokens; terminal ones sign the session out, clear the store and release
//!   every waiter with [`ErrorKind::SignInAgain`].
//! - **Hostile answers.** A 2xx answer that does not decode (or makes user
//!   code panic) has its token fields salvaged
//!   ([`IntoTokens::salvage`]) and saved before the error is reported, so a
//!   rotated refresh token is never lost. A panic in user code called by the
//!   refresh (a custom `Envelope`, `Auth`, `IntoTokens` or `Store`) releases
//!   every waiter with an error and leaves the session usable.
//! - **No refresh storm.** Newly issued tokens are handed out for at least
//!   [`DEFAULT_MIN_REFRESH_INTERVAL`] (10 s) before a proactive refresh,
//!   even when the answer says they expire at once (`expires_in: 0`, an
//!   expired JWT). A reactive refresh (a rejected token) is not held back.
//! - **Bounded waits.** A caller waits for a refresh at most
//!   [`DEFAULT_MAX_WAIT`] (30 s), then gets a retryable
//!   [`ErrorKind::Timeout`] while the refresh goes on in the background.

mod hot;
mod placement;
mod pool;
mod refresh;
mod state;

pub use placement::TokenPlacement;
pub use pool::{DEFAULT_CAPACITY, MemoryStores, Sessions, SessionsBuilder, SignedOut, StoreFor};

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures_util::future::{BoxFuture, Either, Shared};
use tokio::sync::watch;

use crate::clock::{self, Clock, SystemClock};
use crate::retry::RetryPolicy;
use crate::store::{MemoryStore, Saved, Store};
use crate::tokens::{IntoTokens, Tokens};
use crate::{ApiError, Client, Endpoint, Error, ErrorKind, Secret};

use hot::Published;
use state::{Active, Kind, State};

/// The default skew: refresh this long before the access token expires.
pub const DEFAULT_REFRESH_SKEW: Duration = Duration::from_secs(120);
/// The default jitter added to the skew, so replicas do not refresh in step.
pub const DEFAULT_REFRESH_JITTER: Duration = Duration::from_secs(30);
/// The default shortest time between two proactive refreshes: newly issued
/// tokens are used this long even if they say they expire sooner.
pub const DEFAULT_MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(10);
/// The default longest time a caller waits for a refresh (all its attempts
/// and backoffs) before it gets a retryable [`ErrorKind::Timeout`].
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(30);

/// Whether a session can still be used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Status {
    /// It holds tokens.
    Active,
    /// The refresh token is dead; the user has to sign in again. Holds the
    /// provider's reason, when it gave one.
    SignedOut(Option<ApiError>),
}

/// Endpoints a session can refresh with: cloneable, shareable, and answering
/// with tokens.
pub trait RefreshEndpoint:
    Endpoint<Response: IntoTokens + Send> + Clone + Send + Sync + 'static
{
}

impl<E> RefreshEndpoint for E where
    E: Endpoint<Response: IntoTokens + Send> + Clone + Send + Sync + 'static
{
}

/// Keeps one account's tokens fresh. Cheap to clone; clones share everything.
///
/// ```no_run
/// use refresh_endpoint::providers::atproto::AtpSession;
/// use refresh_endpoint::session::Session;
/// use refresh_endpoint::store::FileStore;
/// use refresh_endpoint::{Client, refresh_endpoint, tokens::Tokens};
///
/// #[refresh_endpoint(path = "/xrpc/com.atproto.server.refreshSession",
///                    auth = refresh_bearer, envelope = xrpc, response = AtpSession)]
/// #[derive(Clone)]
/// struct RefreshSession;
///
/// # async fn run(saved: Tokens) -> Result<(), refresh_endpoint::Error> {
/// let client = Client::new("https://bsky.social")?;
/// let session = Session::builder(client.clone(), RefreshSession)
///     .tokens(saved)
///     .store(FileStore::new("session.json"))
///     .build()
///     .await?;
/// let token = session.access_token().await?; // refreshed first if needed
/// let me = session
///     .authorized(client.http().get("https://bsky.social/xrpc/com.atproto.server.getSession"))
///     .send()
///     .await?; // refreshed and replayed once if the token had expired
/// assert!(me.status().is_success()); // a reqwest::Response: its body streams
/// # let _ = token; Ok(()) }
/// ```
pub struct Session<E: RefreshEndpoint> {
    inner: Arc<Inner<E>>,
}

impl<E: RefreshEndpoint> Clone for Session<E> {
    fn clone(&self) -> Self {
        Session {
            inner: Arc::clone(&self.inner),
        }
    }
}

type Flight = Shared<BoxFuture<'static, Result<(), Error>>>;

/// In declaration order (`repr(C)`), what the hot path reads first, side by
/// side: with many sessions, each one it touches is likely a cache miss.
#[repr(C)]
struct Inner<E> {
    state: Published,
    /// The clock is the default [`SystemClock`], so the hot path may read
    /// the cheaper [`clock::coarse_unix_nanos`].
    system_clock: bool,
    clock: Arc<dyn Clock>,
    client: Client,
    endpoint: E,
    store: Arc<dyn Store>,
    skew: Duration,
    jitter: Duration,
    retry: RetryPolicy,
    /// How long to wait before another proactive attempt after one failed.
    cooldown: Duration,
    /// Newly issued tokens are not refreshed proactively before this long.
    min_refresh_interval: Duration,
    /// How long a caller waits for a refresh at most.
    max_wait: Duration,
    flight: Mutex<Option<Flight>>,
    /// Made on the first [`Session::watch_status`] (or sign-out): a watch
    /// channel is some 400 bytes, and most sessions are never watched.
    status: OnceLock<watch::Sender<Status>>,
    /// Where API requests carry the access token.
    placement: TokenPlacement,
    /// The last token handed to an API request and its header value, so
    /// that requests with the same token share one (none is built per
    /// request). Replaced when the token changes, emptied at sign-out.
    header_value: arc_swap::ArcSwapOption<(Secret, http::HeaderValue)>,
}

impl<E> Inner<E> {
    /// The status, as the current state tells it.
    fn status(&self) -> Status {
        match &self.state.load().kind {
            Kind::Active(_) => Status::Active,
            Kind::SignedOut(reason) => Status::SignedOut(reason.clone()),
        }
    }

    /// The status channel, made now if it was not: starting from the
    /// current state, so that a change published before is not missed.
    fn status_sender(&self) -> &watch::Sender<Status> {
        self.status.get_or_init(|| watch::channel(self.status()).0)
    }
}

impl<E: RefreshEndpoint> Session<E> {
    /// Starts building a session that refreshes with `endpoint` through `client`.
    pub fn builder(client: Client, endpoint: E) -> SessionBuilder<E> {
        SessionBuilder {
            client,
            endpoint,
            tokens: None,
            store: None,
            clock: None,
            skew: DEFAULT_REFRESH_SKEW,
            jitter: DEFAULT_REFRESH_JITTER,
            retry: RetryPolicy::default(),
            min_refresh_interval: DEFAULT_MIN_REFRESH_INTERVAL,
            max_wait: DEFAULT_MAX_WAIT,
            placement: TokenPlacement::bearer(),
        }
    }

    /// A valid access token: the current one, or a refreshed one when it is
    /// expired or about to expire. Fails with [`ErrorKind::SignInAgain`] once the
    /// session is signed out; with a retryable error when a needed refresh
    /// failed after its retries (the tokens are kept for the next call), or
    /// with a retryable [`ErrorKind::Timeout`] when the refresh takes longer
    /// than [`SessionBuilder::max_wait`] (it goes on in the background).
    pub async fn access_token(&self) -> Result<Secret, Error> {
        match self.fresh_token() {
            Some(token) => Ok(token),
            None => self.access_token_slow().await,
        }
    }

    /// The hot path: no lock, no allocation, no exact clock read; only this
    /// thread's copy of the token has its reference count bumped. Anything
    /// within [`clock::COARSE_LAG_NANOS`] of the refresh time goes to the
    /// slow path, which decides with the exact clock.
    #[inline]
    pub(crate) fn fresh_token(&self) -> Option<Secret> {
        let surely_now = if self.inner.system_clock {
            clock::coarse_unix_nanos() + clock::COARSE_LAG_NANOS
        } else {
            clock::unix_nanos(self.inner.clock.now())
        };
        self.inner.state.fresh_token(surely_now)
    }

    async fn access_token_slow(&self) -> Result<Secret, Error> {
        let state = self.inner.state.load_full();
        let active = match &state.kind {
            Kind::SignedOut(reason) => return Err(ErrorKind::SignInAgain(reason.clone()).into()),
            Kind::Active(active) => active,
        };
        // The hot path's rule, on the exact clock: fresh, or still valid
        // while a failed refresh cools down.
        let now = self.inner.clock.now();
        if clock::unix_nanos(now) < state.hand_out_until {
            return Ok(active.tokens.access_token.clone());
        }
        let usable = active.is_usable(now);
        if let Err(error) = self.refresh_from(state.generation).await {
            if usable && !error.is_terminal() {
                tracing::warn!(endpoint = E::NAME, %error, "proactive refresh failed; the current access token is still valid");
                return Ok(active.tokens.access_token.clone());
            }
            return Err(error);
        }
        self.current_token()
    }

    /// The token in the state as it is now, without refreshing.
    fn current_token(&self) -> Result<Secret, Error> {
        match &self.inner.state.load().kind {
            Kind::Active(active) if active.unsaved.is_none() => {
                Ok(active.tokens.access_token.clone())
            }
            Kind::Active(_) => Err(ErrorKind::Store {
                message: "the refreshed tokens could not be saved yet".into(),
                retryable: true,
            }
            .into()),
            Kind::SignedOut(reason) => Err(ErrorKind::SignInAgain(reason.clone()).into()),
        }
    }

    /// Refreshes now, whatever the expiry says (joining a refresh already
    /// under way), and returns the new access token. Waits at most
    /// [`SessionBuilder::max_wait`], like [`access_token`](Self::access_token).
    pub async fn refresh(&self) -> Result<Secret, Error> {
        let generation = self.inner.state.load().generation;
        self.refresh_from(generation).await?;
        self.current_token()
    }

    /// Refreshes unless the state has moved past `seen` already; at most one
    /// refresh runs at a time and every caller awaits the same one, for at
    /// most [`Inner::max_wait`].
    async fn refresh_from(&self, seen: u64) -> Result<(), Error> {
        let flight = {
            let mut slot = self.inner.flight.lock().unwrap_or_else(|p| p.into_inner());
            if self.inner.state.load().generation != seen {
                return Ok(());
            }
            match &*slot {
                Some(flight) => flight.clone(),
                None => {
                    let flight = refresh::spawn(Arc::clone(&self.inner));
                    *slot = Some(flight.clone());
                    flight
                }
            }
        };
        let deadline = self.inner.clock.deadline(self.inner.max_wait);
        match futures_util::future::select(flight, deadline).await {
            Either::Left((result, _)) => result,
            Either::Right(((), _)) => {
                tracing::debug!(
                    endpoint = E::NAME,
                    "gave up waiting for the refresh; it goes on in the background"
                );
                Err(ErrorKind::Timeout { endpoint: E::NAME }.into())
            }
        }
    }

    /// Refreshes after the provider rejected `used` as expired, unless the
    /// session has moved on to another token already.
    async fn refresh_after_rejection(&self, used: &Secret) -> Result<(), Error> {
        let state = self.inner.state.load_full();
        match &state.kind {
            Kind::Active(active) if &active.tokens.access_token == used => {
                self.refresh_from(state.generation).await
            }
            Kind::Active(_) => Ok(()),
            Kind::SignedOut(reason) => Err(ErrorKind::SignInAgain(reason.clone()).into()),
        }
    }

    /// The token to replay with after the provider rejected `used` as
    /// expired: refreshed once for however many callers saw `used` rejected.
    pub(crate) async fn token_after_rejection(&self, used: &Secret) -> Result<Secret, Error> {
        self.refresh_after_rejection(used).await?;
        self.current_token()
    }

    /// Where API requests carry the access token.
    #[cfg_attr(not(any(feature = "middleware", feature = "tower")), allow(dead_code))]
    pub(crate) fn token_placement(&self) -> &TokenPlacement {
        &self.inner.placement
    }

    /// The header value carrying `token` ([`TokenPlacement::value`]), built
    /// once per token and shared by the requests that carry it.
    pub(crate) fn token_header_value(&self, token: &Secret) -> Result<http::HeaderValue, Error> {
        // The token a session hands out is one shared value until it
        // changes: the same allocation means the same token.
        if let Some(cached) = &*self.inner.header_value.load()
            && cached.0.is_same(token)
        {
            return Ok(http::HeaderValue::clone(&cached.1));
        }
        let value = self.inner.placement.value(token)?;
        self.inner
            .header_value
            .store(Some(Arc::new((token.clone(), value.clone()))));
        Ok(value)
    }

    /// Wraps a request to the provider's API: the access token is added
    /// (`Authorization: Bearer` unless
    /// [`SessionBuilder::token_placement`] says otherwise), and if the answer
    /// says it expired, the session refreshes and the request is replayed
    /// once. The answer is a `reqwest::Response`: its body streams, with no
    /// size cap; [`ClientBuilder::api_timeout`](crate::ClientBuilder::api_timeout)
    /// bounds the wait for its headers.
    ///
    /// The token goes only where it belongs: plain `http://` off this
    /// machine (a host that is not loopback, or an HTTP proxy) is refused
    /// with [`ErrorKind::InsecureUrl`]; redirects are followed within the
    /// same origin only — a redirect to another scheme, host or port is
    /// returned as it is, not followed, so neither the token nor the client's
    /// secret headers reach another origin.
    pub fn authorized(&self, request: reqwest::RequestBuilder) -> Authorized<'_, E> {
        Authorized {
            session: self,
            request,
        }
    }

    /// The current tokens, or `None` once signed out.
    pub fn tokens(&self) -> Option<Tokens> {
        match &self.inner.state.load().kind {
            Kind::Active(active) => Some(active.tokens.clone()),
            Kind::SignedOut(_) => None,
        }
    }

    /// Whether the session is active or signed out.
    pub fn status(&self) -> Status {
        self.inner.status()
    }

    /// A receiver told of every status change, for an application that must
    /// know when the user has to sign in again.
    pub fn watch_status(&self) -> watch::Receiver<Status> {
        self.inner.status_sender().subscribe()
    }

    /// The client the session refreshes through.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }
}

impl<E: RefreshEndpoint> Session<E> {
    /// Held by no one but its owner, not refreshing, and every token saved:
    /// dropping it loses nothing.
    pub(crate) fn is_idle(&self) -> bool {
        Arc::strong_count(&self.inner) == 1
            && match &self.inner.state.load().kind {
                Kind::Active(active) => active.unsaved.is_none(),
                Kind::SignedOut(_) => true,
            }
    }

    /// Tells sessions apart (clones share it).
    pub(crate) fn id(&self) -> usize {
        Arc::as_ptr(&self.inner) as *const () as usize
    }
}

impl<E: RefreshEndpoint> fmt::Debug for Session<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("endpoint", &E::NAME)
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

/// A request that [`Session::authorized`] will send with the access token.
#[must_use = "call .send().await"]
pub struct Authorized<'s, E: RefreshEndpoint> {
    session: &'s Session<E>,
    request: reqwest::RequestBuilder,
}

impl<E: RefreshEndpoint> Authorized<'_, E> {
    /// Sends the request and returns the answer, its body not read. If the
    /// answer says the access token expired (per the endpoint's envelope,
    /// from at most a small prefix of an error answer's body), refreshes once
    /// and replays the request once; the replay's answer is returned whatever
    /// it is. A request whose body cannot be cloned (a stream) is not
    /// replayed: its answer is returned as it is, whole.
    pub async fn send(self) -> Result<reqwest::Response, Error> {
        let session = self.session;
        let token = session.access_token().await?;
        let replay = self.request.try_clone();
        let response = session.send_with(self.request, &token).await?;
        let (expired, response) = crate::peek::classify_reqwest::<E::Envelope>(response).await;
        if !expired {
            return Ok(response);
        }
        let Some(replay) = replay else {
            return Ok(response);
        };
        drop(response);
        tracing::debug!(
            endpoint = E::NAME,
            "access token rejected as expired; refreshing and replaying once"
        );
        let token = session.token_after_rejection(&token).await?;
        session.send_with(replay, &token).await
    }
}

impl<E: RefreshEndpoint> Session<E> {
    async fn send_with(
        &self,
        request: reqwest::RequestBuilder,
        token: &Secret,
    ) -> Result<reqwest::Response, Error> {
        let request = request.build().map_err(|e| {
            ErrorKind::Invalid(format!(
                "the request could not be built: {}",
                e.without_url()
            ))
        })?;
        let placement = &self.inner.placement;
        let value = self.token_header_value(token)?;
        self.inner
            .client
            .send_authorized(request, token, |request| {
                placement.apply(request.headers_mut(), &value)
            })
            .await
    }
}

/// Builds a [`Session`]; see [`Session::builder`].
#[must_use]
pub struct SessionBuilder<E> {
    client: Client,
    endpoint: E,
    tokens: Option<Tokens>,
    store: Option<Arc<dyn Store>>,
    clock: Option<Arc<dyn Clock>>,
    skew: Duration,
    jitter: Duration,
    retry: RetryPolicy,
    min_refresh_interval: Duration,
    max_wait: Duration,
    placement: TokenPlacement,
}

impl<E: RefreshEndpoint> SessionBuilder<E> {
    /// Where API requests carry the access token. Default
    /// `Authorization: Bearer <token>`.
    ///
    /// ```
    /// # use refresh_endpoint::session::{SessionBuilder, TokenPlacement};
    /// # fn f<E: refresh_endpoint::session::RefreshEndpoint>(builder: SessionBuilder<E>) -> Result<(), refresh_endpoint::Error> {
    /// let builder = builder.token_placement(TokenPlacement::header("X-Auth-Token")?);
    /// # let _ = builder; Ok(()) }
    /// ```
    pub fn token_placement(mut self, placement: TokenPlacement) -> Self {
        self.placement = placement;
        self
    }

    /// The tokens to start from, when the store holds none (a store that
    /// holds tokens wins: they may have been rotated since).
    pub fn tokens(mut self, tokens: Tokens) -> Self {
        self.tokens = Some(tokens);
        self
    }

    /// Where tokens are saved. Default: a new [`MemoryStore`].
    pub fn store(mut self, store: impl Store) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// Where tokens are saved, shared.
    pub fn shared_store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// The clock (tests pass a [`ManualClock`](crate::clock::ManualClock)).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Refresh this long before the access token expires. Default 120 s,
    /// and never more than half the lifetime a token has left when received.
    pub fn refresh_skew(mut self, skew: Duration) -> Self {
        self.skew = skew;
        self
    }

    /// Add up to this much to the skew, at random per token. Default 30 s.
    pub fn refresh_jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// How failed refreshes are retried.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Newly issued tokens are used at least this long before a proactive
    /// refresh, whatever expiry they announce. Default
    /// [`DEFAULT_MIN_REFRESH_INTERVAL`] (10 s): a provider answering
    /// `expires_in: 0` or an already-expired JWT gets one refresh per
    /// interval, not one per call. A refresh after the provider rejected
    /// the token ([`Session::authorized`]) or asked for with
    /// [`Session::refresh`] is not held back.
    pub fn min_refresh_interval(mut self, interval: Duration) -> Self {
        self.min_refresh_interval = interval;
        self
    }

    /// The longest a caller of [`Session::access_token`],
    /// [`Session::refresh`] or [`Session::authorized`] waits for a refresh,
    /// all attempts and backoffs included, measured on the session's
    /// [`Clock`]. Then it gets a retryable [`ErrorKind::Timeout`] (or the
    /// current access token, if still valid) and the refresh goes on in the
    /// background for the next caller. Default [`DEFAULT_MAX_WAIT`] (30 s).
    pub fn max_wait(mut self, limit: Duration) -> Self {
        self.max_wait = limit;
        self
    }

    /// Loads the store (or saves the given tokens to it) and starts the
    /// session. Fails with [`ErrorKind::SignInAgain`] when there are no tokens.
    pub async fn build(self) -> Result<Session<E>, Error> {
        let store = self.store.unwrap_or_else(|| Arc::new(MemoryStore::new()));
        let tokens = match (store.load().await?, self.tokens) {
            (Some(stored), _) => stored,
            (None, Some(given)) => match store.save(None, &given).await? {
                Saved::Written => given,
                Saved::Conflict(Some(stored)) => stored,
                Saved::Conflict(None) => given,
            },
            (None, None) => return Err(ErrorKind::SignInAgain(None).into()),
        };
        let system_clock = self.clock.is_none();
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let now = clock.now();
        Ok(Session {
            inner: Arc::new(Inner {
                client: self.client,
                endpoint: self.endpoint,
                store,
                clock,
                system_clock,
                skew: self.skew,
                jitter: self.jitter,
                retry: self.retry,
                cooldown: Duration::from_secs(5),
                min_refresh_interval: self.min_refresh_interval,
                max_wait: self.max_wait,
                state: Published::new(State::new(
                    0,
                    Kind::Active(Active::new(tokens, self.skew, self.jitter, now)),
                )),
                flight: Mutex::new(None),
                status: OnceLock::new(),
                placement: self.placement,
                header_value: Default::default(),
            }),
        })
    }
}
