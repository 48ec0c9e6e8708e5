//! [`Secret`]: a token or key that never shows itself in logs.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroize;

/// An access token, refresh token or API key.
///
/// `Debug` and `Display` print `[redacted]`, never the value, so a secret can
/// sit in any struct that derives `Debug` or appears in a log line. The value
/// is read with [`Secret::expose`]. On the wire (serde) it is a plain string.
/// Cloning is cheap: the value is shared.
///
/// When the last copy of a value is dropped, its bytes are overwritten with
/// zeros before the memory is freed (with the `zeroize` crate, as `secrecy`
/// does), so a token does not linger in freed memory. Copies made outside
/// this type — the bytes of a request or response that `reqwest`, `hyper` or
/// `serde` buffered — are not covered.
///
/// ```
/// use refresh_endpoint::Secret;
///
/// let token = Secret::new("eyJhbGciOi.secret.value");
/// assert_eq!(format!("{token:?}"), "Secret([redacted])");
/// assert_eq!(token.to_string(), "[redacted]");
/// assert_eq!(token.expose(), "eyJhbGciOi.secret.value");
/// let json = serde_json::to_string(&token).unwrap();
/// assert_eq!(json, "\"eyJhbGciOi.secret.value\"");
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Secret(value.into())
    }

    /// Whether `other` is this very value (a clone of it), not merely an
    /// equal one.
    pub(crate) fn is_same(&self, other: &Secret) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Wraps a `String`, zeroing the `String`'s buffer after the copy.
    fn from_string(mut value: String) -> Self {
        let secret = Secret(Arc::from(value.as_str()));
        value.zeroize();
        secret
    }

    /// The value itself. Call it only where the value must leave the program.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        // The strong count is read first (a plain load) so that dropping one
        // of several copies, the common case, writes nothing shared.
        if Arc::strong_count(&self.0) == 1
            && let Some(value) = Arc::get_mut(&mut self.0)
        {
            value.zeroize();
        }
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret::from_string(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret::new(value)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        crate::scrub::note_serialized(self);
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret::from)
    }
}

/// An empty secret: the placeholder of a `#[refresh_token]` field in an
/// endpoint a session fills in before each refresh.
impl Default for Secret {
    fn default() -> Self {
        Secret::new("")
    }
}
