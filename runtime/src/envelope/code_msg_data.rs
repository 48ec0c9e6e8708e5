use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{Envelope, RawResponse, decode_json};
use crate::{ApiError, Error, ErrorKind};

/// The `{"code", "msg", "data"}` envelope of Cloudreve v4: the HTTP status is
/// always 200 and `code == SUCCESS` (0 unless set with
/// `envelope = code_msg_data(success = N)`) means `data` holds the response.
///
/// Code 40020 ("Failed to issue token pair") and 401 ("Login required") end
/// the session; codes from 50000 up are server-side failures and retryable;
/// any other code is [`ErrorKind::Api`]. The `correlation_id` becomes the trace id.
/// An authorized call is refreshed and replayed when it answers code 401.
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

/// Cloudreve codes that mean the refresh token is dead.
const TERMINAL: [i64; 2] = [40020, 401];

#[derive(Deserialize)]
struct Head {
    code: i64,
    #[serde(default)]
    msg: Option<String>,
    #[serde(default)]
    correlation_id: Option<String>,
}

#[derive(Deserialize)]
struct Data<T> {
    data: T,
}

impl<const SUCCESS: i64> Envelope for CodeMsgData<SUCCESS> {
    fn unwrap<T: DeserializeOwned>(response: &RawResponse) -> Result<T, Error> {
        if !response.is_success() {
            return Err(response.status_error());
        }
        let head: Head = response.json()?;
        if head.code == SUCCESS {
            let body: Data<T> = decode_json(response.endpoint, &response.body, "")?;
            return Ok(body.data);
        }
        let error = ApiError::new(
            "code_msg_data",
            response.status,
            head.code.to_string(),
            head.msg.unwrap_or_default(),
        )
        .with_trace_id(head.correlation_id)
        .with_retryable(head.code >= 50000);
        if TERMINAL.contains(&head.code) {
            Err(ErrorKind::SignInAgain(Some(error)).into())
        } else {
            Err(ErrorKind::Api(error).into())
        }
    }

    const EXPIRY_ON_SUCCESS: bool = true;

    fn access_token_expired(response: &RawResponse) -> bool {
        response.status == 401
            || serde_json::from_slice::<Head>(&response.body).is_ok_and(|head| head.code == 401)
    }
}
