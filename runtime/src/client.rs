//! [`Client`]: the base URL, the HTTP connection pool and the limits every call shares.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{
    CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, USER_AGENT,
};
use reqwest::{Method, Url};

use crate::auth::{Auth, Credentials};
use crate::endpoint::Endpoint;
use crate::envelope::{Envelope, RawResponse};
use crate::exchange::{Exchange, Fetched};
use crate::scrub::Scrubber;
use crate::sending::Sending;
use crate::{Error, ErrorKind, Secret};

/// The most same-origin redirects an authorized request follows.
pub(crate) const MAX_REDIRECTS: usize = 10;

/// The `User-Agent` sent unless another is set.
pub const DEFAULT_USER_AGENT: &str = concat!("refresh-endpoint/", env!("CARGO_PKG_VERSION"));
/// How long a request may take by default, connection and body included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an authorized API request may wait for its answer's headers by
/// default (its body then streams without a time limit).
pub const DEFAULT_API_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest response body read by default: 1 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 1 << 20;

/// Talks to one provider: its base URL, one reusable connection pool, default
/// headers, a timeout, a response size cap and the client-level secret.
///
/// Cloning is cheap and shares the pool.
///
/// **Credentials stay where they belong.** A refresh request never follows a
/// redirect (a 3xx answer is [`ErrorKind::Redirect`]); credentials never go
/// over plain `http://` off this machine — to a host that is not loopback, or
/// through an HTTP proxy set in the environment — unless
/// [`ClientBuilder::allow_insecure_http`] says so; every secret a request
/// carried is scrubbed, by value, from the errors its answer produces.
///
/// ```
/// use std::time::Duration;
/// use refresh_endpoint::Client;
///
/// let client = Client::builder("https://api.example.com")
///     .secret("sk_test_123")
///     .timeout(Duration::from_secs(10))
///     .build()
///     .unwrap();
/// assert_eq!(client.base_url(), "https://api.example.com");
/// assert!(!format!("{client:?}").contains("sk_test_123"));
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    base_url: String,
    /// `base_url` parsed, and whether credentials may go to its origin
    /// (checked once, when the client is built).
    base: Url,
    base_allowed: bool,
    http: reqwest::Client,
    /// Whether `http` is the user's own, which may follow redirects (the
    /// client's own follows none).
    http_may_follow: bool,
    secret: Option<Secret>,
    client_id: Option<String>,
    headers: HeaderMap,
    timeout: Option<Duration>,
    max_response_bytes: usize,
    api_timeout: Option<Duration>,
    /// Plain http off this machine allowed (the user opted in).
    allow_insecure_http: bool,
    /// The proxy rules of the environment (`HTTP_PROXY`, `NO_PROXY`, …), as
    /// reqwest applies them.
    proxies: hyper_util::client::proxy::matcher::Matcher,
    /// Values of headers marked secret, scrubbed from errors.
    secret_headers: Vec<Secret>,
}

impl Client {
    /// A client with the defaults; fails on a URL that is not `http(s)://`.
    pub fn new(base_url: impl AsRef<str>) -> Result<Self, Error> {
        Self::builder(base_url).build()
    }

    /// A builder to set the secret, timeout, headers and limits.
    pub fn builder(base_url: impl AsRef<str>) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.as_ref().to_owned(),
            secret: None,
            client_id: None,
            headers: HeaderMap::new(),
            timeout: Some(DEFAULT_TIMEOUT),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            api_timeout: Some(DEFAULT_API_TIMEOUT),
            allow_insecure_http: false,
            http: None,
            secret_headers: Vec::new(),
            error: None,
        }
    }

    /// The base URL, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// The underlying `reqwest` client, to make other calls on the same pool.
    pub fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// Calls `endpoint` and unwraps its response with the endpoint's envelope.
    ///
    /// `refresh_token` is needed by `auth = refresh_bearer` endpoints; the
    /// methods the attribute generates (`send`, `send_blocking`) call this.
    pub fn send<'a, E: Endpoint + ?Sized>(
        &'a self,
        endpoint: &'a E,
        refresh_token: Option<&'a Secret>,
    ) -> Sending<'a, E> {
        Sending::new(self, endpoint, refresh_token)
    }

    /// Calls `endpoint` and returns the whole response, not unwrapped.
    ///
    /// A redirect is not followed: it is [`ErrorKind::Redirect`].
    pub async fn execute<E: Endpoint + ?Sized>(
        &self,
        endpoint: &E,
        refresh_token: Option<&Secret>,
    ) -> Result<RawResponse, Error> {
        Ok(self.execute_scrubbed(endpoint, refresh_token).await?.0)
    }

    /// [`Client::execute`], also returning the secrets the request carried.
    pub(crate) async fn execute_scrubbed<E: Endpoint + ?Sized>(
        &self,
        endpoint: &E,
        refresh_token: Option<&Secret>,
    ) -> Result<(RawResponse, Scrubber), Error> {
        let (request, scrubber) = self.prepare(endpoint, refresh_token)?;
        self.execute_prepared(E::NAME, request, scrubber).await
    }

    /// Sends a request [`Client::prepare`] built, refusing a redirect. Not
    /// generic: compiled once, whatever the endpoint.
    pub(crate) async fn execute_prepared(
        &self,
        name: &'static str,
        request: reqwest::Request,
        scrubber: Scrubber,
    ) -> Result<(RawResponse, Scrubber), Error> {
        let fetched = self.exchange(name, request).await;
        let response = self.refuse_redirect(name, fetched, &scrubber)?;
        Ok((response, scrubber))
    }

    /// The exchange of a request [`Client::prepare`] built: one timer for
    /// the whole of it, connection and body included.
    pub(crate) fn exchange(&self, name: &'static str, request: reqwest::Request) -> Exchange {
        self.exchange_within(name, request, self.inner.timeout)
    }

    /// The exchange of `request` on the client's pool and size cap, within
    /// `timeout`.
    fn exchange_within(
        &self,
        name: &'static str,
        request: reqwest::Request,
        timeout: Option<Duration>,
    ) -> Exchange {
        Exchange::new(
            &self.inner.http,
            self.inner.max_response_bytes,
            name,
            request,
            timeout,
            self.inner.http_may_follow,
        )
    }

    /// The end of [`Client::exchange`]: the answer, unless it is a redirect
    /// (the HTTP client may be the user's own and have followed it); every
    /// error scrubbed of the request's secrets.
    pub(crate) fn refuse_redirect(
        &self,
        name: &'static str,
        fetched: Result<(RawResponse, Fetched), Error>,
        scrubber: &Scrubber,
    ) -> Result<RawResponse, Error> {
        let (response, fetched) = fetched.map_err(|e| e.scrubbed(scrubber))?;
        // The answer's URL is kept for a 3xx answer or one that came
        // through a redirect: either is refused.
        match fetched.url {
            None => Ok(response),
            Some(url) => {
                Err(redirect_refused(name, &response, *url, fetched.moved).scrubbed(scrubber))
            }
        }
    }

    /// Builds the request for `endpoint` without sending it.
    pub fn build_request<E: Endpoint + ?Sized>(
        &self,
        endpoint: &E,
        refresh_token: Option<&Secret>,
    ) -> Result<reqwest::Request, Error> {
        let mut request = self.prepare(endpoint, refresh_token)?.0;
        *request.timeout_mut() = self.inner.timeout;
        Ok(request)
    }

    /// Builds the request and gathers every secret it carries: the refresh
    /// token, the client secret, `Secret`-typed fields, sensitive headers.
    pub(crate) fn prepare<E: Endpoint + ?Sized>(
        &self,
        endpoint: &E,
        refresh_token: Option<&Secret>,
    ) -> Result<(reqwest::Request, Scrubber), Error> {
        let mut scrubber = self.scrubber();
        if let Some(token) = refresh_token {
            scrubber.add(token);
        }
        let (request, has_secret_fields) = scrubber.capture(|| self.build(endpoint, refresh_token));
        let request = request.map_err(|e| e.scrubbed(&scrubber))?;
        for value in request.headers().values().filter(|v| v.is_sensitive()) {
            scrubber.add_header_value(value.as_bytes());
        }
        if E::Auth::SENDS_SECRET || E::CARRIES_REFRESH_TOKEN || has_secret_fields {
            self.check_destination(request.url())?;
        }
        Ok((request, scrubber))
    }

    fn build<E: Endpoint + ?Sized>(
        &self,
        endpoint: &E,
        refresh_token: Option<&Secret>,
    ) -> Result<reqwest::Request, Error> {
        // The base URL is parsed once, when the client is built; each call
        // writes only the path.
        let base = &self.inner.base;
        let mut path = String::with_capacity(64);
        path.push_str(base.path().trim_end_matches('/'));
        endpoint.write_path(&mut path)?;
        let mut url = base.clone();
        url.set_path(&path);
        let mut query = Vec::new();
        endpoint.write_query(&mut query)?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut request = reqwest::Request::new(E::METHOD, url);
        // The timeout is the exchange's own (`execute_prepared`), not reqwest's.
        self.apply_headers(&mut request);
        endpoint.write_headers(request.headers_mut())?;
        if let Some(body) = endpoint.body()? {
            request
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(body.content_type));
            *request.body_mut() = Some(body.bytes.into());
        }
        let credentials = Credentials::new(refresh_token, self.inner.secret.as_ref())
            .with_client_id(self.inner.client_id.as_deref());
        E::Auth::apply(&mut request, credentials)?;
        // RFC 9110 §8.6: a POST, PUT or PATCH without a body says so; some
        // proxies answer 411 Length Required otherwise.
        if request.body().is_none()
            && matches!(
                *request.method(),
                Method::POST | Method::PUT | Method::PATCH
            )
        {
            request
                .headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        }
        Ok(request)
    }

    /// A scrubber knowing the client's own secrets.
    pub(crate) fn scrubber(&self) -> Scrubber {
        let mut scrubber = Scrubber::default();
        if let Some(secret) = &self.inner.secret {
            scrubber.add(secret);
        }
        for secret in &self.inner.secret_headers {
            scrubber.add(secret);
        }
        scrubber
    }

    /// Refuses a URL that a credential may not travel to: plain `http://`
    /// to a host that is not loopback, or to any host through an HTTP proxy
    /// from the environment — unless the user opted in with
    /// [`ClientBuilder::allow_insecure_http`].
    pub(crate) fn check_destination(&self, url: &Url) -> Result<(), Error> {
        if self.inner.base_allowed && same_origin(url, &self.inner.base) {
            // The base URL's origin, checked when the client was built.
            return Ok(());
        }
        self.check_new_destination(url)
    }

    /// [`Client::check_destination`] for an `http::Uri` (tower's requests);
    /// a URI that is not absolute is refused.
    #[cfg(feature = "tower")]
    pub(crate) fn check_destination_uri(&self, uri: &http::Uri) -> Result<(), Error> {
        let base = &self.inner.base;
        // The base URL's authority as the URL parser writes it (lowercase,
        // no default port) is the same origin; any other spelling takes the
        // full check.
        if self.inner.base_allowed
            && uri.scheme_str() == Some(base.scheme())
            && uri.authority().map(|a| a.as_str()) == Some(base.authority())
        {
            return Ok(());
        }
        let url = Url::parse(&uri.to_string())
            .map_err(|e| ErrorKind::Invalid(format!("the request URI is invalid: {e}")))?;
        self.check_new_destination(&url)
    }

    fn check_new_destination(&self, url: &Url) -> Result<(), Error> {
        check_url(url, self.inner.allow_insecure_http, &self.inner.proxies)
    }

    /// Sends a request of the application's API, `authorize` adding the
    /// access token, following redirects within the same origin only (never
    /// to another scheme, host or port: such a 3xx answer is returned as it
    /// is). Plain http off this machine is refused. The answer is not read:
    /// the API timeout runs until its headers arrive, and its body streams.
    pub(crate) async fn send_authorized(
        &self,
        mut request: reqwest::Request,
        token: &Secret,
        authorize: impl Fn(&mut reqwest::Request),
    ) -> Result<reqwest::Response, Error> {
        let mut scrubber = self.scrubber();
        scrubber.add(token);
        for _ in 0..=MAX_REDIRECTS {
            self.check_destination(request.url())
                .map_err(|e| e.scrubbed(&scrubber))?;
            authorize(&mut request);
            for value in request.headers().values().filter(|v| v.is_sensitive()) {
                scrubber.add_header_value(value.as_bytes());
            }
            let replay = request.try_clone();
            let url = request.url().clone();
            let response = self
                .execute_api(request)
                .await
                .map_err(|e| e.scrubbed(&scrubber))?;
            let next = match (
                location_of(response.status().as_u16(), response.headers(), &url),
                replay,
            ) {
                (Some(next), Some(replay)) if same_origin(&next, &url) => {
                    redirected(replay, response.status().as_u16(), next)
                }
                _ => None,
            };
            match next {
                Some(next) => request = next,
                None => return Ok(response),
            }
        }
        Err(ErrorKind::Invalid(format!("more than {MAX_REDIRECTS} redirects")).into())
    }

    /// Sends an API request; the API timeout runs until the answer's headers.
    async fn execute_api(&self, request: reqwest::Request) -> Result<reqwest::Response, Error> {
        const NAME: &str = "authorized";
        tracing::debug!(endpoint = NAME, method = %request.method(), "sending an authorized request");
        let send = self.inner.http.execute(request);
        let result = match self.inner.api_timeout {
            Some(limit) => tokio::time::timeout(limit, send)
                .await
                .map_err(|_| Error::from(ErrorKind::Timeout { endpoint: NAME }))?,
            None => send.await,
        };
        result.map_err(|e| Error::transport(NAME, e))
    }

    /// Starts a request to a URL of the same provider (relative paths are
    /// joined to the base URL), with the client's defaults applied.
    pub fn request(&self, method: Method, path_or_url: &str) -> Result<reqwest::Request, Error> {
        let url = if path_or_url.starts_with("http://") || path_or_url.starts_with("https://") {
            path_or_url.to_owned()
        } else {
            format!("{}{}", self.inner.base_url, path_or_url)
        };
        let url =
            Url::parse(&url).map_err(|e| ErrorKind::Invalid(format!("the URL is invalid: {e}")))?;
        let mut request = reqwest::Request::new(method, url);
        self.apply_defaults(&mut request);
        Ok(request)
    }

    fn apply_defaults(&self, request: &mut reqwest::Request) {
        self.apply_headers(request);
        *request.timeout_mut() = self.inner.timeout;
    }

    fn apply_headers(&self, request: &mut reqwest::Request) {
        for (name, value) in &self.inner.headers {
            request.headers_mut().insert(name, value.clone());
        }
    }

    /// Sends a request and reads its whole body, within the size cap.
    ///
    /// The request is sent as it is: it is not checked for plain http, and
    /// whether a redirect is followed is up to the HTTP client (the default
    /// one follows none).
    pub async fn fetch(
        &self,
        endpoint: &'static str,
        request: reqwest::Request,
    ) -> Result<RawResponse, Error> {
        Ok(self.exchange_within(endpoint, request, None).await?.0)
    }
}

/// Unwraps `response` with `Env`, every text of a failure scrubbed of the
/// request's secrets.
pub(crate) fn unwrap_scrubbed<Env: Envelope + ?Sized, T: serde::de::DeserializeOwned>(
    response: &RawResponse,
    scrubber: &Scrubber,
) -> Result<T, Error> {
    scrubber
        .run(|| Env::unwrap(response))
        .map_err(|e| e.scrubbed(scrubber))
}

/// The error of an answer that is a redirect (a 3xx answer, or one `moved`
/// through a redirect the HTTP client followed, from `url`).
#[cold]
fn redirect_refused(name: &'static str, response: &RawResponse, url: Url, moved: bool) -> Error {
    let location = if moved {
        Some(url)
    } else {
        location(response, &url)
    };
    let error: Error = ErrorKind::Redirect {
        endpoint: name,
        status: response.status,
        location: location.map(|url| url.origin().ascii_serialization()),
    }
    .into();
    tracing::warn!(endpoint = name, %error, "refusing to follow a redirect");
    error
}

/// Where a 3xx answer points, resolved against the request's URL.
fn location(response: &RawResponse, url: &Url) -> Option<Url> {
    location_of(response.status, &response.headers, url)
}

/// Where an answer with `status` and `headers` points if it is a 3xx,
/// resolved against the request's URL.
pub(crate) fn location_of(status: u16, headers: &HeaderMap, url: &Url) -> Option<Url> {
    if !(300..400).contains(&status) {
        return None;
    }
    let value = headers.get(reqwest::header::LOCATION)?.to_str().ok()?;
    url.join(value).ok()
}

/// Whether two URLs have the same origin: scheme, host and port (the
/// scheme's default when none is written).
pub(crate) fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host() == b.host()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// The request that follows a redirect: 303, and 301/302 after a POST,
/// become a GET without a body; 307 and 308 repeat the request as it was.
pub(crate) fn redirected(
    mut request: reqwest::Request,
    status: u16,
    next: Url,
) -> Option<reqwest::Request> {
    match status {
        301..=303 => {
            if status == 303 && request.method() != Method::HEAD || request.method() == Method::POST
            {
                *request.method_mut() = Method::GET;
                *request.body_mut() = None;
                request.headers_mut().remove(CONTENT_TYPE);
                request
                    .headers_mut()
                    .remove(reqwest::header::CONTENT_LENGTH);
            }
        }
        307 | 308 => {}
        _ => return None,
    }
    *request.url_mut() = next;
    Some(request)
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base_url)
            .field("secret", &self.inner.secret)
            .field("timeout", &self.inner.timeout)
            .field("max_response_bytes", &self.inner.max_response_bytes)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Client`]; see [`Client::builder`].
#[must_use]
pub struct ClientBuilder {
    base_url: String,
    secret: Option<Secret>,
    client_id: Option<String>,
    headers: HeaderMap,
    timeout: Option<Duration>,
    max_response_bytes: usize,
    api_timeout: Option<Duration>,
    allow_insecure_http: bool,
    http: Option<reqwest::Client>,
    secret_headers: Vec<Secret>,
    error: Option<Error>,
}

impl ClientBuilder {
    /// The client-level secret, sent by `auth = bearer` endpoints (such as a
    /// Clerk secret key).
    pub fn secret(mut self, secret: impl Into<Secret>) -> Self {
        self.secret = Some(secret.into());
        self
    }

    /// The OAuth 2.0 client id and secret (RFC 6749 §2.3.1), sent by
    /// `auth = basic` (HTTP Basic) and `auth = client_body` (in the body)
    /// endpoints. The secret is the client-level secret of [`Self::secret`].
    ///
    /// ```
    /// let client = refresh_endpoint::Client::builder("https://auth.example.com")
    ///     .client_credentials("my-app", "s3cret")
    ///     .build()
    ///     .unwrap();
    /// assert!(!format!("{client:?}").contains("s3cret"));
    /// ```
    pub fn client_credentials(
        mut self,
        client_id: impl Into<String>,
        secret: impl Into<Secret>,
    ) -> Self {
        self.client_id = Some(client_id.into());
        self.secret = Some(secret.into());
        self
    }

    /// The client id of a public client (no secret), sent in the body by
    /// `auth = client_body` endpoints.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// The time a whole request may take; `None` for no limit. Default 30 s.
    pub fn timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.timeout = timeout.into();
        self
    }

    /// The largest response body read before failing with
    /// [`ErrorKind::TooLarge`]. Default 1 MiB.
    pub fn max_response_bytes(mut self, limit: usize) -> Self {
        self.max_response_bytes = limit;
        self
    }

    /// How long an authorized API request
    /// ([`Session::authorized`](crate::session::Session::authorized)) may
    /// wait for the answer's headers; `None` for no limit. Default 30 s. The
    /// body then streams without a time limit or a size cap: the timeout and
    /// size cap of [`ClientBuilder::timeout`] and
    /// [`ClientBuilder::max_response_bytes`] apply to refresh answers only.
    pub fn api_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.api_timeout = timeout.into();
        self
    }

    /// The `User-Agent`. Default `refresh-endpoint/<version>`.
    pub fn user_agent(self, user_agent: &str) -> Self {
        self.header("user-agent", user_agent)
    }

    /// A header sent with every request. For an API key or any other
    /// credential use [`ClientBuilder::secret_header`].
    pub fn header(self, name: &str, value: &str) -> Self {
        self.insert_header(name, value, false)
    }

    /// A header carrying a credential (an API key), sent with every request:
    /// marked sensitive (hidden from `Debug`), scrubbed from every error,
    /// refused over plain http off this machine, and never sent to another
    /// origin by a redirect.
    ///
    /// ```
    /// use refresh_endpoint::Client;
    ///
    /// let client = Client::builder("https://api.example.com")
    ///     .secret_header("X-Api-Key", "key_live_123")
    ///     .build()
    ///     .unwrap();
    /// assert!(!format!("{client:?}").contains("key_live_123"));
    /// ```
    pub fn secret_header(self, name: &str, value: impl Into<Secret>) -> Self {
        let value = value.into();
        let mut this = self.insert_header(name, value.expose(), true);
        this.secret_headers.push(value);
        this
    }

    fn insert_header(mut self, name: &str, value: &str, secret: bool) -> Self {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(name), Ok(mut value)) => {
                value.set_sensitive(secret);
                self.headers.insert(name, value);
            }
            _ => self.error = Some(ErrorKind::Invalid(format!("invalid header `{name}`")).into()),
        }
        self
    }

    /// Allows sending credentials over plain `http://` to a host that is not
    /// loopback, or through an HTTP proxy. Off by default: tokens would cross
    /// the network in clear text.
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.allow_insecure_http = allow;
        self
    }

    /// Uses this `reqwest` client (its pool, proxy and TLS settings). The
    /// timeout and headers of this builder still apply to each request.
    ///
    /// Give it `redirect(reqwest::redirect::Policy::none())`, as the default
    /// client has: a refresh answer that arrives through a redirect is
    /// refused ([`ErrorKind::Redirect`]), but by then the credentials were
    /// sent to the redirect's target.
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// Checks the URL and builds the client.
    pub fn build(self) -> Result<Client, Error> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let url = Url::parse(&self.base_url)
            .map_err(|e| ErrorKind::Invalid(format!("the base URL is invalid: {e}")))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(ErrorKind::Invalid(format!(
                "the base URL must start with https:// or http://, not {}://",
                url.scheme()
            ))
            .into());
        }
        let mut headers = self.headers;
        headers
            .entry(USER_AGENT)
            .or_insert(HeaderValue::from_static(DEFAULT_USER_AGENT));
        let http_may_follow = self.http.is_some();
        let http = match self.http {
            Some(http) => http,
            None => {
                // The client's own reqwest client sends the user agent on
                // every request, as reqwest sends its defaults, rather than
                // having it copied into each request.
                let user_agent = headers.remove(USER_AGENT).expect("set above");
                reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .redirect(reqwest::redirect::Policy::none())
                    .referer(false)
                    .user_agent(user_agent)
                    .build()
                    .map_err(|e| {
                        ErrorKind::Invalid(format!("could not start the HTTP client: {e}"))
                    })?
            }
        };
        let proxies = hyper_util::client::proxy::matcher::Matcher::from_env();
        let base_allowed = check_url(&url, self.allow_insecure_http, &proxies).is_ok();
        Ok(Client {
            inner: Arc::new(Inner {
                base_url: self.base_url.trim_end_matches('/').to_owned(),
                base: url,
                base_allowed,
                http,
                http_may_follow,
                secret: self.secret,
                client_id: self.client_id,
                headers,
                timeout: self.timeout,
                max_response_bytes: self.max_response_bytes,
                api_timeout: self.api_timeout,
                allow_insecure_http: self.allow_insecure_http,
                proxies,
                secret_headers: self.secret_headers,
            }),
        })
    }
}

fn is_loopback(url: &Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether a credential may travel to `url`: see
/// [`Client::check_destination`].
fn check_url(
    url: &Url,
    allow_insecure_http: bool,
    proxies: &hyper_util::client::proxy::matcher::Matcher,
) -> Result<(), Error> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_insecure_http => Ok(()),
        "http" => {
            let host = url.host_str().unwrap_or_default().to_owned();
            if !is_loopback(url) {
                return Err(ErrorKind::InsecureUrl {
                    host,
                    through_proxy: false,
                }
                .into());
            }
            let proxied = url
                .as_str()
                .parse::<http::Uri>()
                .is_ok_and(|uri| proxies.intercept(&uri).is_some());
            if proxied {
                return Err(ErrorKind::InsecureUrl {
                    host,
                    through_proxy: true,
                }
                .into());
            }
            Ok(())
        }
        other => Err(ErrorKind::Invalid(format!(
            "a URL must start with https:// or http://, not {other}://"
        ))
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(base: &str, url: &str) -> Result<(), Error> {
        Client::new(base)
            .unwrap()
            .check_destination(&Url::parse(url).unwrap())
    }

    /// The base origin is checked once; any other origin, even one that
    /// differs by the scheme or the port only, takes the whole check.
    #[test]
    fn only_the_base_origin_skips_the_check() {
        assert!(check("https://api.example.test", "https://api.example.test/a").is_ok());
        assert!(check("https://api.example.test", "http://api.example.test/a").is_err());
        assert!(check("https://api.example.test", "http://api.example.test:443/a").is_err());
        assert!(check("http://127.0.0.1:8080", "http://127.0.0.1:8080/a").is_ok());
        assert!(check("http://127.0.0.1:8080", "http://10.0.0.1:8080/a").is_err());
        let plain = Client::new("http://api.example.test").unwrap();
        let same = Url::parse("http://api.example.test/a").unwrap();
        assert!(plain.check_destination(&same).is_err());
    }

    #[cfg(feature = "tower")]
    #[test]
    fn a_uri_matches_the_base_only_as_the_url_parser_writes_it() {
        let client = Client::new("http://127.0.0.1:8080").unwrap();
        let check = |uri: &str| client.check_destination_uri(&uri.parse().unwrap());
        assert!(check("http://127.0.0.1:8080/a").is_ok());
        assert!(check("http://localhost:8080/a").is_ok());
        assert!(check("http://user@127.0.0.1:8080/a").is_ok());
        assert!(check("http://example.test:8080/a").is_err());
        assert!(check("http://127.0.0.1.example.test:8080/a").is_err());
        assert!(check("ftp://127.0.0.1:8080/a").is_err());
        let secure = Client::new("https://api.example.test").unwrap();
        let check = |uri: &str| secure.check_destination_uri(&uri.parse().unwrap());
        assert!(check("https://api.example.test/a").is_ok());
        assert!(check("http://api.example.test/a").is_err());
        assert!(check("https://api.example.test:8443/a").is_ok());
    }
}
