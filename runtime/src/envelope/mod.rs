//! [`Envelope`]: how a provider wraps its answers, and how to unwrap them.
//!
//! The built-in envelopes, chosen with `envelope = …` on the attribute:
//!
//! | key | type | provider |
//! |---|---|---|
//! | `plain` | [`Plain`] | a 2xx body is the response |
//! | `code_msg_data` | [`CodeMsgData`] | Cloudreve: always HTTP 200, `code == 0` is success |
//! | `xrpc` | [`Xrpc`] | AT Protocol: `{"error", "message"}` |
//! | `clerk` | [`Clerk`] | Clerk: `{"errors": [...], "clerk_trace_id"}` |
//! | `oauth2` | [`OAuth2`] | RFC 6749 §5.2: `{"error", "error_description"}` |
//!
//! Each is a preset of the declarative [`JsonEnvelope`], kept beside its
//! provider in [`providers`](crate::providers). A provider of your own
//! declares its envelope in the attribute (`envelope = json(code = "error",
//! terminal = ["invalid_grant"])`), extends a preset
//! (`envelope = oauth2(terminal = ["bad_refresh_token"])`), or takes a type
//! implementing [`Envelope`]; see its documentation for an example.

mod json;
mod plain;
#[cfg(test)]
mod prop_tests;

pub use crate::providers::atproto::Xrpc;
pub use crate::providers::clerk::Clerk;
pub use crate::providers::cloudreve::CodeMsgData;
pub use crate::providers::oauth2::OAuth2;
pub use json::{Declared, Declares, JsonEnvelope, Outcome, Rule, Success};
pub use plain::Plain;

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind, redact};

/// A whole HTTP response, as read from the wire (its size capped).
///
/// Its `Debug` shows the status, the header names and the body's length,
/// never a header value or the body: either may hold tokens.
#[derive(Clone)]
pub struct RawResponse {
    /// The endpoint's name, for errors and logs.
    pub endpoint: &'static str,
    /// The HTTP status code.
    pub status: u16,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Vec<u8>,
}

impl std::fmt::Debug for RawResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawResponse")
            .field("endpoint", &self.endpoint)
            .field("status", &self.status)
            .field(
                "headers",
                &self.headers.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
            )
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl RawResponse {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Decodes the body as JSON into `T`; a failure names the JSON path. An
    /// empty body reads as `null`, so `()` and `Option<T>` accept it.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        let body: &[u8] = if self.body.iter().all(u8::is_ascii_whitespace) {
            b"null"
        } else {
            &self.body
        };
        decode_json(self.endpoint, body, "")
    }

    /// The delay asked for by `Retry-After` (seconds or an HTTP date), at
    /// most [`MAX_RETRY_AFTER`](crate::retry::MAX_RETRY_AFTER) (60 s): a
    /// server cannot park a caller for days.
    pub fn retry_after(&self) -> Option<Duration> {
        let value = self.headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
        let asked = match value.parse::<u64>() {
            Ok(seconds) => Duration::from_secs(seconds),
            Err(_) => {
                let at = httpdate::parse_http_date(value).ok()?;
                at.duration_since(SystemTime::now()).unwrap_or_default()
            }
        };
        Some(asked.min(crate::retry::MAX_RETRY_AFTER))
    }

    /// An [`ErrorKind::Status`] for this response, with a redacted excerpt of the body.
    pub fn status_error(&self) -> Error {
        ErrorKind::Status {
            endpoint: self.endpoint,
            status: self.status,
            excerpt: {
                let mut text = String::from_utf8_lossy(&self.body[..self.body.len().min(4096)]);
                if self.body.len() > 4096 {
                    // Marks the cut, so that a secret cut in half is found.
                    text.to_mut().push('…');
                }
                redact(&text, 200)
            },
            retry_after: self.retry_after(),
        }
        .into()
    }
}

/// Unwraps the responses of one kind of provider.
///
/// `unwrap` turns a whole response into the endpoint's response type or a
/// classified [`Error`]; `access_token_expired` tells the session when an
/// authorized API call failed because the access token expired, so it can
/// refresh and replay.
///
/// A provider of your own, answering `{"ok": true, "result": …}` or
/// `{"ok": false, "reason": "…"}`:
///
/// ```
/// use refresh_endpoint::{ApiError, Error, ErrorKind};
/// use refresh_endpoint::envelope::{Envelope, RawResponse};
/// use serde::de::DeserializeOwned;
///
/// pub struct OkResult;
///
/// impl Envelope for OkResult {
///     fn unwrap<T: DeserializeOwned>(response: &RawResponse) -> Result<T, Error> {
///         #[derive(serde::Deserialize)]
///         struct Wire<T> { ok: bool, result: Option<T>, reason: Option<String> }
///         if !response.is_success() {
///             return Err(response.status_error());
///         }
///         let wire: Wire<T> = response.json()?;
///         match (wire.ok, wire.result) {
///             (true, Some(result)) => Ok(result),
///             _ => {
///                 let reason = wire.reason.unwrap_or_default();
///                 let error = ApiError::new("ok_result", response.status, reason.clone(), reason.clone());
///                 if reason == "session_revoked" {
///                     Err(ErrorKind::SignInAgain(Some(error)).into())
///                 } else {
///                     Err(ErrorKind::Api(error).into())
///                 }
///             }
///         }
///     }
/// }
/// ```
pub trait Envelope {
    /// Unwraps a response of the refresh endpoint.
    fn unwrap<T: DeserializeOwned>(response: &RawResponse) -> Result<T, Error>;

    /// Whether a 2xx answer to an authorized API call may still mean "the
    /// access token has expired" (Cloudreve answers every error with HTTP
    /// 200), so that its body is read — when its declared length is small —
    /// to classify it. Default `false`: only error answers are looked at.
    const EXPIRY_ON_SUCCESS: bool = false;

    /// Whether a response to an authorized API call means "the access token
    /// has expired". By default: HTTP 401.
    fn access_token_expired(response: &RawResponse) -> bool {
        response.status == 401
    }
}

/// Decodes JSON, reporting the failing path (prefixed with `prefix`) and a
/// message without the values.
pub(crate) fn decode_json<T: DeserializeOwned>(
    endpoint: &'static str,
    body: &[u8],
    prefix: &str,
) -> Result<T, Error> {
    // The common case, a body that decodes, without tracking the path
    // (which records every key on the way); a body that does not is decoded
    // again, tracking it, for the error.
    if let Ok(value) = serde_json::from_slice(body) {
        return Ok(value);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let (path, error) = match serde_path_to_error::deserialize::<_, T>(&mut deserializer) {
        Ok(value) => match deserializer.end() {
            Ok(()) => return Ok(value),
            Err(error) => (".".to_owned(), error),
        },
        Err(error) => (error.path().to_string(), error.into_inner()),
    };
    let path = match (prefix.is_empty(), path.as_str()) {
        (true, _) => path,
        (false, ".") => prefix.to_owned(),
        (false, _) => format!("{prefix}.{path}"),
    };
    Err(ErrorKind::Decode {
        endpoint,
        path,
        message: without_values(&error.to_string()),
    }
    .into())
}

/// serde's messages quote the offending value (`invalid type: string "…"`);
/// a value may be a token, so quoted parts are dropped.
fn without_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quoted = false;
    for c in message.chars() {
        if c == '"' {
            if !quoted {
                out.push_str("\"…\"");
            }
            quoted = !quoted;
        } else if !quoted {
            out.push(c);
        }
    }
    redact(&out, 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_names_the_path_and_hides_the_value() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Inner {
            expires: u64,
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Outer {
            data: Inner,
        }
        let err =
            decode_json::<Outer>("t", br#"{"data":{"expires":"secret-value"}}"#, "").unwrap_err();
        match err.into_kind() {
            ErrorKind::Decode { path, message, .. } => {
                assert_eq!(path, "data.expires");
                assert!(!message.contains("secret-value"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn retry_after_is_clamped() {
        let response = |value: &str| RawResponse {
            endpoint: "t",
            status: 429,
            headers: HeaderMap::from_iter([(RETRY_AFTER, value.parse().unwrap())]),
            body: Vec::new(),
        };
        let cap = crate::retry::MAX_RETRY_AFTER;
        assert_eq!(response("7").retry_after(), Some(Duration::from_secs(7)));
        assert_eq!(response("999999").retry_after(), Some(cap));
        assert_eq!(response("18446744073709551615").retry_after(), Some(cap));
        let far = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(86_400 * 365));
        assert_eq!(response(&far).retry_after(), Some(cap));
        let past = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(60));
        assert_eq!(response(&past).retry_after(), Some(Duration::ZERO));
        assert_eq!(response("soon").retry_after(), None);
    }

    #[test]
    fn decode_rejects_trailing_garbage_and_html() {
        assert!(matches!(
            decode_json::<serde_json::Value>("t", b"<html>502</html>", "")
                .map_err(Error::into_kind),
            Err(ErrorKind::Decode { .. })
        ));
        assert!(matches!(
            decode_json::<serde_json::Value>("t", b"{} x", "").map_err(Error::into_kind),
            Err(ErrorKind::Decode { .. })
        ));
    }
}
