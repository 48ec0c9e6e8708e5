use serde::de::DeserializeOwned;

use super::{Envelope, RawResponse};
use crate::Error;

/// No envelope: a 2xx body is the response; any other status is an
/// [`ErrorKind::Status`](crate::ErrorKind::Status) (retryable for 408, 425, 429 and 5xx).
///
/// ```
/// use refresh_endpoint::envelope::{Envelope, Plain, RawResponse};
///
/// let ok = RawResponse { endpoint: "e", status: 200, headers: Default::default(), body: br#"{"n":1}"#.to_vec() };
/// let value: serde_json::Value = Plain::unwrap(&ok).unwrap();
/// assert_eq!(value["n"], 1);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Plain;

impl Envelope for Plain {
    fn unwrap<T: DeserializeOwned>(response: &RawResponse) -> Result<T, Error> {
        if response.is_success() {
            response.json()
        } else {
            Err(response.status_error())
        }
    }
}
