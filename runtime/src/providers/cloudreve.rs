//! Cloudreve v4: `POST /api/v4/session/token/refresh`: the response type
//! [`Token`], the [`CodeMsgData`] envelope and the ready-made
//! [`RefreshToken`] endpoint.

use std::time::SystemTime;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::envelope::{Envelope, JsonEnvelope, Outcome, RawResponse, Rule, Success};
use crate::tokens::{IntoTokens, Issued};
use crate::{Error, Secret};

/// `POST /api/v4/session/token/refresh` with `{"refresh_token": "…"}`; the
/// answer's `data` is a [`Token`]. A session fills the token in.
#[crate::refresh_endpoint(crate = crate, path = "/api/v4/session/token/refresh", auth = body,
                          envelope = code_msg_data, response = Token)]
#[derive(Debug, Clone, Default)]
pub struct RefreshToken {
    /// The refresh token.
    #[refresh_token]
    pub refresh_token: Secret,
}

impl IntoTokens for Token {
    fn into_tokens(self, _: SystemTime) -> Result<Issued, Error> {
        Ok(Issued::access(self.access_token)
            .with_refresh_token(Some(self.refresh_token))
            .with_access_expires_at(Some(self.access_expires))
            .with_refresh_expires_at(Some(self.refresh_expires)))
    }
}

/// The `data` of a successful refresh: a new token pair and their expiries.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use refresh_endpoint::providers::cloudreve::Token;
///
/// let token: Token = serde_json::from_str(r#"{
///     "access_token": "a.b.c", "access_expires": "2025-04-26T15:58:28.456762+08:00",
///     "refresh_token": "d.e.f", "refresh_expires": "2025-10-23T14:58:28.456762+08:00"
/// }"#).unwrap();
/// let expected = UNIX_EPOCH + Duration::from_micros(1_745_654_308_456_762);
/// assert_eq!(token.access_expires, expected);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Token {
    /// The access token, sent as `Authorization: Bearer`.
    pub access_token: Secret,
    /// When the access token expires.
    #[serde(with = "rfc3339")]
    pub access_expires: SystemTime,
    /// The refresh token (Cloudreve does not rotate it).
    pub refresh_token: Secret,
    /// When the refresh token expires.
    #[serde(with = "rfc3339")]
    pub refresh_expires: SystemTime,
}

mod rfc3339 {
    use super::*;

    pub fn serialize<S: Serializer>(at: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
        // Fallible: `OffsetDateTime::from` panics outside its range.
        let since = at
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(serde::ser::Error::custom)?;
        let text = OffsetDateTime::from_unix_timestamp_nanos(since.as_nanos() as i128)
            .map_err(serde::ser::Error::custom)?
            .format(&Rfc3339)
            .map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(deserializer)?;
        OffsetDateTime::parse(&text, &Rfc3339)
            .map(SystemTime::from)
            .map_err(|_| serde::de::Error::custom("expected an RFC 3339 timestamp"))
    }
}

/// The `{"code", "msg", "data"}` envelope of Cloudreve v4: the HTTP status is
/// always 200 and `code == SUCCESS` (0 unless set with
/// `envelope = code_msg_data(success = N)`) means `data` holds the response.
///
/// Code 40020 ("Failed to issue token pair") and 401 ("Login required") end
/// the session; codes from 50000 up are server-side failures and retryable;
/// any other code is [`ErrorKind::Api`](crate::ErrorKind::Api). The
/// `correlation_id` becomes the trace id. An authorized call is refreshed
/// and replayed when it answers code 401. A preset of [`JsonEnvelope`]:
/// [`CodeMsgData::ENVELOPE`].
///
/// ```
/// use refresh_endpoint::envelope::{CodeMsgData, Envelope, RawResponse};
///
/// let failed = RawResponse {
///     endpoint: "refresh",
///     status: 200,
///     headers: Default::default(),
///     body: br#"{"code":40020,"msg":"Failed to issue token pair","data":null,"correlation_id":"b435"}"#.to_vec(),
/// };
/// let error = <CodeMsgData>::unwrap::<serde_json::Value>(&failed).unwrap_err();
/// assert!(error.is_terminal());
/// assert_eq!(error.api().unwrap().trace_id.as_deref(), Some("b435"));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct CodeMsgData<const SUCCESS: i64 = 0>;

impl<const SUCCESS: i64> CodeMsgData<SUCCESS> {
    /// The declaration.
    pub const ENVELOPE: JsonEnvelope = JsonEnvelope::new("code_msg_data")
        .data("data")
        .code("code")
        .message(&["msg"])
        .trace_id("correlation_id")
        .success(Success::Int(SUCCESS))
        .rules(&[
            Rule::code("40020", Outcome::Terminal),
            Rule::code("401", Outcome::Terminal),
            Rule::code("5????", Outcome::Retryable),
            Rule::code("401", Outcome::Expired),
        ]);
}

impl<const SUCCESS: i64> Envelope for CodeMsgData<SUCCESS> {
    const EXPIRY_ON_SUCCESS: bool = true;

    fn unwrap<T: DeserializeOwned>(response: &RawResponse) -> Result<T, Error> {
        Self::ENVELOPE.unwrap(response)
    }

    fn access_token_expired(response: &RawResponse) -> bool {
        Self::ENVELOPE.access_token_expired(response)
    }
}
