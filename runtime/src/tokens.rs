//! [`Tokens`]: what a session keeps, and [`IntoTokens`]: how a refresh
//! response becomes them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::{Deserialize, Serialize};

use crate::{Error, Secret};

/// A session's tokens: serialized as they are stored (expiries in Unix seconds).
///
/// **Expiries are believed up to [`EXPIRY_HORIZON`] (100 years) ahead.** An
/// expiry further away than that from now — from a hostile or broken
/// provider, a JWT `exp` of `1e300`, a stored file — or one that a
/// [`SystemTime`] cannot hold, counts as "no known expiry" (`None`), the
/// same as a token without one. Nothing a server sends makes time
/// arithmetic panic: it saturates or gives up on the expiry.
///
/// ```
/// use refresh_endpoint::{Secret, tokens::Tokens};
///
/// let tokens = Tokens::new(Secret::new("access"), Secret::new("refresh"));
/// assert!(tokens.access_expires_at.is_none());
/// assert!(!format!("{tokens:?}").contains("refresh\""));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Tokens {
    /// The access token.
    pub access_token: Secret,
    /// The refresh token.
    pub refresh_token: Secret,
    /// When the access token expires, if known.
    #[serde(
        default,
        with = "unix_seconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub access_expires_at: Option<SystemTime>,
    /// When the refresh token expires, if known.
    #[serde(
        default,
        with = "unix_seconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub refresh_expires_at: Option<SystemTime>,
}

/// How far ahead an expiry may be and still be believed: 100 years (36 525
/// days). Anything further away counts as "no known expiry"; see [`Tokens`].
pub const EXPIRY_HORIZON: Duration = Duration::from_secs(36_525 * 24 * 60 * 60);

/// The expiry of something that lives `lifetime` from `received_at` (an
/// OAuth `expires_in`), or `None` when that is beyond [`EXPIRY_HORIZON`]:
/// never a panic, whatever the number.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use refresh_endpoint::tokens::expires_after;
///
/// let now = SystemTime::now();
/// assert_eq!(expires_after(now, Duration::from_secs(3600)), Some(now + Duration::from_secs(3600)));
/// assert_eq!(expires_after(now, Duration::from_secs(u64::MAX)), None);
/// ```
pub fn expires_after(received_at: SystemTime, lifetime: Duration) -> Option<SystemTime> {
    if lifetime > EXPIRY_HORIZON {
        return None;
    }
    received_at.checked_add(lifetime)
}

/// `at`, unless it is more than [`EXPIRY_HORIZON`] after `now`.
pub(crate) fn within_horizon(at: SystemTime, now: SystemTime) -> Option<SystemTime> {
    match now.checked_add(EXPIRY_HORIZON) {
        Some(limit) => (at <= limit).then_some(at),
        None => Some(at),
    }
}

/// `seconds` after the Unix epoch, if finite, not negative, representable
/// and within [`EXPIRY_HORIZON`] of the wall clock.
fn unix_time(seconds: f64) -> Option<SystemTime> {
    if !seconds.is_finite() || seconds < 0.0 {
        return None;
    }
    let since = Duration::try_from_secs_f64(seconds).ok()?;
    within_horizon(UNIX_EPOCH.checked_add(since)?, SystemTime::now())
}

impl Tokens {
    /// Tokens with unknown expiries; the access token's expiry is read from
    /// its JWT `exp` claim when it is a JWT (see [`jwt_expiry`]).
    pub fn new(access_token: impl Into<Secret>, refresh_token: impl Into<Secret>) -> Self {
        let access_token = access_token.into();
        Tokens {
            access_expires_at: jwt_expiry(&access_token),
            access_token,
            refresh_token: refresh_token.into(),
            refresh_expires_at: None,
        }
    }

    /// Sets when the access token expires.
    pub fn with_access_expires_at(mut self, at: SystemTime) -> Self {
        self.access_expires_at = Some(at);
        self
    }

    /// Sets when the refresh token expires.
    pub fn with_refresh_expires_at(mut self, at: SystemTime) -> Self {
        self.refresh_expires_at = Some(at);
        self
    }
}

/// Tokens a refresh response issued. A `None` refresh token means "keep the
/// old one" (allowed by OAuth 2.0); a `None` access expiry is read from the
/// JWT `exp` claim, if the token is a JWT.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Issued {
    /// The new access token.
    pub access_token: Secret,
    /// The new refresh token, if the provider rotated it.
    pub refresh_token: Option<Secret>,
    /// When the new access token expires, if the response says.
    pub access_expires_at: Option<SystemTime>,
    /// When the refresh token expires, if the response says.
    pub refresh_expires_at: Option<SystemTime>,
}

impl Issued {
    /// An access token alone: no rotation, expiry from the JWT if any.
    pub fn access(access_token: Secret) -> Self {
        Issued {
            access_token,
            refresh_token: None,
            access_expires_at: None,
            refresh_expires_at: None,
        }
    }

    /// Sets the rotated refresh token.
    pub fn with_refresh_token(mut self, refresh_token: Option<Secret>) -> Self {
        self.refresh_token = refresh_token;
        self
    }

    /// Sets the access token's expiry.
    pub fn with_access_expires_at(mut self, at: Option<SystemTime>) -> Self {
        self.access_expires_at = at;
        self
    }

    /// Sets the refresh token's expiry.
    pub fn with_refresh_expires_at(mut self, at: Option<SystemTime>) -> Self {
        self.refresh_expires_at = at;
        self
    }

    /// The session's next tokens: the issued ones, keeping the previous
    /// refresh token when none was issued. Expiries beyond
    /// [`EXPIRY_HORIZON`] from now count as unknown (see [`Tokens`]).
    pub fn into_tokens(self, previous: &Tokens) -> Tokens {
        let rotated = self.refresh_token.is_some();
        let now = SystemTime::now();
        let believed = |at: Option<SystemTime>| at.and_then(|at| within_horizon(at, now));
        Tokens {
            access_expires_at: match self.access_expires_at {
                Some(at) => believed(Some(at)),
                None => jwt_expiry(&self.access_token),
            },
            access_token: self.access_token,
            refresh_token: self
                .refresh_token
                .unwrap_or_else(|| previous.refresh_token.clone()),
            refresh_expires_at: match rotated {
                true => believed(self.refresh_expires_at),
                false => believed(self.refresh_expires_at.or(previous.refresh_expires_at)),
            },
        }
    }
}

/// A refresh response a session can take tokens from.
///
/// Implemented beside each provider's response type in [`providers`](crate::providers). For a response of your own:
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use refresh_endpoint::Secret;
/// use refresh_endpoint::tokens::{IntoTokens, Issued, expires_after};
///
/// #[derive(serde::Deserialize)]
/// struct MyRefresh { token: Secret, next_refresh: Secret, ttl_seconds: u64 }
///
/// impl IntoTokens for MyRefresh {
///     fn into_tokens(self, received_at: SystemTime) -> Result<Issued, refresh_endpoint::Error> {
///         Ok(Issued::access(self.token)
///             .with_refresh_token(Some(self.next_refresh))
///             // Not `received_at + …`: a hostile `ttl_seconds` must not panic.
///             .with_access_expires_at(expires_after(received_at, Duration::from_secs(self.ttl_seconds))))
///     }
/// }
/// ```
pub trait IntoTokens {
    /// The tokens in this response; `received_at` is when it arrived (for
    /// relative lifetimes such as OAuth's `expires_in`).
    fn into_tokens(self, received_at: SystemTime) -> Result<Issued, Error>;

    /// The token fields of a successful (2xx) refresh answer that did not
    /// make a `Self` (a field of an unexpected type, a panic in user code),
    /// as the endpoint's envelope unwrapped it. The provider may already
    /// have spent the old refresh token, so a [`Session`](crate::session::Session)
    /// saves what this finds, and still reports the original error.
    ///
    /// By default [`salvage_token_fields`]: the usual field names, at the
    /// top level or under `data`. Override it for other names; return
    /// `None` when the answer holds no refresh token.
    fn salvage(success: &serde_json::Value, received_at: SystemTime) -> Option<Salvaged>
    where
        Self: Sized,
    {
        salvage_token_fields(success, received_at)
    }
}

/// What [`IntoTokens::salvage`] recovered from an answer that did not decode.
///
/// ```
/// use refresh_endpoint::Secret;
/// use refresh_endpoint::tokens::Salvaged;
///
/// let salvaged = Salvaged::new(Secret::new("rt-2")).with_access_token(Some(Secret::new("at-2")));
/// assert_eq!(salvaged.refresh_token.expose(), "rt-2");
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Salvaged {
    /// The new refresh token: the one thing that must not be lost.
    pub refresh_token: Secret,
    /// The new access token, if found. Without one the session keeps its
    /// old access token and refreshes at the next call.
    pub access_token: Option<Secret>,
    /// When the new access token expires, if the answer says (else its JWT
    /// `exp`, if any).
    pub access_expires_at: Option<SystemTime>,
}

impl Salvaged {
    /// A salvaged refresh token alone.
    pub fn new(refresh_token: Secret) -> Self {
        Salvaged {
            refresh_token,
            access_token: None,
            access_expires_at: None,
        }
    }

    /// Sets the salvaged access token.
    pub fn with_access_token(mut self, access_token: Option<Secret>) -> Self {
        self.access_token = access_token;
        self
    }

    /// Sets when the salvaged access token expires.
    pub fn with_access_expires_at(mut self, at: Option<SystemTime>) -> Self {
        self.access_expires_at = at;
        self
    }
}

/// The default [`IntoTokens::salvage`]: looks for a non-empty string
/// `refresh_token`, `refreshJwt` or `refreshToken` in `success` or in its
/// `data` object, and next to it for `access_token`, `accessJwt` or
/// `accessToken` and an `expires_in` / `expiresIn` (seconds, as a number or
/// a numeric string). `None` without a refresh token.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use refresh_endpoint::tokens::salvage_token_fields;
///
/// let now = SystemTime::now();
/// let answer = serde_json::json!({"code": 0, "data": {
///     "access_token": "at", "refresh_token": "rt", "expires_in": "3600", "scope": 7}});
/// let salvaged = salvage_token_fields(&answer, now).unwrap();
/// assert_eq!(salvaged.refresh_token.expose(), "rt");
/// assert_eq!(salvaged.access_token.unwrap().expose(), "at");
/// assert_eq!(salvaged.access_expires_at, Some(now + Duration::from_secs(3600)));
/// assert!(salvage_token_fields(&serde_json::json!({"access_token": "at"}), now).is_none());
/// ```
pub fn salvage_token_fields(
    success: &serde_json::Value,
    received_at: SystemTime,
) -> Option<Salvaged> {
    const REFRESH: [&str; 3] = ["refresh_token", "refreshJwt", "refreshToken"];
    const ACCESS: [&str; 3] = ["access_token", "accessJwt", "accessToken"];
    const EXPIRES_IN: [&str; 2] = ["expires_in", "expiresIn"];
    [Some(success), success.get("data")]
        .into_iter()
        .flatten()
        .find_map(|object| {
            let text = |names: &[&str]| {
                names.iter().find_map(|name| {
                    object
                        .get(name)?
                        .as_str()
                        .filter(|text| !text.is_empty())
                        .map(Secret::new)
                })
            };
            let refresh_token = text(&REFRESH)?;
            let access_token = text(&ACCESS);
            let lifetime = EXPIRES_IN.iter().find_map(|name| match object.get(name)? {
                serde_json::Value::Number(seconds) => seconds.as_u64(),
                serde_json::Value::String(seconds) => seconds.trim().parse().ok(),
                _ => None,
            });
            let access_expires_at = access_token
                .as_ref()
                .and(lifetime)
                .and_then(|seconds| expires_after(received_at, Duration::from_secs(seconds)));
            Some(
                Salvaged::new(refresh_token)
                    .with_access_token(access_token)
                    .with_access_expires_at(access_expires_at),
            )
        })
}

/// The `exp` claim of a JWT, read without verifying the signature; `None`
/// when the token is not a JWT, has no numeric `exp`, or its `exp` is
/// negative, beyond what a [`SystemTime`] holds, or more than
/// [`EXPIRY_HORIZON`] (100 years) from now: such an expiry counts as
/// unknown, never as a panic.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use refresh_endpoint::{Secret, tokens::jwt_expiry};
///
/// // {"alg":"none"}.{"exp":1700000000}.
/// let jwt = Secret::new("eyJhbGciOiJub25lIn0.eyJleHAiOjE3MDAwMDAwMDB9.");
/// assert_eq!(jwt_expiry(&jwt), Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)));
/// assert_eq!(jwt_expiry(&Secret::new("opaque")), None);
/// // {"alg":"none"}.{"exp":1e300}.: absurdly far away, so unknown.
/// assert_eq!(jwt_expiry(&Secret::new("eyJhbGciOiJub25lIn0.eyJleHAiOjFlMzAwfQ.")), None);
/// ```
pub fn jwt_expiry(token: &Secret) -> Option<SystemTime> {
    const BASE64URL: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    #[derive(Deserialize)]
    struct Claims {
        exp: f64,
    }
    let mut parts = token.expose().split('.');
    let (_header, claims) = (parts.next()?, parts.next()?);
    parts.next()?;
    let claims: Claims = serde_json::from_slice(&BASE64URL.decode(claims).ok()?).ok()?;
    unix_time(claims.exp)
}

mod unix_seconds {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        at: &Option<SystemTime>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => {
                let seconds = at
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs_f64();
                serializer.serialize_some(&seconds)
            }
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<SystemTime>, D::Error> {
        let seconds = Option::<f64>::deserialize(deserializer)?;
        Ok(seconds.and_then(unix_time))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_through_json() {
        let tokens = Tokens::new(Secret::new("a"), Secret::new("r"))
            .with_access_expires_at(UNIX_EPOCH + Duration::from_millis(1_700_000_000_500));
        let json = serde_json::to_string(&tokens).unwrap();
        assert_eq!(
            json,
            r#"{"access_token":"a","refresh_token":"r","access_expires_at":1700000000.5}"#
        );
        assert_eq!(serde_json::from_str::<Tokens>(&json).unwrap(), tokens);
    }

    #[test]
    fn issued_without_refresh_keeps_the_old_one() {
        let previous = Tokens::new(Secret::new("a"), Secret::new("r1"));
        let next = Issued::access(Secret::new("a2")).into_tokens(&previous);
        assert_eq!(next.refresh_token.expose(), "r1");
        let next = Issued::access(Secret::new("a3"))
            .with_refresh_token(Some(Secret::new("r2")))
            .into_tokens(&previous);
        assert_eq!(next.refresh_token.expose(), "r2");
    }
}
