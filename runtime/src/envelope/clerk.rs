use serde::de::DeserializeOwned;

use super::{Envelope, JsonEnvelope, Outcome, RawResponse, Rule};
use crate::Error;

/// The Clerk Backend API envelope: a 2xx body is the response; an error is
/// `{"errors": [{"message", "long_message", "code"}], "clerk_trace_id"}`.
///
/// 401 ends the session (Clerk answers it when the session cannot be
/// refreshed and a full sign-in is needed), except `clerk_key_*` errors: a
/// wrong secret key is the server's configuration, and signing the user out
/// would not help. 429 and 5xx are retryable; other errors are
/// [`ErrorKind::Api`](crate::ErrorKind::Api), with the first error's code
/// and long message. A 401 without Clerk's envelope (from a proxy) is an
/// [`ErrorKind::Unrecognized`](crate::ErrorKind::Unrecognized). A preset of
/// [`JsonEnvelope`]: [`Clerk::ENVELOPE`].
///
/// ```
/// use refresh_endpoint::envelope::{Clerk, Envelope, RawResponse};
///
/// let signed_out = RawResponse {
///     endpoint: "refresh",
///     status: 401,
///     headers: Default::default(),
///     body: br#"{"errors":[{"message":"Signed out","long_message":"You are signed out","code":"signed_out"}],"clerk_trace_id":"t1"}"#.to_vec(),
/// };
/// let error = Clerk::unwrap::<serde_json::Value>(&signed_out).unwrap_err();
/// assert!(error.is_terminal());
/// assert_eq!(error.api().unwrap().code, "signed_out");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Clerk;

impl Clerk {
    /// The declaration.
    pub const ENVELOPE: JsonEnvelope = JsonEnvelope::new("clerk")
        .code("/errors/0/code")
        .message(&["/errors/0/long_message", "/errors/0/message"])
        .trace_id("clerk_trace_id")
        .rules(&[
            Rule {
                status: 401,
                code: "clerk_key*",
                outcome: Outcome::Keep,
            },
            Rule {
                status: 401,
                code: "",
                outcome: Outcome::Terminal,
            },
        ]);
}

impl Envelope for Clerk {
    fn unwrap<T: DeserializeOwned>(response: &RawResponse) -> Result<T, Error> {
        Self::ENVELOPE.unwrap(response)
    }
}
