use serde::de::DeserializeOwned;

use super::{Envelope, JsonEnvelope, Outcome, RawResponse, Rule, Success};
use crate::Error;

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
    fn unwrap<T: DeserializeOwned>(response: &RawResponse) -> Result<T, Error> {
        Self::ENVELOPE.unwrap(response)
    }

    fn access_token_expired(response: &RawResponse) -> bool {
        Self::ENVELOPE.access_token_expired(response)
    }
}
