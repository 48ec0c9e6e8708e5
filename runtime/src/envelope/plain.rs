use serde::de::DeserializeOwned;

use super::{Envelope, JsonEnvelope, RawResponse, Success};
use crate::Error;

/// No envelope: a 2xx body is the response. An error status is an
/// [`ErrorKind::Status`](crate::ErrorKind::Status) when it is retryable
/// (408, 425, 429 and 5xx); any other is
/// [`ErrorKind::Unrecognized`](crate::ErrorKind::Unrecognized), logged once
/// with a hint to declare the provider's error shape.
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

impl Plain {
    /// The declaration: no error codes.
    pub const ENVELOPE: JsonEnvelope = JsonEnvelope::new("plain").code("").success(Success::Status);
}

impl Envelope for Plain {
    fn unwrap<T: DeserializeOwned>(response: &RawResponse) -> Result<T, Error> {
        Self::ENVELOPE.unwrap(response)
    }
}
