use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{Envelope, RawResponse};
use crate::{ApiError, Error, ErrorKind};

/// The OAuth 2.0 token endpoint envelope (RFC 6749 §5.1, §5.2): a 2xx body
/// is the response; an error is `{"error", "error_description", "error_uri"}`.
///
/// `invalid_grant` (the refresh token is invalid, expired or revoked) ends
/// the session; `temporarily_unavailable`, `server_error`, 429 and 5xx are
/// retryable; other errors (`invalid_client`, `invalid_request`, …) are
/// [`ErrorKind::Api`]: configuration problems that signing in again would not fix.
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

#[derive(Deserialize)]
struct Wire {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

impl Envelope for OAuth2 {
    fn unwrap<T: DeserializeOwned>(response: &RawResponse) -> Result<T, Error> {
        if response.is_success() {
            return response.json();
        }
        let Some(wire) = serde_json::from_slice::<Wire>(&response.body).ok() else {
            return Err(response.status_error());
        };
        let retryable = matches!(
            wire.error.as_str(),
            "temporarily_unavailable" | "server_error"
        );
        let mut error = ApiError::new(
            "oauth2",
            response.status,
            wire.error,
            wire.error_description.unwrap_or_default(),
        )
        .with_retry_after(response.retry_after());
        error.retryable |= retryable;
        if error.code == "invalid_grant" {
            Err(ErrorKind::SignInAgain(Some(error)).into())
        } else {
            Err(ErrorKind::Api(error).into())
        }
    }
}
