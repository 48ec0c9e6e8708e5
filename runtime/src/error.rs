//! [`Error`]: every way a call can fail, grouped by what the caller does next.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The error of every call in this crate.
///
/// Most callers only ask two questions: [`Error::is_retryable`] (try again
/// later, the session is intact) and [`Error::is_terminal`] (the refresh
/// token is dead: sign in again). [`Error::kind`] tells every cause apart.
/// No error ever contains a token: provider messages and body excerpts are
/// passed through [`redact`] first.
///
/// An `Error` is one pointer wide (the [`ErrorKind`] is boxed), so a
/// `Result<T, Error>` costs little more than a `T` to return and move:
/// errors are rare, results are moved on every call.
///
/// ```
/// use refresh_endpoint::{Error, ErrorKind};
///
/// fn next_step(error: &Error) -> &'static str {
///     if error.is_terminal() {
///         "ask the user to sign in again"
///     } else if error.is_retryable() {
///         "keep the session, retry later"
///     } else if let ErrorKind::InsecureUrl { .. } = error.kind() {
///         "use https"
///     } else {
///         "report a bug"
///     }
/// }
/// assert_eq!(size_of::<Error>(), size_of::<usize>());
/// ```
#[derive(Clone, thiserror::Error)]
#[error(transparent)]
pub struct Error(Box<ErrorKind>);

impl Error {
    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.0
    }

    /// What went wrong, by value.
    pub fn into_kind(self) -> ErrorKind {
        *self.0
    }

    /// Whether the same call may succeed later: timeouts, transport errors,
    /// HTTP 408, 425, 429 and 5xx, provider errors the provider marks
    /// temporary, and an unreachable store. A retryable failure never ends a
    /// session.
    pub fn is_retryable(&self) -> bool {
        self.0.is_retryable()
    }

    /// Whether the refresh token is dead and only a new sign-in helps
    /// ([`ErrorKind::SignInAgain`]).
    pub fn is_terminal(&self) -> bool {
        self.0.is_terminal()
    }

    /// How long the server asked the client to wait, from `Retry-After`, at
    /// most [`MAX_RETRY_AFTER`](crate::retry::MAX_RETRY_AFTER) (60 s, the
    /// longest a session waits).
    pub fn retry_after(&self) -> Option<Duration> {
        self.0.retry_after()
    }

    /// The provider's own error, for [`ErrorKind::Api`] and
    /// [`ErrorKind::SignInAgain`].
    pub fn api(&self) -> Option<&ApiError> {
        self.0.api()
    }

    /// This error with every secret `scrubber` knows removed from its texts.
    pub(crate) fn scrubbed(mut self, scrubber: &crate::scrub::Scrubber) -> Self {
        scrubber.scrub_error(&mut self.0);
        self
    }

    pub(crate) fn transport(endpoint: &'static str, error: reqwest::Error) -> Self {
        if error.is_timeout() {
            ErrorKind::Timeout { endpoint }.into()
        } else {
            ErrorKind::Transport {
                endpoint,
                source: Arc::new(error.without_url()),
            }
            .into()
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Error(Box::new(kind))
    }
}

/// Every cause of an [`Error`], grouped by what the caller does next.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request did not complete in time.
    #[error("{endpoint}: the request timed out")]
    Timeout {
        /// The endpoint that was called.
        endpoint: &'static str,
    },

    /// The connection failed or broke before a whole response arrived.
    #[error("{endpoint}: transport error: {source}")]
    Transport {
        /// The endpoint that was called.
        endpoint: &'static str,
        /// The underlying error (its URL removed).
        source: Arc<reqwest::Error>,
    },

    /// An HTTP status the endpoint's envelope does not explain, such as a
    /// proxy's 502 page.
    #[error("{endpoint}: unexpected HTTP status {status}: {excerpt}")]
    Status {
        /// The endpoint that was called.
        endpoint: &'static str,
        /// The HTTP status code.
        status: u16,
        /// The first bytes of the body, with anything token-like removed.
        excerpt: String,
        /// The `Retry-After` the server asked for, if any.
        retry_after: Option<Duration>,
    },

    /// An error answer that does not have the shape the endpoint's envelope
    /// declares (no JSON, or no error code where the envelope looks): its
    /// meaning is unknown, so it is neither terminal nor retryable, and a
    /// session does not retry it. Logged once per endpoint at WARN: declare
    /// the provider's error shape (`envelope = json(...)`) so that a dead
    /// refresh token ends the session.
    #[error(
        "{endpoint}: HTTP {status} answer without the declared error shape; declare the provider's error shape with `envelope = json(...)`: {excerpt}"
    )]
    Unrecognized {
        /// The endpoint that was called.
        endpoint: &'static str,
        /// The HTTP status code.
        status: u16,
        /// The first bytes of the body, with anything token-like removed.
        excerpt: String,
    },

    /// The provider answered with an error of its own that does not end the
    /// session (a bad request, a rate limit, a server-side failure).
    #[error("{0}")]
    Api(ApiError),

    /// The provider says the refresh token is dead (expired, revoked, the
    /// account taken down): the user has to sign in again.
    #[error("the session has ended; sign in again: {}", match .0 { Some(cause) => cause.to_string(), None => "no valid refresh token".to_owned() })]
    SignInAgain(Option<ApiError>),

    /// The response body is not what the endpoint declared.
    #[error("{endpoint}: could not decode the response at `{path}`: {message}")]
    Decode {
        /// The endpoint that was called.
        endpoint: &'static str,
        /// The JSON path that failed, such as `data.access_expires`.
        path: String,
        /// What was wrong (values removed).
        message: String,
    },

    /// The response body was larger than the client allows.
    #[error("{endpoint}: the response is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The endpoint that was called.
        endpoint: &'static str,
        /// The limit, from [`ClientBuilder::max_response_bytes`](crate::ClientBuilder::max_response_bytes).
        limit: usize,
    },

    /// The refresh endpoint answered with a redirect. Refresh requests never
    /// follow one: the body and headers carry credentials, and a redirect
    /// could send them to another origin. Neither retryable nor terminal: the
    /// client's base URL should name the final origin.
    #[error("{endpoint}: the server answered with a redirect (HTTP {status}){}; refresh requests never follow redirects: use the final URL as the base URL", match .location { Some(origin) => format!(" to {origin}"), None => String::new() })]
    Redirect {
        /// The endpoint that was called.
        endpoint: &'static str,
        /// The HTTP status (301, 302, 303, 307, 308, …).
        status: u16,
        /// The origin (`scheme://host:port`) the redirect pointed to, never
        /// its path or query.
        location: Option<String>,
    },

    /// A secret would have gone over plain `http://` off this machine: to a
    /// host that is not loopback, or through an HTTP proxy.
    #[error(
        "refusing to send credentials over plain http to {host}{}; use https, or opt in with ClientBuilder::allow_insecure_http",
        if *.through_proxy { " through the HTTP proxy set in the environment (add the host to NO_PROXY)" } else { "" }
    )]
    InsecureUrl {
        /// The host that was refused.
        host: String,
        /// Whether the host is loopback but an HTTP proxy from the environment
        /// (`HTTP_PROXY`, `ALL_PROXY`) would carry the request.
        through_proxy: bool,
    },

    /// The request could not be built: an invalid URL, header or parameter,
    /// or a missing client secret.
    #[error("invalid request: {0}")]
    Invalid(String),

    /// The token store failed.
    #[error("token store: {message}")]
    Store {
        /// What failed.
        message: String,
        /// Whether trying again later may succeed (the store was unreachable).
        retryable: bool,
    },
}

impl ErrorKind {
    /// Whether the same call may succeed later: timeouts, transport errors,
    /// HTTP 408, 425, 429 and 5xx, provider errors the provider marks
    /// temporary, and an unreachable store. A retryable failure never ends a
    /// session.
    pub fn is_retryable(&self) -> bool {
        match self {
            ErrorKind::Timeout { .. } | ErrorKind::Transport { .. } => true,
            ErrorKind::Status { status, .. } => status_is_retryable(*status),
            ErrorKind::Api(api) => api.retryable,
            ErrorKind::Store { retryable, .. } => *retryable,
            ErrorKind::SignInAgain(_)
            | ErrorKind::Decode { .. }
            | ErrorKind::Unrecognized { .. }
            | ErrorKind::TooLarge { .. }
            | ErrorKind::Redirect { .. }
            | ErrorKind::InsecureUrl { .. }
            | ErrorKind::Invalid(_) => false,
        }
    }

    /// Whether the refresh token is dead and only a new sign-in helps.
    pub fn is_terminal(&self) -> bool {
        matches!(self, ErrorKind::SignInAgain(_))
    }

    /// How long the server asked the client to wait, from `Retry-After`, at
    /// most [`MAX_RETRY_AFTER`](crate::retry::MAX_RETRY_AFTER).
    pub fn retry_after(&self) -> Option<Duration> {
        let asked = match self {
            ErrorKind::Status { retry_after, .. } => *retry_after,
            ErrorKind::Api(api) => api.retry_after,
            _ => None,
        };
        asked.map(|asked| asked.min(crate::retry::MAX_RETRY_AFTER))
    }

    /// The provider's own error, for [`ErrorKind::Api`] and [`ErrorKind::SignInAgain`].
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            ErrorKind::Api(api) | ErrorKind::SignInAgain(Some(api)) => Some(api),
            _ => None,
        }
    }
}

/// Whether an HTTP status means "try again later".
pub(crate) fn status_is_retryable(status: u16) -> bool {
    matches!(status, 408 | 425 | 429 | 500..=599)
}

/// An error the provider reported in its own envelope.
///
/// ```
/// use refresh_endpoint::ApiError;
///
/// let error = ApiError::new("xrpc", 400, "InvalidRequest", "A request body was provided");
/// assert_eq!(error.code, "InvalidRequest");
/// assert!(!error.retryable);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApiError {
    /// Which envelope reported it: `xrpc`, `code_msg_data`, `clerk`, `oauth2`, or a user envelope's name.
    pub provider: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// The provider's error code: `ExpiredToken`, `40020`, `invalid_grant`, `signed_out`, …
    pub code: String,
    /// The provider's message, token-like text removed.
    pub message: String,
    /// The provider's trace or correlation id, for its support.
    pub trace_id: Option<String>,
    /// Whether the provider says trying again later may succeed.
    pub retryable: bool,
    /// The `Retry-After` the provider asked for.
    pub retry_after: Option<Duration>,
}

impl ApiError {
    /// An error with no trace id, retryable when the status is (429, 5xx).
    pub fn new(
        provider: &'static str,
        status: u16,
        code: impl Into<String>,
        message: impl AsRef<str>,
    ) -> Self {
        ApiError {
            provider,
            status,
            code: code.into(),
            message: redact(message.as_ref(), 300),
            trace_id: None,
            retryable: status_is_retryable(status),
            retry_after: None,
        }
    }

    /// Sets the trace or correlation id.
    pub fn with_trace_id(mut self, trace_id: Option<String>) -> Self {
        self.trace_id = trace_id;
        self
    }

    /// Sets whether the error is temporary.
    pub fn with_retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    /// Sets the `Retry-After` delay.
    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} error `{}`", self.provider, self.code)?;
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        write!(f, " (HTTP {}", self.status)?;
        if let Some(trace_id) = &self.trace_id {
            write!(f, ", trace id {trace_id}")?;
        }
        f.write_str(")")
    }
}

impl std::error::Error for ApiError {}

/// Shortens `text` to at most `max` characters, folds white space, and
/// replaces anything that looks like a token with `[redacted]`.
///
/// While a response is being unwrapped, the secrets its request carried
/// (tokens, client secret, secret fields and headers) are removed first, by
/// value, in any encoding — before the text is shortened.
///
/// A word counts as token-like when it is 20 characters or more of the
/// characters tokens are made of (letters, digits, `-_.~+/=`) and holds a
/// digit or a dot-separated JWT shape. Provider messages and body excerpts go
/// through this before they are stored in an [`Error`].
///
/// ```
/// use refresh_endpoint::error::redact;
///
/// let text = "bad token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig4d5 here";
/// assert_eq!(redact(text, 100), "bad token [redacted] here");
/// ```
pub fn redact(text: &str, max: usize) -> String {
    match crate::scrub::Scrubber::scrub_active(text) {
        Some(scrubbed) => redact_shape(&scrubbed, max),
        None => redact_shape(text, max),
    }
}

fn redact_shape(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max + 16));
    for word in text.split_whitespace() {
        if out.chars().count() >= max {
            out.push('…');
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        if looks_like_token(word) {
            out.push_str("[redacted]");
        } else if word.contains(['?', '&', '=', '#']) {
            // A URL or a form: its parameters one by one.
            let mut piece = String::new();
            for c in word.chars().chain(['\0']) {
                if matches!(c, '?' | '&' | '=' | '#' | '\0') {
                    if looks_like_token(&piece) {
                        out.push_str("[redacted]");
                    } else {
                        out.push_str(&piece);
                    }
                    if c != '\0' {
                        out.push(c);
                    }
                    piece.clear();
                } else {
                    piece.push(c);
                }
            }
        } else {
            out.extend(word.chars().take(max));
        }
    }
    if out.chars().count() > max + 1 {
        out = out.chars().take(max).collect::<String>() + "…";
    }
    out
}

fn looks_like_token(word: &str) -> bool {
    let word = word.trim_matches(|c: char| "\"'`,;:()[]{}<>".contains(c));
    word.len() >= 20
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.~+/=".contains(c))
        && word.chars().any(|c| c.is_ascii_digit() || c == '.')
        && !word.contains("://")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_jwts_and_long_opaque_tokens() {
        assert_eq!(
            redact("token=abcdefghijklmnopqrstuvwx1234 rest", 100),
            "[redacted] rest"
        );
        assert_eq!(redact("plain words stay", 100), "plain words stay");
        assert_eq!(
            redact(
                "see https://cb.example/x?code=1&token=abcdefghijklmnopqrstuvwx1234",
                100
            ),
            "see https://cb.example/x?code=1&token=[redacted]"
        );
        assert_eq!(
            redact("<html>\n  <h1>502 Bad Gateway</h1>", 100),
            "<html> <h1>502 Bad Gateway</h1>"
        );
    }

    #[test]
    fn redact_shortens() {
        let long = "word ".repeat(100);
        let short = redact(&long, 20);
        assert!(short.chars().count() <= 21, "{short}");
        assert!(short.ends_with('…'));
    }

    #[test]
    fn classification() {
        let e: Error = ErrorKind::Status {
            endpoint: "x",
            status: 503,
            excerpt: String::new(),
            retry_after: None,
        }
        .into();
        assert!(e.is_retryable() && !e.is_terminal());
        assert!(Error::from(ErrorKind::SignInAgain(None)).is_terminal());
        assert!(!Error::from(ErrorKind::SignInAgain(None)).is_retryable());
        let e: Error = ErrorKind::Status {
            endpoint: "x",
            status: 404,
            excerpt: String::new(),
            retry_after: None,
        }
        .into();
        assert!(!e.is_retryable());
    }
}
