use serde::de::DeserializeOwned;

use super::{Envelope, JsonEnvelope, Outcome, RawResponse, Rule};
use crate::Error;

/// The OAuth 2.0 token endpoint envelope (RFC 6749 §5.1, §5.2): a 2xx body
/// is the response; an error is `{"error", "error_description", "error_uri"}`.
///
/// `invalid_grant` (the refresh token is invalid, expired or revoked) ends
/// the session; `temporarily_unavailable`, `server_error`, 429 and 5xx are
/// retryable; other errors (`invalid_client`, `invalid_request`, …) are
/// [`ErrorKind::Api`](crate::ErrorKind::Api): configuration problems that
/// signing in again would not fix. A 2xx answer carrying an `error` is an
/// error too (GitHub answers HTTP 200 `{"error":"bad_refresh_token"}`).
///
/// A preset of [`JsonEnvelope`]: [`OAuth2::ENVELOPE`]; extend it with
/// `envelope = oauth2(terminal = ["bad_refresh_token"])`.
///
/// ```
/// use refresh_endpoint::envelope::{Envelope, OAuth2, RawResponse};
///
/// let dead = RawResponse {
///     endpoint: "token",
///     status: 400,
///     headers: Default::default(),
///     body: br#"{"error":"invalid_grant","error_description":"refresh token revoked"}"#.to_vec(),
/// };
/// assert!(OAuth2::unwrap::<serde_json::Value>(&dead).unwrap_err().is_terminal());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct OAuth2;

impl OAuth2 {
    /// The declaration.
    pub const ENVELOPE: JsonEnvelope = JsonEnvelope::new("oauth2")
        .code("error")
        .message(&["error_description"])
        .rules(&[
            Rule::code("invalid_grant", Outcome::Terminal),
            Rule::code("temporarily_unavailable", Outcome::Retryable),
            Rule::code("server_error", Outcome::Retryable),
        ]);
}

impl Envelope for OAuth2 {
    fn unwrap<T: DeserializeOwned>(response: &RawResponse) -> Result<T, Error> {
        Self::ENVELOPE.unwrap(response)
    }
}
