//! Cloudreve v4: `POST /api/v4/session/token/refresh`.

use std::time::SystemTime;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::Secret;

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
        let text = OffsetDateTime::from(*at)
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
