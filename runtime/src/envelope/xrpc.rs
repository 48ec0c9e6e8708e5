use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{Envelope, RawResponse};
use crate::{ApiError, Error, ErrorKind};

/// The AT Protocol (XRPC) envelope: a 2xx body is the response, an error is
/// `{"error": "Name", "message": "text"}`.
///
/// `ExpiredToken`, `InvalidToken`, `AccountTakedown` and any 401 end the
/// session ([`ErrorKind::SignInAgain`]), as in the reference client; 429 and 5xx
/// are retryable; other errors are [`ErrorKind::Api`]. An authorized call is
/// refreshed and replayed on 401, or on 400 `ExpiredToken`.
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

/// XRPC errors that mean the refresh token is dead.
const TERMINAL: [&str; 3] = ["ExpiredToken", "InvalidToken", "AccountTakedown"];

#[derive(Deserialize)]
struct Wire {
    error: String,
    #[serde(default)]
    message: Option<String>,
}

fn parse_error(response: &RawResponse) -> Option<Wire> {
    serde_json::from_slice(&response.body).ok()
}

impl Envelope for Xrpc {
    fn unwrap<T: DeserializeOwned>(response: &RawResponse) -> Result<T, Error> {
        if response.is_success() {
            return response.json();
        }
        let Some(wire) = parse_error(response) else {
            return Err(response.status_error());
        };
        let error = ApiError::new(
            "xrpc",
            response.status,
            wire.error,
            wire.message.unwrap_or_default(),
        )
        .with_retry_after(response.retry_after());
        if response.status == 401 || TERMINAL.contains(&error.code.as_str()) {
            Err(ErrorKind::SignInAgain(Some(error)).into())
        } else {
            Err(ErrorKind::Api(error).into())
        }
    }

    fn access_token_expired(response: &RawResponse) -> bool {
        response.status == 401
            || (response.status == 400
                && parse_error(response).is_some_and(|wire| wire.error == "ExpiredToken"))
    }
}
