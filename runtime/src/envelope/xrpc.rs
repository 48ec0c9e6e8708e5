use serde::de::DeserializeOwned;

use super::{Envelope, JsonEnvelope, Outcome, RawResponse, Rule};
use crate::Error;

/// The AT Protocol (XRPC) envelope: a 2xx body is the response, an error is
/// `{"error": "Name", "message": "text"}`.
///
/// `ExpiredToken`, `InvalidToken`, `AccountTakedown` and any 401 end the
/// session ([`ErrorKind::SignInAgain`](crate::ErrorKind::SignInAgain)), as in
/// the reference client; 429 and 5xx are retryable; other errors are
/// [`ErrorKind::Api`](crate::ErrorKind::Api). An authorized call is
/// refreshed and replayed on 401, or on 400 `ExpiredToken`. A preset of
/// [`JsonEnvelope`]: [`Xrpc::ENVELOPE`].
///
/// ```
/// use refresh_endpoint::envelope::{Envelope, RawResponse, Xrpc};
///
/// let revoked = RawResponse {
///     endpoint: "refreshSession",
///     status: 400,
///     headers: Default::default(),
///     body: br#"{"error":"ExpiredToken","message":"Token has been revoked"}"#.to_vec(),
/// };
/// let error = Xrpc::unwrap::<serde_json::Value>(&revoked).unwrap_err();
/// assert!(error.is_terminal());
/// assert_eq!(error.api().unwrap().code, "ExpiredToken");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Xrpc;

impl Xrpc {
    /// The declaration.
    pub const ENVELOPE: JsonEnvelope = JsonEnvelope::new("xrpc")
        .code("error")
        .message(&["message"])
        .rules(&[
            Rule::code("ExpiredToken", Outcome::Terminal),
            Rule::code("InvalidToken", Outcome::Terminal),
            Rule::code("AccountTakedown", Outcome::Terminal),
            Rule {
                status: 401,
                code: "",
                outcome: Outcome::Terminal,
            },
            Rule {
                status: 400,
                code: "ExpiredToken",
                outcome: Outcome::Expired,
            },
        ]);
}

impl Envelope for Xrpc {
    fn unwrap<T: DeserializeOwned>(response: &RawResponse) -> Result<T, Error> {
        Self::ENVELOPE.unwrap(response)
    }

    fn access_token_expired(response: &RawResponse) -> bool {
        Self::ENVELOPE.access_token_expired(response)
    }
}
