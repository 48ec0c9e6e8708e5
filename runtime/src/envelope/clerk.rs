use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{Envelope, RawResponse};
use crate::{ApiError, Error, ErrorKind};

/// The Clerk Backend API envelope: a 2xx body is the response; an error is
/// `{"errors": [{"message", "long_message", "code"}], "clerk_trace_id"}`.
///
/// 401 ends the session (Clerk answers it when the session cannot be
/// refreshed and a full sign-in is needed), except `clerk_key_*` errors: a
/// wrong secret key is the server's configuration, and signing the user out
/// would not help. 429 and 5xx are retryable; other errors are
/// [`ErrorKind::Api`], with the first error's code and long message. A 401
/// without Clerk's envelope (from a proxy) is an [`ErrorKind::Status`].
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

#[derive(Deserialize)]
struct Wire {
    errors: Vec<WireError>,
    #[serde(default)]
    clerk_trace_id: Option<String>,
}

#[derive(Deserialize)]
struct WireError {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    long_message: Option<String>,
}

impl Envelope for Clerk {
    fn unwrap<T: DeserializeOwned>(response: &RawResponse) -> Result<T, Error> {
        if response.is_success() {
            return response.json();
        }
        let wire: Option<Wire> = serde_json::from_slice(&response.body).ok();
        let Some(Wire {
            errors,
            clerk_trace_id,
        }) = wire
        else {
            return Err(if response.status == 401 {
                ErrorKind::SignInAgain(None).into()
            } else {
                response.status_error()
            });
        };
        let first = errors.into_iter().next();
        let (code, message) = first
            .map(|e| (e.code, e.long_message.unwrap_or(e.message)))
            .unwrap_or_default();
        let error = ApiError::new("clerk", response.status, code, message)
            .with_trace_id(clerk_trace_id)
            .with_retry_after(response.retry_after());
        if response.status == 401 && !error.code.starts_with("clerk_key") {
            Err(ErrorKind::SignInAgain(Some(error)).into())
        } else {
            Err(ErrorKind::Api(error).into())
        }
    }
}
